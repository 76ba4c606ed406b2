//! `console`: how long the console's pages take on a database of 10,000 runs. A real
//! `csmp serve` is filled with orders over HTTP (each awaited to its end), then an operator
//! and a client sign in as a browser would (the sign-in form, its cookie, the session cookie)
//! and every page is fetched 30 times. Each page's figure is the server's own time, from its
//! `Server-Timing` header; the slowest page's p99 as the client saw it over loopback is beside
//! it.

use std::time::Instant;

use anyhow::{Context as _, bail};

use super::api::{Server, agent, create_token, orders_in_flight};
use super::report::{Report, Target, quantile};
use super::{Ctx, chain_yaml};

/// Fetches of each page that count (after one that warms it).
const FETCHES: usize = 30;

/// Who looks at a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Viewer {
    Operator,
    Client,
}

/// The pages: figure key, path (`{run}` is a run's id), who.
const PAGES: &[(&str, &str, Viewer)] = &[
    ("overview_p50_ms", "/", Viewer::Operator),
    ("runs_p50_ms", "/runs", Viewer::Operator),
    (
        "runs_filtered_p50_ms",
        "/runs?status=succeeded&workflow=console",
        Viewer::Operator,
    ),
    ("run_p50_ms", "/runs/{run}", Viewer::Operator),
    ("approvals_p50_ms", "/approvals", Viewer::Operator),
    ("incidents_p50_ms", "/incidents", Viewer::Operator),
    ("alerts_p50_ms", "/alerts", Viewer::Operator),
    ("workflows_p50_ms", "/workflows", Viewer::Operator),
    ("workflow_p50_ms", "/workflows/console", Viewer::Operator),
    ("catalog_p50_ms", "/catalog", Viewer::Operator),
    ("portal_p50_ms", "/", Viewer::Client),
    ("order_form_p50_ms", "/catalog/console", Viewer::Client),
    ("requests_p50_ms", "/requests", Viewer::Client),
    ("client_run_p50_ms", "/runs/{run}", Viewer::Client),
    ("usage_p50_ms", "/usage", Viewer::Client),
    ("status_p50_ms", "/portal/status", Viewer::Client),
];

/// Signs in with `token` as a browser does; the session cookie (`csmp_session=…`).
fn sign_in(agent: &ureq::Agent, base: &str, token: &str) -> anyhow::Result<String> {
    let mut form = agent.get(format!("{base}/login")).call()?;
    let login = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("csmp_login="))
        .and_then(|c| c.split(';').next())
        .context("the sign-in form set no csmp_login cookie")?
        .to_string();
    let html = form.body_mut().read_to_string()?;
    if !html.contains(&login) {
        bail!("the sign-in form does not carry its cookie's value");
    }
    let body = format!("token={token}&csrf={login}&next=%2F");
    let signed = agent
        .post(format!("{base}/login"))
        .header("Cookie", &format!("csmp_login={login}"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(body)?;
    signed
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("csmp_session="))
        .and_then(|c| c.split(';').next())
        .map(str::to_string)
        .with_context(|| format!("signing in answered {} without a session", signed.status()))
}

/// `console`: every page's time on 10,000 runs.
pub(super) async fn pages(ctx: &Ctx) -> anyhow::Result<Report> {
    let ctx = ctx.clone();
    tokio::task::spawn_blocking(move || pages_blocking(&ctx)).await?
}

fn pages_blocking(ctx: &Ctx) -> anyhow::Result<Report> {
    let runs = ctx.scaled(10_000);
    let server = Server::start(&ctx.dir, "console", &chain_yaml("console", 1))?;
    let operator = create_token(&server.db, &["--role", "operator"])?;
    // Fill the database: `runs` orders, each run to its end.
    let t0 = Instant::now();
    orders_in_flight(&server, "console", runs).context("filling the database for the console")?;
    let fill_s = t0.elapsed().as_secs_f64();
    let agent = agent();
    let as_operator = sign_in(&agent, &server.base, &operator)?;
    let as_client = sign_in(&agent, &server.base, &server.token)?;
    let mut list = agent
        .get(format!("{}/v1/runs?limit=1", server.base))
        .header("Authorization", &format!("Bearer {}", server.token))
        .call()?;
    let listed: serde_json::Value = serde_json::from_str(&list.body_mut().read_to_string()?)?;
    let run = listed["items"][0]["id"]
        .as_str()
        .context("no run to show")?
        .to_string();
    let mut r = Report::new(
        "console",
        format!(
            "each console page fetched {FETCHES} times with a session cookie, on a database of {runs} runs; the server's time (Server-Timing)"
        ),
    );
    r.add("runs", runs as f64, "").add("fill_s", fill_s, "s");
    let mut slowest: f64 = 0.0;
    let mut slowest_client: f64 = 0.0;
    for (key, path, viewer) in PAGES {
        let cookie = match viewer {
            Viewer::Operator => &as_operator,
            Viewer::Client => &as_client,
        };
        let url = format!("{}{}", server.base, path.replace("{run}", &run));
        let mut times = Vec::with_capacity(FETCHES);
        let mut client = Vec::with_capacity(FETCHES);
        for i in 0..=FETCHES {
            let t = Instant::now();
            let mut page = agent.get(&url).header("Cookie", cookie).call()?;
            let status = page.status();
            let server_ms = page
                .headers()
                .get("server-timing")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split("dur=").nth(1))
                .and_then(|d| d.parse::<f64>().ok())
                .with_context(|| format!("{path} answered without Server-Timing"))?;
            let html = page.body_mut().read_to_string()?;
            if status != 200 || !html.contains("Sign out") {
                bail!(
                    "{path} answered {status} to a signed-in {viewer:?}: {}",
                    html.chars().take(300).collect::<String>()
                );
            }
            if i > 0 {
                client.push(t.elapsed().as_secs_f64() * 1000.0);
                times.push(server_ms);
            }
        }
        times.sort_by(f64::total_cmp);
        client.sort_by(f64::total_cmp);
        slowest = slowest.max(quantile(&times, 0.99));
        slowest_client = slowest_client.max(quantile(&client, 0.99));
        r.add(key, quantile(&times, 0.5), "ms");
    }
    r.check("slowest_page_p99_ms", slowest, "ms", Target::AtMost(50.0))
        .add("slowest_page_p99_client_ms", slowest_client, "ms");
    Ok(r)
}
