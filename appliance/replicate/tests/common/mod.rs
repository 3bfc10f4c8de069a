//! A real store with a backup in it, a replica directory, and sessions
//! between them.

#![allow(dead_code)]

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use coffer_catalog::Catalog;
use coffer_engine::{Actor, BackupRequest, Progress, RestoreRequest};
use coffer_keys::{KdfParams, Passphrase};
use coffer_replicate::session::Stream;
use coffer_replicate::{Error, PushReport, ServeReport, TokenBucket, push, serve};
use coffer_store::{BlobStore, DirStore, InitOptions, Repo};
use coffer_types::Level;

pub mod moto;

pub struct World {
    pub t: tempfile::TempDir,
    pub src: PathBuf,
    pub store: Arc<DirStore>,
    pub repo: Repo,
    pub catalog: Catalog,
    pub id: [u8; 16],
}

pub fn pass() -> Passphrase {
    Passphrase::new(b"offsite copy test".to_vec()).unwrap()
}

pub fn noise(seed: u64, len: usize) -> Vec<u8> {
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

pub fn world() -> World {
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
    pub fn backup(&self, level: Level) {
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

    pub fn offsite(&self) -> PathBuf {
        self.t.path().join("offsite")
    }

    pub fn replica_dir(&self) -> PathBuf {
        let hex: String = self.id.iter().map(|b| format!("{b:02x}")).collect();
        self.offsite().join(hex)
    }

    /// Runs a session: `wrap` may damage or cut the sender's side.
    pub fn session(
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

    pub fn objects(&self) -> Vec<(String, u64)> {
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

pub fn plain(s: UnixStream) -> Box<dyn Stream> {
    Box::new(s)
}

pub fn files(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
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
pub fn restore_from_replica(w: &World) {
    restore_from(w, Arc::new(DirStore::new(w.replica_dir())));
}

/// Opens `blobs` as a store with the passphrase alone, rebuilds a catalog
/// from it and restores the newest snapshot; compares with `src`.
pub fn restore_from(w: &World, blobs: Arc<dyn BlobStore>) {
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
