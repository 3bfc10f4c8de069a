//! The pool benchmark: erasure-coding throughput per core, and a full
//! backup onto a 6-member pool against the same backup onto one directory,
//! in one run, alternating, medians of `runs`.
//!
//! The six members are directories on the same filesystem as the directory
//! store, so the comparison measures what the pool adds (coding, hashing,
//! 1.5× the bytes written, six files per object) and not disk parallelism.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use coffer_pool::shard::{Coder, block_hash};
use serde::Serialize;

use crate::data::{self, Rng};
use crate::measure::{Cmd, Runner, Sample};
use crate::report::median;

/// Throughput of one core on one geometry.
#[derive(Debug, Serialize)]
pub struct Encode {
    pub geometry: String,
    pub block_kib: usize,
    /// Reed-Solomon parity only: data bytes in per second.
    pub rs_gb_s: f64,
    /// Parity plus the blake3 of every data and parity block: the shard
    /// pipeline's CPU work per byte of object.
    pub rs_and_hashes_gb_s: f64,
}

/// Per-core encode throughput over `total` bytes of random data.
pub fn encode(k: usize, m: usize, block: usize, total: usize) -> Result<Encode> {
    let mut data = vec![0u8; (total / (k * block)).max(1) * k * block];
    Rng::new(42).fill(&mut data);
    let mut coder = Coder::new(k, m);
    let mut parity = vec![Vec::new(); m];
    let run = |hashes: bool, coder: &mut Coder, parity: &mut Vec<Vec<u8>>| -> Result<f64> {
        // best of three passes: the machine is shared
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            for (s, stripe) in data.chunks(k * block).enumerate() {
                let blocks: Vec<&[u8]> = stripe.chunks(block).collect();
                coder.encode(&blocks, parity).map_err(anyhow::Error::msg)?;
                if hashes {
                    for (i, b) in blocks.iter().enumerate() {
                        std::hint::black_box(block_hash(s as u64, i as u8, b));
                    }
                    for (i, p) in parity.iter().enumerate() {
                        std::hint::black_box(block_hash(s as u64, (k + i) as u8, p));
                    }
                }
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        Ok(data.len() as f64 / best / 1e9)
    };
    let rs = run(false, &mut coder, &mut parity)?;
    let both = run(true, &mut coder, &mut parity)?;
    Ok(Encode {
        geometry: format!("{k}+{m}"),
        block_kib: block / 1024,
        rs_gb_s: rs,
        rs_and_hashes_gb_s: both,
    })
}

#[derive(Debug, Serialize)]
struct Results {
    tree: PathBuf,
    files: u64,
    bytes: u64,
    runs: u32,
    encode: Vec<Encode>,
    dir: Vec<Sample>,
    pool: Vec<Sample>,
    dir_median_wall_s: f64,
    pool_median_wall_s: f64,
    pool_over_dir_wall: f64,
    dir_median_cpu_s: f64,
    pool_median_cpu_s: f64,
    dir_median_rss_mib: f64,
    pool_median_rss_mib: f64,
}

pub fn run(workdir: &Path, bin: &Path, tree: &Path, runs: u32) -> Result<()> {
    let size = data::tree_size(tree)?;
    eprintln!(
        "pool bench: {} ({} files, {:.2} GB), {runs} runs",
        tree.display(),
        size.files,
        size.bytes as f64 / 1e9
    );
    let mut enc = Vec::new();
    for (k, m) in [(4, 2), (2, 2), (8, 4)] {
        let e = encode(k, m, 64 * 1024, 512 << 20)?;
        eprintln!(
            "encode {}: {:.2} GB/s per core (RS), {:.2} GB/s with block hashes",
            e.geometry, e.rs_gb_s, e.rs_and_hashes_gb_s
        );
        enc.push(e);
    }
    let base = workdir.join("pool");
    let runner = Runner::new(&base.join("logs"))?;
    let (mut dir_s, mut pool_s) = (Vec::new(), Vec::new());
    // Warm-up, not counted: the first pass over the tree reads it from
    // disk, the others from the page cache.
    {
        data::remove_tree(&base.join("run"))?;
        let store = base.join("run/store");
        std::fs::create_dir_all(base.join("run"))?;
        runner.run("warm-up init", &Cmd::coffer(bin, &store).arg("init"))?;
        runner.run(
            "warm-up backup",
            &Cmd::coffer_backup(bin, &store, "full", tree),
        )?;
    }
    for r in 0..runs {
        // alternate which goes first
        let order: [bool; 2] = if r % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for on_pool in order {
            data::remove_tree(&base.join("run"))?;
            let run = base.join("run");
            std::fs::create_dir_all(&run)?;
            let store = run.join("store");
            if on_pool {
                let members: Vec<PathBuf> =
                    (0..6).map(|i| run.join(format!("member{i}"))).collect();
                for m in &members {
                    std::fs::create_dir_all(m)?;
                }
                runner.run(
                    "pool create",
                    &Cmd::new(bin)
                        .args(["--quiet", "pool", "create", "--allow-same-device"])
                        .args(members.iter().map(|m| m.clone().into_os_string())),
                )?;
                runner.run(
                    "init on pool",
                    &Cmd::coffer(bin, &store)
                        .arg("init")
                        .arg("--pool")
                        .arg(&members[0]),
                )?;
            } else {
                runner.run("init on dir", &Cmd::coffer(bin, &store).arg("init"))?;
            }
            let label = if on_pool {
                "backup to pool"
            } else {
                "backup to dir"
            };
            let s = runner.run(label, &Cmd::coffer_backup(bin, &store, "full", tree))?;
            eprintln!(
                "run {}: {label}: {:.2} s wall, {:.2} s CPU, {:.0} MiB peak",
                r + 1,
                s.wall_s,
                s.cpu_s(),
                s.max_rss_kib as f64 / 1024.0
            );
            if on_pool {
                pool_s.push(s);
            } else {
                dir_s.push(s);
            }
        }
    }
    data::remove_tree(&base.join("run"))?;
    let med = |v: &[Sample], f: fn(&Sample) -> f64| median(v.iter().map(f).collect());
    let res = Results {
        tree: tree.to_path_buf(),
        files: size.files,
        bytes: size.bytes,
        runs,
        dir_median_wall_s: med(&dir_s, |s| s.wall_s),
        pool_median_wall_s: med(&pool_s, |s| s.wall_s),
        pool_over_dir_wall: med(&pool_s, |s| s.wall_s) / med(&dir_s, |s| s.wall_s),
        dir_median_cpu_s: med(&dir_s, Sample::cpu_s),
        pool_median_cpu_s: med(&pool_s, Sample::cpu_s),
        dir_median_rss_mib: med(&dir_s, |s| s.max_rss_kib as f64 / 1024.0),
        pool_median_rss_mib: med(&pool_s, |s| s.max_rss_kib as f64 / 1024.0),
        encode: enc,
        dir: dir_s,
        pool: pool_s,
    };
    let mut md = String::new();
    writeln!(
        md,
        "| encode (1 core, 64 KiB blocks) | RS GB/s | RS + block hashes GB/s |"
    )?;
    writeln!(md, "|---|---:|---:|")?;
    for e in &res.encode {
        writeln!(
            md,
            "| {} | {:.2} | {:.2} |",
            e.geometry, e.rs_gb_s, e.rs_and_hashes_gb_s
        )?;
    }
    writeln!(md)?;
    writeln!(
        md,
        "| full backup, median of {runs} | wall s | CPU s | peak RSS MiB |"
    )?;
    writeln!(md, "|---|---:|---:|---:|")?;
    writeln!(
        md,
        "| one directory | {:.2} | {:.2} | {:.0} |",
        res.dir_median_wall_s, res.dir_median_cpu_s, res.dir_median_rss_mib
    )?;
    writeln!(
        md,
        "| 6-member pool (4+2) | {:.2} | {:.2} | {:.0} |",
        res.pool_median_wall_s, res.pool_median_cpu_s, res.pool_median_rss_mib
    )?;
    writeln!(md)?;
    writeln!(
        md,
        "pool / directory wall time: {:.3}",
        res.pool_over_dir_wall
    )?;
    println!("{md}");
    std::fs::write(base.join("results.md"), &md)?;
    std::fs::write(base.join("results.json"), serde_json::to_vec_pretty(&res)?)?;
    eprintln!("results: {}", base.join("results.json").display());
    Ok(())
}
