//! Versioned schema migrations, keyed on `PRAGMA user_version`.
//!
//! Each migration runs once, in order, inside one `BEGIN IMMEDIATE`
//! transaction together with the `user_version` bump, so a crash or a failing
//! statement leaves the file at its previous version. Migrations are never
//! edited once released; a schema change is a new entry at the end.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Error, Result};

/// Migration 1: assets, snapshots and the job log.
///
/// Per-file lists are deliberately absent: they live in the store.
const M1: &str = "
CREATE TABLE assets (
    id          INTEGER PRIMARY KEY,
    name        TEXT    UNIQUE NOT NULL,
    created_ms  INTEGER NOT NULL
);

CREATE TABLE snapshots (
    id              TEXT    PRIMARY KEY NOT NULL
                    CHECK (length(id) = 32 AND id NOT GLOB '*[^0-9a-f]*'),
    asset_id        INTEGER NOT NULL REFERENCES assets(id),
    level           TEXT    NOT NULL
                    CHECK (level IN ('full', 'incremental', 'differential')),
    started_ms      INTEGER NOT NULL,
    finished_ms     INTEGER NOT NULL,
    reference       TEXT    NULL,
    host            TEXT    NOT NULL,
    identity        TEXT    NOT NULL,
    scope_json      TEXT    NOT NULL,
    files_read      INTEGER NOT NULL,
    bytes_read      INTEGER NOT NULL,
    files_unchanged INTEGER NOT NULL,
    bytes_unchanged INTEGER NOT NULL,
    entries         INTEGER NOT NULL,
    chunks_new      INTEGER NOT NULL,
    bytes_new       INTEGER NOT NULL,
    bytes_stored    INTEGER NOT NULL,
    warnings        INTEGER NOT NULL
);
CREATE INDEX snapshots_asset_started ON snapshots(asset_id, started_ms);

CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT    NOT NULL CHECK (kind IN ('backup', 'restore', 'verify')),
    asset           TEXT    NULL,
    level           TEXT    NULL
                    CHECK (level IS NULL OR level IN ('full', 'incremental', 'differential')),
    scope_json      TEXT    NOT NULL,
    started_ms      INTEGER NOT NULL,
    ended_ms        INTEGER NULL,
    status          TEXT    NOT NULL
                    CHECK (status IN ('running', 'success', 'warning', 'failed', 'interrupted')),
    files_read      INTEGER NOT NULL DEFAULT 0,
    bytes_read      INTEGER NOT NULL DEFAULT 0,
    files_unchanged INTEGER NOT NULL DEFAULT 0,
    bytes_unchanged INTEGER NOT NULL DEFAULT 0,
    entries         INTEGER NOT NULL DEFAULT 0,
    chunks_new      INTEGER NOT NULL DEFAULT 0,
    bytes_new       INTEGER NOT NULL DEFAULT 0,
    bytes_stored    INTEGER NOT NULL DEFAULT 0,
    warnings        INTEGER NOT NULL DEFAULT 0,
    messages_json   TEXT    NOT NULL DEFAULT '[]',
    identity        TEXT    NOT NULL,
    host            TEXT    NOT NULL,
    pid             INTEGER NOT NULL,
    snapshot        TEXT    NULL
);
CREATE INDEX jobs_status ON jobs(status);
CREATE INDEX jobs_started ON jobs(started_ms);
";

/// All migrations, as (version they bring the schema to, SQL), in order.
/// Migration 2: containers that a verification found damaged, so that later
/// backups store their chunks again instead of deduplicating against them.
const M2: &str = "
CREATE TABLE damaged_containers (
    container   TEXT    PRIMARY KEY NOT NULL
                CHECK (length(container) = 32 AND container NOT GLOB '*[^0-9a-f]*'),
    reason      TEXT    NOT NULL,
    found_ms    INTEGER NOT NULL
);
";

pub(crate) const MIGRATIONS: &[(i64, &str)] = &[(1, M1), (2, M2)];

/// The newest schema version this code knows.
pub(crate) const SCHEMA_VERSION: i64 = 2;

/// Reads `PRAGMA user_version`.
pub(crate) fn user_version(conn: &Connection, path: &Path) -> Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| Error::sql(path, "reading the schema version", e))
}

/// Refuses a schema newer than this code.
fn check_not_newer(path: &Path, found: i64) -> Result<()> {
    if found > SCHEMA_VERSION {
        return Err(Error::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Brings the schema up to [`SCHEMA_VERSION`]; a no-op when it is current.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    // Cheap check without a write lock: the common case is "already current".
    let found = user_version(conn, path)?;
    check_not_newer(path, found)?;
    if found == SCHEMA_VERSION {
        return Ok(());
    }

    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| Error::sql(path, "locking the catalog to migrate its schema", e))?;
    // Another process may have migrated while we waited for the lock.
    let from = user_version(&tx, path)?;
    check_not_newer(path, from)?;
    for &(version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > from) {
        tx.execute_batch(sql).map_err(|source| Error::Migrate {
            path: path.to_path_buf(),
            version,
            error: source,
        })?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(|source| Error::Migrate {
            path: path.to_path_buf(),
            version: SCHEMA_VERSION,
            error: source,
        })?;
    tx.commit()
        .map_err(|e| Error::sql(path, "committing the schema migration", e))?;
    if from != SCHEMA_VERSION {
        tracing::info!(
            path = %path.display(),
            from,
            to = SCHEMA_VERSION,
            "migrated the catalog schema"
        );
    }
    Ok(())
}
