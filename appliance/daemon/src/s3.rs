//! TEMPORARY stub until the S3 backend lands.
#![allow(dead_code, unused)]
use crate::Inner;
use crate::joblog::JobLog;
use anyhow::{Result, bail};
use coffer_catalog::RemoteRow;
use coffer_engine::Progress;
use coffer_replicate::TokenBucket;
use coffer_store::BlobStore;
use coffer_types::api::{ReplicationStats, Secret};
use std::sync::Arc;
pub(crate) fn seal_secret(inner: &Inner, remote: &str, secret: &Secret) -> Result<Vec<u8>> {
    Ok(inner
        .repo
        .master()
        .seal_secret(remote, secret.0.as_bytes())?)
}
pub(crate) fn mirror_to(
    inner: &Inner,
    row: &RemoteRow,
    progress: &Arc<Progress>,
    bucket: &mut TokenBucket,
    log: &JobLog,
) -> Result<ReplicationStats> {
    bail!("stub")
}
pub(crate) fn copy(inner: &Inner, row: &RemoteRow, store: &[u8; 16]) -> Result<Arc<dyn BlobStore>> {
    bail!("stub")
}
