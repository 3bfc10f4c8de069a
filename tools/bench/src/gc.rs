//! The garbage collection benchmark: does reclaiming space after the daily
//! prune cost what changed, or what the repository holds?
//!
//! Each tool backs up a generated tree once a day (a few percent of its
//! files rewritten, some added, some deleted) until its repository holds
//! `P` snapshots, for each point `P` of `--points`. At each point it then
//! runs the steady-state day `--runs` times: one more backup, forget the
//! oldest snapshot (keep the last `P`), and reclaim the space: Coffer's
//! `prune` then `gc`, restic's `forget` then `prune`, borg's `prune` then
//! `compact`. The figure is the reclaim step's median time at each point;
//! its growth from the smallest to the largest point says whether the cost
//! follows the repository's size. Coffer's `gc --full` (every manifest
//! read, every container examined: what `gc` cost before its mark cache)
//! is measured at each point too.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::data::{self, Rng};
use crate::measure::{Runner, Sample};
use crate::report::median;
use crate::tools::{Session, Tool};

fn file_path(root: &Path, i: u64) -> PathBuf {
    root.join(format!("d{:03}", i / 500))
        .join(format!("f{:05}.bin", i % 500))
}

/// File `i`'s content in version `v`: 1 to 16 KiB, half compressible.
fn content(i: u64, v: u64) -> Vec<u8> {
    let mut rng = Rng::new(i.wrapping_mul(0x9E37_79B9) ^ v.wrapping_mul(0x85EB_CA6B) ^ 0x6c);
    let len = 1024 + rng.below(15 * 1024) as usize;
    (0..len)
        .map(|k| {
            if k % 2 == 0 {
                rng.next() as u8
            } else {
                b'a' + (k % 26) as u8
            }
        })
        .collect()
}

/// The generated tree and its changes, from a fixed seed.
struct Tree {
    root: PathBuf,
    files: u64,
    next: u64,
    rng: Rng,
    version: u64,
}

impl Tree {
    fn create(root: &Path, files: u64) -> Result<Tree> {
        data::remove_tree(root)?;
        for i in 0..files {
            let p = file_path(root, i);
            if i % 500 == 0
                && let Some(d) = p.parent()
            {
                fs::create_dir_all(d)?;
            }
            fs::write(&p, content(i, 0))?;
        }
        Ok(Tree {
            root: root.to_path_buf(),
            files,
            next: files,
            rng: Rng::new(2026),
            version: 0,
        })
    }

    /// One day's changes: 2 % of the files rewritten, 0.5 % deleted, 0.5 %
    /// added.
    fn day(&mut self) -> Result<()> {
        self.version += 1;
        let n = (self.files / 50).max(1);
        for _ in 0..n {
            let i = self.rng.below(self.next);
            let p = file_path(&self.root, i);
            if p.exists() {
                fs::write(&p, content(i, self.version))?;
            }
        }
        for _ in 0..(n / 4).max(1) {
            let i = self.rng.below(self.next);
            let _ = fs::remove_file(file_path(&self.root, i));
            let p = file_path(&self.root, self.next);
            if let Some(d) = p.parent() {
                fs::create_dir_all(d)?;
            }
            fs::write(&p, content(self.next, self.version))?;
            self.next += 1;
        }
        Ok(())
    }
}

/// Forgetting every snapshot but the newest, from the largest point.
#[derive(Serialize)]
struct ToOne {
    tool: Tool,
    from: u32,
    sample: Sample,
}

#[derive(Serialize)]
struct Point {
    tool: Tool,
    snapshots: u32,
    forget: Sample,
    reclaim: Sample,
    /// Coffer only: `gc --full` on the same repository.
    full_gc: Option<Sample>,
    repo_bytes: u64,
}

pub fn run(
    workdir: &Path,
    coffer: &Path,
    tools: &[Tool],
    files: u64,
    points: &[u32],
    runs: u32,
) -> Result<()> {
    let base = workdir.join("gc");
    let runner = Runner::new(&base.join("logs"))?;
    let mut out = Vec::new();
    let mut down = Vec::new();
    let mut points = points.to_vec();
    points.sort_unstable();
    for &tool in tools {
        eprintln!("gc: {} on {files} generated files", tool.name());
        let mut tree = Tree::create(&base.join("tree"), files)?;
        let dir = base.join(tool.name());
        data::remove_tree(&dir)?;
        fs::create_dir_all(&dir)?;
        let mut s = Session::new(tool, coffer, &dir);
        let label = |what: &str| format!("{}-{what}", tool.name());
        runner.run(&label("init"), &s.init())?;
        let mut snapshots = 0u32;
        for &p in &points {
            while snapshots < p {
                tree.day()?;
                let c = s.backup(&tree.root);
                runner.run(&label("backup"), &c)?;
                snapshots += 1;
            }
            let (mut forget, mut reclaim) = (Vec::new(), Vec::new());
            for _ in 0..runs.max(1) {
                tree.day()?;
                let c = s.backup(&tree.root);
                runner.run(&label("backup"), &c)?;
                forget.push(runner.run(&label(&format!("forget-{p}")), &s.forget(p))?);
                reclaim.push(runner.run(&label(&format!("reclaim-{p}")), &s.reclaim())?);
            }
            let full_gc = if tool == Tool::Coffer {
                let c = s.reclaim().arg("--full");
                Some(runner.run(&label(&format!("full-gc-{p}")), &c)?)
            } else {
                None
            };
            let point = Point {
                tool,
                snapshots: p,
                forget: pick(&forget),
                reclaim: pick(&reclaim),
                full_gc,
                repo_bytes: data::dir_bytes(&s.repo)?,
            };
            eprintln!(
                "  {} at {p} snapshots: forget {:.2} s, reclaim {:.2} s{}",
                tool.name(),
                point.forget.wall_s,
                point.reclaim.wall_s,
                point
                    .full_gc
                    .map(|f| format!(", gc --full {:.2} s", f.wall_s))
                    .unwrap_or_default()
            );
            out.push(point);
        }
        // The retention target: the whole repository down to one snapshot.
        let c = s.forget(1);
        let to_one = runner.run(&label("forget-to-1"), &c)?;
        eprintln!(
            "  {} down to 1 snapshot from {snapshots}: {:.2} s",
            tool.name(),
            to_one.wall_s
        );
        down.push(ToOne {
            tool,
            from: snapshots,
            sample: to_one,
        });
        data::remove_tree(&dir)?;
    }
    data::remove_tree(&base.join("tree"))?;
    let mut t = table(&out);
    let _ = writeln!(t);
    let _ = writeln!(t, "| tool | forget down to 1 snapshot | from |");
    let _ = writeln!(t, "|---|---:|---:|");
    for d in &down {
        let _ = writeln!(
            t,
            "| {} | {:.2} s | {} |",
            d.tool.name(),
            d.sample.wall_s,
            d.from
        );
    }
    let json = serde_json::json!({ "points": out, "down_to_one": down });
    fs::write(base.join("results.json"), serde_json::to_vec_pretty(&json)?)?;
    fs::write(base.join("results.md"), &t)?;
    println!("{t}\nresults: {}", base.join("results.md").display());
    Ok(())
}

/// The sample with the median wall time.
fn pick(samples: &[Sample]) -> Sample {
    let walls: Vec<f64> = samples.iter().map(|s| s.wall_s).collect();
    let m = median(walls);
    samples
        .iter()
        .min_by(|a, b| (a.wall_s - m).abs().total_cmp(&(b.wall_s - m).abs()))
        .copied()
        .unwrap_or_default()
}

fn table(out: &[Point]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| tool | snapshots | forget s | reclaim s | reclaim CPU s | reclaim RSS MiB | `gc --full` s | repo MB |"
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for p in out {
        let _ = writeln!(
            t,
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.0} | {} | {:.0} |",
            p.tool.name(),
            p.snapshots,
            p.forget.wall_s,
            p.reclaim.wall_s,
            p.reclaim.cpu_s(),
            p.reclaim.max_rss_kib as f64 / 1024.0,
            p.full_gc.map_or("-".into(), |f| format!("{:.2}", f.wall_s)),
            p.repo_bytes as f64 / 1e6
        );
    }
    // Growth of the reclaim step from the smallest point to the largest.
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "| tool | reclaim growth (largest / smallest point) | reclaim vs Coffer's at the largest point |"
    );
    let _ = writeln!(t, "|---|---:|---:|");
    let at = |tool: Tool, first: bool| {
        let mut v: Vec<&Point> = out.iter().filter(|p| p.tool == tool).collect();
        v.sort_by_key(|p| p.snapshots);
        if first { v.first() } else { v.last() }.map(|p| p.reclaim.wall_s)
    };
    let coffer_last = at(Tool::Coffer, false);
    let mut tools: Vec<Tool> = out.iter().map(|p| p.tool).collect();
    tools.dedup();
    for tool in tools {
        let growth = match (at(tool, true), at(tool, false)) {
            (Some(a), Some(b)) if a > 0.0 => format!("{:.2}×", b / a),
            _ => "-".into(),
        };
        let vs = match (at(tool, false), coffer_last) {
            (Some(b), Some(c)) if c > 0.0 => format!("{:.2}×", b / c),
            _ => "-".into(),
        };
        let _ = writeln!(t, "| {} | {growth} | {vs} |", tool.name());
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files_are_fixed_and_versions_differ() {
        assert_eq!(content(5, 1), content(5, 1));
        assert_ne!(content(5, 1), content(5, 2));
        assert_ne!(content(5, 1), content(6, 1));
        for i in 0..100 {
            assert!((1024..16 * 1024).contains(&content(i, 0).len()));
        }
    }
}
