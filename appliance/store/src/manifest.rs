//! Snapshot manifests: the tree of entries with full metadata, as a stream of
//! records in depth-first order with each directory's children sorted by name
//! bytes. The stream is cut into chunks by the content-defined chunker and
//! stored like file data, so names and metadata are encrypted, unchanged
//! parts of a tree deduplicate between snapshots, and a tape or replica
//! carries everything a restore needs. Byte map in `docs/formats/store.md`.
//!
//! Paths are relative to the backed-up directory, components joined by `/`,
//! as raw bytes (names need not be UTF-8); the root itself is the empty path.
//! The order is the lexicographic order of component sequences, which lets an
//! incremental backup merge-join the previous manifest with the walk in
//! constant memory.

use std::cmp::Ordering;

use coffer_types::ChunkId;

use crate::format::{Reader, Writer, magic};
use crate::{Error, Result};

const MANIFEST_VERSION: u16 = 1;
/// Longest path accepted in a manifest (bytes).
pub const MAX_PATH: usize = 64 * 1024;
/// Largest xattr value accepted (bytes).
pub const MAX_XATTR: usize = 1024 * 1024;
/// Largest record accepted (bytes).
pub const MAX_RECORD: usize = 64 * 1024 * 1024;

/// Kind of a manifest entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link (`target` holds the link text).
    Symlink,
    /// A further name of a file stored earlier (`target` holds its path).
    Hardlink,
    /// Named pipe.
    Fifo,
    /// Character device (`rdev`).
    CharDev,
    /// Block device (`rdev`).
    BlockDev,
    /// Unix socket: recorded, not recreated on restore.
    Socket,
}

impl EntryKind {
    fn code(self) -> u8 {
        match self {
            EntryKind::File => 1,
            EntryKind::Dir => 2,
            EntryKind::Symlink => 3,
            EntryKind::Hardlink => 4,
            EntryKind::Fifo => 5,
            EntryKind::CharDev => 6,
            EntryKind::BlockDev => 7,
            EntryKind::Socket => 8,
        }
    }
    fn from_code(c: u8) -> Option<EntryKind> {
        Some(match c {
            1 => EntryKind::File,
            2 => EntryKind::Dir,
            3 => EntryKind::Symlink,
            4 => EntryKind::Hardlink,
            5 => EntryKind::Fifo,
            6 => EntryKind::CharDev,
            7 => EntryKind::BlockDev,
            8 => EntryKind::Socket,
            _ => return None,
        })
    }
    /// One-letter type, as `ls -l` shows it.
    pub fn letter(self) -> char {
        match self {
            EntryKind::File => '-',
            EntryKind::Dir => 'd',
            EntryKind::Symlink => 'l',
            EntryKind::Hardlink => 'h',
            EntryKind::Fifo => 'p',
            EntryKind::CharDev => 'c',
            EntryKind::BlockDev => 'b',
            EntryKind::Socket => 's',
        }
    }
}

const END_RECORD: u8 = 0xff;

/// A piece of a regular file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    /// A chunk of data.
    Data {
        /// Chunk id.
        id: ChunkId,
        /// Plaintext length.
        len: u32,
    },
    /// A hole (reads as zeros, restored sparse).
    Hole {
        /// Length.
        len: u64,
    },
}

impl Extent {
    /// Its length in the file.
    pub fn len(&self) -> u64 {
        match self {
            Extent::Data { len, .. } => u64::from(*len),
            Extent::Hole { len } => *len,
        }
    }
    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One entry of a snapshot's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Kind.
    pub kind: EntryKind,
    /// Path relative to the snapshot root (`/`-separated raw bytes; root = empty).
    pub path: Vec<u8>,
    /// Permission bits including setuid, setgid and sticky (`mode & 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds.
    pub mtime_s: i64,
    /// Modification time, nanoseconds.
    pub mtime_ns: u32,
    /// Status change time, seconds (change detection only).
    pub ctime_s: i64,
    /// Status change time, nanoseconds.
    pub ctime_ns: u32,
    /// Inode number (change detection only).
    pub ino: u64,
    /// Link count at backup time.
    pub nlink: u32,
    /// Size in bytes (files: content length).
    pub size: u64,
    /// Device number (character and block devices).
    pub rdev: u64,
    /// Symlink text or hardlink target path.
    pub target: Vec<u8>,
    /// Extended attributes (name, value), sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// File content (regular files and hardlinks).
    pub extents: Vec<Extent>,
    /// Keyed blake3 of the whole content (regular files; zero otherwise).
    pub content_hash: [u8; 32],
}

impl Entry {
    /// A blank entry of `kind` at `path`.
    pub fn new(kind: EntryKind, path: Vec<u8>) -> Entry {
        Entry {
            kind,
            path,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime_s: 0,
            mtime_ns: 0,
            ctime_s: 0,
            ctime_ns: 0,
            ino: 0,
            nlink: 1,
            size: 0,
            rdev: 0,
            target: Vec::new(),
            xattrs: Vec::new(),
            extents: Vec::new(),
            content_hash: [0; 32],
        }
    }

    /// The path for display (lossy where not UTF-8).
    pub fn display_path(&self) -> String {
        if self.path.is_empty() {
            "/".into()
        } else {
            format!("/{}", String::from_utf8_lossy(&self.path))
        }
    }

    /// Encodes the record (with its length prefix).
    pub fn encode(&self, w: &mut Writer) {
        let mut r = Writer::new();
        r.u8(self.kind.code());
        r.bytes(&self.path);
        r.u32(self.mode);
        r.u32(self.uid);
        r.u32(self.gid);
        r.i64(self.mtime_s);
        r.u32(self.mtime_ns);
        r.i64(self.ctime_s);
        r.u32(self.ctime_ns);
        r.u64(self.ino);
        r.u32(self.nlink);
        r.u64(self.size);
        r.u64(self.rdev);
        r.bytes(&self.target);
        r.u32(self.xattrs.len() as u32);
        for (k, v) in &self.xattrs {
            r.bytes(k);
            r.bytes(v);
        }
        let mut batches = self.extents.chunks(EXTENTS_PER_RECORD);
        encode_extents(&mut r, batches.next().unwrap_or(&[]));
        r.raw(&self.content_hash);
        w.u32(r.buf.len() as u32);
        w.raw(&r.buf);
        // A file with more extents than one record holds (over ~64 GiB at
        // 1 MiB chunks) continues in continuation records.
        for batch in batches {
            let mut c = Writer::new();
            c.u8(CONTINUATION_RECORD);
            encode_extents(&mut c, batch);
            w.u32(c.buf.len() as u32);
            w.raw(&c.buf);
        }
    }

    /// Checks the rules that span a whole entry (after continuation records).
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Error::Corrupt {
            what: format!("manifest entry {}", self.display_path()),
            reason,
        };
        match self.kind {
            EntryKind::File => {
                let mut total = 0u64;
                for e in &self.extents {
                    total = total
                        .checked_add(e.len())
                        .ok_or_else(|| bad("extent lengths overflow".into()))?;
                }
                if total != self.size {
                    return Err(bad(format!(
                        "extents cover {total} bytes, size is {}",
                        self.size
                    )));
                }
            }
            _ if !self.extents.is_empty() => {
                return Err(bad("only regular files have content extents".into()));
            }
            _ => {}
        }
        if self.kind == EntryKind::Hardlink && self.target.is_empty() {
            return Err(bad("hard link without a target".into()));
        }
        Ok(())
    }

    /// Decodes one record body (without its length prefix).
    pub fn decode(body: &[u8]) -> Result<Entry> {
        let mut r = Reader::new(body, "manifest record");
        let code = r.u8()?;
        let kind = EntryKind::from_code(code)
            .ok_or_else(|| r.corrupt(format!("unknown entry kind {code}")))?;
        let path = r.bytes(MAX_PATH)?.to_vec();
        let mut e = Entry::new(kind, path);
        e.mode = r.u32()?;
        e.uid = r.u32()?;
        e.gid = r.u32()?;
        e.mtime_s = r.i64()?;
        e.mtime_ns = r.u32()?;
        e.ctime_s = r.i64()?;
        e.ctime_ns = r.u32()?;
        e.ino = r.u64()?;
        e.nlink = r.u32()?;
        e.size = r.u64()?;
        e.rdev = r.u64()?;
        e.target = r.bytes(MAX_PATH)?.to_vec();
        let nx = r.count(8)?;
        for _ in 0..nx {
            let k = r.bytes(MAX_PATH)?.to_vec();
            let v = r.bytes(MAX_XATTR)?.to_vec();
            e.xattrs.push((k, v));
        }
        e.extents = decode_extents(&mut r)?;
        e.content_hash = r.array()?;
        r.finish()?;
        Ok(e)
    }
}

/// Extents per record; more go into continuation records.
pub const EXTENTS_PER_RECORD: usize = 65_536;
const CONTINUATION_RECORD: u8 = 0xfe;

fn encode_extents(w: &mut Writer, extents: &[Extent]) {
    w.u32(extents.len() as u32);
    for e in extents {
        match e {
            Extent::Data { id, len } => {
                w.u8(0);
                w.raw(&id.0);
                w.u32(*len);
            }
            Extent::Hole { len } => {
                w.u8(1);
                w.u64(*len);
            }
        }
    }
}

fn decode_extents(r: &mut Reader<'_>) -> Result<Vec<Extent>> {
    let n = r.count(9)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(match r.u8()? {
            0 => Extent::Data {
                id: ChunkId(r.array()?),
                len: r.u32()?,
            },
            1 => Extent::Hole { len: r.u64()? },
            t => return Err(r.corrupt(format!("unknown extent type {t}"))),
        });
    }
    Ok(out)
}

/// Compares two manifest paths in manifest order (component-wise).
pub fn path_order(a: &[u8], b: &[u8]) -> Ordering {
    let mut ai = a.split(|c| *c == b'/').filter(|c| !c.is_empty());
    let mut bi = b.split(|c| *c == b'/').filter(|c| !c.is_empty());
    loop {
        match (ai.next(), bi.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match x.cmp(y) {
                Ordering::Equal => continue,
                o => return o,
            },
        }
    }
}

/// The manifest stream header.
pub fn stream_header() -> Vec<u8> {
    let mut w = Writer::new();
    w.raw(&magic::MANIFEST_V1);
    w.u16(MANIFEST_VERSION);
    w.u16(0);
    w.buf
}

/// The end-of-manifest record, so a truncated manifest cannot pass as whole.
pub fn end_record(entries: u64) -> Vec<u8> {
    let mut w = Writer::new();
    w.u32(9);
    w.u8(END_RECORD);
    w.u64(entries);
    w.buf
}

/// Decodes a manifest stream from any byte source.
pub struct ManifestDecoder<R: std::io::Read> {
    src: R,
    started: bool,
    done: bool,
    count: u64,
    /// The entry read last, held until its continuation records are in.
    pending: Option<Entry>,
    /// An end record read while the last entry was still pending.
    pending_end: Option<u64>,
}

enum Record {
    Entry(Entry),
    Continuation(Vec<Extent>),
    End(u64),
}

impl<R: std::io::Read> ManifestDecoder<R> {
    /// Decodes from `src`.
    pub fn new(src: R) -> ManifestDecoder<R> {
        ManifestDecoder {
            src,
            started: false,
            done: false,
            count: 0,
            pending: None,
            pending_end: None,
        }
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        self.src.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Error::Corrupt {
                what: "manifest".into(),
                reason: "ends before its end record (truncated)".into(),
            },
            _ => Error::Manifest(e.to_string()),
        })
    }

    fn header(&mut self) -> Result<()> {
        let mut h = [0u8; 12];
        self.read_exact(&mut h)?;
        let mut r = Reader::new(&h, "manifest header");
        r.expect_header(magic::MANIFEST_V1, MANIFEST_VERSION, "manifest")?;
        self.started = true;
        Ok(())
    }

    fn record(&mut self) -> Result<Record> {
        let mut len = [0u8; 4];
        self.read_exact(&mut len)?;
        let len = u32::from_le_bytes(len) as usize;
        if len == 0 || len > MAX_RECORD {
            return Err(Error::Corrupt {
                what: "manifest".into(),
                reason: format!("record length {len} out of range"),
            });
        }
        let mut body = vec![0u8; len];
        self.read_exact(&mut body)?;
        match body[0] {
            END_RECORD => {
                let mut r = Reader::new(&body[1..], "manifest end record");
                let n = r.u64()?;
                r.finish()?;
                Ok(Record::End(n))
            }
            CONTINUATION_RECORD => {
                let mut r = Reader::new(&body[1..], "manifest continuation record");
                let ext = decode_extents(&mut r)?;
                r.finish()?;
                Ok(Record::Continuation(ext))
            }
            _ => Entry::decode(&body).map(Record::Entry),
        }
    }

    fn finish_entry(&mut self, e: Entry) -> Result<Option<Entry>> {
        e.validate()?;
        self.count += 1;
        Ok(Some(e))
    }

    /// The next entry, or `None` after the end record.
    pub fn next_entry(&mut self) -> Result<Option<Entry>> {
        if self.done {
            return Ok(None);
        }
        if !self.started {
            self.header()?;
        }
        if let Some(n) = self.pending_end.take() {
            return self.end(n).map(|()| None);
        }
        loop {
            match self.record()? {
                Record::Entry(e) => {
                    if let Some(prev) = self.pending.replace(e) {
                        return self.finish_entry(prev);
                    }
                }
                Record::Continuation(ext) => match &mut self.pending {
                    Some(p) if p.kind == EntryKind::File => p.extents.extend(ext),
                    _ => {
                        return Err(Error::Corrupt {
                            what: "manifest".into(),
                            reason: "continuation record without a file before it".into(),
                        });
                    }
                },
                Record::End(n) => {
                    if let Some(prev) = self.pending.take() {
                        // Give the last entry now; the end record is read again next call.
                        let out = self.finish_entry(prev)?;
                        self.pending_end = Some(n);
                        return Ok(out);
                    }
                    return self.end(n).map(|()| None);
                }
            }
        }
    }

    fn end(&mut self, n: u64) -> Result<()> {
        if n != self.count {
            return Err(Error::Corrupt {
                what: "manifest".into(),
                reason: format!("end record counts {n} entries, manifest has {}", self.count),
            });
        }
        let mut extra = [0u8; 1];
        match self.src.read(&mut extra) {
            Ok(0) => {}
            Ok(_) => {
                return Err(Error::Corrupt {
                    what: "manifest".into(),
                    reason: "data after the end record".into(),
                });
            }
            Err(e) => return Err(Error::Manifest(e.to_string())),
        }
        self.done = true;
        Ok(())
    }
}

impl<R: std::io::Read> Iterator for ManifestDecoder<R> {
    type Item = Result<Entry>;
    fn next(&mut self) -> Option<Result<Entry>> {
        match self.next_entry() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Entry {
        let mut e = Entry::new(EntryKind::File, b"dir/\xffname".to_vec());
        e.mode = 0o4755;
        e.uid = 1000;
        e.gid = 100;
        e.mtime_s = -5;
        e.mtime_ns = 999_999_999;
        e.size = 10;
        e.xattrs = vec![(b"user.a".to_vec(), b"1".to_vec())];
        e.extents = vec![
            Extent::Data {
                id: ChunkId([1; 32]),
                len: 4,
            },
            Extent::Hole { len: 6 },
        ];
        e
    }

    #[test]
    fn order_is_component_wise() {
        assert_eq!(path_order(b"", b"a"), Ordering::Less);
        assert_eq!(
            path_order(b"a/b", b"a-b"),
            Ordering::Less,
            "'/' separates, it does not sort"
        );
        assert_eq!(path_order(b"a", b"a/b"), Ordering::Less);
        assert_eq!(path_order(b"b", b"a/z"), Ordering::Greater);
    }

    #[test]
    fn stream_round_trip_and_truncation() {
        let mut w = Writer::new();
        w.raw(&stream_header());
        sample().encode(&mut w);
        let mut d = Entry::new(EntryKind::Dir, b"dir".to_vec());
        d.mode = 0o1777;
        d.encode(&mut w);
        w.raw(&end_record(2));
        let all: Vec<Entry> = ManifestDecoder::new(&w.buf[..])
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(all, vec![sample(), d]);
        for cut in [0, 5, 12, 20, w.buf.len() - 1] {
            let r: Result<Vec<Entry>> = ManifestDecoder::new(&w.buf[..cut]).collect();
            assert!(r.is_err(), "cut at {cut}");
        }
    }

    fn stream(entries: &[Entry]) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(&stream_header());
        for e in entries {
            e.encode(&mut w);
        }
        w.raw(&end_record(entries.len() as u64));
        w.buf
    }

    #[test]
    fn entries_must_be_whole() {
        let mut e = sample();
        e.size = 11;
        assert!(e.validate().is_err(), "extents do not cover the size");
        e.extents.clear();
        assert!(e.validate().is_err(), "a non-empty file without extents");
        let mut d = Entry::new(EntryKind::Dir, b"d".to_vec());
        d.extents = vec![Extent::Hole { len: 1 }];
        assert!(d.validate().is_err(), "a directory with content");
        assert!(
            Entry::new(EntryKind::Hardlink, b"h".to_vec())
                .validate()
                .is_err()
        );
        let r: Result<Vec<Entry>> = ManifestDecoder::new(&stream(&[d])[..]).collect();
        assert!(r.is_err());
        let mut trailing = stream(&[sample()]);
        trailing.push(0);
        let r: Result<Vec<Entry>> = ManifestDecoder::new(&trailing[..]).collect();
        assert!(r.unwrap_err().to_string().contains("after the end record"));
    }

    #[test]
    fn files_with_very_many_extents_span_continuation_records() {
        let mut big = Entry::new(EntryKind::File, b"vm.img".to_vec());
        big.extents = (0..(2 * EXTENTS_PER_RECORD + 7))
            .map(|i| {
                if i % 2 == 0 {
                    Extent::Data {
                        id: ChunkId([(i % 251) as u8; 32]),
                        len: 1,
                    }
                } else {
                    Extent::Hole { len: 2 }
                }
            })
            .collect();
        big.size = big.extents.iter().map(Extent::len).sum();
        let after = Entry::new(EntryKind::Fifo, b"zz".to_vec());
        let bytes = stream(&[big.clone(), after.clone()]);
        let all: Vec<Entry> = ManifestDecoder::new(&bytes[..])
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(all, vec![big, after]);
    }

    proptest! {
        #[test]
        fn entries_round_trip(path in proptest::collection::vec(any::<u8>(), 0..300),
                              target in proptest::collection::vec(any::<u8>(), 0..100),
                              mode in any::<u32>(), uid in any::<u32>(), mt in any::<i64>(), ns in any::<u32>(),
                              holes in proptest::collection::vec(any::<u32>(), 0..20)) {
            let mut e = Entry::new(EntryKind::File, path);
            e.mode = mode; e.uid = uid; e.mtime_s = mt; e.mtime_ns = ns; e.target = target;
            e.extents = holes.iter().map(|h| Extent::Hole { len: u64::from(*h) }).collect();
            e.size = holes.iter().map(|h| u64::from(*h)).sum();
            let mut w = Writer::new();
            e.encode(&mut w);
            prop_assert_eq!(Entry::decode(&w.buf[4..]).unwrap(), e);
        }

        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut data = stream_header();
            data.extend(bytes);
            let _ = ManifestDecoder::new(&data[..]).take(100).collect::<Vec<_>>();
        }
    }
}
