//! `coffer-bench`: Coffer, restic and borg side by side on the same real
//! data, in one run, reported as ratios (see `docs/performance.md`).
//!
//! `coffer-bench compare` fetches two consecutive versions of a large Debian
//! source package (or takes two directories), installs the peers from
//! Debian's packages, and runs every tool through init, full backup,
//! unchanged re-backup, a seeded 1% change, an upgrade to the next version,
//! restore (checked identical), verify with all data read, and retention;
//! each figure is the median of `--runs` runs. `coffer-bench scale` measures
//! time and peak RSS against file count on generated small files.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod codec;
mod data;
mod gc;
mod measure;
mod pool;
mod replicate;
mod report;
mod scale;
mod tape;
mod tools;

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::measure::Runner;
use crate::report::{Record, Sizes, Step};
use crate::tools::{Session, Tool};

#[derive(Parser, Debug)]
#[command(
    name = "coffer-bench",
    about = "Coffer against restic and borg, side by side"
)]
struct Cli {
    /// Where data, repositories, logs and results go.
    #[arg(long, global = true, default_value = "target/bench")]
    workdir: PathBuf,
    /// The coffer binary (default: build it with cargo, release profile).
    #[arg(long, global = true)]
    coffer: Option<PathBuf>,
    /// Tools to run, comma-separated.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "coffer,restic,borg"
    )]
    tools: Vec<String>,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand, Debug, Clone)]
enum Cmd {
    /// The side-by-side comparison (the default).
    Compare(CompareOpts),
    /// Time and peak RSS against file count, on generated small files.
    Scale {
        /// Files at the largest point.
        #[arg(long, default_value_t = 1_000_000)]
        files: u64,
        /// Measured points, evenly spaced up to --files.
        #[arg(long, default_value_t = 4)]
        points: u64,
    },
    /// Only the per-core codec throughput on a directory's files.
    Codec {
        /// The directory to sample.
        dir: PathBuf,
    },
    /// Erasure-coding throughput per core, and a full backup onto a
    /// 6-member pool against the same backup onto one directory.
    Pool {
        /// Runs per figure; each figure is the median.
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// The tree to back up (default: linux-source 6.1.190-1 from Debian).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Only the encode throughput.
        #[arg(long)]
        encode_only: bool,
    },
    /// Writing an existing store to a media set on the virtual tape library.
    Tape {
        /// Runs; the figure is the median.
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// GiB of incompressible data in the store.
        #[arg(long, default_value_t = 2)]
        gib: u64,
    },
    /// Replication over TLS on loopback: a full push against a plain TLS
    /// stream, and the bytes an upgrade's push puts on the link against
    /// the objects the upgrade added.
    Replicate {
        /// Runs; each figure is the median.
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// Two Debian versions of linux-source-6.1 (older, newer).
        #[arg(long, num_args = 2, default_values = ["6.1.190-1", "6.1.192-1"])]
        versions: Vec<String>,
        /// Two directories instead of the Debian trees (older, newer).
        #[arg(long, num_args = 2)]
        dirs: Option<Vec<PathBuf>>,
    },
    /// Reclaiming space after the daily prune, at growing snapshot
    /// counts: Coffer's gc (and `gc --full`), restic's prune, borg's
    /// compact.
    Gc {
        /// Files in the generated tree.
        #[arg(long, default_value_t = 10_000)]
        files: u64,
        /// Snapshot counts to measure at (comma-separated).
        #[arg(long, value_delimiter = ',', default_values_t = [8u32, 32])]
        points: Vec<u32>,
        /// Daily steps per point; each figure is the median.
        #[arg(long, default_value_t = 3)]
        runs: u32,
    },
    /// Internal: run one command and write its kernel accounting as JSON.
    #[command(hide = true)]
    Measure {
        #[arg(long)]
        out: PathBuf,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        argv: Vec<OsString>,
    },
}

#[derive(clap::Args, Debug, Clone)]
struct CompareOpts {
    /// Runs per figure; each figure is the median.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Two Debian versions of linux-source-6.1 (older, newer).
    #[arg(long, num_args = 2, default_values = ["6.1.190-1", "6.1.192-1"])]
    versions: Vec<String>,
    /// Two directories instead of the Debian trees (older, newer).
    #[arg(long, num_args = 2)]
    dirs: Option<Vec<PathBuf>>,
    /// Seed of the 1% mutation.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
}

impl Default for CompareOpts {
    fn default() -> Self {
        CompareOpts {
            runs: 3,
            versions: vec!["6.1.190-1".into(), "6.1.192-1".into()],
            dirs: None,
            seed: 2026,
        }
    }
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("coffer-bench: error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(Cmd::Measure { out, argv }) = &cli.cmd {
        return measure::helper_main(out, argv);
    }
    let tools = cli
        .tools
        .iter()
        .map(|t| {
            Tool::parse(t).with_context(|| format!("unknown tool '{t}' (coffer, restic, borg)"))
        })
        .collect::<Result<Vec<_>>>()?;
    std::fs::create_dir_all(&cli.workdir)?;
    let workdir = std::fs::canonicalize(&cli.workdir)?;
    match cli
        .cmd
        .clone()
        .unwrap_or(Cmd::Compare(CompareOpts::default()))
    {
        Cmd::Compare(opts) => {
            let coffer = coffer_binary(cli.coffer.as_deref())?;
            compare(&workdir, &coffer, &tools, &opts)
        }
        Cmd::Scale { files, points } => {
            let coffer = coffer_binary(cli.coffer.as_deref())?;
            if tools.iter().any(|t| *t != Tool::Coffer) {
                data::ensure_peers()?;
            }
            scale::run(&workdir, &coffer, &tools, files, points)
        }
        Cmd::Codec { dir } => {
            let c = codec::measure(&dir, 256 << 20)?;
            println!("{}", serde_json::to_string_pretty(&c)?);
            Ok(())
        }
        Cmd::Pool {
            runs,
            dir,
            encode_only,
        } => {
            if encode_only {
                for (k, m) in [(4, 2), (2, 2), (8, 4)] {
                    let e = pool::encode(k, m, 64 * 1024, 512 << 20)?;
                    println!("{}", serde_json::to_string(&e)?);
                }
                return Ok(());
            }
            let tree = match dir {
                Some(d) => std::fs::canonicalize(d)?,
                None => {
                    let dd = workdir.join("data");
                    std::fs::create_dir_all(&dd)?;
                    data::debian_tree(&dd, "6.1.190-1")?
                }
            };
            let coffer = coffer_binary(cli.coffer.as_deref())?;
            pool::run(&workdir, &coffer, &tree, runs)
        }
        Cmd::Tape { runs, gib } => {
            let coffer = coffer_binary(cli.coffer.as_deref())?;
            tape::run(&workdir, &coffer, gib, runs)
        }
        Cmd::Replicate {
            runs,
            versions,
            dirs,
        } => {
            let (old, new) = match dirs {
                Some(d) => (std::fs::canonicalize(&d[0])?, std::fs::canonicalize(&d[1])?),
                None => {
                    let dd = workdir.join("data");
                    std::fs::create_dir_all(&dd)?;
                    (
                        data::debian_tree(&dd, &versions[0])?,
                        data::debian_tree(&dd, &versions[1])?,
                    )
                }
            };
            let coffer = coffer_binary(cli.coffer.as_deref())?;
            replicate::run(&workdir, &coffer, &old, &new, runs)
        }
        Cmd::Gc {
            files,
            points,
            runs,
        } => {
            let coffer = coffer_binary(cli.coffer.as_deref())?;
            if tools.iter().any(|t| *t != Tool::Coffer) {
                data::ensure_peers()?;
            }
            gc::run(&workdir, &coffer, &tools, files, &points, runs)
        }
        Cmd::Measure { .. } => unreachable!("handled above"),
    }
}

/// The coffer binary: the one given, or a fresh release build of this workspace.
fn coffer_binary(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = given {
        return std::fs::canonicalize(p).with_context(|| format!("coffer binary {}", p.display()));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    eprintln!("building coffer (release)");
    let st = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--release", "--locked", "-q", "-p", "coffer"])
        .current_dir(&root)
        .status()
        .context("run cargo")?;
    if !st.success() {
        bail!("cargo build of coffer failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(std::fs::canonicalize(target.join("release/coffer"))?)
}

#[derive(Serialize)]
struct Machine {
    cpus: usize,
    cpu_model: String,
    mem_gib: f64,
    kernel: String,
    filesystem: String,
}

fn machine(workdir: &Path) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let mem_kib: f64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let out = |c: &mut Command| {
        c.output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    Machine {
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        cpu_model,
        mem_gib: mem_kib / 1024.0 / 1024.0,
        kernel: out(Command::new("uname").arg("-r")),
        filesystem: out(Command::new("stat").args(["-f", "-c", "%T"]).arg(workdir)),
    }
}

#[derive(Serialize)]
struct Report {
    restore_on_tmpfs: bool,
    machine: Machine,
    versions: std::collections::BTreeMap<&'static str, String>,
    data: [(String, data::TreeSize); 2],
    mutation: data::Mutation,
    runs: u32,
    codec: codec::Codec,
    /// Seconds the codec stages alone need for the full backup on all cores.
    codec_limit_full_s: f64,
    medians: Vec<report::Median>,
    repo_sizes: Vec<(Tool, &'static str, Vec<u64>)>,
    records: Vec<Record>,
}

fn compare(workdir: &Path, coffer: &Path, tools: &[Tool], opts: &CompareOpts) -> Result<()> {
    if tools.iter().any(|t| *t != Tool::Coffer) {
        data::ensure_peers()?;
    }
    let (a, b) = match &opts.dirs {
        Some(d) => (std::fs::canonicalize(&d[0])?, std::fs::canonicalize(&d[1])?),
        None => {
            let dd = workdir.join("data");
            std::fs::create_dir_all(&dd)?;
            (
                data::debian_tree(&dd, &opts.versions[0])?,
                data::debian_tree(&dd, &opts.versions[1])?,
            )
        }
    };
    let (size_a, size_b) = (data::tree_size(&a)?, data::tree_size(&b)?);
    eprintln!(
        "data: {} ({} files, {:.2} GB) -> {} ({} files, {:.2} GB)",
        a.display(),
        size_a.files,
        size_a.bytes as f64 / 1e9,
        b.display(),
        size_b.files,
        size_b.bytes as f64 / 1e9
    );
    eprintln!("measuring the codec limit");
    let codec = codec::measure(&a, 256 << 20)?;
    let m = machine(workdir);
    let codec_limit_full_s = codec.limit_s(size_a.bytes, m.cpus);

    let runner = Runner::new(&workdir.join("logs"))?;
    let src = workdir.join("src");
    // Restores land on a tmpfs: repeated creation and deletion of 80,000
    // files makes ext4's inode allocator scan "recently deleted" inodes,
    // which swamps the tools' own work (seen here: restore times ×10).
    let restore_fs = workdir.join("restore-fs");
    let restore_on_tmpfs = data::mount_tmpfs(&restore_fs, size_b.bytes * 2 + (1 << 30));
    let mut records = Vec::new();
    let mut sizes = Sizes::new();
    let mut mutation = data::Mutation::default();
    for run in 1..=opts.runs {
        for &tool in tools {
            eprintln!("run {run}/{}: {}", opts.runs, tool.name());
            let dir = workdir.join(format!("run-{}", tool.name()));
            data::remove_tree(&dir)?;
            std::fs::create_dir_all(&dir)?;
            data::copy_tree(&a, &src)?;
            let mut s = Session::new(tool, coffer, &dir);
            let mut rec = |step: Step, sample, bytes| {
                records.push(Record {
                    run,
                    tool,
                    step,
                    sample,
                    bytes,
                });
            };
            let label = |step: Step| format!("{run}-{}-{}", tool.name(), step.label());

            rec(Step::Init, runner.run(&label(Step::Init), &s.init())?, 0);
            let c = s.backup(&src);
            rec(
                Step::Full,
                runner.run(&label(Step::Full), &c)?,
                size_a.bytes,
            );
            let c = s.backup(&src);
            rec(
                Step::Unchanged,
                runner.run(&label(Step::Unchanged), &c)?,
                size_a.bytes,
            );
            mutation = data::mutate(&src, opts.seed)?;
            let c = s.backup(&src);
            rec(
                Step::Change1pct,
                runner.run(&label(Step::Change1pct), &c)?,
                size_a.bytes,
            );
            data::copy_tree(&b, &src)?;
            let c = s.backup(&src);
            rec(
                Step::Upgrade,
                runner.run(&label(Step::Upgrade), &c)?,
                size_b.bytes,
            );
            let repo_bytes = data::dir_bytes(&s.repo)?;
            sizes
                .entry((tool, report::AFTER_BACKUPS))
                .or_default()
                .push(repo_bytes);

            let target = restore_fs.join(tool.name());
            std::fs::create_dir_all(&target)?;
            let (c, landed) = s.restore(&src, &target);
            rec(
                Step::Restore,
                runner.run(&label(Step::Restore), &c)?,
                size_b.bytes,
            );
            data::compare_trees(&src, &landed).with_context(|| {
                format!(
                    "{} restored a tree that differs from the source",
                    tool.name()
                )
            })?;
            data::remove_tree(&target)?;

            rec(
                Step::Verify,
                runner.run(&label(Step::Verify), &s.verify())?,
                repo_bytes,
            );
            rec(
                Step::Retention,
                runner.run(&label(Step::Retention), &s.retention())?,
                0,
            );
            sizes
                .entry((tool, report::AFTER_RETENTION))
                .or_default()
                .push(data::dir_bytes(&s.repo)?);
            data::remove_tree(&dir)?;
        }
    }
    data::remove_tree(&src)?;
    if restore_on_tmpfs {
        data::unmount(&restore_fs);
    }

    let meds = report::medians(&records);
    let table = report::table(&meds, &sizes);
    let mut versions = std::collections::BTreeMap::new();
    versions.insert("coffer", data::version_of(coffer, "--version"));
    if tools.contains(&Tool::Restic) {
        versions.insert("restic", data::version_of(Path::new("restic"), "version"));
    }
    if tools.contains(&Tool::Borg) {
        versions.insert("borg", data::version_of(Path::new("borg"), "--version"));
    }
    let full = meds
        .iter()
        .find(|m| m.tool == Tool::Coffer && m.step == Step::Full);
    let mut summary = String::new();
    summary.push_str(&format!(
        "machine: {} × {}, {:.0} GiB, Linux {}, {} ; {}\n",
        m.cpus,
        m.cpu_model,
        m.mem_gib,
        m.kernel,
        m.filesystem,
        versions.values().cloned().collect::<Vec<_>>().join(", ")
    ));
    summary.push_str(&format!(
        "codec per core: chunking {:.0} MB/s, blake3 {:.0} MB/s, zstd-3 {:.0} MB/s (ratio {:.2}), AES-256-GCM {:.0} MB/s; \
         all four {:.0} MB/s per core -> limit {:.2} s for the full backup on {} cores",
        codec.chunk_mbps,
        codec.blake3_mbps,
        codec.zstd3_mbps,
        codec.zstd3_ratio,
        codec.aes_gcm_mbps,
        codec.pipeline_mbps_per_core,
        codec_limit_full_s,
        m.cpus
    ));
    if let Some(f) = full {
        summary.push_str(&format!(
            "; Coffer's full backup reached {:.0}% of it",
            100.0 * codec_limit_full_s / f.wall_s
        ));
    }
    summary.push_str(&format!(
        "\nrestores into {}; repositories and sources on {}; warm page cache; sync before every step\n",
        if restore_on_tmpfs { "tmpfs" } else { "the workdir's filesystem" },
        m.filesystem
    ));
    let rep = Report {
        restore_on_tmpfs,
        machine: m,
        versions,
        data: [
            (a.display().to_string(), size_a),
            (b.display().to_string(), size_b),
        ],
        mutation,
        runs: opts.runs,
        codec,
        codec_limit_full_s,
        medians: meds,
        repo_sizes: sizes
            .iter()
            .map(|((t, w), v)| (*t, *w, v.clone()))
            .collect(),
        records,
    };
    let json = workdir.join("results.json");
    std::fs::write(&json, serde_json::to_vec_pretty(&rep)?)?;
    let md = workdir.join("results.md");
    std::fs::write(&md, format!("{summary}\n{table}"))?;
    let mut so = std::io::stdout().lock();
    writeln!(so, "{summary}\n{table}")?;
    writeln!(so, "results: {} and {}", json.display(), md.display())?;
    Ok(())
}
