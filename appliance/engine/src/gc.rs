//! Garbage collection: removes the containers no snapshot references, and
//! compacts those mostly dead.
//!
//! * **Mark** reads each snapshot record and its manifest (stored as chunks
//!   in a few containers) and collects the chunk ids they reference. It
//!   never reads a data container, and no chunk has a file of its own to
//!   touch: chunks are records inside containers, and the chunk index (one
//!   index object per container) is already in memory. The cost is the
//!   manifests', not the data's.
//! * **Sweep** sums, per container, the stored bytes of its live and dead
//!   chunks. A container with no live chunk is deleted. One whose live share
//!   is below [`GcOptions::compact_below`] has its live chunks copied into
//!   new containers (unless a copy already sits in a container that stays),
//!   and is deleted once the new containers are committed.
//!
//! **Crash safety.** Nothing is deleted before what replaces it is durable:
//! copies are committed (data object, then index object) before any
//! container goes, and a container goes index object first, then data. A run
//! killed anywhere leaves every live chunk in at least one container; what
//! it leaves behind is garbage (a dead container, a duplicate copy) that the
//! next run removes.
//!
//! **Scaling.** A mark cache in the catalog ([`marks`]) keeps each
//! snapshot's chunk positions, so a collection reads only the manifests of
//! snapshots new since the last one and examines only the containers that
//! can have changed: its cost follows what changed, not the store's size.
//!
//! **Concurrency.** The run holds the store lock exclusive ([`crate::lock`]),
//! so no backup deduplicates against a container it is deleting, and it
//! raises the store's collection generation before deleting anything, so a
//! process whose index was loaded earlier loads it again before its next
//! backup ([`Repo::refresh`]).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use coffer_catalog::{Catalog, JobEnd};
use coffer_store::{EntryKind, Extent, Packer, Repo};
use coffer_types::api::MaintenanceStats;
use coffer_types::{BackupStats, ChunkId, ContainerId, IdSet, JobKind, JobStatus};

use crate::lock::StoreLock;

pub(crate) mod marks;
use crate::{Actor, Error, Progress, Result, now_ms};

/// How a collection runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GcOptions {
    /// A container whose live chunks take less than this share of its
    /// stored bytes is compacted (0 never compacts; 1 compacts every
    /// container with any dead chunk).
    pub compact_below: f64,
    /// Only report what would be done.
    pub dry_run: bool,
    /// Re-encrypt the data of key generations below this one (other than
    /// the current) under the current generation, so their keys can be
    /// destroyed (0: none).
    pub retire_before: u32,
    /// Mark every snapshot and examine every container, whatever the mark
    /// cache holds (the cache is rebuilt).
    pub full: bool,
}

impl Default for GcOptions {
    fn default() -> GcOptions {
        GcOptions {
            compact_below: 0.5,
            dry_run: false,
            retire_before: 0,
            full: false,
        }
    }
}

/// What a collection found and did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct GcReport {
    /// The figures (as recorded in the catalog).
    pub stats: MaintenanceStats,
    /// Containers in the store before the run.
    pub containers: u64,
    /// Containers examined: all of them in a full collection; otherwise
    /// those that can have changed since the last (see [`marks`]).
    pub examined: u64,
    /// Every container was examined, and every snapshot's manifest read
    /// (no usable mark cache, a higher compaction threshold than last time,
    /// or key retirement).
    pub full: bool,
    /// Snapshot manifests read: the snapshots new since the last collection
    /// (all of them in a full one).
    pub manifests_read: u64,
    /// Chunk copies some snapshot references (positions marked).
    pub live_chunks: u64,
    /// Stored bytes of referenced chunks, in the containers examined.
    pub live_bytes: u64,
    /// Stored bytes of chunks nothing references, in the containers
    /// examined, before the run.
    pub dead_bytes: u64,
    /// Containers that would be deleted (dry run) or were.
    pub delete: Vec<ContainerId>,
    /// Containers that would be compacted (dry run) or were.
    pub compact: Vec<ContainerId>,
    /// What did not go as planned (a retention-locked container that could
    /// not be deleted, a damaged chunk that could not be copied); the job
    /// ends with warnings.
    pub warnings: Vec<String>,
    /// Only reported.
    pub dry_run: bool,
    /// Data key generations destroyed (crypto-shredded) because nothing was
    /// sealed under them any more: (generation, key id).
    pub shredded: Vec<(u32, String)>,
}

/// Every chunk snapshots `ids` reference: their manifests' chunks and the
/// data chunks their entries name. A snapshot record or manifest that
/// cannot be read stops the collection: what it references is unknown, so
/// nothing may be deleted.
pub fn mark_snapshots(
    repo: &Repo,
    ids: &[coffer_types::SnapshotId],
    progress: &Progress,
) -> Result<IdSet<ChunkId>> {
    let mut live = IdSet::default();
    for id in ids {
        let unreadable = |e: &dyn std::fmt::Display| {
            Error::Invalid(format!(
                "snapshot {id} cannot be read ({e}): nothing is collected while what it references is unknown; verify the store"
            ))
        };
        let rec = repo.load_snapshot(id).map_err(|e| unreadable(&e))?;
        live.extend(rec.manifest.iter().copied());
        let mut dec = repo.manifest(&rec);
        while let Some(e) = dec.next_entry().map_err(|e| unreadable(&e))? {
            Progress::add(&progress.entries, 1);
            if matches!(e.kind, EntryKind::File | EntryKind::Hardlink) {
                for x in &e.extents {
                    if let Extent::Data { id, .. } = x {
                        live.insert(*id);
                    }
                }
            }
        }
        if let Some(s) = progress.stop_requested() {
            return Err(Error::Stopped(s));
        }
    }
    Ok(live)
}

#[derive(Default)]
struct Usage {
    total: u64,
    live: u64,
    live_chunks: Vec<ChunkId>,
}

/// Collects garbage in `repo`, recording a `gc` job (except for a dry run).
/// `job` is a queued job row to run as (the daemon's), or `None` to start
/// one.
pub fn gc(
    repo: &Repo,
    catalog: &Catalog,
    opts: &GcOptions,
    trusted_ms: i64,
    actor: &Actor,
    progress: &Progress,
    job: Option<i64>,
) -> Result<GcReport> {
    let started = Instant::now();
    let lock = if opts.dry_run {
        StoreLock::shared(catalog)?
    } else {
        StoreLock::exclusive(catalog)?
    };
    if opts.dry_run {
        repo.refresh()?;
    } else {
        // Every container any process committed, and every data key: what
        // is counted before a key is destroyed must be complete.
        repo.reload()?;
    }
    // A reload forgets what the last verification found damaged.
    repo.mark_bad(&catalog.damaged_containers()?)?;
    let job = if opts.dry_run {
        None
    } else {
        let new = crate::maintenance_job(JobKind::Gc, None, vec![repo.blobs().describe()], actor);
        Some(crate::start_job(catalog, &new, job)?)
    };
    let result = (|| {
        // Locks that ended release their objects first, so what they
        // pinned can go; what protected snapshots need is never compacted.
        let imm = if opts.dry_run {
            crate::protect::ImmutabilityReport::default()
        } else {
            crate::protect::apply_immutability(repo, catalog, trusted_ms, progress)?
        };
        let pinned = crate::protect::immutable_containers(catalog)?;
        let mut r = collect(repo, catalog, opts, &pinned, progress)?;
        r.warnings.splice(0..0, imm.warnings);
        Ok(r)
    })();
    drop(lock);
    let Some(id) = job else {
        return result;
    };
    let (status, messages, mut stats) = match &result {
        Ok(r) if r.warnings.is_empty() => (JobStatus::Success, Vec::new(), r.stats.clone()),
        Ok(r) => (JobStatus::Warning, r.warnings.clone(), r.stats.clone()),
        Err(Error::Stopped(crate::Stop::Cancel)) => (
            JobStatus::Cancelled,
            vec!["cancelled: nothing referenced was removed; run gc again to finish".into()],
            MaintenanceStats::default(),
        ),
        Err(e) => (
            JobStatus::Failed,
            vec![format!("error: {e}")],
            MaintenanceStats::default(),
        ),
    };
    stats.duration_ms = started.elapsed().as_millis() as u64;
    catalog.finish_job(
        id,
        &JobEnd {
            status,
            stats: BackupStats {
                bytes_stored: stats.bytes_copied,
                ..BackupStats::default()
            },
            messages: &messages,
            snapshot: None,
            ended_ms: now_ms(),
        },
    )?;
    catalog.record_maintenance(id, &stats)?;
    if let Ok(r) = &result {
        for (g, key_id) in &r.shredded {
            catalog.record_disposal(&coffer_catalog::NewDisposal {
                at_ms: now_ms(),
                what: format!(
                    "data key generation {g} of store {}: everything sealed under it (job {id})",
                    repo.config().store_id.to_hex()
                ),
                keys: vec![format!("data key generation {g}, id {key_id}")],
                objects: 1,
                bytes: coffer_keys::DATA_KEY_FILE_LEN as u64,
                policy: Some(if opts.retire_before > *g {
                    format!("key retirement: generations below {}", opts.retire_before)
                } else {
                    "retention: every container sealed under it expired".into()
                }),
                identity: actor.identity.clone(),
                detail: "crypto-shredded: the only copy of the wrapped key (datakeys/ object) was deleted, after every container sealed under it had been deleted or re-encrypted under a newer key".into(),
            })?;
            catalog.record_key_event(
                now_ms(),
                "destroyed",
                *g,
                &actor.identity,
                &format!("data key {key_id} destroyed by gc job {id} (crypto-shredding)"),
            )?;
        }
    }
    if result.is_ok() && stats.containers_deleted > 0 {
        // The auditor's record of what retention disposed of.
        let gone = stats.containers_deleted;
        catalog.record_disposal(&coffer_catalog::NewDisposal {
            at_ms: now_ms(),
            what: format!(
                "{gone} container(s) of store {} that no retained snapshot references (job {id})",
                repo.config().store_id.to_hex()
            ),
            keys: Vec::new(),
            objects: gone * 2,
            bytes: stats.bytes_freed,
            policy: Some("retention: snapshots expired by prune".into()),
            identity: actor.identity.clone(),
            detail: "deleted, index object then data object; no key destroyed (the store's container keys derive from its one master key, so this disposal is by deletion, not crypto-shredding)".into(),
        })?;
    }
    result.map(|mut r| {
        r.stats.duration_ms = stats.duration_ms;
        r
    })
}

fn collect(
    repo: &Repo,
    catalog: &Catalog,
    opts: &GcOptions,
    pinned: &HashSet<ContainerId>,
    progress: &Progress,
) -> Result<GcReport> {
    let mut marks = marks::Marks::load(repo, catalog, opts.full)?;
    let ids = repo.snapshot_ids()?;
    marks.update(repo, &ids, progress)?;
    let union = marks.union();
    let bad = repo.bad_containers()?;
    let full = marks.rebuilt
        || opts.retire_before > 0
        || opts.compact_below > marks.last_compact_below + 1e-9;
    let mut candidates = marks.candidates(full);
    if let Some(c) = &mut candidates {
        c.extend(bad.keys().copied());
    }
    let examine = |c: &ContainerId| candidates.as_ref().is_none_or(|s| s.contains(c));

    let mut usage: HashMap<ContainerId, Usage> = HashMap::new();
    let mut unmarked: Vec<(ContainerId, ChunkId, u32, u32)> = Vec::new();
    let nothing = candidates.as_ref().is_some_and(HashSet::is_empty);
    repo.for_each_slot(
        |c| !nothing && examine(c),
        |c, id, index, len| {
            let u = usage.entry(*c).or_default();
            u.total += u64::from(len);
            if marks.is_marked(&union, c, index) {
                u.live += u64::from(len);
                u.live_chunks.push(*id);
            } else {
                unmarked.push((*c, *id, index, len));
            }
        },
    )?;
    // A copy nobody marked (stored after the snapshots that use the chunk
    // were marked) is live when another copy is; from now on the snapshots
    // that mark that copy mark this one too.
    let mut extra = Vec::new();
    for (c, id, index, len) in unmarked {
        let marked = repo
            .slots(&id)?
            .into_iter()
            .find(|(k, i)| marks.is_marked(&union, k, *i));
        if let Some((k, i)) = marked
            && let Some(u) = usage.get_mut(&c)
        {
            u.live += u64::from(len);
            u.live_chunks.push(id);
            if let (Some(from), Some(to)) = (marks.position_of(&k, i), marks.position_of(&c, index))
            {
                extra.push((from, to));
            }
        }
    }
    marks.mark_copies(&extra);
    // Containers the index knows without a chunk (an empty table) are dead.
    let all = repo.container_ids()?;
    for c in all.iter().filter(|c| examine(c)) {
        usage.entry(*c).or_default();
    }
    let mut report = GcReport {
        containers: all.len() as u64,
        examined: usage.len() as u64,
        full: candidates.is_none(),
        manifests_read: marks.manifests_read,
        live_chunks: union.len(),
        dry_run: opts.dry_run,
        ..GcReport::default()
    };
    report.stats.snapshots_kept = ids.len() as u64;
    let mut examined: Vec<&ContainerId> = usage.keys().collect();
    examined.sort();
    let current = repo.data_generation()?;
    for c in examined {
        let u = &usage[c];
        report.live_bytes += u.live;
        report.dead_bytes += u.total - u.live;
        let mut later = false;
        if pinned.contains(c) {
            // Immutable: a protected snapshot needs it as it is (even when
            // its table could not be read and it looks dead). Looked at
            // again once the lock ends.
            later = true;
        } else if u.total == 0 && bad.contains_key(c) && !marks.missing.is_empty() {
            // Its table could not be read, and snapshots reference chunks
            // found nowhere: they may be in it.
            report.warnings.push(format!(
                "container {c} kept: its table cannot be read and {} chunk(s) snapshots reference are in no readable container; run verify",
                marks.missing.len()
            ));
            later = true;
        } else if u.live == 0 {
            // Missing or damaged containers too: nothing needs them.
            report.delete.push(*c);
        } else if bad.contains_key(c) {
            // Damaged (or missing): deleted once every chunk anything
            // needs from it has a sound copy elsewhere.
            let mut redundant = true;
            for id in &u.live_chunks {
                redundant &= !repo.copies(id)?.is_empty();
            }
            if redundant {
                report.delete.push(*c);
            } else {
                later = true;
            }
        } else if retiring(repo, c, opts, current)? {
            // Its key generation is being retired: re-encrypted whole.
            report.compact.push(*c);
        } else if u.live < u.total && (u.live as f64) < opts.compact_below * u.total as f64 {
            report.compact.push(*c);
        }
        marks.defer(c, later);
    }
    if opts.dry_run {
        report.stats.containers_deleted = report.delete.len() as u64;
        report.stats.containers_compacted = report.compact.len() as u64;
        return Ok(report);
    }
    let generation = repo.begin_gc()?;

    // Copy out the live chunks of the containers to compact.
    let leaving: HashSet<ContainerId> = report
        .delete
        .iter()
        .chain(&report.compact)
        .copied()
        .collect();
    let mut copied: IdSet<ChunkId> = IdSet::default();
    let mut compacted = Vec::new();
    {
        let mut packer = Packer::new(repo);
        for c in &report.compact {
            if let Some(s) = progress.stop_requested() {
                packer.flush()?;
                return Err(Error::Stopped(s));
            }
            let mut ok = true;
            for id in &usage[c].live_chunks {
                if copied.contains(id) || repo.copies(id)?.iter().any(|k| !leaving.contains(k)) {
                    continue;
                }
                match repo.read_chunk(id) {
                    Ok(raw) => {
                        packer.add(*id, &raw)?;
                        copied.insert(*id);
                        report.stats.chunks_copied += 1;
                        Progress::add(&progress.bytes, raw.len() as u64);
                    }
                    Err(e) => {
                        report.warnings.push(format!(
                            "container {c} kept: its live chunk {id} cannot be read ({e}); run verify"
                        ));
                        ok = false;
                        break;
                    }
                }
            }
            if ok {
                compacted.push(*c);
            } else {
                marks.defer(c, true);
            }
        }
        packer.flush()?;
        report.stats.bytes_copied = packer.stored;
    }

    // The snapshots' marks move to the surviving copies; a container whose
    // marked chunk has none stays.
    let going: HashSet<ContainerId> = report.delete.iter().chain(&compacted).copied().collect();
    let mut chunk_at: HashMap<(ContainerId, u32), ChunkId> = HashMap::new();
    if !going.is_empty() {
        repo.for_each_slot(
            |c| going.contains(c),
            |c, id, index, _| {
                chunk_at.insert((*c, index), *id);
            },
        )?;
    }
    let blocked = marks.remap(repo, &union, &going, &chunk_at)?;
    for c in &blocked {
        report.warnings.push(format!(
            "container {c} kept: a chunk a snapshot needs has no other sound copy; run verify"
        ));
        marks.defer(c, true);
    }

    // Only now does anything go.
    let mut gone = Vec::new();
    for c in report.delete.iter().chain(&compacted) {
        if blocked.contains(c) {
            continue;
        }
        match repo.remove_container(c) {
            Ok(n) => {
                report.stats.bytes_freed += n;
                gone.push(*c);
                marks.deleted(c);
            }
            Err(e) => {
                report
                    .warnings
                    .push(format!("container {c} could not be deleted: {e}"));
                marks.defer(c, true);
            }
        }
    }
    report.stats.containers_compacted =
        compacted.iter().filter(|c| gone.contains(c)).count() as u64;
    report.stats.containers_deleted = gone.len() as u64;
    // Crypto-shredding: a data key nothing is sealed under any more (its
    // data expired, or was re-encrypted above) is destroyed.
    for k in repo.data_keys()? {
        if k.generation < 2 || k.current || k.containers > 0 {
            if k.generation >= 2 && !k.current && k.generation < opts.retire_before {
                report.warnings.push(format!(
                    "data key generation {} still seals {} container(s) that retention locks pin; it is destroyed once they expire",
                    k.generation, k.containers
                ));
            }
            continue;
        }
        match repo.destroy_data_key(k.generation) {
            Ok(id) => report.shredded.push((k.generation, id)),
            Err(e) => report.warnings.push(format!(
                "data key generation {} could not be destroyed: {e}",
                k.generation
            )),
        }
    }
    repo.end_gc(generation)?;
    marks.save(catalog, repo.current_gc_generation()?, opts.compact_below)?;
    Ok(report)
}

/// Whether container `c` is sealed under a generation being retired.
fn retiring(repo: &Repo, c: &ContainerId, opts: &GcOptions, current: u32) -> Result<bool> {
    if opts.retire_before == 0 {
        return Ok(false);
    }
    let g = repo.container_generation(c)?;
    Ok(g != current && g < opts.retire_before)
}

#[cfg(test)]
pub(crate) mod tests;
