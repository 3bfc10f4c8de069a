//! Restore drills: the evidence rows. A drill is recorded `running` when
//! it starts and finished once (pass or fail, with the reason); a trigger
//! refuses any change to a finished row and every deletion.

use coffer_types::api::DrillRecord;
use rusqlite::{OptionalExtension, params};

use crate::{Catalog, Error, Result};

/// A drill starting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDrill {
    /// The job log row running it.
    pub job: Option<i64>,
    /// The asset.
    pub asset: String,
    /// The snapshot (hex).
    pub snapshot: String,
    /// `disk`, `tape` or `remote`.
    pub source: String,
    /// The copy, in words.
    pub copy: String,
    /// Who runs it.
    pub identity: String,
    /// Start, ms since the epoch.
    pub started_ms: i64,
    /// The asset's RTO, ms.
    pub rto_ms: Option<i64>,
}

/// How a drill ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillEnd {
    /// End, ms since the epoch.
    pub ended_ms: i64,
    /// From the start to every file verified, ms.
    pub duration_ms: i64,
    /// The copy, in words (known once restored).
    pub copy: String,
    /// Files verified.
    pub files: u64,
    /// Bytes verified.
    pub bytes: u64,
    /// Passed.
    pub pass: bool,
    /// Why it failed, or what was noted.
    pub reason: String,
    /// How the sandbox was confined.
    pub isolation: String,
}

const COLS: &str = "id, job, asset, snapshot, source, copy, identity, started_ms, ended_ms, \
                    duration_ms, rto_ms, files, bytes, result, reason, isolation";

fn n(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DrillRecord> {
    Ok(DrillRecord {
        id: r.get(0)?,
        job: r.get(1)?,
        asset: r.get(2)?,
        snapshot: r.get(3)?,
        source: r.get(4)?,
        copy: r.get(5)?,
        identity: r.get(6)?,
        started: coffer_types::rfc3339_ms(r.get(7)?),
        ended: r.get::<_, Option<i64>>(8)?.map(coffer_types::rfc3339_ms),
        duration_ms: r.get(9)?,
        rto_ms: r.get(10)?,
        files: u64::try_from(r.get::<_, i64>(11)?).unwrap_or(0),
        bytes: u64::try_from(r.get::<_, i64>(12)?).unwrap_or(0),
        result: r.get(13)?,
        reason: r.get(14)?,
        isolation: r.get(15)?,
    })
}

impl Catalog {
    /// Records a drill starting; returns its number.
    pub fn begin_drill(&self, d: &NewDrill) -> Result<i64> {
        self.conn
            .execute(
                "INSERT INTO drills (job, asset, snapshot, source, copy, identity, started_ms, \
                 rto_ms, result) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'running')",
                params![
                    d.job,
                    d.asset,
                    d.snapshot,
                    d.source,
                    d.copy,
                    d.identity,
                    d.started_ms,
                    d.rto_ms
                ],
            )
            .map_err(self.sql("recording a restore drill"))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records how drill `id` ended (once: a finished drill is never changed).
    pub fn finish_drill(&self, id: i64, e: &DrillEnd) -> Result<()> {
        let changed = self
            .conn
            .execute(
                "UPDATE drills SET ended_ms = ?2, duration_ms = ?3, copy = ?4, files = ?5, \
                 bytes = ?6, result = ?7, reason = ?8, isolation = ?9 WHERE id = ?1 AND result = 'running'",
                params![
                    id,
                    e.ended_ms,
                    e.duration_ms,
                    e.copy,
                    n(e.files),
                    n(e.bytes),
                    if e.pass { "pass" } else { "fail" },
                    e.reason,
                    e.isolation
                ],
            )
            .map_err(self.sql("finishing a restore drill"))?;
        if changed == 0 {
            return Err(Error::NotFound {
                what: "running restore drill",
                name: id.to_string(),
            });
        }
        Ok(())
    }

    /// Drills still `running` (a daemon that died mid-drill leaves them).
    pub fn running_drills(&self) -> Result<Vec<DrillRecord>> {
        self.rows(
            &format!("SELECT {COLS} FROM drills WHERE result = 'running' ORDER BY id"),
            "listing running drills",
            row,
        )
    }

    /// Drills, newest first (of `asset`, or every one).
    pub fn drills(&self, asset: Option<&str>) -> Result<Vec<DrillRecord>> {
        match asset {
            Some(a) => self.rows_with(
                &format!("SELECT {COLS} FROM drills WHERE asset = ?1 ORDER BY id DESC"),
                [a],
                "listing restore drills",
                row,
            ),
            None => self.rows(
                &format!("SELECT {COLS} FROM drills ORDER BY id DESC"),
                "listing restore drills",
                row,
            ),
        }
    }

    /// Drill `id`.
    pub fn drill(&self, id: i64) -> Result<Option<DrillRecord>> {
        self.conn
            .query_row(
                &format!("SELECT {COLS} FROM drills WHERE id = ?1"),
                [id],
                row,
            )
            .optional()
            .map_err(self.sql("reading a restore drill"))
    }
}
