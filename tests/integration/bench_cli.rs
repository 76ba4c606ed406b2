//! `csmp bench` end to end on a tiny scale: every workload runs (the recovery one really kills
//! a child `csmp` process) and reports its figures as JSON lines. Only structure, counts and
//! correctness are checked here; how fast anything went is the benchmark's business.

use serde_json::Value;

use crate::helpers::csmp;

/// What `csmp bench --json --scale 0.01 ARGS…` printed: one JSON line per workload.
struct Bench {
    lines: Vec<Value>,
    text: String,
}

impl Bench {
    /// Runs it, asserting it exits 0.
    fn run(args: &[&str]) -> Self {
        let mut all = vec!["bench", "--json", "--scale", "0.01"];
        all.extend_from_slice(args);
        let out = csmp(&all);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        Self { lines, text }
    }

    /// The workloads reported, in order.
    fn names(&self) -> Vec<&str> {
        self.lines
            .iter()
            .map(|l| l["workload"].as_str().unwrap_or(""))
            .collect()
    }

    /// A workload's figure.
    fn get(&self, workload: &str, key: &str) -> f64 {
        self.lines
            .iter()
            .find(|l| l["workload"] == workload)
            .and_then(|l| l[key].as_f64())
            .unwrap_or_else(|| panic!("{workload}.{key} missing in {}", self.text))
    }
}

#[test]
fn csmp_bench_runs_every_workload_and_reports_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scratch = dir.path().display().to_string();
    let run = Bench::run(&["--dir", &scratch]);
    assert_eq!(
        run.names(),
        [
            "disk",
            "chain",
            "chain40",
            "fanout",
            "fanout10k",
            "wide",
            "timers",
            "recovery",
            "api-chain",
            "api-chain40",
            "api-fanout",
            "console"
        ]
    );
    let get = |workload: &str, key: &str| run.get(workload, key);
    assert!(get("disk", "fsyncs_per_s") > 0.0);
    assert_eq!(get("chain", "runs"), 10.0);
    assert_eq!(get("chain", "steps"), 100.0);
    assert!(get("chain", "commits") >= 1.0);
    assert_eq!(get("fanout", "children"), 10.0);
    // The scaling workloads ran both sizes and compared them.
    assert!(get("fanout10k", "large_total_ms") > 0.0 && get("fanout10k", "per_item_ratio") > 0.0);
    assert!(get("wide", "large_total_ms") > 0.0 && get("wide", "per_step_ratio") > 0.0);
    assert_eq!(get("timers", "runs"), 100.0);
    assert_eq!(get("timers", "plugin_attempts_held"), 0.0);
    assert_eq!(get("recovery", "runs"), 20.0);
    assert_eq!(get("recovery", "lost_runs"), 0.0);
    assert_eq!(get("recovery", "steps_never_started"), 0.0);
    assert_eq!(get("recovery", "steps_succeeded"), 200.0);
    assert!(get("recovery", "duplicate_attempts") <= get("recovery", "steps_in_flight_at_kill"));
    // The REST workloads placed their orders on a real service and counted its commits.
    assert_eq!(get("api-chain", "orders"), 10.0);
    assert!(get("api-chain", "commits") >= 1.0);
    assert!(
        get("api-chain40", "commits_per_order") >= 40.0,
        "a step of a chain is a commit"
    );
    assert_eq!(get("api-fanout", "orders"), 1.0);
    // The console's pages were fetched, signed in, on a database of the scaled run count.
    assert_eq!(get("console", "runs"), 100.0);
    assert!(get("console", "run_p50_ms") > 0.0 && get("console", "slowest_page_p99_ms") > 0.0);
    // The scratch directory is removed afterwards.
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn csmp_bench_runs_only_the_named_workloads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scratch = dir.path().display().to_string();
    let out = csmp(&[
        "bench", "--json", "--scale", "0.01", "--dir", &scratch, "chain40", "chain",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    let names: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|l| l["workload"].as_str().map(String::from))
        .collect();
    assert_eq!(names, ["disk", "chain40", "chain"]);
}

#[test]
fn csmp_bench_refuses_a_bad_scale() {
    let out = csmp(&["bench", "--scale", "0", "chain"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--scale"));
}

#[test]
fn csmp_bench_runs_the_core_workloads_on_postgres_and_drops_its_databases() {
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let url = rt
        .block_on(csmp::testing::postgres())
        .expect("the test PostgreSQL starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let scratch = dir.path().display().to_string();
    let run = Bench::run(&["--dir", &scratch, "--database", &url]);
    assert_eq!(
        run.names(),
        [
            "disk",
            "chain",
            "chain40",
            "fanout",
            "fanout10k",
            "wide",
            "timers",
            "recovery",
            "scaleout"
        ],
        "every workload that needs no `csmp serve`"
    );
    let get = |workload: &str, key: &str| run.get(workload, key);
    assert_eq!(get("chain", "steps"), 100.0);
    assert_eq!(get("fanout", "children"), 10.0);
    assert_eq!(get("recovery", "lost_runs"), 0.0);
    assert_eq!(get("recovery", "steps_succeeded"), 200.0);
    assert!(get("recovery", "duplicate_attempts") <= get("recovery", "steps_in_flight_at_kill"));
    assert_eq!(get("scaleout", "failover_lost_runs"), 0.0);
    assert!(get("scaleout", "one_process_steps_per_s") > 0.0);
    assert!(get("scaleout", "two_processes_steps_per_s") > 0.0);
    assert!(get("scaleout", "failover_ms") >= 0.0);
    // Its databases are gone afterwards.
    let left: Vec<String> = rt.block_on(async {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(&url).await.expect("connects");
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'csmp_bench_%'")
            .fetch_all(&mut conn)
            .await
            .expect("lists databases")
    });
    assert!(left.is_empty(), "left behind: {left:?}");

    let refused = csmp(&["bench", "--database", &url, "api-chain"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("run it without --database"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let alone = csmp(&["bench", "--dir", &scratch, "scaleout"]);
    assert_ne!(alone.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&alone.stderr).contains("needs a shared PostgreSQL database"),
        "{}",
        String::from_utf8_lossy(&alone.stderr)
    );
    let not_a_url = csmp(&["bench", "--database", "bench.db", "chain"]);
    assert_eq!(not_a_url.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&not_a_url.stderr).contains("not a postgres:// URL"));
}
