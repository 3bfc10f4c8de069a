//! The golden tape fixture: a virtual library holding a media set written by
//! Coffer's first tape format, recovered and restored by today's code.
//! `tests/fixtures/tape-v1/` is written once, by
//! `COFFER_WRITE_TAPE_FIXTURE=1 cargo test -p coffer-media --test golden`,
//! and committed; it is never regenerated for a format change (a new format
//! gets a new fixture, and this one must still read).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
use common::*;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use coffer_catalog::Catalog;
use coffer_engine::{Actor, BackupRequest, Progress, RestoreRequest};
use coffer_keys::{KdfParams, Passphrase};
use coffer_media::restore::RecoverRequest;
use coffer_media::set::{self, WriteRequest};
use coffer_store::{BlobStore, DirStore, InitOptions, Repo};
use coffer_tape::{VirtualLibrary, VtlOptions};
use coffer_types::Level;

const PASS: &[u8] = b"golden tape fixture";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tape-v1")
}

/// The tree the fixture's snapshot holds.
fn tree() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("a.txt", b"coffer tape golden fixture\n".to_vec()),
        ("dir/b.bin", noise(40_000, 1)),
        ("dir/c.bin", noise(30_000, 2)),
    ]
}

fn actor() -> Actor {
    Actor {
        identity: "golden".into(),
        host: "golden".into(),
    }
}

fn write_fixture(dir: &Path) {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let pass = Passphrase::new(PASS.to_vec()).unwrap();
    let store = t.path().join("store");
    fs::create_dir(&store).unwrap();
    let blobs: Arc<dyn BlobStore> = Arc::new(DirStore::new(&store));
    Repo::init(
        blobs.clone(),
        &pass,
        InitOptions {
            container_size: 1 << 20,
            kdf: KdfParams {
                m_kib: 1024,
                t: 1,
                p: 1,
            },
            ..InitOptions::default()
        },
    )
    .unwrap();
    let repo = Repo::open(blobs, &pass).unwrap();
    let catalog = Catalog::open(&store.join("catalog.db")).unwrap();
    // Two backups, so two containers: the set spans two cartridges.
    for (i, level) in [(2, Level::Full), (3, Level::Incremental)] {
        for (name, bytes) in &tree()[..i] {
            let p = src.join(name);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, bytes).unwrap();
        }
        coffer_engine::backup(
            &repo,
            &catalog,
            &BackupRequest {
                asset: "golden".into(),
                level,
                source: src.clone(),
                excludes: Vec::new(),
                one_file_system: false,
                threads: 1,
                compression_level: None,
            },
            &actor(),
            &Progress::default(),
        )
        .unwrap();
    }
    let _ = fs::remove_dir_all(dir);
    let mut lib = VirtualLibrary::create(
        dir,
        &VtlOptions {
            drives: 1,
            slots: 4,
            ie_slots: 1,
            capacity: 64 << 10,
            early_warning: 16 << 10,
            cartridges: 3,
            worm: 0,
            cleaning: 0,
            prefix: "GF".into(),
        },
    )
    .unwrap();
    for b in ["GF0001L9", "GF0002L9", "GF0003L9"] {
        set::label(&mut lib, &catalog, 0, b, "golden", false).unwrap();
    }
    let req = WriteRequest {
        block_size: 4096,
        archive_bytes: 32 << 10,
        ..WriteRequest::new("golden")
    };
    let out = set::write(&repo, &catalog, &mut lib, &req, &actor(), &nop).unwrap();
    assert!(out.cartridges.len() >= 2, "{:?}", out.cartridges);
    for name in ["lock", "drive-0.lock"] {
        let _ = fs::remove_file(dir.join(name));
    }
}

#[test]
fn the_first_tape_format_still_recovers() {
    if std::env::var_os("COFFER_WRITE_TAPE_FIXTURE").is_some() {
        write_fixture(&fixture());
    }
    let t = tempfile::tempdir().unwrap();
    let vtl = t.path().join("vtl");
    copy_dir(&fixture(), &vtl);
    // Byte-level anchors: the cartridge file and block magics.
    let cart = fs::read(vtl.join("cartridges/GF0001L9")).unwrap();
    assert_eq!(cart[..8], [0x72, 0x47, 0xb4, 0x7c, 0xd2, 0x59, 0xc5, 0x32]);
    assert_eq!(
        cart[72..80],
        [0xac, 0xb0, 0xb3, 0xd3, 0x38, 0xbc, 0xc2, 0x07],
        "file 0 starts with a block"
    );
    let mut lib = VirtualLibrary::open(&vtl).unwrap();
    {
        use coffer_tape::MediaChanger;
        lib.changer_handle().load_barcode("GF0002L9", 0).unwrap();
        let mut d = lib.drive_handle(0).unwrap();
        let labels = set::read_labels(&mut d, "GF0002L9").unwrap();
        let m = labels.media.unwrap();
        assert_eq!(
            (m.barcode.as_str(), m.pool.as_str()),
            ("GF0002L9", "golden")
        );
        let s = labels.set.unwrap();
        assert_eq!(s.seq, 2);
        assert_eq!(s.block_size, 4096);
        assert!(s.key_fingerprint.is_some() && s.wrapped_key.is_some());
        coffer_tape::TapeDrive::unload(&mut d).unwrap();
        drop(d);
        lib.changer_handle().unload_drive(0).unwrap();
    }
    let pass = Passphrase::new(PASS.to_vec()).unwrap();
    let (repo, catalog, rec) = coffer_media::restore::recover(
        &mut lib,
        &pass,
        &RecoverRequest {
            store: t.path().join("store"),
            set: None,
            drive: 0,
            incomplete: false,
        },
        &actor(),
        &nop,
    )
    .unwrap();
    assert!(rec.lost.is_empty() && rec.missing.is_empty(), "{rec:?}");
    assert_eq!(rec.snapshots, 2);
    let snap = catalog.resolve_snapshot("latest").unwrap().id;
    let target = t.path().join("restored");
    let o = coffer_engine::restore(
        &repo,
        &catalog,
        &RestoreRequest {
            snapshot: snap,
            target: target.clone(),
            paths: Vec::new(),
            overwrite: false,
            threads: 1,
        },
        &actor(),
        &Progress::default(),
    )
    .unwrap();
    assert!(o.errors.is_empty(), "{:?}", o.errors);
    for (name, bytes) in tree() {
        assert_eq!(fs::read(target.join(name)).unwrap(), bytes, "{name}");
    }
}
