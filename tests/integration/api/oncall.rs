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
