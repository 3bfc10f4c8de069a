//! The scale run: a tree of generated small files grows to a million, and at
//! evenly spaced points each tool backs it up in full and again unchanged.
//! Time and peak RSS against file count show whether memory stays flat.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::data::{self, Rng};
use crate::measure::{Runner, Sample};
use crate::tools::{Session, Tool};

const PER_DIR: u64 = 1000;
const WORDS: [&str; 16] = [
    "backup",
    "restore",
    "tape",
    "disk",
    "pool",
    "chunk",
    "index",
    "snapshot",
    "verify",
    "retention",
    "offsite",
    "audit",
    "vault",
    "media",
    "rotation",
    "key",
];

fn file_path(root: &Path, i: u64) -> PathBuf {
    root.join(format!("d{:04}", i / PER_DIR))
        .join(format!("f{:03}.txt", i % PER_DIR))
}

/// Small text files (100 B to 4 KiB), each unique, from a fixed seed.
fn content(i: u64) -> Vec<u8> {
    let mut rng = Rng::new(i ^ 0x5ca1_e000);
    let len = 100 + rng.below(4000) as usize;
    let mut s = format!("file {i}\n");
    while s.len() < len {
        s.push_str(WORDS[rng.below(16) as usize]);
        s.push(if rng.below(8) == 0 { '\n' } else { ' ' });
    }
    s.truncate(len);
    s.into_bytes()
}

/// Adds files `from..to` to the tree, on two threads.
fn grow(root: &Path, from: u64, to: u64) -> Result<()> {
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..2u64)
            .map(|w| {
                s.spawn(move || -> Result<()> {
                    for i in (from..to).filter(|i| (i / PER_DIR) % 2 == w) {
                        let p = file_path(root, i);
                        if (i % PER_DIR == 0 || i == from)
                            && let Some(d) = p.parent()
                        {
                            fs::create_dir_all(d)?;
                        }
                        fs::write(&p, content(i))?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("generator thread panicked")))
            })
            .collect::<Result<Vec<()>>>()
    })?;
    Ok(())
}

#[derive(Serialize)]
struct Point {
    files: u64,
    tool: Tool,
    full: Sample,
    unchanged: Sample,
    repo_bytes: u64,
}

pub fn run(workdir: &Path, coffer: &Path, tools: &[Tool], files: u64, points: u64) -> Result<()> {
    let base = workdir.join("scale");
    let tree = base.join("tree");
    // always start from an empty tree so the file count is exact
    data::remove_tree(&tree)?;
    fs::create_dir_all(&tree)?;
    let runner = Runner::new(&base.join("logs"))?;
    let mut have = 0;
    let mut out = Vec::new();
    for k in 1..=points.max(1) {
        let n = files * k / points.max(1);
        eprintln!("scale: generating files {have}..{n}");
        grow(&tree, have, n)?;
        have = n;
        for &tool in tools {
            let dir = base.join(tool.name());
            data::remove_tree(&dir)?;
            fs::create_dir_all(&dir)?;
            let mut s = Session::new(tool, coffer, &dir);
            let label = |what: &str| format!("{n}-{}-{what}", tool.name());
            runner.run(&label("init"), &s.init())?;
            let c = s.backup(&tree);
            let full = runner.run(&label("full"), &c)?;
            let c = s.backup(&tree);
            let unchanged = runner.run(&label("unchanged"), &c)?;
            let repo_bytes = data::dir_bytes(&s.repo)?;
            eprintln!(
                "  {} {n} files: full {:.1} s {:.0} MiB, unchanged {:.1} s {:.0} MiB",
                tool.name(),
                full.wall_s,
                full.max_rss_kib as f64 / 1024.0,
                unchanged.wall_s,
                unchanged.max_rss_kib as f64 / 1024.0
            );
            out.push(Point {
                files: n,
                tool,
                full,
                unchanged,
                repo_bytes,
            });
            data::remove_tree(&dir)?;
        }
    }
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| files | tool | full s | full RSS MiB | unchanged s | unchanged RSS MiB | repo MB |"
    );
    let _ = writeln!(t, "|---:|---|---:|---:|---:|---:|---:|");
    for p in &out {
        let _ = writeln!(
            t,
            "| {} | {} | {:.1} | {:.0} | {:.1} | {:.0} | {:.0} |",
            p.files,
            p.tool.name(),
            p.full.wall_s,
            p.full.max_rss_kib as f64 / 1024.0,
            p.unchanged.wall_s,
            p.unchanged.max_rss_kib as f64 / 1024.0,
            p.repo_bytes as f64 / 1e6
        );
    }
    fs::write(base.join("results.json"), serde_json::to_vec_pretty(&out)?)?;
    fs::write(base.join("results.md"), &t)?;
    println!("{t}\nresults: {}", base.join("results.md").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files_are_fixed_and_distinct() {
        assert_eq!(content(5), content(5));
        assert_ne!(content(5), content(6));
        for i in 0..200 {
            let c = content(i);
            assert!((100..4100).contains(&c.len()));
        }
        assert!(file_path(Path::new("/t"), 1234).ends_with("d0001/f234.txt"));
    }
}
