//! The store against a real SQLite file and a real PostgreSQL server: every test runs on both
//! (`<test>::sqlite`, `<test>::postgres`).

use serde_json::json;

use super::*;
use crate::plan::UnitKey;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy)]
enum On {
    Sqlite,
    Postgres,
}

/// A new, empty database: a SQLite file in a temporary directory, or a database of its own on
/// the test process's PostgreSQL server.
struct Fresh {
    _dir: tempfile::TempDir,
    location: String,
}

impl Fresh {
    async fn new(on: On) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let location = match on {
            On::Sqlite => dir.path().join("csmp.db").display().to_string(),
            On::Postgres => crate::testing::postgres().await.expect("test PostgreSQL"),
        };
        Self {
            _dir: dir,
            location,
        }
    }

    /// Another handle on the same database (another process, or a restart).
    async fn open(&self) -> Result<Store, StoreError> {
        Store::open_location(&self.location, StoreOptions::default()).await
    }
}

async fn fresh(on: On) -> (Fresh, Store) {
    let db = Fresh::new(on).await;
    let store = db.open().await.expect("opens");
    (db, store)
}

/// Runs each named test, `async fn name(on: On)`, once per backend.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() -> Result<(), super::StoreError> {
                super::$name(super::On::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() -> Result<(), super::StoreError> {
                super::$name(super::On::Postgres).await
            }
        }
    )*};
}

fn run(id: &str, status: RunStatus) -> RunRow {
    RunRow {
        id: id.into(),
        workflow: "demo".into(),
        version: 1,
        tenant: "acme".into(),
        requester: Some("alice".into()),
        inputs: json!({"n": 2}),
        status,
        outputs: None,
        error: None,
        parent_run: None,
        parent_step: None,
        created_at: 1,
        updated_at: 1,
        finished_at: None,
        lease_owner: None,
        lease_until: None,
        lease_epoch: 0,
        blocked: None,
        cancel_compensates: true,
        paused_at: None,
    }
}

fn step(run_id: &str, key: &str, status: StepStatus) -> StepRow {
    StepRow {
        run_id: run_id.into(),
        key: key.parse().expect("a unit key"),
        position: 0,
        status,
        attempt: 1,
        output: Some(json!({"ok": true})),
        error: None,
        state: None,
        wake_at: None,
        started_at: Some(5),
        finished_at: None,
    }
}

async fn workflow_versions_are_immutable(on: On) -> Result<(), StoreError> {
    let (_dir, store) = fresh(on).await;
    assert_eq!(
        store
            .put_workflow("demo", 1, "name: demo\n", 1, None)
            .await?,
        PutWorkflow::Inserted
    );
    assert_eq!(
        store
            .put_workflow("demo", 1, "name: demo\n", 2, None)
            .await?,
        PutWorkflow::Unchanged
    );
    let err = store
        .put_workflow("demo", 1, "name: demo\n# changed\n", 3, None)
        .await
        .expect_err("conflict");
    assert!(
        matches!(err, StoreError::Conflict(ref m) if m.contains("bump `version`")),
        "{err}"
    );
    assert_eq!(
        store
            .put_workflow("demo", 2, "name: demo\n# changed\n", 3, None)
            .await?,
        PutWorkflow::Inserted
    );
    let all = store.workflows().await?;
    assert_eq!(all.iter().map(|w| w.version).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(all[0].hash, hex_sha256(b"name: demo\n"));
    Ok(())
}

async fn a_batch_is_one_transaction_and_survives_reopening(on: On) -> Result<(), StoreError> {
    let db = Fresh::new(on).await;
    {
        let store = db.open().await?;
        let before = store.commits();
        store
            .commit(&[
                Write::Run(run("r1", RunStatus::Running)),
                Write::Step(step("r1", "a", StepStatus::Succeeded)),
                Write::Step(step("r1", "b#0", StepStatus::Running)),
                Write::Step(step("r1", "b#1", StepStatus::Running)),
            ])
            .await?;
        assert_eq!(store.commits() - before, 1, "four writes, one commit");
        let mut updated = step("r1", "b#0", StepStatus::Succeeded);
        updated.attempt = 2;
        store.commit(&[Write::Step(updated)]).await?;
    }
    let store = db.open().await?;
    assert_eq!(store.run("r1").await?, Some(run("r1", RunStatus::Running)));
    let steps = store.steps("r1").await?;
    assert_eq!(
        steps
            .iter()
            .map(|s| (s.key.to_string(), s.status, s.attempt))
            .collect::<Vec<_>>(),
        [
            ("a".to_string(), StepStatus::Succeeded, 1),
            ("b#0".to_string(), StepStatus::Succeeded, 2),
            ("b#1".to_string(), StepStatus::Running, 1)
        ]
    );
    assert_eq!(steps[0].output, Some(json!({"ok": true})));
    assert_eq!(store.run("nope").await?, None);
    Ok(())
}

async fn leases_keep_runs_to_one_owner_until_they_expire(on: On) -> Result<(), StoreError> {
    let (_dir, store) = fresh(on).await;
    store
        .commit(&[
            Write::Run(run("r1", RunStatus::Running)),
            Write::Run(run("r2", RunStatus::Failing)),
            Write::Run(run("done", RunStatus::Succeeded)),
        ])
        .await?;
    let mine = store
        .claim_unfinished("p1", 1_000, 10_000, Claim::Restart)
        .await?;
    assert_eq!(
        mine.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["r1", "r2"]
    );
    assert!(
        store
            .claim_unfinished("p2", 5_000, 10_000, Claim::Restart)
            .await?
            .is_empty(),
        "p1's lease holds"
    );
    store.renew_leases("p1", 20_000).await?;
    assert!(
        store
            .claim_unfinished("p2", 15_000, 10_000, Claim::Restart)
            .await?
            .is_empty(),
        "renewed"
    );
    let taken = store
        .claim_unfinished("p2", 25_000, 10_000, Claim::Restart)
        .await?;
    assert_eq!(taken.len(), 2, "an expired lease is taken over");
    assert_eq!(taken[0].lease_owner.as_deref(), Some("p2"));
    Ok(())
}

async fn signals_wait_until_a_step_takes_them(on: On) -> Result<(), StoreError> {
    let (_dir, store) = fresh(on).await;
    let id = store.reserve_ids("signals", 1).await?.start;
    store
        .commit(&[Write::Signal(SignalRow {
            id,
            run_id: "r1".into(),
            name: "ack".into(),
            payload: json!({"by": "bob"}),
            created_at: 3,
        })])
        .await?;
    let pending = store.pending_signals("r1").await?;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].payload, json!({"by": "bob"}));
    store
        .commit(&[Write::ConsumeSignal {
            run_id: "r1".into(),
            id,
            by: "ack-1".into(),
        }])
        .await?;
    assert!(store.pending_signals("r1").await?.is_empty());
    Ok(())
}

async fn incidents_round_trip(on: On) -> Result<(), StoreError> {
    let (_dir, store) = fresh(on).await;
    let mut inc = IncidentRow {
        id: "inc-1".into(),
        run_id: Some("r1".into()),
        tenant: "acme".into(),
        title: "High CPU".into(),
        severity: "sev3".into(),
        service: Some("web".into()),
        status: "triggered".into(),
        timeline: json!([{"at": 1, "note": "opened"}]),
        details: json!({ "impact": "slow pages" }),
        created_at: 1,
        updated_at: 1,
    };
    store
        .commit(&[Write::Incident {
            row: inc.clone(),
            by_run: None,
        }])
        .await?;
    inc.status = "resolved".into();
    inc.updated_at = 9;
    store
        .commit(&[Write::Incident {
            row: inc.clone(),
            by_run: None,
        }])
        .await?;
    assert_eq!(store.incident("inc-1").await?, Some(inc));
    assert_eq!(store.incidents().await?.len(), 1);
    Ok(())
}

async fn a_cron_instant_is_claimed_once_with_its_run(on: On) -> Result<(), StoreError> {
    let (_dir, store) = fresh(on).await;
    let fire = |at: i64, run_id: Option<&str>| CronFire {
        workflow: "demo".into(),
        trigger: 0,
        scheduled_at: at,
        fired_at: at + 7,
        run_id: run_id.map(Into::into),
    };
    let first = run("r1", RunStatus::Running);
    assert!(
        store
            .claim_cron_fire(&fire(1000, Some("r1")), Some(&first))
            .await?
    );
    assert!(
        store.run("r1").await?.is_some(),
        "the run is written with its fire"
    );
    // The same instant again, from a restart or another process: refused, nothing written.
    let again = run("r2", RunStatus::Running);
    assert!(
        !store
            .claim_cron_fire(&fire(1000, Some("r2")), Some(&again))
            .await?
    );
    assert!(store.run("r2").await?.is_none());
    // A skipped instant is recorded without a run; the last run started is still r1.
    assert!(store.claim_cron_fire(&fire(2000, None), None).await?);
    assert_eq!(store.last_cron_fires().await?, [fire(2000, Some("r1"))]);
    Ok(())
}

#[test]
fn batches_split_into_few_statement_shapes() {
    let sizes = |n: usize| -> Vec<usize> {
        let v: Vec<u32> = (0..n as u32).collect();
        rows::chunks(&v).map(<[u32]>::len).collect()
    };
    assert_eq!(sizes(0), Vec::<usize>::new());
    assert_eq!(sizes(1), [1]);
    assert_eq!(sizes(7), [4, 2, 1]);
    assert_eq!(sizes(300), [128, 128, 32, 8, 4]);
}

async fn a_large_batch_of_mixed_writes_lands_in_one_commit(on: On) -> Result<(), StoreError> {
    let (_dir, store) = fresh(on).await;
    let mut batch = Vec::new();
    for r in 0..150 {
        batch.push(Write::Run(run(&format!("r{r}"), RunStatus::Running)));
    }
    for r in 0..150 {
        for k in 0..3 {
            batch.push(Write::Step(step(
                &format!("r{r}"),
                &format!("s{k}"),
                StepStatus::Running,
            )));
        }
    }
    // The same step twice in one batch: the later write wins.
    batch.push(Write::Step(step("r0", "s0", StepStatus::Succeeded)));
    let before = store.commits();
    store.commit(&batch).await?;
    assert_eq!(store.commits(), before + 1);
    // Updates of rows already stored, in a second batch.
    let mut done = run("r7", RunStatus::Succeeded);
    done.outputs = Some(json!({"x": [1, 2]}));
    store.commit(&[Write::Run(done.clone())]).await?;
    assert_eq!(store.run("r7").await?, Some(done));
    let census = store.census().await?;
    assert_eq!(census.runs.get("running"), Some(&149));
    assert_eq!(census.runs.get("succeeded"), Some(&1));
    assert_eq!(census.steps.get("running"), Some(&449));
    assert_eq!(census.steps.get("succeeded"), Some(&1));
    assert_eq!(census.unfinished_runs(), 149);
    let steps = store.steps("r149").await?;
    assert_eq!(
        steps,
        vec![
            step("r149", "s0", StepStatus::Running),
            step("r149", "s1", StepStatus::Running),
            step("r149", "s2", StepStatus::Running),
        ]
    );
    Ok(())
}

async fn recovery_reads_the_leased_runs_steps_and_signals_at_once(
    on: On,
) -> Result<(), StoreError> {
    let (_dir, store) = fresh(on).await;
    let mut done = run("done", RunStatus::Succeeded);
    done.lease_owner = Some("me".into());
    let mut other = run("other", RunStatus::Running);
    other.lease_owner = Some("them".into());
    other.lease_until = Some(i64::MAX);
    let signal = |id: i64, run_id: &str| {
        Write::Signal(SignalRow {
            id,
            run_id: run_id.into(),
            name: "go".into(),
            payload: json!(id),
            created_at: id,
        })
    };
    store
        .commit(&[
            Write::Run(run("a", RunStatus::Running)),
            Write::Run(run("b", RunStatus::Failing)),
            Write::Run(done),
            Write::Run(other),
            Write::Step(step("a", "s1", StepStatus::Succeeded)),
            Write::Step(step("a", "s2", StepStatus::Running)),
            Write::Step(step("b", "s1", StepStatus::Failed)),
            Write::Step(step("done", "s1", StepStatus::Succeeded)),
            Write::Step(step("other", "s1", StepStatus::Running)),
            signal(1, "a"),
            signal(2, "other"),
            signal(3, "b"),
            signal(4, "a"),
            Write::ConsumeSignal {
                run_id: "a".into(),
                id: 4,
                by: "s2".into(),
            },
        ])
        .await?;
    let claimed = store
        .claim_unfinished("me", 10, 1_000, Claim::Restart)
        .await?;
    assert_eq!(
        claimed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    let ids: Vec<String> = claimed.iter().map(|r| r.id.clone()).collect();
    let keys: Vec<(String, String)> = store
        .steps_of_runs(&ids)
        .await?
        .into_iter()
        .map(|s| (s.run_id, s.key.to_string()))
        .collect();
    let want = [("a", "s1"), ("a", "s2"), ("b", "s1")];
    assert_eq!(
        keys,
        want.map(|(r, k)| (r.to_string(), k.to_string())).to_vec()
    );
    let signals: Vec<i64> = store
        .pending_signals_of_runs(&ids)
        .await?
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(signals, [1, 3]);
    Ok(())
}

fn key(text: &str) -> UnitKey {
    UnitKey::parse(text).expect("a unit key")
}

/// A failed first attempt with a log.
fn attempt(run: &str, unit: &str, n: u32) -> AttemptRow {
    AttemptRow {
        run_id: run.into(),
        key: key(unit),
        attempt: n,
        started_at: 10,
        finished_at: 20,
        outcome: AttemptOutcome::Failed,
        kind: Some("retryable".into()),
        error: Some("503".into()),
        log: "[info] calling\n".into(),
    }
}

async fn a_process_whose_lease_was_taken_over_writes_nothing_more(
    on: On,
) -> Result<(), StoreError> {
    let (_dir, store) = fresh(on).await;
    store
        .commit(&[
            Write::Run(run("r1", RunStatus::Running)),
            Write::Run(run("r2", RunStatus::Running)),
            Write::Step(step("r1", "a", StepStatus::Running)),
        ])
        .await?;
    let old = store
        .claim_unfinished("old", 0, 1_000, Claim::Restart)
        .await?;
    let fence_of = |owner: &str, runs: &[RunRow]| Fence {
        owner: owner.into(),
        epochs: runs.iter().map(|r| (r.id.clone(), r.lease_epoch)).collect(),
    };
    let old_fence = fence_of("old", &old);
    // r1's lease runs out and another process takes it; r2's does not (it was renewed).
    store.renew_leases("old", 5_000).await?;
    db::query("UPDATE runs SET lease_until = 0 WHERE id = 'r1'")
        .execute(&store.db)
        .await?;
    let new = store
        .claim_unfinished("new", 2_000, 1_000, Claim::Adopt)
        .await?;
    assert_eq!(
        new.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["r1"]
    );
    assert!(
        new[0].lease_epoch > old[0].lease_epoch,
        "each claim bumps the epoch"
    );

    // The old process's batch: a finished step and run for r1, a step for r2, a signal and an
    // incident for r1. Only r2's write lands, and r1 is named as taken over.
    let mut done = step("r1", "a", StepStatus::Succeeded);
    done.output = Some(json!({"stale": true}));
    let mut finished = old[0].clone();
    finished.status = RunStatus::Succeeded;
    let lost = store
        .commit_fenced(
            &[
                Write::Run(finished),
                Write::Step(done),
                Write::Step(step("r2", "b", StepStatus::Running)),
                Write::Attempt(attempt("r1", "a", 1)),
                Write::Attempt(attempt("r2", "b", 1)),
                Write::Signal(SignalRow {
                    id: 1,
                    run_id: "r1".into(),
                    name: "go".into(),
                    payload: json!(null),
                    created_at: 1,
                }),
            ],
            &old_fence,
        )
        .await?;
    assert_eq!(lost, ["r1"]);
    let r1 = store.run("r1").await?.expect("r1");
    assert_eq!(
        (r1.status, r1.lease_owner.as_deref()),
        (RunStatus::Running, Some("new"))
    );
    let steps = store.steps("r1").await?;
    assert_eq!(
        steps[0].status,
        StepStatus::Running,
        "the stale step was not written"
    );
    assert!(store.pending_signals("r1").await?.is_empty());
    assert!(
        store.attempts("r1", &key("a")).await?.is_empty(),
        "the stale attempt was not written"
    );
    assert_eq!(
        store.steps("r2").await?.len(),
        1,
        "the held run's write landed"
    );
    assert_eq!(
        store.attempts("r2", &key("b")).await?,
        [attempt("r2", "b", 1)]
    );

    // The new owner writes under its own epoch; the old one's release leaves r1 alone.
    let lost = store
        .commit_fenced(
            &[Write::Step(step("r1", "a", StepStatus::Succeeded))],
            &fence_of("new", &new),
        )
        .await?;
    assert!(lost.is_empty());
    store.release_leases(&old_fence).await?;
    assert_eq!(
        store.run("r1").await?.expect("r1").lease_owner.as_deref(),
        Some("new")
    );
    assert_eq!(store.run("r2").await?.expect("r2").lease_owner, None);
    // Adopting never re-claims one's own runs; a restart does.
    assert!(
        store
            .claim_unfinished("new", 2_500, 1_000, Claim::Adopt)
            .await?
            .iter()
            .all(|r| r.id != "r1")
    );
    let again = store
        .claim_unfinished("new", 2_500, 1_000, Claim::Restart)
        .await?;
    assert!(
        again
            .iter()
            .any(|r| r.id == "r1" && r.lease_epoch > new[0].lease_epoch)
    );
    Ok(())
}

async fn id_blocks_never_overlap_across_handles(on: On) -> Result<(), StoreError> {
    let (dir, one) = fresh(on).await;
    let two = dir.open().await?;
    let a = one.reserve_ids("signals", 64).await?;
    let b = two.reserve_ids("signals", 64).await?;
    let c = one.reserve_ids("signals", 1).await?;
    assert_eq!(
        (a.end - a.start, b.end - b.start, c.end - c.start),
        (64, 64, 1)
    );
    assert!(a.end <= b.start && b.end <= c.start, "{a:?} {b:?} {c:?}");
    Ok(())
}

on_both!(
    workflow_versions_are_immutable,
    a_batch_is_one_transaction_and_survives_reopening,
    leases_keep_runs_to_one_owner_until_they_expire,
    signals_wait_until_a_step_takes_them,
    incidents_round_trip,
    a_cron_instant_is_claimed_once_with_its_run,
    a_large_batch_of_mixed_writes_lands_in_one_commit,
    recovery_reads_the_leased_runs_steps_and_signals_at_once,
    a_process_whose_lease_was_taken_over_writes_nothing_more,
    id_blocks_never_overlap_across_handles,
);
