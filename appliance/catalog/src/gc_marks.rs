//! Garbage collection's mark cache, per store: the ordinal of each
//! container the cache knows (with whether a collection left it for later),
//! each snapshot's encoded chunk positions, and the store's collection
//! generation the cache was last brought up to date at.
//!
//! The catalog only keeps the rows; the engine (`coffer_engine::gc`)
//! decides what they mean and when they can be trusted. It is derived data:
//! dropping it costs one full mark.

use std::collections::HashMap;

use coffer_types::{ContainerId, SnapshotId};
use rusqlite::OptionalExtension;

use crate::{Catalog, Error, Result};

/// A store's mark cache as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MarkCache {
    /// The store's collection generation when the cache was written.
    pub generation: u64,
    /// The compaction threshold of that collection.
    pub compact_below: f64,
    /// Container ordinals: (ordinal, container, deferred).
    pub containers: Vec<(u64, ContainerId, bool)>,
    /// Each snapshot's encoded positions, and whether they are complete
    /// (every chunk it references had a copy when it was marked).
    pub marks: HashMap<SnapshotId, (Vec<u8>, bool)>,
}

/// Changes to a store's mark cache, written in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MarkCacheWrite {
    /// Drop the whole cache first.
    pub reset: bool,
    /// The generation and threshold to record.
    pub generation: u64,
    /// See [`MarkCache::compact_below`].
    pub compact_below: f64,
    /// Containers to add or update: (ordinal, container, deferred).
    pub containers: Vec<(u64, ContainerId, bool)>,
    /// Ordinals to forget (their containers were deleted).
    pub drop_containers: Vec<u64>,
    /// Snapshots' positions to add or replace, with whether complete.
    pub marks: Vec<(SnapshotId, Vec<u8>, bool)>,
    /// Snapshots to forget (their records are gone).
    pub drop_marks: Vec<SnapshotId>,
}

fn ordinal(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Catalog {
    /// Store `store`'s mark cache, or `None` if there is none.
    pub fn gc_mark_cache(&self, store: &str) -> Result<Option<MarkCache>> {
        let what = "reading the collection's mark cache";
        let state: Option<(i64, f64)> = self
            .conn
            .query_row(
                "SELECT generation, compact_below FROM gc_state WHERE store = ?1",
                [store],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.sql(what))?;
        let Some((generation, compact_below)) = state else {
            return Ok(None);
        };
        let mut cache = MarkCache {
            generation: ordinal(generation),
            compact_below,
            ..MarkCache::default()
        };
        let mut stmt = self
            .conn
            .prepare(
                "SELECT ordinal, container, deferred FROM gc_containers WHERE store = ?1 \
                 ORDER BY ordinal",
            )
            .map_err(self.sql(what))?;
        let rows = stmt
            .query_map([store], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, bool>(2)?,
                ))
            })
            .map_err(self.sql(what))?;
        for row in rows {
            let (n, id, deferred) = row.map_err(self.sql(what))?;
            let id = id
                .parse()
                .map_err(|e| Error::corrupt(&self.path, format!("gc mark cache: {id}: {e}")))?;
            cache.containers.push((ordinal(n), id, deferred));
        }
        let mut stmt = self
            .conn
            .prepare("SELECT snapshot, positions, complete FROM gc_marks WHERE store = ?1")
            .map_err(self.sql(what))?;
        let rows = stmt
            .query_map([store], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, bool>(2)?,
                ))
            })
            .map_err(self.sql(what))?;
        for row in rows {
            let (id, positions, complete) = row.map_err(self.sql(what))?;
            let id = id
                .parse()
                .map_err(|e| Error::corrupt(&self.path, format!("gc mark cache: {id}: {e}")))?;
            cache.marks.insert(id, (positions, complete));
        }
        Ok(Some(cache))
    }

    /// Applies `w` to store `store`'s mark cache in one transaction.
    pub fn write_gc_mark_cache(&self, store: &str, w: &MarkCacheWrite) -> Result<()> {
        let what = "writing the collection's mark cache";
        let tx = self.write_tx(what)?;
        if w.reset {
            for table in ["gc_state", "gc_containers", "gc_marks"] {
                tx.execute(&format!("DELETE FROM {table} WHERE store = ?1"), [store])
                    .map_err(self.sql(what))?;
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO gc_state (store, generation, compact_below) VALUES (?1, ?2, ?3)",
            rusqlite::params![store, signed(w.generation), w.compact_below],
        )
        .map_err(self.sql(what))?;
        for n in &w.drop_containers {
            tx.execute(
                "DELETE FROM gc_containers WHERE store = ?1 AND ordinal = ?2",
                rusqlite::params![store, signed(*n)],
            )
            .map_err(self.sql(what))?;
        }
        for (n, id, deferred) in &w.containers {
            tx.execute(
                "INSERT OR REPLACE INTO gc_containers (store, ordinal, container, deferred) \
                 VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![store, signed(*n), id.to_hex(), deferred],
            )
            .map_err(self.sql(what))?;
        }
        for id in &w.drop_marks {
            tx.execute(
                "DELETE FROM gc_marks WHERE store = ?1 AND snapshot = ?2",
                rusqlite::params![store, id.to_string()],
            )
            .map_err(self.sql(what))?;
        }
        for (id, positions, complete) in &w.marks {
            tx.execute(
                "INSERT OR REPLACE INTO gc_marks (store, snapshot, positions, complete) \
                 VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![store, id.to_string(), positions, complete],
            )
            .map_err(self.sql(what))?;
        }
        tx.commit().map_err(self.sql(what))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_mark_cache_round_trips_per_store_and_resets() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(&dir.path().join("c.db")).unwrap();
        assert_eq!(cat.gc_mark_cache("s1").unwrap(), None);
        let c1 = ContainerId([1; 16]);
        let c2 = ContainerId([2; 16]);
        let s1 = SnapshotId([7; 16]);
        let s2 = SnapshotId([8; 16]);
        cat.write_gc_mark_cache(
            "s1",
            &MarkCacheWrite {
                generation: 4,
                compact_below: 0.5,
                containers: vec![(0, c1, false), (1, c2, true)],
                marks: vec![(s1, vec![1, 2, 3], true), (s2, vec![4], false)],
                ..MarkCacheWrite::default()
            },
        )
        .unwrap();
        cat.write_gc_mark_cache(
            "s2",
            &MarkCacheWrite {
                generation: 2,
                compact_below: 0.3,
                ..MarkCacheWrite::default()
            },
        )
        .unwrap();
        let got = cat.gc_mark_cache("s1").unwrap().unwrap();
        assert_eq!(got.generation, 4);
        assert_eq!(got.containers, vec![(0, c1, false), (1, c2, true)]);
        assert_eq!(got.marks[&s1], (vec![1, 2, 3], true));
        assert_eq!(got.marks[&s2], (vec![4], false));
        // An update: one container and one snapshot go, one is replaced.
        cat.write_gc_mark_cache(
            "s1",
            &MarkCacheWrite {
                generation: 6,
                compact_below: 0.5,
                drop_containers: vec![0],
                containers: vec![(1, c2, false)],
                drop_marks: vec![s2],
                marks: vec![(s1, vec![9], true)],
                ..MarkCacheWrite::default()
            },
        )
        .unwrap();
        let got = cat.gc_mark_cache("s1").unwrap().unwrap();
        assert_eq!(got.generation, 6);
        assert_eq!(got.containers, vec![(1, c2, false)]);
        assert_eq!(got.marks.len(), 1);
        assert_eq!(got.marks[&s1], (vec![9], true));
        cat.write_gc_mark_cache(
            "s1",
            &MarkCacheWrite {
                reset: true,
                generation: 8,
                compact_below: 0.5,
                ..MarkCacheWrite::default()
            },
        )
        .unwrap();
        let got = cat.gc_mark_cache("s1").unwrap().unwrap();
        assert!(got.containers.is_empty() && got.marks.is_empty());
        assert_eq!(cat.gc_mark_cache("s2").unwrap().unwrap().compact_below, 0.3);
    }
}
