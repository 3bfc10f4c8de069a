//! The mark cache: what makes a collection cost what changed since the last
//! one, not what the store holds.
//!
//! Each container the cache knows has an ordinal; a chunk copy's *position*
//! is `ordinal << POS_BITS | its place in the container's table`. Each
//! snapshot's marks are the positions of every copy of every chunk it
//! references, as a compressed bitmap (runs: a snapshot's chunks sit mostly
//! side by side in a few containers), kept in the catalog
//! ([`coffer_catalog::MarkCache`]). A collection then
//!
//! * reads the manifests of the snapshots it has not seen (new ones) only;
//! * takes the union of every snapshot's marks (bitmap unions, no I/O
//!   beyond the catalog rows);
//! * examines only the containers that can have changed: those the removed
//!   snapshots marked, those new since the last collection, damaged ones,
//!   and those a collection left for later (pinned by a retention lock, or
//!   a copy that failed). A container outside these kept its live share or
//!   gained.
//!
//! Containers are immutable, so a position stays right as long as its
//! container exists. When a collection removes a container that still had
//! live positions (compacted, or damaged with copies elsewhere) it moves
//! every snapshot's marks to the surviving copies before the cache is
//! written.
//!
//! **When the cache is not trusted**, it is dropped and every snapshot is
//! marked again (a full collection): no cache yet; the store's collection
//! generation is not the one the cache was written at (a collection ran
//! without this catalog, or was killed: its generation stays odd); a
//! container the cache knows is no longer in the store; a row that does not
//! decode. The cache is written once, at the end of a collection that
//! finished, with the generation it ended at.

use std::collections::{BTreeMap, HashMap, HashSet};

use coffer_catalog::{Catalog, MarkCacheWrite};
use coffer_store::Repo;
use coffer_types::{ChunkId, ContainerId, IdSet, SnapshotId};
use roaring::RoaringTreemap;

use crate::{Error, Result};

/// Bits of a position that hold the place in the container's table. A
/// container Coffer writes holds at most `coffer_store::MAX_RECORDS` (2^14)
/// chunks; a table with more than 2^20 stops the collection.
pub(crate) const POS_BITS: u32 = 20;

const _: () = assert!(coffer_store::MAX_RECORDS <= 1 << POS_BITS);

/// A chunk copy's position.
pub(crate) fn position(ordinal: u64, index: u32) -> u64 {
    (ordinal << POS_BITS) | u64::from(index)
}

fn ordinal_of(position: u64) -> u64 {
    position >> POS_BITS
}

fn span(ordinal: u64) -> std::ops::Range<u64> {
    position(ordinal, 0)..position(ordinal + 1, 0)
}

/// The cache, loaded and brought up to date by one collection.
pub(crate) struct Marks {
    store: String,
    /// The cache could not be used: every snapshot was marked again, and
    /// every container is examined.
    pub(crate) rebuilt: bool,
    /// The compaction threshold of the last collection.
    pub(crate) last_compact_below: f64,
    ordinals: HashMap<ContainerId, u64>,
    containers: BTreeMap<u64, ContainerId>,
    next: u64,
    /// Ordinals the cache knew when loaded.
    known: HashSet<u64>,
    deferred: HashSet<u64>,
    was_deferred: HashSet<u64>,
    snaps: HashMap<SnapshotId, RoaringTreemap>,
    dirty: HashSet<SnapshotId>,
    /// Snapshots whose marks lack a chunk no container held (see
    /// [`Marks::missing`]): cached, flagged, and marked again by every
    /// collection until complete.
    incomplete: HashSet<SnapshotId>,
    /// Snapshots gone since the last collection, with their marks.
    removed: Vec<(SnapshotId, RoaringTreemap)>,
    /// Ordinals of containers this collection deleted.
    deleted: Vec<u64>,
    /// Manifests read by this collection.
    pub(crate) manifests_read: u64,
    /// Chunks new snapshots reference that no container the index knows
    /// holds (lost, or in a container whose table could not be read). A
    /// snapshot with any is marked again by every collection instead of
    /// being cached, so a copy that appears later is marked.
    pub(crate) missing: IdSet<ChunkId>,
}

impl Marks {
    /// Loads store `repo`'s cache from `catalog` if it can be trusted (and
    /// `ignore` is false), and gives every container the store holds an
    /// ordinal.
    pub(crate) fn load(repo: &Repo, catalog: &Catalog, ignore: bool) -> Result<Marks> {
        let store = repo.config().store_id.to_hex();
        let mut m = Marks {
            store,
            rebuilt: true,
            last_compact_below: 0.0,
            ordinals: HashMap::new(),
            containers: BTreeMap::new(),
            next: 0,
            known: HashSet::new(),
            deferred: HashSet::new(),
            was_deferred: HashSet::new(),
            snaps: HashMap::new(),
            dirty: HashSet::new(),
            incomplete: HashSet::new(),
            removed: Vec::new(),
            deleted: Vec::new(),
            manifests_read: 0,
            missing: IdSet::default(),
        };
        let present: HashSet<ContainerId> = repo.container_ids()?.into_iter().collect();
        let cache = if ignore {
            None
        } else {
            catalog.gc_mark_cache(&m.store)?
        };
        if let Some(cache) = cache {
            let generation = repo.current_gc_generation()?;
            let mut ok = cache.generation == generation && generation.is_multiple_of(2);
            ok &= cache.containers.iter().all(|(_, c, _)| present.contains(c));
            let mut snaps = HashMap::new();
            m.incomplete.clear();
            if ok {
                for (id, (bytes, complete)) in &cache.marks {
                    match RoaringTreemap::deserialize_from(&bytes[..]) {
                        Ok(b) => {
                            snaps.insert(*id, b);
                            if !complete {
                                m.incomplete.insert(*id);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(snapshot = %id, error = %e, "gc mark cache row does not decode: marking every snapshot again");
                            ok = false;
                            break;
                        }
                    }
                }
            }
            if ok {
                m.rebuilt = false;
                m.last_compact_below = cache.compact_below;
                for (n, c, deferred) in cache.containers {
                    m.ordinals.insert(c, n);
                    m.containers.insert(n, c);
                    m.known.insert(n);
                    if deferred {
                        m.deferred.insert(n);
                    }
                    m.next = m.next.max(n + 1);
                }
                m.snaps = snaps;
                m.was_deferred = m.deferred.clone();
            } else {
                tracing::info!(store = %m.store, "gc mark cache out of date: marking every snapshot");
            }
        }
        let mut new: Vec<ContainerId> = present
            .into_iter()
            .filter(|c| !m.ordinals.contains_key(c))
            .collect();
        new.sort();
        for c in new {
            m.ordinal(&c);
        }
        Ok(m)
    }

    /// Container `c`'s ordinal, given one if it has none.
    pub(crate) fn ordinal(&mut self, c: &ContainerId) -> u64 {
        if let Some(n) = self.ordinals.get(c) {
            return *n;
        }
        let n = self.next;
        self.next += 1;
        self.ordinals.insert(*c, n);
        self.containers.insert(n, *c);
        n
    }

    /// Brings the marks up to the store's snapshots `ids`: forgets those
    /// gone (keeping their marks for [`Marks::candidates`]) and reads the
    /// manifests of those new. A snapshot that cannot be read stops the
    /// collection.
    pub(crate) fn update(
        &mut self,
        repo: &Repo,
        ids: &[SnapshotId],
        progress: &crate::Progress,
    ) -> Result<()> {
        let present: HashSet<&SnapshotId> = ids.iter().collect();
        let gone: Vec<SnapshotId> = self
            .snaps
            .keys()
            .filter(|id| !present.contains(id))
            .copied()
            .collect();
        for id in gone {
            if let Some(b) = self.snaps.remove(&id) {
                self.removed.push((id, b));
            }
        }
        for id in ids {
            if self.snaps.contains_key(id) && !self.incomplete.contains(id) {
                continue;
            }
            let chunks = super::mark_snapshots(repo, std::slice::from_ref(id), progress)?;
            self.manifests_read += 1;
            let (b, missing) = self.positions_of(repo, &chunks)?;
            self.snaps.insert(*id, b);
            self.dirty.insert(*id);
            if missing.is_empty() {
                self.incomplete.remove(id);
            } else {
                // Marked again next time, when a copy may exist.
                tracing::warn!(snapshot = %id, chunks = missing.len(), "snapshot references chunks no known container holds");
                self.incomplete.insert(*id);
                self.missing.extend(missing);
            }
        }
        Ok(())
    }

    /// The positions of every copy of `chunks`, and the chunks without a
    /// copy.
    fn positions_of(
        &mut self,
        repo: &Repo,
        chunks: &IdSet<ChunkId>,
    ) -> Result<(RoaringTreemap, Vec<ChunkId>)> {
        let mut out = Vec::with_capacity(chunks.len());
        let mut missing = Vec::new();
        for id in chunks {
            let slots = repo.slots(id)?;
            if slots.is_empty() {
                missing.push(*id);
            }
            for (c, index) in slots {
                out.push(self.checked_position(&c, index)?);
            }
        }
        out.sort_unstable();
        out.dedup();
        let b = RoaringTreemap::from_sorted_iter(out)
            .map_err(|e| Error::Invalid(format!("gc marks out of order: {e}")))?;
        Ok((b, missing))
    }

    /// Marks `extra` (a copy nobody marked of a chunk that is live through
    /// `marked`, another copy) in every snapshot that marks `marked`, so
    /// that every snapshot marks every copy of what it references again.
    pub(crate) fn mark_copies(&mut self, extra: &[(u64, u64)]) {
        if extra.is_empty() {
            return;
        }
        for (id, b) in &mut self.snaps {
            let mut changed = false;
            for (marked, copy) in extra {
                if b.contains(*marked) && !b.contains(*copy) {
                    b.insert(*copy);
                    changed = true;
                }
            }
            if changed {
                self.dirty.insert(*id);
            }
        }
    }

    /// The position of copy `index` of container `c`, if it has an ordinal.
    pub(crate) fn position_of(&self, c: &ContainerId, index: u32) -> Option<u64> {
        self.ordinals.get(c).map(|n| position(*n, index))
    }

    fn checked_position(&mut self, c: &ContainerId, index: u32) -> Result<u64> {
        if index >= 1 << POS_BITS {
            return Err(Error::Invalid(format!(
                "container {c} has a table of more than {} chunks, which no Coffer writes: verify the store",
                1u64 << POS_BITS
            )));
        }
        Ok(position(self.ordinal(c), index))
    }

    /// Every position some snapshot references.
    pub(crate) fn union(&self) -> RoaringTreemap {
        let mut u = RoaringTreemap::new();
        for b in self.snaps.values() {
            u |= b;
        }
        u
    }

    /// The containers to examine (`None`: all of them): those the removed
    /// snapshots marked, new ones, deferred ones. The caller adds damaged
    /// ones.
    pub(crate) fn candidates(&self, full: bool) -> Option<HashSet<ContainerId>> {
        if full || self.rebuilt {
            return None;
        }
        let mut ords: HashSet<u64> = self.deferred.clone();
        for (_, b) in &self.removed {
            // What changed: the removed snapshots' own positions.
            let mut last = None;
            for p in b {
                let n = ordinal_of(p);
                if last != Some(n) {
                    ords.insert(n);
                    last = Some(n);
                }
            }
        }
        ords.extend(self.containers.keys().filter(|n| !self.known.contains(n)));
        Some(
            ords.iter()
                .filter_map(|n| self.containers.get(n))
                .copied()
                .collect(),
        )
    }

    /// Whether position `p` of container `c` is in `union`.
    pub(crate) fn is_marked(&self, union: &RoaringTreemap, c: &ContainerId, index: u32) -> bool {
        self.ordinals
            .get(c)
            .is_some_and(|n| index < 1 << POS_BITS && union.contains(position(*n, index)))
    }

    /// Moves every snapshot's marks off the containers `leaving` onto the
    /// surviving copies (`chunk_at` names the chunk at each of their
    /// positions). Returns the containers that cannot go because a marked
    /// position in them has no sound copy elsewhere; the marks are then
    /// left as they were for those.
    pub(crate) fn remap(
        &mut self,
        repo: &Repo,
        union: &RoaringTreemap,
        leaving: &HashSet<ContainerId>,
        chunk_at: &HashMap<(ContainerId, u32), ChunkId>,
    ) -> Result<HashSet<ContainerId>> {
        let mut blocked: HashSet<ContainerId> = HashSet::new();
        loop {
            let going: HashSet<ContainerId> = leaving
                .iter()
                .filter(|c| !blocked.contains(c))
                .copied()
                .collect();
            let mut going_bm = RoaringTreemap::new();
            for c in &going {
                let n = self.ordinal(c);
                going_bm.insert_range(span(n));
            }
            let live = union & &going_bm;
            let mut targets: HashMap<u64, Vec<u64>> = HashMap::new();
            let mut newly_blocked = false;
            for p in &live {
                let n = ordinal_of(p);
                let Some(c) = self.containers.get(&n).copied() else {
                    continue;
                };
                let index = u32::try_from(p - position(n, 0)).unwrap_or(u32::MAX);
                let mut to = Vec::new();
                if let Some(id) = chunk_at.get(&(c, index)) {
                    for (k, i) in repo.slots(id)? {
                        if !going.contains(&k) && repo.is_sound(&k)? {
                            to.push(self.checked_position(&k, i)?);
                        }
                    }
                }
                if to.is_empty() {
                    newly_blocked |= blocked.insert(c);
                } else {
                    targets.insert(p, to);
                }
            }
            if newly_blocked {
                continue;
            }
            for (id, b) in &mut self.snaps {
                let hit = &*b & &going_bm;
                if hit.is_empty() {
                    continue;
                }
                *b -= &going_bm;
                for p in &hit {
                    if let Some(to) = targets.get(&p) {
                        b.extend(to.iter().copied());
                    }
                }
                self.dirty.insert(*id);
            }
            return Ok(blocked);
        }
    }

    /// Container `c` was deleted.
    pub(crate) fn deleted(&mut self, c: &ContainerId) {
        if let Some(n) = self.ordinals.remove(c) {
            self.containers.remove(&n);
            self.deferred.remove(&n);
            self.deleted.push(n);
        }
    }

    /// Container `c` is left for the next collection to look at again
    /// (`true`), or settled (`false`).
    pub(crate) fn defer(&mut self, c: &ContainerId, later: bool) {
        let n = self.ordinal(c);
        if later {
            self.deferred.insert(n);
        } else {
            self.deferred.remove(&n);
        }
    }

    /// Writes the cache, at the store's collection generation `generation`
    /// (the one the collection ended at).
    pub(crate) fn save(
        &self,
        catalog: &Catalog,
        generation: u64,
        compact_below: f64,
    ) -> Result<()> {
        let mut marks = Vec::with_capacity(self.dirty.len());
        for id in &self.dirty {
            if let Some(b) = self.snaps.get(id) {
                let mut bytes = Vec::with_capacity(b.serialized_size());
                b.serialize_into(&mut bytes)
                    .map_err(|e| Error::Invalid(format!("encoding gc marks: {e}")))?;
                marks.push((*id, bytes, !self.incomplete.contains(id)));
            }
        }
        // Rows that changed only: new containers, and flags set or cleared.
        let containers = self
            .containers
            .iter()
            .filter(|(n, _)| {
                self.rebuilt
                    || !self.known.contains(n)
                    || self.deferred.contains(n) != self.was_deferred.contains(n)
            })
            .map(|(n, c)| (*n, *c, self.deferred.contains(n)))
            .collect();
        catalog.write_gc_mark_cache(
            &self.store,
            &MarkCacheWrite {
                reset: self.rebuilt,
                generation,
                compact_below,
                containers,
                drop_containers: self.deleted.clone(),
                marks,
                drop_marks: self.removed.iter().map(|(id, _)| *id).collect(),
            },
        )?;
        Ok(())
    }
}
