//! The store lock: garbage collection deletes containers, so it must never
//! run while a backup may be about to reference one (deduplicating against
//! a chunk that no snapshot references yet), nor while a restore or a
//! verification reads from one it is about to compact.
//!
//! An advisory `flock(2)` on a file beside the catalog (`catalog.lock`):
//! backups, restores and verifications hold it shared, garbage collection
//! exclusive (prune, which only deletes snapshot records, shared). The
//! daemon's replication jobs do not take it yet: a collection during a push
//! fails that push, which the next replication resumes. Every process that writes or reads the
//! store opens its catalog, so every one of them (the daemon, the shell's
//! direct mode, a second daemon by mistake) meets the same lock; the kernel
//! releases it when a process dies, so a killed job never leaves it held.

use std::fs::File;
use std::path::{Path, PathBuf};

use coffer_catalog::Catalog;
use nix::fcntl::{Flock, FlockArg};

use crate::{Error, Result};

/// A held store lock; released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _lock: Flock<File>,
}

/// The lock file of the store whose catalog this is.
pub fn lock_path(catalog: &Catalog) -> PathBuf {
    catalog.path().with_extension("lock")
}

impl StoreLock {
    /// Takes the lock shared (backup, restore, verify, prune), waiting
    /// for a garbage collection to finish.
    pub fn shared(catalog: &Catalog) -> Result<StoreLock> {
        StoreLock::take(&lock_path(catalog), false)
    }

    /// Takes the lock shared if no collection holds it; `None` without
    /// waiting otherwise (the daemon's API must not block on a gc).
    pub fn try_shared(catalog: &Catalog) -> Result<Option<StoreLock>> {
        let path = lock_path(catalog);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|error| Error::Io {
                op: "opening the store lock",
                path: path.display().to_string(),
                error,
            })?;
        match Flock::lock(file, FlockArg::LockSharedNonblock) {
            Ok(l) => Ok(Some(StoreLock { _lock: l })),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(Error::Io {
                op: "locking the store",
                path: path.display().to_string(),
                error: e.into(),
            }),
        }
    }

    /// Takes the lock exclusive (gc), waiting for every job that
    /// holds it shared to finish.
    pub fn exclusive(catalog: &Catalog) -> Result<StoreLock> {
        StoreLock::take(&lock_path(catalog), true)
    }

    fn take(path: &Path, exclusive: bool) -> Result<StoreLock> {
        let io = |op, error| Error::Io {
            op,
            path: path.display().to_string(),
            error,
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| io("opening the store lock", e))?;
        let (now, wait) = if exclusive {
            (FlockArg::LockExclusiveNonblock, FlockArg::LockExclusive)
        } else {
            (FlockArg::LockSharedNonblock, FlockArg::LockShared)
        };
        let file = match Flock::lock(file, now) {
            Ok(l) => return Ok(StoreLock { _lock: l }),
            Err((f, nix::errno::Errno::EWOULDBLOCK)) => f,
            Err((_, e)) => return Err(io("locking the store", e.into())),
        };
        tracing::info!(
            lock = %path.display(),
            "waiting for {}",
            if exclusive {
                "the running backups, restores and replications to finish"
            } else {
                "a garbage collection to finish"
            }
        );
        Flock::lock(file, wait)
            .map(|l| StoreLock { _lock: l })
            .map_err(|(_, e)| io("locking the store", e.into()))
    }
}
