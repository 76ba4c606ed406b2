#!/usr/bin/env bash
# Measures the cold step (a fresh instance per attempt, as every step is) and the memory of
# the example plugins beside the built-in Rust ones, with `csmp plugin try --repeat`: echo
# against echo, and fetch (host HTTP to a local server) against the built-in `http`.
# Figures go in BENCHMARKS.md ("Plugins in other languages").
#
#   cargo build --release -p csmp && sdk/examples/build.sh target/examples
#   sdk/examples/bench.sh target/release/csmp target/examples [REPEAT]
set -euo pipefail
csmp=$1
examples=$2
repeat=${3:-2000}
rust=$(dirname "$(find "$(dirname "$csmp")/build" -path '*/out/echo.wasm' | head -1)")
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null; rm -rf "$work"' EXIT

echo '{"healthy": true}' >"$work/status.json"
python3 -m http.server 0 --bind 127.0.0.1 --directory "$work" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 50); do
    port=$(grep -o 'port [0-9]*' "$work/server.log" | grep -o '[0-9]*' || true)
    [ -n "$port" ] && break
    sleep 0.1
done
url="http://127.0.0.1:$port/status.json"
cat >"$work/grants.yaml" <<YAML
plugins:
  http: { http_hosts: ["127.0.0.1:$port"] }
  py-fetch: { http_hosts: ["127.0.0.1:$port"], secrets: [fetch_token] }
  js-fetch: { http_hosts: ["127.0.0.1:$port"], secrets: [fetch_token] }
YAML

echo_input='{"who": "ops", "n": [1, 2, 3]}'
run() {
    local file=$1 input=$2
    printf '%-10s %8s KiB  ' "$(basename "$file" .wasm)" "$(( $(stat -c %s "$file") / 1024 ))"
    "$csmp" plugin try "$file" --input "$input" --grants "$work/grants.yaml" \
        --secret fetch_token=s3cret --repeat "$repeat" | grep -E '^(repeat|outcome)' | tr '\n' ' '
    echo
}
# The first load of each compiles it (then it is cached): time a load with an empty cache.
for f in "$rust/echo.wasm" "$examples/py-echo.wasm" "$examples/js-echo.wasm"; do
    start=$(date +%s%N)
    CSMP_CACHE_DIR="$work/cache-$(basename "$f")" "$csmp" plugin inspect "$f" >/dev/null
    echo "first load (compile, with the built-ins) of $(basename "$f"): $(( ($(date +%s%N) - start) / 1000000 )) ms"
done
run "$rust/echo.wasm" "$echo_input"
run "$examples/py-echo.wasm" "$echo_input"
run "$examples/js-echo.wasm" "$echo_input"
run "$rust/http.wasm" "{\"url\": \"$url\"}"
run "$examples/py-fetch.wasm" "{\"url\": \"$url\"}"
run "$examples/js-fetch.wasm" "{\"url\": \"$url\"}"
