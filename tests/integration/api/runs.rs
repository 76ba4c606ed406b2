//! Runs: detail with steps, the server-sent event stream, cancel, step approvals, signals.

use serde_json::{Value, json};

use super::harness::{App, SLEEPER_V2, TENANT_A, ids, s, step};

/// Orders `steer` as client A and waits until its approval step waits; returns the run id.
fn steer_run(app: &App) -> (String, String) {
    let created = app.order(&app.client_a, &json!({ "catalog_id": "steer" }));
    let run = s(&created, "run_id");
    app.wait_step(&app.client_a, &run, "gate", "waiting");
    (s(&created, "id"), run)
}

#[test]
fn the_event_stream_sends_a_snapshot_then_transitions_until_the_run_ends() {
    let app = App::start();
    let (request, run) = steer_run(&app);
    let mut stream = app
        .get(&format!("/v1/runs/{run}/events"))
        .auth(&app.client_a)
        .stream();
    let (name, snapshot) = stream.next_event().expect("the first event");
    assert_eq!(name, "snapshot");
    assert_eq!(snapshot["id"], run.as_str());
    assert_eq!(snapshot["status"], "running");
    assert_eq!(
        step(&snapshot, "gate").map(|g| g["status"].clone()),
        Some(json!("waiting"))
    );

    // Steer the run while the stream is open: the signal first (kept until its step waits),
    // then the approval.
    app.post(&format!("/v1/runs/{run}/signals/go"))
        .auth(&app.operator)
        .json(&json!({ "said": "go on" }))
        .send()
        .expect(202);
    app.post(&format!("/v1/runs/{run}/approvals/gate"))
        .auth(&app.operator)
        .json(&json!({ "approved": true }))
        .send()
        .expect(200);

    let mut events = Vec::new();
    while let Some(event) = stream.next_event() {
        events.push(event);
    }
    let steps: Vec<(String, String)> = events
        .iter()
        .filter(|(n, _)| n == "step")
        .map(|(_, e)| (s(e, "step"), s(e, "status")))
        .collect();
    for e in events.iter().map(|(_, e)| e) {
        assert_eq!(e["run_id"], run.as_str(), "{e}");
    }
    assert!(
        steps.contains(&("gate".into(), "succeeded".into())),
        "{events:?}"
    );
    assert!(
        steps.contains(&("hear".into(), "succeeded".into())),
        "{events:?}"
    );
    let (last_name, last) = events.last().expect("events after the snapshot");
    assert_eq!(
        last_name, "run",
        "the stream ends with the run's end: {events:?}"
    );
    assert_eq!(last["status"], "succeeded");
    assert_eq!(last["step"], Value::Null);

    let detail = app
        .get(&format!("/v1/runs/{run}"))
        .auth(&app.client_a)
        .send()
        .expect(200);
    assert_eq!(detail["status"], "succeeded");
    assert_eq!(detail["outputs"], json!({ "heard": { "said": "go on" } }));
    assert!(detail["finished_at"].is_string());
    let gate = step(&detail, "gate").expect("gate");
    assert_eq!(gate["output"]["approved"], true);
    assert_eq!(gate["output"]["by"], app.operator.id.as_str());
    for st in detail["steps"].as_array().expect("steps") {
        assert!(st["started_at"].is_string(), "{st}");
        assert!(st["finished_at"].is_string(), "{st}");
        assert!(st["attempts"].is_u64(), "{st}");
    }
    let r = app.wait_request(&app.client_a, &request, "fulfilled");
    assert_eq!(r["sla"]["breached"], false);

    // A finished run's stream is its snapshot, then the end.
    let mut stream = app
        .get(&format!("/v1/runs/{run}/events"))
        .auth(&app.operator)
        .stream();
    let (name, snapshot) = stream.next_event().expect("a snapshot");
    assert_eq!(name, "snapshot");
    assert_eq!(snapshot["status"], "succeeded");
    assert!(
        stream.next_event().is_none(),
        "the stream of a finished run ends"
    );

    // Listed with the others, newest first, without steps.
    let list = app.get("/v1/runs").auth(&app.client_a).send().expect(200);
    assert_eq!(ids(&list), vec![run.clone()]);
    assert_eq!(list["items"][0]["status"], "succeeded");
    assert_eq!(list["items"][0]["tenant"], TENANT_A);
    assert!(list["items"][0].get("steps").is_none());
    app.get("/v1/runs/run-00000000deadbeef")
        .auth(&app.operator)
        .send()
        .problem(404, "not-found");
    app.get("/v1/runs/run-00000000deadbeef/events")
        .auth(&app.operator)
        .send()
        .problem(404, "not-found");
}

#[test]
fn approval_steps_accept_the_roles_they_name() {
    let app = App::start();
    let (_, run) = steer_run(&app);
    let approve = |token: &super::harness::Token, key: &str, body: &Value| {
        app.post(&format!("/v1/runs/{run}/approvals/{key}"))
            .auth(token)
            .json(body)
            .send()
    };
    let yes = json!({ "approved": true });
    approve(&app.client_a, "gate", &yes).problem(403, "forbidden");
    approve(&app.integration, "gate", &yes).problem(403, "forbidden");
    approve(&app.operator, "hear", &yes).problem(404, "not-found");
    approve(&app.operator, "nope", &yes).problem(404, "not-found");
    assert_eq!(
        approve(&app.operator, "gate", &json!({ "approved": "sure" })).invalid(),
        vec!["/approved"]
    );
    app.post(&format!("/v1/runs/{run}/approvals/gate"))
        .auth(&app.operator)
        .body("application/json", "{\"approved\": tru")
        .send()
        .problem(400, "malformed-json");
    app.post(&format!("/v1/runs/{run}/approvals/gate"))
        .auth(&app.operator)
        .body("text/plain", "approved")
        .send()
        .problem(415, "unsupported-media-type");
    let still = app
        .get(&format!("/v1/runs/{run}"))
        .auth(&app.operator)
        .send()
        .expect(200);
    assert_eq!(
        step(&still, "gate").map(|g| g["status"].clone()),
        Some(json!("waiting"))
    );

    // Admins may decide what operators may.
    let decided = approve(&app.admin, "gate", &yes).expect(200);
    assert_eq!(decided["id"], run.as_str());
    approve(&app.operator, "gate", &yes).problem(409, "conflict");
    let after = app.wait_step(&app.operator, &run, "hear", "waiting");
    assert_eq!(
        step(&after, "gate").map(|g| g["output"]["by"].clone()),
        Some(json!(app.admin.id))
    );

    // A rejection fails the run.
    let (request, other) = steer_run(&app);
    approve_on(&app, &other, false);
    let failed = app.wait_run(&app.operator, &other, "failed");
    assert!(
        failed["error"].as_str().is_some_and(|e| e.contains("gate")),
        "{failed}"
    );
    let r = app.wait_request(&app.client_a, &request, "failed");
    assert!(r["finished_at"].is_string());
}

fn approve_on(app: &App, run: &str, approved: bool) {
    app.post(&format!("/v1/runs/{run}/approvals/gate"))
        .auth(&app.operator)
        .json(&json!({ "approved": approved }))
        .send()
        .expect(200);
}

/// The natural order of things: the run waits at its `signal:` step, then the signal comes.
#[test]
fn signals_reach_a_waiting_step() {
    let app = App::start();
    let (request, run) = steer_run(&app);
    approve_on(&app, &run, true);
    app.wait_step(&app.operator, &run, "hear", "waiting");

    let signal =
        |token: &super::harness::Token| app.post(&format!("/v1/runs/{run}/signals/go")).auth(token);
    signal(&app.client_a)
        .json(&json!({}))
        .send()
        .problem(403, "forbidden");
    signal(&app.integration)
        .json(&json!({}))
        .send()
        .problem(403, "forbidden");
    signal(&app.operator)
        .body("text/plain", "go")
        .send()
        .problem(415, "unsupported-media-type");
    signal(&app.operator)
        .body("application/json", "{go")
        .send()
        .problem(400, "malformed-json");
    app.post("/v1/runs/run-00000000deadbeef/signals/go")
        .auth(&app.operator)
        .send()
        .problem(404, "not-found");

    let accepted = signal(&app.operator)
        .json(&json!({ "by": "ops" }))
        .send()
        .expect(202);
    assert_eq!(accepted["id"], run.as_str());
    let done = app.wait_run(&app.operator, &run, "succeeded");
    assert_eq!(done["outputs"], json!({ "heard": { "by": "ops" } }));
    app.wait_request(&app.client_a, &request, "fulfilled");

    // A finished run takes no more signals.
    signal(&app.operator)
        .json(&json!({}))
        .send()
        .problem(409, "conflict");
}

#[test]
fn an_operator_cancels_a_run_waiting_on_a_long_timer() {
    let app = App::start();
    let uploaded = app
        .put("/v1/workflows/sleeper")
        .auth(&app.operator)
        .body("application/yaml", SLEEPER_V2)
        .send()
        .expect(201);
    assert_eq!(uploaded["version"], 2);

    let created = app.order(
        &app.operator,
        &json!({ "catalog_id": "sleeper", "tenant": TENANT_A }),
    );
    assert_eq!(created["tenant"], TENANT_A);
    assert_eq!(created["requester"], app.operator.id.as_str());
    let run = s(&created, "run_id");
    let waiting = app.wait_step(&app.operator, &run, "nap", "waiting");
    assert_eq!(waiting["version"], 2, "new runs use the newest version");
    let nap = step(&waiting, "nap").expect("nap");
    assert!(nap["wakes_at"].is_string(), "{nap}");

    app.post(&format!("/v1/runs/{run}/cancel"))
        .auth(&app.client_a)
        .send()
        .problem(403, "forbidden");
    app.post("/v1/runs/run-00000000deadbeef/cancel")
        .auth(&app.operator)
        .send()
        .problem(404, "not-found");
    let wrong = app
        .post(&format!("/v1/runs/{run}/cancel"))
        .auth(&app.operator)
        .json(&json!({ "compensate": "no" }))
        .send();
    assert_eq!(wrong.invalid(), vec!["/compensate"]);
    let cancelling = app
        .post(&format!("/v1/runs/{run}/cancel"))
        .auth(&app.operator)
        .json(&json!({ "compensate": false }))
        .send()
        .expect(202);
    assert_eq!(cancelling["id"], run.as_str());
    assert!(
        ["cancelling", "cancelled"].contains(&cancelling["status"].as_str().unwrap_or("")),
        "{cancelling}"
    );
    let cancelled = app.wait_run(&app.client_a, &run, "cancelled");
    assert!(cancelled["finished_at"].is_string());
    let r = app.wait_request(&app.client_a, &s(&created, "id"), "cancelled");
    assert!(r["finished_at"].is_string());
    app.post(&format!("/v1/runs/{run}/cancel"))
        .auth(&app.operator)
        .send()
        .problem(409, "conflict");
}

#[test]
fn a_runs_units_come_in_plan_order_a_page_at_a_time_with_counts() {
    let app = App::start();
    let ordered = app.order(&app.client_a, &json!({ "catalog_id": "ordered" }));
    let run = s(&ordered, "run_id");
    let done = app.wait_run(&app.client_a, &run, "succeeded");
    assert_eq!(done["outputs"], json!({ "last": 11, "items": 25 }));

    // Pages of 7 units, followed to the end, list every unit once in plan order.
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/runs/{run}?limit=7&cursor={c}"),
            None => format!("/v1/runs/{run}?limit=7"),
        };
        let page = app.get(&path).auth(&app.client_a).send().expect(200);
        let units = page["steps"].as_array().expect("steps").clone();
        assert!(units.len() <= 7);
        keys.extend(units.iter().map(|u| s(u, "key")));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut want: Vec<String> = (1..=11).map(|i| format!("s{i}")).collect();
    want.push("many".into());
    want.extend((0..25).map(|i| format!("many#{i}")));
    assert_eq!(keys, want);

    // The counts sum up a fan-out in one line per status.
    let first = app
        .get(&format!("/v1/runs/{run}?limit=1"))
        .auth(&app.client_a)
        .send()
        .expect(200);
    let counts = first["counts"].as_array().expect("counts");
    let many: Vec<&Value> = counts.iter().filter(|c| c["step"] == "many").collect();
    assert_eq!(many.len(), 1, "{counts:?}");
    assert_eq!(
        (many[0]["status"].as_str(), many[0]["count"].as_i64()),
        (Some("succeeded"), Some(26))
    );
    // Bad paging is located.
    let reply = app
        .get(&format!("/v1/runs/{run}?limit=0"))
        .auth(&app.client_a)
        .send();
    assert_eq!(reply.invalid(), vec!["/limit"]);
    let reply = app
        .get(&format!("/v1/runs/{run}?cursor=nonsense"))
        .auth(&app.client_a)
        .send();
    assert_eq!(reply.invalid(), vec!["/cursor"]);
}

/// `GET /v1/runs/{id}/steps/{key}`: one unit with the history of its attempts, for the run's
/// readers only; a fan-out item's key is written with `%23` for its `#`.
#[test]
fn a_unit_is_shown_with_every_attempt() {
    let app = App::start();
    let ordered = app.order(&app.client_a, &json!({ "catalog_id": "ordered" }));
    let run = s(&ordered, "run_id");
    app.wait_run(&app.client_a, &run, "succeeded");

    let unit = app
        .get(&format!("/v1/runs/{run}/steps/s10"))
        .auth(&app.client_a)
        .send()
        .expect(200);
    assert_eq!(
        (s(&unit, "key"), s(&unit, "status"), s(&unit, "run_id")),
        ("s10".to_string(), "succeeded".to_string(), run.clone())
    );
    assert_eq!(unit["output"], json!({ "n": 10 }));
    let history = unit["history"].as_array().expect("history");
    assert_eq!(history.len(), 1, "{unit}");
    assert_eq!(history[0]["attempt"], 1);
    assert_eq!(history[0]["outcome"], "succeeded");
    assert_eq!(history[0]["error"], Value::Null);
    assert!(
        s(&history[0], "started_at") <= s(&history[0], "finished_at"),
        "{unit}"
    );

    let item = app
        .get(&format!("/v1/runs/{run}/steps/many%2312"))
        .auth(&app.client_a)
        .send()
        .expect(200);
    assert_eq!(s(&item, "key"), "many#12");
    assert_eq!(item["history"].as_array().map(Vec::len), Some(1), "{item}");
    // The fan-out itself runs no plugin: no attempts.
    let parent = app
        .get(&format!("/v1/runs/{run}/steps/many"))
        .auth(&app.client_a)
        .send()
        .expect(200);
    assert_eq!(parent["history"], json!([]), "{parent}");

    app.get(&format!("/v1/runs/{run}/steps/nope"))
        .auth(&app.client_a)
        .send()
        .problem(404, "not-found");
    app.get(&format!("/v1/runs/{run}/steps/s10"))
        .auth(&app.client_b)
        .send()
        .problem(404, "not-found");
    app.get("/v1/runs/run-nope/steps/s10")
        .auth(&app.operator)
        .send()
        .problem(404, "not-found");
}

#[test]
fn a_followed_runs_last_event_carries_its_outputs() {
    let app = App::start();
    let ordered = app.order(&app.client_a, &json!({ "catalog_id": "ordered" }));
    let run = s(&ordered, "run_id");
    let mut stream = app
        .get(&format!("/v1/runs/{run}/events"))
        .auth(&app.client_a)
        .stream();
    let mut last = None;
    while let Some((name, data)) = stream.next_event() {
        if name == "snapshot" {
            assert!(data["steps"].as_array().is_some_and(|s| s.len() <= 500));
            if data["status"] == "succeeded" {
                last = Some(data["outputs"].clone());
            }
        } else {
            assert_eq!(data["run_id"], run.as_str(), "only this run's events");
            if name == "run" && data["status"] == "succeeded" {
                last = Some(data["outputs"].clone());
            }
        }
    }
    assert_eq!(last, Some(json!({ "last": 11, "items": 25 })));
}

#[test]
fn an_unknown_query_parameter_is_a_400_naming_it() {
    let app = App::start();
    for path in [
        "/v1/runs?stauts=running",
        "/v1/requests?limt=5",
        "/v1/incidents?x=1",
    ] {
        let reply = app.get(path).auth(&app.operator).send();
        let problem = reply.problem(400, "unknown-parameter");
        let name = path
            .split('?')
            .nth(1)
            .and_then(|q| q.split('=').next())
            .unwrap_or("");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(&format!("`{name}`")) && detail.contains("limit"),
            "{path}: {detail}"
        );
    }
    let reply = app.get("/v1/runs?limit=7").auth(&app.operator).send();
    assert_eq!(reply.status, 200);
}
