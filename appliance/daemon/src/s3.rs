//! S3 remotes in the daemon: credentials (sealed under the store's key, or
//! the daemon's environment), the Object Lock each object gets (from the
//! retention of the profiles that replicate there), the mirror job, and
//! opening a bucket's copy for a restore.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result, anyhow, bail};
use coffer_catalog::{Catalog, RemoteRow};
use coffer_engine::Progress;
use coffer_replicate::TokenBucket;
use coffer_replicate::s3::{Lock, LockMode, S3Config, S3Credentials, S3Store};
use coffer_types::api::{ObjectLockMode, ReplicationStats, Retention, S3Remote, Secret};
use zeroize::Zeroizing;

use crate::Inner;
use crate::joblog::JobLog;

const DAY_S: i64 = 86_400;
/// The lock when neither the remote nor any profile says how long.
const DEFAULT_LOCK_DAYS: i64 = 30;

fn purpose(remote: &str) -> String {
    format!("remote credentials {remote}")
}

/// Seals an S3 secret access key for `remote` under the store's key.
pub(crate) fn seal_secret(inner: &Inner, remote: &str, secret: &Secret) -> Result<Vec<u8>> {
    Ok(inner
        .repo
        .master()
        .seal_secret(&purpose(remote), secret.0.as_bytes())?)
}

fn credentials(inner: &Inner, row: &RemoteRow, s3: &S3Remote) -> Result<S3Credentials> {
    match (&s3.access_key_id, &row.sealed_secret) {
        (Some(id), Some(sealed)) => {
            let secret = inner
                .repo
                .master()
                .open_secret(&purpose(&row.spec.name), sealed)
                .with_context(|| {
                    format!("opening the stored credentials of remote '{}'", row.spec.name)
                })?;
            let secret = String::from_utf8(secret.to_vec())
                .map_err(|_| anyhow!("the stored secret of '{}' is not text", row.spec.name))?;
            Ok(S3Credentials {
                access_key_id: id.clone(),
                secret_access_key: Zeroizing::new(secret),
                session_token: None,
            })
        }
        _ => S3Credentials::from_env().ok_or_else(|| {
            anyhow!(
                "remote '{}' has no stored credentials and the daemon's environment has no AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
                row.spec.name
            )
        }),
    }
}

/// The bucket holding `store`'s copy at this S3 remote.
pub(crate) fn open(inner: &Inner, row: &RemoteRow, store: &[u8; 16]) -> Result<S3Store> {
    let s3 = row
        .spec
        .s3
        .as_ref()
        .ok_or_else(|| anyhow!("remote '{}' has no S3 settings", row.spec.name))?;
    let mut cfg = S3Config::new(&s3.bucket, credentials(inner, row, s3)?);
    cfg.endpoint = s3.endpoint.clone();
    cfg.region = s3.region.clone();
    cfg.path_style = s3.path_style;
    cfg.prefix = format!("{}{}/", s3.prefix, hex::encode(store));
    S3Store::open(cfg).with_context(|| format!("opening remote '{}'", row.spec.name))
}

/// The longest any of these rules keeps a snapshot, in seconds.
pub(crate) fn retention_horizon_s(r: &Retention) -> i64 {
    let d = |n: Option<u32>, days: i64| i64::from(n.unwrap_or(0)) * days * DAY_S;
    [
        d(r.keep_daily, 1),
        d(r.keep_weekly, 7),
        d(r.keep_monthly, 31),
        d(r.keep_yearly, 366),
        r.keep_within
            .map_or(0, |w| i64::try_from(w.secs()).unwrap_or(i64::MAX)),
    ]
    .into_iter()
    .max()
    .unwrap_or(0)
}

/// How long objects written to this remote stay locked: the remote's
/// `lock_days`, else the longest retention of the profiles replicating to
/// it (a snapshot is kept that long, so its objects must survive that
/// long), else 30 days.
pub(crate) fn lock_period_s(cat: &Catalog, row: &RemoteRow, s3: &S3Remote) -> Result<i64> {
    if s3.lock_days > 0 {
        return Ok(i64::from(s3.lock_days) * DAY_S);
    }
    let longest = cat
        .profiles()?
        .iter()
        .filter(|p| p.replicate_to.contains(&row.spec.name))
        .map(|p| retention_horizon_s(&p.retention))
        .max()
        .unwrap_or(0);
    Ok(if longest > 0 {
        longest.max(DAY_S)
    } else {
        DEFAULT_LOCK_DAYS * DAY_S
    })
}

/// Copies the store's missing objects to the bucket with their Object Lock,
/// then a sealed export of the catalog.
pub(crate) fn mirror_to(
    inner: &Inner,
    row: &RemoteRow,
    progress: &Arc<Progress>,
    bucket: &mut TokenBucket,
    log: &JobLog,
) -> Result<ReplicationStats> {
    let s3 = row
        .spec
        .s3
        .clone()
        .ok_or_else(|| anyhow!("remote '{}' has no S3 settings", row.spec.name))?;
    let store_id = inner.repo.config().store_id.0;
    let dst = open(inner, row, &store_id)?;
    let lock = match s3.lock {
        ObjectLockMode::None => None,
        mode => {
            dst.require_lock()?;
            let period = lock_period_s(&*inner.catalog()?, row, &s3)?;
            // The server judges the lock by its own clock: the wall
            // clock, not the scheduler's.
            let wall = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            let until = wall + period;
            log.info(&format!(
                "objects are locked in {} mode until {} ({} days)",
                mode.as_str(),
                coffer_types::rfc3339_ms(until * 1000),
                period / DAY_S
            ));
            Some(Lock {
                mode: if mode == ObjectLockMode::Governance {
                    LockMode::Governance
                } else {
                    LockMode::Compliance
                },
                retain_until_s: until,
            })
        }
    };
    let report = coffer_replicate::mirror::mirror(
        inner.repo.blobs().as_ref(),
        &dst,
        lock,
        bucket,
        &mut |p| {
            progress.bytes.store(p.bytes, Ordering::Relaxed);
            progress.files.store(p.sent, Ordering::Relaxed);
        },
    )?;
    if progress.stop_requested().is_some() {
        bail!("stopped");
    }
    let export = export_catalog(inner)?;
    let key = format!("catalog/{}.sealed", inner.now_ms());
    dst.put_with_lock(&key, &export, lock)
        .with_context(|| format!("uploading the catalog export {key}"))?;
    log.info(&format!(
        "catalog export {key} uploaded ({} bytes, sealed under the store's key)",
        export.len()
    ));
    Ok(ReplicationStats {
        remote: row.spec.name.clone(),
        objects: report.objects,
        skipped: report.skipped,
        sent: report.sent + 1,
        bytes_sent: report.bytes_sent + export.len() as u64,
        bytes_resumed: 0,
        verified: report.verified,
        mismatched: report.mismatched.len() as u64,
        locked: report.locked,
        duration_ms: 0,
    })
}

/// A consistent copy of the catalog (`VACUUM INTO`), sealed under a key
/// derived from the store's master key: the job log, the asset register
/// and the audit log travel offsite, readable with the passphrase alone.
fn export_catalog(inner: &Inner) -> Result<Vec<u8>> {
    let dir = tempfile::tempdir_in(&inner.config().daemon.state_dir)?;
    let path = dir.path().join("catalog-export.db");
    inner.catalog()?.export_to(&path)?;
    let bytes = Zeroizing::new(std::fs::read(&path)?);
    Ok(inner.repo.master().seal_secret("catalog export", &bytes)?)
}
