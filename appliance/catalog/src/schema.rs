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

/// Migration 3: tape cartridges, media sets and where each store object sits
/// on them; the job log learns the tape job kinds (SQLite cannot alter a
/// CHECK constraint, so the table is rebuilt with its rows).
const M3: &str = "
CREATE TABLE jobs_v3 (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT    NOT NULL CHECK (kind IN ('backup', 'restore', 'verify',
                            'media-write', 'media-restore', 'media-recover')),
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
INSERT INTO jobs_v3 SELECT * FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_v3 RENAME TO jobs;
CREATE INDEX jobs_status ON jobs(status);
CREATE INDEX jobs_started ON jobs(started_ms);

CREATE TABLE media_sets (
    id              TEXT    PRIMARY KEY NOT NULL
                    CHECK (length(id) = 32 AND id NOT GLOB '*[^0-9a-f]*'),
    pool            TEXT    NOT NULL,
    created_ms      INTEGER NOT NULL,
    store           TEXT    NOT NULL,
    fingerprint     TEXT    NULL,
    wrapped_key     BLOB    NULL
);

CREATE TABLE cartridges (
    barcode         TEXT    PRIMARY KEY NOT NULL,
    media           TEXT    NOT NULL UNIQUE
                    CHECK (length(media) = 32 AND media NOT GLOB '*[^0-9a-f]*'),
    pool            TEXT    NOT NULL,
    labelled_ms     INTEGER NOT NULL,
    worm            INTEGER NOT NULL CHECK (worm IN (0, 1)),
    media_set       TEXT    NULL REFERENCES media_sets(id),
    seq             INTEGER NULL,
    status          TEXT    NOT NULL CHECK (status IN ('labelled', 'writing', 'full')),
    files           INTEGER NOT NULL,
    end_of_data     INTEGER NOT NULL,
    bytes           INTEGER NOT NULL DEFAULT 0,
    written_ms      INTEGER NULL,
    UNIQUE (media_set, seq)
);

CREATE TABLE tape_objects (
    media_set       TEXT    NOT NULL REFERENCES media_sets(id),
    key             TEXT    NOT NULL,
    len             INTEGER NOT NULL,
    barcode         TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    file            INTEGER NOT NULL,
    file_start      INTEGER NOT NULL,
    block           INTEGER NOT NULL,
    offset          INTEGER NOT NULL,
    PRIMARY KEY (media_set, key)
) WITHOUT ROWID;
";

/// Migration 4: the appliance service. The job log learns the daemon's
/// states (queued, cancelled) and where a job came from; the asset register,
/// profiles and schedule state; users, recovery codes and API tokens; the
/// hash-chained audit log (triggers refuse updates and deletes, the chain
/// detects what gets past them); alerts.
const M4: &str = "
CREATE TABLE jobs_v4 (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT    NOT NULL CHECK (kind IN ('backup', 'restore', 'verify',
                            'media-write', 'media-restore', 'media-recover')),
    asset           TEXT    NULL,
    level           TEXT    NULL
                    CHECK (level IS NULL OR level IN ('full', 'incremental', 'differential')),
    scope_json      TEXT    NOT NULL,
    started_ms      INTEGER NOT NULL,
    ended_ms        INTEGER NULL,
    status          TEXT    NOT NULL
                    CHECK (status IN ('queued', 'running', 'success', 'warning', 'failed',
                                      'interrupted', 'cancelled')),
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
    snapshot        TEXT    NULL,
    source          TEXT    NULL
                    CHECK (source IS NULL OR source IN ('console', 'api', 'scheduler', 'system', 'direct')),
    profile         TEXT    NULL,
    attempt         INTEGER NOT NULL DEFAULT 1,
    retry_of        INTEGER NULL,
    queued_ms       INTEGER NULL,
    not_before_ms   INTEGER NULL
);
INSERT INTO jobs_v4 (id, kind, asset, level, scope_json, started_ms, ended_ms, status,
    files_read, bytes_read, files_unchanged, bytes_unchanged, entries, chunks_new,
    bytes_new, bytes_stored, warnings, messages_json, identity, host, pid, snapshot, source)
SELECT id, kind, asset, level, scope_json, started_ms, ended_ms, status,
    files_read, bytes_read, files_unchanged, bytes_unchanged, entries, chunks_new,
    bytes_new, bytes_stored, warnings, messages_json, identity, host, pid, snapshot, 'direct'
FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_v4 RENAME TO jobs;
CREATE INDEX jobs_status ON jobs(status);
CREATE INDEX jobs_started ON jobs(started_ms);
CREATE INDEX jobs_asset ON jobs(asset, started_ms);

CREATE TABLE asset_register (
    name            TEXT    PRIMARY KEY NOT NULL,
    owner           TEXT    NOT NULL,
    criticality     TEXT    NOT NULL CHECK (criticality IN ('low', 'medium', 'high', 'critical')),
    sources_json    TEXT    NOT NULL,
    excludes_json   TEXT    NOT NULL DEFAULT '[]',
    rpo_s           INTEGER NOT NULL,
    rto_s           INTEGER NOT NULL,
    profile         TEXT    NULL,
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL
);

CREATE TABLE profiles (
    name            TEXT    PRIMARY KEY NOT NULL,
    profile_json    TEXT    NOT NULL,
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL
);

CREATE TABLE schedule_state (
    asset           TEXT    NOT NULL,
    level           TEXT    NOT NULL CHECK (level IN ('full', 'incremental', 'differential')),
    expr            TEXT    NOT NULL,
    last_due_ms     INTEGER NOT NULL,
    PRIMARY KEY (asset, level)
) WITHOUT ROWID;

CREATE TABLE users (
    name            TEXT    PRIMARY KEY NOT NULL,
    password_phc    TEXT    NOT NULL,
    roles_json      TEXT    NOT NULL,
    totp_secret     BLOB    NOT NULL,
    totp_confirmed  INTEGER NOT NULL DEFAULT 0 CHECK (totp_confirmed IN (0, 1)),
    last_totp_step  INTEGER NOT NULL DEFAULT 0,
    failed_logins   INTEGER NOT NULL DEFAULT 0,
    locked_until_ms INTEGER NULL,
    created_ms      INTEGER NOT NULL,
    last_login_ms   INTEGER NULL
);

CREATE TABLE recovery_codes (
    user            TEXT    NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    code_hash       BLOB    NOT NULL,
    used_ms         INTEGER NULL,
    PRIMARY KEY (user, code_hash)
) WITHOUT ROWID;

CREATE TABLE api_tokens (
    id              TEXT    PRIMARY KEY NOT NULL,
    user            TEXT    NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    name            TEXT    NOT NULL,
    secret_hash     BLOB    NOT NULL,
    roles_json      TEXT    NOT NULL,
    created_ms      INTEGER NOT NULL,
    expires_ms      INTEGER NULL,
    last_used_ms    INTEGER NULL,
    revoked_ms      INTEGER NULL
);

CREATE TABLE audit_log (
    seq             INTEGER PRIMARY KEY,
    time_ms         INTEGER NOT NULL,
    identity        TEXT    NOT NULL,
    source          TEXT    NOT NULL,
    action          TEXT    NOT NULL,
    target          TEXT    NOT NULL,
    result          TEXT    NOT NULL,
    detail          TEXT    NOT NULL,
    prev_hash       BLOB    NOT NULL CHECK (length(prev_hash) = 32),
    hash            BLOB    NOT NULL CHECK (length(hash) = 32)
);
CREATE INDEX audit_time ON audit_log(time_ms);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

CREATE TABLE alerts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    message         TEXT    NOT NULL,
    raised_ms       INTEGER NOT NULL,
    cleared_ms      INTEGER NULL,
    acked_by        TEXT    NULL,
    acked_ms        INTEGER NULL
);
CREATE UNIQUE INDEX alerts_open ON alerts(kind, subject) WHERE cleared_ms IS NULL;
";

/// Migration 5: offsite replication. The job log learns the replication
/// and remote-restore kinds and which remote a job talks to; the remotes
/// (with a pinned certificate or sealed object storage credentials, and
/// how far their copy reaches); each replication job's figures.
const M5: &str = "
CREATE TABLE jobs_v5 (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT    NOT NULL CHECK (kind IN ('backup', 'restore', 'verify',
                            'media-write', 'media-restore', 'media-recover',
                            'replicate', 'remote-restore')),
    asset           TEXT    NULL,
    level           TEXT    NULL
                    CHECK (level IS NULL OR level IN ('full', 'incremental', 'differential')),
    scope_json      TEXT    NOT NULL,
    started_ms      INTEGER NOT NULL,
    ended_ms        INTEGER NULL,
    status          TEXT    NOT NULL
                    CHECK (status IN ('queued', 'running', 'success', 'warning', 'failed',
                                      'interrupted', 'cancelled')),
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
    snapshot        TEXT    NULL,
    source          TEXT    NULL
                    CHECK (source IS NULL OR source IN ('console', 'api', 'scheduler', 'system', 'direct')),
    profile         TEXT    NULL,
    attempt         INTEGER NOT NULL DEFAULT 1,
    retry_of        INTEGER NULL,
    queued_ms       INTEGER NULL,
    not_before_ms   INTEGER NULL,
    remote          TEXT    NULL
);
INSERT INTO jobs_v5 (id, kind, asset, level, scope_json, started_ms, ended_ms, status,
    files_read, bytes_read, files_unchanged, bytes_unchanged, entries, chunks_new,
    bytes_new, bytes_stored, warnings, messages_json, identity, host, pid, snapshot, source,
    profile, attempt, retry_of, queued_ms, not_before_ms)
SELECT id, kind, asset, level, scope_json, started_ms, ended_ms, status,
    files_read, bytes_read, files_unchanged, bytes_unchanged, entries, chunks_new,
    bytes_new, bytes_stored, warnings, messages_json, identity, host, pid, snapshot, source,
    profile, attempt, retry_of, queued_ms, not_before_ms
FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_v5 RENAME TO jobs;
CREATE INDEX jobs_status ON jobs(status);
CREATE INDEX jobs_started ON jobs(started_ms);
CREATE INDEX jobs_asset ON jobs(asset, started_ms);

CREATE TABLE remotes (
    name            TEXT    PRIMARY KEY NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('appliance', 's3')),
    spec_json       TEXT    NOT NULL,
    pinned          TEXT    NULL,
    seen            TEXT    NULL,
    sealed_secret   BLOB    NULL,
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL,
    last_job        INTEGER NULL,
    last_success_ms INTEGER NULL,
    covers_until_ms INTEGER NULL,
    last_error      TEXT    NULL
);

CREATE TABLE replications (
    job             INTEGER PRIMARY KEY NOT NULL,
    remote          TEXT    NOT NULL,
    objects         INTEGER NOT NULL,
    skipped         INTEGER NOT NULL,
    sent            INTEGER NOT NULL,
    bytes_sent      INTEGER NOT NULL,
    bytes_resumed   INTEGER NOT NULL,
    verified        INTEGER NOT NULL,
    mismatched      INTEGER NOT NULL,
    locked          INTEGER NOT NULL,
    duration_ms     INTEGER NOT NULL
);
";

/// Version 6: the state of each profile's replication calendar (the
/// backup schedules' rules: never retroactive, catch-up once), and the
/// other appliances' stores this one keeps a copy of, each bound to the
/// remote that first pushed it (no other may write to it).
const M6: &str = "
CREATE TABLE replication_schedule (
    profile     TEXT    PRIMARY KEY NOT NULL,
    expr        TEXT    NOT NULL,
    last_due_ms INTEGER NOT NULL
);

CREATE TABLE replicas (
    store            TEXT    PRIMARY KEY NOT NULL,
    owner            TEXT    NOT NULL,
    fingerprint      TEXT    NOT NULL,
    first_ms         INTEGER NOT NULL,
    last_ms          INTEGER NOT NULL,
    objects          INTEGER NOT NULL DEFAULT 0,
    bytes            INTEGER NOT NULL DEFAULT 0
);
";

/// Migration 7: prune and garbage collection. The job log learns the two
/// kinds; each run's figures (what was removed, copied and freed) sit in
/// `maintenance`, one row per job.
const M7: &str = "
CREATE TABLE jobs_v7 (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT    NOT NULL CHECK (kind IN ('backup', 'restore', 'verify',
                            'media-write', 'media-restore', 'media-recover',
                            'replicate', 'remote-restore', 'prune', 'gc')),
    asset           TEXT    NULL,
    level           TEXT    NULL
                    CHECK (level IS NULL OR level IN ('full', 'incremental', 'differential')),
    scope_json      TEXT    NOT NULL,
    started_ms      INTEGER NOT NULL,
    ended_ms        INTEGER NULL,
    status          TEXT    NOT NULL
                    CHECK (status IN ('queued', 'running', 'success', 'warning', 'failed',
                                      'interrupted', 'cancelled')),
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
    snapshot        TEXT    NULL,
    source          TEXT    NULL
                    CHECK (source IS NULL OR source IN ('console', 'api', 'scheduler', 'system', 'direct')),
    profile         TEXT    NULL,
    attempt         INTEGER NOT NULL DEFAULT 1,
    retry_of        INTEGER NULL,
    queued_ms       INTEGER NULL,
    not_before_ms   INTEGER NULL,
    remote          TEXT    NULL
);
INSERT INTO jobs_v7 (id, kind, asset, level, scope_json, started_ms, ended_ms, status,
    files_read, bytes_read, files_unchanged, bytes_unchanged, entries, chunks_new,
    bytes_new, bytes_stored, warnings, messages_json, identity, host, pid, snapshot, source,
    profile, attempt, retry_of, queued_ms, not_before_ms, remote)
SELECT id, kind, asset, level, scope_json, started_ms, ended_ms, status,
    files_read, bytes_read, files_unchanged, bytes_unchanged, entries, chunks_new,
    bytes_new, bytes_stored, warnings, messages_json, identity, host, pid, snapshot, source,
    profile, attempt, retry_of, queued_ms, not_before_ms, remote
FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_v7 RENAME TO jobs;
CREATE INDEX jobs_status ON jobs(status);
CREATE INDEX jobs_started ON jobs(started_ms);
CREATE INDEX jobs_asset ON jobs(asset, started_ms);

CREATE TABLE maintenance (
    job                  INTEGER PRIMARY KEY NOT NULL,
    snapshots_removed    INTEGER NOT NULL,
    snapshots_kept       INTEGER NOT NULL,
    containers_deleted   INTEGER NOT NULL,
    containers_compacted INTEGER NOT NULL,
    chunks_copied        INTEGER NOT NULL,
    bytes_copied         INTEGER NOT NULL,
    bytes_freed          INTEGER NOT NULL,
    duration_ms          INTEGER NOT NULL
);
";

/// Version 8: retention locks (extended, never shortened or removed), legal
/// holds, the objects carrying the immutable attribute, the trusted clock
/// record, disposal certificates and the key history.
const M8: &str = "
CREATE TABLE snapshot_locks (
    snapshot        TEXT    PRIMARY KEY NOT NULL
                    CHECK (length(snapshot) = 32 AND snapshot NOT GLOB '*[^0-9a-f]*'),
    asset           TEXT    NOT NULL,
    until_ms        INTEGER NOT NULL,
    set_by          TEXT    NOT NULL,
    set_ms          INTEGER NOT NULL,
    reason          TEXT    NOT NULL DEFAULT ''
);
CREATE TRIGGER snapshot_locks_never_shortened BEFORE UPDATE OF until_ms ON snapshot_locks
WHEN NEW.until_ms < OLD.until_ms
BEGIN SELECT RAISE(ABORT, 'a retention lock can be extended, never shortened'); END;
CREATE TRIGGER snapshot_locks_never_removed BEFORE DELETE ON snapshot_locks
BEGIN SELECT RAISE(ABORT, 'a retention lock cannot be removed'); END;

CREATE TABLE legal_holds (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    snapshot        TEXT    NULL
                    CHECK (snapshot IS NULL OR (length(snapshot) = 32 AND snapshot NOT GLOB '*[^0-9a-f]*')),
    asset           TEXT    NULL,
    reason          TEXT    NOT NULL,
    set_by          TEXT    NOT NULL,
    set_ms          INTEGER NOT NULL,
    released_by     TEXT    NULL,
    released_ms     INTEGER NULL,
    CHECK ((snapshot IS NULL) <> (asset IS NULL))
);
CREATE TRIGGER legal_holds_never_removed BEFORE DELETE ON legal_holds
BEGIN SELECT RAISE(ABORT, 'a legal hold is released, never removed'); END;

CREATE TABLE immutable_objects (
    key             TEXT    PRIMARY KEY NOT NULL,
    since_ms        INTEGER NOT NULL
);

CREATE TABLE trusted_clock (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    trusted_ms      INTEGER NOT NULL,
    boot_id         TEXT    NOT NULL,
    mono_ms         INTEGER NOT NULL,
    wall_ms         INTEGER NOT NULL
);

CREATE TABLE disposals (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms           INTEGER NOT NULL,
    what            TEXT    NOT NULL,
    keys_json       TEXT    NOT NULL,
    objects         INTEGER NOT NULL,
    bytes           INTEGER NOT NULL,
    policy          TEXT    NULL,
    identity        TEXT    NOT NULL,
    detail          TEXT    NOT NULL,
    digest          TEXT    NOT NULL
);
CREATE TRIGGER disposals_append_only_u BEFORE UPDATE ON disposals
BEGIN SELECT RAISE(ABORT, 'disposal certificates are append-only'); END;
CREATE TRIGGER disposals_append_only_d BEFORE DELETE ON disposals
BEGIN SELECT RAISE(ABORT, 'disposal certificates are append-only'); END;

CREATE TABLE key_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms           INTEGER NOT NULL,
    event           TEXT    NOT NULL
                    CHECK (event IN ('created', 'rotated', 'rewrapped', 'exported', 'imported', 'destroyed')),
    generation      INTEGER NOT NULL,
    identity        TEXT    NOT NULL,
    detail          TEXT    NOT NULL
);
";

/// Garbage collection's mark cache (derived data, see `gc_marks.rs`): each
/// snapshot's chunk positions, so a collection reads only the manifests of
/// snapshots it has not seen. Dropped and rebuilt whenever it cannot be
/// trusted.
const M9: &str = "
CREATE TABLE gc_state (
    store           TEXT    PRIMARY KEY NOT NULL,
    generation      INTEGER NOT NULL,
    compact_below   REAL    NOT NULL
);
CREATE TABLE gc_containers (
    store           TEXT    NOT NULL,
    ordinal         INTEGER NOT NULL,
    container       TEXT    NOT NULL,
    deferred        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (store, ordinal),
    UNIQUE (store, container)
);
CREATE TABLE gc_marks (
    store           TEXT    NOT NULL,
    snapshot        TEXT    NOT NULL,
    positions       BLOB    NOT NULL,
    complete        INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (store, snapshot)
);
";

/// Media rotation: pools and their policies, each cartridge's rotation
/// state and place, the rotation's media sets, the chain of custody
/// (append-only) and transfer manifests. Policies and states are JSON of
/// `coffer_media::rotation` types.
const M10: &str = "
CREATE TABLE media_pools (
    name            TEXT    PRIMARY KEY NOT NULL,
    policy          TEXT    NOT NULL,
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL
);
CREATE TABLE rotation_carts (
    barcode         TEXT    PRIMARY KEY NOT NULL,
    pool            TEXT    NOT NULL REFERENCES media_pools(name),
    cart            TEXT    NOT NULL
);
CREATE TABLE rotation_sets (
    id              TEXT    PRIMARY KEY NOT NULL,
    pool            TEXT    NOT NULL REFERENCES media_pools(name),
    media_set       TEXT    NOT NULL
);
CREATE TABLE rotation_state (
    pool            TEXT    PRIMARY KEY NOT NULL REFERENCES media_pools(name),
    last_cleaning   INTEGER NULL
);
CREATE TABLE transfer_manifests (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    pool            TEXT    NOT NULL,
    direction       TEXT    NOT NULL CHECK (direction IN ('to-vault', 'to-site')),
    vault           TEXT    NOT NULL,
    created_ms      INTEGER NOT NULL,
    created_by      TEXT    NOT NULL,
    barcodes        TEXT    NOT NULL,
    sent_ms         INTEGER NULL,
    received_ms     INTEGER NULL
);
CREATE TABLE custody (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms           INTEGER NOT NULL,
    day             TEXT    NOT NULL,
    barcode         TEXT    NOT NULL,
    pool            TEXT    NOT NULL,
    event           TEXT    NOT NULL,
    from_state      TEXT    NOT NULL,
    to_state        TEXT    NOT NULL,
    identity        TEXT    NOT NULL,
    manifest        INTEGER NULL REFERENCES transfer_manifests(id)
);
CREATE INDEX custody_barcode ON custody(barcode, id);
CREATE TRIGGER custody_append_only_u BEFORE UPDATE ON custody
BEGIN SELECT RAISE(ABORT, 'the chain of custody is append-only'); END;
CREATE TRIGGER custody_append_only_d BEFORE DELETE ON custody
BEGIN SELECT RAISE(ABORT, 'the chain of custody is append-only'); END;
";

/// The service's nightly tape jobs: the last day each rotation pool's job
/// was queued (a restart queues a day once, never twice). A media set key
/// held only in escrow (its pool shreds: the labels do not carry it) is
/// marked; shredding one clears `wrapped_key` and records the time.
const M11: &str = "
CREATE TABLE tape_schedule (
    pool            TEXT    PRIMARY KEY NOT NULL,
    last_day        TEXT    NOT NULL,
    job             INTEGER NULL
);
ALTER TABLE media_sets ADD COLUMN escrowed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE media_sets ADD COLUMN shredded_ms INTEGER NULL;
";

/// Restore drills: the job log learns the `drill` kind; each drill's
/// evidence (what, from which copy, by whom, how long against the RTO,
/// what was verified, pass or fail and why) is a `drills` row that is never
/// changed once finished nor deleted; `drill_schedule` is the profiles'
/// drill calendars' state.
const M12: &str = "
CREATE TABLE jobs_v12 (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT    NOT NULL CHECK (kind IN ('backup', 'restore', 'verify',
                            'media-write', 'media-restore', 'media-recover',
                            'replicate', 'remote-restore', 'prune', 'gc', 'drill')),
    asset           TEXT    NULL,
    level           TEXT    NULL
                    CHECK (level IS NULL OR level IN ('full', 'incremental', 'differential')),
    scope_json      TEXT    NOT NULL,
    started_ms      INTEGER NOT NULL,
    ended_ms        INTEGER NULL,
    status          TEXT    NOT NULL
                    CHECK (status IN ('queued', 'running', 'success', 'warning', 'failed',
                                      'interrupted', 'cancelled')),
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
    snapshot        TEXT    NULL,
    source          TEXT    NULL
                    CHECK (source IS NULL OR source IN ('console', 'api', 'scheduler', 'system', 'direct')),
    profile         TEXT    NULL,
    attempt         INTEGER NOT NULL DEFAULT 1,
    retry_of        INTEGER NULL,
    queued_ms       INTEGER NULL,
    not_before_ms   INTEGER NULL,
    remote          TEXT    NULL
);
INSERT INTO jobs_v12 (id, kind, asset, level, scope_json, started_ms, ended_ms, status,
    files_read, bytes_read, files_unchanged, bytes_unchanged, entries, chunks_new,
    bytes_new, bytes_stored, warnings, messages_json, identity, host, pid, snapshot, source,
    profile, attempt, retry_of, queued_ms, not_before_ms, remote)
SELECT id, kind, asset, level, scope_json, started_ms, ended_ms, status,
    files_read, bytes_read, files_unchanged, bytes_unchanged, entries, chunks_new,
    bytes_new, bytes_stored, warnings, messages_json, identity, host, pid, snapshot, source,
    profile, attempt, retry_of, queued_ms, not_before_ms, remote
FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_v12 RENAME TO jobs;
CREATE INDEX jobs_status ON jobs(status);
CREATE INDEX jobs_started ON jobs(started_ms);
CREATE INDEX jobs_asset ON jobs(asset, started_ms);

CREATE TABLE drills (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    job             INTEGER NULL,
    asset           TEXT    NOT NULL,
    snapshot        TEXT    NOT NULL,
    source          TEXT    NOT NULL CHECK (source IN ('disk', 'tape')),
    copy            TEXT    NOT NULL,
    identity        TEXT    NOT NULL,
    started_ms      INTEGER NOT NULL,
    ended_ms        INTEGER NULL,
    duration_ms     INTEGER NULL,
    rto_ms          INTEGER NULL,
    files           INTEGER NOT NULL DEFAULT 0,
    bytes           INTEGER NOT NULL DEFAULT 0,
    result          TEXT    NOT NULL CHECK (result IN ('running', 'pass', 'fail')),
    reason          TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX drills_asset ON drills(asset, started_ms);
CREATE TRIGGER drills_final BEFORE UPDATE ON drills WHEN OLD.result <> 'running'
BEGIN SELECT RAISE(ABORT, 'a finished drill is evidence: it is never changed'); END;
CREATE TRIGGER drills_kept BEFORE DELETE ON drills
BEGIN SELECT RAISE(ABORT, 'drill records are evidence: they are never deleted'); END;
CREATE TABLE drill_schedule (
    profile         TEXT    PRIMARY KEY NOT NULL,
    expr            TEXT    NOT NULL,
    last_due_ms     INTEGER NOT NULL
);
";

/// Scheduled verification (`[verify]` in cofferd's configuration): each
/// calendar's state, keyed by what it verifies (`store`, `tape`).
const M13: &str = "
CREATE TABLE verify_schedule (
    profile         TEXT    PRIMARY KEY NOT NULL,
    expr            TEXT    NOT NULL,
    last_due_ms     INTEGER NOT NULL
);
";

/// Notifications: per target, the last alert delivered and, while
/// deliveries fail, since when and why.
const M14: &str = "
CREATE TABLE notify_state (
    target          TEXT    PRIMARY KEY NOT NULL,
    last_alert      INTEGER NOT NULL,
    failing_since   INTEGER NULL,
    next_try_ms     INTEGER NULL,
    last_error      TEXT    NULL
);
";

/// The media sets holding an object are looked up by the object's key
/// (3-2-1-1-0 per asset, on every status); and a drill's evidence is fixed
/// from the start: a row is inserted `running` only, and what was drilled,
/// by whom, when and against which RTO never changes (only the outcome is
/// written, once).
const M15: &str = "
CREATE INDEX tape_objects_key ON tape_objects(key);
CREATE TRIGGER drills_begin BEFORE INSERT ON drills WHEN NEW.result <> 'running'
BEGIN SELECT RAISE(ABORT, 'a drill is recorded running, then finished once'); END;
CREATE TRIGGER drills_fixed BEFORE UPDATE OF id, job, asset, snapshot, source, identity,
    started_ms, rto_ms ON drills
BEGIN SELECT RAISE(ABORT, 'what a drill restored, by whom and when is never changed'); END;
";

/// Restore drills from offsite copies, and how each drill was confined:
/// `source` may be `remote` (an appliance peer or an S3 bucket; the copy
/// column names which), and `isolation` records the sandbox's confinement
/// (a private mount namespace with the store read-only, or why only a
/// private directory). SQLite cannot change a CHECK, so the table is
/// rebuilt with its rows, its index and its triggers.
const M16: &str = "
DROP TRIGGER drills_final;
DROP TRIGGER drills_kept;
DROP TRIGGER drills_begin;
DROP TRIGGER drills_fixed;
CREATE TABLE drills_v16 (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    job             INTEGER NULL,
    asset           TEXT    NOT NULL,
    snapshot        TEXT    NOT NULL,
    source          TEXT    NOT NULL CHECK (source IN ('disk', 'tape', 'remote')),
    copy            TEXT    NOT NULL,
    identity        TEXT    NOT NULL,
    started_ms      INTEGER NOT NULL,
    ended_ms        INTEGER NULL,
    duration_ms     INTEGER NULL,
    rto_ms          INTEGER NULL,
    files           INTEGER NOT NULL DEFAULT 0,
    bytes           INTEGER NOT NULL DEFAULT 0,
    result          TEXT    NOT NULL CHECK (result IN ('running', 'pass', 'fail')),
    reason          TEXT    NOT NULL DEFAULT '',
    isolation       TEXT    NOT NULL DEFAULT ''
);
INSERT INTO drills_v16 (id, job, asset, snapshot, source, copy, identity, started_ms,
    ended_ms, duration_ms, rto_ms, files, bytes, result, reason)
    SELECT id, job, asset, snapshot, source, copy, identity, started_ms,
    ended_ms, duration_ms, rto_ms, files, bytes, result, reason FROM drills;
DROP TABLE drills;
ALTER TABLE drills_v16 RENAME TO drills;
CREATE INDEX drills_asset ON drills(asset, started_ms);
CREATE TRIGGER drills_final BEFORE UPDATE ON drills WHEN OLD.result <> 'running'
BEGIN SELECT RAISE(ABORT, 'a finished drill is evidence: it is never changed'); END;
CREATE TRIGGER drills_kept BEFORE DELETE ON drills
BEGIN SELECT RAISE(ABORT, 'drill records are evidence: they are never deleted'); END;
CREATE TRIGGER drills_begin BEFORE INSERT ON drills WHEN NEW.result <> 'running'
BEGIN SELECT RAISE(ABORT, 'a drill is recorded running, then finished once'); END;
CREATE TRIGGER drills_fixed BEFORE UPDATE OF id, job, asset, snapshot, source, identity,
    started_ms, rto_ms ON drills
BEGIN SELECT RAISE(ABORT, 'what a drill restored, by whom and when is never changed'); END;
";

pub(crate) const MIGRATIONS: &[(i64, &str)] = &[
    (1, M1),
    (2, M2),
    (3, M3),
    (4, M4),
    (5, M5),
    (6, M6),
    (7, M7),
    (8, M8),
    (9, M9),
    (10, M10),
    (11, M11),
    (12, M12),
    (13, M13),
    (14, M14),
    (15, M15),
    (16, M16),
];

/// The newest schema version this code knows.
pub(crate) const SCHEMA_VERSION: i64 = 16;

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
