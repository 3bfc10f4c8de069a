//! An opened store: its config, its master key and its chunk index.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use coffer_keys::{ChunkIdKey, DataKey, KdfParams, MasterKey, ObjectKey, Passphrase};
use coffer_types::{ChunkId, ContainerId, IdMap, IdSet, SnapshotId, StoreId};

use crate::chunker::{Chunker, ChunkerParams};
use crate::container::{
    self, ContainerBuilder, ContainerInfo, ContainerKeys, IndexObject, SealedContainer, TableEntry,
    data_key, index_key,
};
use crate::format::{FORMAT_VERSION, Reader, Writer, magic};
use crate::manifest::{Entry, ManifestDecoder, end_record, stream_header};
use crate::snapshot::{SnapshotRecord, record_key};
use crate::{BlobStore, Error, ObjectWriter, Result};

const CONFIG_KEY: &str = "config";
const CONFIG_LEN: usize = 80;

/// A store's configuration: written once at `init`, readable without keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    /// The store's id.
    pub store_id: StoreId,
    /// Containers are sealed once they reach this many bytes.
    pub container_size: u32,
    /// Data chunker bounds.
    pub chunker: ChunkerParams,
    /// zstd level.
    pub zstd_level: i32,
}

impl StoreConfig {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(&magic::CONFIG_V1);
        w.u16(FORMAT_VERSION);
        w.u16(0);
        w.raw(&self.store_id.0);
        w.u32(self.container_size);
        w.u32(self.chunker.min);
        w.u32(self.chunker.avg);
        w.u32(self.chunker.max);
        w.raw(&self.zstd_level.to_le_bytes());
        let h = *blake3::hash(&w.buf).as_bytes();
        w.raw(&h);
        w.buf
    }

    /// Parses and checks a config object.
    pub fn decode(bytes: &[u8]) -> Result<StoreConfig> {
        let mut r = Reader::new(bytes, "store config");
        r.expect_header(magic::CONFIG_V1, FORMAT_VERSION, "store")?;
        if bytes.len() != CONFIG_LEN {
            return Err(r.corrupt(format!("length {} (expected {CONFIG_LEN})", bytes.len())));
        }
        if blake3::hash(&bytes[..48]).as_bytes()[..] != bytes[48..] {
            return Err(r.corrupt("checksum mismatch"));
        }
        let _flags = r.u16()?;
        let store_id = StoreId(r.array()?);
        let container_size = r.u32()?;
        let chunker = ChunkerParams {
            min: r.u32()?,
            avg: r.u32()?,
            max: r.u32()?,
        }
        .validate()?;
        let zstd_level = i32::from_le_bytes(r.array()?);
        if !(1 << 20..=1 << 30).contains(&container_size) || !(1..=19).contains(&zstd_level) {
            return Err(r.corrupt("container size or zstd level out of range"));
        }
        Ok(StoreConfig {
            store_id,
            container_size,
            chunker,
            zstd_level,
        })
    }

    /// Reads a store's config without keys.
    pub fn read(blobs: &dyn BlobStore) -> Result<StoreConfig> {
        match blobs.get(CONFIG_KEY) {
            Ok(b) => StoreConfig::decode(&b),
            Err(Error::NotFound { .. }) => Err(Error::NotAStore(blobs.describe())),
            Err(e) => Err(e),
        }
    }
}

/// Choices made at `init`.
#[derive(Debug, Clone, Copy)]
pub struct InitOptions {
    /// Container seal size (1 MiB to 1 GiB).
    pub container_size: u32,
    /// zstd level (1 to 19).
    pub zstd_level: i32,
    /// Passphrase stretching.
    pub kdf: KdfParams,
    /// Data chunker bounds.
    pub chunker: ChunkerParams,
}

impl Default for InitOptions {
    fn default() -> InitOptions {
        InitOptions {
            container_size: 32 * 1024 * 1024,
            zstd_level: 3,
            kdf: KdfParams::DEFAULT,
            chunker: ChunkerParams::DATA,
        }
    }
}

/// Where a chunk is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLoc {
    /// Its container.
    pub container: ContainerId,
    /// Record index inside the container (the GCM nonce).
    pub index: u32,
    /// The table entry.
    pub entry: TableEntry,
}

/// A chunk's location as the index keeps it: 24 bytes beside its 32-byte
/// id, which is the map's key and not repeated (the index is the one
/// structure that grows with the store; see docs/performance.md).
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// The container's number in [`Index::ids`].
    container: u32,
    index: u32,
    /// Containers are at most 1 GiB plus one chunk, so offsets fit.
    offset: u32,
    stored_len: u32,
    raw_len: u32,
    flags: u8,
}

/// The chunk index: where every chunk is.
///
/// Most of it is one array sorted by chunk id, 56 bytes a chunk with no
/// slack, found through a directory of the ids' first two bytes (the ids are
/// uniform, so each bucket holds a handful). Chunks stored by this process
/// go to a small hash map first and are merged into the array when the map
/// reaches a sixteenth of it. A hash map of everything cost twice the memory:
/// its table rounds up to a power of two and is at most 7/8 full.
#[derive(Debug, Default)]
struct Index {
    /// Every container the index knows, by number.
    ids: Vec<ContainerId>,
    numbers: IdMap<ContainerId, u32>,
    /// The first location of every chunk, sorted by id (once loaded).
    sorted: Vec<(ChunkId, Slot)>,
    /// `sorted[dir[b]..dir[b + 1]]` are the ids whose first two bytes are `b`.
    dir: Vec<u32>,
    /// Chunks added since the last merge.
    recent: IdMap<ChunkId, Slot>,
    /// Further copies of a chunk (a chunk stored again because its first
    /// container went bad): rare, so kept apart.
    spares: IdMap<ChunkId, Vec<Slot>>,
    /// Containers that are missing, of the wrong size, or found damaged by a
    /// verification: their chunks are known but not used for dedup or reads.
    bad: IdMap<ContainerId, String>,
    /// Containers this process deleted (garbage collection): gone, not
    /// damaged, so neither used nor reported.
    removed: IdSet<ContainerId>,
    /// The key generation each container is sealed under (absent: 1).
    gens: IdMap<ContainerId, u32>,
}

/// Chunks the recent map holds at least before a merge.
const MERGE_MIN: usize = 1 << 13;

fn bucket(id: &ChunkId) -> usize {
    usize::from(u16::from_be_bytes([id.0[0], id.0[1]]))
}

impl Index {
    fn number(&mut self, container: ContainerId) -> u32 {
        let next = self.ids.len() as u32;
        let n = *self.numbers.entry(container).or_insert(next);
        if n == next {
            self.ids.push(container);
        }
        n
    }

    /// The slots of a container's table; entries that cannot be right mark
    /// the container bad.
    fn slots<'e>(
        &mut self,
        container: ContainerId,
        entries: &'e [TableEntry],
    ) -> Vec<(&'e ChunkId, Slot)> {
        let n = self.number(container);
        let mut out = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let Ok(offset) = u32::try_from(e.offset) else {
                // No container Coffer writes is this large: the table lies.
                self.bad
                    .entry(container)
                    .or_insert_with(|| format!("chunk {} lies beyond 4 GiB", e.id));
                continue;
            };
            out.push((
                &e.id,
                Slot {
                    container: n,
                    index: i as u32,
                    offset,
                    stored_len: e.stored_len,
                    raw_len: e.raw_len,
                    flags: e.flags,
                },
            ));
        }
        out
    }

    /// While loading: appends without sorting; [`Index::finish_load`] sorts.
    fn load(&mut self, container: ContainerId, entries: &[TableEntry]) {
        let slots = self.slots(container, entries);
        self.sorted
            .extend(slots.into_iter().map(|(id, s)| (*id, s)));
    }

    /// Sorts what [`Index::load`] appended; later copies of a chunk become spares.
    fn finish_load(&mut self) {
        self.sorted.sort_unstable_by(|a, b| {
            (a.0, a.1.container, a.1.index).cmp(&(b.0, b.1.container, b.1.index))
        });
        let mut w = 0;
        for r in 0..self.sorted.len() {
            if w > 0 && self.sorted[w - 1].0 == self.sorted[r].0 {
                let (id, s) = self.sorted[r];
                self.spares.entry(id).or_default().push(s);
            } else {
                self.sorted[w] = self.sorted[r];
                w += 1;
            }
        }
        self.sorted.truncate(w);
        self.sorted.shrink_to_fit();
        self.rebuild_dir();
    }

    fn rebuild_dir(&mut self) {
        self.dir.clear();
        self.dir.resize((1 << 16) + 1, 0);
        for (id, _) in &self.sorted {
            self.dir[bucket(id) + 1] += 1;
        }
        for b in 0..(1 << 16) {
            self.dir[b + 1] += self.dir[b];
        }
    }

    /// A container committed by this process.
    fn add(&mut self, container: ContainerId, entries: &[TableEntry]) {
        for (id, slot) in self.slots(container, entries) {
            if self.first(id).is_some() {
                self.spares.entry(*id).or_default().push(slot);
            } else {
                self.recent.insert(*id, slot);
            }
        }
        if self.recent.len() >= MERGE_MIN.max(self.sorted.len() / 16) {
            self.merge();
        }
    }

    /// Moves the recent chunks into the sorted array (merging from the back,
    /// in place: no second copy of the array).
    fn merge(&mut self) {
        let mut add: Vec<(ChunkId, Slot)> = self.recent.drain().collect();
        add.sort_unstable_by_key(|a| a.0);
        let old = self.sorted.len();
        self.sorted.reserve_exact(add.len());
        self.sorted
            .resize(old + add.len(), (ChunkId([0; 32]), Slot::default()));
        let (mut i, mut j, mut k) = (old, add.len(), old + add.len());
        while j > 0 {
            if i > 0 && self.sorted[i - 1].0 > add[j - 1].0 {
                self.sorted[k - 1] = self.sorted[i - 1];
                i -= 1;
            } else {
                self.sorted[k - 1] = add[j - 1];
                j -= 1;
            }
            k -= 1;
        }
        self.rebuild_dir();
        self.recent.shrink_to(MERGE_MIN);
    }

    /// Calls `f` for every copy of every chunk: the sorted array, the
    /// recent map, the spares.
    fn each_slot(&self, mut f: impl FnMut(&ChunkId, &Slot)) {
        for (id, s) in &self.sorted {
            f(id, s);
        }
        for (id, s) in &self.recent {
            f(id, s);
        }
        for (id, slots) in &self.spares {
            for s in slots {
                f(id, s);
            }
        }
    }

    /// The first known location of `id`, sound or not.
    fn first(&self, id: &ChunkId) -> Option<&Slot> {
        if let Some(s) = self.recent.get(id) {
            return Some(s);
        }
        if self.dir.is_empty() {
            return None;
        }
        let b = bucket(id);
        let part = &self.sorted[self.dir[b] as usize..self.dir[b + 1] as usize];
        part.binary_search_by(|(k, _)| k.cmp(id))
            .ok()
            .map(|i| &part[i].1)
    }

    fn loc(&self, id: &ChunkId, s: &Slot) -> ChunkLoc {
        ChunkLoc {
            container: self.ids[s.container as usize],
            index: s.index,
            entry: TableEntry {
                id: *id,
                offset: u64::from(s.offset),
                stored_len: s.stored_len,
                raw_len: s.raw_len,
                flags: s.flags,
            },
        }
    }

    /// A location of `id` in a container that is not bad.
    fn usable(&self, id: &ChunkId) -> Option<ChunkLoc> {
        let good = |s: &&Slot| self.sound(&self.ids[s.container as usize]);
        self.first(id)
            .filter(good)
            .or_else(|| self.spares.get(id)?.iter().find(good))
            .map(|s| self.loc(id, s))
    }

    /// Whether a container may be read and deduplicated against: neither
    /// bad nor removed.
    fn sound(&self, c: &ContainerId) -> bool {
        !self.bad.contains_key(c) && !self.removed.contains(c)
    }

    /// Chunks indexed (first locations).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.sorted.len() + self.recent.len()
    }
}

/// An opened store.
pub struct Repo {
    blobs: Arc<dyn BlobStore>,
    config: StoreConfig,
    master: MasterKey,
    ids: ChunkIdKey,
    chunker: Chunker,
    manifest_chunker: Chunker,
    index: RwLock<Index>,
    pending: Mutex<IdSet<ChunkId>>,
    /// The garbage collection generation the index was loaded at.
    gc_generation: AtomicU64,
    /// The data keys (generation 2 on), as loaded from `datakeys/`.
    data_keys: RwLock<Arc<DataKeys>>,
}

/// Where the data keys live: `datakeys/<generation, 8 decimal digits>`,
/// each wrapped by the master key (docs/formats/store.md).
const DATA_KEY_PREFIX: &str = "datakeys/";

/// The generation of a container whose header cannot be read.
const UNKNOWN_GENERATION: u32 = u32::MAX;

/// The object holding data key generation `generation`.
pub fn data_key_object(generation: u32) -> String {
    format!("{DATA_KEY_PREFIX}{generation:08}")
}

/// A store's data keys by generation.
#[derive(Default)]
struct DataKeys {
    keys: std::collections::BTreeMap<u32, DataKey>,
}

/// The master key and the data keys: every container key.
struct Ring<'a> {
    master: &'a MasterKey,
    data: Arc<DataKeys>,
}

impl Ring<'_> {
    /// The generation new containers are sealed under: the newest.
    fn current(&self) -> u32 {
        self.data
            .keys
            .keys()
            .next_back()
            .copied()
            .unwrap_or_else(|| self.master.generation())
    }
}

impl ContainerKeys for Ring<'_> {
    fn container_key_at(&self, generation: u32, id: &ContainerId) -> Result<ObjectKey> {
        if generation == self.master.generation() {
            return Ok(self.master.container_key(id));
        }
        self.data
            .keys
            .get(&generation)
            .map(|k| k.container_key(id))
            .ok_or(Error::KeyUnavailable { generation })
    }
}

/// One data key generation as `key status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeyInfo {
    /// Its generation (1: the master key's own derivation).
    pub generation: u32,
    /// Its public id.
    pub key_id: String,
    /// When it was created (`None` for generation 1).
    pub created_ms: Option<i64>,
    /// Containers sealed under it.
    pub containers: u64,
    /// Whether new containers are sealed under it.
    pub current: bool,
}

/// Where garbage collection announces itself: `gc/<generation, 20 decimal
/// digits>`. A collection raises the generation to an odd number before it
/// deletes anything and to the next even number when it is done; an index
/// loaded at another generation, or at an odd one (during a collection, or
/// after one that was killed), may name deleted containers and is loaded
/// again before the next backup deduplicates against it.
const GC_PREFIX: &str = "gc/";

fn gc_key(generation: u64) -> String {
    format!("{GC_PREFIX}{generation:020}")
}

fn lock_err<T>(_: T) -> Error {
    Error::Codec("internal lock poisoned by a panicked thread".into())
}

impl Repo {
    /// Creates a store in `blobs` (which must not hold one) with a new master
    /// key sealed under `pass`.
    pub fn init(blobs: Arc<dyn BlobStore>, pass: &Passphrase, opts: InitOptions) -> Result<Repo> {
        if blobs.get(CONFIG_KEY).is_ok() {
            return Err(Error::StoreExists(blobs.describe()));
        }
        let mut id = [0u8; 16];
        coffer_keys::random_bytes(&mut id)?;
        let config = StoreConfig {
            store_id: StoreId(id),
            container_size: opts.container_size,
            chunker: opts.chunker,
            zstd_level: opts.zstd_level,
        };
        // Validate by round-tripping before anything is written.
        let encoded = config.encode();
        StoreConfig::decode(&encoded)?;
        let master = MasterKey::generate(1)?;
        let keyfile = master.seal(pass, opts.kdf)?;
        blobs.put(&key_file_key(1), &keyfile)?;
        // The config is written last: a store exists once its config does.
        blobs.put(CONFIG_KEY, &encoded)?;
        Repo::with_key(blobs, config, master)
    }

    /// Opens the store in `blobs` with `pass`.
    pub fn open(blobs: Arc<dyn BlobStore>, pass: &Passphrase) -> Result<Repo> {
        let config = StoreConfig::read(blobs.as_ref())?;
        let keys = blobs.list("keys/")?;
        if keys.is_empty() {
            return Err(Error::Corrupt {
                what: format!("store '{}'", blobs.describe()),
                reason: "it has no key file".into(),
            });
        }
        let mut last = None;
        for k in keys {
            let bytes = blobs.get(&k)?;
            match MasterKey::unseal(&bytes, pass) {
                Ok(master) => return Repo::with_key(blobs, config, master),
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .map(Error::from)
            .unwrap_or(Error::NotAStore(blobs.describe())))
    }

    fn with_key(blobs: Arc<dyn BlobStore>, config: StoreConfig, master: MasterKey) -> Result<Repo> {
        let seed = master.chunker_seed();
        let repo = Repo {
            ids: master.chunk_id_hasher(),
            chunker: Chunker::new(config.chunker, seed)?,
            manifest_chunker: Chunker::new(ChunkerParams::MANIFEST, seed)?,
            blobs,
            config,
            master,
            index: RwLock::new(Index::default()),
            pending: Mutex::new(IdSet::default()),
            gc_generation: AtomicU64::new(0),
            data_keys: RwLock::new(Arc::new(DataKeys::default())),
        };
        repo.load_data_keys()?;
        repo.load_index()?;
        Ok(repo)
    }

    /// The master key, for wrapping keys bound to this store (media sets).
    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// The key file objects (`keys/…`): each a copy of the master key
    /// sealed under a passphrase.
    pub fn key_files(&self) -> Result<Vec<String>> {
        self.blobs.list("keys/")
    }

    /// Re-wraps the master key under a new passphrase without touching any
    /// data: writes a new key file, checks that it opens with `pass`, then
    /// deletes every other key file (the old passphrase no longer opens the
    /// store). Returns the new key file's name.
    pub fn rewrap(&self, pass: &Passphrase, kdf: coffer_keys::KdfParams) -> Result<String> {
        let old = self.key_files()?;
        let key = key_file_key(next_slot(&old));
        let sealed = self.master.seal(pass, kdf)?;
        let back = MasterKey::unseal(&sealed, pass)?;
        if back.key_id() != self.master.key_id() {
            return Err(Error::Codec(
                "the new key file does not hold this store's key".into(),
            ));
        }
        self.blobs.put(&key, &sealed)?;
        for k in old {
            self.blobs.delete(&k)?;
        }
        Ok(key)
    }

    /// Opens the store in `blobs` with its master key itself (from an
    /// escrow copy), checking that the key is this store's: every snapshot
    /// record it reads must open with it.
    pub fn open_with_master(blobs: Arc<dyn BlobStore>, master: MasterKey) -> Result<Repo> {
        let config = StoreConfig::read(blobs.as_ref())?;
        let repo = Repo::with_key(blobs, config, master)?;
        for id in repo.snapshot_ids()?.iter().take(3) {
            repo.load_snapshot(id)?;
        }
        if repo.snapshot_ids()?.is_empty() && !repo.bad_containers()?.is_empty() {
            return Err(Error::Codec(
                "this key does not open the store's containers".into(),
            ));
        }
        Ok(repo)
    }

    /// Writes another key file: the master key sealed under `pass` (after
    /// an escrow import). Returns its name.
    pub fn add_key_file(&self, pass: &Passphrase, kdf: coffer_keys::KdfParams) -> Result<String> {
        let key = key_file_key(next_slot(&self.key_files()?));
        self.blobs.put(&key, &self.master.seal(pass, kdf)?)?;
        Ok(key)
    }

    /// The blob store underneath.
    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }

    /// The config.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The data chunker.
    pub fn chunker(&self) -> &Chunker {
        &self.chunker
    }

    /// The chunk id of `data`.
    pub fn chunk_id(&self, data: &[u8]) -> ChunkId {
        self.ids.id(data)
    }

    /// A keyed hasher for whole-file content hashes.
    pub fn content_hasher(&self) -> blake3::Hasher {
        self.ids.hasher()
    }

    /// Loads the chunk index from the index objects; a sealed container with
    /// no index object (a backup killed between the two writes) is read from
    /// its own table and its index object written.
    fn load_index(&self) -> Result<()> {
        // The generation is read first: a collection that starts while the
        // index loads raises it, and the next refresh loads again.
        let generation = self.current_gc_generation()?;
        let mut idx = Index::default();
        let data: HashMap<ContainerId, String> =
            list_data(self.blobs.as_ref())?.into_iter().collect();
        let mut indexed = HashSet::new();
        // The array is sized once from the index objects' sizes: growing
        // it by doubling would briefly hold two copies.
        let objects = list_index(self.blobs.as_ref())?;
        let estimate: u64 = objects
            .iter()
            .map(|(_, key)| self.blobs.size(key).unwrap_or(0) / container::TABLE_ENTRY_LEN as u64)
            .sum();
        idx.sorted
            .reserve_exact(usize::try_from(estimate).unwrap_or(0));
        for (id, key) in objects {
            let parsed = self.blobs.get(&key).and_then(|b| IndexObject::parse(&b));
            let ring = self.ring()?;
            let obj = match parsed.and_then(|o| o.open(&ring).map(|t| (o, t))) {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(container = %id, error = %e, "index object unreadable; reading the container's own table");
                    continue;
                }
            };
            let (obj, table) = obj;
            if obj.id != id {
                tracing::warn!(container = %id, names = %obj.id, "index object is filed under another container's name; ignored");
                continue;
            }
            match data.get(&id) {
                None => {
                    idx.bad.insert(id, "container object is missing".into());
                }
                Some(dk) => {
                    let size = self.blobs.size(dk)?;
                    if size != obj.container_len {
                        idx.bad.insert(
                            id,
                            format!(
                                "container is {size} bytes, its index says {}",
                                obj.container_len
                            ),
                        );
                    }
                }
            }
            indexed.insert(id);
            idx.gens.insert(id, obj.generation);
            idx.load(id, &table);
        }
        for (id, key) in &data {
            if indexed.contains(id) {
                continue;
            }
            match self.read_container_table(key) {
                Ok((table, sealed_index, generation)) => {
                    idx.gens.insert(*id, generation);
                    idx.load(*id, &table);
                    match self.blobs.put(&index_key(id), &sealed_index) {
                        Ok(()) | Err(Error::AlreadyExists { .. }) => {}
                        Err(e) => {
                            tracing::warn!(container = %id, error = %e, "could not write the index object")
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(container = %id, error = %e, "container unreadable; its chunks are not used");
                    idx.bad.insert(*id, e.to_string());
                    idx.number(*id);
                    // Its key generation from the cleartext header, if that
                    // much reads: no data key is destroyed while an
                    // unreadable container might be sealed under it.
                    let generation = self
                        .blobs
                        .get_range(key, 0, 16)
                        .ok()
                        .filter(|h| h.len() == 16 && h[..8] == magic::CONTAINER_V1)
                        .map_or(UNKNOWN_GENERATION, |h| {
                            u32::from_le_bytes([h[12], h[13], h[14], h[15]])
                        });
                    idx.gens.insert(*id, generation);
                }
            }
        }
        idx.finish_load();
        *self.index.write().map_err(lock_err)? = idx;
        self.gc_generation.store(generation, Ordering::SeqCst);
        Ok(())
    }

    /// The store's garbage collection generation now (0: never collected).
    pub fn current_gc_generation(&self) -> Result<u64> {
        Ok(self
            .blobs
            .list(GC_PREFIX)?
            .iter()
            .filter_map(|k| k.strip_prefix(GC_PREFIX)?.parse::<u64>().ok())
            .max()
            .unwrap_or(0))
    }

    /// Loads the data keys again (a rotation by another process), and the
    /// index if a garbage collection ran (or was running, or was killed)
    /// since it was loaded; call with the store lock held shared, before
    /// deduplicating or reading. Returns whether the index was loaded.
    pub fn refresh(&self) -> Result<bool> {
        // A rotation by another process: new containers go under its key.
        self.load_data_keys()?;
        let loaded = self.gc_generation.load(Ordering::SeqCst);
        if loaded.is_multiple_of(2) && loaded == self.current_gc_generation()? {
            return Ok(false);
        }
        tracing::info!(store = %self.blobs.describe(), "garbage collection ran since the index was loaded: loading it again");
        self.load_index()?;
        Ok(true)
    }

    /// Loads the data keys (`datakeys/…`). One that does not open under the
    /// master key is left out with a warning: containers sealed under it
    /// report [`Error::KeyUnavailable`].
    fn load_data_keys(&self) -> Result<()> {
        let mut dk = DataKeys::default();
        for key in self.blobs.list(DATA_KEY_PREFIX)? {
            let bytes = self.blobs.get(&key)?;
            match DataKey::unwrap(&bytes, &self.master, &self.config.store_id.0) {
                Ok(k) if data_key_object(k.generation()) == key => {
                    dk.keys.insert(k.generation(), k);
                }
                Ok(k) => {
                    tracing::warn!(object = %key, generation = k.generation(), "data key filed under another generation's name; ignored")
                }
                Err(e) => {
                    tracing::warn!(object = %key, error = %e, "data key does not open under the master key; ignored")
                }
            }
        }
        *self.data_keys.write().map_err(lock_err)? = Arc::new(dk);
        Ok(())
    }

    /// Opens an index object's table with this store's keys (any key
    /// generation it holds).
    pub fn open_index_object(&self, bytes: &[u8]) -> Result<(IndexObject, Vec<TableEntry>)> {
        let obj = IndexObject::parse(bytes)?;
        let table = obj.open(&self.ring()?)?;
        Ok((obj, table))
    }

    /// Loads the data keys and the index again, whatever changed: garbage
    /// collection calls it under the exclusive store lock so that it sees
    /// every container any process committed.
    pub fn reload(&self) -> Result<()> {
        self.load_data_keys()?;
        self.load_index()
    }

    fn ring(&self) -> Result<Ring<'_>> {
        Ok(Ring {
            master: &self.master,
            data: self.data_keys.read().map_err(lock_err)?.clone(),
        })
    }

    /// The key generation new containers are sealed under.
    pub fn data_generation(&self) -> Result<u32> {
        Ok(self.ring()?.current())
    }

    /// The key generation container `id` is sealed under.
    pub fn container_generation(&self, id: &ContainerId) -> Result<u32> {
        Ok(self
            .index
            .read()
            .map_err(lock_err)?
            .gens
            .get(id)
            .copied()
            .unwrap_or_else(|| self.master.generation()))
    }

    /// Every key generation: the master's own (1) and each data key, with
    /// the containers sealed under it.
    pub fn data_keys(&self) -> Result<Vec<DataKeyInfo>> {
        let ring = self.ring()?;
        let current = ring.current();
        let mut counts: HashMap<u32, u64> = HashMap::new();
        {
            let idx = self.index.read().map_err(lock_err)?;
            for c in idx.ids.iter().filter(|c| !idx.removed.contains(c)) {
                let g = idx.gens.get(c).copied().unwrap_or(self.master.generation());
                *counts.entry(g).or_default() += 1;
            }
        }
        let mut out = vec![DataKeyInfo {
            generation: self.master.generation(),
            key_id: self.master.key_id(),
            created_ms: None,
            containers: counts.get(&self.master.generation()).copied().unwrap_or(0),
            current: current == self.master.generation(),
        }];
        for (g, k) in &ring.data.keys {
            out.push(DataKeyInfo {
                generation: *g,
                key_id: k.key_id(),
                created_ms: Some(k.created_ms()),
                containers: counts.get(g).copied().unwrap_or(0),
                current: *g == current,
            });
        }
        Ok(out)
    }

    /// Starts a new data key generation: new containers are sealed under a
    /// fresh random key from now on; older ones keep theirs. Returns it.
    pub fn rotate_data_key(&self, now_ms: i64) -> Result<DataKeyInfo> {
        self.load_data_keys()?;
        let next = self.ring()?.current().max(self.master.generation()) + 1;
        let key = DataKey::generate(next, now_ms)?;
        self.blobs.put(
            &data_key_object(next),
            &key.wrap(&self.master, &self.config.store_id.0)?,
        )?;
        self.load_data_keys()?;
        if self.ring()?.current() != next {
            return Err(Error::Codec(format!(
                "data key generation {next} was written but does not open"
            )));
        }
        Ok(DataKeyInfo {
            generation: next,
            key_id: key.key_id(),
            created_ms: Some(now_ms),
            containers: 0,
            current: true,
        })
    }

    /// Destroys data key generation `generation` (crypto-shredding): its
    /// wrapped copy is deleted, so nothing sealed under it can be read
    /// again. Refused for the current generation, for the master key's own,
    /// and while any container is sealed under it (garbage collection
    /// re-encrypts or deletes them first). Returns the key's id.
    pub fn destroy_data_key(&self, generation: u32) -> Result<String> {
        let ring = self.ring()?;
        // A refusal, not a failure of the data: named with the store.
        let refuse = |why: String| {
            Err(Error::Backend {
                store: self.blobs.describe(),
                reason: format!("data key generation {generation} is not destroyed: {why}"),
            })
        };
        if generation == self.master.generation() {
            return refuse(
                "it is the master key's own derivation; it goes only with the store".into(),
            );
        }
        let Some(k) = ring.data.keys.get(&generation) else {
            return Err(Error::KeyUnavailable { generation });
        };
        if generation == ring.current() {
            return refuse("new data is sealed under it; rotate first".into());
        }
        let n = self
            .data_keys()?
            .iter()
            .find(|d| d.generation == generation)
            .map_or(0, |d| d.containers);
        if n > 0 {
            return refuse(format!("{n} container(s) are still sealed under it"));
        }
        let unknown = {
            let idx = self.index.read().map_err(lock_err)?;
            idx.ids
                .iter()
                .filter(|c| !idx.removed.contains(c))
                .filter(|c| idx.gens.get(c) == Some(&UNKNOWN_GENERATION))
                .count()
        };
        if unknown > 0 {
            return refuse(format!(
                "{unknown} container(s) have a header that cannot be read, so they may be sealed under it; nothing is destroyed until they are repaired or removed"
            ));
        }
        let id = k.key_id();
        drop(ring);
        self.blobs.delete(&data_key_object(generation))?;
        self.load_data_keys()?;
        Ok(id)
    }

    /// Announces a garbage collection (the store lock held exclusive):
    /// raises the generation to an odd number before anything is deleted.
    /// Returns it.
    pub fn begin_gc(&self) -> Result<u64> {
        let current = self.current_gc_generation()?;
        let next = if current.is_multiple_of(2) {
            current + 1
        } else {
            current + 2
        };
        self.set_gc_generation(next)?;
        Ok(next)
    }

    /// Ends a garbage collection begun at `generation`: the next even
    /// generation, which this `Repo`'s index (kept up to date by the
    /// collection itself) is current with.
    pub fn end_gc(&self, generation: u64) -> Result<()> {
        self.set_gc_generation(generation + 1)?;
        self.gc_generation.store(generation + 1, Ordering::SeqCst);
        Ok(())
    }

    fn set_gc_generation(&self, generation: u64) -> Result<()> {
        match self.blobs.put(&gc_key(generation), b"") {
            Ok(()) | Err(Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
        for k in self.blobs.list(GC_PREFIX)? {
            if k != gc_key(generation) {
                self.blobs.delete(&k)?;
            }
        }
        Ok(())
    }

    /// Reads a container's table from the container itself and rebuilds the
    /// index object that mirrors it.
    fn read_container_table(&self, key: &str) -> Result<(Vec<TableEntry>, Vec<u8>, u32)> {
        let bytes = self.blobs.get(key)?;
        let (info, table) = self.open_container(&bytes)?;
        let index = container::index_object_for(&self.ring()?, &info, bytes.len() as u64, &table)?;
        Ok((table, index, info.generation))
    }

    /// Checks a whole container's structure and hash and opens its table.
    fn open_container(&self, bytes: &[u8]) -> Result<(ContainerInfo, Vec<TableEntry>)> {
        let info = container::check_container(bytes)?;
        let table = container::open_table(&self.ring()?, bytes, &info)?;
        Ok((info, table))
    }

    /// Whether the caller should store chunk `id`: true exactly once per id
    /// that no usable container holds.
    pub fn claim(&self, id: &ChunkId) -> Result<bool> {
        if self.index.read().map_err(lock_err)?.usable(id).is_some() {
            return Ok(false);
        }
        Ok(self.pending.lock().map_err(lock_err)?.insert(*id))
    }

    /// Where a chunk is (usable containers only).
    pub fn locate(&self, id: &ChunkId) -> Result<Option<ChunkLoc>> {
        Ok(self.index.read().map_err(lock_err)?.usable(id))
    }

    /// Marks containers as damaged (a verification found them so): their
    /// chunks are no longer used for dedup or reads, so the next backup
    /// stores that data again and reads prefer the new copy.
    pub fn mark_bad(&self, found: &[(ContainerId, String)]) -> Result<()> {
        let mut idx = self.index.write().map_err(lock_err)?;
        for (id, why) in found {
            idx.bad.entry(*id).or_insert_with(|| why.clone());
        }
        Ok(())
    }

    /// Containers not used for dedup or reads (missing, of the wrong size,
    /// or marked bad), with the reason; not those this process removed.
    pub fn bad_containers(&self) -> Result<HashMap<ContainerId, String>> {
        let idx = self.index.read().map_err(lock_err)?;
        Ok(idx
            .bad
            .iter()
            .filter(|(k, _)| !idx.removed.contains(k))
            .map(|(k, v)| (*k, v.clone()))
            .collect())
    }

    /// Every container the index knows, except those this process removed.
    pub fn container_ids(&self) -> Result<Vec<ContainerId>> {
        let idx = self.index.read().map_err(lock_err)?;
        Ok(idx
            .ids
            .iter()
            .filter(|c| !idx.removed.contains(c))
            .copied()
            .collect())
    }

    /// A new container builder for this store, compressing at the store's
    /// zstd level.
    pub fn new_container(&self) -> Result<ContainerBuilder> {
        self.new_container_at(self.config.zstd_level)
    }

    /// A new container builder compressing at `zstd_level` (1 to 19); the
    /// level is not part of the format, so one store holds containers of
    /// several levels and reads them all alike.
    pub fn new_container_at(&self, zstd_level: i32) -> Result<ContainerBuilder> {
        let ring = self.ring()?;
        ContainerBuilder::at_generation(
            &ring,
            ring.current(),
            &self.config.store_id,
            zstd_level.clamp(1, 19),
            DRAIN_AT + (1 << 16),
        )
    }

    /// Stores a sealed container, whose drained bytes went to `data` (the
    /// writer of its data object), and its index object; then makes its
    /// chunks visible to dedup and reads.
    pub fn commit(
        &self,
        sealed: SealedContainer,
        mut data: Box<dyn ObjectWriter + '_>,
    ) -> Result<()> {
        data.write(&sealed.bytes)?;
        data.commit()?;
        match self.blobs.put(&index_key(&sealed.id), &sealed.index_object) {
            // Another process opening the store between our two writes
            // rebuilt the index object from the container: same bytes.
            Ok(()) | Err(Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
        {
            let mut idx = self.index.write().map_err(lock_err)?;
            idx.gens.insert(sealed.id, sealed.generation);
            idx.add(sealed.id, &sealed.entries);
        }
        let mut pending = self.pending.lock().map_err(lock_err)?;
        for e in &sealed.entries {
            pending.remove(&e.id);
        }
        Ok(())
    }

    /// Gives up claims on chunks that will not be stored (an aborted
    /// backup), so a later backup with this `Repo` stores them itself.
    pub fn release(&self, ids: &[ChunkId]) {
        if let Ok(mut pending) = self.pending.lock() {
            for id in ids {
                pending.remove(id);
            }
        }
    }

    /// Reads, decrypts, decompresses and authenticates a chunk.
    pub fn read_chunk(&self, id: &ChunkId) -> Result<Vec<u8>> {
        let loc = self.locate(id)?.ok_or(Error::MissingChunk(*id))?;
        let rec = self.blobs.get_range(
            &data_key(&loc.container),
            loc.entry.offset,
            u64::from(loc.entry.stored_len),
        )?;
        let generation = self.container_generation(&loc.container)?;
        let key = self.ring()?.container_key_at(generation, &loc.container)?;
        let raw = container::open_record(&key, u64::from(loc.index), &loc.entry, &rec)?;
        if self.ids.id(&raw) != *id {
            return Err(Error::Corrupt {
                what: format!("chunk {id}"),
                reason: "content does not match its id".into(),
            });
        }
        Ok(raw)
    }

    /// Reads a whole container and checks every record: hash, authentication,
    /// decompression and chunk id. Returns the problems found (empty = sound).
    ///
    /// The container is streamed, one record in memory at a time: its header,
    /// trailer and table are read first, then every byte once in order, both
    /// to re-hash the whole object against its trailer and to open each record.
    pub fn read_check_container(&self, id: &ContainerId) -> Result<Vec<String>> {
        match self.stream_check_container(id) {
            Ok(problems) => Ok(problems),
            Err(Error::NotFound { .. }) => Ok(vec!["container object is missing".into()]),
            // An unreadable or malformed container (EIO, truncation, a bad
            // table) is a finding, not the end of the check.
            Err(e) => Ok(vec![e.to_string()]),
        }
    }

    fn stream_check_container(&self, id: &ContainerId) -> Result<Vec<String>> {
        let key = data_key(id);
        let total = self.blobs.size(&key)?;
        if total < (container::HEADER_LEN + container::TRAILER_LEN) as u64 {
            return Err(Error::Corrupt {
                what: format!("container {id}"),
                reason: format!("only {total} bytes: truncated"),
            });
        }
        let header = self
            .blobs
            .get_range(&key, 0, container::HEADER_LEN as u64)?;
        let trailer = self.blobs.get_range(
            &key,
            total - container::TRAILER_LEN as u64,
            container::TRAILER_LEN as u64,
        )?;
        let info = container::parse_container(&header, &trailer, total)?;
        let table_ct = self
            .blobs
            .get_range(&key, info.table_offset, u64::from(info.table_len))?;
        let ring = self.ring()?;
        let table = container::open_table_parts(&ring, &header, &table_ct, &info)?;
        let ckey = ring.container_key_at(info.generation, id)?;
        let mut problems = Vec::new();
        let mut r = self.blobs.reader(&key)?;
        let mut hasher = blake3::Hasher::new();
        let mut pos = 0u64;
        let mut buf = Vec::new();
        // Reads the next `len` bytes into `buf` and the hash.
        let mut next = |len: u64, buf: &mut Vec<u8>, pos: &mut u64| -> Result<()> {
            buf.resize(len as usize, 0);
            r.read_exact(buf).map_err(|e| Error::Truncated {
                key: key.clone(),
                detail: format!("reading {len} bytes at offset {pos}: {e}"),
            })?;
            hasher.update(buf);
            *pos += len;
            Ok(())
        };
        let mut order: Vec<(usize, &TableEntry)> = table.iter().enumerate().collect();
        order.sort_by_key(|(_, e)| e.offset);
        for (i, e) in order {
            if e.offset < pos {
                problems.push(format!("chunk {} overlaps the record before it", e.id));
                continue;
            }
            // Bytes between records (none in a container Coffer wrote) still
            // count for the hash; they are read in bounded pieces.
            while pos < e.offset {
                next((e.offset - pos).min(1 << 20), &mut buf, &mut pos)?;
            }
            next(u64::from(e.stored_len), &mut buf, &mut pos)?;
            match container::open_record(&ckey, i as u64, e, &buf) {
                Ok(raw) if self.ids.id(&raw) == e.id => {}
                Ok(_) => problems.push(format!("chunk {} does not match its id", e.id)),
                Err(err) => problems.push(err.to_string()),
            }
        }
        // The table and the trailer up to its hash.
        let hashed = total - container::UNHASHED_TAIL as u64;
        while pos < hashed {
            next((hashed - pos).min(1 << 20), &mut buf, &mut pos)?;
        }
        if hasher.finalize().as_bytes() != &info.hash {
            problems.push(format!(
                "container {id}: ciphertext hash mismatch (bit rot or modification)"
            ));
        }
        Ok(problems)
    }

    /// Ids of the snapshots in the store (from the object names; no decryption).
    pub fn snapshot_ids(&self) -> Result<Vec<SnapshotId>> {
        Ok(self
            .blobs
            .list("snapshots/")?
            .iter()
            .filter_map(|k| k.strip_prefix("snapshots/")?.parse().ok())
            .collect())
    }

    /// Reads one snapshot record.
    pub fn load_snapshot(&self, id: &SnapshotId) -> Result<SnapshotRecord> {
        let bytes = self.blobs.get(&record_key(id))?;
        let rec = SnapshotRecord::open(&self.master, &bytes)?;
        if rec.info.id != *id {
            return Err(Error::Corrupt {
                what: format!("snapshot record {id}"),
                reason: format!("it names itself {}", rec.info.id),
            });
        }
        Ok(rec)
    }

    /// Removes a snapshot record (prune): the snapshot no longer exists;
    /// what it alone referenced is garbage for [`Repo::remove_container`].
    pub fn delete_snapshot(&self, id: &SnapshotId) -> Result<()> {
        self.blobs.delete(&record_key(id))
    }

    /// Calls `f(container, chunk, stored length)` for every copy of every
    /// chunk the index knows, in usable and bad containers alike (not in
    /// containers this process removed).
    pub fn for_each_chunk(&self, mut f: impl FnMut(&ContainerId, &ChunkId, u32)) -> Result<()> {
        let idx = self.index.read().map_err(lock_err)?;
        idx.each_slot(|id, s| {
            let c = &idx.ids[s.container as usize];
            if !idx.removed.contains(c) {
                f(c, id, s.stored_len);
            }
        });
        Ok(())
    }

    /// Calls `f(container, chunk, position in the container's table, stored
    /// length)` for every copy of every chunk in the containers `want`
    /// selects (usable and bad alike; not those this process removed).
    pub fn for_each_slot(
        &self,
        mut want: impl FnMut(&ContainerId) -> bool,
        mut f: impl FnMut(&ContainerId, &ChunkId, u32, u32),
    ) -> Result<()> {
        let idx = self.index.read().map_err(lock_err)?;
        let selected: Vec<bool> = idx
            .ids
            .iter()
            .map(|c| !idx.removed.contains(c) && want(c))
            .collect();
        idx.each_slot(|id, s| {
            if selected.get(s.container as usize) == Some(&true) {
                f(&idx.ids[s.container as usize], id, s.index, s.stored_len);
            }
        });
        Ok(())
    }

    /// Every copy of chunk `id` as (container, position in its table), in
    /// usable and bad containers alike (not those this process removed).
    pub fn slots(&self, id: &ChunkId) -> Result<Vec<(ContainerId, u32)>> {
        let idx = self.index.read().map_err(lock_err)?;
        Ok(idx
            .first(id)
            .into_iter()
            .chain(idx.spares.get(id).into_iter().flatten())
            .map(|s| (idx.ids[s.container as usize], s.index))
            .filter(|(c, _)| !idx.removed.contains(c))
            .collect())
    }

    /// Whether container `c` is usable (known, not damaged, not removed).
    pub fn is_sound(&self, c: &ContainerId) -> Result<bool> {
        let idx = self.index.read().map_err(lock_err)?;
        Ok(idx.numbers.contains_key(c) && idx.sound(c))
    }

    /// The usable containers holding a copy of chunk `id`.
    pub fn copies(&self, id: &ChunkId) -> Result<Vec<ContainerId>> {
        let idx = self.index.read().map_err(lock_err)?;
        let mut out = Vec::new();
        let slots = idx
            .first(id)
            .into_iter()
            .chain(idx.spares.get(id).into_iter().flatten());
        for s in slots {
            let c = idx.ids[s.container as usize];
            if idx.sound(&c) {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// Deletes a container nothing needs any more (garbage collection): its
    /// index object first, then its data object, so a run killed between
    /// the two leaves a container the next open indexes again from its own
    /// table, and the next collection removes. Its chunks are no longer
    /// used by this `Repo`. Returns the bytes freed.
    pub fn remove_container(&self, id: &ContainerId) -> Result<u64> {
        let data = data_key(id);
        let size = match self.blobs.size(&data) {
            Ok(n) => n,
            Err(Error::NotFound { .. }) => 0,
            Err(e) => return Err(e),
        };
        self.blobs.delete(&index_key(id))?;
        self.blobs.delete(&data)?;
        self.index.write().map_err(lock_err)?.removed.insert(*id);
        Ok(size)
    }

    /// Writes a snapshot record: the commit point of a backup.
    pub fn write_snapshot(&self, rec: &SnapshotRecord) -> Result<()> {
        self.blobs
            .put(&record_key(&rec.info.id), &rec.seal(&self.master)?)
    }

    /// Streams a snapshot's manifest.
    pub fn manifest(&self, rec: &SnapshotRecord) -> ManifestDecoder<ChunkStream<'_>> {
        ManifestDecoder::new(ChunkStream {
            repo: self,
            ids: rec.manifest.clone().into_iter(),
            buf: Vec::new(),
            pos: 0,
        })
    }

    /// Starts a manifest for a new snapshot.
    pub fn manifest_writer(&self) -> ManifestWriter<'_> {
        let mut buf = Vec::new();
        buf.extend_from_slice(&stream_header());
        ManifestWriter {
            packer: Packer::new(self),
            buf,
            chunks: Vec::new(),
            len: 0,
            entries: 0,
        }
    }
}

/// The containers in a store: (id, object key).
fn list_data(blobs: &dyn BlobStore) -> Result<Vec<(ContainerId, String)>> {
    Ok(blobs
        .list("data/")?
        .into_iter()
        .filter_map(|k| Some((k.rsplit('/').next()?.parse().ok()?, k)))
        .collect())
}

/// The index objects in a store: (container id, object key).
fn list_index(blobs: &dyn BlobStore) -> Result<Vec<(ContainerId, String)>> {
    Ok(blobs
        .list("index/")?
        .into_iter()
        .filter_map(|k| Some((k.strip_prefix("index/")?.parse().ok()?, k)))
        .collect())
}

/// The next free key file slot after `files` (`keys/…` names).
fn next_slot(files: &[String]) -> u32 {
    files
        .iter()
        .filter_map(|k| k.strip_prefix("keys/")?.parse::<u32>().ok())
        .max()
        .unwrap_or(0)
        + 1
}

fn key_file_key(generation: u32) -> String {
    format!("keys/{generation:08}")
}

/// Reads the concatenated plaintext of a list of chunks.
pub struct ChunkStream<'a> {
    repo: &'a Repo,
    ids: std::vec::IntoIter<ChunkId>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChunkStream<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            let Some(id) = self.ids.next() else {
                return Ok(0);
            };
            self.buf = self.repo.read_chunk(&id).map_err(std::io::Error::other)?;
            self.pos = 0;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Packs chunks into containers and commits each container as it fills.
/// One per writer thread; chunks must have been [`Repo::claim`]ed.
pub struct Packer<'a> {
    repo: &'a Repo,
    /// The zstd level of the containers it opens.
    level: i32,
    /// The open container and the writer its bytes stream to.
    open: Option<(ContainerBuilder, Box<dyn ObjectWriter + 'a>)>,
    /// Bytes written to containers so far.
    pub stored: u64,
}

impl<'a> Packer<'a> {
    /// A packer with no open container, at the store's zstd level.
    pub fn new(repo: &'a Repo) -> Packer<'a> {
        Packer::with_level(repo, repo.config.zstd_level)
    }

    /// A packer compressing at `zstd_level` instead (the engine's tuning
    /// picks it from the self-benchmark to meet a throughput target).
    pub fn with_level(repo: &'a Repo, zstd_level: i32) -> Packer<'a> {
        Packer {
            repo,
            level: zstd_level,
            open: None,
            stored: 0,
        }
    }

    /// Adds a claimed chunk.
    pub fn add(&mut self, id: ChunkId, raw: &[u8]) -> Result<()> {
        let (b, w) = match &mut self.open {
            Some(open) => open,
            None => {
                let b = self.repo.new_container_at(self.level)?;
                let w = self.repo.blobs.create(&data_key(&b.id()))?;
                self.open.insert((b, w))
            }
        };
        self.stored += u64::from(b.add(id, raw)?);
        if b.len() >= self.repo.config.container_size as usize || b.records() >= MAX_RECORDS {
            return self.flush();
        }
        if b.pending() >= DRAIN_AT
            && let Err(e) = b.drain(&mut |bytes| w.write(bytes))
        {
            if let Some((b, _)) = self.open.take() {
                self.repo.release(&b.chunk_ids());
            }
            return Err(e);
        }
        Ok(())
    }

    /// Seals and commits the open container, if any.
    pub fn flush(&mut self) -> Result<()> {
        if let Some((b, w)) = self.open.take()
            && !b.is_empty()
        {
            let ids = b.chunk_ids();
            if let Err(e) = b.seal().and_then(|sealed| self.repo.commit(sealed, w)) {
                self.repo.release(&ids);
                return Err(e);
            }
        }
        Ok(())
    }
}

impl Drop for Packer<'_> {
    /// Chunks in a container that was never sealed are released.
    fn drop(&mut self) {
        if let Some((b, _)) = self.open.take() {
            self.repo.release(&b.chunk_ids());
        }
    }
}

/// A container is sealed at this many records even below its size: a
/// container's table is read and written whole (sealing, index objects,
/// loading), so many tiny chunks (small files) would otherwise make tables
/// of several MiB.
pub const MAX_RECORDS: usize = 1 << 14;

/// A packer hands its open container's bytes to the store's writer every
/// this many bytes, so memory per packer stays small whatever the
/// container size.
const DRAIN_AT: usize = 1 << 20;

/// Writes a manifest stream as chunks.
pub struct ManifestWriter<'a> {
    packer: Packer<'a>,
    buf: Vec<u8>,
    chunks: Vec<ChunkId>,
    len: u64,
    entries: u64,
}

impl ManifestWriter<'_> {
    /// Appends one entry.
    pub fn push(&mut self, e: &Entry) -> Result<()> {
        let mut w = Writer {
            buf: std::mem::take(&mut self.buf),
        };
        e.encode(&mut w);
        self.buf = w.buf;
        self.entries += 1;
        if self.buf.len() >= 4 * ChunkerParams::MANIFEST.max as usize {
            self.cut(false)?;
        }
        Ok(())
    }

    fn cut(&mut self, last: bool) -> Result<()> {
        let repo = self.packer.repo;
        let mut off = 0;
        for l in repo.manifest_chunker.cut(&self.buf, last) {
            let piece = &self.buf[off..off + l];
            let id = repo.chunk_id(piece);
            if repo.claim(&id)? {
                self.packer.add(id, piece)?;
            }
            self.chunks.push(id);
            self.len += l as u64;
            off += l;
        }
        self.buf.drain(..off);
        Ok(())
    }

    /// Entries written so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Ends the stream, seals its container; returns (length, chunk ids, bytes stored).
    pub fn finish(mut self) -> Result<(u64, Vec<ChunkId>, u64)> {
        let end = end_record(self.entries);
        self.buf.extend_from_slice(&end);
        self.cut(true)?;
        self.packer.flush()?;
        Ok((self.len, self.chunks, self.packer.stored))
    }
}

/// What a keyless container check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerCheck {
    /// The container.
    pub id: ContainerId,
    /// Its size, if it exists.
    pub len: Option<u64>,
    /// What is wrong, or `None`.
    pub problem: Option<String>,
}

/// Checks every container without keys: each is read whole, its structure and
/// blake3 trailer checked, and compared with its index object (which also
/// reveals containers that went missing).
pub fn scan_containers(blobs: &dyn BlobStore) -> Result<Vec<ContainerCheck>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (id, key) in list_data(blobs)? {
        seen.insert(id);
        let bytes = match blobs.get(&key) {
            Ok(b) => b,
            Err(e) => {
                out.push(ContainerCheck {
                    id,
                    len: None,
                    problem: Some(e.to_string()),
                });
                continue;
            }
        };
        let problem = match container::check_container(&bytes) {
            Ok(info) if info.id != id => Some(format!("header names container {}", info.id)),
            Err(e) => Some(e.to_string()),
            // A sound container must also agree with its index copy.
            Ok(info) => match blobs.get(&index_key(&id)).map(|b| IndexObject::parse(&b)) {
                Ok(Ok(io)) if io.container_len != bytes.len() as u64 || io.hash != info.hash => {
                    Some("does not match its index object".into())
                }
                Ok(Err(e)) => Some(format!("index object: {e}")),
                _ => None,
            },
        };
        out.push(ContainerCheck {
            id,
            len: Some(bytes.len() as u64),
            problem,
        });
    }
    for (id, _) in list_index(blobs)? {
        if !seen.contains(&id) {
            out.push(ContainerCheck {
                id,
                len: None,
                problem: Some("container object is missing".into()),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Entry, EntryKind, MemStore};
    use coffer_types::{BackupStats, Level, Scope, SnapshotInfo};

    fn entries(seed: u64, n: usize) -> Vec<TableEntry> {
        (0..n)
            .map(|i| {
                let mut id = [0u8; 32];
                id[..8].copy_from_slice(
                    &(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                        ^ (i as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9))
                    .to_le_bytes(),
                );
                id[8..16].copy_from_slice(&(i as u64).to_be_bytes());
                id[31] = seed as u8;
                TableEntry {
                    id: ChunkId(id),
                    offset: 48 + i as u64 * 100,
                    stored_len: 100,
                    raw_len: 200 + i as u32,
                    flags: 1,
                }
            })
            .collect()
    }

    #[test]
    fn the_index_finds_every_chunk_through_loads_and_merges() {
        let mut idx = Index::default();
        let c = |n: u8| ContainerId([n; 16]);
        // loaded, with one chunk in two containers
        let a = entries(1, 3000);
        let mut b = entries(2, 2000);
        b[7] = a[5];
        idx.load(c(1), &a);
        idx.load(c(2), &b);
        idx.finish_load();
        assert_eq!(idx.len(), 4999);
        assert_eq!(idx.usable(&a[5].id).unwrap().container, c(1));
        // added at run time: enough to merge several times
        let mut added = Vec::new();
        for k in 3..40u8 {
            let e = entries(u64::from(k), 700);
            idx.add(c(k), &e);
            added.push((c(k), e));
        }
        assert!(idx.recent.len() < MERGE_MIN.max(idx.sorted.len() / 16));
        assert!(
            idx.sorted.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted, no duplicates"
        );
        for (i, e) in a.iter().enumerate() {
            let l = idx.usable(&e.id).unwrap();
            assert_eq!((l.container, l.index, l.entry), (c(1), i as u32, *e));
        }
        for (cid, es) in &added {
            for (i, e) in es.iter().enumerate() {
                let l = idx.usable(&e.id).unwrap();
                assert_eq!(
                    (l.container, l.index, l.entry.raw_len),
                    (*cid, i as u32, e.raw_len)
                );
            }
        }
        assert!(idx.usable(&ChunkId([0xEE; 32])).is_none());
        // a bad first copy falls back to the spare
        idx.bad.insert(c(1), "rot".into());
        let l = idx.usable(&a[5].id).unwrap();
        assert_eq!((l.container, l.index), (c(2), 7));
        assert!(idx.usable(&a[6].id).is_none());
        // an entry beyond 4 GiB marks its container bad instead of wrapping
        let mut far = entries(99, 1);
        far[0].offset = 5 << 30;
        idx.add(c(99), &far);
        assert!(idx.bad.contains_key(&c(99)));
        assert!(idx.usable(&far[0].id).is_none());
    }

    const FAST: KdfParams = KdfParams {
        m_kib: 256,
        t: 1,
        p: 1,
    };

    fn pass(s: &str) -> Passphrase {
        Passphrase::new(s.as_bytes().to_vec()).unwrap()
    }

    fn opts() -> InitOptions {
        InitOptions {
            container_size: 1 << 20,
            kdf: FAST,
            ..InitOptions::default()
        }
    }

    #[test]
    fn init_open_write_read_and_reopen() {
        let blobs: Arc<dyn BlobStore> = Arc::new(MemStore::new());
        let repo = Repo::init(blobs.clone(), &pass("pw"), opts()).unwrap();
        assert!(matches!(
            Repo::init(blobs.clone(), &pass("pw"), opts()),
            Err(Error::StoreExists(_))
        ));
        // 3 MiB of distinct chunks: several containers at 1 MiB each
        let mut p = Packer::new(&repo);
        let mut ids = Vec::new();
        for i in 0..48u32 {
            // incompressible: blake3's XOF
            let mut data = vec![0u8; 65536];
            blake3::Hasher::new()
                .update(&i.to_le_bytes())
                .finalize_xof()
                .fill(&mut data);
            let id = repo.chunk_id(&data);
            assert!(repo.claim(&id).unwrap());
            assert!(!repo.claim(&id).unwrap(), "claimed twice");
            p.add(id, &data).unwrap();
            ids.push((id, data));
        }
        p.flush().unwrap();
        drop(p);
        assert!(blobs.list("data/").unwrap().len() >= 2);
        assert_eq!(
            blobs.list("data/").unwrap().len(),
            blobs.list("index/").unwrap().len()
        );
        // a manifest and a snapshot record
        let mut mw = repo.manifest_writer();
        mw.push(&Entry::new(EntryKind::Dir, Vec::new())).unwrap();
        let (len, chunks, _) = mw.finish().unwrap();
        let rec = SnapshotRecord {
            info: SnapshotInfo {
                id: SnapshotId([9; 16]),
                asset: "a".into(),
                level: Level::Full,
                time: coffer_types::rfc3339_ms(0),
                started_ms: 0,
                finished_ms: 1,
                reference: None,
                host: "h".into(),
                identity: "i".into(),
                scope: Scope::default(),
                stats: BackupStats::default(),
            },
            manifest_len: len,
            manifest: chunks,
        };
        repo.write_snapshot(&rec).unwrap();
        drop(repo);

        // reopen: the index comes back from index objects, data reads back
        let repo = Repo::open(blobs.clone(), &pass("pw")).unwrap();
        for (id, data) in &ids {
            assert!(!repo.claim(id).unwrap(), "dedup lost after reopen");
            assert_eq!(&repo.read_chunk(id).unwrap(), data);
        }
        assert_eq!(repo.snapshot_ids().unwrap(), vec![SnapshotId([9; 16])]);
        let back = repo.load_snapshot(&SnapshotId([9; 16])).unwrap();
        assert_eq!(back, rec);
        let entries: Vec<Entry> = repo.manifest(&back).collect::<Result<_>>().unwrap();
        assert_eq!(entries.len(), 1);
        assert!(matches!(
            Repo::open(blobs, &pass("nope")),
            Err(Error::Keys(coffer_keys::Error::WrongPassphrase))
        ));
    }

    #[test]
    fn a_container_without_its_index_object_is_recovered() {
        let blobs: Arc<dyn BlobStore> = Arc::new(MemStore::new());
        let repo = Repo::init(blobs.clone(), &pass("pw"), opts()).unwrap();
        let data = vec![42u8; 5000];
        let id = repo.chunk_id(&data);
        assert!(repo.claim(&id).unwrap());
        let mut p = Packer::new(&repo);
        p.add(id, &data).unwrap();
        p.flush().unwrap();
        drop(p);
        drop(repo);
        // simulate a crash between the container write and its index write
        let index = blobs.list("index/").unwrap();
        blobs.delete(&index[0]).unwrap();
        let repo = Repo::open(blobs.clone(), &pass("pw")).unwrap();
        assert!(!repo.claim(&id).unwrap(), "sealed chunk not reused");
        assert_eq!(repo.read_chunk(&id).unwrap(), data);
        assert_eq!(
            blobs.list("index/").unwrap(),
            index,
            "index object rewritten"
        );
    }

    #[test]
    fn claims_of_unsealed_chunks_are_released() {
        let blobs: Arc<dyn BlobStore> = Arc::new(MemStore::new());
        let repo = Repo::init(blobs, &pass("pw"), opts()).unwrap();
        let data = vec![1u8; 100];
        let id = repo.chunk_id(&data);
        assert!(repo.claim(&id).unwrap());
        {
            let mut p = Packer::new(&repo);
            p.add(id, &data).unwrap();
            // dropped without flush: an aborted backup
        }
        assert!(repo.claim(&id).unwrap(), "an unsealed chunk stayed claimed");
        repo.release(&[id]);
        let mut p = Packer::new(&repo);
        assert!(repo.claim(&id).unwrap());
        p.add(id, &data).unwrap();
        p.flush().unwrap();
        assert!(!repo.claim(&id).unwrap());
        assert_eq!(repo.read_chunk(&id).unwrap(), data);
    }

    #[test]
    fn a_chunk_stored_again_is_read_from_its_good_copy() {
        let blobs: Arc<dyn BlobStore> = Arc::new(MemStore::new());
        let repo = Repo::init(blobs.clone(), &pass("pw"), opts()).unwrap();
        let data = vec![5u8; 3000];
        let id = repo.chunk_id(&data);
        let store_once = |repo: &Repo| {
            assert!(repo.claim(&id).unwrap());
            let mut p = Packer::new(repo);
            p.add(id, &data).unwrap();
            p.flush().unwrap();
        };
        store_once(&repo);
        let first = repo.container_ids().unwrap()[0];
        repo.mark_bad(&[(first, "found damaged".into())]).unwrap();
        assert_eq!(repo.locate(&id).unwrap(), None);
        store_once(&repo); // the next backup stores it again
        drop(repo);
        // Whatever order the containers load in, the good copy is used.
        let repo = Repo::open(blobs, &pass("pw")).unwrap();
        repo.mark_bad(&[(first, "found damaged".into())]).unwrap();
        let loc = repo.locate(&id).unwrap().unwrap();
        assert_ne!(loc.container, first);
        assert_eq!(repo.read_chunk(&id).unwrap(), data);
        assert!(!repo.claim(&id).unwrap());
    }

    #[test]
    fn damaged_config_is_refused() {
        let blobs = Arc::new(MemStore::new());
        let b: Arc<dyn BlobStore> = blobs.clone();
        Repo::init(b.clone(), &pass("pw"), opts()).unwrap();
        blobs.corrupt("config", |v| v[30] ^= 1);
        assert!(matches!(
            StoreConfig::read(b.as_ref()),
            Err(Error::Corrupt { .. })
        ));
        blobs.corrupt("config", |v| {
            v[30] ^= 1;
            v[8] = 2;
        });
        assert!(matches!(
            StoreConfig::read(b.as_ref()),
            Err(Error::NewerFormat { found: 2, .. })
        ));
        assert!(matches!(
            StoreConfig::read(&MemStore::new()),
            Err(Error::NotAStore(_))
        ));
    }
}
