//! The tape benchmark: writing an existing store to a media set on the
//! virtual tape library, as `coffer media write` does it end to end
//! (open the store, plan the objects, read them, seal them into blocks,
//! write the cartridges, change cartridges at early warning), medians of
//! `runs`.
//!
//! The target is ≥ 1 GB/s: an LTO-9 drive streams 400 MB/s and must never
//! wait on Coffer. The library's cartridges live on tmpfs for the headline
//! figure, so the simulated drive is not the bottleneck and the figure is
//! Coffer's side of the pipeline; one run with the cartridges on the disk
//! shows what this machine's disk allows the simulation.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::data::{self, Rng};
use crate::measure::{Cmd, Runner, Sample};
use crate::report::median;

#[derive(Debug, Serialize)]
struct Results {
    store_bytes: u64,
    objects: u64,
    runs: u32,
    cartridge_capacity: u64,
    tmpfs_median_wall_s: f64,
    tmpfs_gb_s: f64,
    tmpfs_median_cpu_s: f64,
    tmpfs_median_rss_mib: f64,
    disk_wall_s: f64,
    disk_gb_s: f64,
    tmpfs: Vec<Sample>,
}

/// Bytes and count of the objects a media set copies.
fn store_objects(store: &Path) -> Result<(u64, u64)> {
    let (mut bytes, mut n) = (0, 0);
    for top in ["data", "index", "snapshots"] {
        let mut stack = vec![store.join(top)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d)? {
                let e = e?;
                let md = e.metadata()?;
                if md.is_dir() {
                    stack.push(e.path());
                } else {
                    bytes += md.len();
                    n += 1;
                }
            }
        }
    }
    Ok((bytes, n))
}

pub fn run(workdir: &Path, bin: &Path, gib: u64, runs: u32) -> Result<()> {
    let base = workdir.join("tape");
    let runner = Runner::new(&base.join("logs"))?;
    // Incompressible data, so the store is as large as the data.
    let src = base.join("data");
    if !src.join("done").exists() {
        data::remove_tree(&src)?;
        std::fs::create_dir_all(&src)?;
        let mut rng = Rng::new(7);
        let mut buf = vec![0u8; 64 << 20];
        for i in 0..gib * 16 {
            rng.fill(&mut buf);
            std::fs::write(src.join(format!("f{i:04}")), &buf)?;
        }
        std::fs::write(src.join("done"), b"")?;
    }
    let store = base.join("store");
    if !store.join("config").exists() {
        data::remove_tree(&store)?;
        runner.run("init", &Cmd::coffer(bin, &store).arg("init"))?;
        runner.run("backup", &Cmd::coffer_backup(bin, &store, "full", &src))?;
    }
    let (bytes, objects) = store_objects(&store)?;
    eprintln!(
        "tape bench: store of {objects} objects, {:.2} GB",
        bytes as f64 / 1e9
    );
    // Three cartridges or more: the write changes cartridges twice.
    let capacity = (bytes / 2 / (1 << 20)).max(64) << 20;
    let write_once = |vtl: &Path, label: &str| -> Result<Sample> {
        data::remove_tree(vtl)?;
        let lib = |c: Cmd| c.arg("--library").arg(vtl);
        runner.run(
            "vtl create",
            &Cmd::new(bin)
                .args(["--quiet", "vtl", "create"])
                .arg(vtl)
                .args(["--slots", "8", "--capacity"])
                .arg(format!("{}M", capacity >> 20))
                .args(["--early-warning", "64M"]),
        )?;
        runner.run(
            "label",
            &lib(Cmd::coffer(bin, &store).args(["media", "label", "--all-blank"])),
        )?;
        let s = runner.run(
            label,
            &lib(Cmd::coffer(bin, &store).args(["media", "write", "--new-set"])),
        )?;
        // The catalog must have recorded the whole store on the set.
        Ok(s)
    };
    let vtl_shm = data::shm_scratch("coffer-bench-vtl")?;
    let mut samples = Vec::new();
    // Warm-up, not counted: brings the store into the page cache.
    write_once(&vtl_shm, "warm-up write")?;
    for r in 0..runs {
        let s = write_once(&vtl_shm, "media write (tmpfs)")?;
        eprintln!(
            "run {}: media write to tmpfs: {:.2} s wall, {:.2} GB/s, {:.2} s CPU, {:.0} MiB peak",
            r + 1,
            s.wall_s,
            bytes as f64 / s.wall_s / 1e9,
            s.cpu_s(),
            s.max_rss_kib as f64 / 1024.0
        );
        samples.push(s);
    }
    data::remove_tree(&vtl_shm)?;
    let vtl_disk = base.join("vtl");
    let disk = write_once(&vtl_disk, "media write (disk)").context("write to a library on disk")?;
    data::remove_tree(&vtl_disk)?;
    eprintln!(
        "media write to disk: {:.2} s wall, {:.2} GB/s",
        disk.wall_s,
        bytes as f64 / disk.wall_s / 1e9
    );
    let med = |f: fn(&Sample) -> f64| median(samples.iter().map(f).collect());
    let wall = med(|s| s.wall_s);
    let res = Results {
        store_bytes: bytes,
        objects,
        runs,
        cartridge_capacity: capacity,
        tmpfs_median_wall_s: wall,
        tmpfs_gb_s: bytes as f64 / wall / 1e9,
        tmpfs_median_cpu_s: med(Sample::cpu_s),
        tmpfs_median_rss_mib: med(|s| s.max_rss_kib as f64 / 1024.0),
        disk_wall_s: disk.wall_s,
        disk_gb_s: bytes as f64 / disk.wall_s / 1e9,
        tmpfs: samples,
    };
    let mut md = String::new();
    writeln!(
        md,
        "| `coffer media write`, {:.2} GB store, {}-MiB cartridges | wall s | GB/s | CPU s | peak RSS MiB |",
        bytes as f64 / 1e9,
        capacity >> 20
    )?;
    writeln!(md, "|---|---:|---:|---:|---:|")?;
    writeln!(
        md,
        "| library on tmpfs, median of {runs} | {:.2} | {:.2} | {:.2} | {:.0} |",
        res.tmpfs_median_wall_s, res.tmpfs_gb_s, res.tmpfs_median_cpu_s, res.tmpfs_median_rss_mib
    )?;
    writeln!(
        md,
        "| library on this machine's disk, 1 run | {:.2} | {:.2} | {:.2} | {:.0} |",
        disk.wall_s,
        res.disk_gb_s,
        disk.cpu_s(),
        disk.max_rss_kib as f64 / 1024.0
    )?;
    println!("{md}");
    std::fs::write(base.join("results.md"), &md)?;
    std::fs::write(base.join("results.json"), serde_json::to_vec_pretty(&res)?)?;
    eprintln!("results: {}", base.join("results.json").display());
    Ok(())
}
