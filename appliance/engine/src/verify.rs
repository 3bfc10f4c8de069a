//! Verification of a store.
//!
//! Without keys, every container is read whole and its blake3 trailer,
//! structure and index object are checked: what an offsite peer or a tape
//! library can do. With `read_data`, every chunk is also decrypted,
//! decompressed and re-hashed against its id. With keys, every snapshot's
//! manifest is read and every referenced chunk looked up, so damage is
//! reported as the snapshots and files it affects.

use std::collections::HashMap;
use std::sync::Mutex;

use coffer_catalog::{Catalog, JobEnd, NewJob};
use coffer_store::{BlobStore, EntryKind, Extent, Repo, scan_containers};
use coffer_types::{BackupStats, ChunkId, ContainerId, JobKind, JobStatus, Scope, SnapshotId};
use serde::Serialize;

use crate::{Actor, Progress, Result, now_ms};

/// Damage that touches one snapshot.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Affected {
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// Its asset.
    pub asset: String,
    /// Its time.
    pub time: String,
    /// Its manifest (file list) itself cannot be read.
    pub manifest_damaged: bool,
    /// Files whose content is damaged or missing.
    pub files: Vec<String>,
}

/// What a verification found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Containers checked.
    pub containers_checked: u64,
    /// Bytes of containers read.
    pub bytes_checked: u64,
    /// Whether chunk contents were decrypted and re-hashed.
    pub read_data: bool,
    /// Snapshots whose manifests were walked (0 without keys).
    pub snapshots_checked: u64,
    /// Damaged or missing containers and why.
    pub damaged_containers: Vec<(ContainerId, String)>,
    /// Snapshots and files affected.
    pub affected: Vec<Affected>,
    /// Snapshot records that cannot be read.
    pub damaged_snapshots: Vec<(SnapshotId, String)>,
    /// What the storage reported while being read (a pool running
    /// degraded, shards healed from parity): not damage, but worth acting on.
    pub notices: Vec<String>,
}

impl VerifyReport {
    /// Whether everything checked is sound.
    pub fn ok(&self) -> bool {
        self.damaged_containers.is_empty()
            && self.affected.is_empty()
            && self.damaged_snapshots.is_empty()
    }
}

/// Verifies the store; with `repo` (keys) damage is mapped to files. The job
/// goes in the log when a catalog is given.
pub fn verify(
    blobs: &dyn BlobStore,
    repo: Option<&Repo>,
    catalog: Option<&Catalog>,
    read_data: bool,
    actor: &Actor,
    progress: &Progress,
) -> Result<VerifyReport> {
    // A collection deleting containers mid-check would read as damage.
    let _lock = match catalog {
        Some(c) => Some(crate::lock::StoreLock::shared(c)?),
        None => None,
    };
    if let Some(r) = repo {
        r.refresh()?;
    }
    let job = match catalog {
        Some(c) => Some(c.begin_job(&NewJob {
            kind: JobKind::Verify,
            asset: None,
            level: None,
            scope: Scope {
                paths: vec![blobs.describe()],
                excludes: Vec::new(),
                one_file_system: false,
            },
            started_ms: now_ms(),
            identity: actor.identity.clone(),
            host: actor.host.clone(),
            pid: std::process::id(),
        })?),
        None => None,
    };
    checked(blobs, repo, catalog, read_data, progress, job)
}

/// [`verify`] recorded in job log row `job` of `catalog`, already running
/// (a queued job the service started).
pub fn verify_queued(
    blobs: &dyn BlobStore,
    repo: Option<&Repo>,
    catalog: &Catalog,
    read_data: bool,
    progress: &Progress,
    job: i64,
) -> Result<VerifyReport> {
    let _lock = crate::lock::StoreLock::shared(catalog)?;
    if let Some(r) = repo {
        r.refresh()?;
    }
    checked(blobs, repo, Some(catalog), read_data, progress, Some(job))
}

/// Runs the check and records it in job `job`.
fn checked(
    blobs: &dyn BlobStore,
    repo: Option<&Repo>,
    catalog: Option<&Catalog>,
    read_data: bool,
    progress: &Progress,
    job: Option<i64>,
) -> Result<VerifyReport> {
    let mut result = run(blobs, repo, read_data, progress);
    if let Ok(r) = &mut result {
        r.notices = blobs.notices();
    }
    if let (Some(c), Ok(r)) = (catalog, &result) {
        // Every container was checked: the findings replace the last ones.
        c.replace_damaged_containers(&r.damaged_containers, now_ms())?;
    }
    if let (Some(c), Some(id)) = (catalog, job) {
        let (status, messages) = match &result {
            Ok(r) if r.ok() && r.notices.is_empty() => (JobStatus::Success, Vec::new()),
            Ok(r) if r.ok() => (JobStatus::Warning, r.notices.clone()),
            Ok(r) => (JobStatus::Failed, describe(r)),
            Err(e) => (JobStatus::Failed, vec![format!("error: {e}")]),
        };
        c.finish_job(
            id,
            &JobEnd {
                status,
                stats: BackupStats {
                    bytes_read: result.as_ref().map(|r| r.bytes_checked).unwrap_or(0),
                    ..BackupStats::default()
                },
                messages: &messages,
                snapshot: None,
                ended_ms: now_ms(),
            },
        )?;
    }
    result
}

/// One line per problem, for logs and the job record.
pub fn describe(r: &VerifyReport) -> Vec<String> {
    let mut out = Vec::new();
    for (c, why) in &r.damaged_containers {
        out.push(format!("container {c}: {why}"));
    }
    for (s, why) in &r.damaged_snapshots {
        out.push(format!("snapshot {s}: record unreadable: {why}"));
    }
    for a in &r.affected {
        if a.manifest_damaged {
            out.push(format!(
                "snapshot {} ({} {}): its file list is damaged; nothing in it can be restored",
                a.snapshot, a.asset, a.time
            ));
        }
        for f in &a.files {
            out.push(format!(
                "snapshot {} ({} {}): file {f} is damaged",
                a.snapshot, a.asset, a.time
            ));
        }
    }
    out
}

fn run(
    blobs: &dyn BlobStore,
    repo: Option<&Repo>,
    read_data: bool,
    progress: &Progress,
) -> Result<VerifyReport> {
    let mut report = VerifyReport {
        read_data,
        ..VerifyReport::default()
    };
    let mut bad: HashMap<ContainerId, String> = HashMap::new();
    match (repo, read_data) {
        (Some(repo), true) => {
            let containers = repo.container_ids()?;
            let problems = Mutex::new(Vec::new());
            let next = Mutex::new(containers.into_iter());
            let threads = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2);
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| {
                        while let Some(id) = next.lock().ok().and_then(|mut it| it.next()) {
                            let size = blobs
                                .size(&coffer_store::container::data_key(&id))
                                .unwrap_or(0);
                            let r = repo.read_check_container(&id);
                            Progress::add(&progress.bytes, size);
                            Progress::add(&progress.files, 1);
                            if let Ok(mut p) = problems.lock() {
                                p.push((id, size, r));
                            }
                        }
                    });
                }
            });
            for (id, size, r) in problems.into_inner().unwrap_or_default() {
                report.containers_checked += 1;
                report.bytes_checked += size;
                let found = r?;
                if !found.is_empty() {
                    bad.insert(id, found.join("; "));
                }
            }
        }
        _ => {
            for c in scan_containers(blobs)? {
                report.containers_checked += 1;
                report.bytes_checked += c.len.unwrap_or(0);
                Progress::add(&progress.bytes, c.len.unwrap_or(0));
                if let Some(p) = c.problem {
                    bad.insert(c.id, p);
                }
            }
        }
    }
    if let Some(repo) = repo {
        // What this check found joins what the store already distrusts; a
        // chunk with a good copy elsewhere is then not damage.
        repo.mark_bad(&bad.iter().map(|(c, w)| (*c, w.clone())).collect::<Vec<_>>())?;
        bad = repo.bad_containers()?;
        map_damage(repo, &mut report)?;
    }
    let mut damaged: Vec<_> = bad.into_iter().collect();
    damaged.sort();
    report.damaged_containers = damaged;
    Ok(report)
}

/// Walks every snapshot and names the files with a chunk that no sound
/// container holds.
fn map_damage(repo: &Repo, report: &mut VerifyReport) -> Result<()> {
    let chunk_ok = |id: &ChunkId| -> Result<bool> { Ok(repo.locate(id)?.is_some()) };
    for sid in repo.snapshot_ids()? {
        let rec = match repo.load_snapshot(&sid) {
            Ok(r) => r,
            Err(e) => {
                report.damaged_snapshots.push((sid, e.to_string()));
                continue;
            }
        };
        report.snapshots_checked += 1;
        let mut affected = Affected {
            snapshot: sid,
            asset: rec.info.asset.clone(),
            time: rec.info.time.clone(),
            manifest_damaged: false,
            files: Vec::new(),
        };
        let mut manifest_ok = true;
        for c in &rec.manifest {
            manifest_ok &= chunk_ok(c)?;
        }
        if !manifest_ok {
            affected.manifest_damaged = true;
        } else {
            let mut dec = repo.manifest(&rec);
            loop {
                match dec.next_entry() {
                    Ok(Some(e)) => {
                        if !matches!(e.kind, EntryKind::File | EntryKind::Hardlink) {
                            continue;
                        }
                        let mut damaged = false;
                        for ext in &e.extents {
                            if let Extent::Data { id, .. } = ext
                                && !chunk_ok(id)?
                            {
                                damaged = true;
                            }
                        }
                        if damaged {
                            affected.files.push(e.display_path());
                        }
                    }
                    Ok(None) => break,
                    Err(_) => {
                        affected.manifest_damaged = true;
                        break;
                    }
                }
            }
        }
        if affected.manifest_damaged || !affected.files.is_empty() {
            report.affected.push(affected);
        }
    }
    Ok(())
}
