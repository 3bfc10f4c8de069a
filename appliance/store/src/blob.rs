//! The `BlobStore` trait: where a store's objects live.
//!
//! Every byte a store writes goes through this trait: a directory on a local
//! or pooled filesystem ([`DirStore`]), memory ([`MemStore`], for tests and
//! tools), and later erasure-coded pools and S3 buckets. Keys are relative,
//! `/`-separated names such as `data/3f/3f…` and `snapshots/…`; the trait
//! refuses keys that could escape their root.
//!
//! Contract: [`BlobStore::put`] is atomic and durable (a reader sees the whole
//! object or none of it, also after a crash) and never replaces an existing
//! object: sealed objects are immutable. [`BlobStore::create`] writes an
//! object in pieces under the same contract: it appears only on
//! [`ObjectWriter::commit`], so a container never has to be held whole in
//! memory.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::{Error, Result};

/// Storage of immutable, named objects.
pub trait BlobStore: Send + Sync {
    /// Stores a new object atomically and durably; fails with
    /// [`Error::AlreadyExists`] if `key` exists.
    fn put(&self, key: &str, data: &[u8]) -> Result<()>;
    /// Reads a whole object.
    fn get(&self, key: &str) -> Result<Vec<u8>>;
    /// Reads `len` bytes at `offset`; a short object is [`Error::Truncated`].
    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>>;
    /// The size of an object.
    fn size(&self, key: &str) -> Result<u64>;
    /// Every key that starts with `prefix` (a folder such as `data/`), sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// Removes an object (missing objects are not an error).
    fn delete(&self, key: &str) -> Result<()>;
    /// Where the store lives, for messages.
    fn describe(&self) -> String;
    /// Reads an object from its start as a stream (the default reads it
    /// whole first).
    fn reader<'a>(&'a self, key: &str) -> Result<Box<dyn Read + Send + 'a>> {
        Ok(Box::new(io::Cursor::new(self.get(key)?)))
    }
    /// Sets (`true`) or releases (`false`) the retention lock of an object:
    /// a locked object cannot be deleted or changed, not even by root,
    /// until released. Only the retention code calls this. Backends without
    /// immutability refuse with [`Error::Backend`].
    fn retention_lock(&self, key: &str, locked: bool) -> Result<()> {
        let _ = (key, locked);
        Err(Error::Backend {
            store: self.describe(),
            reason: "this store has no retention locks".into(),
        })
    }
    /// Takes what the backend has to report since it was last asked: a
    /// pool running degraded, shards healed from parity, members that
    /// failed. Jobs add these to their log as warnings.
    fn notices(&self) -> Vec<String> {
        Vec::new()
    }
    /// Starts a new object that is written in pieces and appears, atomically
    /// and durably, on [`ObjectWriter::commit`]; dropped uncommitted it
    /// leaves nothing. The default buffers the pieces and calls `put`.
    fn create<'a>(&'a self, key: &str) -> Result<Box<dyn ObjectWriter + 'a>> {
        check_key(key)?;
        Ok(Box::new(Buffered {
            store: self,
            key: key.to_string(),
            buf: Vec::new(),
        }))
    }
}

/// A new object being written; see [`BlobStore::create`].
pub trait ObjectWriter: Send {
    /// Appends bytes.
    fn write(&mut self, data: &[u8]) -> Result<()>;
    /// Makes the object exist, whole; fails with [`Error::AlreadyExists`]
    /// if meanwhile another object took its key.
    fn commit(self: Box<Self>) -> Result<()>;
}

struct Buffered<'a, S: BlobStore + ?Sized> {
    store: &'a S,
    key: String,
    buf: Vec<u8>,
}

impl<S: BlobStore + ?Sized> ObjectWriter for Buffered<'_, S> {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(data);
        Ok(())
    }
    fn commit(self: Box<Self>) -> Result<()> {
        self.store.put(&self.key, &self.buf)
    }
}

/// Free space a [`DirStore`] keeps when writing containers: a backup that
/// fills the filesystem stops here, so the catalog beside the store can
/// still record how the job ended and index objects and snapshot records
/// can still be written.
pub const DATA_RESERVE: u64 = 256 * 1024;

/// A [`DirStore`] object being written: a file under `tmp/`, linked to its
/// key on commit, removed if never committed.
struct DirWriter<'a> {
    store: &'a DirStore,
    key: String,
    dest: PathBuf,
    tmp: PathBuf,
    file: File,
    /// Written in pieces through [`BlobStore::create`] (containers): it
    /// must leave [`DATA_RESERVE`] free. Objects `put` whole (index
    /// objects, snapshot records) may use the reserve.
    bulk: bool,
}

impl DirWriter<'_> {
    /// Fails like a full disk when writing `len` more bytes of a container
    /// would eat into [`DATA_RESERVE`].
    fn check_reserve(&self, len: usize) -> Result<()> {
        if !self.bulk {
            return Ok(());
        }
        let Ok(st) = nix::sys::statvfs::statvfs(&self.store.root) else {
            return Ok(());
        };
        let free = st.blocks_available().saturating_mul(st.fragment_size());
        if free < len as u64 + DATA_RESERVE {
            return Err(Error::io(
                "write",
                &self.tmp,
                io::Error::new(
                    io::ErrorKind::StorageFull,
                    format!(
                        "No space left on device: {} KiB free, and the store keeps its last {} KiB for the catalog and index",
                        free / 1024,
                        DATA_RESERVE / 1024
                    ),
                ),
            ));
        }
        Ok(())
    }
}

impl ObjectWriter for DirWriter<'_> {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.check_reserve(data.len())?;
        self.file
            .write_all(data)
            .map_err(|e| Error::io("write", &self.tmp, e))
    }

    fn commit(self: Box<Self>) -> Result<()> {
        self.file
            .sync_all()
            .map_err(|e| Error::io("sync", &self.tmp, e))?;
        self.store.publish(&self.key, &self.tmp, &self.dest)
    }
}

impl Drop for DirWriter<'_> {
    fn drop(&mut self) {
        // Committed or not, the temporary name goes (a committed object
        // lives on under its key through the hard link).
        let _ = fs::remove_file(&self.tmp);
    }
}

/// Checks that an object key is a safe relative name (no `..`, no absolute
/// path, no empty component): what every backend accepts.
pub fn check_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && !key.starts_with('/')
        && key
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'));
    if ok {
        Ok(())
    } else {
        Err(Error::Corrupt {
            what: format!("object key '{key}'"),
            reason: "not a safe relative name".into(),
        })
    }
}

/// A store in a directory of a mounted filesystem.
#[derive(Debug)]
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    /// Opens (does not create) a directory store at `root`.
    pub fn new(root: impl Into<PathBuf>) -> DirStore {
        DirStore { root: root.into() }
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    /// Removes temporary files left by processes that are no longer alive
    /// (a killed backup leaves its half-written object under `tmp/`).
    pub fn clean_tmp(&self, is_alive: impl Fn(u32) -> bool) -> Result<usize> {
        let dir = self.root.join("tmp");
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io("list", &dir, e)),
        };
        let mut removed = 0;
        for ent in rd {
            let ent = ent.map_err(|e| Error::io("list", &dir, e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            let pid = name.split('-').next().and_then(|p| p.parse::<u32>().ok());
            if pid.is_none_or(|p| !is_alive(p)) {
                let p = ent.path();
                fs::remove_file(&p).map_err(|e| Error::io("remove", &p, e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync directory", dir, e))
}

impl DirStore {
    /// Gives a written and synced temporary file its key.
    fn publish(&self, key: &str, tmp: &Path, dest: &Path) -> Result<()> {
        let parent = dest.parent().unwrap_or(&self.root);
        if !parent.exists() {
            fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
            // New folders must themselves survive a power cut (keys are
            // at most two levels deep: `data/ab/…`).
            sync_dir(parent.parent().unwrap_or(&self.root))?;
            sync_dir(&self.root)?;
        }
        // link(2) fails if the destination exists: no object is ever replaced.
        fs::hard_link(tmp, dest).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                Error::AlreadyExists { key: key.into() }
            } else {
                Error::io("link", dest, e)
            }
        })?;
        sync_dir(parent)
    }

    fn writer(&self, key: &str, bulk: bool) -> Result<DirWriter<'_>> {
        let dest = self.path(key)?;
        if dest.exists() {
            return Err(Error::AlreadyExists { key: key.into() });
        }
        let tmp_dir = self.root.join("tmp");
        fs::create_dir_all(&tmp_dir).map_err(|e| Error::io("create", &tmp_dir, e))?;
        let mut nonce = [0u8; 8];
        coffer_keys::random_bytes(&mut nonce)?;
        let tmp = tmp_dir.join(format!("{}-{}", std::process::id(), hex::encode(nonce)));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        Ok(DirWriter {
            store: self,
            bulk,
            key: key.to_string(),
            dest,
            tmp,
            file,
        })
    }
}

impl BlobStore for DirStore {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        let mut w = Box::new(self.writer(key, false)?);
        w.write(data)?;
        w.commit()
    }

    fn create<'a>(&'a self, key: &str) -> Result<Box<dyn ObjectWriter + 'a>> {
        Ok(Box::new(self.writer(key, true)?))
    }

    fn reader<'a>(&'a self, key: &str) -> Result<Box<dyn Read + Send + 'a>> {
        let p = self.path(key)?;
        let f = File::open(&p).map_err(|e| Error::from_io_get(key, &p, e))?;
        Ok(Box::new(io::BufReader::with_capacity(1 << 20, f)))
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        let p = self.path(key)?;
        fs::read(&p).map_err(|e| Error::from_io_get(key, &p, e))
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let p = self.path(key)?;
        let mut f = File::open(&p).map_err(|e| Error::from_io_get(key, &p, e))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::io("seek", &p, e))?;
        let want = usize::try_from(len).map_err(|_| Error::Truncated {
            key: key.into(),
            detail: format!("range of {len} bytes is too large"),
        })?;
        let mut buf = Vec::with_capacity(want);
        f.take(len)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io("read", &p, e))?;
        if buf.len() != want {
            return Err(Error::Truncated {
                key: key.into(),
                detail: format!(
                    "wanted {len} bytes at offset {offset}, object ends after {}",
                    buf.len()
                ),
            });
        }
        Ok(buf)
    }

    fn size(&self, key: &str) -> Result<u64> {
        let p = self.path(key)?;
        fs::metadata(&p)
            .map(|m| m.len())
            .map_err(|e| Error::from_io_get(key, &p, e))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let dir_part = prefix.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let start = if dir_part.is_empty() {
            self.root.clone()
        } else {
            self.path(dir_part)?
        };
        let mut out = Vec::new();
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            let rd = match fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("list", &dir, e)),
            };
            for ent in rd {
                let ent = ent.map_err(|e| Error::io("list", &dir, e))?;
                let path = ent.path();
                let ft = ent.file_type().map_err(|e| Error::io("stat", &path, e))?;
                let Ok(rel) = path.strip_prefix(&self.root) else {
                    continue;
                };
                let Some(rel) = rel.to_str() else { continue };
                if ft.is_dir() {
                    stack.push(path.clone());
                } else if rel.starts_with(prefix) && !rel.starts_with("tmp/") {
                    out.push(rel.to_string());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let p = self.path(key)?;
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                Err(Error::Locked { key: key.into() })
            }
            Err(e) => Err(Error::io("remove", &p, e)),
        }
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    /// The filesystem's immutable attribute (`chattr +i`): needs root and
    /// a filesystem that has it (ext4, xfs, btrfs; not every tmpfs).
    fn retention_lock(&self, key: &str, locked: bool) -> Result<()> {
        let p = self.path(key)?;
        if !p.exists() {
            return Err(Error::NotFound { key: key.into() });
        }
        coffer_block::set_immutable(&p, locked).map_err(|e| Error::Backend {
            store: self.describe(),
            reason: format!("retention lock on '{key}': {e}"),
        })
    }
}

/// A store in memory: for tests and tools. Shipped code, same contract.
#[derive(Debug, Default)]
pub struct MemStore {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemStore {
    /// An empty memory store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        // A panic while holding the lock cannot leave the map half-updated
        // (every operation is a single insert/remove), so poisoning is ignored.
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces an object's bytes in place: for tests that simulate bit rot.
    pub fn corrupt(&self, key: &str, f: impl FnOnce(&mut Vec<u8>)) -> bool {
        match self.lock().get_mut(key) {
            Some(v) => {
                f(v);
                true
            }
            None => false,
        }
    }
}

impl BlobStore for MemStore {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        check_key(key)?;
        let mut m = self.lock();
        if m.contains_key(key) {
            return Err(Error::AlreadyExists { key: key.into() });
        }
        m.insert(key.to_string(), data.to_vec());
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.lock()
            .get(key)
            .cloned()
            .ok_or_else(|| Error::NotFound { key: key.into() })
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let m = self.lock();
        let v = m
            .get(key)
            .ok_or_else(|| Error::NotFound { key: key.into() })?;
        let end = offset.checked_add(len);
        match end {
            Some(end) if end <= v.len() as u64 => Ok(v[offset as usize..end as usize].to_vec()),
            _ => Err(Error::Truncated {
                key: key.into(),
                detail: format!(
                    "wanted {len} bytes at offset {offset}, object has {}",
                    v.len()
                ),
            }),
        }
    }

    fn size(&self, key: &str) -> Result<u64> {
        self.lock()
            .get(key)
            .map(|v| v.len() as u64)
            .ok_or_else(|| Error::NotFound { key: key.into() })
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .lock()
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.lock().remove(key);
        Ok(())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract(s: &dyn BlobStore) {
        s.put("data/ab/abc", b"hello world").unwrap();
        assert!(matches!(
            s.put("data/ab/abc", b"other"),
            Err(Error::AlreadyExists { .. })
        ));
        assert_eq!(s.get("data/ab/abc").unwrap(), b"hello world");
        assert_eq!(s.get_range("data/ab/abc", 6, 5).unwrap(), b"world");
        assert!(matches!(
            s.get_range("data/ab/abc", 6, 6),
            Err(Error::Truncated { .. })
        ));
        assert_eq!(s.size("data/ab/abc").unwrap(), 11);
        s.put("snapshots/1", b"s").unwrap();
        assert_eq!(s.list("data/").unwrap(), vec!["data/ab/abc".to_string()]);
        assert_eq!(
            s.list("snapshots/").unwrap(),
            vec!["snapshots/1".to_string()]
        );
        assert!(matches!(s.get("nope"), Err(Error::NotFound { .. })));
        for bad in ["../x", "/etc/passwd", "a//b", "a/./b", ""] {
            assert!(s.put(bad, b"x").is_err(), "{bad}");
        }
        s.delete("snapshots/1").unwrap();
        s.delete("snapshots/1").unwrap();
        assert!(s.list("snapshots/").unwrap().is_empty());
    }

    #[test]
    fn dir_store_meets_the_contract() {
        let d = tempfile::tempdir().unwrap();
        let s = DirStore::new(d.path());
        contract(&s);
        // no temporary files are left behind
        assert_eq!(fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn mem_store_meets_the_contract() {
        contract(&MemStore::new());
        written_in_pieces(&MemStore::new());
    }

    /// Objects written in pieces appear whole on commit, never before, and
    /// never replace an object.
    fn written_in_pieces(s: &dyn BlobStore) {
        let mut w = s.create("data/cd/cde").unwrap();
        w.write(b"hello ").unwrap();
        w.write(b"world").unwrap();
        assert!(matches!(s.get("data/cd/cde"), Err(Error::NotFound { .. })));
        w.commit().unwrap();
        assert_eq!(s.get("data/cd/cde").unwrap(), b"hello world");
        let mut r = Vec::new();
        s.reader("data/cd/cde")
            .unwrap()
            .read_to_end(&mut r)
            .unwrap();
        assert_eq!(r, b"hello world");
        // abandoned: nothing appears
        let mut w = s.create("data/cd/gone").unwrap();
        w.write(b"half").unwrap();
        drop(w);
        assert!(matches!(s.get("data/cd/gone"), Err(Error::NotFound { .. })));
        // an object created meanwhile wins; the late writer fails
        let mut w = s.create("data/cd/race").unwrap();
        w.write(b"late").unwrap();
        s.put("data/cd/race", b"first").unwrap();
        assert!(matches!(w.commit(), Err(Error::AlreadyExists { .. })));
        assert_eq!(s.get("data/cd/race").unwrap(), b"first");
        assert!(s.create("../escape").is_err());
    }

    #[test]
    fn dir_store_writes_in_pieces_without_leftovers() {
        let d = tempfile::tempdir().unwrap();
        let s = DirStore::new(d.path());
        written_in_pieces(&s);
        assert_eq!(fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn clean_tmp_removes_only_dead_writers_files() {
        let d = tempfile::tempdir().unwrap();
        let s = DirStore::new(d.path());
        fs::create_dir_all(d.path().join("tmp")).unwrap();
        fs::write(d.path().join("tmp/999999-aa"), b"x").unwrap();
        fs::write(d.path().join("tmp/1-bb"), b"x").unwrap();
        assert_eq!(s.clean_tmp(|pid| pid == 1).unwrap(), 1);
        assert!(d.path().join("tmp/1-bb").exists());
    }
}
