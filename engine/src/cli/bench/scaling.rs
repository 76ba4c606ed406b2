//! The workloads that check that big runs cost what they should: `fanout10k` (1 → N → 1 at
//! N = 1,000 and 10,000) and `wide` (one run of N independent steps at N = 100 and 1,000).
//! Each size runs on a fresh database; the figure that matters is the cost per item at the
//! larger size over the cost at the smaller one — 1 means the total grows linearly, and the
//! target is at most 1.5.

use std::time::Instant;

use anyhow::bail;
use serde_json::json;

use super::report::{Report, Target};
use super::workloads::{ms, submit_all, wait_all};
use super::{Ctx, engine, fanout_yaml};

/// Runs one workflow once on a fresh database; returns (wall ms, commits) after checking its
/// output is `want`.
async fn one_run(
    ctx: &Ctx,
    db: &str,
    name: &str,
    yaml: &str,
    want: serde_json::Value,
) -> anyhow::Result<(f64, f64)> {
    let engine = engine(ctx, db, yaml, None).await?;
    let mut rx = engine.subscribe();
    let commits0 = engine.store().commits();
    let t0 = Instant::now();
    let ids = submit_all(&engine, name, vec![json!({})]).await?;
    let end = wait_all(&engine, &mut rx, &ids).await?;
    let commits = (engine.store().commits() - commits0) as f64;
    let outputs = match ids.first() {
        Some(id) => engine.store().run(id).await?.and_then(|r| r.outputs),
        None => None,
    };
    engine.shutdown().await;
    if outputs != Some(want.clone()) {
        bail!("the {name} run's output is {outputs:?}, not {want}");
    }
    Ok((ms(end - t0), commits))
}

fn wide_yaml(n: usize) -> String {
    let mut y = String::from("name: bench-wide\nversion: 1\nsteps:\n");
    for i in 0..n {
        y.push_str(&format!(
            "  - {{ id: s{i}, uses: echo@^1, with: {{ i: {i} }} }}\n"
        ));
    }
    y.push_str("outputs:\n  last: \"{{ steps.s");
    y.push_str(&format!("{}.output.i }}}}\"\n", n - 1));
    y
}

/// Adds the figures of a small and a large size, and the per-item ratio with its target.
#[allow(clippy::too_many_arguments)]
fn scaling_report(
    r: &mut Report,
    small: usize,
    large: usize,
    (small_ms, small_commits): (f64, f64),
    (large_ms, large_commits): (f64, f64),
    keys: [&'static str; 6],
    fsync_ms: f64,
) {
    let per_small = small_ms / small as f64;
    let per_large = large_ms / large as f64;
    r.add(keys[0], small_ms, "ms")
        .add(keys[1], per_small * 1000.0, "µs per item")
        .add(keys[2], large_ms, "ms")
        .add(keys[3], per_large * 1000.0, "µs per item")
        .add(keys[4], large_commits, "")
        .check(
            keys[5],
            per_large / per_small,
            "× the smaller size's cost per item",
            Target::AtMost(1.5),
        )
        .add("small_commits", small_commits, "")
        .add(
            "large_total_in_fsyncs",
            large_ms / fsync_ms,
            "fsync latencies",
        );
}

/// `fanout10k`: 1 → N parallel `echo` steps → 1 join, at N = 1,000 and N = 10,000.
pub(super) async fn fanout10k(ctx: &Ctx) -> anyhow::Result<Report> {
    let small = ctx.scaled(1_000);
    let large = ctx.scaled(10_000);
    let s = one_run(
        ctx,
        "fan-small.db",
        "bench-fan",
        &fanout_yaml("bench-fan", small),
        json!({ "n": small }),
    )
    .await?;
    let l = one_run(
        ctx,
        "fan-large.db",
        "bench-fan",
        &fanout_yaml("bench-fan", large),
        json!({ "n": large }),
    )
    .await?;
    let mut r = Report::new(
        "fanout10k",
        format!(
            "1 → N parallel echo steps → 1 join at N = {small} and {large}, fresh database each"
        ),
    );
    scaling_report(
        &mut r,
        small,
        large,
        s,
        l,
        [
            "small_total_ms",
            "small_per_item",
            "large_total_ms",
            "large_per_item",
            "large_commits",
            "per_item_ratio",
        ],
        ctx.fsync_ms,
    );
    Ok(r)
}

/// `wide`: one run of N independent `echo` steps, at N = 100 and N = 1,000.
pub(super) async fn wide(ctx: &Ctx) -> anyhow::Result<Report> {
    let small = ctx.scaled(100).max(2);
    let large = ctx.scaled(1_000).max(small + 1);
    let s = one_run(
        ctx,
        "wide-small.db",
        "bench-wide",
        &wide_yaml(small),
        json!({ "last": small - 1 }),
    )
    .await?;
    let l = one_run(
        ctx,
        "wide-large.db",
        "bench-wide",
        &wide_yaml(large),
        json!({ "last": large - 1 }),
    )
    .await?;
    let mut r = Report::new(
        "wide",
        format!(
            "one run of N independent echo steps at N = {small} and {large}, fresh database each"
        ),
    );
    scaling_report(
        &mut r,
        small,
        large,
        s,
        l,
        [
            "small_total_ms",
            "small_per_step",
            "large_total_ms",
            "large_per_step",
            "large_commits",
            "per_step_ratio",
        ],
        ctx.fsync_ms,
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workflows_validate() {
        let host = super::super::bench_host(&std::env::temp_dir()).expect("host");
        for yaml in [fanout_yaml("bench-fan", 3), wide_yaml(3)] {
            super::super::plan(&host, &yaml).expect("valid");
        }
    }
}
