//! Prune and garbage collection: removing snapshot rows, and each run's
//! figures.

use coffer_types::SnapshotId;
use coffer_types::api::MaintenanceStats;
use rusqlite::OptionalExtension;

use crate::{Catalog, Result, tuple};

fn n(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Catalog {
    /// Forgets a snapshot (its record was removed from the store). Returns
    /// whether it was recorded.
    pub fn delete_snapshot(&self, id: &SnapshotId) -> Result<bool> {
        let n = self
            .conn
            .execute("DELETE FROM snapshots WHERE id = ?1", [id.to_string()])
            .map_err(self.sql("removing a snapshot"))?;
        Ok(n > 0)
    }

    /// Records what prune or gc job `job` did.
    pub fn record_maintenance(&self, job: i64, s: &MaintenanceStats) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO maintenance (job, snapshots_removed, snapshots_kept, \
                 containers_deleted, containers_compacted, chunks_copied, bytes_copied, \
                 bytes_freed, duration_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                rusqlite::params![
                    job,
                    n(s.snapshots_removed),
                    n(s.snapshots_kept),
                    n(s.containers_deleted),
                    n(s.containers_compacted),
                    n(s.chunks_copied),
                    n(s.bytes_copied),
                    n(s.bytes_freed),
                    n(s.duration_ms)
                ],
            )
            .map_err(self.sql("recording a prune or gc"))?;
        Ok(())
    }

    /// The figures of prune or gc job `job`.
    pub fn maintenance_stats(&self, job: i64) -> Result<Option<MaintenanceStats>> {
        type Raw = (i64, i64, i64, i64, i64, i64, i64, i64);
        let raw: Option<Raw> = self
            .conn
            .query_row(
                "SELECT snapshots_removed, snapshots_kept, containers_deleted, \
                 containers_compacted, chunks_copied, bytes_copied, bytes_freed, duration_ms \
                 FROM maintenance WHERE job = ?1",
                [job],
                tuple,
            )
            .optional()
            .map_err(self.sql("reading a prune or gc"))?;
        let u = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(raw.map(|(sr, sk, cd, cc, ch, bc, bf, d)| MaintenanceStats {
            snapshots_removed: u(sr),
            snapshots_kept: u(sk),
            containers_deleted: u(cd),
            containers_compacted: u(cc),
            chunks_copied: u(ch),
            bytes_copied: u(bc),
            bytes_freed: u(bf),
            duration_ms: u(d),
        }))
    }
}
