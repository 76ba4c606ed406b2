"""py-echo: a csmp step plugin in Python that returns its input.

Built with componentize-py against sdk/wit/plugin.wit (see sdk/examples/README.md):

    componentize-py -d sdk/wit -w plugin componentize --stub-wasi -p sdk/examples/python echo -o py-echo.wasm
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import log
from wit_world.imports.types import PluginError_Permanent

DESCRIPTOR = {
    "name": "py-echo",
    "version": "0.1.0",
    "description": "Returns its input object (a Python example)",
    "input_schema": {"type": "object"},
    "output_schema": {"type": "object"},
    "capabilities": {"http_hosts": [], "secrets": []},
}


class WitWorld(wit_world.WitWorld):
    def describe(self) -> str:
        return json.dumps(DESCRIPTOR)

    def run(self, input: str, ctx) -> str:
        value = json.loads(input)
        if not isinstance(value, dict):
            # Permanent: the same input fails the same way on every retry.
            raise Err(PluginError_Permanent("the input must be a JSON object"))
        log.write(log.Level.INFO, f"echoing {len(value)} keys")
        return json.dumps(value)
