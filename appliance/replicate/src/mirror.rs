//! Mirroring a store into an S3 bucket: every object the bucket lacks goes
//! up, locked if asked, and is checked after it lands (size and blake3 as
//! the bucket reports them). The order is that of a replication session
//! ([`PREFIXES`]): snapshot records last, so the bucket never names a
//! container it lacks.
//!
//! Stores are immutable: an object already in the bucket with the same
//! size and blake3 is skipped (its lock extended if it ends before the one
//! asked for, never shortened); one that differs is an error, and nothing
//! is overwritten. Everything is checked before anything is sent.

use coffer_store::BlobStore;

use crate::Error;
use crate::limit::TokenBucket;
use crate::replica::PREFIXES;
use crate::s3::{Lock, S3Store, check_lock, extended};
use crate::session::Progress;

/// What a mirror did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MirrorReport {
    /// Objects the store has.
    pub objects: u64,
    /// Objects the bucket already held, identical.
    pub skipped: u64,
    /// Objects uploaded (each locked, if a lock was asked for).
    pub sent: u64,
    /// Object bytes uploaded.
    pub bytes_sent: u64,
    /// Uploaded objects whose size and blake3 in the bucket matched ours.
    pub verified: u64,
    /// Uploaded objects the bucket reports differently.
    pub mismatched: Vec<String>,
    /// Objects already in the bucket whose lock was extended.
    pub locked: u64,
}

/// Copies every object of `src` that `dst` lacks, locking each with
/// `lock`. `limit` caps the upload rate; `progress` hears after each
/// object.
pub fn mirror(
    src: &dyn BlobStore,
    dst: &S3Store,
    lock: Option<Lock>,
    limit: &mut TokenBucket,
    progress: &mut dyn FnMut(Progress),
) -> Result<MirrorReport, Error> {
    if let Some(l) = &lock {
        check_lock(l)?;
        dst.require_lock()?;
    }
    let mut report = MirrorReport::default();
    let mut plan = Vec::new();
    let mut extend = Vec::new();
    for prefix in PREFIXES {
        for key in src.list(prefix)? {
            if prefix == "config" && key != "config" {
                continue;
            }
            report.objects += 1;
            let size = src.size(&key)?;
            let Some(there) = dst.head(&key)? else {
                plan.push((key, size));
                continue;
            };
            let differs = |why: String| {
                Error::Storage(format!(
                    "'{key}' in {} differs from the store's object in {}: {why}; \
                     store objects never change, so one of the two is damaged or \
                     belongs to another store (nothing was overwritten)",
                    dst.describe(),
                    src.describe()
                ))
            };
            if there.size != size {
                return Err(differs(format!(
                    "{} bytes there, {size} bytes here",
                    there.size
                )));
            }
            let ours = *blake3::hash(&src.get(&key)?).as_bytes();
            match there.hash {
                Some(h) if h == ours => {}
                Some(_) => return Err(differs("its blake3 differs".into())),
                None => return Err(differs("it has no coffer-blake3 metadata".into())),
            }
            report.skipped += 1;
            if let Some(l) = lock
                && let Some(new) = extended(there.lock, l)
            {
                extend.push((key, there.version, new));
            }
        }
    }
    for (key, version, l) in extend {
        dst.put_retention(&key, version.as_deref(), l)?;
        report.locked += 1;
    }
    let mut live = Progress {
        to_send: plan.len() as u64,
        ..Progress::default()
    };
    for (key, size) in plan {
        let data = src.get(&key)?;
        if data.len() as u64 != size {
            return Err(Error::Storage(format!(
                "'{key}' in {} changed size while it was mirrored ({size} → {} bytes)",
                src.describe(),
                data.len()
            )));
        }
        let hash = *blake3::hash(&data).as_bytes();
        dst.upload(&key, &data, &hash, lock, &mut |n| limit.take(n))?;
        report.sent += 1;
        report.bytes_sent += size;
        live.sent += 1;
        live.bytes += size;
        match dst.head(&key)? {
            Some(h) if h.size == size && h.hash == Some(hash) => report.verified += 1,
            _ => report.mismatched.push(key),
        }
        progress(live);
    }
    Ok(report)
}
