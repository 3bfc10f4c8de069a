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
        r.u32(self.extents.len() as u32);
        for e in &self.extents {
            match e {
                Extent::Data { id, len } => {
                    r.u8(0);
                    r.raw(&id.0);
                    r.u32(*len);
                }
                Extent::Hole { len } => {
                    r.u8(1);
                    r.u64(*len);
                }
            }
        }
        r.raw(&self.content_hash);
        w.u32(r.buf.len() as u32);
        w.raw(&r.buf);
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
        let ne = r.count(9)?;
        let mut total = 0u64;
        for _ in 0..ne {
            let ext = match r.u8()? {
                0 => Extent::Data {
                    id: ChunkId(r.array()?),
                    len: r.u32()?,
                },
                1 => Extent::Hole { len: r.u64()? },
                t => return Err(r.corrupt(format!("unknown extent type {t}"))),
            };
            total = total
                .checked_add(ext.len())
                .ok_or_else(|| r.corrupt("extent lengths overflow"))?;
            e.extents.push(ext);
        }
        e.content_hash = r.array()?;
        r.finish()?;
        if matches!(kind, EntryKind::File | EntryKind::Hardlink)
            && !e.extents.is_empty()
            && total != e.size
        {
            return Err(Error::Corrupt {
                what: format!("manifest entry {}", e.display_path()),
                reason: format!("extents cover {total} bytes, size is {}", e.size),
            });
        }
        Ok(e)
    }
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
}

impl<R: std::io::Read> ManifestDecoder<R> {
    /// Decodes from `src`.
    pub fn new(src: R) -> ManifestDecoder<R> {
        ManifestDecoder {
            src,
            started: false,
            done: false,
            count: 0,
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

    /// The next entry, or `None` after the end record.
    pub fn next_entry(&mut self) -> Result<Option<Entry>> {
        if self.done {
            return Ok(None);
        }
        if !self.started {
            let mut h = [0u8; 12];
            self.read_exact(&mut h)?;
            let mut r = Reader::new(&h, "manifest header");
            if r.array::<8>()? != magic::MANIFEST_V1 {
                return Err(r.corrupt("bad magic"));
            }
            let v = r.u16()?;
            if v > MANIFEST_VERSION {
                return Err(Error::NewerFormat {
                    what: "manifest".into(),
                    found: v,
                    supported: MANIFEST_VERSION,
                });
            }
            self.started = true;
        }
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
        if body[0] == END_RECORD {
            let mut r = Reader::new(&body[1..], "manifest end record");
            let n = r.u64()?;
            r.finish()?;
            if n != self.count {
                return Err(r.corrupt(format!(
                    "end record counts {n} entries, manifest has {}",
                    self.count
                )));
            }
            self.done = true;
            return Ok(None);
        }
        self.count += 1;
        Entry::decode(&body).map(Some)
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

    #[test]
    fn extents_must_cover_the_size() {
        let mut e = sample();
        e.size = 11;
        let mut w = Writer::new();
        e.encode(&mut w);
        assert!(Entry::decode(&w.buf[4..]).is_err());
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
