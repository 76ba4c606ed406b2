"""py-fetch: a csmp step plugin in Python that GETs a URL through the host, with a bearer
token from a granted secret, and returns the status and the (JSON or text) body.

The host sends the request only to hosts the operator granted this plugin
(`plugins.py-fetch.http_hosts`), and answers `secrets.get` only for granted names
(`plugins.py-fetch.secrets`): anything else fails the attempt as denied.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import http, log, secrets
from wit_world.imports.types import PluginError_Permanent, PluginError_Retryable

DESCRIPTOR = {
    "name": "py-fetch",
    "version": "0.1.0",
    "description": "GETs a URL with a bearer token from the secret fetch_token (a Python example)",
    "input_schema": {
        "type": "object",
        "required": ["url"],
        "additionalProperties": False,
        "properties": {"url": {"type": "string", "pattern": "^https?://"}},
    },
    "output_schema": {
        "type": "object",
        "required": ["status", "body"],
        "properties": {"status": {"type": "integer"}, "body": {}},
    },
    "capabilities": {"http_hosts": [], "secrets": ["fetch_token"]},
}


class WitWorld(wit_world.WitWorld):
    def describe(self) -> str:
        return json.dumps(DESCRIPTOR)

    def run(self, input: str, ctx) -> str:
        url = json.loads(input)["url"]
        token = secrets.get("fetch_token")
        if token is None:
            raise Err(PluginError_Permanent("the secret fetch_token is not set; set it for the run"))
        request = http.Request(
            method="GET",
            url=url,
            headers=[("authorization", f"Bearer {token}"), ("idempotency-key", ctx.idempotency_key)],
            body=None,
            timeout_ms=None,
        )
        try:
            response = http.send(request)
        except Err as e:
            # Timeouts and transport errors may pass: let the step's retry policy decide.
            raise Err(PluginError_Retryable(f"GET {url} failed: {e.value.value}"))
        log.write(log.Level.INFO, f"GET {url} -> {response.status}")
        if response.status >= 500 or response.status in (408, 429):
            raise Err(PluginError_Retryable(f"GET {url} answered {response.status}"))
        if response.status >= 400:
            raise Err(PluginError_Permanent(f"GET {url} answered {response.status}"))
        text = response.body.decode("utf-8", errors="replace")
        try:
            body = json.loads(text)
        except ValueError:
            body = text
        return json.dumps({"status": response.status, "body": body})
