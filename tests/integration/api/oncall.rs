//! Who is on call, over the API: the example schedule of `oncall/` asked at chosen instants.

use serde_json::json;

use super::harness::App;

#[test]
fn the_example_schedule_names_who_is_on_call_at_an_instant() {
    let app = App::start();
    let ask = |at: &str| {
        app.get(&format!("/v1/oncall/platform-primary?at={at}"))
            .auth(&app.operator)
            .send()
            .expect(200)
    };
    // Monday 2026-03-09 09:00 Berlin: bob's week begins (alice, bob, carol, weekly).
    let monday = ask("2026-03-09T08:00:00Z");
    assert_eq!(monday["user"]["id"], "bob", "{monday}");
    assert_eq!(monday["layer"], "primary");
    assert_eq!(monday["by_override"], false);
    assert_eq!(monday["user"]["contacts"][0]["type"], "slack");
    // Tuesday in office hours: the office layer above it.
    assert_eq!(ask("2026-03-10T10:00:00Z")["user"]["id"], "dave");
    // Christmas Eve evening: the override, whoever the rotation names.
    let eve = ask("2026-12-24T20:00:00%2B01:00");
    assert_eq!(eve["user"]["id"], "dave", "{eve}");
    assert_eq!(eve["by_override"], true);
    assert!(eve.get("layer").is_none());
    // Before the first handoff nobody is.
    let before = ask("2026-03-01T12:00:00Z");
    assert!(before.get("user").is_none(), "{before}");

    app.get("/v1/oncall/nobody")
        .auth(&app.operator)
        .send()
        .problem(404, "not-found");
    app.get("/v1/oncall/platform-primary?at=yesterday")
        .auth(&app.operator)
        .send()
        .expect(422);
    app.get("/v1/oncall/platform-primary")
        .auth(&app.client_a)
        .send()
        .expect(403);
    let all = app.get("/v1/oncall").auth(&app.operator).send().expect(200);
    assert_eq!(
        all["schedules"],
        json!({ "platform-primary": "Europe/Berlin" })
    );
    assert_eq!(all["teams"]["platform"].as_array().map(Vec::len), Some(4));
}

/// A file of one person and a policy paging her and alice (of `oncall/platform.yaml`).
const NIGHT: &str = "users:\n  - id: nora\n    contacts: [{ type: webhook, secret: notify_nora }]\nescalation_policies:\n  - id: night\n    services: [batch]\n    levels:\n      - { delay: 10m, targets: [{ user: nora }, { user: alice }] }\n";

#[test]
fn on_call_files_are_set_and_deleted_over_the_api_as_one_checked_set() {
    let app = App::start();
    let put = |name: &str, yaml: &str| {
        app.put(&format!("/v1/oncall/files/{name}"))
            .auth(&app.operator)
            .body("application/yaml", yaml)
            .send()
    };
    let names = || -> Vec<String> {
        app.get("/v1/oncall/files")
            .auth(&app.operator)
            .send()
            .expect(200)["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| f["name"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(names(), ["platform"]);
    let created = put("night", NIGHT).expect(201);
    assert_eq!(created["name"], "night");
    put("night", NIGHT).expect(200);
    assert_eq!(names(), ["night", "platform"]);
    let people = app.get("/v1/oncall").auth(&app.operator).send().expect(200);
    assert!(
        people["people"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["id"] == "nora"),
        "{people}"
    );

    // A file naming someone nobody defines: refused, located, nothing changed.
    let broken = put(
        "night",
        &NIGHT.replace("{ user: alice }", "{ user: alicia }"),
    );
    let body = broken.problem(400, "invalid-definition");
    assert_eq!(body["problems"][0]["code"], "unknown-user", "{body}");
    assert_eq!(body["problems"][0]["line"], 8, "{body}");
    assert!(
        app.get("/v1/oncall/files")
            .auth(&app.operator)
            .send()
            .expect(200)["items"][0]["source"]
            .as_str()
            .is_some_and(|s| s.contains("{ user: alice }"))
    );
    // Deleting what another file needs: refused, the other file named.
    let needed = app
        .delete("/v1/oncall/files/platform")
        .auth(&app.operator)
        .send()
        .problem(400, "invalid-definition");
    assert!(
        needed["detail"]
            .as_str()
            .is_some_and(|d| d.contains("night")),
        "{needed}"
    );
    // Not YAML, a bad name, the wrong role.
    app.put("/v1/oncall/files/night")
        .auth(&app.operator)
        .body("application/json", "{}")
        .send()
        .problem(415, "unsupported-media-type");
    assert_eq!(put("Night", NIGHT).invalid(), vec!["/name"]);
    app.put("/v1/oncall/files/night")
        .auth(&app.client_a)
        .body("application/yaml", NIGHT)
        .send()
        .problem(403, "forbidden");
    let deleted = app
        .delete("/v1/oncall/files/night")
        .auth(&app.operator)
        .send();
    assert_eq!(deleted.status, 204);
    app.delete("/v1/oncall/files/night")
        .auth(&app.operator)
        .send()
        .problem(404, "not-found");
    assert_eq!(names(), ["platform"]);
}

/// What was set over the API is laid over the directory's files at the next start; a stored
/// file that no longer plans with them is left out, and the directory's files stay in force.
#[test]
fn files_set_over_the_api_are_laid_over_the_directory_at_start() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            csmp::store::Store::open(&dir.path().join("csmp.db"), csmp::store::Durability::Full)
                .await
                .expect("the store opens");
        let row = |name: &str, source: Option<&str>| csmp::store::OnCallFileRow {
            name: name.into(),
            source: source.map(String::from),
            updated_at: 1,
            updated_by: "op".into(),
        };
        store
            .put_oncall_file(&row("night", Some(NIGHT)), None)
            .await
            .expect("stored");
        let oncall = crate::helpers::repo_root().join("oncall");
        let (set, sources) = csmp::api::load_oncall(&store, Some(&oncall))
            .await
            .expect("loads");
        assert!(set.policies.contains_key("night") && set.policies.contains_key("platform"));
        assert_eq!(sources.keys().collect::<Vec<_>>(), ["night", "platform"]);
        // The directory's file deleted over the API: `night` pages alice, who is gone with it.
        store
            .put_oncall_file(&row("platform", None), None)
            .await
            .expect("stored");
        let (set, sources) = csmp::api::load_oncall(&store, Some(&oncall))
            .await
            .expect("loads");
        assert_eq!(
            sources.keys().collect::<Vec<_>>(),
            ["platform"],
            "the directory's files alone"
        );
        assert!(set.people.contains_key("alice"));
    });
}
