//! Cron triggers on a [`ManualClock`](csmp::runtime::ManualClock): each scheduled instant fires
//! once, at its time and not a millisecond before, survives restarts without firing twice,
//! catches up on downtime with one fire only, and honours the overlap policy.

use serde_json::json;

use csmp::runtime::{Clock, Engine};
use csmp::store::{CronFire, RunRow, RunStatus};

use crate::runtime::{GUARD, HOUR, MS, engine_on, start};

/// Runs of `workflow`, oldest first.
async fn runs_of(engine: &Engine, workflow: &str) -> Vec<RunRow> {
    let mut runs: Vec<RunRow> = engine
        .store()
        .runs(1000)
        .await
        .expect("runs")
        .into_iter()
        .filter(|r| r.workflow == workflow)
        .collect();
    runs.sort_by_key(|r| r.created_at);
    runs
}

async fn last_fire(engine: &Engine, workflow: &str) -> CronFire {
    engine
        .store()
        .last_cron_fires()
        .await
        .expect("fires")
        .into_iter()
        .find(|f| f.workflow == workflow)
        .unwrap_or_else(|| panic!("{workflow} never fired"))
}

async fn finish(engine: &Engine, id: &str) -> RunStatus {
    tokio::time::timeout(GUARD, engine.wait(id))
        .await
        .expect("run ends")
        .expect("wait")
}

const HOURLY: &str = r#"
name: hourly
version: 1
inputs: { type: object, properties: { who: { type: string } } }
triggers:
  - cron: "0 0 * * * *"
    overlap: allow
    inputs: { who: cron }
steps:
  - id: greet
    uses: echo@^1
    with: { who: "{{ inputs.who }}" }
outputs:
  who: "{{ steps.greet.output.who }}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_fires_at_each_instant_and_once_after_a_gap() {
    let h = start(&[HOURLY]).await;
    // The clock starts exactly on an instant; a trigger fires only instants after it starts.
    let t0 = h.clock.now_ms();
    h.engine.sync().await.expect("turn");
    assert!(runs_of(&h.engine, "hourly").await.is_empty());
    h.advance_to_just_before(t0 + 3_600_000).await;
    assert!(
        runs_of(&h.engine, "hourly").await.is_empty(),
        "nothing a millisecond early"
    );
    h.clock.advance(MS);
    h.engine.sync().await.expect("turn");
    let runs = runs_of(&h.engine, "hourly").await;
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(
        (
            run.tenant.as_str(),
            run.requester.as_deref(),
            &run.inputs,
            run.version
        ),
        ("provider", Some("cron"), &json!({"who": "cron"}), 1)
    );
    assert_eq!(finish(&h.engine, &run.id).await, RunStatus::Succeeded);
    assert_eq!(h.outputs(&run.id).await, json!({"who": "cron"}));
    let fire = last_fire(&h.engine, "hourly").await;
    assert_eq!(
        (fire.scheduled_at, fire.run_id.as_deref()),
        (t0 + 3_600_000, Some(run.id.as_str()))
    );

    // Three instants pass in one jump: one fire, for the most recent of them.
    h.clock.advance(3 * HOUR);
    h.engine.sync().await.expect("turn");
    let runs = runs_of(&h.engine, "hourly").await;
    assert_eq!(runs.len(), 2, "no catch-up storm");
    assert_eq!(
        last_fire(&h.engine, "hourly").await.scheduled_at,
        t0 + 4 * 3_600_000
    );
    h.advance_to_just_before(t0 + 5 * 3_600_000).await;
    assert_eq!(runs_of(&h.engine, "hourly").await.len(), 2);
    h.clock.advance(MS);
    h.engine.sync().await.expect("turn");
    assert_eq!(runs_of(&h.engine, "hourly").await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_never_fire_an_instant_twice_and_downtime_costs_one_catch_up_fire() {
    let h = start(&[HOURLY]).await;
    let t0 = h.clock.now_ms();
    h.clock.advance(HOUR);
    h.engine.sync().await.expect("turn");
    let first = runs_of(&h.engine, "hourly").await;
    assert_eq!(first.len(), 1);
    h.engine.shutdown().await;

    // Restarted at the same instant: 01:00 was handled and is not fired again.
    let engine = engine_on(&h.path, &h.host, &h.defs, &h.clock).await;
    engine.sync().await.expect("turn");
    assert_eq!(runs_of(&engine, "hourly").await.len(), 1);
    assert_eq!(finish(&engine, &first[0].id).await, RunStatus::Succeeded);
    engine.shutdown().await;

    // Down from 01:00 to 06:30: 02:00 … 06:00 were missed; only 06:00 fires.
    h.clock.advance(5 * HOUR + HOUR / 2);
    let engine = engine_on(&h.path, &h.host, &h.defs, &h.clock).await;
    engine.sync().await.expect("turn");
    let runs = runs_of(&engine, "hourly").await;
    assert_eq!(runs.len(), 2, "{runs:#?}");
    let fire = last_fire(&engine, "hourly").await;
    assert_eq!(
        (fire.scheduled_at, fire.fired_at),
        (t0 + 6 * 3_600_000, h.clock.now_ms())
    );
    // Then the schedule goes on from 07:00.
    let next = t0 + 7 * 3_600_000;
    h.clock.advance(std::time::Duration::from_millis(
        u64::try_from(next - h.clock.now_ms() - 1).expect("ahead"),
    ));
    engine.sync().await.expect("turn");
    assert_eq!(runs_of(&engine, "hourly").await.len(), 2);
    h.clock.advance(MS);
    engine.sync().await.expect("turn");
    assert_eq!(runs_of(&engine, "hourly").await.len(), 3);
}

/// A workflow fired every hour whose runs last 90 minutes, so each fire overlaps the last.
fn overlapping(name: &str, overlap: &str) -> String {
    format!(
        r#"
name: {name}
version: 1
triggers:
  - cron: "0 0 * * * *"
    overlap: {overlap}
steps:
  - id: long
    wait: 90m
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overlap_policy_decides_what_a_fire_does_while_the_last_run_goes_on() {
    let skip = overlapping("skipper", "skip");
    let allow = overlapping("allower", "allow");
    let cancel = overlapping("canceller", "cancel_previous");
    let h = start(&[&skip, &allow, &cancel]).await;
    let t0 = h.clock.now_ms();
    h.clock.advance(HOUR);
    h.engine.sync().await.expect("turn");
    for name in ["skipper", "allower", "canceller"] {
        assert_eq!(runs_of(&h.engine, name).await.len(), 1, "{name} at 01:00");
    }

    // 02:00: every first run is still waiting (until 02:30).
    h.clock.advance(HOUR);
    h.engine.sync().await.expect("turn");
    let skipped = runs_of(&h.engine, "skipper").await;
    assert_eq!(skipped.len(), 1, "skip: no second run");
    let fire = last_fire(&h.engine, "skipper").await;
    assert_eq!(
        (fire.scheduled_at, fire.run_id.as_deref()),
        (t0 + 2 * 3_600_000, Some(skipped[0].id.as_str())),
        "the skipped instant is recorded; the last run started is still the first"
    );
    let allowed = runs_of(&h.engine, "allower").await;
    assert_eq!(allowed.len(), 2, "allow: a second run beside the first");
    assert!(allowed.iter().all(|r| r.status == RunStatus::Running));
    let cancelled = runs_of(&h.engine, "canceller").await;
    assert_eq!(cancelled.len(), 2);
    assert_eq!(
        finish(&h.engine, &cancelled[0].id).await,
        RunStatus::Cancelled
    );
    assert_eq!(cancelled[1].status, RunStatus::Running);

    // 02:30: the first runs end; 03:00: `skip` fires again.
    h.clock.advance(HOUR / 2);
    assert_eq!(
        finish(&h.engine, &skipped[0].id).await,
        RunStatus::Succeeded
    );
    assert_eq!(
        finish(&h.engine, &allowed[0].id).await,
        RunStatus::Succeeded
    );
    h.clock.advance(HOUR / 2);
    h.engine.sync().await.expect("turn");
    assert_eq!(runs_of(&h.engine, "skipper").await.len(), 2);
    assert_eq!(runs_of(&h.engine, "allower").await.len(), 3);
    let cancelled = runs_of(&h.engine, "canceller").await;
    assert_eq!(cancelled.len(), 3);
    assert_eq!(
        finish(&h.engine, &cancelled[1].id).await,
        RunStatus::Cancelled,
        "the 02:00 run was still waiting at 03:00"
    );
}

fn every(version: u32, cron: Option<&str>) -> String {
    let triggers = cron.map_or(String::new(), |c| {
        format!("triggers:\n  - cron: \"{c}\"\n    overlap: allow\n")
    });
    format!(
        "name: redefined\nversion: {version}\n{triggers}steps:\n  - id: greet\n    uses: echo@^1\n    with: {{ v: {version} }}\n"
    )
}

/// A version defined while the engine runs (as an upload over the API does) arms its triggers
/// at once and disarms those of the version it replaces; a version without triggers leaves
/// none armed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newly_defined_version_arms_its_triggers_and_disarms_the_old_ones() {
    let v1 = every(1, Some("0 0 * * * *"));
    let h = start(&[&v1]).await;
    let t0 = h.clock.now_ms();
    let versions = |runs: &[RunRow]| runs.iter().map(|r| r.version).collect::<Vec<_>>();
    h.clock.advance(HOUR);
    h.engine.sync().await.expect("turn");
    assert_eq!(versions(&runs_of(&h.engine, "redefined").await), [1]);

    // Version 2 fires every minute instead; version 1's hourly trigger is gone.
    let plan = |yaml: &str| {
        csmp::plan::validate_workflow(
            yaml.as_bytes(),
            csmp::plan::Env {
                plugins: &h.host.index(),
                workflows: None,
            },
        )
        .expect("valid")
    };
    h.engine
        .define(plan(&every(2, Some("0 * * * * *"))))
        .await
        .expect("defined");
    h.advance_to_just_before(t0 + 3_600_000 + 60_000).await;
    assert_eq!(versions(&runs_of(&h.engine, "redefined").await), [1]);
    h.clock.advance(MS);
    h.engine.sync().await.expect("turn");
    assert_eq!(versions(&runs_of(&h.engine, "redefined").await), [1, 2]);
    // An hour later: one fire of version 2 (one catch-up after the jump), none of version 1.
    h.clock.advance(HOUR);
    h.engine.sync().await.expect("turn");
    assert_eq!(versions(&runs_of(&h.engine, "redefined").await), [1, 2, 2]);

    // A newest version without triggers disarms; defining an older one again arms nothing.
    h.engine
        .define(plan(&every(3, None)))
        .await
        .expect("defined");
    h.engine
        .define(plan(&every(2, Some("* * * * * *"))))
        .await
        .expect("defined");
    h.clock.advance(HOUR);
    h.engine.sync().await.expect("turn");
    assert_eq!(versions(&runs_of(&h.engine, "redefined").await), [1, 2, 2]);
}
