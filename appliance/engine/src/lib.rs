//! Coffer's engine: backup, restore and verify over a [`coffer_store::Repo`],
//! recording every job in the [`coffer_catalog::Catalog`].
//!
//! * [`backup()`](backup::backup) walks a tree in manifest order, reads only
//!   what the level requires (merge-joining the reference snapshot's manifest
//!   in constant memory), and runs read → chunk → hash → dedup → compress →
//!   encrypt → write on every core with bounded queues. The snapshot record is
//!   written last: a killed backup leaves sealed containers that the next run
//!   reuses, and no listed snapshot.
//! * [`restore()`](restore::restore) creates every entry through directory
//!   file descriptors opened with `O_NOFOLLOW`, so no manifest — however
//!   hostile — can make it write outside the target.
//! * [`verify()`](verify::verify) checks containers without keys, or reads
//!   and authenticates every chunk, and maps damage to snapshots and files.
//!
//! Error policy: problems with one source entry (unreadable, vanished,
//! changed while read) are *warnings* that name the path and the reason and
//! end the job "success with warnings"; anything that would make a snapshot
//! or a restore silently wrong is an [`Error`] and fails the job.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod backup;
pub mod browse;
pub mod drill;
mod fsmeta;
pub mod gc;
pub mod keys;
pub mod lock;
pub mod protect;
pub mod prune;
pub mod restore;
pub mod retention;
pub mod sandbox;
pub mod verify;

pub use backup::{BackupOutcome, BackupRequest, backup, backup_queued};
pub use restore::{RestoreOutcome, RestoreRequest, restore};
pub use verify::{VerifyReport, verify};

use std::sync::atomic::{AtomicU64, Ordering};

use coffer_catalog::Catalog;
use coffer_store::Repo;

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] coffer_store::Error),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] coffer_catalog::Error),
    /// A local file operation failed.
    #[error("{op} '{path}' failed: {error}")]
    Io {
        /// Operation.
        op: &'static str,
        /// Path.
        path: String,
        /// OS error: in the message, not a separate source, so an error
        /// chain prints it once.
        error: std::io::Error,
    },
    /// A request that cannot be carried out as asked.
    #[error("{0}")]
    Invalid(String),
    /// A worker thread panicked (a bug); the job failed.
    #[error("internal error: a worker thread panicked")]
    WorkerPanicked,
    /// The job was asked to stop ([`Progress::request_stop`]).
    #[error("{}", match .0 {
        Stop::Cancel => "cancelled by an operator",
        Stop::Shutdown => "stopped by the service shutting down; what was stored is kept and the job will be retried",
    })]
    Stopped(Stop),
}

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl AsRef<std::path::Path>,
        source: std::io::Error,
    ) -> Error {
        Error::Io {
            op,
            path: path.as_ref().display().to_string(),
            error: source,
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Live counters of a running job, for progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Entries processed.
    pub entries: AtomicU64,
    /// Content bytes read (backup) or written (restore) or checked (verify).
    pub bytes: AtomicU64,
    /// Files processed.
    pub files: AtomicU64,
    /// A request to stop: 0 none, else a [`Stop`] code.
    stop: std::sync::atomic::AtomicU8,
}

/// Why a running job is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// An operator cancelled it: the job ends `cancelled`.
    Cancel,
    /// The service is shutting down: the job ends `interrupted`, what it
    /// stored so far is kept (sealed containers), and it is retried.
    Shutdown,
}

impl Progress {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Asks the job to stop at its next check (between entries and chunks).
    pub fn request_stop(&self, why: Stop) {
        let code = match why {
            Stop::Cancel => 1,
            Stop::Shutdown => 2,
        };
        let _ = self
            .stop
            .compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// The stop requested, if any.
    pub fn stop_requested(&self) -> Option<Stop> {
        match self.stop.load(Ordering::Relaxed) {
            1 => Some(Stop::Cancel),
            2 => Some(Stop::Shutdown),
            _ => None,
        }
    }
}

/// Who and where: recorded with every job.
#[derive(Debug, Clone)]
pub struct Actor {
    /// Identity (the OS user in direct mode).
    pub identity: String,
    /// Host name.
    pub host: String,
}

impl Actor {
    /// The current OS user on this host.
    pub fn current() -> Actor {
        let uid = nix::unistd::geteuid();
        let identity = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| format!("uid:{uid}"));
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "unknown".into());
        Actor { identity, host }
    }
}

/// Records that job `new` started: as the daemon's queued row `queued`, or
/// as a new row. Returns its id.
pub(crate) fn start_job(
    catalog: &coffer_catalog::Catalog,
    new: &coffer_catalog::NewJob,
    queued: Option<i64>,
) -> Result<i64> {
    Ok(match queued {
        Some(id) => {
            catalog.start_queued_job(id, new)?;
            id
        }
        None => catalog.begin_job(new)?,
    })
}

/// The job row of a prune or gc (no level) over `paths`, started now by
/// `actor`.
pub(crate) fn maintenance_job(
    kind: coffer_types::JobKind,
    asset: Option<String>,
    paths: Vec<String>,
    actor: &Actor,
) -> coffer_catalog::NewJob {
    coffer_catalog::NewJob {
        kind,
        asset,
        level: None,
        scope: coffer_types::Scope {
            paths,
            excludes: Vec::new(),
            one_file_system: false,
        },
        started_ms: now_ms(),
        identity: actor.identity.clone(),
        host: actor.host.clone(),
        pid: std::process::id(),
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Whether process `pid` is alive on this host.
pub fn pid_alive(pid: u32) -> bool {
    let Ok(p) = i32::try_from(pid) else {
        return false;
    };
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// Brings the catalog in line with the store after a crash: jobs whose
/// process died become *interrupted*, and snapshots whose record reached the
/// store but not the catalog are added. It also tells the opened store which
/// containers the last verification found damaged. Returns (jobs marked,
/// snapshots added).
pub fn reconcile(repo: &Repo, catalog: &Catalog, actor: &Actor) -> Result<(usize, usize)> {
    let marked = catalog.mark_interrupted(pid_alive, &actor.host, now_ms())?;
    repo.mark_bad(&catalog.damaged_containers()?)?;
    let known = catalog.snapshot_ids()?;
    let mut added = 0;
    for id in repo.snapshot_ids()? {
        if !known.contains(&id) {
            let rec = repo.load_snapshot(&id)?;
            catalog.insert_snapshot(&rec.info)?;
            added += 1;
        }
    }
    Ok((marked, added))
}

/// Recreates the catalog's snapshots (and the backup job rows they imply)
/// from the store's snapshot records alone.
pub fn rebuild_catalog(repo: &Repo, catalog: &mut Catalog) -> Result<usize> {
    let mut snaps = Vec::new();
    for id in repo.snapshot_ids()? {
        snaps.push(repo.load_snapshot(&id)?.info);
    }
    catalog.replace_snapshots(&snaps, true)?;
    Ok(snaps.len())
}
