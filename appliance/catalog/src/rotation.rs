//! Media rotation's rows: pools, each cartridge's rotation state, the
//! rotation's media sets, the chain of custody and transfer manifests.
//!
//! Policies and states are JSON documents of `coffer_media::rotation`
//! types; the catalog keeps them and writes each operator step (state
//! changes, custody events, a manifest) in one transaction.

use rusqlite::OptionalExtension;

use crate::{Catalog, Error, Result};

/// One line of the chain of custody.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CustodyEvent {
    /// When it was recorded.
    pub at_ms: i64,
    /// The rotation day it belongs to (`YYYY-MM-DD`).
    pub day: String,
    /// Cartridge.
    pub barcode: String,
    /// Its pool.
    pub pool: String,
    /// What happened (`exported`, `sent`, `received-at-vault`, …).
    pub event: String,
    /// State and place before.
    pub from_state: String,
    /// State and place after.
    pub to_state: String,
    /// Who recorded it.
    pub identity: String,
    /// The transfer manifest it travelled on.
    pub manifest: Option<i64>,
}

/// A transfer manifest: the cartridges one courier pickup carries.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TransferManifest {
    /// Number.
    pub id: i64,
    /// Pool.
    pub pool: String,
    /// `to-vault` or `to-site`.
    pub direction: String,
    /// The vault.
    pub vault: String,
    /// Created.
    pub created_ms: i64,
    /// By whom.
    pub created_by: String,
    /// Cartridges.
    pub barcodes: Vec<String>,
    /// Handed to the courier.
    pub sent_ms: Option<i64>,
    /// Receipt confirmed at the other end.
    pub received_ms: Option<i64>,
}

/// A pool's rotation rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RotationRows {
    /// (barcode, cartridge JSON).
    pub carts: Vec<(String, String)>,
    /// (set id, set JSON).
    pub sets: Vec<(String, String)>,
    /// Day number of the last drive cleaning.
    pub last_cleaning: Option<i32>,
}

/// One operator step, written in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RotationWrite {
    /// Pool.
    pub pool: String,
    /// Cartridges to add or replace: (barcode, JSON).
    pub carts: Vec<(String, String)>,
    /// Sets to add or replace: (id, JSON).
    pub sets: Vec<(String, String)>,
    /// A new last cleaning day.
    pub last_cleaning: Option<i32>,
    /// Custody events; with a new manifest, they travel on it.
    pub custody: Vec<CustodyEvent>,
    /// A new manifest (its id is ignored).
    pub manifest: Option<TransferManifest>,
    /// Manifests sent (`sent_ms`) or received (`received_ms`) by this step:
    /// (id, sent, received).
    pub manifests_done: Vec<(i64, Option<i64>, Option<i64>)>,
    /// The existing manifest the custody events travel on.
    pub link_manifest: Option<i64>,
}

fn manifest_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(TransferManifest, String)> {
    Ok((
        TransferManifest {
            id: r.get(0)?,
            pool: r.get(1)?,
            direction: r.get(2)?,
            vault: r.get(3)?,
            created_ms: r.get(4)?,
            created_by: r.get(5)?,
            barcodes: Vec::new(),
            sent_ms: r.get(7)?,
            received_ms: r.get(8)?,
        },
        r.get(6)?,
    ))
}

const MANIFEST_COLS: &str =
    "id, pool, direction, vault, created_ms, created_by, barcodes, sent_ms, received_ms";

impl Catalog {
    /// Adds or replaces media pool `name` (policy as JSON).
    pub fn put_media_pool(&self, name: &str, policy: &str, now_ms: i64) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO media_pools (name, policy, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?3) \
                 ON CONFLICT(name) DO UPDATE SET policy = excluded.policy, updated_ms = excluded.updated_ms",
                rusqlite::params![name, policy, now_ms],
            )
            .map_err(self.sql("recording a media pool"))?;
        Ok(())
    }

    /// Every media pool: (name, policy JSON).
    pub fn media_pools(&self) -> Result<Vec<(String, String)>> {
        self.rows(
            "SELECT name, policy FROM media_pools ORDER BY name",
            "listing media pools",
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// Pool `name`'s policy JSON.
    pub fn media_pool(&self, name: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT policy FROM media_pools WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql("reading a media pool"))
    }

    /// The last day each pool's nightly tape job was queued: pool → day
    /// (`YYYY-MM-DD`).
    pub fn tape_schedule(&self) -> Result<std::collections::HashMap<String, String>> {
        Ok(self
            .rows(
                "SELECT pool, last_day FROM tape_schedule",
                "reading the tape schedule",
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .into_iter()
            .collect())
    }

    /// Records that pool `pool`'s job of `day` was queued (as `job`; `None`
    /// when the rotation had none that day).
    pub fn set_tape_schedule(&self, pool: &str, day: &str, job: Option<i64>) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO tape_schedule (pool, last_day, job) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(pool) DO UPDATE SET last_day = excluded.last_day, job = excluded.job",
                rusqlite::params![pool, day, job],
            )
            .map_err(self.sql("recording the tape schedule"))?;
        Ok(())
    }

    /// The pool cartridge `barcode` belongs to in the rotation.
    pub fn rotation_pool_of(&self, barcode: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT pool FROM rotation_carts WHERE barcode = ?1",
                [barcode],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql("reading a cartridge's pool"))
    }

    /// Pool `pool`'s rotation rows.
    pub fn rotation_rows(&self, pool: &str) -> Result<RotationRows> {
        let what = "reading a pool's rotation";
        let mut stmt = self
            .conn
            .prepare("SELECT barcode, cart FROM rotation_carts WHERE pool = ?1 ORDER BY barcode")
            .map_err(self.sql(what))?;
        let carts = stmt
            .query_map([pool], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.sql(what))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql(what))?;
        let mut stmt = self
            .conn
            .prepare("SELECT id, media_set FROM rotation_sets WHERE pool = ?1 ORDER BY id")
            .map_err(self.sql(what))?;
        let sets = stmt
            .query_map([pool], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.sql(what))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql(what))?;
        let last_cleaning = self
            .conn
            .query_row(
                "SELECT last_cleaning FROM rotation_state WHERE pool = ?1",
                [pool],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql(what))?
            .flatten();
        Ok(RotationRows {
            carts,
            sets,
            last_cleaning,
        })
    }

    /// Writes one operator step; returns the new manifest's id.
    pub fn write_rotation(&self, w: &RotationWrite) -> Result<Option<i64>> {
        let what = "recording a rotation step";
        let tx = self.write_tx(what)?;
        let manifest = match &w.manifest {
            Some(m) => {
                let barcodes = serde_json::to_string(&m.barcodes)
                    .map_err(|e| Error::corrupt(&self.path, format!("manifest: {e}")))?;
                tx.execute(
                    "INSERT INTO transfer_manifests (pool, direction, vault, created_ms, created_by, barcodes) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    rusqlite::params![m.pool, m.direction, m.vault, m.created_ms, m.created_by, barcodes],
                )
                .map_err(self.sql(what))?;
                Some(tx.last_insert_rowid())
            }
            None => None,
        };
        for (id, sent, received) in &w.manifests_done {
            if let Some(t) = sent {
                tx.execute(
                    "UPDATE transfer_manifests SET sent_ms = ?2 WHERE id = ?1 AND sent_ms IS NULL",
                    rusqlite::params![id, t],
                )
                .map_err(self.sql(what))?;
            }
            if let Some(t) = received {
                tx.execute(
                    "UPDATE transfer_manifests SET received_ms = ?2 WHERE id = ?1 AND received_ms IS NULL",
                    rusqlite::params![id, t],
                )
                .map_err(self.sql(what))?;
            }
        }
        for (barcode, json) in &w.carts {
            tx.execute(
                "INSERT OR REPLACE INTO rotation_carts (barcode, pool, cart) VALUES (?1, ?2, ?3)",
                rusqlite::params![barcode, w.pool, json],
            )
            .map_err(self.sql(what))?;
        }
        for (id, json) in &w.sets {
            tx.execute(
                "INSERT OR REPLACE INTO rotation_sets (id, pool, media_set) VALUES (?1, ?2, ?3)",
                rusqlite::params![id, w.pool, json],
            )
            .map_err(self.sql(what))?;
        }
        if let Some(day) = w.last_cleaning {
            tx.execute(
                "INSERT INTO rotation_state (pool, last_cleaning) VALUES (?1, ?2) \
                 ON CONFLICT(pool) DO UPDATE SET last_cleaning = excluded.last_cleaning",
                rusqlite::params![w.pool, day],
            )
            .map_err(self.sql(what))?;
        }
        for e in &w.custody {
            tx.execute(
                "INSERT INTO custody (at_ms, day, barcode, pool, event, from_state, to_state, identity, manifest) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                rusqlite::params![
                    e.at_ms,
                    e.day,
                    e.barcode,
                    e.pool,
                    e.event,
                    e.from_state,
                    e.to_state,
                    e.identity,
                    e.manifest.or(manifest).or(w.link_manifest)
                ],
            )
            .map_err(self.sql(what))?;
        }
        tx.commit().map_err(self.sql(what))?;
        Ok(manifest)
    }

    /// The chain of custody, oldest first: of one cartridge, or all.
    pub fn custody(&self, barcode: Option<&str>) -> Result<Vec<CustodyEvent>> {
        let map = |r: &rusqlite::Row<'_>| {
            Ok(CustodyEvent {
                at_ms: r.get(0)?,
                day: r.get(1)?,
                barcode: r.get(2)?,
                pool: r.get(3)?,
                event: r.get(4)?,
                from_state: r.get(5)?,
                to_state: r.get(6)?,
                identity: r.get(7)?,
                manifest: r.get(8)?,
            })
        };
        let cols = "at_ms, day, barcode, pool, event, from_state, to_state, identity, manifest";
        match barcode {
            Some(b) => {
                let what = "reading the chain of custody";
                let mut stmt = self
                    .conn
                    .prepare(&format!(
                        "SELECT {cols} FROM custody WHERE barcode = ?1 ORDER BY id"
                    ))
                    .map_err(self.sql(what))?;
                stmt.query_map([b], map)
                    .map_err(self.sql(what))?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(self.sql(what))
            }
            None => self.rows(
                &format!("SELECT {cols} FROM custody ORDER BY id"),
                "reading the chain of custody",
                map,
            ),
        }
    }

    /// Transfer manifest `id`.
    pub fn transfer_manifest(&self, id: i64) -> Result<Option<TransferManifest>> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {MANIFEST_COLS} FROM transfer_manifests WHERE id = ?1"),
                [id],
                manifest_row,
            )
            .optional()
            .map_err(self.sql("reading a transfer manifest"))?;
        row.map(|(mut m, barcodes)| {
            m.barcodes = serde_json::from_str(&barcodes)
                .map_err(|e| Error::corrupt(&self.path, format!("transfer manifest {id}: {e}")))?;
            Ok(m)
        })
        .transpose()
    }

    /// Transfer manifests, newest first.
    pub fn transfer_manifests(&self) -> Result<Vec<TransferManifest>> {
        let rows = self.rows(
            &format!("SELECT {MANIFEST_COLS} FROM transfer_manifests ORDER BY id DESC"),
            "listing transfer manifests",
            manifest_row,
        )?;
        rows.into_iter()
            .map(|(mut m, barcodes)| {
                m.barcodes = serde_json::from_str(&barcodes).map_err(|e| {
                    Error::corrupt(&self.path, format!("transfer manifest {}: {e}", m.id))
                })?;
                Ok(m)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_rotation_step_writes_states_custody_and_its_manifest_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(&dir.path().join("c.db")).unwrap();
        cat.put_media_pool("weekly", "{}", 1).unwrap();
        let event = |b: &str| CustodyEvent {
            at_ms: 5,
            day: "2026-11-26".into(),
            barcode: b.into(),
            pool: "weekly".into(),
            event: "exported".into(),
            from_state: "full, library".into(),
            to_state: "full, export pending".into(),
            identity: "op".into(),
            manifest: None,
        };
        let id = cat
            .write_rotation(&RotationWrite {
                pool: "weekly".into(),
                carts: vec![("A00001L9".into(), "{\"x\":1}".into())],
                sets: vec![("s1".into(), "{}".into())],
                last_cleaning: Some(20_000),
                custody: vec![event("A00001L9")],
                manifest: Some(TransferManifest {
                    id: 0,
                    pool: "weekly".into(),
                    direction: "to-vault".into(),
                    vault: "iron".into(),
                    created_ms: 5,
                    created_by: "op".into(),
                    barcodes: vec!["A00001L9".into()],
                    sent_ms: None,
                    received_ms: None,
                }),
                manifests_done: Vec::new(),
                link_manifest: None,
            })
            .unwrap()
            .unwrap();
        let rows = cat.rotation_rows("weekly").unwrap();
        assert_eq!(rows.carts, vec![("A00001L9".into(), "{\"x\":1}".into())]);
        assert_eq!(rows.last_cleaning, Some(20_000));
        assert_eq!(
            cat.rotation_pool_of("A00001L9").unwrap().as_deref(),
            Some("weekly")
        );
        let chain = cat.custody(Some("A00001L9")).unwrap();
        assert_eq!(chain.len(), 1);
        assert_eq!(chain[0].manifest, Some(id));
        cat.write_rotation(&RotationWrite {
            pool: "weekly".into(),
            manifests_done: vec![(id, Some(9), None)],
            ..RotationWrite::default()
        })
        .unwrap();
        let m = cat.transfer_manifest(id).unwrap().unwrap();
        assert_eq!((m.sent_ms, m.received_ms), (Some(9), None));
        assert_eq!(m.barcodes, vec!["A00001L9".to_string()]);
        // The chain of custody cannot be rewritten.
        let e = cat
            .conn
            .execute("DELETE FROM custody", [])
            .unwrap_err()
            .to_string();
        assert!(e.contains("append-only"), "{e}");
    }
}
