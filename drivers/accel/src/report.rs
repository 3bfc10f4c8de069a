//! The benchmark as plain text, for the shell and the logs: the CPU, its
//! features, a table of the tests, the compression ratios and, if given,
//! the tuning recommendation. Pure.

use std::fmt::Write as _;

use crate::bench::{BLOCK_SIZE, BLOCKS, BenchReport};
use crate::features::CpuFeatures;
use crate::tune::{Tuning, count};

/// Renders a report (and a tuning made from it) as plain text.
///
/// ```text
/// Coffer codec benchmark (offload: cpu)
/// CPU: Intel(R) Xeon(R) Processor (x86_64)
///
/// CPU features:
///   AES-NI     yes  AES-256-GCM: AES rounds (aes crate)
///   …
///
/// test                    | MB/s (1 core) | MB/s (2 threads)
/// ------------------------+---------------+-----------------
/// zstd-1 compress         |         512.3 |           990.1
///   …
/// ```
pub fn render(report: &BenchReport, tuning: Option<&Tuning>) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_report(&mut out, report, tuning);
    out
}

fn write_report(
    out: &mut String,
    report: &BenchReport,
    tuning: Option<&Tuning>,
) -> std::fmt::Result {
    let f = &report.features;
    writeln!(out, "Coffer codec benchmark (offload: {})", report.offload)?;
    writeln!(
        out,
        "CPU: {} ({})",
        f.model.as_deref().unwrap_or("unknown model"),
        f.arch
    )?;
    writeln!(out)?;

    writeln!(out, "CPU features:")?;
    let list = f.list();
    let name_width = list.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    for (name, present) in list {
        let yes = if present { "yes" } else { "no" };
        writeln!(
            out,
            "  {name:<name_width$}  {yes:<3}  {}",
            CpuFeatures::purpose(name)
        )?;
    }
    writeln!(out)?;

    let header = [
        "test".to_string(),
        "MB/s (1 core)".to_string(),
        format!("MB/s ({})", count(report.threads, "thread")),
    ];
    let rows: Vec<[String; 3]> = report
        .results
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                format!("{:.1}", r.single_mb_s),
                format!("{:.1}", r.parallel_mb_s),
            ]
        })
        .collect();
    let width = |i: usize| {
        rows.iter()
            .map(|row| row[i].len())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    writeln!(
        out,
        "{:<w0$} | {:>w1$} | {:>w2$}",
        header[0], header[1], header[2]
    )?;
    writeln!(
        out,
        "{}-+-{}-+-{}",
        "-".repeat(w0),
        "-".repeat(w1),
        "-".repeat(w2)
    )?;
    for [name, single, parallel] in &rows {
        writeln!(out, "{name:<w0$} | {single:>w1$} | {parallel:>w2$}")?;
    }

    if !report.zstd_ratio.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "zstd compression ratio on the test data ({BLOCKS} x {} MiB, semi-compressible):",
            BLOCK_SIZE >> 20
        )?;
        let labels: Vec<String> = report
            .zstd_ratio
            .iter()
            .map(|(level, _)| format!("zstd-{level}"))
            .collect();
        let lw = labels.iter().map(String::len).max().unwrap_or(0);
        for (label, (_, ratio)) in labels.iter().zip(&report.zstd_ratio) {
            writeln!(out, "  {label:<lw$}  {ratio:.2} : 1")?;
        }
    }

    if let Some(t) = tuning {
        writeln!(out)?;
        let setting = format!(
            "zstd level {} with {}, expected {:.0} MB/s",
            t.zstd_level,
            count(t.threads, "thread"),
            t.expected_mb_s
        );
        if t.meets_target {
            writeln!(
                out,
                "Recommendation for {:.0} MB/s: {setting}",
                t.target_mb_s
            )?;
        } else {
            writeln!(
                out,
                "Recommendation for {:.0} MB/s: not reachable here; best is {setting}",
                t.target_mb_s
            )?;
        }
        writeln!(out, "  {}", t.reason)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::bench::{BenchResult, Stage};

    fn sample() -> BenchReport {
        let row = |name: &str, kind, single, parallel| BenchResult {
            name: name.into(),
            kind,
            single_mb_s: single,
            parallel_mb_s: parallel,
        };
        BenchReport {
            features: CpuFeatures {
                arch: "x86_64".into(),
                aes: true,
                vaes: false,
                pclmulqdq: true,
                avx2: true,
                avx512f: false,
                sha: false,
                neon: false,
                model: Some("Test CPU 9000".into()),
            },
            offload: "cpu".into(),
            threads: 2,
            zstd_ratio: vec![(1, 1.95), (19, 2.4321)],
            results: vec![
                row("zstd-1 compress", Stage::Compress(1), 512.34, 990.06),
                row("zstd-19 compress", Stage::Compress(19), 4.5, 8.76),
                row("zstd decompress", Stage::Decompress, 1500.0, 2950.5),
                row("AES-256-GCM seal", Stage::Seal, 2345.6, 4600.0),
                row("blake3 keyed", Stage::Hash, 1200.0, 12345.67),
            ],
        }
    }

    #[test]
    fn renders_cpu_features_table_and_ratios() {
        let text = render(&sample(), None);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Coffer codec benchmark (offload: cpu)");
        assert_eq!(lines[1], "CPU: Test CPU 9000 (x86_64)");
        assert!(lines.contains(&"  AES-NI     yes  AES-256-GCM: AES rounds (aes crate)"));
        assert!(lines.contains(&"  VAES       no   unused: aes 0.8 has no VAES path"));
        assert!(lines.contains(&"  SHA-NI     no   unused: Coffer hashes with blake3"));

        let table: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.contains(" | "))
            .collect();
        assert_eq!(
            table,
            [
                "test             | MB/s (1 core) | MB/s (2 threads)",
                "zstd-1 compress  |         512.3 |            990.1",
                "zstd-19 compress |           4.5 |              8.8",
                "zstd decompress  |        1500.0 |           2950.5",
                "AES-256-GCM seal |        2345.6 |           4600.0",
                "blake3 keyed     |        1200.0 |          12345.7",
            ]
        );
        assert!(lines.contains(&"-----------------+---------------+-----------------"));
        assert!(lines.contains(&"  zstd-1   1.95 : 1"));
        assert!(lines.contains(&"  zstd-19  2.43 : 1"));
        assert!(!text.contains("Recommendation"));
        assert!(
            text.lines().all(|l| l == l.trim_end()),
            "no trailing spaces"
        );
    }

    #[test]
    fn columns_stay_aligned_for_any_numbers() {
        let mut report = sample();
        report.threads = 1;
        report.results[0].single_mb_s = 123_456_789.0;
        report.results[1].name = "a much longer test name than the others".into();
        let text = render(&report, None);
        let table: Vec<&str> = text.lines().filter(|l| l.contains(" | ")).collect();
        assert_eq!(table.len(), 6);
        assert!(table[0].ends_with("MB/s (1 thread)"));
        let bars = |l: &str| l.match_indices('|').map(|(i, _)| i).collect::<Vec<_>>();
        for line in &table {
            assert_eq!(bars(line), bars(table[0]), "{line}");
            assert_eq!(line.len(), table[0].len(), "{line}");
        }
    }

    #[test]
    fn renders_the_recommendation() {
        let report = sample();
        let tuning = Tuning {
            target_mb_s: 200.0,
            zstd_level: 9,
            threads: 2,
            expected_mb_s: 340.4,
            meets_target: true,
            reason: "zstd level 9 is the highest benchmarked level that reaches 200 MB/s".into(),
        };
        let text = render(&report, Some(&tuning));
        assert!(text.contains(
            "Recommendation for 200 MB/s: zstd level 9 with 2 threads, expected 340 MB/s\n  \
             zstd level 9 is the highest"
        ));
        let missed = Tuning {
            target_mb_s: 5000.0,
            zstd_level: 1,
            threads: 1,
            expected_mb_s: 512.0,
            meets_target: false,
            reason: "no benchmarked zstd level reaches 5000 MB/s".into(),
        };
        let text = render(&report, Some(&missed));
        assert!(text.contains(
            "Recommendation for 5000 MB/s: not reachable here; best is zstd level 1 with \
             1 thread, expected 512 MB/s"
        ));
    }

    #[test]
    fn unknown_model_and_arm_features() {
        let mut report = sample();
        report.features = CpuFeatures {
            arch: "aarch64".into(),
            neon: true,
            ..CpuFeatures::default()
        };
        report.zstd_ratio.clear();
        let text = render(&report, None);
        assert!(text.contains("CPU: unknown model (aarch64)"));
        assert!(text.contains("  NEON   yes  blake3, Reed-Solomon parity"));
        assert!(text.contains("  AES    no   unused unless built with --cfg aes_armv8"));
        assert!(!text.contains("AES-NI"));
        assert!(!text.contains("compression ratio"));
    }
}
