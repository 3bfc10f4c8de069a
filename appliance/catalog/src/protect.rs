//! Protection records: retention locks, legal holds, the objects carrying
//! the immutable attribute, the trusted clock, disposal certificates and
//! the key history.
//!
//! The schema itself refuses what must never happen: a lock is extended,
//! never shortened or removed; a hold is released, never removed;
//! certificates are append-only (triggers of migration 8). The rules that
//! need a clock (is this lock still running?) take the trusted time from
//! the caller ([`crate::Catalog::clock_record`] holds it).

use std::collections::{HashMap, HashSet};

use coffer_types::api::{Disposal, KeyEvent, LegalHold, SnapshotLock};
use coffer_types::{SnapshotId, rfc3339_ms};
use rusqlite::OptionalExtension;

use crate::{Catalog, Error, Result, tuple};

/// The persisted record of the trusted clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockRecord {
    /// The trusted time at the observation, ms since the epoch.
    pub trusted_ms: i64,
    /// The kernel's boot id at the observation.
    pub boot_id: String,
    /// The monotonic (boot-time) clock at the observation, ms.
    pub mono_ms: i64,
    /// The wall clock at the observation, ms since the epoch.
    pub wall_ms: i64,
}

/// A new disposal certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDisposal {
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// What, in words.
    pub what: String,
    /// The keys destroyed (ids, never material).
    pub keys: Vec<String>,
    /// Objects deleted.
    pub objects: u64,
    /// Bytes deleted.
    pub bytes: u64,
    /// The policy that expired it.
    pub policy: Option<String>,
    /// Who.
    pub identity: String,
    /// How.
    pub detail: String,
}

/// What protects snapshots now: locks running at the trusted time, and
/// active holds.
#[derive(Debug, Clone, Default)]
pub struct Protections {
    /// Running locks' ends.
    pub locks: HashMap<SnapshotId, i64>,
    /// Snapshots under a hold of their own.
    pub held_snapshots: HashSet<SnapshotId>,
    /// Assets under a hold (all their snapshots).
    pub held_assets: HashSet<String>,
}

impl Protections {
    /// The lock end and hold of snapshot `id` of `asset`.
    pub fn of(&self, id: &SnapshotId, asset: &str) -> (Option<i64>, bool) {
        (
            self.locks.get(id).copied(),
            self.held_snapshots.contains(id) || self.held_assets.contains(asset),
        )
    }

    /// Why snapshot `id` of `asset` cannot be deleted, if it cannot.
    pub fn refusal(&self, id: &SnapshotId, asset: &str) -> Option<String> {
        let (lock, hold) = self.of(id, asset);
        if hold {
            return Some(format!(
                "snapshot {} is under legal hold; only a security officer can release it",
                id.short()
            ));
        }
        lock.map(|t| {
            format!(
                "snapshot {} is retention-locked until {}; nobody can delete it before then",
                id.short(),
                rfc3339_ms(t)
            )
        })
    }

    /// Whether anything protects snapshot `id` of `asset`.
    pub fn protects(&self, id: &SnapshotId, asset: &str) -> bool {
        self.refusal(id, asset).is_some()
    }
}

fn n(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

type LockRow = (String, String, i64, String, i64, String);
type HoldRow = (
    i64,
    Option<String>,
    Option<String>,
    String,
    String,
    i64,
    Option<String>,
    Option<i64>,
);

fn hold_view(r: HoldRow) -> LegalHold {
    let (id, snapshot, asset, reason, set_by, set_ms, released_by, released_ms) = r;
    LegalHold {
        id,
        snapshot,
        asset,
        reason,
        set_by,
        set_at: rfc3339_ms(set_ms),
        released_by,
        released_at: released_ms.map(rfc3339_ms),
    }
}

/// The digest a disposal certificate carries: BLAKE3 over its fields, in
/// order, each length-prefixed.
pub fn disposal_digest(d: &NewDisposal) -> String {
    let mut h = blake3::Hasher::new();
    let mut field = |b: &[u8]| {
        h.update(&(b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(&d.at_ms.to_le_bytes());
    field(d.what.as_bytes());
    for k in &d.keys {
        field(k.as_bytes());
    }
    field(&d.objects.to_le_bytes());
    field(&d.bytes.to_le_bytes());
    field(d.policy.as_deref().unwrap_or("").as_bytes());
    field(d.identity.as_bytes());
    field(d.detail.as_bytes());
    h.finalize().to_hex().to_string()
}

impl Catalog {
    /// Sets or extends the retention lock of snapshot `id` to `until_ms`.
    /// A lock already running longer is refused: locks are never shortened.
    pub fn set_lock(
        &self,
        id: &SnapshotId,
        until_ms: i64,
        set_by: &str,
        now_ms: i64,
        reason: &str,
    ) -> Result<()> {
        let snap = self.resolve_snapshot(&id.to_hex())?;
        if let Some(l) = self.lock_of(id)?
            && l.until_ms > until_ms
        {
            return Err(Error::Refused(format!(
                "snapshot {} is already locked until {}; a retention lock can be extended, never shortened",
                id.short(),
                l.until
            )));
        }
        self.conn
            .execute(
                "INSERT INTO snapshot_locks (snapshot, asset, until_ms, set_by, set_ms, reason) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT(snapshot) DO UPDATE SET until_ms = excluded.until_ms, \
                 set_by = excluded.set_by, set_ms = excluded.set_ms, reason = excluded.reason",
                rusqlite::params![id.to_hex(), snap.asset, until_ms, set_by, now_ms, reason],
            )
            .map_err(|e| match &e {
                rusqlite::Error::SqliteFailure(_, Some(m)) if m.contains("never shortened") => {
                    Error::Refused(m.clone())
                }
                _ => Error::sql(&self.path, "setting a retention lock", e),
            })?;
        Ok(())
    }

    /// The lock of snapshot `id`, running or not (`active` is left false:
    /// the caller knows the trusted time).
    pub fn lock_of(&self, id: &SnapshotId) -> Result<Option<SnapshotLock>> {
        let r: Option<LockRow> = self
            .conn
            .query_row(
                "SELECT snapshot, asset, until_ms, set_by, set_ms, reason FROM snapshot_locks \
                 WHERE snapshot = ?1",
                [id.to_hex()],
                tuple,
            )
            .optional()
            .map_err(self.sql("reading a retention lock"))?;
        Ok(r.map(|r| lock_view(r, i64::MAX)))
    }

    /// Every lock (of `asset`, or all), newest end first, `active` by
    /// `trusted_ms`.
    pub fn locks(&self, asset: Option<&str>, trusted_ms: i64) -> Result<Vec<SnapshotLock>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT snapshot, asset, until_ms, set_by, set_ms, reason FROM snapshot_locks \
                 WHERE ?1 IS NULL OR asset = ?1 ORDER BY until_ms DESC, snapshot",
            )
            .map_err(self.sql("listing retention locks"))?;
        let rows = st
            .query_map([asset], tuple::<LockRow>)
            .map_err(self.sql("listing retention locks"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql("listing retention locks"))?;
        Ok(rows.into_iter().map(|r| lock_view(r, trusted_ms)).collect())
    }

    /// Places a legal hold on a snapshot or on an asset; returns its number.
    pub fn set_hold(
        &self,
        snapshot: Option<&SnapshotId>,
        asset: Option<&str>,
        reason: &str,
        set_by: &str,
        now_ms: i64,
    ) -> Result<i64> {
        if snapshot.is_some() == asset.is_some() {
            return Err(Error::Refused(
                "a legal hold names one snapshot or one asset".into(),
            ));
        }
        if reason.trim().is_empty() {
            return Err(Error::Refused(
                "a legal hold needs a reason (the matter it preserves evidence for)".into(),
            ));
        }
        if let Some(id) = snapshot {
            self.resolve_snapshot(&id.to_hex())?;
        }
        if let Some(a) = asset
            && self.asset(a).is_err()
            && self.snapshots(Some(a))?.is_empty()
        {
            return Err(Error::NotFound {
                what: "asset",
                name: a.to_string(),
            });
        }
        self.conn
            .execute(
                "INSERT INTO legal_holds (snapshot, asset, reason, set_by, set_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![snapshot.map(|s| s.to_hex()), asset, reason, set_by, now_ms],
            )
            .map_err(self.sql("placing a legal hold"))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Releases active hold `id`; returns it.
    pub fn release_hold(&self, id: i64, by: &str, now_ms: i64) -> Result<LegalHold> {
        let n = self
            .conn
            .execute(
                "UPDATE legal_holds SET released_by = ?2, released_ms = ?3 \
                 WHERE id = ?1 AND released_by IS NULL",
                rusqlite::params![id, by, now_ms],
            )
            .map_err(self.sql("releasing a legal hold"))?;
        let h = self
            .holds(true)?
            .into_iter()
            .find(|h| h.id == id)
            .ok_or_else(|| Error::NotFound {
                what: "legal hold",
                name: id.to_string(),
            })?;
        if n == 0 {
            return Err(Error::Refused(format!(
                "legal hold {id} was already released by {} at {}",
                h.released_by.as_deref().unwrap_or("?"),
                h.released_at.as_deref().unwrap_or("?")
            )));
        }
        Ok(h)
    }

    /// Legal holds: active ones, or (`all`) released ones too; newest first.
    pub fn holds(&self, all: bool) -> Result<Vec<LegalHold>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT id, snapshot, asset, reason, set_by, set_ms, released_by, released_ms \
                 FROM legal_holds WHERE ?1 OR released_by IS NULL ORDER BY id DESC",
            )
            .map_err(self.sql("listing legal holds"))?;
        let rows = st
            .query_map([all], tuple::<HoldRow>)
            .map_err(self.sql("listing legal holds"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql("listing legal holds"))?;
        Ok(rows.into_iter().map(hold_view).collect())
    }

    /// What protects snapshots at trusted time `trusted_ms`.
    pub fn protections(&self, trusted_ms: i64) -> Result<Protections> {
        let mut p = Protections::default();
        for l in self.locks(None, trusted_ms)? {
            if l.active
                && let Ok(id) = l.snapshot.parse()
            {
                p.locks.insert(id, l.until_ms);
            }
        }
        for h in self.holds(false)? {
            if let Some(s) = h.snapshot.as_deref().and_then(|s| s.parse().ok()) {
                p.held_snapshots.insert(s);
            }
            if let Some(a) = h.asset {
                p.held_assets.insert(a);
            }
        }
        Ok(p)
    }

    /// Forgets snapshot `id` unless a lock (running at `trusted_ms`) or a
    /// hold protects it. Returns whether it was recorded.
    pub fn delete_unprotected_snapshot(&self, id: &SnapshotId, trusted_ms: i64) -> Result<bool> {
        let asset = match self.resolve_snapshot(&id.to_hex()) {
            Ok(s) => s.asset,
            Err(Error::SnapshotNotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        if let Some(why) = self.protections(trusted_ms)?.refusal(id, &asset) {
            return Err(Error::Refused(why));
        }
        self.delete_snapshot(id)
    }

    /// The store objects that carry the immutable attribute, as recorded.
    pub fn immutable_objects(&self) -> Result<HashSet<String>> {
        let mut st = self
            .conn
            .prepare("SELECT key FROM immutable_objects")
            .map_err(self.sql("listing immutable objects"))?;
        let v = st
            .query_map([], |r| r.get(0))
            .map_err(self.sql("listing immutable objects"))?
            .collect::<rusqlite::Result<HashSet<String>>>()
            .map_err(self.sql("listing immutable objects"))?;
        Ok(v)
    }

    /// Records that `key` now carries (`true`) or no longer carries the
    /// immutable attribute.
    pub fn set_immutable_object(&self, key: &str, on: bool, now_ms: i64) -> Result<()> {
        if on {
            self.conn
                .execute(
                    "INSERT OR IGNORE INTO immutable_objects (key, since_ms) VALUES (?1, ?2)",
                    rusqlite::params![key, now_ms],
                )
                .map_err(self.sql("recording an immutable object"))?;
        } else {
            self.conn
                .execute("DELETE FROM immutable_objects WHERE key = ?1", [key])
                .map_err(self.sql("recording a released object"))?;
        }
        Ok(())
    }

    /// The trusted clock's last record.
    pub fn clock_record(&self) -> Result<Option<ClockRecord>> {
        let r: Option<(i64, String, i64, i64)> = self
            .conn
            .query_row(
                "SELECT trusted_ms, boot_id, mono_ms, wall_ms FROM trusted_clock WHERE id = 1",
                [],
                tuple,
            )
            .optional()
            .map_err(self.sql("reading the trusted clock"))?;
        Ok(
            r.map(|(trusted_ms, boot_id, mono_ms, wall_ms)| ClockRecord {
                trusted_ms,
                boot_id,
                mono_ms,
                wall_ms,
            }),
        )
    }

    /// Stores the trusted clock's record.
    pub fn set_clock_record(&self, r: &ClockRecord) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO trusted_clock (id, trusted_ms, boot_id, mono_ms, wall_ms) \
                 VALUES (1, ?1, ?2, ?3, ?4)",
                rusqlite::params![r.trusted_ms, r.boot_id, r.mono_ms, r.wall_ms],
            )
            .map_err(self.sql("recording the trusted clock"))?;
        Ok(())
    }

    /// Files a disposal certificate; returns its number.
    pub fn record_disposal(&self, d: &NewDisposal) -> Result<i64> {
        self.file_disposal(&self.conn, d)
    }

    /// Files certificate `d` on `conn` (the catalog's connection, or a
    /// transaction on it, so the disposal and its certificate commit
    /// together).
    pub(crate) fn file_disposal(
        &self,
        conn: &rusqlite::Connection,
        d: &NewDisposal,
    ) -> Result<i64> {
        let keys = serde_json::to_string(&d.keys).map_err(|error| Error::Encode {
            what: "disposed keys",
            error,
        })?;
        conn.execute(
            "INSERT INTO disposals (at_ms, what, keys_json, objects, bytes, policy, identity, \
                 detail, digest) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            rusqlite::params![
                d.at_ms,
                d.what,
                keys,
                n(d.objects),
                n(d.bytes),
                d.policy,
                d.identity,
                d.detail,
                disposal_digest(d)
            ],
        )
        .map_err(self.sql("filing a disposal certificate"))?;
        Ok(conn.last_insert_rowid())
    }

    /// Disposal certificates, newest first.
    pub fn disposals(&self) -> Result<Vec<Disposal>> {
        type Row = (
            i64,
            i64,
            String,
            String,
            i64,
            i64,
            Option<String>,
            String,
            String,
            String,
        );
        let mut st = self
            .conn
            .prepare(
                "SELECT id, at_ms, what, keys_json, objects, bytes, policy, identity, detail, \
                 digest FROM disposals ORDER BY id DESC",
            )
            .map_err(self.sql("listing disposal certificates"))?;
        let rows = st
            .query_map([], tuple::<Row>)
            .map_err(self.sql("listing disposal certificates"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql("listing disposal certificates"))?;
        rows.into_iter()
            .map(
                |(id, at_ms, what, keys, objects, bytes, policy, identity, detail, digest)| {
                    Ok(Disposal {
                        id,
                        at: rfc3339_ms(at_ms),
                        what,
                        keys: serde_json::from_str(&keys).map_err(|e| {
                            Error::corrupt(&self.path, format!("disposal {id}: keys: {e}"))
                        })?,
                        objects: objects.max(0) as u64,
                        bytes: bytes.max(0) as u64,
                        policy,
                        identity,
                        detail,
                        digest,
                    })
                },
            )
            .collect()
    }

    /// Records a key event.
    pub fn record_key_event(
        &self,
        at_ms: i64,
        event: &str,
        generation: u32,
        identity: &str,
        detail: &str,
    ) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO key_events (at_ms, event, generation, identity, detail) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![at_ms, event, generation, identity, detail],
            )
            .map_err(self.sql("recording a key event"))?;
        Ok(())
    }

    /// The key history, newest first, with each event's time in ms.
    pub fn key_events(&self) -> Result<Vec<(i64, KeyEvent)>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT at_ms, event, generation, identity, detail FROM key_events \
                 ORDER BY id DESC",
            )
            .map_err(self.sql("reading the key history"))?;
        let rows = st
            .query_map([], tuple::<(i64, String, u32, String, String)>)
            .map_err(self.sql("reading the key history"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql("reading the key history"))?;
        Ok(rows
            .into_iter()
            .map(|(at_ms, event, generation, identity, detail)| {
                (
                    at_ms,
                    KeyEvent {
                        at: rfc3339_ms(at_ms),
                        event,
                        generation,
                        identity,
                        detail,
                    },
                )
            })
            .collect())
    }
}

fn lock_view(r: LockRow, trusted_ms: i64) -> SnapshotLock {
    let (snapshot, asset, until_ms, set_by, set_ms, reason) = r;
    SnapshotLock {
        snapshot,
        asset,
        until: rfc3339_ms(until_ms),
        until_ms,
        set_by,
        set_at: rfc3339_ms(set_ms),
        reason,
        active: until_ms > trusted_ms,
    }
}
