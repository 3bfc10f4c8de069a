//! Command-line parsing and the direct-mode commands.

use std::io::{IsTerminal, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use coffer_catalog::{Catalog, JobFilter};
use coffer_engine::{Actor, BackupRequest, Progress, RestoreRequest};
use coffer_keys::{KdfParams, Passphrase};
use coffer_store::{BlobStore, DirStore, InitOptions, Repo, StoreConfig};
use coffer_types::{JobKind, Level, SnapshotInfo};

use zeroize::{Zeroize, Zeroizing};

use crate::output::{Spinner, entry_json, mode_string, size};
use crate::pool_cmd::PoolLink;
use coffer_pool::Pool;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: failure.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: success with warnings.
pub const EXIT_WARNINGS: u8 = 3;

/// The exit code of a job that ended with these warnings: 0 or 3.
pub fn exit_for(warnings: &[String]) -> u8 {
    if warnings.is_empty() {
        EXIT_OK
    } else {
        EXIT_WARNINGS
    }
}
/// Exit code: verification found damage.
pub const EXIT_DAMAGED: u8 = 4;

#[derive(Parser, Debug)]
#[command(
    name = "coffer",
    version,
    about = "Coffer backup appliance: management shell and direct-mode command line",
    after_help = "Exit codes: 0 success, 1 failure, 2 usage error, 3 success with warnings, 4 verification found damage.\n\
                  The passphrase comes from COFFER_PASSPHRASE, --passphrase-file, or a prompt on a terminal."
)]
struct Cli {
    /// The store directory (direct mode).
    #[arg(long, global = true, env = "COFFER_STORE")]
    store: Option<PathBuf>,
    /// Read the passphrase from this file (first line).
    #[arg(long, global = true, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// Machine-readable JSON on standard output.
    #[arg(long, global = true)]
    json: bool,
    /// No progress display.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// More log output on standard error (-v info, -vv debug).
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// cofferd's control socket (remote mode: `shell`, `remote`).
    #[arg(
        long,
        global = true,
        env = "COFFER_SOCKET",
        value_name = "PATH",
        default_value = crate::remote::client::DEFAULT_SOCKET
    )]
    socket: PathBuf,
    /// Without a subcommand, the interactive shell opens.
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

/// A retention policy on the command line (like the profile's).
#[derive(clap::Args, Debug, Default)]
struct KeepArgs {
    /// Keep the newest N snapshots.
    #[arg(long, value_name = "N")]
    keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours with one.
    #[arg(long, value_name = "N")]
    keep_hourly: Option<u32>,
    /// … of each of the last N days.
    #[arg(long, value_name = "N")]
    keep_daily: Option<u32>,
    /// … of each of the last N ISO weeks.
    #[arg(long, value_name = "N")]
    keep_weekly: Option<u32>,
    /// … of each of the last N months.
    #[arg(long, value_name = "N")]
    keep_monthly: Option<u32>,
    /// … of each of the last N years.
    #[arg(long, value_name = "N")]
    keep_yearly: Option<u32>,
    /// Keep everything younger than this (e.g. 30d).
    #[arg(long, value_name = "DURATION")]
    keep_within: Option<coffer_types::api::Duration>,
}

impl KeepArgs {
    fn policy(&self) -> Option<coffer_types::api::Retention> {
        let r = coffer_types::api::Retention {
            keep_last: self.keep_last,
            keep_hourly: self.keep_hourly,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
            keep_within: self.keep_within,
            lock_for: None,
        };
        coffer_engine::retention::has_rules(&r).then_some(r)
    }
}

/// The words of a shell command sent to cofferd (`coffer replicate run
/// offsite` runs the shell's `replicate run offsite`).
#[derive(clap::Args, Debug)]
struct ShellWords {
    /// The command's words after the group (see the group's help).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    words: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// The interactive management shell, connected to cofferd (the default
    /// without a subcommand).
    Shell,
    /// The appliance's setup (network, time, disks and pool, store, tape
    /// library, service, first administrator): from an answers file, or
    /// asking. `setup apply` renders the saved setup (every boot);
    /// `setup check FILE` checks answers; `setup disks` lists the disks.
    Setup {
        /// The answers (TOML, every key: docs/setup.md).
        #[arg(long, value_name = "FILE")]
        answers: Option<PathBuf>,
        #[command(subcommand)]
        cmd: Option<crate::setup_cmd::SetupCmd>,
    },
    /// What the appliance's consoles (tty1, the serial console) run: the
    /// setup until it has run, then the management shell.
    Console {
        /// The console's terminal device.
        #[arg(long, value_name = "DEVICE")]
        tty: PathBuf,
    },
    /// The appliance on its development defaults: starts cofferd in this
    /// process with its store, socket, state and a sample asset and profile
    /// under DIR (simulated hardware), and opens the shell on it.
    Dev {
        /// Where the development appliance keeps everything.
        #[arg(default_value = "coffer-dev")]
        dir: PathBuf,
    },
    /// Run one shell command against cofferd, e.g. `coffer remote job list`;
    /// `coffer remote add|list|pair|remove|restore …` manage the offsite
    /// remotes (the shell's `remote …` commands).
    ///
    /// The commands are the interactive shell's (`coffer remote help` lists
    /// them); the exit code is the command's. Authenticates with the API
    /// token in COFFER_TOKEN, or a login prompt on a terminal.
    Remote {
        /// The command's words.
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "COMMAND"
        )]
        words: Vec<String>,
    },
    /// The appliance's state and health (CPU, memory, load, temperatures,
    /// disk), from cofferd: `coffer remote status`.
    Status,
    /// Offsite replication, from cofferd: `replicate run REMOTE [--watch]`
    /// queues one now, `replicate status` shows each remote's copy and each
    /// replicated asset's lag against its RPO.
    Replicate(ShellWords),
    /// The front panel, from cofferd: `panel show [--watch]` draws it as the
    /// person at the rack sees it, `panel press BUTTON` presses a button of
    /// the simulated panel (`coffer remote panel …`).
    Panel(ShellWords),
    /// Measure the codec pipeline on this machine — zstd at several levels,
    /// AES-256-GCM, keyed BLAKE3, Reed-Solomon parity — per core and on all
    /// cores, list the CPU's acceleration features, and say which zstd level
    /// and thread count reach a throughput target.
    Benchmark {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 0.5)]
        seconds: f64,
        /// Threads for the parallel figures (0 = one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// The backup throughput to plan for, MB/s of new data.
        #[arg(long, default_value_t = 200.0)]
        target: f64,
    },
    /// Create a new store with a master key sealed under a passphrase.
    Init {
        /// Seal containers at this size, in MiB (1 to 1024).
        #[arg(long, default_value_t = 32)]
        container_size_mib: u32,
        /// zstd compression level (1 to 19).
        #[arg(long, default_value_t = 3)]
        compression_level: i32,
        /// Argon2id memory in KiB for sealing the master key (default 19456,
        /// with 4 passes); more makes passphrase guessing dearer and every
        /// command that unlocks the store use that much more memory.
        #[arg(long)]
        kdf_memory_kib: Option<u32>,
        /// Keep the store's objects on this disk pool (any member's
        /// directory); the store directory keeps the catalog and a link.
        #[arg(long, value_name = "MEMBER_DIR")]
        pool: Option<PathBuf>,
    },
    /// Back up a directory as a snapshot of an asset.
    Backup {
        /// Asset (system) name, as in the asset register.
        #[arg(long)]
        asset: String,
        /// full, incremental or differential.
        #[arg(long, default_value = "full")]
        level: Level,
        /// Leave out paths matching this glob (relative path, absolute path or name); repeatable.
        #[arg(long, short = 'e')]
        exclude: Vec<String>,
        /// Do not descend into other filesystems.
        #[arg(long, short = 'x')]
        one_file_system: bool,
        /// The directory to back up.
        path: PathBuf,
    },
    /// List snapshots (from the catalog; no passphrase needed).
    Snapshots {
        /// Only this asset.
        #[arg(long)]
        asset: Option<String>,
    },
    /// Restore a snapshot (or chosen paths of it) into a directory.
    Restore {
        /// Snapshot id, unique id prefix, or "latest".
        snapshot: String,
        /// Where the snapshot's contents land (created if missing).
        #[arg(long)]
        target: PathBuf,
        /// Replace files that already exist in the target.
        #[arg(long)]
        overwrite: bool,
        /// Paths inside the snapshot (default: everything).
        paths: Vec<PathBuf>,
        /// Restore from this offsite remote's copy instead, through cofferd
        /// (an appliance's copy is pulled first; a bucket is read in place).
        #[arg(long, value_name = "REMOTE")]
        from: Option<String>,
        /// With --from: whose copy (hex store id; default this appliance's).
        #[arg(long, value_name = "ID", requires = "from")]
        store_id: Option<String>,
    },
    /// Check the store: container hashes without keys, or every chunk with --read-data.
    Verify {
        /// Decrypt and re-hash every chunk (needs the passphrase).
        #[arg(long)]
        read_data: bool,
    },
    /// Remove the snapshots retention no longer keeps. The policy is each
    /// asset's profile's (from the catalog's register), or the --keep-*
    /// options for every asset; an asset with neither keeps everything.
    /// --dry-run shows, per snapshot, whether it is kept and why, and when
    /// that ends.
    Prune {
        /// Only show the plan.
        #[arg(long)]
        dry_run: bool,
        /// Only this asset's snapshots.
        #[arg(long, value_name = "NAME")]
        asset: Option<String>,
        /// Delete this snapshot by hand, whatever the policy (repeatable);
        /// a retention lock or legal hold still protects it.
        #[arg(long, value_name = "SNAPSHOT", conflicts_with = "asset")]
        snapshot: Vec<String>,
        #[command(flatten)]
        keep: KeepArgs,
    },
    /// Delete what no snapshot references and compact mostly dead
    /// containers (after prune). Waits for running backups; they wait for it.
    Gc {
        /// Only show what would be deleted and compacted.
        #[arg(long)]
        dry_run: bool,
        /// Compact containers whose live share is below this (0 to 1).
        #[arg(long, value_name = "SHARE", default_value_t = 0.5)]
        compact_below: f64,
        /// Re-encrypt everything sealed under older key generations with
        /// the current one, then destroy the older data keys
        /// (crypto-shredding; generation 1 is the master key's own and
        /// stays).
        #[arg(long)]
        retire_old_keys: bool,
        /// Read every snapshot's manifest and examine every container,
        /// instead of only what changed since the last collection (the
        /// mark cache is rebuilt).
        #[arg(long)]
        full: bool,
    },
    /// Retention locks: `lock set SNAPSHOT --until TIME`, `lock show`.
    Lock {
        #[command(subcommand)]
        cmd: crate::protect_cmd::LockCmd,
    },
    /// Legal holds, from cofferd (security officer, fresh MFA):
    /// `hold set --asset A --reason R`, `hold release ID`, `hold list`.
    Hold(ShellWords),
    /// Retention policies, from cofferd: `retention show [--asset A]`,
    /// `retention set PROFILE --keep-daily 7 … [--lock-for 30d]`.
    Retention(ShellWords),
    /// The trusted clock retention locks expire by, against the wall clock.
    Clock,
    /// The store's keys: `key status`, `key rotate` (a new data key for new
    /// data), `key passwd` (new passphrase, no re-encryption), `key export`
    /// (paper key), `key import FILE`.
    Key {
        #[command(subcommand)]
        cmd: crate::protect_cmd::KeyCmd,
    },
    /// Disposal certificates: `disposal list`.
    Disposal {
        #[command(subcommand)]
        cmd: crate::protect_cmd::DisposalCmd,
    },
    /// List the entries of a snapshot.
    Ls {
        /// Snapshot id, prefix or "latest".
        snapshot: String,
        /// Only at or under this path.
        path: Option<PathBuf>,
    },
    /// Show what changed between two snapshots (+ added, - removed, M modified, U metadata).
    Diff {
        /// Older snapshot.
        from: String,
        /// Newer snapshot.
        to: String,
    },
    /// Find a file across snapshots by glob on its path or name.
    Find {
        /// Glob, e.g. '*.conf' or '/etc/ssh/*'.
        pattern: String,
        /// Only snapshots of this asset.
        #[arg(long)]
        asset: Option<String>,
    },
    /// The job log: every backup, restore and verify, with who ran it and how it ended.
    Log {
        /// Only this asset.
        #[arg(long)]
        asset: Option<String>,
        /// Only this kind (backup, restore, verify).
        #[arg(long)]
        kind: Option<String>,
        /// At most this many jobs (newest first).
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// The appliance's disks.
    Disk {
        #[command(subcommand)]
        cmd: crate::pool_cmd::DiskCmd,
    },
    /// Disk pools: erasure-coded storage across member disks.
    Pool {
        #[command(subcommand)]
        cmd: crate::pool_cmd::PoolCmd,
    },
    /// Virtual tape libraries (the tape backend where no hardware exists).
    Vtl {
        #[command(subcommand)]
        cmd: crate::tape_cmd::VtlCmd,
    },
    /// A tape drive of the library.
    Drive {
        #[command(flatten)]
        lib: crate::tape_cmd::LibraryArgs,
        #[command(subcommand)]
        cmd: crate::tape_cmd::DriveCmd,
    },
    /// The tape library's robot: inventory, moves, mail slots.
    Changer {
        #[command(flatten)]
        lib: crate::tape_cmd::LibraryArgs,
        #[command(subcommand)]
        cmd: crate::tape_cmd::ChangerCmd,
    },
    /// Tape media: labels, media sets, writing, restoring, recovering.
    Media {
        #[command(flatten)]
        lib: crate::tape_cmd::LibraryArgs,
        #[command(subcommand)]
        cmd: crate::tape_cmd::MediaCmd,
    },
    /// Catalog maintenance.
    Catalog {
        #[command(subcommand)]
        cmd: CatalogCmd,
    },
    /// Coffer's main job on built-in defaults: init a store, back up a real
    /// directory (full, then incremental), list, restore, compare and verify.
    Demo {
        /// The directory to back up.
        #[arg(long, default_value = "/usr/share/doc")]
        source: PathBuf,
        /// Working directory for the demo store and restore.
        #[arg(long, default_value = "coffer-demo")]
        workdir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum CatalogCmd {
    /// Recreate the catalog's snapshots and backup log from the store alone.
    Rebuild,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    raise_open_file_limit();
    let filter = match cli.verbose {
        0 => "error",
        1 => "info",
        _ => "debug",
    };
    // The development appliance logs to its own file, not over the shell.
    if !matches!(cli.cmd, Some(Cmd::Dev { .. })) {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
            )
            .with_writer(std::io::stderr)
            .try_init();
    }
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("coffer: error: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Backups hold a descriptor per directory on the walk and per queued file's
/// directory: lift the soft limit on open files to the hard one.
fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// Gets the passphrase: environment, file, or a terminal prompt.
pub fn passphrase(file: Option<&Path>, confirm: bool) -> Result<Passphrase> {
    if let Some(f) = file {
        let mut bytes =
            std::fs::read(f).with_context(|| format!("read passphrase file '{}'", f.display()))?;
        // Keep the first line; Passphrase owns the buffer and wipes it on drop.
        let end = bytes
            .iter()
            .position(|b| *b == b'\n')
            .unwrap_or(bytes.len());
        bytes[end..].zeroize();
        bytes.truncate(end);
        return Ok(Passphrase::new(bytes)?);
    }
    if let Some(v) = std::env::var_os("COFFER_PASSPHRASE") {
        return Ok(Passphrase::new(v.into_vec())?);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no passphrase: set COFFER_PASSPHRASE, use --passphrase-file, or run on a terminal");
    }
    let p = rpassword::prompt_password("Store passphrase: ").context("read passphrase")?;
    if confirm {
        let again = Zeroizing::new(
            rpassword::prompt_password("Repeat passphrase: ").context("read passphrase")?,
        );
        if *again != p {
            let mut p = p;
            p.zeroize();
            bail!("the passphrases differ");
        }
    }
    Ok(Passphrase::new(p.into_bytes())?)
}

/// Where a store's objects live.
enum Backend {
    Dir(Arc<DirStore>),
    Pool(Arc<Pool>),
}

/// A store opened in direct mode.
pub struct Direct {
    pub blobs: Arc<dyn BlobStore>,
    backend: Backend,
    pub catalog: Catalog,
    pub actor: Actor,
}

impl Direct {
    /// Opens the store's directory (and its pool, when it is on one) and
    /// catalog, without keys.
    pub fn open(dir: &Path) -> Result<Direct> {
        Direct::open_with(dir, false)
    }

    /// [`Direct::open`]; with `writing`, a pool's disks are asked for their
    /// SMART health first, so a failing disk gets no new data.
    pub fn open_with(dir: &Path, writing: bool) -> Result<Direct> {
        let opts = if writing {
            coffer_pool::OpenOptions::with_smart()
        } else {
            coffer_pool::OpenOptions::default()
        };
        let (blobs, backend): (Arc<dyn BlobStore>, Backend) = match PoolLink::read(dir)? {
            Some(link) => {
                let p = Arc::new(link.open(&opts)?);
                (p.clone(), Backend::Pool(p))
            }
            None => {
                let d = Arc::new(DirStore::new(dir));
                (d.clone(), Backend::Dir(d))
            }
        };
        StoreConfig::read(blobs.as_ref())?;
        let catalog = Catalog::open(&dir.join("catalog.db"))?;
        Ok(Direct {
            blobs,
            backend,
            catalog,
            actor: Actor::current(),
        })
    }

    /// Opens with keys, cleans up after crashed writers, reconciles the catalog.
    pub fn unlock(&self, pass: &Passphrase) -> Result<Repo> {
        let repo = Repo::open(self.blobs.clone(), pass)?;
        match &self.backend {
            Backend::Dir(d) => {
                d.clean_tmp(coffer_engine::pid_alive)?;
            }
            Backend::Pool(p) => {
                p.clean_tmp(coffer_engine::pid_alive);
            }
        }
        let (marked, added) = coffer_engine::reconcile(&repo, &self.catalog, &self.actor)?;
        if marked > 0 {
            eprintln!(
                "coffer: {marked} job(s) whose process ended early are now marked interrupted in the log"
            );
        }
        if added > 0 {
            eprintln!("coffer: {added} snapshot(s) found in the store were added to the catalog");
        }
        Ok(repo)
    }
}

fn store_dir(cli: &Cli) -> Result<PathBuf> {
    cli.store
        .clone()
        .ok_or_else(|| anyhow!("no store given: use --store DIR or set COFFER_STORE"))
}

pub fn print_json(v: &impl serde::Serialize) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

fn resolve(d: &Direct, s: &str) -> Result<SnapshotInfo> {
    Ok(d.catalog.resolve_snapshot(s)?)
}

fn run(cli: Cli) -> Result<u8> {
    let pf = cli.passphrase_file.clone();
    let remote = crate::remote::Opts {
        socket: cli.socket.clone(),
        json: cli.json,
    };
    let cmd = match &cli.cmd {
        None | Some(Cmd::Shell) => return crate::remote::shell(&remote),
        Some(Cmd::Remote { words }) => {
            // `coffer remote add|list|pair|remove|restore …` are the
            // offsite remotes' commands (no shell command starts with
            // those words); anything else is a shell command.
            let remotes = ["add", "list", "pair", "remove", "restore"];
            if words.first().is_some_and(|w| remotes.contains(&w.as_str())) {
                let mut w = vec!["remote".to_string()];
                w.extend(words.iter().cloned());
                return crate::remote::one_shot(&remote, &w);
            }
            return crate::remote::one_shot(&remote, words);
        }
        Some(Cmd::Dev { dir }) => return crate::dev::run(dir, cli.json),
        Some(Cmd::Setup { answers, cmd }) => {
            return crate::setup_cmd::setup(cmd.as_ref(), answers.as_deref(), cli.json);
        }
        Some(Cmd::Console { tty }) => return crate::setup_cmd::console(tty, &cli.socket),
        Some(Cmd::Status) => return crate::remote::one_shot(&remote, &["status".to_string()]),
        Some(Cmd::Replicate(w) | Cmd::Hold(w) | Cmd::Retention(w) | Cmd::Panel(w)) => {
            let group = match &cli.cmd {
                Some(Cmd::Replicate(_)) => "replicate",
                Some(Cmd::Hold(_)) => "hold",
                Some(Cmd::Retention(_)) => "retention",
                _ => "panel",
            };
            let words: Vec<String> = std::iter::once(group.to_string())
                .chain(w.words.iter().cloned())
                .collect();
            return crate::remote::one_shot(&remote, &words);
        }

        Some(Cmd::Restore {
            from: Some(from),
            snapshot,
            target,
            store_id,
            overwrite: false,
            paths,
        }) if paths.is_empty() => {
            let mut w: Vec<String> = ["remote", "restore", from, snapshot, "--target"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            w.push(target.display().to_string());
            if let Some(s) = store_id {
                w.push("--store".into());
                w.push(s.clone());
            }
            if let Some(f) = &pf {
                w.push("--passphrase-file".into());
                w.push(f.display().to_string());
            }
            return crate::remote::one_shot(&remote, &w);
        }
        Some(Cmd::Restore { from: Some(_), .. }) => {
            bail!(
                "restore --from restores a whole snapshot into an empty directory; --overwrite and paths are for local restores"
            )
        }

        Some(Cmd::Benchmark {
            seconds,
            threads,
            target,
        }) => return crate::bench_cmd::run(*seconds, *threads, *target, cli.json, cli.quiet),
        Some(cmd) => cmd,
    };
    match cmd {
        // Handled above.
        Cmd::Shell
        | Cmd::Remote { .. }
        | Cmd::Dev { .. }
        | Cmd::Setup { .. }
        | Cmd::Console { .. }
        | Cmd::Status
        | Cmd::Replicate(_)
        | Cmd::Hold(_)
        | Cmd::Retention(_)
        | Cmd::Panel(_)
        | Cmd::Benchmark { .. } => Ok(EXIT_OK),
        Cmd::Demo { source, workdir } => crate::demo::run(source, workdir, pf.as_deref()),
        Cmd::Disk { cmd } => crate::pool_cmd::disk(cmd, cli.json),
        Cmd::Pool { cmd } => crate::pool_cmd::pool(cmd, cli.store.as_deref(), cli.json, cli.quiet),
        Cmd::Vtl { cmd } => crate::tape_cmd::vtl(cmd, cli.json),
        Cmd::Drive { lib, cmd } => crate::tape_cmd::drive(cmd, lib, cli.json),
        Cmd::Changer { lib, cmd } => crate::tape_cmd::changer(cmd, lib, cli.json),
        Cmd::Media { lib, cmd } => crate::tape_cmd::media(
            cmd,
            lib,
            &crate::tape_cmd::MediaCtx {
                store: cli.store.as_deref(),
                passphrase_file: pf.as_deref(),
                json: cli.json,
                quiet: cli.quiet,
            },
        ),
        Cmd::Init {
            container_size_mib,
            compression_level,
            kdf_memory_kib,
            pool,
        } => {
            let dir = store_dir(&cli)?;
            let opts = InitOptions {
                container_size: container_size_mib
                    .checked_mul(1024 * 1024)
                    .filter(|_| (1..=1024).contains(container_size_mib))
                    .ok_or_else(|| anyhow!("--container-size-mib must be between 1 and 1024"))?,
                zstd_level: *compression_level,
                kdf: KdfParams {
                    m_kib: kdf_memory_kib.unwrap_or(KdfParams::DEFAULT.m_kib),
                    ..KdfParams::DEFAULT
                },
                ..InitOptions::default()
            };
            let info = init(&dir, pf.as_deref(), opts, pool.as_deref())?;
            if cli.json {
                print_json(
                    &serde_json::json!({ "store": dir, "store_id": info.store_id.to_hex() }),
                )?;
            } else {
                println!("initialised store {} at {}", info.store_id, dir.display());
                println!(
                    "keep the passphrase safe: without it nothing in this store can be restored"
                );
            }
            Ok(EXIT_OK)
        }
        Cmd::Backup {
            asset,
            level,
            exclude,
            one_file_system,
            path,
        } => {
            let d = Direct::open_with(&store_dir(&cli)?, true)?;
            let repo = d.unlock(&passphrase(pf.as_deref(), false)?)?;
            let req = BackupRequest {
                asset: asset.clone(),
                level: *level,
                source: path.clone(),
                excludes: exclude.clone(),
                one_file_system: *one_file_system,
                threads: 0,
                compression_level: None,
            };
            let progress = Arc::new(Progress::default());
            let spinner = Spinner::start("backup", progress.clone(), cli.quiet || cli.json);
            let out = coffer_engine::backup(&repo, &d.catalog, &req, &d.actor, &progress);
            drop(spinner);
            let out = out?;
            // Its lock by policy, from the trusted time.
            let policies = coffer_engine::prune::register_policies(&d.catalog)?;
            if policies
                .get(&out.snapshot.asset)
                .is_some_and(|r| r.lock_for.is_some())
            {
                let trusted = crate::protect_cmd::trusted_now(&d)?;
                coffer_engine::protect::lock_new_snapshot(
                    &d.catalog,
                    &policies,
                    &out.snapshot.id,
                    &out.snapshot.asset,
                    trusted,
                )?;
            }
            let s = &out.snapshot.stats;
            if cli.json {
                print_json(&serde_json::json!({
                    "snapshot": out.snapshot,
                    "warnings": out.warnings,
                    "notice": out.notice,
                    "job": out.job_id,
                }))?;
            } else {
                if let Some(n) = &out.notice {
                    println!("note: {n}");
                }
                for w in &out.warnings {
                    println!("warning: {w}");
                }
                println!(
                    "snapshot {} ({} of '{}') saved: {} entries; {} files read ({}), {} unchanged ({}); {} new in {} chunks, {} stored",
                    out.snapshot.id.short(),
                    out.snapshot.level,
                    out.snapshot.asset,
                    s.entries,
                    s.files_read,
                    size(s.bytes_read),
                    s.files_unchanged,
                    size(s.bytes_unchanged),
                    size(s.bytes_new),
                    s.chunks_new,
                    size(s.bytes_stored),
                );
                if !out.warnings.is_empty() {
                    println!("finished with {} warning(s)", out.warnings.len());
                }
            }
            Ok(exit_for(&out.warnings))
        }
        Cmd::Snapshots { asset } => {
            let d = Direct::open(&store_dir(&cli)?)?;
            let snaps = d.catalog.snapshots(asset.as_deref())?;
            if cli.json {
                print_json(&snaps)?;
            } else if snaps.is_empty() {
                println!(
                    "no snapshots (a store restored from other media needs 'coffer catalog rebuild')"
                );
            } else {
                println!(
                    "{:<10} {:<24} {:<12} {:<16} {:>9} {:>10}",
                    "ID", "TIME", "LEVEL", "ASSET", "ENTRIES", "READ"
                );
                for s in &snaps {
                    println!(
                        "{:<10} {:<24} {:<12} {:<16} {:>9} {:>10}",
                        s.id.short(),
                        s.time,
                        s.level.as_str(),
                        s.asset,
                        s.stats.entries,
                        size(s.stats.bytes_read)
                    );
                }
            }
            Ok(EXIT_OK)
        }
        Cmd::Restore {
            snapshot,
            target,
            overwrite,
            paths,
            ..
        } => {
            let d = Direct::open(&store_dir(&cli)?)?;
            let repo = d.unlock(&passphrase(pf.as_deref(), false)?)?;
            let info = resolve(&d, snapshot)?;
            let req = RestoreRequest {
                snapshot: info.id,
                target: target.clone(),
                paths: paths
                    .iter()
                    .map(|p| coffer_engine::restore::normalize_selection(p.as_os_str().as_bytes()))
                    .collect(),
                overwrite: *overwrite,
                threads: 0,
            };
            let progress = Arc::new(Progress::default());
            let spinner = Spinner::start("restore", progress.clone(), cli.quiet || cli.json);
            let out = coffer_engine::restore(&repo, &d.catalog, &req, &d.actor, &progress);
            drop(spinner);
            let out = out?;
            if cli.json {
                print_json(&serde_json::json!({
                    "snapshot": info.id,
                    "target": target,
                    "entries": out.entries,
                    "files": out.files,
                    "bytes": out.bytes,
                    "warnings": out.warnings,
                    "errors": out.errors,
                    "job": out.job_id,
                }))?;
            } else {
                for w in &out.warnings {
                    println!("warning: {w}");
                }
                for e in &out.errors {
                    println!("error: {e}");
                }
                println!(
                    "restored snapshot {} ({} of '{}', {}) to {}: {} entries, {} files, {}",
                    info.id.short(),
                    info.level,
                    info.asset,
                    info.time,
                    target.display(),
                    out.entries,
                    out.files,
                    size(out.bytes)
                );
            }
            if !out.errors.is_empty() {
                eprintln!(
                    "coffer: error: restore incomplete: {} entries could not be restored (see above and 'coffer log')",
                    out.errors.len()
                );
                return Ok(EXIT_FAILED);
            }
            Ok(exit_for(&out.warnings))
        }
        Cmd::Verify { read_data } => {
            let d = Direct::open(&store_dir(&cli)?)?;
            // Keys are optional for a plain verify: with them, damage is mapped to files.
            let have_pass = pf.is_some() || std::env::var_os("COFFER_PASSPHRASE").is_some();
            let repo = if *read_data || have_pass {
                Some(d.unlock(&passphrase(pf.as_deref(), false)?)?)
            } else {
                None
            };
            let progress = Arc::new(Progress::default());
            let spinner = Spinner::start("verify", progress.clone(), cli.quiet || cli.json);
            let report = coffer_engine::verify(
                d.blobs.as_ref(),
                repo.as_ref(),
                Some(&d.catalog),
                *read_data,
                &d.actor,
                &progress,
            );
            drop(spinner);
            let report = report?;
            if cli.json {
                print_json(&report)?;
            } else {
                for line in coffer_engine::verify::describe(&report) {
                    println!("DAMAGED: {line}");
                }
                for line in &report.notices {
                    println!("warning: {line}");
                }
                println!(
                    "verified {} containers ({}){}{}: {}",
                    report.containers_checked,
                    size(report.bytes_checked),
                    if report.read_data {
                        ", every chunk decrypted and re-hashed"
                    } else {
                        ", ciphertext hashes (no keys needed)"
                    },
                    if repo.is_some() {
                        format!(
                            ", {} snapshots' file lists checked",
                            report.snapshots_checked
                        )
                    } else {
                        String::new()
                    },
                    if report.ok() {
                        "no damage found"
                    } else {
                        "DAMAGE FOUND"
                    }
                );
                if !report.ok() && repo.is_none() {
                    println!(
                        "give the passphrase to see which snapshots and files the damage affects"
                    );
                }
            }
            Ok(if report.ok() { EXIT_OK } else { EXIT_DAMAGED })
        }
        Cmd::Lock { cmd } => {
            let d = Direct::open(&store_dir(&cli)?)?;
            crate::protect_cmd::lock(&d, cmd, pf.as_deref(), cli.json)
        }
        Cmd::Clock => crate::protect_cmd::clock(&Direct::open(&store_dir(&cli)?)?, cli.json),
        Cmd::Key { cmd } => {
            let d = Direct::open(&store_dir(&cli)?)?;
            crate::protect_cmd::key(&d, cmd, pf.as_deref(), cli.json)
        }
        Cmd::Disposal { cmd: _ } => {
            crate::protect_cmd::disposal(&Direct::open(&store_dir(&cli)?)?, cli.json)
        }
        Cmd::Prune {
            dry_run,
            asset,
            snapshot,
            keep,
        } => {
            let d = Direct::open(&store_dir(&cli)?)?;
            let observed = crate::protect_cmd::observe(&d)?;
            if !*dry_run {
                coffer_engine::protect::check_prune_clock(&observed)?;
            }
            let trusted = observed.trusted_ms;
            let mut order = coffer_engine::prune::PruneOrder {
                asset: asset.clone(),
                policy: keep.policy(),
                snapshots: Vec::new(),
            };
            for s in snapshot {
                order.snapshots.push(d.catalog.resolve_snapshot(s)?.id);
            }
            let plans = coffer_engine::prune::plan_order(&d.catalog, &order, trusted, !*dry_run)?;
            if *dry_run {
                if cli.json {
                    print_json(&coffer_engine::prune::plans_json(&plans))?;
                } else {
                    print!("{}", coffer_engine::prune::plans_text(&plans));
                }
                return Ok(EXIT_OK);
            }
            let repo = d.unlock(&passphrase(pf.as_deref(), false)?)?;
            let progress = Progress::default();
            let r = coffer_engine::prune::prune(
                &repo, &d.catalog, &plans, trusted, &d.actor, &progress, None,
            )?;
            if cli.json {
                print_json(&r)?;
            } else {
                for w in &r.warnings {
                    println!("warning: {w}");
                }
                for w in &r.refused {
                    println!("refused: {w}");
                }
                println!(
                    "removed {} snapshots, kept {} in {} ms; `coffer gc` frees what they alone referenced",
                    r.stats.snapshots_removed, r.stats.snapshots_kept, r.stats.duration_ms
                );
            }
            if !r.refused.is_empty() {
                return Ok(EXIT_FAILED);
            }
            Ok(exit_for(&r.warnings))
        }
        Cmd::Gc {
            dry_run,
            compact_below,
            retire_old_keys,
            full,
        } => {
            if !(0.0..=1.0).contains(compact_below) {
                return Err(anyhow::anyhow!(
                    "--compact-below is a share between 0 and 1, not {compact_below}"
                ));
            }
            let d = Direct::open(&store_dir(&cli)?)?;
            let trusted = crate::protect_cmd::trusted_now(&d)?;
            let repo = d.unlock(&passphrase(pf.as_deref(), false)?)?;
            let progress = Arc::new(Progress::default());
            let spinner = Spinner::start("gc", progress.clone(), cli.quiet || cli.json);
            let r = coffer_engine::gc::gc(
                &repo,
                &d.catalog,
                &coffer_engine::gc::GcOptions {
                    compact_below: *compact_below,
                    dry_run: *dry_run,
                    retire_before: if *retire_old_keys {
                        repo.data_generation()?
                    } else {
                        0
                    },
                    full: *full,
                },
                trusted,
                &d.actor,
                &progress,
                None,
            );
            drop(spinner);
            let r = r?;
            if cli.json {
                print_json(&r)?;
            } else {
                for w in &r.warnings {
                    println!("warning: {w}");
                }
                println!(
                    "{} containers, {} examined ({}; {} manifests read): {} live, {} unreferenced",
                    r.containers,
                    r.examined,
                    if r.full {
                        "full collection"
                    } else {
                        "those that changed since the last collection"
                    },
                    r.manifests_read,
                    size(r.live_bytes),
                    size(r.dead_bytes)
                );
                if r.dry_run {
                    println!(
                        "would delete {} containers and compact {} (dry run: nothing changed)",
                        r.delete.len(),
                        r.compact.len()
                    );
                } else {
                    println!(
                        "deleted {} containers ({} of them compacted: {} live chunks, {} copied), freed {} in {} ms",
                        r.stats.containers_deleted,
                        r.stats.containers_compacted,
                        r.stats.chunks_copied,
                        size(r.stats.bytes_copied),
                        size(r.stats.bytes_freed),
                        r.stats.duration_ms
                    );
                }
            }
            Ok(exit_for(&r.warnings))
        }
        Cmd::Ls { snapshot, path } => {
            let d = Direct::open(&store_dir(&cli)?)?;
            let repo = d.unlock(&passphrase(pf.as_deref(), false)?)?;
            let info = resolve(&d, snapshot)?;
            let under = path
                .as_ref()
                .map(|p| p.as_os_str().as_bytes().to_vec())
                .unwrap_or_default();
            let mut json = Vec::new();
            let mut out = std::io::stdout().lock();
            let mut res = Ok(());
            coffer_engine::browse::list(&repo, &info, &under, |e| {
                if cli.json {
                    json.push(entry_json(e));
                } else if res.is_ok() {
                    let mut line = format!(
                        "{} {:>6} {:>6} {:>12} {} {}",
                        mode_string(e),
                        e.uid,
                        e.gid,
                        e.size,
                        coffer_types::rfc3339_ms(e.mtime_s.saturating_mul(1000)),
                        e.display_path()
                    );
                    if !e.target.is_empty() {
                        line.push_str(&format!(" -> {}", String::from_utf8_lossy(&e.target)));
                    }
                    res = writeln!(out, "{line}");
                }
            })?;
            res?;
            if cli.json {
                print_json(&json)?;
            }
            Ok(EXIT_OK)
        }
        Cmd::Diff { from, to } => {
            let d = Direct::open(&store_dir(&cli)?)?;
            let repo = d.unlock(&passphrase(pf.as_deref(), false)?)?;
            let (a, b) = (resolve(&d, from)?, resolve(&d, to)?);
            let mut json = Vec::new();
            coffer_engine::browse::diff(&repo, &a, &b, |c, e| {
                if cli.json {
                    json.push(serde_json::json!({ "change": c.marker().to_string(), "entry": entry_json(e) }));
                } else {
                    println!("{} {}", c.marker(), e.display_path());
                }
            })?;
            if cli.json {
                print_json(&json)?;
            }
            Ok(EXIT_OK)
        }
        Cmd::Find { pattern, asset } => {
            let d = Direct::open(&store_dir(&cli)?)?;
            let repo = d.unlock(&passphrase(pf.as_deref(), false)?)?;
            let snaps = d.catalog.snapshots(asset.as_deref())?;
            let mut json = Vec::new();
            coffer_engine::browse::find(&repo, &snaps, pattern, |s, e| {
                if cli.json {
                    json.push(serde_json::json!({ "snapshot": s.id, "asset": s.asset, "time": s.time, "entry": entry_json(e) }));
                } else {
                    println!(
                        "{} {} {:<16} {:>12} {}",
                        s.id.short(),
                        s.time,
                        s.asset,
                        e.size,
                        e.display_path()
                    );
                }
            })?;
            if cli.json {
                print_json(&json)?;
            }
            Ok(EXIT_OK)
        }
        Cmd::Log { asset, kind, limit } => {
            let d = Direct::open(&store_dir(&cli)?)?;
            let kind = kind.as_deref().map(str::parse::<JobKind>).transpose()?;
            let jobs = d.catalog.jobs(&JobFilter {
                asset: asset.clone(),
                kind,
                limit: Some(*limit),
            })?;
            if cli.json {
                print_json(&jobs)?;
            } else {
                for j in &jobs {
                    println!(
                        "#{:<5} {:<8} {:<11} {:<16} {:<12} {} -> {} by {}@{}: {} files, {}{}",
                        j.id,
                        j.kind.as_str(),
                        j.status.as_str(),
                        j.asset.as_deref().unwrap_or("-"),
                        j.level.map(|l| l.as_str()).unwrap_or("-"),
                        j.started,
                        j.ended.as_deref().unwrap_or("(running)"),
                        j.identity,
                        j.host,
                        j.stats.files_read,
                        size(j.stats.bytes_read),
                        j.snapshot
                            .map(|s| format!(", snapshot {}", s.short()))
                            .unwrap_or_default()
                    );
                    for m in &j.messages {
                        println!("        {m}");
                    }
                }
            }
            Ok(EXIT_OK)
        }
        Cmd::Catalog {
            cmd: CatalogCmd::Rebuild,
        } => {
            let mut d = Direct::open(&store_dir(&cli)?)?;
            let repo = d.unlock(&passphrase(pf.as_deref(), false)?)?;
            let n = coffer_engine::rebuild_catalog(&repo, &mut d.catalog)?;
            if cli.json {
                print_json(&serde_json::json!({ "snapshots": n }))?;
            } else {
                println!("catalog rebuilt from the store: {n} snapshots");
            }
            Ok(EXIT_OK)
        }
    }
}

/// Creates a store and its catalog; with `pool`, the store's objects live
/// on that pool and the directory holds the catalog and the pool link.
pub fn init(
    dir: &Path,
    pf: Option<&Path>,
    opts: InitOptions,
    pool: Option<&Path>,
) -> Result<StoreConfig> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("create store directory '{}'", dir.display()))?;
    if PoolLink::read(dir)?.is_some() {
        bail!(
            "'{}' already holds a coffer store (on a pool)",
            dir.display()
        );
    }
    let pool = pool
        .map(|member| Pool::open(member, &coffer_pool::OpenOptions::with_smart()))
        .transpose()?
        .map(Arc::new);
    let blobs: Arc<dyn BlobStore> = match &pool {
        Some(p) => p.clone(),
        None => Arc::new(DirStore::new(dir)),
    };
    let pass = passphrase(pf, true)?;
    let repo = Repo::init(blobs, &pass, opts)?;
    // The link is written once the store exists on the pool.
    if let Some(p) = &pool {
        PoolLink::write(dir, p.meta())?;
    }
    Catalog::open(&dir.join("catalog.db"))?;
    Ok(*repo.config())
}
