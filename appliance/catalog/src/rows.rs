//! Conversions between rows and `coffer_types` values.
//!
//! Row closures only copy SQLite values into plain `Raw*` structs; the checked
//! conversions (levels, ids, JSON, signed to unsigned) happen afterwards so
//! that they can report a [`Error::Corrupt`] naming the row.

use std::path::Path;

use coffer_types::{
    BackupStats, JobKind, JobRecord, JobStatus, Level, Scope, SnapshotId, SnapshotInfo, rfc3339_ms,
};
use rusqlite::Row;

use crate::error::{Error, Result};

/// Names of the statistics columns, in [`stats_to_sql`] order.
pub(crate) const STATS_NAMES: [&str; 9] = [
    "files_read",
    "bytes_read",
    "files_unchanged",
    "bytes_unchanged",
    "entries",
    "chunks_new",
    "bytes_new",
    "bytes_stored",
    "warnings",
];

/// The statistics as the nine signed integers SQLite stores.
pub(crate) fn stats_to_sql(s: &BackupStats) -> Result<[i64; 9]> {
    let values = [
        s.files_read,
        s.bytes_read,
        s.files_unchanged,
        s.bytes_unchanged,
        s.entries,
        s.chunks_new,
        s.bytes_new,
        s.bytes_stored,
        s.warnings,
    ];
    let mut out = [0i64; 9];
    for ((slot, value), field) in out.iter_mut().zip(values).zip(STATS_NAMES) {
        *slot = i64::try_from(value).map_err(|_| Error::TooLarge { field, value })?;
    }
    Ok(out)
}

/// Inverse of [`stats_to_sql`]; `row` names the row for the error.
fn stats_from_sql(v: [i64; 9], path: &Path, row: &str) -> Result<BackupStats> {
    let mut out = [0u64; 9];
    for ((slot, value), field) in out.iter_mut().zip(v).zip(STATS_NAMES) {
        *slot = u64::try_from(value)
            .map_err(|_| Error::corrupt(path, format!("{row}: {field} is negative ({value})")))?;
    }
    let [
        files_read,
        bytes_read,
        files_unchanged,
        bytes_unchanged,
        entries,
        chunks_new,
        bytes_new,
        bytes_stored,
        warnings,
    ] = out;
    Ok(BackupStats {
        files_read,
        bytes_read,
        files_unchanged,
        bytes_unchanged,
        entries,
        chunks_new,
        bytes_new,
        bytes_stored,
        warnings,
    })
}

/// Reads nine statistics columns starting at column `start`.
fn read_stats(row: &Row<'_>, start: usize) -> rusqlite::Result<[i64; 9]> {
    let mut out = [0i64; 9];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = row.get(start + i)?;
    }
    Ok(out)
}

/// JSON text of a scope.
pub(crate) fn scope_to_json(scope: &Scope) -> Result<String> {
    serde_json::to_string(scope).map_err(|source| Error::Encode {
        what: "the job scope",
        error: source,
    })
}

/// JSON text of a message list.
pub(crate) fn messages_to_json(messages: &[String]) -> Result<String> {
    serde_json::to_string(messages).map_err(|source| Error::Encode {
        what: "the job messages",
        error: source,
    })
}

fn parse_snapshot_id(path: &Path, row: &str, what: &str, text: &str) -> Result<SnapshotId> {
    text.parse()
        .map_err(|e| Error::corrupt(path, format!("{row}: {what}: {e}")))
}

fn parse_level(path: &Path, row: &str, text: &str) -> Result<Level> {
    text.parse()
        .map_err(|e| Error::corrupt(path, format!("{row}: level: {e}")))
}

/// The columns [`RawSnapshot::from_row`] reads, for `snapshots s JOIN assets a`.
pub(crate) const SNAPSHOT_COLUMNS: &str = "s.id, a.name, s.level, s.started_ms, s.finished_ms, \
     s.reference, s.host, s.identity, s.scope_json, s.files_read, s.bytes_read, \
     s.files_unchanged, s.bytes_unchanged, s.entries, s.chunks_new, s.bytes_new, \
     s.bytes_stored, s.warnings";

/// A snapshot row as stored.
pub(crate) struct RawSnapshot {
    id: String,
    asset: String,
    level: String,
    started_ms: i64,
    finished_ms: i64,
    reference: Option<String>,
    host: String,
    identity: String,
    scope_json: String,
    stats: [i64; 9],
}

impl RawSnapshot {
    /// Reads a row selected with [`SNAPSHOT_COLUMNS`].
    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<RawSnapshot> {
        Ok(RawSnapshot {
            id: row.get(0)?,
            asset: row.get(1)?,
            level: row.get(2)?,
            started_ms: row.get(3)?,
            finished_ms: row.get(4)?,
            reference: row.get(5)?,
            host: row.get(6)?,
            identity: row.get(7)?,
            scope_json: row.get(8)?,
            stats: read_stats(row, 9)?,
        })
    }

    /// The checked conversion.
    pub(crate) fn into_info(self, path: &Path) -> Result<SnapshotInfo> {
        let row = format!("snapshot {}", self.id);
        let scope = serde_json::from_str(&self.scope_json)
            .map_err(|e| Error::corrupt(path, format!("{row}: scope_json: {e}")))?;
        Ok(SnapshotInfo {
            id: parse_snapshot_id(path, &row, "id", &self.id)?,
            asset: self.asset,
            level: parse_level(path, &row, &self.level)?,
            time: rfc3339_ms(self.started_ms),
            started_ms: self.started_ms,
            finished_ms: self.finished_ms,
            reference: self
                .reference
                .as_deref()
                .map(|r| parse_snapshot_id(path, &row, "reference", r))
                .transpose()?,
            host: self.host,
            identity: self.identity,
            scope,
            stats: stats_from_sql(self.stats, path, &row)?,
        })
    }
}

/// The columns [`RawJob::from_row`] reads, for `jobs`.
pub(crate) const JOB_COLUMNS: &str = "id, kind, asset, level, scope_json, started_ms, ended_ms, \
     status, files_read, bytes_read, files_unchanged, bytes_unchanged, entries, chunks_new, \
     bytes_new, bytes_stored, warnings, messages_json, identity, host, snapshot";

/// A job row as stored.
pub(crate) struct RawJob {
    id: i64,
    kind: String,
    asset: Option<String>,
    level: Option<String>,
    scope_json: String,
    started_ms: i64,
    ended_ms: Option<i64>,
    status: String,
    stats: [i64; 9],
    messages_json: String,
    identity: String,
    host: String,
    snapshot: Option<String>,
}

impl RawJob {
    /// Reads a row selected with [`JOB_COLUMNS`].
    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<RawJob> {
        Ok(RawJob {
            id: row.get(0)?,
            kind: row.get(1)?,
            asset: row.get(2)?,
            level: row.get(3)?,
            scope_json: row.get(4)?,
            started_ms: row.get(5)?,
            ended_ms: row.get(6)?,
            status: row.get(7)?,
            stats: read_stats(row, 8)?,
            messages_json: row.get(17)?,
            identity: row.get(18)?,
            host: row.get(19)?,
            snapshot: row.get(20)?,
        })
    }

    /// The checked conversion.
    pub(crate) fn into_record(self, path: &Path) -> Result<JobRecord> {
        let row = format!("job {}", self.id);
        let kind: JobKind = self
            .kind
            .parse()
            .map_err(|e| Error::corrupt(path, format!("{row}: kind: {e}")))?;
        let status: JobStatus = self
            .status
            .parse()
            .map_err(|e| Error::corrupt(path, format!("{row}: status: {e}")))?;
        let scope = serde_json::from_str(&self.scope_json)
            .map_err(|e| Error::corrupt(path, format!("{row}: scope_json: {e}")))?;
        let messages = serde_json::from_str(&self.messages_json)
            .map_err(|e| Error::corrupt(path, format!("{row}: messages_json: {e}")))?;
        Ok(JobRecord {
            id: self.id,
            kind,
            asset: self.asset,
            level: self
                .level
                .as_deref()
                .map(|l| parse_level(path, &row, l))
                .transpose()?,
            scope,
            started: rfc3339_ms(self.started_ms),
            ended: self.ended_ms.map(rfc3339_ms),
            status,
            stats: stats_from_sql(self.stats, path, &row)?,
            messages,
            identity: self.identity,
            host: self.host,
            snapshot: self
                .snapshot
                .as_deref()
                .map(|s| parse_snapshot_id(path, &row, "snapshot", s))
                .transpose()?,
        })
    }
}
