//! `coffer benchmark`: the codec pipeline's self-benchmark on this machine
//! (`coffer-accel`), with the tuning the daemon would choose for a target.

use std::io::{IsTerminal, Write};

use anyhow::{Result, bail};
use coffer_accel::{BenchOptions, Cpu, bench, report, tune};

use crate::cli::EXIT_OK;

/// Runs the benchmark and prints the report (or JSON).
pub fn run(seconds: f64, threads: usize, target: f64, json: bool, quiet: bool) -> Result<u8> {
    if !(seconds > 0.0 && seconds <= 60.0) {
        bail!("--seconds must be above 0 and at most 60, not {seconds}");
    }
    if target.is_nan() || target <= 0.0 {
        bail!("--target must be a throughput above 0 MB/s, not {target}");
    }
    let opts = BenchOptions {
        seconds_per_test: seconds,
        threads,
        ..BenchOptions::default()
    };
    let show_progress = !quiet && !json && std::io::stderr().is_terminal();
    let mut progress = |what: &str| {
        if show_progress {
            let mut e = std::io::stderr();
            let _ = write!(e, "\r\x1b[Kmeasuring {what}…");
            let _ = e.flush();
        }
    };
    let r = bench::run(&Cpu, &opts, &mut progress)?;
    if show_progress {
        eprint!("\r\x1b[K");
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let t = tune::choose(&r, target, cores);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "report": r,
                "tuning": t,
                "target_mb_s": target,
            }))?
        );
    } else {
        print!("{}", report::render(&r, Some(&t)));
    }
    Ok(EXIT_OK)
}
