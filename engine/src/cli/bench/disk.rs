//! The disk probe: how many durable 4 KiB writes per second the disk under the databases
//! takes. Each write appends a 4 KiB block to a fresh file and waits for `fdatasync`, as a
//! commit to a growing write-ahead log does.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use super::report::{Report, quantile};

/// Writes per probe.
pub(super) const PROBE_WRITES: usize = 2_000;

/// What the probe measured.
#[derive(Debug, Clone)]
pub(super) struct DiskProbe {
    /// Latency of each write + fdatasync, in milliseconds, sorted.
    latencies_ms: Vec<f64>,
    /// Wall time of all of them, in seconds.
    seconds: f64,
}

impl DiskProbe {
    /// Mean latency of one durable write, in milliseconds.
    pub(super) fn mean_ms(&self) -> f64 {
        self.seconds * 1000.0 / self.latencies_ms.len().max(1) as f64
    }

    /// Median latency of one durable write, in milliseconds.
    pub(super) fn p50_ms(&self) -> f64 {
        quantile(&self.latencies_ms, 0.5)
    }

    /// Durable writes per second.
    pub(super) fn per_second(&self) -> f64 {
        self.latencies_ms.len() as f64 / self.seconds.max(f64::EPSILON)
    }

    /// The probe as a report.
    pub(super) fn report(&self) -> Report {
        let mut r = Report::new(
            "disk",
            format!(
                "{} × (4 KiB append + fdatasync) next to the databases",
                self.latencies_ms.len()
            ),
        );
        r.add("fsyncs_per_s", self.per_second(), "/s")
            .add("fsync_mean_ms", self.mean_ms(), "ms")
            .add("fsync_p50_ms", quantile(&self.latencies_ms, 0.5), "ms")
            .add("fsync_p99_ms", quantile(&self.latencies_ms, 0.99), "ms");
        r
    }
}

/// Appends `n` blocks of 4 KiB to a new file in `dir`, each followed by `fdatasync`.
pub(super) fn probe(dir: &Path, n: usize) -> std::io::Result<DiskProbe> {
    let path = dir.join("fsync-probe.bin");
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)?;
    let block = [0x5a_u8; 4096];
    let mut latencies_ms = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        latencies_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let seconds = start.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path)?;
    latencies_ms.sort_by(f64::total_cmp);
    Ok(DiskProbe {
        latencies_ms,
        seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_counts_its_writes_and_cleans_up() {
        let dir = tempfile::tempdir().expect("dir");
        let p = probe(dir.path(), 5).expect("probe");
        assert_eq!(p.latencies_ms.len(), 5);
        assert!(p.per_second() > 0.0);
        assert!(!dir.path().join("fsync-probe.bin").exists());
    }
}
