"""Seeds a running csmp with one live request, run and incident for the API fuzzer, and
prints a schemathesis.toml pinning those ids into the operations that take them."""
import json
import sys
import time
import urllib.request

url, client = sys.argv[1], sys.argv[2]


def call(method, path, token, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def order(token, entry):
    return call("POST", "/v1/requests", token, {"catalog_id": entry, "inputs": {}})


# As the client: a gated request (hello) and a live run with an incident (fuzz-target).
gated = order(client, "hello")
live = order(client, "fuzz-target")
run = live["run_id"]
quick = order(client, "fuzz-quick")["run_id"]
for _ in range(300):
    if call("GET", "/v1/runs/" + quick, client)["status"] == "succeeded":
        break
    time.sleep(0.1)
else:
    sys.exit("the quick fuzzing target did not finish")
incident = None
for _ in range(300):
    incidents = call("GET", "/v1/incidents", client)["items"]
    if incidents:
        incident = incidents[0]["id"]
        break
    time.sleep(0.1)
if incident is None:
    sys.exit("the fuzzing target opened no incident")

pins = [
    ("^/v1/requests/\\{id\\}", {"id": gated["id"]}),
    # Event streams of a live run never end, so streams follow a finished run.
    ("^/v1/runs/\\{id\\}/events$", {"id": quick}),
    ("^/v1/runs/\\{id\\}(/cancel|/approvals/.*|/signals/.*)?$", {"id": run, "step": "gate", "name": "ack"}),
    ("^/v1/incidents/\\{id\\}", {"id": incident}),
    ("^/v1/workflows/\\{name\\}", {"name": "hello", "version": 1}),
    ("^/v1/plugins/\\{name\\}/\\{version\\}$", {"name": "echo", "version": "1.0.0"}),
    ("^/v1/catalog/\\{id\\}$", {"id": "hello"}),
    ("^/v1/events/\\{source\\}$", {"source": "alertmanager"}),
    ("^/v1/tenants/\\{id\\}$", {"id": "acme"}),
]
for regex, params in pins:
    print("[[operations]]")
    print("include-path-regex = %s" % json.dumps(regex))
    print("parameters = { %s }" % ", ".join("%s = %s" % (k, json.dumps(v)) for k, v in params.items()))
    print()
