//! Codec tuning: the zstd level and thread count for a throughput target,
//! from a benchmark report. Pure: the same report and target always give
//! the same [`Tuning`].
//!
//! The model (see `docs/accel.md`): a backup's write path does, on every
//! new byte, a keyed blake3 hash, zstd at the chosen level and AES-256-GCM
//! on what compression left. On one core, per MB of source data, that costs
//! `1/hash + 1/compress(level) + 1/(ratio(level) × seal)` seconds, so
//!
//! ```text
//! per_core(level) = 1 / (1/hash + 1/compress(level) + 1/(ratio(level) × seal))
//! ```
//!
//! (rates in MB/s on one core; a missing hash or seal result counts as
//! free, a missing ratio as 1). With `t` threads it scales by the speed-up
//! the benchmark measured for the pipeline's slowest stage at the report's
//! `N` threads, `s = parallel / single`, interpolated linearly from 1
//! thread (speed-up 1) to `N` threads (speed-up `s`) and capped at `t`;
//! it is not extrapolated past `N`, the most threads the report measured.
//! Chunking and parity are not in the model.

use serde::{Deserialize, Serialize};

use crate::bench::{BenchReport, Stage};

/// The level used when a report has no compression results.
pub const FALLBACK_LEVEL: i32 = 3;

/// A codec setting for the backup engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tuning {
    /// The target the choice was made for, MB/s of source data.
    pub target_mb_s: f64,
    /// zstd level to compress with.
    pub zstd_level: i32,
    /// Codec threads to run.
    pub threads: usize,
    /// What the model expects at this level and thread count, MB/s.
    pub expected_mb_s: f64,
    /// Whether `expected_mb_s` reaches the target.
    pub meets_target: bool,
    /// Why this choice, in a sentence for the operator.
    pub reason: String,
}

/// MB/s of source data the write path is expected to sustain at `level`
/// with `threads` threads; `None` when the report has no result for the
/// level.
pub fn expected_mb_s(report: &BenchReport, level: i32, threads: usize) -> Option<f64> {
    let compress = report.result(Stage::Compress(level))?;
    let ratio = report
        .ratio(level)
        .filter(|r| r.is_finite())
        .unwrap_or(1.0)
        .max(1.0);
    // (seconds per MB of source data on one core, parallel / single).
    let mut stages = vec![stage_cost(compress.single_mb_s, compress.parallel_mb_s)];
    if let Some(hash) = report.result(Stage::Hash) {
        stages.push(stage_cost(hash.single_mb_s, hash.parallel_mb_s));
    }
    if let Some(seal) = report.result(Stage::Seal) {
        stages.push(stage_cost(
            seal.single_mb_s * ratio,
            seal.parallel_mb_s * ratio,
        ));
    }
    let total: f64 = stages.iter().map(|(cost, _)| cost).sum();
    if !total.is_finite() || total <= 0.0 {
        return Some(0.0);
    }
    let (_, measured) = stages.iter().copied().fold((0.0, 1.0), |slowest, stage| {
        if stage.0 > slowest.0 { stage } else { slowest }
    });
    Some(speedup(measured, report.threads, threads) / total)
}

/// (seconds per MB, parallel / single) of a stage.
fn stage_cost(single: f64, parallel: f64) -> (f64, f64) {
    if !(single.is_finite() && single > 0.0) {
        return (f64::INFINITY, 1.0);
    }
    let speedup = if parallel.is_finite() && parallel > 0.0 {
        parallel / single
    } else {
        1.0
    };
    (1.0 / single, speedup)
}

/// The speed-up of `threads` threads, given `measured` at `benched` threads.
fn speedup(measured: f64, benched: usize, threads: usize) -> f64 {
    let benched = benched.max(1);
    let t = threads.clamp(1, benched);
    if benched == 1 {
        return 1.0;
    }
    let measured = measured.clamp(0.0, benched as f64);
    let s = 1.0 + (t - 1) as f64 * (measured - 1.0) / (benched - 1) as f64;
    s.clamp(f64::MIN_POSITIVE, t as f64)
}

/// Chooses the zstd level and thread count for `target_mb_s` of source data
/// with at most `max_threads` threads (0 counts as 1).
///
/// The highest benchmarked level that reaches the target, with the fewest
/// threads that do; if no level does, the fastest level with all the
/// threads the model credits (`max_threads`, but not more than the report
/// measured) and `meets_target` false.
pub fn choose(report: &BenchReport, target_mb_s: f64, max_threads: usize) -> Tuning {
    let mut levels: Vec<i32> = report
        .results
        .iter()
        .filter_map(|r| match r.kind {
            Stage::Compress(level) => Some(level),
            _ => None,
        })
        .collect();
    levels.sort_unstable_by(|a, b| b.cmp(a));
    levels.dedup();
    let cap = max_threads.max(1).min(report.threads.max(1));
    let capped = if cap < max_threads {
        format!(
            " (the benchmark ran {}; the model does not extrapolate past that)",
            count(report.threads.max(1), "thread")
        )
    } else {
        String::new()
    };

    let Some(&lowest) = levels.last() else {
        return Tuning {
            target_mb_s,
            zstd_level: FALLBACK_LEVEL,
            threads: cap,
            expected_mb_s: 0.0,
            meets_target: false,
            reason: format!(
                "the benchmark report has no zstd results; zstd level {FALLBACK_LEVEL} by default"
            ),
        };
    };

    let mut too_slow: Option<(i32, f64)> = None;
    for &level in &levels {
        for threads in 1..=cap {
            let expected = expected_mb_s(report, level, threads).unwrap_or(0.0);
            if expected >= target_mb_s {
                let reason = match too_slow {
                    Some((higher, at)) => format!(
                        "zstd level {level} is the highest benchmarked level that reaches \
                         {target_mb_s:.0} MB/s; level {higher} would give {at:.0} MB/s \
                         with {}{capped}",
                        count(cap, "thread")
                    ),
                    None => format!(
                        "zstd level {level} is the highest benchmarked level, and reaches \
                         {target_mb_s:.0} MB/s with {threads} of up to {}",
                        count(max_threads.max(1), "thread")
                    ),
                };
                return Tuning {
                    target_mb_s,
                    zstd_level: level,
                    threads,
                    expected_mb_s: expected,
                    meets_target: true,
                    reason,
                };
            }
        }
        too_slow = Some((level, expected_mb_s(report, level, cap).unwrap_or(0.0)));
    }

    // Nothing reaches the target: the fastest level, all threads. On a tie
    // the higher level (it compresses better for the same speed).
    let (level, expected) = levels
        .iter()
        .map(|&level| (level, expected_mb_s(report, level, cap).unwrap_or(0.0)))
        .fold((lowest, f64::NEG_INFINITY), |best, candidate| {
            if candidate.1 > best.1 {
                candidate
            } else {
                best
            }
        });
    Tuning {
        target_mb_s,
        zstd_level: level,
        threads: cap,
        expected_mb_s: expected,
        meets_target: false,
        reason: format!(
            "no benchmarked zstd level reaches {target_mb_s:.0} MB/s with up to {}; \
             level {level} is the fastest at {expected:.0} MB/s{capped}",
            count(cap, "thread")
        ),
    }
}

/// "1 thread", "2 threads".
pub(crate) fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::bench::BenchResult;
    use crate::features::CpuFeatures;

    /// A report of `threads` threads where every stage scales by `scale`
    /// at that count; `levels` are (level, single MB/s, ratio).
    fn report(threads: usize, scale: f64, levels: &[(i32, f64, f64)]) -> BenchReport {
        let row = |name: &str, kind, single: f64| BenchResult {
            name: name.to_string(),
            kind,
            single_mb_s: single,
            parallel_mb_s: single * scale,
        };
        let mut results: Vec<BenchResult> = levels
            .iter()
            .map(|&(l, mb_s, _)| row(&format!("zstd-{l} compress"), Stage::Compress(l), mb_s))
            .collect();
        results.push(row("zstd decompress", Stage::Decompress, 1500.0));
        results.push(row("AES-256-GCM seal", Stage::Seal, 2000.0));
        results.push(row("AES-256-GCM open", Stage::Open, 2000.0));
        results.push(row("blake3 keyed", Stage::Hash, 1000.0));
        BenchReport {
            features: CpuFeatures::default(),
            offload: "cpu".into(),
            threads,
            zstd_ratio: levels.iter().map(|&(l, _, r)| (l, r)).collect(),
            results,
        }
    }

    const LEVELS: [(i32, f64, f64); 4] = [
        (1, 500.0, 1.8),
        (3, 300.0, 2.0),
        (9, 80.0, 2.2),
        (19, 5.0, 2.5),
    ];

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn expected_follows_the_model() {
        let r = report(4, 3.4, &LEVELS);
        let one = 1.0 / (1.0 / 1000.0 + 1.0 / 300.0 + 1.0 / (2000.0 * 2.0));
        assert!(close(expected_mb_s(&r, 3, 1).unwrap(), one));
        // 4 threads: the measured speed-up 3.4; 2 threads: interpolated.
        assert!(close(expected_mb_s(&r, 3, 4).unwrap(), one * 3.4));
        assert!(close(expected_mb_s(&r, 3, 2).unwrap(), one * 1.8));
        // Not extrapolated past the benchmarked threads.
        assert!(close(expected_mb_s(&r, 3, 16).unwrap(), one * 3.4));
        assert_eq!(expected_mb_s(&r, 5, 1), None);
    }

    #[test]
    fn seal_cost_shrinks_with_the_ratio() {
        let mut r = report(1, 1.0, &[(3, 300.0, 2.0)]);
        let with_ratio = expected_mb_s(&r, 3, 1).unwrap();
        r.zstd_ratio.clear();
        let without = expected_mb_s(&r, 3, 1).unwrap();
        assert!(with_ratio > without);
        assert!(close(
            without,
            1.0 / (1.0 / 1000.0 + 1.0 / 300.0 + 1.0 / 2000.0)
        ));
    }

    #[test]
    fn speedup_is_that_of_the_slowest_stage() {
        let mut r = report(2, 1.9, &LEVELS);
        // blake3 scales badly, but compression at level 3 is the slowest.
        for row in &mut r.results {
            if row.kind == Stage::Hash {
                row.parallel_mb_s = row.single_mb_s;
            }
        }
        let one = expected_mb_s(&r, 3, 1).unwrap();
        assert!(close(expected_mb_s(&r, 3, 2).unwrap(), one * 1.9));
        // A measured speed-up above the thread count is capped at it.
        let r = report(2, 2.5, &LEVELS);
        let one = expected_mb_s(&r, 3, 1).unwrap();
        assert!(close(expected_mb_s(&r, 3, 2).unwrap(), one * 2.0));
    }

    struct Case {
        what: &'static str,
        threads: usize,
        scale: f64,
        target: f64,
        max_threads: usize,
        level: i32,
        chosen_threads: usize,
        meets: bool,
        reason_has: &'static str,
    }

    #[test]
    fn choose_cases() {
        let cases = [
            Case {
                what: "plenty of CPU: the highest level, one thread",
                threads: 2,
                scale: 1.9,
                target: 4.0,
                max_threads: 2,
                level: 19,
                chosen_threads: 1,
                meets: true,
                reason_has: "level 19 is the highest benchmarked level, and reaches 4 MB/s with 1",
            },
            Case {
                what: "level 19 needs the second thread",
                threads: 2,
                scale: 1.9,
                target: 8.0,
                max_threads: 2,
                level: 19,
                chosen_threads: 2,
                meets: true,
                reason_has: "with 2 of up to 2 threads",
            },
            Case {
                what: "a moderate target: level 9 on one core",
                threads: 2,
                scale: 1.9,
                target: 50.0,
                max_threads: 2,
                level: 9,
                chosen_threads: 1,
                meets: true,
                reason_has: "level 19 would give 9 MB/s with 2 threads",
            },
            Case {
                what: "tight target: level 1 and more threads",
                threads: 4,
                scale: 3.6,
                target: 800.0,
                max_threads: 4,
                level: 1,
                chosen_threads: 3,
                meets: true,
                reason_has: "level 3 would give",
            },
            Case {
                what: "unreachable target",
                threads: 4,
                scale: 3.6,
                target: 5000.0,
                max_threads: 4,
                level: 1,
                chosen_threads: 4,
                meets: false,
                reason_has: "no benchmarked zstd level reaches 5000 MB/s with up to 4 threads; \
                             level 1 is the fastest",
            },
            Case {
                what: "more threads than benchmarked are not credited",
                threads: 2,
                scale: 1.9,
                target: 5000.0,
                max_threads: 8,
                level: 1,
                chosen_threads: 2,
                meets: false,
                reason_has: "the benchmark ran 2 threads;",
            },
            Case {
                what: "max_threads 0 counts as 1",
                threads: 2,
                scale: 1.9,
                target: 8.0,
                max_threads: 0,
                level: 9,
                chosen_threads: 1,
                meets: true,
                reason_has: "level 19 would give 5 MB/s with 1 thread",
            },
        ];
        for c in cases {
            let r = report(c.threads, c.scale, &LEVELS);
            let t = choose(&r, c.target, c.max_threads);
            assert_eq!(t.zstd_level, c.level, "{}: {t:?}", c.what);
            assert_eq!(t.threads, c.chosen_threads, "{}: {t:?}", c.what);
            assert_eq!(t.meets_target, c.meets, "{}: {t:?}", c.what);
            assert_eq!(t.target_mb_s, c.target, "{}", c.what);
            assert!(t.reason.contains(c.reason_has), "{}: {}", c.what, t.reason);
            let expected = expected_mb_s(&r, t.zstd_level, t.threads).unwrap();
            assert!(close(t.expected_mb_s, expected), "{}", c.what);
            assert_eq!(t.meets_target, t.expected_mb_s >= c.target, "{}", c.what);
        }
    }

    #[test]
    fn the_highest_level_wins_whatever_the_result_order() {
        let mut r = report(2, 2.0, &LEVELS);
        r.results.reverse();
        assert_eq!(choose(&r, 1.0, 2).zstd_level, 19);
    }

    #[test]
    fn a_report_without_compression_falls_back() {
        let mut r = report(2, 2.0, &[]);
        r.results
            .retain(|row| !matches!(row.kind, Stage::Compress(_)));
        let t = choose(&r, 100.0, 2);
        assert_eq!(t.zstd_level, FALLBACK_LEVEL);
        assert!(!t.meets_target);
        assert!(t.reason.contains("no zstd results"), "{}", t.reason);
    }

    #[test]
    fn broken_rates_do_not_panic_or_meet_targets() {
        let mut r = report(2, 2.0, &[(1, 0.0, 2.0), (3, f64::NAN, 2.0)]);
        r.zstd_ratio.push((3, f64::INFINITY));
        let t = choose(&r, 10.0, 2);
        assert!(!t.meets_target, "{t:?}");
        assert_eq!(t.expected_mb_s, 0.0);
    }
}
