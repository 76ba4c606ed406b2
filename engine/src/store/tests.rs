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
        partition: 0,
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

/// `runs` placed in partitions.
fn run_in(id: &str, status: RunStatus, partition: i64) -> RunRow {
    RunRow {
        partition,
        ..run(id, status)
    }
}

async fn partitions_are_held_by_one_process_until_their_lease_runs_out(
    on: On,
) -> Result<(), StoreError> {
    let (_dir, store) = fresh(on).await;
    assert_eq!(store.partition_count().await?, 64);
    let mine = store
        .claim_partitions("p1", 1_000, 10_000, 40, Claim::Free)
        .await?;
    assert_eq!(mine.len(), 40);
    assert_eq!(
        mine[0],
        Lease {
            partition: 0,
            epoch: 1
        }
    );
    let theirs = store
        .claim_partitions("p2", 5_000, 10_000, 40, Claim::Free)
        .await?;
    assert_eq!(
        theirs.iter().map(|l| l.partition).collect::<Vec<_>>(),
        (40..64).collect::<Vec<_>>(),
        "p1's leases hold; only the free ones are taken"
    );
    // p1 renews; p2's leases run out and p1 takes them over under new epochs.
    let held = store.renew_partitions("p1", &mine, 20_000).await?;
    assert_eq!(held, mine);
    let taken = store
        .claim_partitions("p1", 16_000, 10_000, 64, Claim::Free)
        .await?;
    assert_eq!(taken.len(), 24);
    assert!(taken.iter().all(|l| l.epoch == 2), "{taken:?}");
    assert!(
        store
            .renew_partitions("p2", &theirs, 30_000)
            .await?
            .is_empty(),
        "p2 renews nothing it lost"
    );
    // A restart under p2's name takes back nothing it lost; under p1's, all of p1's at once.
    assert!(
        store
            .claim_partitions("p2", 17_000, 10_000, 64, Claim::Own)
            .await?
            .is_empty()
    );
    let back = store
        .claim_partitions("p1", 17_000, 10_000, 64, Claim::Own)
        .await?;
    assert_eq!(back.len(), 64);
    // Released partitions are free at once.
    store.release_partitions("p1", &back[..10]).await?;
    let free = store
        .claim_partitions("p2", 17_500, 10_000, 64, Claim::Free)
        .await?;
    assert_eq!(free.len(), 10);
    // A stale lease (an old epoch) releases nothing.
    store.release_partitions("p1", &mine[10..20]).await?;
    assert_eq!(
        store
            .claim_partitions("p2", 17_500, 10_000, 64, Claim::Free)
            .await?
            .len(),
        0
    );
    Ok(())
}

async fn members_count_only_live_executors(on: On) -> Result<(), StoreError> {
    let (_dir, store) = fresh(on).await;
    store.heartbeat("a", "all", 1_000).await?;
    store.heartbeat("b", "executor", 5_000).await?;
    store.heartbeat("c", "api", 5_000).await?;
    store.heartbeat("d", "run", 5_000).await?;
    assert_eq!(store.live_executors(0).await?, 2);
    assert_eq!(store.live_executors(2_000).await?, 1, "a is not heard from");
    store.heartbeat("a", "all", 6_000).await?;
    assert_eq!(store.live_executors(2_000).await?, 2);
    store.leave("b").await?;
    assert_eq!(store.live_executors(0).await?, 1);
    let names: Vec<String> = store
        .members()
        .await?
        .into_iter()
        .map(|m| m.owner)
        .collect();
    assert_eq!(names, ["a", "c", "d"]);
    assert_eq!(
        store.forget_members(5_500).await?,
        2,
        "c and d are long gone"
    );
    Ok(())
}

async fn private_partitions_outlive_their_process(on: On) -> Result<(), StoreError> {
    let (_dir, store) = fresh(on).await;
    let mine = store.new_private_partition("run-1", 0, 1_000).await?;
    assert_eq!(
        mine,
        Lease {
            partition: 64,
            epoch: 1
        }
    );
    assert_eq!(
        store
            .new_private_partition("run-2", 0, 1_000)
            .await?
            .partition,
        65
    );
    assert_eq!(
        store.partition_count().await?,
        64,
        "private ones are not shared"
    );
    store
        .commit(&[Write::Run(run_in("r1", RunStatus::Running, 64))])
        .await?;
    // Held by a live `csmp run`: nobody adopts it; once its lease runs out, a service does
    // (65 has nothing to do).
    assert!(
        store
            .adopt_private_partitions("svc", 500, 1_000)
            .await?
            .is_empty()
    );
    let adopted = store.adopt_private_partitions("svc", 2_000, 1_000).await?;
    assert_eq!(
        adopted,
        [Lease {
            partition: 64,
            epoch: 2
        }]
    );
    assert_eq!(
        store.unfinished_runs_in(&[64]).await?.len(),
        1,
        "its run is there to take"
    );
    // Given back only once its runs are over.
    assert!(
        store
            .release_idle_private("svc", &adopted)
            .await?
            .is_empty()
    );
    store
        .commit(&[Write::Run(run_in("r1", RunStatus::Succeeded, 64))])
        .await?;
    assert_eq!(store.release_idle_private("svc", &adopted).await?, [64]);
    assert!(
        store.partitions().await?.iter().all(|p| p.id != 64),
        "and forgotten"
    );
    // A command for one of its runs (a retry) makes it again, for a service to adopt.
    store
        .commit(&[Write::Inbox {
            row: InboxRow {
                id: "cmd-1".into(),
                partition: 64,
                command: "{}".into(),
                sender: "svc".into(),
                created_at: 3_000,
            },
            by_run: None,
        }])
        .await?;
    assert_eq!(
        store.adopt_private_partitions("svc", 3_000, 1_000).await?,
        [Lease {
            partition: 64,
            epoch: 1
        }]
    );
    // A command written for a private partition deleted at the same moment is not stranded:
    // the partition is made again, held, when services look for work.
    db::query("DELETE FROM partitions WHERE id = 64")
        .execute(&store.db)
        .await?;
    assert_eq!(
        store.adopt_private_partitions("svc", 4_000, 1_000).await?,
        [Lease {
            partition: 64,
            epoch: 1
        }]
    );
    Ok(())
}

async fn inbox_commands_are_answered_by_the_holder_only(on: On) -> Result<(), StoreError> {
    let (_dir, store) = fresh(on).await;
    let held = store
        .claim_partitions("holder", 0, 10_000, 64, Claim::Free)
        .await?;
    let command = |id: &str, partition: i64| Write::Inbox {
        row: InboxRow {
            id: id.into(),
            partition,
            command: format!("{{\"n\": \"{id}\"}}"),
            sender: "api".into(),
            created_at: 1,
        },
        by_run: None,
    };
    store
        .commit(&[command("c1", 3), command("c2", 3), command("c3", 9)])
        .await?;
    let open = store.inbox_open(&[3], 10).await?;
    assert_eq!(
        open.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["c1", "c2"]
    );
    let fence = Fence {
        owner: "holder".into(),
        held: held.iter().map(|l| (l.partition, l.epoch)).collect(),
        runs: Default::default(),
    };
    let answer = |id: &str, answer: Option<&str>| Write::Answer {
        id: id.into(),
        partition: 3,
        answer: answer.map(Into::into),
        at: 5,
    };
    let lost = store
        .commit_fenced(
            &[answer("c1", Some("{\"ok\":1}")), answer("c2", None)],
            &fence,
        )
        .await?;
    assert!(lost.is_empty());
    assert!(store.inbox_open(&[3], 10).await?.is_empty());
    assert_eq!(
        store
            .inbox_answers(&["c1".into(), "c2".into(), "c3".into()])
            .await?,
        [("c1".to_string(), "{\"ok\":1}".to_string())]
    );
    // A process that does not hold the partition answers nothing.
    let stranger = Fence {
        owner: "stranger".into(),
        held: [(9, 1)].into(),
        runs: Default::default(),
    };
    let lost = store
        .commit_fenced(
            &[Write::Answer {
                id: "c3".into(),
                partition: 9,
                answer: Some("{}".into()),
                at: 6,
            }],
            &stranger,
        )
        .await?;
    assert_eq!(lost, [9]);
    assert_eq!(store.inbox_open(&[9], 10).await?.len(), 1);
    store.inbox_delete(&["c1".into()]).await?;
    assert!(store.inbox_answers(&["c1".into()]).await?.is_empty());
    assert_eq!(store.inbox_sweep(10).await?, 0, "c2 is gone, c3 unanswered");
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
        partition: 7,
    };
    store
        .commit(&[Write::Incident {
            row: inc.clone(),
            by_run: None,
            opened: false,
        }])
        .await?;
    inc.status = "resolved".into();
    inc.updated_at = 9;
    store
        .commit(&[Write::Incident {
            row: inc.clone(),
            by_run: None,
            opened: false,
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
    let held = store
        .claim_partitions("leader", 0, 10_000, 64, Claim::Free)
        .await?;
    let fence = Fence {
        owner: "leader".into(),
        held: held.iter().map(|l| (l.partition, l.epoch)).collect(),
        runs: Default::default(),
    };
    let first = run_in("r1", RunStatus::Running, 5);
    assert_eq!(
        store
            .claim_cron_fire(&fire(1000, Some("r1")), Some(&first), &fence)
            .await?,
        CronClaim::Fired
    );
    assert!(
        store.run("r1").await?.is_some(),
        "the run is written with its fire"
    );
    // The same instant again, from a restart or another process: refused, nothing written.
    let again = run_in("r2", RunStatus::Running, 5);
    assert_eq!(
        store
            .claim_cron_fire(&fire(1000, Some("r2")), Some(&again), &fence)
            .await?,
        CronClaim::Handled
    );
    assert!(store.run("r2").await?.is_none());
    // A skipped instant is recorded without a run; the last run started is still r1.
    assert_eq!(
        store
            .claim_cron_fire(&fire(2000, None), None, &fence)
            .await?,
        CronClaim::Fired
    );
    assert_eq!(store.last_cron_fires().await?, [fire(2000, Some("r1"))]);
    // An older instant never fires after a newer one.
    assert_eq!(
        store
            .claim_cron_fire(&fire(1500, None), None, &fence)
            .await?,
        CronClaim::Handled
    );
    // A process that lost the cron partition fires nothing.
    store
        .claim_partitions("other", 20_000, 10_000, 1, Claim::Free)
        .await?;
    let late = run_in("r3", RunStatus::Running, 5);
    assert_eq!(
        store
            .claim_cron_fire(&fire(3000, Some("r3")), Some(&late), &fence)
            .await?,
        CronClaim::NotHolder
    );
    assert!(store.run("r3").await?.is_none());
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

async fn recovery_reads_the_partitions_runs_steps_and_signals_at_once(
    on: On,
) -> Result<(), StoreError> {
    let (_dir, store) = fresh(on).await;
    let done = run_in("done", RunStatus::Succeeded, 1);
    let other = run_in("other", RunStatus::Running, 2);
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
            Write::Run(run_in("a", RunStatus::Running, 1)),
            Write::Run(run_in("b", RunStatus::Failing, 3)),
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
    let claimed = store.unfinished_runs_in(&[1, 3]).await?;
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

async fn a_process_whose_partition_was_taken_over_writes_nothing_more(
    on: On,
) -> Result<(), StoreError> {
    let (_dir, store) = fresh(on).await;
    store
        .commit(&[
            Write::Run(run_in("r1", RunStatus::Running, 1)),
            Write::Run(run_in("r2", RunStatus::Running, 2)),
            Write::Step(step("r1", "a", StepStatus::Running)),
        ])
        .await?;
    let old = store
        .claim_partitions("old", 0, 1_000, 3, Claim::Free)
        .await?;
    let fence_of = |owner: &str, leases: &[Lease]| Fence {
        owner: owner.into(),
        held: leases.iter().map(|l| (l.partition, l.epoch)).collect(),
        runs: [
            ("r1".to_string(), 1),
            ("r2".to_string(), 2),
            ("r9".to_string(), 1),
        ]
        .into(),
    };
    let old_fence = fence_of("old", &old);
    // Partition 1's lease runs out and another process takes it; 2's does not (renewed).
    store
        .renew_partitions("old", &[old[0], old[2]], 5_000)
        .await?;
    let new = store
        .claim_partitions("new", 2_000, 1_000, 64, Claim::Free)
        .await?;
    assert_eq!(
        new[0],
        Lease {
            partition: 1,
            epoch: 2
        },
        "each claim bumps the epoch"
    );

    // The old process's batch: a finished step and run for r1, a step for r2, a signal, an
    // attempt, a new run r9 in partition 1 with its request and audit entry. Only r2's writes
    // land, and partition 1 is named as lost.
    let mut done = step("r1", "a", StepStatus::Succeeded);
    done.output = Some(json!({"stale": true}));
    let mut finished = run_in("r1", RunStatus::Succeeded, 1);
    finished.updated_at = 9;
    let lost = store
        .commit_fenced(
            &[
                Write::Run(finished),
                Write::Run(run_in("r9", RunStatus::Running, 1)),
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
                Write::RunMeta {
                    run_id: "r9".into(),
                    labels: [("k".to_string(), "v".to_string())].into(),
                    key: None,
                    at: 1,
                },
            ],
            &old_fence,
        )
        .await?;
    assert_eq!(lost, [1]);
    let r1 = store.run("r1").await?.expect("r1");
    assert_eq!(r1.status, RunStatus::Running);
    assert!(
        store.run("r9").await?.is_none(),
        "no new run in a lost partition"
    );
    assert!(
        store.labels_of(&["r9"]).await?.is_empty(),
        "nor anything of it"
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
        "the held partition's writes landed"
    );
    assert_eq!(
        store.attempts("r2", &key("b")).await?,
        [attempt("r2", "b", 1)]
    );

    // The new holder writes under its own epoch.
    let lost = store
        .commit_fenced(
            &[Write::Step(step("r1", "a", StepStatus::Succeeded))],
            &fence_of("new", &new),
        )
        .await?;
    assert!(lost.is_empty());
    assert_eq!(store.steps("r1").await?[0].status, StepStatus::Succeeded);
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

/// A request accepted and never started is taken by one sweep only.
async fn an_unstarted_request_is_claimed_by_one_sweep(on: On) -> Result<(), StoreError> {
    let (_dir, store) = fresh(on).await;
    let request = RequestRow {
        id: "req-1".into(),
        catalog_id: "hello".into(),
        workflow: "hello".into(),
        workflow_version: None,
        tenant: "acme".into(),
        requester: "tok".into(),
        inputs: json!({}),
        status: "submitted".into(),
        run_id: None,
        approval_roles: Vec::new(),
        decided_by: None,
        decided_at: None,
        decision_note: None,
        sla_deadline: None,
        idempotency_key: None,
        body_hash: "h".into(),
        created_at: 1_000,
        updated_at: 1_000,
    };
    store.insert_request(&request, None).await?;
    // Touched after the cut-off: not for this sweep.
    assert!(store.unstarted_requests(999).await?.is_empty());
    assert!(!store.claim_unstarted("req-1", 999, 5_000).await?);
    let pending = store.unstarted_requests(2_000).await?;
    assert_eq!(pending.len(), 1);
    assert!(store.claim_unstarted("req-1", 2_000, 5_000).await?);
    // A second sweep with the same cut-off passes it by.
    assert!(!store.claim_unstarted("req-1", 2_000, 5_001).await?);
    assert!(store.unstarted_requests(2_000).await?.is_empty());
    Ok(())
}

on_both!(
    workflow_versions_are_immutable,
    a_batch_is_one_transaction_and_survives_reopening,
    partitions_are_held_by_one_process_until_their_lease_runs_out,
    members_count_only_live_executors,
    private_partitions_outlive_their_process,
    inbox_commands_are_answered_by_the_holder_only,
    signals_wait_until_a_step_takes_them,
    incidents_round_trip,
    a_cron_instant_is_claimed_once_with_its_run,
    a_large_batch_of_mixed_writes_lands_in_one_commit,
    recovery_reads_the_partitions_runs_steps_and_signals_at_once,
    a_process_whose_partition_was_taken_over_writes_nothing_more,
    id_blocks_never_overlap_across_handles,
    an_unstarted_request_is_claimed_by_one_sweep,
);
