//! Containers: chunks compressed, encrypted and appended to one object, sealed
//! once full.
//!
//! A sealed container is immutable and self-describing: it carries its own
//! encrypted chunk table and, in its trailer, a blake3 of everything before
//! it, so a copy without keys (offsite, tape) can be checked for bit rot and
//! the index can be rebuilt from containers alone. Byte map in
//! `docs/formats/store.md`.
//!
//! Encryption: one key per container, derived from its random id
//! ([`coffer_keys::MasterKey::container_key`]); record `i` uses nonce `i`, the
//! table uses `u64::MAX` and the index copy `u64::MAX - 1`. A container holds
//! at most `u32::MAX` records, so no nonce repeats under a key.

use coffer_keys::{MasterKey, ObjectKey, RecordSealer, TAG_LEN};
use coffer_types::{ChunkId, ContainerId, StoreId};

use crate::format::{MAX_CHUNK, Reader, Writer, magic};
use crate::{Error, Result};

/// Header length.
pub const HEADER_LEN: usize = 48;
/// Trailer length.
pub const TRAILER_LEN: usize = 56;
/// The container's last bytes that its blake3 does not cover: the hash
/// itself and the end magic.
pub const UNHASHED_TAIL: usize = 40;
/// Length of one plaintext table entry.
pub const TABLE_ENTRY_LEN: usize = 49;
/// Fixed part of an index object before its encrypted table.
pub const INDEX_HEADER_LEN: usize = 72;
const CONTAINER_VERSION: u16 = 1;
const TABLE_NONCE: u64 = u64::MAX;
const INDEX_NONCE: u64 = u64::MAX - 1;

/// Record flag: the payload is zstd-compressed.
pub const FLAG_ZSTD: u8 = 1;

/// Where a chunk sits inside its container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableEntry {
    /// The chunk's id.
    pub id: ChunkId,
    /// Offset of the record from the container's start.
    pub offset: u64,
    /// Record length: ciphertext plus tag.
    pub stored_len: u32,
    /// Plaintext length.
    pub raw_len: u32,
    /// [`FLAG_ZSTD`] or 0.
    pub flags: u8,
}

/// The object key of a container's data.
pub fn data_key(id: &ContainerId) -> String {
    let h = id.to_hex();
    format!("data/{}/{}", &h[..2], h)
}

/// The object key of a container's index copy.
pub fn index_key(id: &ContainerId) -> String {
    format!("index/{}", id.to_hex())
}

fn header(store: &StoreId, id: &ContainerId, generation: u32) -> Vec<u8> {
    let mut w = Writer::new();
    w.raw(&magic::CONTAINER_V1);
    w.u16(CONTAINER_VERSION);
    w.u16(0);
    w.u32(generation);
    w.raw(&id.0);
    w.raw(&store.0);
    w.buf
}

fn encode_table(entries: &[TableEntry]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u32(entries.len() as u32);
    for e in entries {
        w.raw(&e.id.0);
        w.u64(e.offset);
        w.u32(e.stored_len);
        w.u32(e.raw_len);
        w.u8(e.flags);
    }
    w.buf
}

/// Parses a table; every record must lie between the header and `data_end`
/// (where the table starts).
fn decode_table(plain: &[u8], data_end: u64) -> Result<Vec<TableEntry>> {
    let mut r = Reader::new(plain, "container table");
    let n = r.count(TABLE_ENTRY_LEN)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let e = TableEntry {
            id: ChunkId(r.array()?),
            offset: r.u64()?,
            stored_len: r.u32()?,
            raw_len: r.u32()?,
            flags: r.u8()?,
        };
        if e.raw_len > MAX_CHUNK || e.flags & !FLAG_ZSTD != 0 || (e.stored_len as usize) < TAG_LEN {
            return Err(r.corrupt(format!("bad entry for chunk {}", e.id)));
        }
        let end = e.offset.checked_add(u64::from(e.stored_len));
        if e.offset < HEADER_LEN as u64 || end.is_none_or(|end| end > data_end) {
            return Err(r.corrupt(format!(
                "entry for chunk {} points outside the container",
                e.id
            )));
        }
        out.push(e);
    }
    r.finish()?;
    Ok(out)
}

/// A reusable zstd context: creating one per chunk costs more than
/// compressing a small chunk.
pub struct Compressor {
    ctx: zstd::bulk::Compressor<'static>,
    buf: Vec<u8>,
}

impl Compressor {
    /// A context at `level`.
    pub fn new(level: i32) -> Result<Compressor> {
        Ok(Compressor {
            ctx: zstd::bulk::Compressor::new(level)
                .map_err(|e| Error::Codec(format!("zstd context: {e}")))?,
            buf: Vec::new(),
        })
    }

    /// The zstd frame of a chunk, or `None` when compression does not shrink
    /// it (the chunk is then stored as it is). The frame borrows the context's
    /// buffer until the next call.
    pub fn compress(&mut self, raw: &[u8]) -> Result<Option<&[u8]>> {
        self.buf.clear();
        self.buf.reserve(zstd::zstd_safe::compress_bound(raw.len()));
        self.ctx
            .compress_to_buffer(raw, &mut self.buf)
            .map_err(|e| Error::Codec(format!("zstd compress: {e}")))?;
        Ok((self.buf.len() < raw.len()).then_some(&self.buf[..]))
    }
}

/// Builds one container. Chunks are compressed and encrypted as they are
/// added; [`ContainerBuilder::drain`] hands the bytes so far to a writer (so
/// a container is never held whole), and [`ContainerBuilder::seal`] appends
/// the table and trailer. The trailer's hash runs over everything, drained
/// or not.
pub struct ContainerBuilder {
    id: ContainerId,
    key: ObjectKey,
    header: Vec<u8>,
    /// Bytes not yet drained.
    buf: Vec<u8>,
    /// Bytes drained so far (they come before `buf`).
    drained: u64,
    /// blake3 over the drained bytes.
    hasher: blake3::Hasher,
    entries: Vec<TableEntry>,
    generation: u32,
    sealer: RecordSealer,
    zstd: Compressor,
}

/// Where container keys come from: the master key (generation 1) or a
/// store's data keys (generation 2 on, `Repo`'s key ring).
pub trait ContainerKeys {
    /// The key of container `id`, sealed under key generation `generation`.
    fn container_key_at(&self, generation: u32, id: &ContainerId) -> Result<ObjectKey>;
}

impl ContainerKeys for MasterKey {
    fn container_key_at(&self, generation: u32, id: &ContainerId) -> Result<ObjectKey> {
        if generation == self.generation() {
            Ok(self.container_key(id))
        } else {
            Err(Error::KeyUnavailable { generation })
        }
    }
}

/// A sealed container, ready to be stored.
#[derive(Debug)]
pub struct SealedContainer {
    /// Its id.
    pub id: ContainerId,
    /// Its bytes after those drained: all of them if nothing was drained.
    pub bytes: Vec<u8>,
    /// Its whole length.
    pub len: u64,
    /// Its chunk table.
    pub entries: Vec<TableEntry>,
    /// blake3 of all but the last [`UNHASHED_TAIL`] bytes, as in the trailer.
    pub hash: [u8; 32],
    /// The index object that mirrors its table.
    pub index_object: Vec<u8>,
    /// The key generation it is sealed under.
    pub generation: u32,
}

impl ContainerBuilder {
    /// Starts a new container with a fresh random id, sealed under the
    /// master key's own generation.
    pub fn new(
        master: &MasterKey,
        store: &StoreId,
        zstd_level: i32,
        capacity: usize,
    ) -> Result<ContainerBuilder> {
        ContainerBuilder::at_generation(master, master.generation(), store, zstd_level, capacity)
    }

    /// Starts a new container sealed under key generation `generation`.
    pub fn at_generation(
        keys: &dyn ContainerKeys,
        generation: u32,
        store: &StoreId,
        zstd_level: i32,
        capacity: usize,
    ) -> Result<ContainerBuilder> {
        let mut id = [0u8; 16];
        coffer_keys::random_bytes(&mut id)?;
        let id = ContainerId(id);
        let mut buf = Vec::with_capacity(capacity);
        let header = header(store, &id, generation);
        buf.extend_from_slice(&header);
        let key = keys.container_key_at(generation, &id)?;
        Ok(ContainerBuilder {
            sealer: key.sealer(),
            key,
            id,
            header,
            buf,
            drained: 0,
            hasher: blake3::Hasher::new(),
            entries: Vec::new(),
            generation,
            zstd: Compressor::new(zstd_level)?,
        })
    }

    /// The ids of the chunks added so far.
    pub fn chunk_ids(&self) -> Vec<ChunkId> {
        self.entries.iter().map(|e| e.id).collect()
    }

    /// Its id.
    pub fn id(&self) -> ContainerId {
        self.id
    }

    /// Bytes so far, drained or not.
    pub fn len(&self) -> usize {
        self.drained as usize + self.buf.len()
    }

    /// Records added so far.
    pub fn records(&self) -> usize {
        self.entries.len()
    }

    /// Bytes added since the last drain.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Hands the bytes added since the last drain to `out`. If `out` fails
    /// the container is lost (its caller abandons it).
    pub fn drain(&mut self, out: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.hasher.update(&self.buf);
        out(&self.buf)?;
        self.drained += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Whether no chunk was added yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Compresses, encrypts and appends one chunk; returns its stored size.
    pub fn add(&mut self, id: ChunkId, raw: &[u8]) -> Result<u32> {
        let raw_len = u32::try_from(raw.len())
            .ok()
            .filter(|l| *l <= MAX_CHUNK)
            .ok_or_else(|| {
                Error::Codec(format!(
                    "chunk of {} bytes exceeds the maximum {MAX_CHUNK}",
                    raw.len()
                ))
            })?;
        let index = self.entries.len() as u64;
        if index >= u64::from(u32::MAX) {
            return Err(Error::Codec("container record limit reached".into()));
        }
        // The record is compressed, then encrypted in place at the end of
        // the container buffer: no per-record allocation or copy.
        let start = self.buf.len();
        let flags = match self.zstd.compress(raw)? {
            Some(z) => {
                self.buf.extend_from_slice(z);
                FLAG_ZSTD
            }
            None => {
                self.buf.extend_from_slice(raw);
                0
            }
        };
        if let Err(e) = self.sealer.seal_tail(index, &id.0, &mut self.buf, start) {
            self.buf.truncate(start);
            return Err(e.into());
        }
        let stored_len = (self.buf.len() - start) as u32;
        self.entries.push(TableEntry {
            id,
            offset: self.drained + start as u64,
            stored_len,
            raw_len,
            flags,
        });
        Ok(stored_len)
    }

    /// Seals the container: appends the encrypted table and the trailer.
    pub fn seal(mut self) -> Result<SealedContainer> {
        let table_plain = encode_table(&self.entries);
        let table_ct = self.key.encrypt(TABLE_NONCE, &self.header, &table_plain)?;
        let table_offset = self.len() as u64;
        self.buf.extend_from_slice(&table_ct);
        let mut w = Writer::new();
        w.u64(table_offset);
        w.u32(table_ct.len() as u32);
        w.u32(self.entries.len() as u32);
        self.buf.extend_from_slice(&w.buf);
        self.hasher.update(&self.buf);
        let hash = *self.hasher.finalize().as_bytes();
        self.buf.extend_from_slice(&hash);
        self.buf.extend_from_slice(&magic::CONTAINER_END_V1);
        let len = self.len() as u64;

        let index_object = index_bytes(
            &self.key,
            self.generation,
            &self.id,
            len,
            &hash,
            &table_plain,
        )?;
        Ok(SealedContainer {
            id: self.id,
            len,
            bytes: self.buf,
            entries: self.entries,
            hash,
            index_object,
            generation: self.generation,
        })
    }
}

/// The parts of a container readable without keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Container id from the header.
    pub id: ContainerId,
    /// Store id from the header.
    pub store: StoreId,
    /// Key generation.
    pub generation: u32,
    /// Offset of the encrypted table.
    pub table_offset: u64,
    /// Length of the encrypted table.
    pub table_len: u32,
    /// Number of records.
    pub count: u32,
    /// blake3 recorded in the trailer.
    pub hash: [u8; 32],
}

/// Parses a container's header and trailer (no keys needed). The ciphertext
/// hash is checked by [`check_container`], which reads the whole container.
pub fn parse_container(
    header_bytes: &[u8],
    trailer: &[u8],
    total_len: u64,
) -> Result<ContainerInfo> {
    let mut h = Reader::new(header_bytes, "container header");
    h.expect_header(magic::CONTAINER_V1, CONTAINER_VERSION, "container")?;
    let _flags = h.u16()?;
    let generation = h.u32()?;
    let id = ContainerId(h.array()?);
    let store = StoreId(h.array()?);
    let mut t = Reader::new(trailer, "container trailer");
    let table_offset = t.u64()?;
    let table_len = t.u32()?;
    let count = t.u32()?;
    let hash: [u8; 32] = t.array()?;
    if t.array::<8>()? != magic::CONTAINER_END_V1 {
        return Err(t.corrupt("bad end magic: the container is truncated or damaged"));
    }
    let end = table_offset.checked_add(u64::from(table_len));
    if table_offset < HEADER_LEN as u64 || end != Some(total_len - TRAILER_LEN as u64) {
        return Err(t.corrupt("table does not end where the trailer starts"));
    }
    Ok(ContainerInfo {
        id,
        store,
        generation,
        table_offset,
        table_len,
        count,
        hash,
    })
}

/// Checks a whole container without keys: structure and ciphertext hash.
pub fn check_container(bytes: &[u8]) -> Result<ContainerInfo> {
    if bytes.len() < HEADER_LEN + TRAILER_LEN {
        return Err(Error::Corrupt {
            what: "container".into(),
            reason: format!("only {} bytes: truncated", bytes.len()),
        });
    }
    let info = parse_container(
        &bytes[..HEADER_LEN],
        &bytes[bytes.len() - TRAILER_LEN..],
        bytes.len() as u64,
    )?;
    let actual = blake3::hash(&bytes[..bytes.len() - UNHASHED_TAIL]);
    if actual.as_bytes() != &info.hash {
        return Err(Error::Corrupt {
            what: format!("container {}", info.id),
            reason: "ciphertext hash mismatch (bit rot or modification)".into(),
        });
    }
    Ok(info)
}

/// Decrypts the table of a whole container whose structure `info` describes
/// (from [`check_container`] or [`parse_container`]).
pub fn open_table(
    master: &dyn ContainerKeys,
    bytes: &[u8],
    info: &ContainerInfo,
) -> Result<Vec<TableEntry>> {
    let table_ct = usize::try_from(info.table_offset)
        .ok()
        .and_then(|start| bytes.get(start..bytes.len().checked_sub(TRAILER_LEN)?))
        .ok_or_else(|| Error::Corrupt {
            what: format!("container {}", info.id),
            reason: "its table lies outside the bytes given".into(),
        })?;
    open_table_parts(master, &bytes[..HEADER_LEN], table_ct, info)
}

/// Decrypts a container's table from its header and encrypted table alone
/// (read on their own, without the records between them).
pub fn open_table_parts(
    master: &dyn ContainerKeys,
    header: &[u8],
    table_ct: &[u8],
    info: &ContainerInfo,
) -> Result<Vec<TableEntry>> {
    let key = master.container_key_at(info.generation, &info.id)?;
    let plain = key
        .decrypt(TABLE_NONCE, header, table_ct)
        .map_err(|_| Error::Corrupt {
            what: format!("container {}", info.id),
            reason: "its table fails authentication (damaged, or not this store's key)".into(),
        })?;
    let table = decode_table(&plain, info.table_offset)?;
    if table.len() != info.count as usize {
        return Err(Error::Corrupt {
            what: format!("container {}", info.id),
            reason: format!(
                "its trailer counts {} records, its table {}",
                info.count,
                table.len()
            ),
        });
    }
    Ok(table)
}

/// An index object, parsed and opened.
#[derive(Debug, Clone)]
pub struct IndexObject {
    /// The container it describes.
    pub id: ContainerId,
    /// The container's length.
    pub container_len: u64,
    /// The container's ciphertext hash.
    pub hash: [u8; 32],
    /// Key generation.
    pub generation: u32,
    /// Encrypted table (opened by [`IndexObject::open`]).
    table_ct: Vec<u8>,
    header: Vec<u8>,
}

impl IndexObject {
    /// Parses an index object without keys.
    pub fn parse(bytes: &[u8]) -> Result<IndexObject> {
        let mut r = Reader::new(bytes, "index object");
        r.expect_header(magic::INDEX_V1, CONTAINER_VERSION, "index object")?;
        let _flags = r.u16()?;
        let generation = r.u32()?;
        let id = ContainerId(r.array()?);
        let container_len = r.u64()?;
        let hash = r.array()?;
        let table_ct = r.take(r.remaining())?.to_vec();
        Ok(IndexObject {
            id,
            container_len,
            hash,
            generation,
            table_ct,
            header: bytes[..INDEX_HEADER_LEN].to_vec(),
        })
    }

    /// Decrypts the table.
    pub fn open(&self, master: &dyn ContainerKeys) -> Result<Vec<TableEntry>> {
        let plain = master
            .container_key_at(self.generation, &self.id)?
            .decrypt(INDEX_NONCE, &self.header, &self.table_ct)
            .map_err(|_| Error::Corrupt {
                what: format!("index object of container {}", self.id),
                reason: "fails authentication (damaged, or not this store's key)".into(),
            })?;
        decode_table(
            &plain,
            self.container_len.saturating_sub(TRAILER_LEN as u64),
        )
    }
}

/// Decrypts, decompresses and authenticates one record.
pub fn open_record(key: &ObjectKey, index: u64, e: &TableEntry, record: &[u8]) -> Result<Vec<u8>> {
    let payload = key
        .decrypt(index, &e.id.0, record)
        .map_err(|_| Error::Corrupt {
            what: format!("chunk {}", e.id),
            reason: "fails authentication (bit rot or tampering)".into(),
        })?;
    let raw = if e.flags & FLAG_ZSTD != 0 {
        // One decompression context per thread: creating one per chunk
        // costs more than decompressing a small chunk.
        thread_local! {
            static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
                const { std::cell::RefCell::new(None) };
        }
        let corrupt = |err: std::io::Error| Error::Corrupt {
            what: format!("chunk {}", e.id),
            reason: format!("does not decompress: {err}"),
        };
        DCTX.with(|cell| {
            let mut slot = cell.borrow_mut();
            let d = match slot.as_mut() {
                Some(d) => d,
                None => slot.insert(zstd::bulk::Decompressor::new().map_err(corrupt)?),
            };
            d.decompress(&payload, e.raw_len as usize).map_err(corrupt)
        })?
    } else {
        payload
    };
    if raw.len() != e.raw_len as usize {
        return Err(Error::Corrupt {
            what: format!("chunk {}", e.id),
            reason: format!("{} bytes, table says {}", raw.len(), e.raw_len),
        });
    }
    Ok(raw)
}

/// Rebuilds the index object of a container from its opened table.
pub fn index_object_for(
    master: &dyn ContainerKeys,
    info: &ContainerInfo,
    container_len: u64,
    table: &[TableEntry],
) -> Result<Vec<u8>> {
    let key = master.container_key_at(info.generation, &info.id)?;
    index_bytes(
        &key,
        info.generation,
        &info.id,
        container_len,
        &info.hash,
        &encode_table(table),
    )
}

fn index_bytes(
    key: &ObjectKey,
    generation: u32,
    id: &ContainerId,
    container_len: u64,
    hash: &[u8; 32],
    table_plain: &[u8],
) -> Result<Vec<u8>> {
    let mut iw = Writer::new();
    iw.raw(&magic::INDEX_V1);
    iw.u16(CONTAINER_VERSION);
    iw.u16(0);
    iw.u32(generation);
    iw.raw(&id.0);
    iw.u64(container_len);
    iw.raw(hash);
    let ct = key.encrypt(INDEX_NONCE, &iw.buf, table_plain)?;
    iw.raw(&ct);
    Ok(iw.buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> MasterKey {
        MasterKey::from_bytes_for_fixtures([3; 32], 1)
    }

    #[test]
    fn a_drained_container_is_the_same_container() {
        let m = master();
        let store = StoreId([9; 16]);
        let ids = m.chunk_id_hasher();
        let mut b = ContainerBuilder::new(&m, &store, 3, 1 << 10).unwrap();
        let mut out = Vec::new();
        let chunks: Vec<Vec<u8>> = (0..40u32)
            .map(|i| (0..3000 + i * 97).map(|j| (j * (i + 3)) as u8).collect())
            .collect();
        for (n, c) in chunks.iter().enumerate() {
            b.add(ids.id(c), c).unwrap();
            if n % 7 == 3 {
                b.drain(&mut |bytes| {
                    out.extend_from_slice(bytes);
                    Ok(())
                })
                .unwrap();
                assert_eq!(b.pending(), 0);
            }
        }
        let sealed = b.seal().unwrap();
        out.extend_from_slice(&sealed.bytes);
        assert_eq!(out.len() as u64, sealed.len);
        let info = check_container(&out).unwrap();
        assert_eq!(info.hash, sealed.hash);
        let table = open_table(&m, &out, &info).unwrap();
        assert_eq!(table, sealed.entries);
        let key = m.container_key(&sealed.id);
        for (i, (e, c)) in table.iter().zip(&chunks).enumerate() {
            let rec = &out[e.offset as usize..(e.offset + u64::from(e.stored_len)) as usize];
            assert_eq!(&open_record(&key, i as u64, e, rec).unwrap(), c);
        }
        let idx = IndexObject::parse(&sealed.index_object).unwrap();
        assert_eq!(idx.container_len, sealed.len);
    }

    #[test]
    fn seal_and_read_back_every_chunk() {
        let m = master();
        let store = StoreId([9; 16]);
        let mut b = ContainerBuilder::new(&m, &store, 3, 1 << 20).unwrap();
        let ids = m.chunk_id_hasher();
        let chunks: Vec<Vec<u8>> = vec![
            vec![0u8; 10_000],
            (0..5000u32).map(|i| (i * 7919) as u8).collect(),
            b"x".to_vec(),
        ];
        for c in &chunks {
            b.add(ids.id(c), c).unwrap();
        }
        let sealed = b.seal().unwrap();
        let info = check_container(&sealed.bytes).unwrap();
        assert_eq!(info.count, 3);
        assert_eq!(info.store, store);
        let table = open_table(&m, &sealed.bytes, &info).unwrap();
        assert_eq!(table, sealed.entries);
        assert_eq!(table[0].flags, FLAG_ZSTD, "zeros compress");
        let idx = IndexObject::parse(&sealed.index_object).unwrap();
        assert_eq!(idx.open(&m).unwrap(), table);
        assert_eq!(idx.hash, info.hash);
        let key = m.container_key(&sealed.id);
        for (i, (e, c)) in table.iter().zip(&chunks).enumerate() {
            let rec =
                &sealed.bytes[e.offset as usize..(e.offset + u64::from(e.stored_len)) as usize];
            assert_eq!(&open_record(&key, i as u64, e, rec).unwrap(), c);
        }
    }

    #[test]
    fn bit_rot_and_truncation_are_detected_without_keys() {
        let m = master();
        let mut b = ContainerBuilder::new(&m, &StoreId([0; 16]), 3, 1 << 16).unwrap();
        b.add(m.chunk_id_hasher().id(b"abc"), b"abc").unwrap();
        let sealed = b.seal().unwrap();
        let mut flipped = sealed.bytes.clone();
        flipped[HEADER_LEN + 2] ^= 0x10;
        assert!(
            check_container(&flipped)
                .unwrap_err()
                .to_string()
                .contains("hash mismatch")
        );
        let truncated = &sealed.bytes[..sealed.bytes.len() - 3];
        assert!(check_container(truncated).is_err());
        assert!(check_container(&sealed.bytes[..20]).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
        /// Codec round trip: any chunks, compressible or not, come back
        /// byte-identical through seal, keyless check, table and records.
        #[test]
        fn codec_round_trip(chunks in proptest::collection::vec(
            (proptest::collection::vec(proptest::prelude::any::<u8>(), 0..5000), 0usize..4000, proptest::prelude::any::<u8>()),
            1..12,
        ), level in 1i32..6) {
            let m = master();
            let ids = m.chunk_id_hasher();
            let mut b = ContainerBuilder::new(&m, &StoreId([1; 16]), level, 1 << 20).unwrap();
            let mut plain = Vec::new();
            for (random, run, byte) in chunks {
                // random bytes followed by a compressible run
                let mut c = random;
                c.extend(std::iter::repeat_n(byte, run));
                b.add(ids.id(&c), &c).unwrap();
                plain.push(c);
            }
            let sealed = b.seal().unwrap();
            let info = check_container(&sealed.bytes).unwrap();
            let table = open_table(&m, &sealed.bytes, &info).unwrap();
            let key = m.container_key(&sealed.id);
            for (i, (e, c)) in table.iter().zip(&plain).enumerate() {
                let rec = &sealed.bytes[e.offset as usize..(e.offset + u64::from(e.stored_len)) as usize];
                proptest::prop_assert_eq!(&open_record(&key, i as u64, e, rec).unwrap(), c);
                proptest::prop_assert_eq!(e.id, ids.id(c));
                proptest::prop_assert!(e.flags == 0 || (e.stored_len as usize) < c.len() + TAG_LEN);
            }
        }

        /// Keyless checks and table parsing never panic on damaged input.
        #[test]
        fn damaged_containers_never_panic(flips in proptest::collection::vec((0usize..4096, proptest::prelude::any::<u8>()), 1..8), cut in 0usize..4096) {
            let m = master();
            let mut b = ContainerBuilder::new(&m, &StoreId([1; 16]), 3, 1 << 20).unwrap();
            b.add(m.chunk_id_hasher().id(b"abc"), b"abc").unwrap();
            b.add(m.chunk_id_hasher().id(&[7u8; 3000]), &[7u8; 3000]).unwrap();
            let mut bytes = b.seal().unwrap().bytes;
            for (at, x) in flips {
                let at = at % bytes.len();
                bytes[at] ^= x | 1;
            }
            bytes.truncate(bytes.len().saturating_sub(cut % 64));
            let _ = check_container(&bytes);
            let _ = IndexObject::parse(&bytes);
            if bytes.len() >= HEADER_LEN + TRAILER_LEN
                && let Ok(info) = parse_container(&bytes[..HEADER_LEN], &bytes[bytes.len() - TRAILER_LEN..], bytes.len() as u64)
            {
                let _ = open_table(&m, &bytes, &info);
            }
        }
    }

    #[test]
    fn wrong_key_cannot_open_table_or_records() {
        let m = master();
        let mut b = ContainerBuilder::new(&m, &StoreId([0; 16]), 3, 1 << 16).unwrap();
        b.add(m.chunk_id_hasher().id(b"abc"), b"abc").unwrap();
        let sealed = b.seal().unwrap();
        let other = MasterKey::from_bytes_for_fixtures([4; 32], 1);
        let idx = IndexObject::parse(&sealed.index_object).unwrap();
        assert!(idx.open(&other).is_err());
    }
}
