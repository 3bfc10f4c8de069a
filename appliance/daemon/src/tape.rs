//! The nightly media rotation jobs.
//!
//! Every `[[tape.jobs]]` entry names a rotation pool and a time of day. At
//! that time, on each day the pool's rotation plans a tape job, the
//! scheduler queues a `media-write` job for the pool and the day (once: the
//! day is recorded in `tape_schedule`, so a restart never queues it twice).
//!
//! The job prepares tonight's write from the rotation's plan
//! (`coffer_media::rotation::tonight`). When a cartridge it needs is not
//! in the library it waits: it raises a `media-request` alert naming the
//! cartridges, looks again every `tape.poll_every`, and after
//! `tape.wait_for_media` gives up, failing with a `media-timeout` alert.
//! It never waits forever. Once the cartridges are there it writes the
//! newest snapshot of every asset the job covers onto the plan's set. The
//! job log row records the set and the cartridges written, and the
//! rotation records the write. It does so even after a write that failed
//! partway, so a cartridge that holds part of a set is never taken for
//! scratch.

use anyhow::{Context, Result, anyhow};
use coffer_catalog::{Catalog, Pending, QueuedJob};
use coffer_engine::{Actor, Progress, Stop};
use coffer_media::rotation::{Book, Day, tonight};
use coffer_media::set::{self, WriteRequest};
use coffer_types::api::Source;
use coffer_types::{JobKind, JobStatus, Level, Scope, SnapshotId};

use crate::Inner;
use crate::config::{BandwidthWindow, TapeJob};
use crate::joblog::JobLog;
use crate::scheduler::SCHEDULER;

/// The alert a job waiting for cartridges raises.
pub(crate) const MEDIA_REQUEST: &str = "media-request";
/// The alert a job that gave up waiting raises.
pub(crate) const MEDIA_TIMEOUT: &str = "media-timeout";
/// The alert a failed tape job raises.
pub(crate) const TAPE_FAILED: &str = "tape-job-failed";
/// The alert a job entry that cannot be planned raises.
pub(crate) const TAPE_SCHEDULE: &str = "tape-schedule";

const POOL: &str = "pool:";
const DAY: &str = "day:";

/// The day and minute of the day of `now_ms` in `tz`.
pub(crate) fn local(now_ms: i64, tz: &jiff::tz::TimeZone) -> Result<(Day, u32)> {
    let z = jiff::Timestamp::from_millisecond(now_ms)?.to_zoned(tz.clone());
    let day = Day::ymd(
        i32::from(z.year()),
        u32::try_from(z.month()).unwrap_or(1),
        u32::try_from(z.day()).unwrap_or(1),
    );
    let minute = u32::try_from(i32::from(z.hour()) * 60 + i32::from(z.minute())).unwrap_or(0);
    Ok((day, minute))
}

/// Queues the tape jobs that are due: each pool's, once a day at its time,
/// on the days its rotation plans a job.
pub(crate) fn schedule(
    inner: &Inner,
    cat: &Catalog,
    now: i64,
    jobs: &[TapeJob],
    tz: &jiff::tz::TimeZone,
) -> Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let (today, minute) = local(now, tz)?;
    let done = cat.tape_schedule()?;
    for j in jobs {
        let Some(at) = BandwidthWindow::minutes(&j.at) else {
            continue;
        };
        if minute < at || done.get(&j.pool).and_then(|d| Day::parse(d)) >= Some(today) {
            continue;
        }
        let book = Book::new(cat, SCHEDULER, now);
        let plan = match book.today(&j.pool, today) {
            Ok(p) => p,
            Err(e) => {
                // Raised once (the alert stays open) and looked at again
                // every pass: a pool added later starts its jobs.
                inner.system_alert(
                    cat,
                    TAPE_SCHEDULE,
                    &j.pool,
                    &format!("the nightly tape job of pool '{}' cannot run: {e}", j.pool),
                    now,
                )?;
                continue;
            }
        };
        cat.clear_alert(TAPE_SCHEDULE, &j.pool, now)?;
        let day = today.to_string();
        let Some(job) = &plan.job else {
            cat.set_tape_schedule(&j.pool, &day, None)?;
            tracing::info!(pool = %j.pool, %day, "no tape job in the rotation today");
            continue;
        };
        let id = cat.queue_job(&QueuedJob {
            scope: Scope {
                paths: vec![format!("{POOL}{}", j.pool), format!("{DAY}{day}")],
                ..Scope::default()
            },
            ..inner.job(JobKind::MediaWrite, SCHEDULER, Source::Scheduler)
        })?;
        cat.set_tape_schedule(&j.pool, &day, Some(id))?;
        inner.jobs.wake.notify_one();
        inner.audit(
            cat,
            SCHEDULER,
            Source::Scheduler,
            "job.queue",
            &format!("pool:{}", j.pool),
            "ok",
            &format!(
                "job {id}: {} {} tape job of pool {} for {day} ({}, {} cartridge(s) planned)",
                job.tier,
                job.level.as_str(),
                j.pool,
                match &job.set {
                    coffer_media::rotation::SetChoice::New => "a new set".to_string(),
                    coffer_media::rotation::SetChoice::Continue { id } =>
                        format!("continues set {id}"),
                },
                job.cartridges.len()
            ),
        );
    }
    Ok(())
}

/// The pool and day a queued tape job is for.
fn order(r: &coffer_types::JobRecord) -> Result<(String, Day)> {
    let get = |prefix: &str| r.scope.paths.iter().find_map(|p| p.strip_prefix(prefix));
    let pool = get(POOL).ok_or_else(|| anyhow!("job {} names no pool", r.id))?;
    let day = get(DAY)
        .and_then(Day::parse)
        .ok_or_else(|| anyhow!("job {} names no day", r.id))?;
    Ok((pool.to_string(), day))
}

/// The newest snapshot of every asset job `j` covers.
fn snapshots(cat: &Catalog, j: Option<&TapeJob>) -> Result<Vec<SnapshotId>> {
    let mut out = Vec::new();
    for a in cat.register()? {
        let covered = j.is_none_or(|j| {
            j.profiles.is_empty()
                || a.asset
                    .profile
                    .as_ref()
                    .is_some_and(|p| j.profiles.contains(p))
        });
        if !covered {
            continue;
        }
        if let Some(s) = cat.latest_snapshot(
            &a.asset.name,
            &[Level::Full, Level::Incremental, Level::Differential],
        )? {
            out.push(s.id);
        }
    }
    Ok(out)
}

/// A job that gave up waiting for its cartridges (escalated as
/// `media-timeout`, not as a failed write).
#[derive(Debug)]
struct GaveUp(String);

impl std::fmt::Display for GaveUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GaveUp {}

/// Runs a queued tape job. However it fails, the row ends failed, the
/// media request is withdrawn, an alert on `pool:NAME` says why (a
/// `media-timeout` for a job that gave up waiting, `tape-job-failed`
/// otherwise), and the end is audited.
pub(crate) fn execute(inner: &Inner, p: &Pending, progress: &Progress, log: &JobLog) -> Result<()> {
    let r = &p.view.record;
    let (pool, day) = order(r)?;
    let subject = format!("pool:{pool}");
    let Err(e) = run(inner, p, progress, log, &pool, day, &subject) else {
        return Ok(());
    };
    let msg = format!("{e:#}");
    log.error(&format!("tape job failed: {msg}"));
    let shared = inner.catalog()?;
    let now = inner.now_ms();
    shared.clear_alert(MEDIA_REQUEST, &subject, now)?;
    shared.end_job_early(
        r.id,
        &[JobStatus::Queued, JobStatus::Running],
        JobStatus::Failed,
        &format!("error: {msg}"),
        now,
    )?;
    let kind = if e.downcast_ref::<GaveUp>().is_some() {
        MEDIA_TIMEOUT
    } else {
        TAPE_FAILED
    };
    inner.system_alert(
        &shared,
        kind,
        &subject,
        &format!("tape job {} of pool {pool} for {day}: {msg}", r.id),
        now,
    )?;
    inner.audit(
        &shared,
        &r.identity,
        p.view.source.unwrap_or(Source::System),
        "job.finish",
        &subject,
        "failed",
        &format!("job {}: {msg}", r.id),
    );
    Ok(())
}

fn run(
    inner: &Inner,
    p: &Pending,
    progress: &Progress,
    log: &JobLog,
    pool: &str,
    day: Day,
    subject: &str,
) -> Result<()> {
    let r = &p.view.record;
    let (pool, subject) = (pool.to_string(), subject.to_string());
    let source = p.view.source.unwrap_or(Source::System);
    let finish = |shared: &Catalog, result: &str, detail: &str| {
        inner.audit(
            shared,
            &r.identity,
            source,
            "job.finish",
            &subject,
            result,
            detail,
        );
    };
    let cat = inner.start_job(r)?;
    let config = inner.config();
    let t = &config.tape;
    let lib_config = t
        .library
        .clone()
        .ok_or_else(|| anyhow!("no tape library is configured (tape.library)"))?;
    let entry = t.jobs.iter().find(|j| j.pool == pool);
    let snaps = snapshots(&cat, entry)?;
    if snaps.is_empty() {
        return Err(anyhow!("there is no snapshot to write to tape yet"));
    }
    log.info(&format!(
        "tape job of pool {pool} for {day} started by {}: {} snapshot(s) to copy",
        r.identity,
        snaps.len()
    ));
    let mut lib = coffer_tape::open_library(&lib_config)?;
    let deadline = inner.now_ms() + t.wait_for_media.ms();
    let mut asked: Option<String> = None;
    let prepared = loop {
        let book = Book::new(&cat, &r.identity, inner.now_ms());
        match tonight::prepare(
            &book,
            lib.as_mut(),
            &cat,
            inner.repo.blobs().as_ref(),
            &pool,
            day,
            t.drive,
        ) {
            Ok(p) => break p,
            Err(coffer_media::Error::NeedMedia(why)) => {
                let now = inner.now_ms();
                if now >= deadline {
                    return Err(GaveUp(format!(
                        "gave up after waiting {} for cartridges: {why}",
                        t.wait_for_media
                    ))
                    .into());
                }
                if asked.as_deref() != Some(why.as_str()) {
                    log.warn(&format!("waiting for cartridges: {why}"));
                    let shared = inner.catalog()?;
                    // A new request replaces the last one.
                    shared.clear_alert(MEDIA_REQUEST, &subject, now)?;
                    inner.system_alert(
                        &shared,
                        MEDIA_REQUEST,
                        &subject,
                        &format!(
                            "tape job {} of pool {pool} waits: {why}; it gives up at {}",
                            r.id,
                            coffer_types::rfc3339_ms(deadline)
                        ),
                        now,
                    )?;
                    asked = Some(why);
                }
                if let Some(why) = wait(progress, t.poll_every.ms()) {
                    let shared = inner.catalog()?;
                    shared.clear_alert(MEDIA_REQUEST, &subject, inner.now_ms())?;
                    let (status, result) = match why {
                        Stop::Cancel => (JobStatus::Cancelled, "cancelled"),
                        Stop::Shutdown => (JobStatus::Interrupted, "interrupted"),
                    };
                    let msg = format!("{result} while waiting for cartridges");
                    log.warn(&msg);
                    shared.end_job_early(
                        r.id,
                        &[JobStatus::Running],
                        status,
                        &msg,
                        inner.now_ms(),
                    )?;
                    finish(&shared, result, &format!("job {}: {msg}", r.id));
                    return Ok(());
                }
            }
            Err(e) => return Err(e.into()),
        }
    };
    {
        let shared = inner.catalog()?;
        let now = inner.now_ms();
        shared.clear_alert(MEDIA_REQUEST, &subject, now)?;
        shared.clear_alert(MEDIA_TIMEOUT, &subject, now)?;
    }
    for s in &prepared.shredded {
        log.info(&format!(
            "media set {}: expired; its key was destroyed (crypto-shredding), disposal certificate {}",
            s.set, s.certificate
        ));
    }
    for b in &prepared.recycled {
        log.info(&format!(
            "recycled {b}: its set expired; relabelled for pool {pool}"
        ));
    }
    for b in &prepared.labelled {
        log.info(&format!(
            "labelled {b}, a new scratch cartridge, for pool {pool}"
        ));
    }
    let base = WriteRequest {
        snapshots: snaps,
        drive: t.drive,
        job: Some(r.id),
        ..WriteRequest::new(&pool)
    };
    let req = prepared.request(&cat, base)?;
    let actor = Actor {
        identity: r.identity.clone(),
        host: inner.host.clone(),
    };
    let on = |_: &str, done: u64, _: u64| {
        progress
            .bytes
            .store(done, std::sync::atomic::Ordering::Relaxed);
    };
    let outcome = set::write(&inner.repo, &cat, lib.as_mut(), &req, &actor, &on);
    let book = Book::new(&cat, &r.identity, inner.now_ms());
    match outcome {
        Ok(out) => {
            prepared.record(&book, &pool, &out).with_context(|| {
                format!("{}, but the rotation could not record it", out.summary())
            })?;
            let d = format!("job {}: {}", r.id, out.summary());
            log.info(&d);
            let shared = inner.catalog()?;
            shared.clear_alert(TAPE_FAILED, &subject, inner.now_ms())?;
            finish(&shared, "ok", &d);
        }
        Err(e) => {
            let msg = e.to_string();
            log.error(&format!("tape write failed: {msg}"));
            match prepared.record_partial(&book, &cat, &pool) {
                Ok(w) if !w.is_empty() => log.warn(&format!(
                    "the failed write had begun on {}: recorded as part of tonight's set",
                    w.join(", ")
                )),
                Ok(_) => {}
                Err(e) => log.error(&format!(
                    "the cartridges the failed write used could not be recorded in the rotation: {e}"
                )),
            }
            return Err(anyhow!("the tape write failed: {msg}"));
        }
    }
    Ok(())
}

/// Sleeps `ms` of real time in short steps; returns early with the reason
/// when the job is asked to stop.
fn wait(progress: &Progress, ms: i64) -> Option<Stop> {
    let until = std::time::Instant::now() + std::time::Duration::from_millis(ms.max(0) as u64);
    loop {
        if let Some(why) = progress.stop_requested() {
            return Some(why);
        }
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return None;
        }
        std::thread::sleep(left.min(std::time::Duration::from_millis(100)));
    }
}
