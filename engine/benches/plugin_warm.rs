//! The plugin warm path: instantiate `echo` from its pre-linked `InstancePre` in a fresh
//! sandboxed store and call it once (input and output schema checks included).
//!
//! `cargo bench -p csmp --bench plugin_warm` prints p50/p99 over 10,000 calls (measured here,
//! since criterion reports means), then criterion's own estimate. Knows the public host API only.

use std::time::{Duration, Instant};

use criterion::Criterion;
use csmp::plugin::{CancellationToken, HostConfig, Invocation, PluginHost};
use serde_json::json;

const ITERATIONS: usize = 10_000;

fn echo_call() -> Invocation {
    Invocation {
        plugin: "echo".into(),
        version: semver::Version::new(1, 0, 0),
        input: json!({"instance": "i-1234", "size": "small", "count": 3}),
        idempotency_key: "bench/echo".into(),
        secrets: Default::default(),
        timeout: Duration::from_secs(10),
        cancel: CancellationToken::new(),
    }
}

fn host() -> PluginHost {
    let cache = std::env::temp_dir().join("csmp-bench-plugin-cache");
    let host = PluginHost::new(HostConfig::new(cache, Default::default())).expect("host starts");
    host.load_builtins().expect("built-ins load");
    host
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{label}: n={} p50={:.1}µs p99={:.1}µs mean={:.1}µs",
        samples.len(),
        percentile(&samples, 0.50).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
        mean.as_secs_f64() * 1e6,
    );
}

/// Per-call latency of the blocking path (what runs on the step's blocking thread) and of
/// the async `invoke` (adds the semaphore and the hop to tokio's blocking pool).
fn percentiles(host: &PluginHost) {
    for _ in 0..500 {
        host.invoke_blocking(echo_call()).expect("warm-up call");
    }
    let mut samples = Vec::with_capacity(ITERATIONS);
    for _ in 0..ITERATIONS {
        let call = echo_call();
        let start = Instant::now();
        let out = host.invoke_blocking(call).expect("echo call");
        samples.push(start.elapsed());
        std::hint::black_box(out);
    }
    report("plugin warm path, invoke_blocking", samples);

    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let samples = runtime.block_on(async {
        let mut samples = Vec::with_capacity(ITERATIONS);
        for _ in 0..ITERATIONS {
            let call = echo_call();
            let start = Instant::now();
            let out = host.invoke(call).await.expect("echo call");
            samples.push(start.elapsed());
            std::hint::black_box(out);
        }
        samples
    });
    report("plugin warm path, invoke (async)", samples);
}

fn main() {
    let host = host();
    // `cargo bench` passes --bench; `cargo test --benches` does not, and then one criterion
    // iteration is enough to prove the bench still runs.
    if std::env::args().any(|a| a == "--bench") {
        percentiles(&host);
    }
    let mut criterion = Criterion::default().configure_from_args();
    criterion.bench_function("echo instantiate+call", |b| {
        b.iter_batched(
            echo_call,
            |call| host.invoke_blocking(call).expect("echo call"),
            criterion::BatchSize::SmallInput,
        );
    });
    criterion.final_summary();
}
