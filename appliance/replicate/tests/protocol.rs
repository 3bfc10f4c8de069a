//! Replication sessions between a real store and a replica directory over
//! a socket pair: everything arrives and restores with the passphrase
//! alone; a second push sends only what is new; a cut link resumes at the
//! byte it stopped; a damaged object is caught by the receiver's hash; a
//! refused store and a hostile object name leave nothing behind.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use coffer_catalog::Catalog;
use coffer_engine::{Actor, BackupRequest, Progress, RestoreRequest};
use coffer_keys::{KdfParams, Passphrase};
use coffer_replicate::session::Stream;
use coffer_replicate::wire::{self, Msg};
use coffer_replicate::{Error, PushReport, ServeReport, TokenBucket, push, serve};
use coffer_store::{BlobStore, DirStore, InitOptions, Repo};
use coffer_types::Level;

struct World {
    t: tempfile::TempDir,
    src: PathBuf,
    store: Arc<DirStore>,
    repo: Repo,
    catalog: Catalog,
    id: [u8; 16],
}

fn pass() -> Passphrase {
    Passphrase::new(b"offsite copy test".to_vec()).unwrap()
}

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn world() -> World {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    for i in 0..6u64 {
        std::fs::write(src.join(format!("blob{i}")), noise(i + 1, 300_000)).unwrap();
    }
    let dir = t.path().join("store");
    let store = Arc::new(DirStore::new(&dir));
    let init = InitOptions {
        container_size: 1024 * 1024,
        kdf: KdfParams {
            m_kib: 1024,
            t: 1,
            p: 1,
        },
        ..InitOptions::default()
    };
    Repo::init(store.clone(), &pass(), init).unwrap();
    let repo = Repo::open(store.clone(), &pass()).unwrap();
    let catalog = Catalog::open(&dir.join("catalog.db")).unwrap();
    let id = repo.config().store_id.0;
    let w = World {
        t,
        src,
        store,
        repo,
        catalog,
        id,
    };
    w.backup(Level::Full);
    w
}

impl World {
    fn backup(&self, level: Level) {
        coffer_engine::backup(
            &self.repo,
            &self.catalog,
            &BackupRequest {
                asset: "srv".into(),
                level,
                source: self.src.clone(),
                excludes: Vec::new(),
                one_file_system: false,
                threads: 2,
                compression_level: None,
            },
            &Actor {
                identity: "test".into(),
                host: "test".into(),
            },
            &Progress::default(),
        )
        .unwrap();
    }

    fn offsite(&self) -> PathBuf {
        self.t.path().join("offsite")
    }

    fn replica_dir(&self) -> PathBuf {
        let hex: String = self.id.iter().map(|b| format!("{b:02x}")).collect();
        self.offsite().join(hex)
    }

    /// Runs a session: `wrap` may damage or cut the sender's side.
    fn session(
        &self,
        wrap: impl FnOnce(UnixStream) -> Box<dyn Stream>,
    ) -> (Result<PushReport, Error>, Result<ServeReport, Error>) {
        let (a, mut b) = UnixStream::pair().unwrap();
        let root = self.offsite();
        let receiver = std::thread::spawn(move || serve(&mut b, &root, &|_, _| Ok(())));
        let mut s = wrap(a);
        let pushed = push(
            &mut *s,
            self.store.as_ref(),
            self.id,
            "coffer-01",
            &mut TokenBucket::new(0),
            &mut |_| {},
        );
        drop(s);
        (pushed, receiver.join().unwrap())
    }

    fn objects(&self) -> Vec<(String, u64)> {
        let mut v = Vec::new();
        for p in coffer_replicate::replica::PREFIXES {
            for k in self.store.list(p).unwrap() {
                if p != "config" || k == "config" {
                    let size = self.store.size(&k).unwrap();
                    v.push((k, size));
                }
            }
        }
        v
    }
}

/// Fails every write after `left` bytes (the link is cut).
struct CutAfter {
    inner: UnixStream,
    left: usize,
}

impl Read for CutAfter {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl Write for CutAfter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            let _ = self.inner.shutdown(std::net::Shutdown::Both);
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "cut",
            ));
        }
        let n = buf.len().min(self.left);
        let n = self.inner.write(&buf[..n])?;
        self.left -= n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Flips one byte inside the first large write (a data frame).
struct FlipOnce {
    inner: UnixStream,
    done: bool,
}

impl Read for FlipOnce {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl Write for FlipOnce {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.done && buf.len() > 64 * 1024 {
            self.done = true;
            let mut copy = buf[..4096].to_vec();
            copy[1000] ^= 0x40;
            return self.inner.write(&copy);
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn plain(s: UnixStream) -> Box<dyn Stream> {
    Box::new(s)
}

fn files(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// Opens the replica as a store with the passphrase alone, rebuilds a
/// catalog from it and restores the newest snapshot; compares with `src`.
fn restore_from_replica(w: &World) {
    let blobs: Arc<dyn BlobStore> = Arc::new(DirStore::new(w.replica_dir()));
    let repo = Repo::open(blobs, &pass()).unwrap();
    let mut catalog = Catalog::open(&w.t.path().join("dr-catalog.db")).unwrap();
    coffer_engine::rebuild_catalog(&repo, &mut catalog).unwrap();
    let snap = catalog.snapshots(None).unwrap().last().unwrap().id;
    let target = w.t.path().join(format!("restored-{snap}"));
    let out = coffer_engine::restore(
        &repo,
        &catalog,
        &RestoreRequest {
            snapshot: snap,
            target: target.clone(),
            paths: Vec::new(),
            overwrite: false,
            threads: 2,
        },
        &Actor {
            identity: "test".into(),
            host: "dr".into(),
        },
        &Progress::default(),
    )
    .unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(files(&target), files(&w.src));
}

#[test]
fn a_push_copies_every_object_verified_and_the_copy_restores_with_the_passphrase_alone() {
    let w = world();
    let (pushed, served) = w.session(plain);
    let p = pushed.unwrap();
    let s = served.unwrap();
    let objects = w.objects();
    assert_eq!(p.objects, objects.len() as u64);
    assert_eq!((p.sent, p.skipped), (objects.len() as u64, 0));
    assert_eq!(p.verified, p.sent);
    assert!(p.mismatched.is_empty());
    let total: u64 = objects.iter().map(|(_, s)| s).sum();
    assert_eq!(p.bytes_sent, total);
    assert_eq!((s.stored, s.bytes), (p.sent, total));
    assert_eq!(s.source, "coffer-01");
    // The replica holds exactly the store's objects, byte for byte: only
    // ciphertext (no catalog, no key material beyond the sealed key file).
    for (k, _) in &objects {
        assert_eq!(
            std::fs::read(w.replica_dir().join(k)).unwrap(),
            w.store.get(k).unwrap(),
            "{k}"
        );
    }
    assert!(!w.replica_dir().join("catalog.db").exists());
    restore_from_replica(&w);
}

#[test]
fn a_second_push_sends_only_the_new_objects() {
    let w = world();
    w.session(plain).0.unwrap();
    let before: std::collections::HashSet<String> =
        w.objects().into_iter().map(|(k, _)| k).collect();
    std::fs::write(w.src.join("blob0"), noise(99, 300_000)).unwrap();
    w.backup(Level::Incremental);
    let new: Vec<(String, u64)> = w
        .objects()
        .into_iter()
        .filter(|(k, _)| !before.contains(k))
        .collect();
    assert!(!new.is_empty());
    let p = w.session(plain).0.unwrap();
    assert_eq!(p.sent, new.len() as u64);
    assert_eq!(p.skipped, before.len() as u64);
    assert_eq!(p.bytes_sent, new.iter().map(|(_, s)| s).sum::<u64>());
    assert_eq!(p.verified, p.sent);
    restore_from_replica(&w);
}

#[test]
fn a_cut_link_resumes_where_it_stopped() {
    let w = world();
    // Cut inside the data: after 700 kB of the stream.
    let (pushed, served) = w.session(|s| {
        Box::new(CutAfter {
            inner: s,
            left: 700_000,
        })
    });
    assert!(matches!(pushed, Err(Error::Link(_))), "{pushed:?}");
    assert!(served.is_err());
    let partials: Vec<_> = std::fs::read_dir(w.replica_dir().join(".partial"))
        .unwrap()
        .collect();
    assert_eq!(partials.len(), 1, "one object was cut mid-way");
    let p = w.session(plain).0.unwrap();
    assert!(p.bytes_resumed > 0, "{p:?}");
    assert!(p.skipped > 0, "{p:?}");
    assert_eq!(p.verified, p.sent);
    let total: u64 = w.objects().iter().map(|(_, s)| s).sum();
    // Nothing was sent twice: what the first session stored or left
    // partial is not sent again.
    assert!(p.bytes_sent < total, "{p:?}");
    assert_eq!(
        std::fs::read_dir(w.replica_dir().join(".partial"))
            .unwrap()
            .count(),
        0
    );
    restore_from_replica(&w);
}

#[test]
fn a_damaged_object_is_caught_by_the_receivers_hash_and_sent_again() {
    let w = world();
    let (pushed, served) = w.session(|s| {
        Box::new(FlipOnce {
            inner: s,
            done: false,
        })
    });
    let p = pushed.unwrap();
    let s = served.unwrap();
    assert_eq!(p.mismatched.len(), 1, "{p:?}");
    assert_eq!(s.discarded, p.mismatched);
    assert_eq!(p.verified, p.sent - 1);
    let damaged = &p.mismatched[0];
    assert!(!w.replica_dir().join(damaged).exists());
    let again = w.session(plain).0.unwrap();
    assert_eq!(again.sent, 1);
    assert_eq!(again.verified, 1);
    restore_from_replica(&w);
}

#[test]
fn a_refused_store_and_a_hostile_object_name_leave_nothing_behind() {
    let w = world();
    let (a, mut b) = UnixStream::pair().unwrap();
    let root = w.offsite();
    let receiver = std::thread::spawn(move || {
        serve(&mut b, &root, &|_, source| {
            Err(format!("no replication agreement with '{source}'"))
        })
    });
    let mut a = a;
    let e = push(
        &mut a,
        w.store.as_ref(),
        w.id,
        "stranger",
        &mut TokenBucket::new(0),
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the peer refused: no replication agreement with 'stranger'"
    );
    assert!(receiver.join().unwrap().is_err());
    assert!(!w.offsite().exists());

    // A sender naming an object outside the replica.
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let root = w.offsite();
    let receiver = std::thread::spawn(move || serve(&mut b, &root, &|_, _| Ok(())));
    wire::send(
        &mut a,
        &Msg::Hello {
            store: w.id,
            source: "evil".into(),
        },
    )
    .unwrap();
    loop {
        if wire::recv(&mut a).unwrap() == Msg::InventoryEnd {
            break;
        }
    }
    wire::send(
        &mut a,
        &Msg::Begin {
            key: "../../escaped".into(),
            size: 4,
            offset: 0,
        },
    )
    .unwrap();
    let reply = wire::recv(&mut a).unwrap();
    assert!(
        matches!(&reply, Msg::Refused { message } if message.contains("no store has")),
        "{reply:?}"
    );
    let e = receiver.join().unwrap().unwrap_err().to_string();
    assert!(e.contains("'../../escaped'"), "{e}");
    assert!(!w.t.path().join("escaped").exists());
    assert!(!w.offsite().join("escaped").exists());
}
