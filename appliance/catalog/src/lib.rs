//! Coffer's catalog: the SQLite index of what is in a store and the job log.
//!
//! This is the **only** crate that speaks SQL. It holds only what must be
//! queried: assets, snapshots (one row each, with their statistics) and the
//! job log that ISO 27001 A.8.13 asks for. Per-file lists live in the store,
//! never in SQLite: catalogs that index every file (as the anchors' do) bloat
//! to many gigabytes and become the slowest part of a backup. Everything in
//! the snapshot tables can be recreated from the store by
//! [`Catalog::replace_snapshots`] (`coffer catalog rebuild`); the job log is
//! the one thing only the catalog holds. The appliance service adds the
//! users, recovery codes, API tokens and the hash-chained audit log
//! (`auth.rs`; the policy over them is `coffer-auth`'s), which are likewise
//! held only here.
//!
//! The database runs in WAL mode with `synchronous=FULL`: every committed
//! job row is on disk before the commit returns, because the job log is
//! audit evidence that nothing else can rebuild (the snapshot rows can be).
//! Jobs commit a handful of rows each, so the extra fsync costs nothing that
//! shows. Writers wait up to 10 s for a
//! lock ([`Error::Busy`] after that) and foreign keys are enforced. The schema
//! is versioned with `PRAGMA user_version` and migrated on open.
//!
//! The service's own tables — the asset register, backup profiles, the
//! scheduler's state and alerts — are read and written in `register.rs`
//! ([`Catalog::add_asset`], [`Catalog::schedule_state`],
//! [`Catalog::raise_alert`], …).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod auth;
#[cfg(test)]
mod auth_tests;
mod drills;
mod error;
mod gc_marks;
mod maintenance;
mod media;
mod protect;
mod queue;
mod register;
mod remotes;
mod rotation;
mod rows;
mod schema;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use coffer_types::{
    BackupStats, ContainerId, JobKind, JobRecord, JobStatus, Level, Scope, SnapshotId, SnapshotInfo,
};
use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior};

pub use auth::{
    AUDIT_DEFAULT_LIMIT, AUDIT_GENESIS, ApiTokenRow, AuditChainFn, AuditRow, FailedLogin,
    NewAuditRecord, NewUser, UserRow,
};
pub use drills::{DrillEnd, NewDrill};
pub use error::{Error, Result};
pub use gc_marks::{MarkCache, MarkCacheWrite};
pub use protect::{ClockRecord, NewDisposal, Protections, disposal_digest};
pub use queue::{JobTally, JobViewFilter, Pending, QueuedJob};
pub use register::{NotifyState, RaisedAlert, RegisteredAsset, ScheduleKey, ScheduleMark};
pub use remotes::RemoteRow;
pub use rotation::{CustodyEvent, RotationRows, RotationWrite, TransferManifest};

use rows::{
    JOB_COLUMNS, RawJob, RawSnapshot, SNAPSHOT_COLUMNS, messages_to_json, scope_to_json,
    stats_to_sql,
};

/// How long a statement waits for another process's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The message [`Catalog::mark_interrupted`] records.
pub const INTERRUPTED_MESSAGE: &str = "interrupted: the process ended before the job finished";

/// The message on job rows that [`Catalog::replace_snapshots`] reconstructs.
pub const RECONSTRUCTED_MESSAGE: &str = "reconstructed from the store by catalog rebuild";

/// The shortest snapshot id prefix [`Catalog::resolve_snapshot`] accepts.
pub const MIN_PREFIX_LEN: usize = 4;

/// A row read as a tuple of its columns, in order (rusqlite converts
/// tuples of up to 16 `FromSql` types): the `map` argument of every query
/// whose row type is a tuple alias such as `RawToken`.
pub(crate) fn tuple<T>(r: &rusqlite::Row<'_>) -> rusqlite::Result<T>
where
    T: for<'a> TryFrom<&'a rusqlite::Row<'a>, Error = rusqlite::Error>,
{
    T::try_from(r)
}

/// An open catalog database.
#[derive(Debug)]
pub struct Catalog {
    conn: Connection,
    path: PathBuf,
}

/// A job about to start, for [`Catalog::begin_job`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// Backup, restore or verify.
    pub kind: JobKind,
    /// The asset, for backups and restores.
    pub asset: Option<String>,
    /// The level, for backups.
    pub level: Option<Level>,
    /// What was asked for.
    pub scope: Scope,
    /// Start, milliseconds since the Unix epoch, UTC.
    pub started_ms: i64,
    /// Who runs it.
    pub identity: String,
    /// Host that runs it.
    pub host: String,
    /// The process that runs it, so [`Catalog::mark_interrupted`] can tell
    /// whether it is still alive.
    pub pid: u32,
}

/// How a job ended, for [`Catalog::finish_job`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEnd<'a> {
    /// How it ended.
    pub status: JobStatus,
    /// Figures.
    pub stats: BackupStats,
    /// Warnings and errors, one each, naming the path and the reason.
    pub messages: &'a [String],
    /// The snapshot it made (backup) or read (restore).
    pub snapshot: Option<SnapshotId>,
    /// End, milliseconds since the Unix epoch, UTC.
    pub ended_ms: i64,
}

/// Which jobs [`Catalog::jobs`] lists; the default lists all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only jobs of this asset.
    pub asset: Option<String>,
    /// Only jobs of this kind.
    pub kind: Option<JobKind>,
    /// At most this many (the newest).
    pub limit: Option<usize>,
}

/// One asset as listed by [`Catalog::assets`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetRow {
    /// The asset's name.
    pub name: String,
    /// How many snapshots it has.
    pub snapshots: u64,
    /// Start of its newest snapshot, milliseconds since the Unix epoch, UTC.
    pub last_backup_ms: Option<i64>,
}

/// Maps an error from `Connection::open` or the first statements on the
/// file: a file that is not a database gets its own variant.
fn open_error(path: &Path, source: rusqlite::Error) -> Error {
    if source.sqlite_error_code() == Some(ErrorCode::NotADatabase) {
        Error::NotADatabase {
            path: path.to_path_buf(),
        }
    } else {
        Error::Open {
            path: path.to_path_buf(),
            error: source,
        }
    }
}

impl Catalog {
    /// Opens the catalog at `path`, creating the file if it is missing (its
    /// directory must exist), and migrates its schema to the current version.
    ///
    /// Sets WAL journaling, `synchronous=FULL` (a committed job survives a
    /// power cut), a 10 s
    /// busy timeout and foreign keys. Fails with [`Error::NewerSchema`] if the
    /// file was written by a newer Coffer and [`Error::NotADatabase`] if it is
    /// not a SQLite database; in both cases the file is left unchanged.
    pub fn open(path: &Path) -> Result<Catalog> {
        let mut conn = Connection::open(path).map_err(|e| open_error(path, e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| open_error(path, e))?;
        // The first read of the file: this is where garbage is detected.
        let found: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| open_error(path, e))?;
        if found > schema::SCHEMA_VERSION {
            return Err(Error::NewerSchema {
                path: path.to_path_buf(),
                found,
                supported: schema::SCHEMA_VERSION,
            });
        }
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(|e| Error::sql(path, "switching to WAL journaling", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "the catalog could not switch to WAL journaling");
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| Error::sql(path, "setting synchronous=FULL", e))?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(|e| Error::sql(path, "enabling foreign keys", e))?;
        schema::migrate(&mut conn, path)?;
        Ok(Catalog {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// The file this catalog was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Wraps a SQLite error from operation `what`.
    fn sql(&self, what: &'static str) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
        move |e| Error::sql(&self.path, what, e)
    }

    /// A write transaction on `&self`: `BEGIN IMMEDIATE` takes the write lock
    /// up front (waiting up to the busy timeout) instead of failing on upgrade.
    fn write_tx(&self, what: &'static str) -> Result<Transaction<'_>> {
        Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(self.sql(what))
    }

    /// Writes a consistent copy of the whole catalog to `path` (which must
    /// not exist): SQLite's `VACUUM INTO`, safe while others write.
    pub fn export_to(&self, path: &Path) -> Result<()> {
        let p = path.to_str().ok_or_else(|| {
            Error::corrupt(&self.path, "an export path that is not UTF-8".to_string())
        })?;
        self.conn
            .execute("VACUUM INTO ?1", [p])
            .map_err(self.sql("exporting the catalog"))?;
        Ok(())
    }

    /// Records that a job started: inserts a `running` row and returns its id.
    pub fn begin_job(&self, job: &NewJob) -> Result<i64> {
        let scope = scope_to_json(&job.scope)?;
        self.conn
            .execute(
                "INSERT INTO jobs (kind, asset, level, scope_json, started_ms, status, \
                 identity, host, pid) VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6, ?7, ?8)",
                rusqlite::params![
                    job.kind.as_str(),
                    job.asset,
                    job.level.map(Level::as_str),
                    scope,
                    job.started_ms,
                    job.identity,
                    job.host,
                    i64::from(job.pid),
                ],
            )
            .map_err(self.sql("recording the start of a job"))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records how job `id` ended: status, figures, messages, snapshot and end
    /// time. Fails with [`Error::JobNotFound`] if there is no such row.
    pub fn finish_job(&self, id: i64, end: &JobEnd<'_>) -> Result<()> {
        let st = stats_to_sql(&end.stats)?;
        let messages = messages_to_json(end.messages)?;
        let changed = self
            .conn
            .execute(
                "UPDATE jobs SET status = ?1, ended_ms = ?2, messages_json = ?3, snapshot = ?4, \
                 files_read = ?5, bytes_read = ?6, files_unchanged = ?7, bytes_unchanged = ?8, \
                 entries = ?9, chunks_new = ?10, bytes_new = ?11, bytes_stored = ?12, \
                 warnings = ?13 WHERE id = ?14",
                rusqlite::params![
                    end.status.as_str(),
                    end.ended_ms,
                    messages,
                    end.snapshot.map(|s| s.to_hex()),
                    st[0],
                    st[1],
                    st[2],
                    st[3],
                    st[4],
                    st[5],
                    st[6],
                    st[7],
                    st[8],
                    id,
                ],
            )
            .map_err(self.sql("recording the end of a job"))?;
        if changed == 0 {
            return Err(Error::JobNotFound(id));
        }
        Ok(())
    }

    /// Marks as [`JobStatus::Interrupted`], ended at `now_ms`, every job still
    /// `running` on `host` whose process is not alive according to `is_alive`
    /// (called with the job's pid), appending [`INTERRUPTED_MESSAGE`] to its
    /// messages. Jobs of other hosts are left alone: their pids mean nothing
    /// here. Returns how many jobs were marked.
    pub fn mark_interrupted(
        &self,
        is_alive: impl Fn(u32) -> bool,
        host: &str,
        now_ms: i64,
    ) -> Result<usize> {
        let tx = self.write_tx("locking the job log")?;
        let running: Vec<(i64, i64, String)> = {
            let mut stmt = tx
                .prepare(
                    "SELECT id, pid, messages_json FROM jobs \
                     WHERE status = 'running' AND host = ?1 ORDER BY id",
                )
                .map_err(self.sql("listing running jobs"))?;
            let rows = stmt
                .query_map([host], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(self.sql("listing running jobs"))?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(self.sql("listing running jobs"))?
        };
        let mut marked = 0;
        for (id, pid, messages_json) in running {
            let pid = u32::try_from(pid).map_err(|_| {
                Error::corrupt(
                    &self.path,
                    format!("job {id}: pid {pid} is not a process id"),
                )
            })?;
            if is_alive(pid) {
                continue;
            }
            let mut messages: Vec<String> = serde_json::from_str(&messages_json)
                .map_err(|e| Error::corrupt(&self.path, format!("job {id}: messages_json: {e}")))?;
            messages.push(INTERRUPTED_MESSAGE.to_string());
            marked += tx
                .execute(
                    "UPDATE jobs SET status = 'interrupted', ended_ms = ?1, messages_json = ?2 \
                     WHERE id = ?3 AND status = 'running'",
                    rusqlite::params![now_ms, messages_to_json(&messages)?, id],
                )
                .map_err(self.sql("marking a job interrupted"))?;
            tracing::info!(
                job = id,
                pid,
                "marked a job interrupted: its process is gone"
            );
        }
        tx.commit()
            .map_err(self.sql("committing interrupted jobs"))?;
        Ok(marked)
    }

    /// Lists jobs, newest first (by start, then id).
    pub fn jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>> {
        // SQLite reads a negative LIMIT as "no limit".
        let limit = filter
            .limit
            .map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs \
             WHERE (?1 IS NULL OR asset = ?1) AND (?2 IS NULL OR kind = ?2) \
             ORDER BY started_ms DESC, id DESC LIMIT ?3"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(self.sql("listing jobs"))?;
        let raw = stmt
            .query_map(
                rusqlite::params![filter.asset, filter.kind.map(JobKind::as_str), limit],
                RawJob::from_row,
            )
            .map_err(self.sql("listing jobs"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql("listing jobs"))?;
        raw.into_iter().map(|r| r.into_record(&self.path)).collect()
    }

    /// Records a snapshot, creating its asset row if missing. Inserting an id
    /// that is already recorded changes nothing.
    pub fn insert_snapshot(&self, info: &SnapshotInfo) -> Result<()> {
        let tx = self.write_tx("locking the catalog to record a snapshot")?;
        insert_snapshot_in(&tx, &self.path, info)?;
        tx.commit().map_err(self.sql("committing a snapshot"))
    }

    /// Runs a snapshot query (selecting [`SNAPSHOT_COLUMNS`]) and converts
    /// its rows.
    fn query_snapshots(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        what: &'static str,
    ) -> Result<Vec<SnapshotInfo>> {
        let mut stmt = self.conn.prepare(sql).map_err(self.sql(what))?;
        let raw = stmt
            .query_map(params, RawSnapshot::from_row)
            .map_err(self.sql(what))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql(what))?;
        raw.into_iter().map(|r| r.into_info(&self.path)).collect()
    }

    /// Lists snapshots, of one asset or of all, oldest first (by start, then id).
    pub fn snapshots(&self, asset: Option<&str>) -> Result<Vec<SnapshotInfo>> {
        let sql = format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM snapshots s JOIN assets a ON a.id = s.asset_id \
             WHERE (?1 IS NULL OR a.name = ?1) ORDER BY s.started_ms, s.id"
        );
        self.query_snapshots(&sql, [asset], "listing snapshots")
    }

    /// Runs a query and collects its rows as mapped by `row` ([`tuple`]
    /// reads a row as a tuple of its columns).
    fn rows<T>(
        &self,
        sql: &str,
        what: &'static str,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        self.rows_with(sql, [], what, row)
    }

    /// [`Catalog::rows`] with parameters.
    fn rows_with<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        what: &'static str,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut stmt = self.conn.prepare(sql).map_err(self.sql(what))?;
        stmt.query_map(params, row)
            .map_err(self.sql(what))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql(what))
    }

    /// The ids of all recorded snapshots.
    pub fn snapshot_ids(&self) -> Result<HashSet<SnapshotId>> {
        let ids = self.rows("SELECT id FROM snapshots", "listing snapshot ids", |r| {
            r.get::<_, String>(0)
        })?;
        ids.iter()
            .map(|id| {
                id.parse()
                    .map_err(|e| Error::corrupt(&self.path, format!("snapshot {id}: id: {e}")))
            })
            .collect()
    }

    /// Replaces the set of containers known to be damaged with the findings
    /// of a complete verification (an empty list clears it).
    pub fn replace_damaged_containers(
        &self,
        found: &[(ContainerId, String)],
        now_ms: i64,
    ) -> Result<()> {
        let what = "recording damaged containers";
        let tx = self.write_tx(what)?;
        tx.execute("DELETE FROM damaged_containers", [])
            .map_err(self.sql(what))?;
        for (id, reason) in found {
            tx.execute(
                "INSERT INTO damaged_containers (container, reason, found_ms) VALUES (?1, ?2, ?3)",
                rusqlite::params![id.to_hex(), reason, now_ms],
            )
            .map_err(self.sql(what))?;
        }
        tx.commit().map_err(self.sql(what))
    }

    /// Containers the last verification found damaged, with the reason.
    pub fn damaged_containers(&self) -> Result<Vec<(ContainerId, String)>> {
        let rows = self.rows(
            "SELECT container, reason FROM damaged_containers ORDER BY container",
            "listing damaged containers",
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
        )?;
        rows.into_iter()
            .map(|(id, reason)| {
                let id = id.parse().map_err(|e| {
                    Error::corrupt(&self.path, format!("damaged container {id}: {e}"))
                })?;
                Ok((id, reason))
            })
            .collect()
    }

    /// The newest snapshot (by start, then id) of `asset` whose level is one of
    /// `levels`; `None` if there is none (or `levels` is empty).
    pub fn latest_snapshot(&self, asset: &str, levels: &[Level]) -> Result<Option<SnapshotInfo>> {
        if levels.is_empty() {
            return Ok(None);
        }
        let placeholders = vec!["?"; levels.len()].join(", ");
        let sql = format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM snapshots s JOIN assets a ON a.id = s.asset_id \
             WHERE a.name = ? AND s.level IN ({placeholders}) \
             ORDER BY s.started_ms DESC, s.id DESC LIMIT 1"
        );
        let params = std::iter::once(asset).chain(levels.iter().map(|l| l.as_str()));
        let mut found = self.query_snapshots(
            &sql,
            rusqlite::params_from_iter(params),
            "finding the latest snapshot",
        )?;
        Ok(found.pop())
    }

    /// Finds the snapshot named by a full 32-hex-digit id, a unique prefix of
    /// at least [`MIN_PREFIX_LEN`] hex digits (either case), or `latest` (the
    /// newest snapshot of any asset).
    pub fn resolve_snapshot(&self, id_or_prefix: &str) -> Result<SnapshotInfo> {
        if id_or_prefix == "latest" {
            let sql = format!(
                "SELECT {SNAPSHOT_COLUMNS} FROM snapshots s JOIN assets a ON a.id = s.asset_id \
                 ORDER BY s.started_ms DESC, s.id DESC LIMIT 1"
            );
            return self
                .query_snapshots(&sql, [], "finding the latest snapshot")?
                .pop()
                .ok_or_else(|| Error::SnapshotNotFound(id_or_prefix.to_string()));
        }
        let invalid = |reason| Error::InvalidSnapshotRef {
            input: id_or_prefix.to_string(),
            reason,
        };
        if !id_or_prefix.bytes().all(|b| b.is_ascii_hexdigit()) || id_or_prefix.is_empty() {
            return Err(invalid("expected hex digits or 'latest'"));
        }
        if id_or_prefix.len() < MIN_PREFIX_LEN {
            return Err(invalid("a prefix needs at least 4 hex digits"));
        }
        if id_or_prefix.len() > 32 {
            return Err(invalid("a snapshot id has 32 hex digits"));
        }
        // Hex digits only, so the pattern holds no GLOB metacharacters; GLOB
        // is case-sensitive and can use the primary key index.
        let pattern = format!("{}*", id_or_prefix.to_ascii_lowercase());
        let count: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM snapshots WHERE id GLOB ?1",
                [&pattern],
                |r| r.get(0),
            )
            .map_err(self.sql("resolving a snapshot prefix"))?;
        match count {
            0 => Err(Error::SnapshotNotFound(id_or_prefix.to_string())),
            1 => {
                let sql = format!(
                    "SELECT {SNAPSHOT_COLUMNS} FROM snapshots s \
                     JOIN assets a ON a.id = s.asset_id WHERE s.id GLOB ?1"
                );
                self.query_snapshots(&sql, [&pattern], "resolving a snapshot prefix")?
                    .pop()
                    .ok_or_else(|| Error::SnapshotNotFound(id_or_prefix.to_string()))
            }
            n => Err(Error::AmbiguousSnapshot {
                prefix: id_or_prefix.to_string(),
                count: u64::try_from(n).unwrap_or(u64::MAX),
            }),
        }
    }

    /// Lists assets by name, with their snapshot count and newest start.
    pub fn assets(&self) -> Result<Vec<AssetRow>> {
        let what = "listing assets";
        let mut stmt = self
            .conn
            .prepare(
                "SELECT a.name, count(s.id), max(s.started_ms) FROM assets a \
                 LEFT JOIN snapshots s ON s.asset_id = a.id GROUP BY a.id ORDER BY a.name",
            )
            .map_err(self.sql(what))?;
        let raw = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                ))
            })
            .map_err(self.sql(what))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql(what))?;
        raw.into_iter()
            .map(|(name, count, last_backup_ms)| {
                let snapshots = u64::try_from(count).map_err(|_| {
                    Error::corrupt(&self.path, format!("asset {name}: negative snapshot count"))
                })?;
                Ok(AssetRow {
                    name,
                    snapshots,
                    last_backup_ms,
                })
            })
            .collect()
    }

    /// Replaces all snapshot rows with `snaps`, in one transaction, for
    /// `coffer catalog rebuild`: deletes every snapshot row, inserts the given
    /// ones and deletes assets left without snapshots (assets that remain keep
    /// their creation time). The job log is kept. If `backup_jobs`, also
    /// inserts for each snapshot that no backup job row points at a finished
    /// backup job reconstructed from the snapshot (status success, or warning
    /// if it has warnings; message [`RECONSTRUCTED_MESSAGE`]).
    pub fn replace_snapshots(&mut self, snaps: &[SnapshotInfo], backup_jobs: bool) -> Result<()> {
        let path = self.path.as_path();
        let sql = |what| move |e| Error::sql(path, what, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("locking the catalog to rebuild it"))?;
        tx.execute("DELETE FROM snapshots", [])
            .map_err(sql("deleting snapshot rows"))?;
        for info in snaps {
            insert_snapshot_in(&tx, path, info)?;
        }
        let orphans = tx
            .execute(
                "DELETE FROM assets WHERE id NOT IN (SELECT asset_id FROM snapshots)",
                [],
            )
            .map_err(sql("deleting assets without snapshots"))?;
        let mut reconstructed = 0usize;
        if backup_jobs {
            let mut logged: HashSet<String> = {
                let mut stmt = tx
                    .prepare(
                        "SELECT snapshot FROM jobs WHERE kind = 'backup' AND snapshot IS NOT NULL",
                    )
                    .map_err(sql("listing backup jobs"))?;
                stmt.query_map([], |r| r.get(0))
                    .map_err(sql("listing backup jobs"))?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(sql("listing backup jobs"))?
            };
            for info in snaps {
                if logged.insert(info.id.to_hex()) {
                    insert_reconstructed_job(&tx, path, info)?;
                    reconstructed += 1;
                }
            }
        }
        tx.commit().map_err(sql("committing the rebuild"))?;
        tracing::info!(
            path = %path.display(),
            snapshots = snaps.len(),
            removed_assets = orphans,
            reconstructed_jobs = reconstructed,
            "replaced the catalog's snapshot rows"
        );
        Ok(())
    }
}

/// Inserts `info` and its asset unless already present; returns whether the
/// snapshot row was new.
fn insert_snapshot_in(conn: &Connection, path: &Path, info: &SnapshotInfo) -> Result<bool> {
    let sql = |what| move |e| Error::sql(path, what, e);
    // The asset's creation time is its first snapshot's start: deterministic,
    // and the same after a rebuild.
    conn.execute(
        "INSERT INTO assets (name, created_ms) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
        rusqlite::params![info.asset, info.started_ms],
    )
    .map_err(sql("recording an asset"))?;
    let asset_id: i64 = conn
        .query_row(
            "SELECT id FROM assets WHERE name = ?1",
            [&info.asset],
            |r| r.get(0),
        )
        .map_err(sql("looking up an asset"))?;
    let st = stats_to_sql(&info.stats)?;
    // ON CONFLICT (id) rather than INSERT OR IGNORE: only a duplicate id is
    // ignored, a CHECK violation still fails.
    let inserted = conn
        .execute(
            "INSERT INTO snapshots (id, asset_id, level, started_ms, finished_ms, reference, \
             host, identity, scope_json, files_read, bytes_read, files_unchanged, \
             bytes_unchanged, entries, chunks_new, bytes_new, bytes_stored, warnings) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
             ?17, ?18) ON CONFLICT (id) DO NOTHING",
            rusqlite::params![
                info.id.to_hex(),
                asset_id,
                info.level.as_str(),
                info.started_ms,
                info.finished_ms,
                info.reference.map(|r| r.to_hex()),
                info.host,
                info.identity,
                scope_to_json(&info.scope)?,
                st[0],
                st[1],
                st[2],
                st[3],
                st[4],
                st[5],
                st[6],
                st[7],
                st[8],
            ],
        )
        .map_err(sql("recording a snapshot"))?;
    if inserted == 0 {
        tracing::debug!(snapshot = %info.id, "snapshot already in the catalog");
    }
    Ok(inserted > 0)
}

/// Inserts the finished backup job row that produced `info`, as far as the
/// snapshot tells.
fn insert_reconstructed_job(conn: &Connection, path: &Path, info: &SnapshotInfo) -> Result<()> {
    let status = if info.stats.warnings == 0 {
        JobStatus::Success
    } else {
        JobStatus::Warning
    };
    let st = stats_to_sql(&info.stats)?;
    conn.execute(
        "INSERT INTO jobs (kind, asset, level, scope_json, started_ms, ended_ms, status, \
         files_read, bytes_read, files_unchanged, bytes_unchanged, entries, chunks_new, \
         bytes_new, bytes_stored, warnings, messages_json, identity, host, pid, snapshot) \
         VALUES ('backup', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
         ?16, ?17, ?18, 0, ?19)",
        rusqlite::params![
            info.asset,
            info.level.as_str(),
            scope_to_json(&info.scope)?,
            info.started_ms,
            info.finished_ms,
            status.as_str(),
            st[0],
            st[1],
            st[2],
            st[3],
            st[4],
            st[5],
            st[6],
            st[7],
            st[8],
            messages_to_json(&[RECONSTRUCTED_MESSAGE.to_string()])?,
            info.identity,
            info.host,
            info.id.to_hex(),
        ],
    )
    .map_err(|e| Error::sql(path, "reconstructing a backup job", e))?;
    Ok(())
}
