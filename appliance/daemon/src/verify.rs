//! Verification jobs: the store read back in full (`verify --read-data`:
//! every container read and authenticated, damage mapped to the files it
//! touches) and the newest media set of every media pool read back from
//! its cartridges (every object authenticated and compared with the
//! store's copy). On the `[verify]` calendars, or on demand
//! (`verify_run`). The results are in the job log; damage fails the job
//! and raises a `verify-failed` alert on `store` or `tape:POOL`, which the
//! next clean verification of the same copy clears.

use anyhow::{Result, anyhow};
use coffer_catalog::{Catalog, Pending, QueuedJob};
use coffer_engine::{Actor, Progress};
use coffer_types::api::Source;
use coffer_types::{JobKind, Scope};

use crate::Inner;
use crate::joblog::JobLog;

/// The alert damage found by a verification raises.
pub(crate) const VERIFY_FAILED: &str = "verify-failed";

const STORE: &str = "store";
const TAPE: &str = "tape";
const POOL: &str = "pool:";

/// Queues a verification: of the store, or (`tape`) of the newest media
/// set of `pool` (of every pool with a set when `None`).
pub(crate) fn enqueue(
    inner: &Inner,
    cat: &Catalog,
    tape: bool,
    pool: Option<&str>,
    identity: &str,
    source: Source,
) -> Result<Vec<i64>> {
    let scopes: Vec<Vec<String>> = if !tape {
        vec![vec![STORE.into()]]
    } else {
        if inner.config().tape.library.is_none() {
            return Err(anyhow!("no tape library is configured (tape.library)"));
        }
        let pools: Vec<String> = match pool {
            Some(p) => vec![p.to_string()],
            None => {
                let mut v: Vec<String> = cat.media_sets()?.into_iter().map(|s| s.pool).collect();
                v.sort();
                v.dedup();
                v
            }
        };
        if pools.is_empty() {
            return Err(anyhow!("there is no media set to verify"));
        }
        pools
            .into_iter()
            .map(|p| vec![TAPE.into(), format!("{POOL}{p}")])
            .collect()
    };
    let mut ids = Vec::new();
    for paths in scopes {
        let id = cat.queue_job(&QueuedJob {
            scope: Scope {
                paths,
                ..Scope::default()
            },
            ..inner.job(JobKind::Verify, identity, source)
        })?;
        tracing::info!(job_id = id, identity, "verification queued");
        ids.push(id);
    }
    inner.jobs.wake.notify_one();
    Ok(ids)
}

/// The subject a verification job holds while it runs: the drive for a
/// tape one, the store otherwise.
pub(crate) fn subject(scope: &Scope) -> String {
    if scope.paths.iter().any(|p| p == TAPE) {
        "tape".into()
    } else {
        "verify-store".into()
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
    for (what, expr) in [(STORE, &config.verify.store), (TAPE, &config.verify.tape)] {
        if let Some(e) = expr
            && let Ok(c) = crate::calendar::Calendar::parse(e)
        {
            calendars.push((what.to_string(), c));
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
        let queued = enqueue(
            inner,
            cat,
            what == TAPE,
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

/// Runs a queued verification job.
pub(crate) fn execute(inner: &Inner, p: &Pending, progress: &Progress, log: &JobLog) -> Result<()> {
    let r = &p.view.record;
    let source = p.view.source.unwrap_or(Source::System);
    let cat = inner.start_job(r)?;
    let tape = r.scope.paths.iter().any(|p| p == TAPE);
    let (target, outcome): (String, Result<(bool, String)>) = if !tape {
        log.info(&format!(
            "verification of the store (read every container) started by {}",
            r.identity
        ));
        let out = coffer_engine::verify::verify_queued(
            inner.repo.blobs().as_ref(),
            Some(&inner.repo),
            &cat,
            true,
            progress,
            r.id,
        )
        .map(|rep| {
            let lines = coffer_engine::verify::describe(&rep);
            for l in &lines {
                log.warn(l);
            }
            (
                rep.ok(),
                format!(
                    "{} containers, {} bytes read and authenticated{}",
                    rep.containers_checked,
                    rep.bytes_checked,
                    if rep.ok() {
                        String::new()
                    } else {
                        format!("; {}", lines.join("; "))
                    }
                ),
            )
        })
        .map_err(|e| anyhow!("{e}"));
        (STORE.to_string(), out)
    } else {
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
        let config = inner.config();
        let out = (|| -> Result<(bool, String)> {
            let lib_config = config
                .tape
                .library
                .clone()
                .ok_or_else(|| anyhow!("no tape library is configured (tape.library)"))?;
            let mut lib = coffer_tape::open_library(&lib_config)?;
            let actor = Actor {
                identity: r.identity.clone(),
                host: inner.host.clone(),
            };
            let rep = coffer_media::restore::verify_set(
                &inner.repo,
                &cat,
                lib.as_mut(),
                &coffer_media::restore::VerifySetRequest {
                    set: None,
                    pool: pool.clone(),
                    drive: config.tape.drive,
                    job: Some(r.id),
                },
                &actor,
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
            Ok((
                rep.ok(),
                format!(
                    "media set {}: {} objects ({} bytes) read back from {}; {} lost, {} differ from the store",
                    rep.set,
                    rep.objects,
                    rep.bytes,
                    rep.cartridges.join(", "),
                    rep.lost.len(),
                    rep.differ.len()
                ),
            ))
        })();
        (format!("tape:{}", pool.unwrap_or_default()), out)
    };
    let shared = inner.catalog()?;
    let now = inner.now_ms();
    let (result, detail) = match outcome {
        Ok((true, d)) => {
            log.info(&d);
            shared.clear_alert(VERIFY_FAILED, &target, now)?;
            ("ok", d)
        }
        Ok((false, d)) => {
            log.error(&d);
            inner.system_alert(
                &shared,
                VERIFY_FAILED,
                &target,
                &format!("job {}: {d}", r.id),
                now,
            )?;
            ("failed", d)
        }
        Err(e) => {
            // The engine or media code ended the row when it began the
            // check; anything earlier is ended here.
            let msg = format!("{e:#}");
            log.error(&msg);
            shared.end_job_early(
                r.id,
                &[coffer_types::JobStatus::Running],
                coffer_types::JobStatus::Failed,
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
