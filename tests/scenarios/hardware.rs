//! `coffer benchmark`: the codec self-benchmark as an operator runs it, on
//! this machine's CPU (no daemon, no store). Figures are not asserted —
//! they depend on the machine and its load — only that every stage was
//! measured and a tuning chosen.

use std::process::Command;

use serde_json::Value;

use crate::support::coffer_bin;

#[test]
fn the_benchmark_measures_every_stage_and_recommends_a_setting() {
    let out = Command::new(coffer_bin())
        .args(["--json", "benchmark", "--seconds", "0.01", "--target", "50"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v["report"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for want in [
        "zstd-1 compress",
        "zstd-19 compress",
        "zstd decompress",
        "AES-256-GCM seal",
        "AES-256-GCM open",
        "blake3 keyed",
        "Reed-Solomon 4+2 parity",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for r in v["report"]["results"].as_array().unwrap() {
        assert!(r["single_mb_s"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["parallel_mb_s"].as_f64().unwrap() > 0.0, "{r}");
    }
    assert_eq!(v["target_mb_s"], 50.0);
    let level = v["tuning"]["zstd_level"].as_i64().unwrap();
    assert!([1, 3, 9, 19].contains(&level), "{v}");
    assert!(v["tuning"]["threads"].as_u64().unwrap() >= 1);
    assert_eq!(v["report"]["features"]["arch"], std::env::consts::ARCH);
}

#[test]
fn nonsense_benchmark_options_are_refused() {
    for (args, want) in [
        (
            &["benchmark", "--seconds", "0"][..],
            "--seconds must be above 0",
        ),
        (
            &["benchmark", "--target", "0"][..],
            "--target must be a throughput",
        ),
    ] {
        let out = Command::new(coffer_bin()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
