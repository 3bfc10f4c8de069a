//! One measured child process: wall time, CPU time and peak RSS, taken from
//! the kernel's accounting of that child.
//!
//! `getrusage(RUSAGE_CHILDREN)` reports the largest peak RSS of all waited-for
//! children of a process, so the bench cannot ask it about one child among
//! many. Instead every command runs under a fresh `coffer-bench measure`
//! helper whose only child is the command: the helper's RUSAGE_CHILDREN is
//! exactly that command's accounting (with any grandchildren it waited for).

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use nix::sys::resource::{UsageWho, getrusage};
use serde::{Deserialize, Serialize};

/// What one command cost.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// User CPU seconds.
    pub user_s: f64,
    /// System CPU seconds.
    pub sys_s: f64,
    /// Peak resident set size, KiB.
    pub max_rss_kib: u64,
}

impl Sample {
    /// User plus system CPU seconds.
    pub fn cpu_s(&self) -> f64 {
        self.user_s + self.sys_s
    }
}

#[derive(Serialize, Deserialize)]
struct Outcome {
    sample: Sample,
    code: Option<i32>,
}

/// The helper's body: runs `argv`, waits, writes the outcome as JSON to `out`.
pub fn helper_main(out: &Path, argv: &[OsString]) -> Result<()> {
    let Some((program, args)) = argv.split_first() else {
        bail!("measure: no command given");
    };
    let start = Instant::now();
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("start {}", program.to_string_lossy()))?;
    let wall_s = start.elapsed().as_secs_f64();
    let ru = getrusage(UsageWho::RUSAGE_CHILDREN).context("getrusage")?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    let outcome = Outcome {
        sample: Sample {
            wall_s,
            user_s: secs(ru.user_time()),
            sys_s: secs(ru.system_time()),
            // Linux reports ru_maxrss in KiB.
            max_rss_kib: u64::try_from(ru.max_rss()).unwrap_or(0),
        },
        code: status.code(),
    };
    std::fs::write(out, serde_json::to_vec(&outcome)?)
        .with_context(|| format!("write {}", out.display()))
}

/// A command to measure.
#[derive(Debug, Clone)]
pub struct Cmd {
    pub program: OsString,
    pub args: Vec<OsString>,
    pub env: Vec<(String, OsString)>,
    pub cwd: Option<PathBuf>,
}

/// The passphrase of the stores the single-tool benchmarks make.
pub const PASSPHRASE: &str = "coffer bench passphrase";

impl Cmd {
    /// `coffer --store STORE --quiet` with the benchmarks' passphrase.
    pub fn coffer(bin: &Path, store: &Path) -> Cmd {
        Cmd::new(bin)
            .env("COFFER_PASSPHRASE", PASSPHRASE)
            .arg("--store")
            .arg(store)
            .arg("--quiet")
    }

    /// `coffer … backup --asset bench --level LEVEL TREE` into `store`.
    pub fn coffer_backup(bin: &Path, store: &Path, level: &str, tree: &Path) -> Cmd {
        Cmd::coffer(bin, store)
            .args(["backup", "--asset", "bench", "--level", level])
            .arg(tree)
    }

    pub fn new(program: impl Into<OsString>) -> Cmd {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
        }
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> Cmd {
        self.args.push(a.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, a: I) -> Cmd {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, k: &str, v: impl Into<OsString>) -> Cmd {
        self.env.push((k.to_string(), v.into()));
        self
    }

    pub fn cwd(mut self, d: &Path) -> Cmd {
        self.cwd = Some(d.to_path_buf());
        self
    }

    fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Runs commands under the measuring helper, keeping each one's output in a log.
pub struct Runner {
    exe: PathBuf,
    logs: PathBuf,
    seq: AtomicU64,
}

impl Runner {
    pub fn new(logs: &Path) -> Result<Runner> {
        std::fs::create_dir_all(logs).with_context(|| format!("create {}", logs.display()))?;
        Ok(Runner {
            exe: std::env::current_exe().context("locate the bench executable")?,
            logs: logs.to_path_buf(),
            seq: AtomicU64::new(0),
        })
    }

    /// Runs `cmd`, failing with its log's tail when it does not exit 0.
    pub fn run(&self, label: &str, cmd: &Cmd) -> Result<Sample> {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let slug: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let log = self.logs.join(format!("{n:04}-{slug}.log"));
        let out = self.logs.join(format!("{n:04}-{slug}.json"));
        let logf = File::create(&log).with_context(|| format!("create {}", log.display()))?;
        // Dirty pages of the step before are written back now, not during
        // this command's measurement.
        nix::unistd::sync();
        let mut c = Command::new(&self.exe);
        c.arg("measure")
            .arg("--out")
            .arg(&out)
            .arg("--")
            .arg(&cmd.program);
        c.args(&cmd.args);
        for (k, v) in &cmd.env {
            c.env(k, v);
        }
        if let Some(d) = &cmd.cwd {
            c.current_dir(d);
        }
        c.stdin(Stdio::null())
            .stdout(logf.try_clone()?)
            .stderr(logf);
        let status = c.status().context("start the measuring helper")?;
        if !status.success() {
            bail!("measuring helper failed for {label}; see {}", log.display());
        }
        let outcome: Outcome = serde_json::from_slice(
            &std::fs::read(&out).with_context(|| format!("read {}", out.display()))?,
        )?;
        match outcome.code {
            Some(0) => Ok(outcome.sample),
            code => {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!(
                    "{label}: `{}` exited with {code:?}; log {}:\n{}",
                    cmd.display(),
                    log.display(),
                    tail.join("\n")
                )
            }
        }
    }
}
