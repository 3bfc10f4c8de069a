//! The receiving side's storage: one directory per replicated store,
//! `<root>/<store id hex>/`, laid out as a directory store (so the copy
//! opens with `DirStore` and the passphrase alone), plus `.partial/` for
//! objects whose transfer was interrupted. Only ciphertext ever arrives:
//! the store's objects are sealed before they leave the source.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::Error;
use crate::wire::Have;

/// The key prefixes a store's objects live under, in the order they are
/// sent (snapshot records last: a replica never names a container it does
/// not hold).
pub const PREFIXES: [&str; 7] = [
    "config",
    "keys/",
    "datakeys/",
    "mediakeys/",
    "data/",
    "index/",
    "snapshots/",
];

/// Whether `key` is one a store can have: one of [`PREFIXES`], then path
/// components of `[0-9A-Za-z._-]` that are not `.` or `..`. Anything else
/// from a peer is refused before it touches the disk.
pub fn valid_key(key: &str) -> bool {
    if key == "config" {
        return true;
    }
    let Some(rest) = PREFIXES[1..].iter().find_map(|p| key.strip_prefix(p)) else {
        return false;
    };
    key.len() <= 256
        && !rest.is_empty()
        && rest.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

/// One store's replica.
#[derive(Debug)]
pub struct Replica {
    dir: PathBuf,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Storage(format!("{what} '{}': {e}", path.display()))
}

impl Replica {
    /// Opens (creating) the replica of store `id` under `root`.
    pub fn open(root: &Path, id: &[u8; 16]) -> Result<Replica, Error> {
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let dir = root.join(hex);
        fs::create_dir_all(dir.join(".partial")).map_err(|e| io("create", &dir, e))?;
        Ok(Replica { dir })
    }

    /// The replica's directory (a directory store).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    fn partial(&self, key: &str) -> PathBuf {
        self.dir.join(".partial").join(key.replace('/', "%"))
    }

    /// What it holds: whole objects and interrupted ones, sorted by key.
    pub fn inventory(&self) -> Result<Vec<Have>, Error> {
        let mut out = Vec::new();
        walk(&self.dir, &self.dir, &mut out)?;
        let pdir = self.dir.join(".partial");
        for e in fs::read_dir(&pdir).map_err(|e| io("list", &pdir, e))? {
            let e = e.map_err(|e| io("list", &pdir, e))?;
            let name = e.file_name().to_string_lossy().replace('%', "/");
            if valid_key(&name) {
                let size = e.metadata().map_err(|er| io("stat", &e.path(), er))?.len();
                out.push(Have {
                    key: name,
                    size,
                    complete: false,
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key).then(b.complete.cmp(&a.complete)));
        Ok(out)
    }

    /// Starts or resumes receiving `key` at `offset`, which must be what
    /// the partial file holds (0 starts over). An object held whole is
    /// never replaced: store objects are immutable, a sender only sends
    /// what the inventory lacks, and a sender that tries anyway (a
    /// compromised primary) must not be able to rewrite the offsite copy.
    pub fn receive(&self, key: &str, offset: u64) -> Result<Incoming, Error> {
        if !valid_key(key) {
            return Err(Error::Protocol(format!(
                "the peer sent an object named '{key}', which no store has"
            )));
        }
        if self.path(key).exists() {
            return Err(Error::Refused(format!(
                "this replica already holds '{key}' whole; store objects are immutable and a held one is never replaced"
            )));
        }
        let path = self.partial(key);
        let mut hasher = blake3::Hasher::new();
        let file = if offset == 0 {
            File::create(&path).map_err(|e| io("create", &path, e))?
        } else {
            let mut f = OpenOptions::new()
                .read(true)
                .append(true)
                .open(&path)
                .map_err(|e| io("open", &path, e))?;
            let have = f.metadata().map_err(|e| io("stat", &path, e))?.len();
            if have != offset {
                return Err(Error::Protocol(format!(
                    "the peer resumes '{key}' at byte {offset}, but {have} bytes are held"
                )));
            }
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf).map_err(|e| io("read", &path, e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            f
        };
        Ok(Incoming {
            key: key.to_string(),
            partial: path,
            dest: self.path(key),
            file,
            hasher,
            len: offset,
        })
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<Have>) -> Result<(), Error> {
    for e in fs::read_dir(dir).map_err(|e| io("list", dir, e))? {
        let e = e.map_err(|e| io("list", dir, e))?;
        let path = e.path();
        let ft = e.file_type().map_err(|er| io("stat", &path, er))?;
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        let key = rel.to_string_lossy().to_string();
        if ft.is_dir() {
            if key != ".partial" {
                walk(root, &path, out)?;
            }
        } else if ft.is_file() && valid_key(&key) {
            let size = e.metadata().map_err(|er| io("stat", &path, er))?.len();
            out.push(Have {
                key,
                size,
                complete: true,
            });
        }
    }
    Ok(())
}

/// An object arriving.
#[derive(Debug)]
pub struct Incoming {
    key: String,
    partial: PathBuf,
    dest: PathBuf,
    file: File,
    hasher: blake3::Hasher,
    len: u64,
}

impl Incoming {
    /// Bytes held so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing is held yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a piece.
    pub fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        self.file
            .write_all(data)
            .map_err(|e| io("write", &self.partial, e))?;
        self.hasher.update(data);
        self.len += data.len() as u64;
        Ok(())
    }

    /// Ends it: if what arrived hashes to `expected`, it is synced and put
    /// in place and `Ok(Some(hash))`; otherwise
    /// it is discarded and `Ok(None)` with the hash of what arrived.
    pub fn finish(self, expected: &[u8; 32]) -> Result<(bool, [u8; 32]), Error> {
        let hash = *self.hasher.finalize().as_bytes();
        if hash != *expected {
            drop(self.file);
            let _ = fs::remove_file(&self.partial);
            tracing::warn!(key = %self.key, "an object arrived damaged: discarded");
            return Ok((false, hash));
        }
        self.file
            .sync_all()
            .map_err(|e| io("sync", &self.partial, e))?;
        if let Some(parent) = self.dest.parent() {
            fs::create_dir_all(parent).map_err(|e| io("create", parent, e))?;
        }
        fs::rename(&self.partial, &self.dest).map_err(|e| io("rename", &self.dest, e))?;
        if let Some(parent) = self.dest.parent()
            && let Ok(d) = File::open(parent)
        {
            let _ = d.sync_all();
        }
        Ok((true, hash))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn only_keys_a_store_has_are_valid() {
        for k in [
            "config",
            "keys/00000001",
            "data/ab/abcdef0123",
            "index/abcdef",
            "snapshots/66613c93ef7739be",
        ] {
            assert!(valid_key(k), "{k}");
        }
        for k in [
            "",
            "../etc/passwd",
            "data/../../etc/passwd",
            "data/",
            "data//x",
            "data/./x",
            "/data/x",
            "catalog.db",
            "configx",
            "data/ab/x y",
            "data/ab/x%y",
            ".partial/x",
        ] {
            assert!(!valid_key(k), "{k}");
        }
    }

    #[test]
    fn an_interrupted_object_resumes_and_a_damaged_one_is_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let r = Replica::open(dir.path(), &[1; 16]).unwrap();
        let data = b"0123456789abcdef".repeat(1000);
        let hash = *blake3::hash(&data).as_bytes();
        let mut i = r.receive("data/ab/abcd", 0).unwrap();
        i.write(&data[..5000]).unwrap();
        drop(i);
        let inv = r.inventory().unwrap();
        assert_eq!(
            inv,
            vec![Have {
                key: "data/ab/abcd".into(),
                size: 5000,
                complete: false
            }]
        );
        assert!(r.receive("data/ab/abcd", 4000).is_err(), "a wrong offset");
        let mut i = r.receive("data/ab/abcd", 5000).unwrap();
        i.write(&data[5000..]).unwrap();
        assert_eq!(i.finish(&hash).unwrap(), (true, hash));
        assert_eq!(fs::read(r.dir().join("data/ab/abcd")).unwrap(), data);
        assert!(r.inventory().unwrap()[0].complete);
        // A held object is never received again: the stored copy untouched.
        let e = r.receive("data/ab/abcd", 0).unwrap_err().to_string();
        assert!(e.contains("never replaced"), "{e}");
        assert_eq!(fs::read(r.dir().join("data/ab/abcd")).unwrap(), data);
        // Damaged: discarded, nothing stored.
        let mut i = r.receive("data/cd/cdef", 0).unwrap();
        i.write(b"garbage").unwrap();
        let (ok, _) = i.finish(&hash).unwrap();
        assert!(!ok);
        assert!(!r.dir().join("data/cd/cdef").exists());
        assert_eq!(fs::read(r.dir().join("data/ab/abcd")).unwrap(), data);
        assert_eq!(r.inventory().unwrap().len(), 1);
        let e = r.receive("../../etc/passwd", 0).unwrap_err().to_string();
        assert!(e.contains("no store has"), "{e}");
    }
}
