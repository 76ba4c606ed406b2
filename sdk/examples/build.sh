#!/usr/bin/env bash
# Builds the Python and JavaScript example plugins against sdk/wit/plugin.wit into OUT
# (default: target/examples), with the tools sdk/examples/tools.sh installs (found on PATH,
# else under target/). Prints each component's size.
#
#   sdk/examples/build.sh [OUT]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/target/examples}
mkdir -p "$out"
export PATH="$PATH:$root/target/ci-venv/bin:$root/target/ci-node/node_modules/.bin"
for tool in componentize-py componentize-js; do
    if ! command -v "$tool" >/dev/null; then
        echo "error: $tool is not installed; run sdk/examples/tools.sh (it pins the versions)" >&2
        exit 1
    fi
done
wit="$root/sdk/wit"
examples="$root/sdk/examples"

# Python: --stub-wasi replaces the WASI imports CPython's standard library brings (sockets
# among them, which the sandbox refuses) with stubs that trap; the plugin reaches the world
# only through csmp:plugin/*.
# It compiles the sources in place (__pycache__), so it builds from a copy.
python_src=$(mktemp -d)
trap 'rm -rf "$python_src"' EXIT
cp "$examples"/python/*.py "$python_src/"
for name in echo fetch; do
    componentize-py -d "$wit" -w plugin componentize --stub-wasi \
        -p "$python_src" "$name" -o "$out/py-$name.wasm" >/dev/null
done

# JavaScript: --disable http fetch-event keeps wasi:http out (the sandbox refuses it); stdio,
# clocks and random stay (console.log lands in the step's log).
for name in echo fetch; do
    componentize-js "$examples/javascript/$name.js" --wit "$wit" --world-name plugin \
        --disable http fetch-event -o "$out/js-$name.wasm" >/dev/null
done

for f in "$out"/py-*.wasm "$out"/js-*.wasm; do
    echo "built $f ($(( $(stat -c %s "$f") / 1024 )) KiB)"
done
