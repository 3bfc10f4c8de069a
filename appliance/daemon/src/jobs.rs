//! The job queue. Jobs live in the catalog's job log from the moment they
//! are queued (so a restart loses none): the runner starts queued jobs in
//! order within the limits — at most `scheduler.max_concurrent_jobs` at
//! once, never two of the same asset, none before its retry backoff ends —
//! each on a blocking thread with its own catalog connection, inside a
//! `job` span whose events also go to the job's own log file.
//!
//! A failed scheduled job is queued again with backoff until the profile's
//! retries are spent, then raises a `job-failed` alert. A job stopped by
//! shutdown (or found running when a killed daemon restarts) ends
//! `interrupted` and is queued again at the next start, once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Result, anyhow};
use coffer_catalog::{Catalog, Pending, QueuedJob};
use coffer_engine::{Actor, BackupRequest, Progress, Stop};
use coffer_types::api::{JobProgress, Source};
use coffer_types::{JobKind, JobStatus, Level, Scope};
use tokio::sync::{Notify, watch};

use crate::Inner;
use crate::joblog::JobLog;

/// A job on a worker thread.
struct RunningJob {
    /// What it works on (an asset, or `remote:NAME`): one job per subject.
    subject: Option<String>,
    progress: Arc<Progress>,
}

/// The runner's live state.
#[derive(Default)]
pub(crate) struct Jobs {
    running: Mutex<HashMap<i64, RunningJob>>,
    /// Queue changed: look again.
    pub(crate) wake: Notify,
    /// A job ended.
    ended: Notify,
}

impl Jobs {
    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<i64, RunningJob>> {
        match self.running.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Asks every running job to checkpoint and stop.
    pub(crate) fn stop_all(&self) {
        for j in self.running().values() {
            j.progress.request_stop(Stop::Shutdown);
        }
    }

    /// Waits until no job runs.
    pub(crate) async fn wait_idle(&self) {
        loop {
            let notified = self.ended.notified();
            if self.running().is_empty() {
                return;
            }
            let _ = tokio::time::timeout(std::time::Duration::from_millis(200), notified).await;
        }
    }

    /// Live counters of running job `id`.
    pub(crate) fn progress(&self, id: i64) -> Option<JobProgress> {
        use std::sync::atomic::Ordering::Relaxed;
        self.running().get(&id).map(|j| JobProgress {
            entries: j.progress.entries.load(Relaxed),
            files: j.progress.files.load(Relaxed),
            bytes: j.progress.bytes.load(Relaxed),
        })
    }

    /// How many run.
    pub(crate) fn count(&self) -> usize {
        self.running().len()
    }
}

/// Queues a backup of `asset` at `level` and wakes the runner.
#[allow(clippy::too_many_arguments)]
pub(crate) fn enqueue(
    inner: &Inner,
    cat: &Catalog,
    asset: &coffer_types::api::Asset,
    level: Level,
    identity: &str,
    source: Source,
    profile: Option<String>,
    attempt: u32,
    retry_of: Option<i64>,
    not_before_ms: Option<i64>,
) -> Result<i64> {
    let id = cat.queue_job(&QueuedJob {
        asset: Some(asset.name.clone()),
        level: Some(level),
        scope: Scope {
            paths: asset.sources.clone(),
            excludes: asset.excludes.clone(),
            one_file_system: false,
        },
        profile,
        attempt,
        retry_of,
        not_before_ms,
        ..inner.job(JobKind::Backup, identity, source)
    })?;
    tracing::info!(job_id = id, asset = %asset.name, level = level.as_str(), identity, "job queued");
    inner.jobs.wake.notify_one();
    Ok(id)
}

/// Cancels job `id`: a queued one at once, a running one at its next check.
/// Returns what happened, for the operator.
pub(crate) fn cancel(inner: &Inner, cat: &Catalog, id: i64, who: &str) -> Result<String> {
    // A job the catalog shows ended has ended, even while its worker is
    // still leaving the running list.
    let status = cat.job_view(id)?.record.status;
    if !matches!(status, JobStatus::Queued | JobStatus::Running) {
        return Err(anyhow!("job {id} has already ended ({})", status.as_str()));
    }
    if let Some(j) = inner.jobs.running().get(&id) {
        j.progress.request_stop(Stop::Cancel);
        return Ok(format!("job {id} is stopping"));
    }
    let msg = format!("cancelled by {who} before it started");
    if cat.end_job_early(
        id,
        &[JobStatus::Queued],
        JobStatus::Cancelled,
        &msg,
        inner.now_ms(),
    )? {
        inner.jobs.wake.notify_one();
        return Ok(format!("job {id} cancelled"));
    }
    let view = cat.job_view(id)?;
    Err(anyhow!(
        "job {id} has already ended ({})",
        view.record.status.as_str()
    ))
}

/// Queues once more every daemon job that a shutdown or a crash
/// interrupted and that was not retried yet.
pub(crate) fn requeue_interrupted(inner: &Inner) -> Result<()> {
    let cat = inner.catalog()?;
    for p in cat.interrupted_unretried()? {
        let r = &p.view.record;
        // A replication resumes where it stopped: queue it again.
        if let (JobKind::Replicate, Some(remote)) = (r.kind, &p.view.remote) {
            let retry = crate::replication::RetryOf {
                job: Some(r.id),
                attempt: p.view.attempt + 1,
            };
            let source = p.view.source.unwrap_or(Source::System);
            let queued = crate::replication::enqueue(
                inner,
                &cat,
                remote,
                &r.identity,
                source,
                p.view.profile.clone(),
                retry,
            );
            match queued {
                Ok(Some(id)) => inner.audit(
                    &cat,
                    "system",
                    Source::System,
                    "job.requeue",
                    remote,
                    "ok",
                    &format!("job {} was interrupted; queued again as job {id}", r.id),
                ),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(job_id = r.id, remote = %remote, error = %format!("{e:#}"), "interrupted replication not retried")
                }
            }
            continue;
        }
        let (Some(name), Some(level)) = (r.asset.as_deref(), r.level) else {
            continue;
        };
        let Some(asset) = find_asset(&cat, name)? else {
            tracing::warn!(
                job_id = r.id,
                asset = name,
                "interrupted job's asset is no longer registered; not retried"
            );
            continue;
        };
        let id = enqueue(
            inner,
            &cat,
            &asset,
            level,
            &r.identity,
            p.view.source.unwrap_or(Source::System),
            p.view.profile.clone(),
            p.view.attempt + 1,
            Some(r.id),
            None,
        )?;
        inner.audit(
            &cat,
            "system",
            Source::System,
            "job.requeue",
            name,
            "ok",
            &format!("job {} was interrupted; queued again as job {id}", r.id),
        );
    }
    Ok(())
}

/// The runner: starts what may start whenever the queue changes, a job
/// ends, or a second passes (for backoffs and the clock).
pub(crate) async fn run_queue(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            break;
        }
        let inner2 = inner.clone();
        match tokio::task::spawn_blocking(move || start_ready(&inner2)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %format!("{e:#}"), "the job queue failed"),
            Err(e) => tracing::error!(error = %e, "the job queue panicked"),
        }
        tokio::select! {
            _ = stop.changed() => {}
            () = inner.jobs.wake.notified() => {}
            () = inner.jobs.ended.notified() => {}
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}

fn start_ready(inner: &Arc<Inner>) -> Result<()> {
    if inner.stopping.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(());
    }
    let max = usize::try_from(inner.config().scheduler.max_concurrent_jobs).unwrap_or(1);
    let now = inner.now_ms();
    let queued = inner.catalog()?.queued_jobs()?;
    for p in queued {
        let mut running = inner.jobs.running();
        // Checked under the lock `stop_all` takes: a shutdown that began
        // after the check above either sees this job and stops it, or this
        // loop sees the shutdown and starts nothing.
        if running.len() >= max || inner.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        if p.not_before_ms.is_some_and(|t| t > now) {
            continue;
        }
        // One tape job at a time: the library has one drive for jobs.
        let subject = subject(&p.view);
        if running.values().any(|j| j.subject == subject) {
            continue;
        }
        let id = p.view.record.id;
        let progress = Arc::new(Progress::default());
        running.insert(
            id,
            RunningJob {
                subject,
                progress: progress.clone(),
            },
        );
        drop(running);
        let inner = inner.clone();
        std::thread::Builder::new()
            .name(format!("job-{id}"))
            .spawn(move || {
                execute(&inner, &p, &progress);
                inner.jobs.running().remove(&id);
                inner.jobs.ended.notify_waiters();
                inner.jobs.wake.notify_one();
            })
            .map_err(|e| anyhow!("cannot start a thread for job {id}: {e}"))?;
    }
    Ok(())
}

/// What a job holds while it runs (one job per subject): the library's
/// drive for every job that uses tape (a rotation write, a tape drill, a
/// tape read-back), the store for its verification, else the asset or the
/// remote.
fn subject(v: &coffer_types::api::JobView) -> Option<String> {
    let r = &v.record;
    match r.kind {
        JobKind::MediaWrite => return Some("tape".into()),
        JobKind::Verify => return Some(crate::verify::subject(v)),
        JobKind::Drill if crate::drill::uses_tape(&r.scope) => return Some("tape".into()),
        _ => {}
    }
    r.asset
        .clone()
        .or_else(|| v.remote.as_ref().map(|r| format!("remote:{r}")))
}

/// Runs one queued job to its end, recording everything.
fn execute(inner: &Inner, p: &Pending, progress: &Arc<Progress>) {
    let r = &p.view.record;
    let span = tracing::info_span!(
        "job",
        job_id = r.id,
        asset = r.asset.as_deref().unwrap_or(""),
        level = r.level.map_or("", Level::as_str),
        attempt = p.view.attempt
    );
    let _g = span.enter();
    let log = JobLog::new(&inner.job_log_dir(), r.id);
    let outcome = match r.kind {
        JobKind::Replicate => crate::replication::execute(inner, p, progress, &log),
        JobKind::RemoteRestore => crate::replication::execute_restore(inner, p, progress, &log),
        JobKind::Prune | JobKind::Gc => crate::maintenance::execute(inner, p, progress, &log),
        JobKind::MediaWrite => crate::tape::execute(inner, p, progress, &log),
        JobKind::Drill => crate::drill::execute(inner, p, &log),
        JobKind::Verify => crate::verify::execute(inner, p, progress, &log),
        _ => execute_backup(inner, p, progress, &log),
    };
    if let Err(e) = outcome {
        let msg = format!("{e:#}");
        log.error(&format!("job could not run: {msg}"));
        if let Ok(cat) = inner.catalog() {
            let now = inner.now_ms();
            match (r.kind, &p.view.remote) {
                (JobKind::Replicate, Some(remote)) => {
                    let stats = coffer_types::api::ReplicationStats {
                        remote: remote.clone(),
                        ..Default::default()
                    };
                    let msg = format!("replication to '{remote}' failed: {msg}");
                    let _ = cat.finish_replication(
                        r.id,
                        JobStatus::Failed,
                        std::slice::from_ref(&msg),
                        &stats,
                        None,
                        now,
                    );
                    let _ = cat.raise_alert(crate::replication::FAILED_ALERT, remote, &msg, now);
                    let source = p.view.source.unwrap_or(Source::System);
                    inner.audit(
                        &cat,
                        &r.identity,
                        source,
                        "job.finish",
                        remote,
                        "failed",
                        &format!("job {}: {msg}", r.id),
                    );
                }
                (kind, _) => {
                    let _ = cat.end_job_early(
                        r.id,
                        &[JobStatus::Queued, JobStatus::Running],
                        JobStatus::Failed,
                        &format!("error: {msg}"),
                        now,
                    );
                    if kind == JobKind::Backup {
                        after_failure(inner, &cat, p, &msg);
                        return;
                    }
                    let target = p.view.remote.clone().unwrap_or_default();
                    let source = p.view.source.unwrap_or(Source::System);
                    inner.audit(
                        &cat,
                        &r.identity,
                        source,
                        "job.finish",
                        &target,
                        "failed",
                        &format!("job {}: {msg}", r.id),
                    );
                }
            }
        }
    }
}

fn execute_backup(inner: &Inner, p: &Pending, progress: &Progress, log: &JobLog) -> Result<()> {
    let r = &p.view.record;
    let (Some(name), Some(level)) = (r.asset.as_deref(), r.level) else {
        return Err(anyhow!("job {} is not a backup of an asset", r.id));
    };
    let asset = find_asset(&*inner.catalog()?, name)?
        .ok_or_else(|| anyhow!("asset '{name}' is no longer in the register"))?;
    let [source] = asset.sources.as_slice() else {
        return Err(anyhow!(
            "asset '{name}' lists {} sources; a backup job reads exactly one directory",
            asset.sources.len()
        ));
    };
    let config = inner.config();
    // A reload that turned the target off stops the tuning applying.
    let tuning = inner
        .tuning()
        .filter(|_| config.store.target_throughput_mb_s > 0);
    if let Some(t) = &tuning {
        log.info(&format!(
            "codec: zstd level {} with {} thread(s), tuned for {:.0} MB/s",
            t.zstd_level, t.threads, t.target_mb_s
        ));
    }
    let req = BackupRequest {
        asset: asset.name.clone(),
        level,
        source: source.into(),
        excludes: asset.excludes.clone(),
        one_file_system: false,
        threads: match (&tuning, config.store.threads) {
            (Some(t), 0) => t.threads,
            (_, n) => n,
        },
        compression_level: tuning.as_ref().map(|t| t.zstd_level),
    };
    let actor = Actor {
        identity: r.identity.clone(),
        host: inner.host.clone(),
    };
    // Its own connection: the backup's writes must not hold the API's lock.
    let cat = Catalog::open(&inner.catalog_path)?;
    log.info(&format!(
        "{} backup of '{name}' started: source {source}, started by {} (attempt {})",
        level.as_str(),
        r.identity,
        p.view.attempt
    ));
    let outcome = coffer_engine::backup_queued(&inner.repo, &cat, &req, &actor, progress, r.id);
    let shared = inner.catalog()?;
    match outcome {
        Ok(o) => {
            let s = &o.snapshot.stats;
            if let Some(n) = &o.notice {
                log.info(n);
            }
            for w in &o.warnings {
                log.warn(w);
            }
            log.info(&format!(
                "backup finished: snapshot {}, {} files read ({} bytes), {} unchanged, {} new bytes stored as {}, {} warning(s)",
                o.snapshot.id.to_hex(),
                s.files_read,
                s.bytes_read,
                s.files_unchanged,
                s.bytes_new,
                s.bytes_stored,
                s.warnings
            ));
            shared.clear_alert("job-failed", name, inner.now_ms())?;
            if let Err(e) = crate::maintenance::after_backup(inner, &shared, name, &o.snapshot.id) {
                log.warn(&format!(
                    "retention was not applied after the backup: {e:#}"
                ));
            }
            crate::replication::after_backup(
                inner,
                &shared,
                p.view.profile.as_deref().or(asset.profile.as_deref()),
            );
            inner.audit(
                &shared,
                &r.identity,
                p.view.source.unwrap_or(Source::System),
                "job.finish",
                name,
                if o.warnings.is_empty() {
                    "ok"
                } else {
                    "warning"
                },
                &format!(
                    "job {} {} backup, snapshot {}",
                    r.id,
                    level.as_str(),
                    o.snapshot.id.short()
                ),
            );
        }
        Err(coffer_engine::Error::Stopped(why)) => {
            log.warn(&format!(
                "backup stopped: {}",
                coffer_engine::Error::Stopped(why)
            ));
            inner.audit(
                &shared,
                &r.identity,
                p.view.source.unwrap_or(Source::System),
                "job.finish",
                name,
                match why {
                    Stop::Cancel => "cancelled",
                    Stop::Shutdown => "interrupted",
                },
                &format!("job {}", r.id),
            );
        }
        Err(e) => {
            let msg = e.to_string();
            log.error(&format!("backup failed: {msg}"));
            after_failure(inner, &shared, p, &msg);
        }
    }
    Ok(())
}

/// Audits a failure, queues a retry of a scheduled job while retries are
/// left, and raises an alert when they are spent.
fn after_failure(inner: &Inner, cat: &Catalog, p: &Pending, msg: &str) {
    let r = &p.view.record;
    let name = r.asset.clone().unwrap_or_default();
    let source = p.view.source.unwrap_or(Source::System);
    inner.audit(
        cat,
        &r.identity,
        source,
        "job.finish",
        &name,
        "failed",
        &format!("job {}: {msg}", r.id),
    );
    let retry = (|| -> Result<Option<i64>> {
        if source != Source::Scheduler {
            return Ok(None);
        }
        let Some(profile) = p.view.profile.as_deref() else {
            return Ok(None);
        };
        let profile = match cat.profile(profile) {
            Ok(p) => p,
            Err(coffer_catalog::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if p.view.attempt > profile.retries {
            return Ok(None);
        }
        let (Some(asset), Some(level)) = (find_asset(cat, &name)?, r.level) else {
            return Ok(None);
        };
        let at = crate::plan::retry_at(inner.now_ms(), p.view.attempt, profile.retry_backoff);
        let id = enqueue(
            inner,
            cat,
            &asset,
            level,
            &r.identity,
            source,
            Some(profile.name.clone()),
            p.view.attempt + 1,
            Some(r.id),
            Some(at),
        )?;
        tracing::info!(retry_job = id, at = %coffer_types::rfc3339_ms(at), "retry queued");
        Ok(Some(id))
    })();
    match retry {
        Ok(Some(_)) => {}
        Ok(None) => {
            let message = format!(
                "{name}: backup job {} failed after {} attempt(s): {msg}",
                r.id, p.view.attempt
            );
            if let Err(e) = cat.raise_alert("job-failed", &name, &message, inner.now_ms()) {
                tracing::error!(error = %e, "could not raise an alert");
            }
        }
        Err(e) => tracing::error!(error = %format!("{e:#}"), "could not queue a retry"),
    }
}

/// The register's asset `name`, if it is registered.
pub(crate) fn find_asset(cat: &Catalog, name: &str) -> Result<Option<coffer_types::api::Asset>> {
    match cat.asset(name) {
        Ok(r) => Ok(Some(r.asset)),
        Err(coffer_catalog::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
