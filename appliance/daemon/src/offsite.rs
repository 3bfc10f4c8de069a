//! Reading this appliance's offsite copies back: a paired appliance's
//! replica (pulled whole over the pinned TLS link into a directory the
//! caller gives, so what is read is what the peer holds now, not a local
//! cache) or an S3 bucket (read in place). Opened with the store's own
//! passphrase, since a replica is the same store. Restore drills from a
//! remote (`drill run --from remote`) and verification of a remote's copy
//! (`verify remote`) both start here.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use coffer_catalog::RemoteRow;
use coffer_engine::Progress;
use coffer_store::{BlobStore, DirStore, Repo};
use coffer_types::api::RemoteKind;

use crate::Inner;
use crate::joblog::JobLog;

/// A remote's copy, opened with the store's keys.
pub(crate) struct RemoteCopy {
    /// The copy.
    pub(crate) repo: Repo,
    /// Which copy, in words (for the job log and the drill's evidence).
    pub(crate) what: String,
}

/// Opens `remote`'s copy of this appliance's store. An appliance's copy
/// is pulled into `into` (which the caller removes); a bucket is read
/// where it is.
pub(crate) fn open(
    inner: &Inner,
    remote: &RemoteRow,
    into: &Path,
    progress: &Arc<Progress>,
    log: &JobLog,
) -> Result<RemoteCopy> {
    let name = &remote.spec.name;
    let store = inner.repo.config().store_id.0;
    let (blobs, what): (Arc<dyn BlobStore>, String) = match remote.spec.kind {
        RemoteKind::Appliance => {
            let dir = crate::replication::pull_from_appliance(
                inner, remote, &store, into, progress, log,
            )?;
            (
                Arc::new(DirStore::new(dir)),
                format!(
                    "remote '{name}' (appliance at {}), store {}",
                    remote.spec.address.as_deref().unwrap_or("?"),
                    hex::encode(store)
                ),
            )
        }
        RemoteKind::S3 => {
            let s3 = crate::s3::open(inner, remote, &store)?;
            let what = format!(
                "remote '{name}' ({}), store {}",
                s3.describe(),
                hex::encode(store)
            );
            (Arc::new(s3), what)
        }
    };
    let config = inner.config();
    let pf = config
        .store
        .passphrase_file
        .clone()
        .context("store.passphrase_file is not set")?;
    let pass = crate::read_passphrase(&pf, config.daemon.development)?;
    let repo = Repo::open(blobs, &pass)
        .with_context(|| format!("opening the copy at '{name}' with the store's passphrase"))?;
    Ok(RemoteCopy { repo, what })
}

/// Bytes of the store's objects: what pulling a whole appliance copy
/// stages (a bucket stages nothing).
pub(crate) fn staging_bytes(inner: &Inner, remote: &RemoteRow) -> u64 {
    if remote.spec.kind != RemoteKind::Appliance {
        return 0;
    }
    let blobs = inner.repo.blobs();
    blobs
        .list("")
        .map(|keys| keys.iter().filter_map(|k| blobs.size(k).ok()).sum())
        .unwrap_or(0)
}
