//! Verification jobs, on the `[verify]` calendars or on demand
//! (`verify_run`):
//!
//! - `store`: the store read back in full (`verify --read-data`: every
//!   container read and authenticated, damage mapped to the files it
//!   touches);
//! - `pool`: the disk pool the store lives on scrubbed (every shard read
//!   and checked against its hashes, damage rewritten from parity);
//! - `tape`: the newest media set of every media pool read back from its
//!   cartridges (every object authenticated and compared with the store's
//!   copy);
//! - `remote`: every remote's copy read back (a paired appliance's
//!   replica pulled whole into a scratch directory, a bucket read in
//!   place) and verified with the store's keys, like the store.
//!
//! The results are in the job log; damage fails the job and raises a
//! `verify-failed` alert on `store`, `pool`, `tape:POOL` or `remote:NAME`,
//! which the next clean verification of the same copy clears. A scrub
//! that found damage and healed all of it ends `warning`.

use std::sync::Arc;

use anyhow::{Result, anyhow};
use coffer_catalog::{Catalog, Pending, QueuedJob};
use coffer_engine::{Actor, Progress};
use coffer_types::api::{Source, VerifyWhat};
use coffer_types::{JobKind, JobStatus, Scope};

use crate::Inner;
use crate::joblog::JobLog;

/// The alert damage found by a verification raises.
pub(crate) const VERIFY_FAILED: &str = "verify-failed";

const POOL: &str = "pool:";

/// What `verify_run` queues, in words.
pub(crate) fn describe(what: VerifyWhat, name: Option<&str>) -> String {
    match (what, name) {
        (VerifyWhat::Store, _) => "the store".into(),
        (VerifyWhat::Pool, _) => "the disk pool (scrub)".into(),
        (VerifyWhat::Tape, Some(p)) => format!("the newest media set of pool {p}"),
        (VerifyWhat::Tape, None) => "tape media sets".into(),
        (VerifyWhat::Remote, Some(r)) => format!("the copy at remote {r}"),
        (VerifyWhat::Remote, None) => "every remote's copy".into(),
    }
}

fn what_of(scope: &Scope) -> VerifyWhat {
    scope
        .paths
        .first()
        .and_then(|p| p.parse().ok())
        .unwrap_or_default()
}

/// Queues verifications of `what`: of the store, of the disk pool, of the
/// newest media set of media pool `name` (of every pool with a set when
/// `None`), or of remote `name`'s copy (of every remote when `None`).
pub(crate) fn enqueue(
    inner: &Inner,
    cat: &Catalog,
    what: VerifyWhat,
    name: Option<&str>,
    identity: &str,
    source: Source,
) -> Result<Vec<i64>> {
    let invalid = |m: String| anyhow!(m);
    // (scope paths, remote) per job.
    let jobs: Vec<(Vec<String>, Option<String>)> = match what {
        VerifyWhat::Store => vec![(vec![what.as_str().into()], None)],
        VerifyWhat::Pool => {
            if inner.pool.is_none() {
                return Err(invalid(format!(
                    "the store '{}' is not on a disk pool: there is nothing to scrub ('verify store' reads the store back)",
                    inner.config().store.path.display()
                )));
            }
            vec![(vec![what.as_str().into()], None)]
        }
        VerifyWhat::Tape => {
            if inner.config().tape.library.is_none() {
                return Err(invalid(
                    "no tape library is configured (tape.library)".into(),
                ));
            }
            let pools: Vec<String> = match name {
                Some(p) => vec![p.to_string()],
                None => {
                    let mut v: Vec<String> =
                        cat.media_sets()?.into_iter().map(|s| s.pool).collect();
                    v.sort();
                    v.dedup();
                    v
                }
            };
            if pools.is_empty() {
                return Err(invalid("there is no media set to verify".into()));
            }
            pools
                .into_iter()
                .map(|p| (vec![what.as_str().into(), format!("{POOL}{p}")], None))
                .collect()
        }
        VerifyWhat::Remote => {
            let remotes: Vec<String> = match name {
                Some(r) => vec![cat.remote(r)?.spec.name],
                None => cat.remotes()?.into_iter().map(|r| r.spec.name).collect(),
            };
            if remotes.is_empty() {
                return Err(invalid("there is no remote to verify".into()));
            }
            remotes
                .into_iter()
                .map(|r| (vec![what.as_str().into()], Some(r)))
                .collect()
        }
    };
    let mut ids = Vec::new();
    for (paths, remote) in jobs {
        let id = cat.queue_job(&QueuedJob {
            scope: Scope {
                paths,
                ..Scope::default()
            },
            remote,
            ..inner.job(JobKind::Verify, identity, source)
        })?;
        tracing::info!(
            job_id = id,
            identity,
            what = what.as_str(),
            "verification queued"
        );
        ids.push(id);
    }
    inner.jobs.wake.notify_one();
    Ok(ids)
}

/// The subject a verification job holds while it runs: the drive for a
/// tape one, the remote (as its replication does) for a remote's copy,
/// the store otherwise.
pub(crate) fn subject(v: &coffer_types::api::JobView) -> String {
    match what_of(&v.record.scope) {
        VerifyWhat::Tape => "tape".into(),
        VerifyWhat::Remote => format!("remote:{}", v.remote.as_deref().unwrap_or_default()),
        VerifyWhat::Store | VerifyWhat::Pool => "verify-store".into(),
    }
}

/// Queues the verifications whose `[verify]` calendar is due.
pub(crate) fn schedule(
    inner: &Inner,
    cat: &Catalog,
    now: i64,
    tz: &jiff::tz::TimeZone,
) -> Result<()> {
    let config = inner.config();
    let mut calendars = Vec::new();
    for (what, expr) in [
        (VerifyWhat::Store, &config.verify.store),
        (VerifyWhat::Tape, &config.verify.tape),
        (VerifyWhat::Pool, &config.verify.pool),
        (VerifyWhat::Remote, &config.verify.remote),
    ] {
        if let Some(e) = expr
            && let Ok(c) = crate::calendar::Calendar::parse(e)
        {
            calendars.push((what, c));
        }
    }
    let state = cat.verify_schedule_state()?;
    if calendars.is_empty() && state.is_empty() {
        return Ok(());
    }
    let (due, set, forget) = crate::plan::plan_calendars(
        now,
        calendars.iter().map(|(w, c)| (w.as_str(), c)),
        &state,
        tz,
    );
    for (what, due_ms) in &due {
        let Ok(kind) = what.parse::<VerifyWhat>() else {
            continue;
        };
        let queued = enqueue(
            inner,
            cat,
            kind,
            None,
            crate::scheduler::SCHEDULER,
            Source::Scheduler,
        );
        let (result, detail) = match &queued {
            Ok(ids) => (
                "ok",
                format!(
                    "job(s) {ids:?}: {what} verification due at {}",
                    coffer_types::rfc3339_ms(*due_ms)
                ),
            ),
            Err(e) => ("failed", format!("{what} verification not queued: {e:#}")),
        };
        inner.audit(
            cat,
            crate::scheduler::SCHEDULER,
            Source::Scheduler,
            "job.queue",
            what,
            result,
            &detail,
        );
    }
    if !set.is_empty() || !forget.is_empty() {
        cat.set_verify_schedule_state(&set, &forget)?;
    }
    Ok(())
}

/// How a verification came out: the row's status (when this module ends
/// the row; `None` when the engine or media code already did) and what
/// it found.
struct Found {
    status: JobStatus,
    ended: bool,
    detail: String,
    bytes: u64,
}

/// Runs a queued verification job.
pub(crate) fn execute(
    inner: &Inner,
    p: &Pending,
    progress: &Arc<Progress>,
    log: &JobLog,
) -> Result<()> {
    let r = &p.view.record;
    let source = p.view.source.unwrap_or(Source::System);
    let cat = inner.start_job(r)?;
    let what = what_of(&r.scope);
    let actor = Actor {
        identity: r.identity.clone(),
        host: inner.host.clone(),
    };
    let (target, outcome): (String, Result<Found>) = match what {
        VerifyWhat::Store => {
            log.info(&format!(
                "verification of the store (read every container) started by {}",
                r.identity
            ));
            ("store".into(), store(inner, &cat, progress, log, r.id))
        }
        VerifyWhat::Pool => {
            log.info(&format!(
                "scrub of the disk pool (every shard read and checked) started by {}",
                r.identity
            ));
            ("pool".into(), scrub(inner, progress, log))
        }
        VerifyWhat::Tape => {
            let pool = r
                .scope
                .paths
                .iter()
                .find_map(|p| p.strip_prefix(POOL))
                .map(str::to_string);
            log.info(&format!(
                "read-back of the newest media set of pool {} started by {}",
                pool.as_deref().unwrap_or("(any)"),
                r.identity
            ));
            let out = tape(inner, &cat, pool.clone(), &actor, progress, log, r.id);
            (format!("tape:{}", pool.unwrap_or_default()), out)
        }
        VerifyWhat::Remote => {
            let name = p.view.remote.clone().unwrap_or_default();
            log.info(&format!(
                "read-back of the copy at remote '{name}' started by {}",
                r.identity
            ));
            let out = remote(inner, &cat, &name, &actor, progress, log);
            (format!("remote:{name}"), out)
        }
    };
    let shared = inner.catalog()?;
    let now = inner.now_ms();
    let (result, detail) = match outcome {
        Ok(f) => {
            if !f.ended {
                cat.finish_job(
                    r.id,
                    &coffer_catalog::JobEnd {
                        status: f.status,
                        stats: coffer_types::BackupStats {
                            bytes_read: f.bytes,
                            ..coffer_types::BackupStats::default()
                        },
                        messages: std::slice::from_ref(&f.detail),
                        snapshot: None,
                        ended_ms: now,
                    },
                )?;
            }
            if f.status == JobStatus::Failed {
                log.error(&f.detail);
                inner.system_alert(
                    &shared,
                    VERIFY_FAILED,
                    &target,
                    &format!("job {}: {}", r.id, f.detail),
                    now,
                )?;
                ("failed", f.detail)
            } else {
                if f.status == JobStatus::Warning {
                    log.warn(&f.detail);
                } else {
                    log.info(&f.detail);
                }
                shared.clear_alert(VERIFY_FAILED, &target, now)?;
                ("ok", f.detail)
            }
        }
        Err(e) => {
            // The engine or media code ended the row when it began the
            // check; anything earlier is ended here.
            let msg = format!("{e:#}");
            log.error(&msg);
            shared.end_job_early(
                r.id,
                &[JobStatus::Running],
                JobStatus::Failed,
                &format!("error: {msg}"),
                now,
            )?;
            inner.system_alert(
                &shared,
                VERIFY_FAILED,
                &target,
                &format!("job {}: {msg}", r.id),
                now,
            )?;
            ("failed", msg)
        }
    };
    inner.audit(
        &shared,
        &r.identity,
        source,
        "job.finish",
        &target,
        result,
        &format!("job {}: {detail}", r.id),
    );
    Ok(())
}

fn summary(rep: &coffer_engine::verify::VerifyReport, log: &JobLog) -> (bool, String) {
    let lines = coffer_engine::verify::describe(rep);
    for l in &lines {
        log.warn(l);
    }
    (
        rep.ok(),
        format!(
            "{} containers, {} bytes read and authenticated, {} snapshots read{}",
            rep.containers_checked,
            rep.bytes_checked,
            rep.snapshots_checked,
            if rep.ok() {
                String::new()
            } else {
                format!("; {}", lines.join("; "))
            }
        ),
    )
}

/// `verify --read-data` of the store; the engine ends the row.
fn store(
    inner: &Inner,
    cat: &Catalog,
    progress: &Progress,
    log: &JobLog,
    job: i64,
) -> Result<Found> {
    let rep = coffer_engine::verify::verify_queued(
        inner.repo.blobs().as_ref(),
        Some(&inner.repo),
        cat,
        true,
        progress,
        job,
    )
    .map_err(|e| anyhow!("{e}"))?;
    let (ok, detail) = summary(&rep, log);
    Ok(Found {
        status: if ok {
            JobStatus::Success
        } else {
            JobStatus::Failed
        },
        ended: true,
        detail,
        bytes: rep.bytes_checked,
    })
}

/// Scrubs the disk pool: every shard read and checked, damage rewritten
/// from parity.
fn scrub(inner: &Inner, progress: &Progress, log: &JobLog) -> Result<Found> {
    let pool = inner
        .pool
        .as_ref()
        .ok_or_else(|| anyhow!("the store is not on a disk pool: there is nothing to scrub"))?;
    let rep = pool.scrub(&|p| {
        progress
            .files
            .store(p.objects_done, std::sync::atomic::Ordering::Relaxed);
        progress
            .bytes
            .store(p.bytes, std::sync::atomic::Ordering::Relaxed);
    })?;
    for m in &rep.members {
        log.info(&format!(
            "member {} ({}): {}, {} shards read, {} damaged, {} written",
            m.id,
            m.path.display(),
            m.state,
            m.shards,
            m.damaged,
            m.written
        ));
    }
    for k in &rep.unrecoverable {
        log.error(&format!("unrecoverable: {k}"));
    }
    for f in &rep.failures {
        log.error(&format!("repair failed: {f}"));
    }
    let mut detail = format!(
        "pool '{}': {} objects, {} shards ({} bytes) read and checked; {} missing, {} damaged, {} rewritten from parity",
        rep.pool,
        rep.objects,
        rep.shards_checked,
        rep.bytes_checked,
        rep.shards_missing,
        rep.shards_damaged,
        rep.shards_repaired
    );
    let status = if !rep.ok() {
        if !rep.unrecoverable.is_empty() {
            detail.push_str(&format!(
                "; {} object(s) have fewer good shards than the pool needs: data lost (first: {})",
                rep.unrecoverable.len(),
                rep.unrecoverable[0]
            ));
        }
        if !rep.failures.is_empty() {
            detail.push_str(&format!(
                "; {} repair(s) could not be made (first: {})",
                rep.failures.len(),
                rep.failures[0]
            ));
        }
        JobStatus::Failed
    } else if rep.shards_damaged + rep.shards_missing > 0 {
        detail.push_str("; everything found was healed: the pool is fully redundant again");
        JobStatus::Warning
    } else {
        JobStatus::Success
    };
    Ok(Found {
        status,
        ended: false,
        detail,
        bytes: rep.bytes_checked,
    })
}

/// Reads the newest set of media pool `pool` back; the media code ends
/// the row.
fn tape(
    inner: &Inner,
    cat: &Catalog,
    pool: Option<String>,
    actor: &Actor,
    progress: &Progress,
    log: &JobLog,
    job: i64,
) -> Result<Found> {
    let config = inner.config();
    let lib_config = config
        .tape
        .library
        .clone()
        .ok_or_else(|| anyhow!("no tape library is configured (tape.library)"))?;
    let mut lib = coffer_tape::open_library(&lib_config)?;
    let rep = coffer_media::restore::verify_set(
        &inner.repo,
        cat,
        lib.as_mut(),
        &coffer_media::restore::VerifySetRequest {
            set: None,
            pool,
            drive: config.tape.drive,
            job: Some(job),
        },
        actor,
        &|_, done, _| {
            progress
                .bytes
                .store(done, std::sync::atomic::Ordering::Relaxed)
        },
    )?;
    for (k, why) in &rep.lost {
        log.warn(&format!("lost: {k}: {why}"));
    }
    for k in &rep.differ {
        log.warn(&format!("differs from the store: {k}"));
    }
    Ok(Found {
        status: if rep.ok() {
            JobStatus::Success
        } else {
            JobStatus::Failed
        },
        ended: true,
        detail: format!(
            "media set {}: {} objects ({} bytes) read back from {}; {} lost, {} differ from the store",
            rep.set,
            rep.objects,
            rep.bytes,
            rep.cartridges.join(", "),
            rep.lost.len(),
            rep.differ.len()
        ),
        bytes: rep.bytes,
    })
}

/// Reads remote `name`'s copy back and verifies it with the store's keys
/// (every container read and authenticated, every snapshot's record and
/// file list read); an appliance's copy is pulled into a scratch
/// directory under the state directory first, and removed after.
fn remote(
    inner: &Inner,
    cat: &Catalog,
    name: &str,
    actor: &Actor,
    progress: &Arc<Progress>,
    log: &JobLog,
) -> Result<Found> {
    let row = cat.remote(name)?;
    let state = inner.config().daemon.state_dir;
    let scratch = tempfile::Builder::new()
        .prefix("verify-remote-")
        .tempdir_in(&state)?;
    let copy = crate::offsite::open(inner, &row, scratch.path(), progress, log)?;
    let rep = coffer_engine::verify::verify(
        copy.repo.blobs().as_ref(),
        Some(&copy.repo),
        None,
        true,
        actor,
        progress,
    )
    .map_err(|e| anyhow!("{e}"))?;
    let (ok, found) = summary(&rep, log);
    // What the copy holds of the store's snapshots (a newer one may not
    // have been replicated yet: that is the replication lag's business).
    let held: std::collections::BTreeSet<String> = copy
        .repo
        .snapshot_ids()?
        .iter()
        .map(|s| s.to_hex())
        .collect();
    let ours = cat.snapshots(None)?;
    let on_copy = ours
        .iter()
        .filter(|s| held.contains(&s.id.to_hex()))
        .count();
    Ok(Found {
        status: if ok {
            JobStatus::Success
        } else {
            JobStatus::Failed
        },
        ended: false,
        detail: format!(
            "{}: {found}; it holds {on_copy} of the store's {} snapshots",
            copy.what,
            ours.len()
        ),
        bytes: rep.bytes_checked,
    })
}
