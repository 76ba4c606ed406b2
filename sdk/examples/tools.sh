#!/usr/bin/env bash
# Installs the pinned tools that build the Python and JavaScript example plugins, under the
# repository's target/: componentize-py (PyPI) in the virtualenv target/ci-venv and
# componentize-js (npm, with the jco it depends on) in target/ci-node. Needs python3 with venv,
# node and npm. Idempotent: an installed pinned version is kept.
#
#   sdk/examples/tools.sh
#   export PATH=$PWD/target/ci-venv/bin:$PWD/target/ci-node/node_modules/.bin:$PATH
set -euo pipefail
cd "$(dirname "$0")/../.."

COMPONENTIZE_PY=0.25.1
COMPONENTIZE_JS=0.23.0

venv=target/ci-venv
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
if [ "$("$venv/bin/componentize-py" --version 2>/dev/null)" != "componentize-py $COMPONENTIZE_PY" ]; then
    "$venv/bin/pip" install --quiet "componentize-py==$COMPONENTIZE_PY"
fi

node=target/ci-node
mkdir -p "$node"
if [ "$("$node/node_modules/.bin/componentize-js" --version 2>/dev/null)" != "$COMPONENTIZE_JS" ]; then
    (cd "$node" && npm install --silent --no-audit --no-fund --save-exact \
        "@bytecodealliance/componentize-js@$COMPONENTIZE_JS")
fi

"$venv/bin/componentize-py" --version
echo "componentize-js $("$node/node_modules/.bin/componentize-js" --version)"
