//! The console over plain HTTP: sign-in and its cookies, anti-forgery values, sessions ending
//! with their token, tenancy and roles as the API has them, and console actions audited as
//! the signed-in user. (`console_browser.rs` drives the same pages in a real browser.)

use serde_json::{Value, json};

use csmp::api::auth::Role;

use super::harness::{App, TENANT_B, Token, s};

/// `(csmp_login cookie, the form's csrf field)` of a fresh sign-in form.
fn login_form(app: &App) -> (String, String) {
    let form = app.get("/login").send();
    assert_eq!(form.status, 200);
    let cookie = form.header("set-cookie").expect("the form sets its cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let value = cookie
        .strip_prefix("csmp_login=")
        .and_then(|c| c.split(';').next())
        .expect("csmp_login=…")
        .to_string();
    let html = form.text();
    let field = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a csrf field")
        .to_string();
    (value, field)
}

/// Signs in with `token`; the session cookie (`csmp_session=…`).
fn sign_in(app: &App, token: &Token) -> String {
    let (cookie, csrf) = login_form(app);
    let answer = app
        .post("/login")
        .header("cookie", &format!("csmp_login={cookie}"))
        .body(
            "application/x-www-form-urlencoded",
            format!("token={}&csrf={csrf}&next=%2Fruns", token.secret),
        )
        .send();
    assert_eq!(answer.status, 303, "{}", answer.text());
    assert_eq!(answer.header("location").as_deref(), Some("/runs"));
    let session = answer.header("set-cookie").expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(attribute), "{attribute} in {session}");
    }
    session.split(';').next().expect("name=value").to_string()
}

/// A page's HTML with the session; its status.
fn page(app: &App, session: &str, path: &str) -> (u16, String) {
    let r = app.get(path).header("cookie", session).send();
    (r.status, r.text())
}

/// This session's anti-forgery value, read off a page's sign-out form.
fn csrf_of(app: &App, session: &str) -> String {
    let (_, html) = page(app, session, "/incidents");
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a csrf field")
        .to_string()
}

fn post_form(app: &App, session: &str, path: &str, body: &str) -> (u16, Option<String>, String) {
    let r = app
        .post(path)
        .header("cookie", session)
        .body("application/x-www-form-urlencoded", body.to_string())
        .send();
    (r.status, r.header("location"), r.text())
}

#[test]
fn signing_in_takes_a_token_and_the_forms_own_anti_forgery_value() {
    let app = App::start();
    // No session: every page leads to sign-in, keeping where it was going.
    let r = app.get("/runs?status=failed").send();
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location").as_deref(),
        Some("/login?next=%2Fruns%3Fstatus%3Dfailed")
    );
    // A sign-in without the form's value changes nothing.
    let (cookie, _) = login_form(&app);
    let forged = app
        .post("/login")
        .header("cookie", &format!("csmp_login={cookie}"))
        .body(
            "application/x-www-form-urlencoded",
            format!("token={}&csrf=nope", app.operator.secret),
        )
        .send();
    assert_eq!(forged.status, 403);
    assert!(forged.header("set-cookie").is_none());
    // A wrong token is said to be wrong, on the form.
    let (cookie, csrf) = login_form(&app);
    let wrong = app
        .post("/login")
        .header("cookie", &format!("csmp_login={cookie}"))
        .body(
            "application/x-www-form-urlencoded",
            format!("token=csmp_x_y&csrf={csrf}"),
        )
        .send();
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.text().contains("unknown or revoked"),
        "{}",
        wrong.text()
    );
    // An integration token only sends alerts.
    let (cookie, csrf) = login_form(&app);
    let integration = app
        .post("/login")
        .header("cookie", &format!("csmp_login={cookie}"))
        .body(
            "application/x-www-form-urlencoded",
            format!("token={}&csrf={csrf}", app.integration.secret),
        )
        .send();
    assert_eq!(integration.status, 403);
    // `next` goes to this site only.
    let (cookie, csrf) = login_form(&app);
    let away = app
        .post("/login")
        .header("cookie", &format!("csmp_login={cookie}"))
        .body(
            "application/x-www-form-urlencoded",
            format!(
                "token={}&csrf={csrf}&next=%2F%2Fevil.example",
                app.operator.secret
            ),
        )
        .send();
    assert_eq!(away.header("location").as_deref(), Some("/"));
    // Behind a TLS proxy the session cookie is for HTTPS only.
    let (cookie, csrf) = login_form(&app);
    let proxied = app
        .post("/login")
        .header("cookie", &format!("csmp_login={cookie}"))
        .header("x-forwarded-proto", "https")
        .body(
            "application/x-www-form-urlencoded",
            format!("token={}&csrf={csrf}", app.operator.secret),
        )
        .send();
    let session = proxied.header("set-cookie").expect("a session cookie");
    assert!(session.ends_with("; Secure"), "{session}");
    // Signed in, the overview shows.
    let session = sign_in(&app, &app.operator);
    let (status, html) = page(&app, &session, "/");
    assert_eq!(status, 200);
    assert!(
        html.contains("Overview") && html.contains("Sign out"),
        "{html}"
    );
}

#[test]
fn revoking_a_token_ends_its_sessions_and_signing_out_ends_one() {
    let app = App::start();
    let client = app.mint(Role::Client, Some(TENANT_B));
    let session = sign_in(&app, &client);
    assert_eq!(page(&app, &session, "/requests").0, 200);
    let revoked = app
        .delete(&format!("/v1/tokens/{}", client.id))
        .auth(&app.admin)
        .send();
    assert_eq!(revoked.status, 204);
    let r = app.get("/requests").header("cookie", &session).send();
    assert_eq!(r.status, 303, "a revoked token's session leads to sign-in");
    let operator = sign_in(&app, &app.operator);
    let csrf = csrf_of(&app, &operator);
    let (status, location, _) = post_form(&app, &operator, "/logout", &format!("csrf={csrf}"));
    assert_eq!((status, location.as_deref()), (303, Some("/login")));
    assert_eq!(app.get("/").header("cookie", &operator).send().status, 303);
}

#[test]
fn the_console_shows_and_does_what_the_api_lets_its_user() {
    let app = App::start();
    let ordered = app.order(&app.client_a, &json!({ "catalog_id": "steer" }));
    let run = s(&ordered, "run_id");
    app.wait_step(&app.operator, &run, "gate", "waiting");
    // Another tenant's run is "not found", word for word as a missing one.
    let stranger = sign_in(&app, &app.client_b);
    let (status, theirs) = page(&app, &stranger, &format!("/runs/{run}"));
    let (missing_status, missing) = page(&app, &stranger, "/runs/run-0000000000000000");
    assert_eq!((status, missing_status), (404, 404));
    assert_eq!(
        theirs.replace(&run, "ID"),
        missing.replace("run-0000000000000000", "ID"),
        "the same page for another tenant's run and a missing one"
    );
    let (_, list) = page(&app, &stranger, "/runs");
    assert!(!list.contains(&run), "another tenant's run is not listed");
    // A client may not steer runs: the API's refusal, shown; the run unchanged.
    let owner = sign_in(&app, &app.client_a);
    let (_, html) = page(&app, &owner, &format!("/runs/{run}"));
    assert!(
        html.contains("data-step=\"gate\" data-status=\"waiting\""),
        "{html}"
    );
    assert!(
        !html.contains("/do/cancel"),
        "no cancel button for a client"
    );
    let csrf = csrf_of(&app, &owner);
    let (status, _, refusal) = post_form(
        &app,
        &owner,
        &format!("/runs/{run}/do/cancel"),
        &format!("csrf={csrf}"),
    );
    assert_eq!(status, 403, "{refusal}");
    assert!(
        refusal.contains("needs one of: operator, admin"),
        "{refusal}"
    );
    // The operator approves and signals through the console; each change is audited as them.
    let operator = sign_in(&app, &app.operator);
    let csrf = csrf_of(&app, &operator);
    let (status, _, _) = post_form(
        &app,
        &operator,
        &format!("/runs/{run}/do/approve?step=gate"),
        "nothing=1",
    );
    assert_eq!(
        status, 403,
        "a form without its anti-forgery value is refused"
    );
    app.wait_step(&app.operator, &run, "gate", "waiting");
    let (status, location, text) = post_form(
        &app,
        &operator,
        &format!("/runs/{run}/do/approve?step=gate"),
        &format!("csrf={csrf}"),
    );
    assert_eq!(
        (status, location.as_deref()),
        (303, Some(format!("/runs/{run}").as_str())),
        "{text}"
    );
    app.wait_step(&app.operator, &run, "hear", "waiting");
    let (status, _, text) = post_form(
        &app,
        &operator,
        &format!("/runs/{run}/do/signal?name=go"),
        &format!("csrf={csrf}&payload=%7B%22word%22%3A%22yes%22%7D"),
    );
    assert_eq!(status, 303, "{text}");
    let done = app.wait_run(&app.operator, &run, "succeeded");
    assert_eq!(done["outputs"]["heard"], json!({"word": "yes"}));
    let audit = app
        .get("/v1/audit?limit=200")
        .auth(&app.admin)
        .send()
        .expect(200);
    let entries: Vec<&Value> = audit["items"].as_array().expect("items").iter().collect();
    let approved = entries
        .iter()
        .find(|e| e["path"] == json!(format!("/v1/runs/{run}/approvals/gate")))
        .expect("the approval is audited");
    assert_eq!(approved["actor"], json!(app.operator.id));
    assert_eq!(approved["status"], json!(200));
    // The event stream of the run page follows the run as the API's does.
    let (status, dag) = page(&app, &owner, &format!("/runs/{run}/live"));
    assert_eq!(status, 200);
    assert!(
        dag.contains("data-step=\"hear\" data-status=\"succeeded\""),
        "{dag}"
    );
}

#[test]
fn an_order_form_shows_each_refusal_on_its_field() {
    let app = App::start();
    let client = sign_in(&app, &app.client_a);
    let (status, form) = page(&app, &client, "/catalog/hello");
    assert_eq!(status, 200, "{form}");
    assert!(
        form.contains("name=\"times\"") && form.contains("max=\"10\""),
        "{form}"
    );
    let csrf = csrf_of(&app, &client);
    let (status, _, html) = post_form(
        &app,
        &client,
        "/catalog/hello",
        &format!("csrf={csrf}&who=me&times=99"),
    );
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("id=\"in-times-error\""), "{html}");
    assert!(!html.contains("id=\"in-who-error\""), "{html}");
    let requests = app
        .get("/v1/requests")
        .auth(&app.client_a)
        .send()
        .expect(200);
    assert_eq!(
        requests["items"],
        json!([]),
        "a refused order placed nothing"
    );
    // The form carries an idempotency key: the same form sent twice places one order.
    let key = html
        .split("name=\"key\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the refused form carries a fresh key")
        .to_string();
    let send = || {
        post_form(
            &app,
            &client,
            "/catalog/hello",
            &format!("csrf={csrf}&key={key}&who=me&times=2"),
        )
    };
    let (status, location, html) = send();
    assert_eq!(status, 303, "{html}");
    let location = location.expect("to the request");
    assert!(location.starts_with("/requests/req-"), "{location}");
    let (status, again, _) = send();
    assert_eq!((status, again.as_deref()), (303, Some(location.as_str())));
    let requests = app
        .get("/v1/requests")
        .auth(&app.client_a)
        .send()
        .expect(200);
    assert_eq!(requests["items"].as_array().map(Vec::len), Some(1));
    let (status, html) = page(&app, &client, &location);
    assert_eq!(status, 200);
    assert!(html.contains("data-status=\"awaiting_approval\""), "{html}");
}

#[test]
fn a_wide_fan_out_is_one_node_and_its_units_are_paged() {
    let app = App::start();
    let wide = "name: wide\nversion: 1\nsteps:\n  - id: first\n    uses: echo@^1\n    with: { n: 0 }\n  - id: fan\n    needs: [first]\n    for_each: \"{{ range 600 }}\"\n    uses: echo@^1\n    with: { n: \"{{ index }}\" }\n";
    let uploaded = app
        .put("/v1/workflows/wide")
        .auth(&app.operator)
        .body("application/yaml", wide)
        .send();
    assert!(uploaded.status < 300, "{}", uploaded.text());
    let started = app
        .post("/v1/runs")
        .auth(&app.operator)
        .json(&json!({"workflow": "wide", "inputs": {}}))
        .send()
        .expect(202);
    let run = s(&started, "id");
    app.wait_run(&app.operator, &run, "succeeded");
    let operator = sign_in(&app, &app.operator);
    let (status, html) = page(&app, &operator, &format!("/runs/{run}"));
    assert_eq!(status, 200);
    assert!(
        html.contains("600 of 600 done"),
        "the fan-out counts its items: {html}"
    );
    assert_eq!(
        html.matches("data-step=\"fan\"").count(),
        1,
        "one node for the fan-out"
    );
    let next = html
        .split("?units=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a link to the next units");
    let (status, second) = page(&app, &operator, &format!("/runs/{run}?units={next}"));
    assert_eq!(status, 200);
    assert!(
        second.contains("fan#599"),
        "the last item is on the second page"
    );
    assert!(second.contains("First units"), "{second}");
}
