//! The daemon's side of the job log: jobs queued before they run (by the
//! scheduler, an operator or a retry), started later, cancelled or
//! interrupted, and listed with where they came from.

use coffer_types::api::{JobView, Source};
use coffer_types::{JobKind, JobStatus, Level, Scope};
use rusqlite::OptionalExtension;

use crate::error::{Error, Result};
use crate::rows::{JOB_COLUMNS, RawJob, messages_to_json, scope_to_json};
use crate::{Catalog, NewJob};

/// A job the daemon queues, for [`Catalog::queue_job`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedJob {
    /// What it will do.
    pub kind: JobKind,
    /// The asset.
    pub asset: Option<String>,
    /// The level, for backups.
    pub level: Option<Level>,
    /// What it will read.
    pub scope: Scope,
    /// Who asked for it: a user, or `scheduler`.
    pub identity: String,
    /// Host of the daemon.
    pub host: String,
    /// The daemon's process.
    pub pid: u32,
    /// Where the request came from.
    pub source: Source,
    /// The profile whose schedule started it.
    pub profile: Option<String>,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// The job this one retries.
    pub retry_of: Option<i64>,
    /// Queued at, milliseconds since the Unix epoch.
    pub queued_ms: i64,
    /// Not to start before (a retry's backoff), milliseconds since the epoch.
    pub not_before_ms: Option<i64>,
    /// The remote a replication or remote restore talks to.
    pub remote: Option<String>,
}

/// Which jobs [`Catalog::job_views`] lists; the default lists all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobViewFilter {
    /// Only this asset.
    pub asset: Option<String>,
    /// Only this kind.
    pub kind: Option<JobKind>,
    /// Only this status.
    pub status: Option<JobStatus>,
    /// At most this many, newest first.
    pub limit: Option<usize>,
}

/// The daemon's extra columns.
const VIEW_COLUMNS: &str = "source, profile, attempt, not_before_ms, retry_of, remote";

/// A queued job as the daemon needs it to resume its queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The job as listed.
    pub view: JobView,
    /// Not before, milliseconds since the epoch.
    pub not_before_ms: Option<i64>,
    /// The job it retries.
    pub retry_of: Option<i64>,
}

impl Catalog {
    /// Inserts a `queued` job and returns its id.
    pub fn queue_job(&self, job: &QueuedJob) -> Result<i64> {
        let scope = scope_to_json(&job.scope)?;
        self.conn
            .execute(
                "INSERT INTO jobs (kind, asset, level, scope_json, started_ms, status, identity, \
                 host, pid, source, profile, attempt, retry_of, queued_ms, not_before_ms, remote) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?5, ?13, ?14)",
                rusqlite::params![
                    job.kind.as_str(),
                    job.asset,
                    job.level.map(Level::as_str),
                    scope,
                    job.queued_ms,
                    job.identity,
                    job.host,
                    i64::from(job.pid),
                    job.source.as_str(),
                    job.profile,
                    i64::from(job.attempt),
                    job.retry_of,
                    job.not_before_ms,
                    job.remote,
                ],
            )
            .map_err(self.sql("queueing a job"))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Turns queued job `id` into a running one: start time, scope, host and
    /// process as `job` gives them (its identity is kept: who asked). Fails
    /// with [`Error::JobNotQueued`] if it is not queued (cancelled meanwhile).
    pub fn start_queued_job(&self, id: i64, job: &NewJob) -> Result<()> {
        let scope = scope_to_json(&job.scope)?;
        let changed = self
            .conn
            .execute(
                "UPDATE jobs SET status = 'running', started_ms = ?1, scope_json = ?2, host = ?3, \
                 pid = ?4 WHERE id = ?5 AND status = 'queued'",
                rusqlite::params![job.started_ms, scope, job.host, i64::from(job.pid), id],
            )
            .map_err(self.sql("starting a queued job"))?;
        if changed == 0 {
            return Err(Error::JobNotQueued(id));
        }
        Ok(())
    }

    /// Ends job `id` that is in one of `from` with `status` at `now_ms`,
    /// appending `message`. Returns false if it was in none of them.
    pub fn end_job_early(
        &self,
        id: i64,
        from: &[JobStatus],
        status: JobStatus,
        message: &str,
        now_ms: i64,
    ) -> Result<bool> {
        let tx = self.write_tx("locking the job log")?;
        let row: Option<(String, String)> = tx
            .query_row(
                "SELECT status, messages_json FROM jobs WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.sql("reading a job"))?;
        let Some((current, messages_json)) = row else {
            return Err(Error::JobNotFound(id));
        };
        if !from.iter().any(|s| s.as_str() == current) {
            return Ok(false);
        }
        let mut messages: Vec<String> = serde_json::from_str(&messages_json)
            .map_err(|e| Error::corrupt(&self.path, format!("job {id}: messages_json: {e}")))?;
        messages.push(message.to_string());
        tx.execute(
            "UPDATE jobs SET status = ?1, ended_ms = ?2, messages_json = ?3 WHERE id = ?4",
            rusqlite::params![status.as_str(), now_ms, messages_to_json(&messages)?, id],
        )
        .map_err(self.sql("ending a job"))?;
        tx.commit().map_err(self.sql("ending a job"))?;
        Ok(true)
    }

    /// Lists jobs with the daemon's columns, newest first.
    pub fn job_views(&self, filter: &JobViewFilter) -> Result<Vec<JobView>> {
        let limit = filter
            .limit
            .map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let sql = format!(
            "SELECT {JOB_COLUMNS}, {VIEW_COLUMNS} FROM jobs \
             WHERE (?1 IS NULL OR asset = ?1) AND (?2 IS NULL OR kind = ?2) \
             AND (?3 IS NULL OR status = ?3) \
             ORDER BY started_ms DESC, id DESC LIMIT ?4"
        );
        let params = rusqlite::params![
            filter.asset,
            filter.kind.map(JobKind::as_str),
            filter.status.map(JobStatus::as_str),
            limit
        ];
        Ok(self
            .pending_rows(&sql, params)?
            .into_iter()
            .map(|p| p.view)
            .collect())
    }

    /// One job with the daemon's columns.
    pub fn job_view(&self, id: i64) -> Result<JobView> {
        let sql = format!("SELECT {JOB_COLUMNS}, {VIEW_COLUMNS} FROM jobs WHERE id = ?1");
        self.pending_rows(&sql, rusqlite::params![id])?
            .pop()
            .map(|p| p.view)
            .ok_or(Error::JobNotFound(id))
    }

    /// The daemon's queue as it stood: queued jobs, oldest first.
    pub fn queued_jobs(&self) -> Result<Vec<Pending>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS}, {VIEW_COLUMNS} FROM jobs WHERE status = 'queued' ORDER BY id"
        );
        self.pending_rows(&sql, rusqlite::params![])
    }

    /// Daemon jobs that were interrupted (killed daemon, shutdown) and have
    /// not been retried yet, oldest first.
    pub fn interrupted_unretried(&self) -> Result<Vec<Pending>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS}, {VIEW_COLUMNS} FROM jobs j \
             WHERE status = 'interrupted' AND source IS NOT NULL AND source <> 'direct' \
             AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.retry_of = j.id) ORDER BY id"
        );
        self.pending_rows(&sql, rusqlite::params![])
    }

    fn pending_rows(&self, sql: &str, params: &[&dyn rusqlite::ToSql]) -> Result<Vec<Pending>> {
        let mut stmt = self.conn.prepare(sql).map_err(self.sql("listing jobs"))?;
        let rows = stmt
            .query_map(params, |row| {
                let raw = RawJob::from_row(row)?;
                let source: Option<String> = row.get(21)?;
                let profile: Option<String> = row.get(22)?;
                let attempt: i64 = row.get(23)?;
                let not_before: Option<i64> = row.get(24)?;
                let retry_of: Option<i64> = row.get(25)?;
                let remote: Option<String> = row.get(26)?;
                Ok((raw, source, profile, attempt, not_before, retry_of, remote))
            })
            .map_err(self.sql("listing jobs"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql("listing jobs"))?;
        rows.into_iter()
            .map(
                |(raw, source, profile, attempt, not_before_ms, retry_of, remote)| {
                    let record = raw.into_record(&self.path)?;
                    let replication = if record.kind == JobKind::Replicate {
                        self.replication_stats(record.id)?
                    } else {
                        None
                    };
                    let source = source
                        .map(|s| s.parse::<Source>())
                        .transpose()
                        .map_err(|e| {
                            Error::corrupt(&self.path, format!("job {}: source: {e}", record.id))
                        })?;
                    Ok(Pending {
                        view: JobView {
                            record,
                            source,
                            profile,
                            attempt: u32::try_from(attempt).unwrap_or(1),
                            progress: None,
                            remote,
                            replication,
                        },
                        not_before_ms,
                        retry_of,
                    })
                },
            )
            .collect()
    }
}

/// The job log summed by kind and status (for the metrics endpoint).
#[derive(Debug, Clone, PartialEq)]
pub struct JobTally {
    /// Job kind.
    pub kind: String,
    /// Status.
    pub status: String,
    /// How many.
    pub count: u64,
    /// Seconds the ended ones took, in all.
    pub seconds: f64,
    /// Bytes they read, in all.
    pub bytes: u64,
}

impl Catalog {
    /// The job log summed by kind and status.
    pub fn job_tally(&self) -> Result<Vec<JobTally>> {
        self.rows(
            "SELECT kind, status, COUNT(*), \
             COALESCE(SUM(CASE WHEN ended_ms IS NOT NULL THEN ended_ms - started_ms END), 0), \
             COALESCE(SUM(bytes_read), 0) FROM jobs GROUP BY kind, status ORDER BY kind, status",
            "summing the job log",
            |r| {
                Ok(JobTally {
                    kind: r.get(0)?,
                    status: r.get(1)?,
                    count: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                    seconds: r.get::<_, i64>(3)?.max(0) as f64 / 1000.0,
                    bytes: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
                })
            },
        )
    }
}
