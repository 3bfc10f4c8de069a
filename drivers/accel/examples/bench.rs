//! Runs the codec self-benchmark on the CPU and prints the report with a
//! tuning recommendation.
//!
//! ```sh
//! cargo run --release -p coffer-accel --example bench [-- TARGET_MB_S [SECONDS_PER_TEST]]
//! ```

use coffer_accel::{BenchOptions, Cpu, bench, report, tune};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let target: f64 = args.next().map_or(Ok(200.0), |a| a.parse())?;
    let seconds: f64 = args.next().map_or(Ok(0.3), |a| a.parse())?;
    let opts = BenchOptions {
        seconds_per_test: seconds,
        ..BenchOptions::default()
    };
    let report = bench::run(&Cpu, &opts, &mut |line| eprintln!("  {line}"))?;
    let tuning = tune::choose(&report, target, report.threads);
    print!("{}", report::render(&report, Some(&tuning)));
    Ok(())
}
