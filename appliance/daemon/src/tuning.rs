//! Codec tuning: with `store.target_throughput_mb_s` set, the daemon
//! benchmarks the codec pipeline (`coffer-accel`, as `coffer benchmark`
//! does) once, keeps the result in `state_dir/benchmark.json` until the CPU,
//! the core count or the version changes, and gives every backup the zstd
//! level and thread count `coffer_accel::tune::choose` picks for the
//! target. Backups queued before the first measurement ends use the store's
//! level and the configured threads.

use std::path::Path;

use anyhow::{Context, Result};
use coffer_accel::{BenchOptions, BenchReport, Cpu, Tuning};
use serde::{Deserialize, Serialize};

/// The cache file under the state directory.
pub const CACHE: &str = "benchmark.json";

/// Seconds per measurement of the start-up benchmark (short: it runs on
/// the appliance while it may already be serving).
pub const SECONDS_PER_TEST: f64 = 0.25;

#[derive(Serialize, Deserialize)]
struct Cached {
    version: String,
    cores: usize,
    report: BenchReport,
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The cached report if it was measured on this CPU by this version.
fn cached(path: &Path) -> Option<BenchReport> {
    let text = std::fs::read_to_string(path).ok()?;
    let c: Cached = serde_json::from_str(&text).ok()?;
    (c.version == env!("CARGO_PKG_VERSION")
        && c.cores == cores()
        && c.report.features == coffer_accel::detect())
    .then_some(c.report)
}

/// The report (cached or measured now) and the tuning for `target_mb_s`
/// with at most `threads` threads (0 = one per core).
pub fn load_or_measure(
    state_dir: &Path,
    target_mb_s: f64,
    threads: usize,
    seconds_per_test: f64,
) -> Result<(BenchReport, Tuning, bool)> {
    let path = state_dir.join(CACHE);
    let (report, fresh) = match cached(&path) {
        Some(r) => (r, false),
        None => {
            let opts = BenchOptions {
                seconds_per_test,
                threads: 0,
                zstd_levels: vec![1, 3, 6, 9, 12, 15, 19],
                include_parity: false,
            };
            let r = coffer_accel::bench::run(&Cpu, &opts, &mut |_| {})
                .context("benchmarking the codec pipeline")?;
            let c = Cached {
                version: env!("CARGO_PKG_VERSION").into(),
                cores: cores(),
                report: r,
            };
            let tmp = path.with_extension("json.tmp");
            std::fs::write(&tmp, serde_json::to_vec_pretty(&c)?)
                .with_context(|| format!("write '{}'", tmp.display()))?;
            std::fs::rename(&tmp, &path).with_context(|| format!("write '{}'", path.display()))?;
            (c.report, true)
        }
    };
    let max = if threads == 0 { cores() } else { threads };
    let t = coffer_accel::tune::choose(&report, target_mb_s, max);
    Ok((report, t, fresh))
}

/// The sentence `status` shows; `target` is the configured one (a reload
/// may have turned tuning off; a new target is measured at the next start).
pub fn describe(t: Option<&Tuning>, target: u32, store_level: i32) -> String {
    match t {
        Some(_) if target == 0 => {
            format!("zstd {store_level} (the store's), no throughput target")
        }
        Some(t) => format!(
            "zstd {} with {} thread(s): {:.0} MB/s expected for a {:.0} MB/s target{}",
            t.zstd_level,
            t.threads,
            t.expected_mb_s,
            t.target_mb_s,
            if t.meets_target {
                ""
            } else {
                " (NOT reached: this is the fastest setting)"
            }
        ),
        None if target > 0 => format!("zstd {store_level} (the store's) until the benchmark ends"),
        None => format!("zstd {store_level} (the store's), no throughput target"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_measurement_is_cached_and_reused_until_the_cpu_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (r1, t1, fresh) = load_or_measure(dir.path(), 50.0, 0, 0.01).unwrap();
        assert!(fresh);
        assert!((1..=19).contains(&t1.zstd_level));
        assert!(t1.threads >= 1);
        let (r2, t2, fresh) = load_or_measure(dir.path(), 50.0, 0, 0.01).unwrap();
        assert!(!fresh, "the second start reads the cache");
        // (JSON keeps the figures to within the last digit.)
        assert_eq!(r1.features, r2.features);
        assert_eq!(r1.results.len(), r2.results.len());
        for (a, b) in r1.results.iter().zip(&r2.results) {
            assert_eq!(a.kind, b.kind);
            assert!((a.single_mb_s - b.single_mb_s).abs() <= a.single_mb_s * 1e-12);
        }
        assert_eq!((t1.zstd_level, t1.threads), (t2.zstd_level, t2.threads));
        // Another CPU (here: other features) invalidates it.
        let path = dir.path().join(CACHE);
        let mut c: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        c["report"]["features"]["arch"] = serde_json::json!("sparc64");
        std::fs::write(&path, c.to_string()).unwrap();
        assert!(cached(&path).is_none());
        // A damaged cache is measured again, not an error.
        std::fs::write(&path, b"{not json").unwrap();
        assert!(load_or_measure(dir.path(), 50.0, 0, 0.01).unwrap().2);
    }

    #[test]
    fn the_status_sentence_says_what_was_chosen() {
        let t = Tuning {
            target_mb_s: 200.0,
            zstd_level: 9,
            threads: 2,
            expected_mb_s: 340.0,
            meets_target: true,
            reason: String::new(),
        };
        assert_eq!(
            describe(Some(&t), 200, 3),
            "zstd 9 with 2 thread(s): 340 MB/s expected for a 200 MB/s target"
        );
        assert!(describe(None, 0, 3).contains("no throughput target"));
        // A reload turned the target off: the tuning no longer applies.
        assert!(describe(Some(&t), 0, 3).contains("no throughput target"));
        assert!(describe(None, 200, 3).contains("until the benchmark ends"));
    }
}
