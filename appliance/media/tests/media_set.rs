//! A store written to a media set on the virtual tape library, spanning
//! cartridges; restored through the catalog; recovered on a "new machine"
//! from the cartridges and the passphrase alone; and the ways that goes
//! wrong: damaged blocks, missing, foreign and WORM cartridges, wrong keys.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
use common::*;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use coffer_catalog::Catalog;
use coffer_engine::{Actor, BackupRequest, Progress, RestoreOutcome, RestoreRequest};
use coffer_keys::{KdfParams, Passphrase};
use coffer_media::Error;
use coffer_media::restore::{RecoverRequest, TapeRestoreRequest};
use coffer_media::set::{self, WriteRequest};
use coffer_store::{BlobStore, DirStore, InitOptions, Repo};
use coffer_tape::{MediaChanger, VirtualLibrary, VtlOptions};
use coffer_types::{JobKind, JobStatus, Level, SnapshotId};

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
/// The early-warning zone holds what the writer has in flight when the
/// drive reports it (two 1 MiB batches) plus the object it finishes.
fn world() -> World {
    world_with(6 << 20, 3 << 20)
}

fn world_with(capacity: u64, early_warning: u64) -> World {
    world_opts(capacity, early_warning, false)
}

/// `rotated`: the store's data key is rotated before the backup, so every
/// container is sealed under data key generation 2.
fn world_opts(capacity: u64, early_warning: u64, rotated: bool) -> World {
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
    if rotated {
        assert_eq!(repo.rotate_data_key(1).unwrap().generation, 2);
    }
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
            compression_level: None,
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
            capacity,
            early_warning,
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

    /// Backs up the source tree again.
    fn backup(&self, level: Level) -> coffer_engine::BackupOutcome {
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
            &self.actor,
            &Progress::default(),
        )
        .unwrap()
    }

    /// Restores the snapshot from another (recovered) store.
    fn restore_from(&self, repo: &Repo, catalog: &Catalog, target: &Path) -> RestoreOutcome {
        coffer_engine::restore(
            repo,
            catalog,
            &self.restore_req(target),
            &self.actor,
            &Progress::default(),
        )
        .unwrap()
    }

    /// Deletes the store's containers, so only tape has them.
    fn drop_containers(&self) {
        for k in self.repo.blobs().list("data/").unwrap() {
            fs::remove_file(self.t.path().join("store").join(&k)).unwrap();
        }
    }

    /// Restores the snapshot from tape through the catalog.
    fn tape_restore(
        &mut self,
        target: &Path,
        drive: u16,
    ) -> Result<coffer_media::restore::TapeRestoreOutcome, Error> {
        let req = TapeRestoreRequest {
            set: None,
            restore: self.restore_req(target),
            drive,
            staging: self.t.path().join("staging"),
        };
        coffer_media::restore::restore(
            &self.repo,
            &self.catalog,
            &mut self.lib,
            &self.pass,
            &req,
            &self.actor,
            &nop,
            &Progress::default(),
        )
    }

    /// Recovers on a new machine (`dir`, with a copy of the library).
    fn recover(
        &self,
        lib: &mut VirtualLibrary,
        dir: &Path,
        pass: &Passphrase,
    ) -> Result<(Repo, Catalog, coffer_media::restore::RecoverOutcome), Error> {
        coffer_media::restore::recover(
            lib,
            pass,
            &RecoverRequest {
                store: dir.join("store"),
                set: None,
                drive: 0,
                incomplete: false,
            },
            &self.actor,
            &nop,
        )
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
    w.drop_containers();
    let target = w.t.path().join("restored");
    let r = w.tape_restore(&target, 1).unwrap();
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
    let (repo2, catalog2, rec) = w.recover(&mut lib2, newdir.path(), &w.pass).unwrap();
    assert!(rec.lost.is_empty() && rec.missing.is_empty(), "{rec:?}");
    assert_eq!(rec.cartridges, out.cartridges);
    assert!(rec.notes.is_empty(), "{:?}", rec.notes);
    assert_eq!(rec.snapshots, 1);
    let target2 = newdir.path().join("restored");
    let o = w.restore_from(&repo2, &catalog2, &target2);
    assert!(o.errors.is_empty(), "{:?}", o.errors);
    assert_eq!(listing(&target2), listing(&w.src));
    let jobs = catalog2.jobs(&Default::default()).unwrap();
    assert!(
        jobs.iter()
            .any(|j| j.kind == JobKind::MediaRecover && j.status == JobStatus::Success)
    );
}

/// Byte offsets of each record's data in a virtual cartridge file.
fn records(cart: &Path) -> Vec<(u64, u32, u32)> {
    let b = fs::read(cart).unwrap();
    let mut out = Vec::new();
    let mut at = 64usize;
    while at + 8 <= b.len() {
        let kind = u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        let len = u32::from_le_bytes(b[at + 4..at + 8].try_into().unwrap());
        out.push((at as u64 + 8, kind, len));
        at += 8 + len as usize;
    }
    out
}

fn flip(cart: &Path, at: u64) {
    let mut b = fs::read(cart).unwrap();
    b[at as usize] ^= 0x40;
    fs::write(cart, b).unwrap();
}

/// The containers holding a snapshot's manifest.
fn manifest_containers(w: &World) -> Vec<String> {
    let rec = w.repo.load_snapshot(&w.snap).unwrap();
    rec.manifest
        .iter()
        .map(|id| coffer_store::container::data_key(&w.repo.locate(id).unwrap().unwrap().container))
        .collect()
}

/// A container on tape holding file data only, large enough to span blocks.
fn file_data_object(w: &World, out: &set::WriteOutcome) -> coffer_types::TapeObject {
    let manifest = manifest_containers(w);
    w.catalog
        .tape_objects(&out.set.unwrap())
        .unwrap()
        .into_iter()
        .find(|o| o.key.starts_with("data/") && !manifest.contains(&o.key) && o.len > 600 << 10)
        .unwrap()
}

fn new_machine(w: &World) -> (tempfile::TempDir, VirtualLibrary) {
    let newdir = tempfile::tempdir().unwrap();
    let vtl2 = newdir.path().join("vtl");
    copy_dir(w.lib.dir(), &vtl2);
    let lib2 = VirtualLibrary::open(&vtl2).unwrap();
    (newdir, lib2)
}

#[test]
fn a_damaged_block_loses_only_the_containers_it_touches() {
    let mut w = world();
    w.label_all();
    let out = w.write();
    let (newdir, mut lib2) = new_machine(&w);
    // Damage the second block of a container of file data (the manifest's
    // loss would leave nothing to restore; that is a different test).
    let victim = file_data_object(&w, &out);
    let cart = lib2.dir().join("cartridges").join(&victim.barcode);
    let (at, kind, len) = records(&cart)[usize::try_from(victim.block).unwrap() + 1];
    assert_eq!(kind, 0, "a data block");
    flip(&cart, at + u64::from(len) / 2);
    let (repo2, catalog2, rec) = w.recover(&mut lib2, newdir.path(), &w.pass).unwrap();
    assert!(!rec.lost.is_empty(), "the damage is reported");
    assert!(
        rec.lost.len() <= 2,
        "one block touches at most two objects: {:?}",
        rec.lost
    );
    assert!(
        rec.lost
            .iter()
            .all(|(k, _)| k.as_deref().is_some_and(|k| k.starts_with("data/"))),
        "{:?}",
        rec.lost
    );
    assert!(rec.objects > 20);
    let jobs = catalog2.jobs(&Default::default()).unwrap();
    assert!(
        jobs.iter()
            .any(|j| j.kind == JobKind::MediaRecover && j.status == JobStatus::Warning)
    );
    let target = newdir.path().join("restored");
    let o = w.restore_from(&repo2, &catalog2, &target);
    assert!(
        !o.errors.is_empty(),
        "the restore names the files it could not restore"
    );
    let src = listing(&w.src);
    let got = listing(&target);
    let named: Vec<&String> = o.errors.iter().collect();
    let mut intact = 0;
    for (path, bytes) in &src {
        let p = path.to_string_lossy();
        if named.iter().any(|e| e.contains(&*p)) {
            continue;
        }
        assert_eq!(got.get(path), Some(bytes), "{p} restores intact");
        intact += 1;
    }
    // At most two 1 MiB containers are lost; files are 400-800 KB, so a
    // container holds pieces of at most four: eight files at most.
    assert!(
        named.len() <= 8,
        "only the files in the damaged containers are lost: {named:?}"
    );
    assert_eq!(
        intact + named.len(),
        src.len(),
        "every other file restores intact"
    );
}

#[test]
fn a_missing_cartridge_is_asked_for_by_barcode() {
    let mut w = world();
    w.label_all();
    let out = w.write();
    let second = out.cartridges[1].clone();
    // The operator takes cartridge 2 out through a mail slot.
    let ie = w.lib.changer_handle().export(&second).unwrap();
    w.lib.take(ie).unwrap();
    w.drop_containers();
    let e = w.tape_restore(&w.t.path().join("r"), 0).unwrap_err();
    match &e {
        Error::NeedCartridge { barcode, seq, .. } => {
            assert_eq!(barcode, &second);
            assert_eq!(*seq, 2);
        }
        e => panic!("{e}"),
    }
    assert!(e.to_string().contains(&second), "{e}");
    // The recovery on a new machine asks for the same cartridge.
    let (newdir, mut lib2) = new_machine(&w);
    let e = w.recover(&mut lib2, newdir.path(), &w.pass).err().unwrap();
    assert!(
        matches!(&e, Error::NeedCartridge { barcode, seq: 2, .. } if *barcode == second),
        "{e}"
    );
}

#[test]
fn a_wrong_passphrase_is_refused_before_any_data_is_read() {
    let mut w = world();
    w.label_all();
    w.write();
    let (newdir, mut lib2) = new_machine(&w);
    let wrong = Passphrase::new(b"not it".to_vec()).unwrap();
    let e = w.recover(&mut lib2, newdir.path(), &wrong).err().unwrap();
    assert!(e.to_string().contains("wrong passphrase"), "{e}");
    assert!(fs::read_dir(newdir.path().join("store")).unwrap().all(|e| {
        let n = e.unwrap().file_name();
        n == "config" || n == "keys" || n == "tmp"
    }));
}

#[test]
fn worm_foreign_blank_and_garbage_cartridges_are_refused_and_left_untouched() {
    // Cartridges large enough that the set's one cartridge can still append.
    let mut w = world_with(64 << 20, 2 << 20);
    // Cleaning and WORM cartridges.
    let e = set::label(&mut w.lib, &w.catalog, 0, "CLN001CU", "default", false).unwrap_err();
    assert!(e.to_string().contains("cleaning"), "{e}");
    set::label(&mut w.lib, &w.catalog, 0, "CF0008LZ", "default", false).unwrap();
    let worm = w.lib.dir().join("cartridges/CF0008LZ");
    let before = fs::read(&worm).unwrap();
    let e = set::label(&mut w.lib, &w.catalog, 0, "CF0008LZ", "default", true).unwrap_err();
    assert!(e.to_string().contains("WORM"), "{e}");
    assert_eq!(fs::read(&worm).unwrap(), before, "nothing overwritten");

    // Labelling twice needs --force.
    set::label(&mut w.lib, &w.catalog, 0, "CF0001L9", "default", false).unwrap();
    let e = set::label(&mut w.lib, &w.catalog, 0, "CF0001L9", "default", false).unwrap_err();
    assert!(e.to_string().contains("--force"), "{e}");

    // A cartridge with garbage where the label should be.
    let garbage = w.lib.dir().join("cartridges/CF0002L9");
    {
        use coffer_tape::TapeDrive;
        w.lib.changer_handle().load_barcode("CF0002L9", 1).unwrap();
        let mut d = w.lib.drive_handle(1).unwrap();
        d.write_block(b"tar archive from someone else").unwrap();
        d.write_filemarks(1).unwrap();
        d.unload().unwrap();
        w.lib.changer_handle().unload_drive(1).unwrap();
    }
    let before = fs::read(&garbage).unwrap();
    let e = set::label(&mut w.lib, &w.catalog, 0, "CF0002L9", "default", false).unwrap_err();
    assert!(e.to_string().contains("Coffer cannot read"), "{e}");
    assert_eq!(fs::read(&garbage).unwrap(), before);

    // A cartridge swapped under a barcode mid-set: the writer refuses it.
    set::label(&mut w.lib, &w.catalog, 0, "CF0003L9", "default", false).unwrap();
    set::label(&mut w.lib, &w.catalog, 0, "CF0004L9", "default", false).unwrap();
    set::label(&mut w.lib, &w.catalog, 0, "CF0005L9", "default", false).unwrap();
    let out = w.write();
    let last = out.cartridges.last().unwrap().clone();
    assert_eq!(out.cartridges.len(), 1);
    let carts = w.catalog.set_cartridges(&out.set.unwrap()).unwrap();
    assert_eq!(carts[0].status, coffer_types::CartridgeStatus::Writing);
    let mut w2 = world();
    set::label(&mut w2.lib, &w2.catalog, 0, &last, "default", false).ok();
    // Put w2's cartridge (same barcode, another labelling) in w's library.
    let theirs = w2.lib.dir().join("cartridges").join(&last);
    fs::copy(&theirs, w.lib.dir().join("cartridges").join(&last)).unwrap();
    let swapped = fs::read(w.lib.dir().join("cartridges").join(&last)).unwrap();
    fs::write(w.src.join("new.txt"), noise(3000, 99)).unwrap();
    w.backup(Level::Incremental);
    let req = WriteRequest::new("default");
    let e = set::write(&w.repo, &w.catalog, &mut w.lib, &req, &w.actor, &nop).unwrap_err();
    assert!(matches!(e, Error::Foreign { .. }), "{e}");
    assert!(e.to_string().contains("nothing was written"), "{e}");
    assert_eq!(
        fs::read(w.lib.dir().join("cartridges").join(&last)).unwrap(),
        swapped
    );
    let jobs = w.catalog.jobs(&Default::default()).unwrap();
    assert!(
        jobs.iter()
            .any(|j| j.kind == JobKind::MediaWrite && j.status == JobStatus::Failed)
    );
}

#[test]
fn hitting_the_physical_end_mid_object_rewrites_it_on_the_next_cartridge() {
    // An early-warning zone smaller than one container: a container that
    // starts before the warning runs into the end of the medium.
    // Which cartridge the end of medium cuts depends on where containers
    // fall against the early-warning point, and chunk boundaries depend on
    // each store's random key: in the rare layout where every cartridge
    // ends cleanly at the warning, a new store is tried (at most five).
    // A cut cartridge ends in a block, no filemark, filled to its end.
    let (mut w, cut) = (0..5)
        .map(|_| {
            let mut w = world_with(4 << 20, 64 << 10);
            w.label_all();
            let out = w.write();
            assert!(out.cartridges.len() >= 4, "{:?}", out.cartridges);
            let cut: Vec<u64> = out
                .cartridges
                .iter()
                .map(|b| records(&w.lib.dir().join("cartridges").join(b)))
                .filter(|recs| recs.last().unwrap().1 == 0)
                .map(|recs| recs.iter().map(|r| 8 + u64::from(r.2)).sum())
                .collect();
            (w, cut)
        })
        .find(|(_, cut)| !cut.is_empty())
        .expect("no cartridge met the end of medium in five layouts");
    for used in &cut {
        assert!(
            *used > (4 << 20) - (256 << 10),
            "a cut cartridge is filled to its end: {used}"
        );
    }
    // Every object is on the set once, whole: the new machine recovers all.
    let (newdir, mut lib2) = new_machine(&w);
    let (repo2, catalog2, rec) = w.recover(&mut lib2, newdir.path(), &w.pass).unwrap();
    assert!(rec.lost.is_empty() && rec.missing.is_empty(), "{rec:?}");
    let target = newdir.path().join("restored");
    let o = w.restore_from(&repo2, &catalog2, &target);
    assert!(o.errors.is_empty(), "{:?}", o.errors);
    assert_eq!(listing(&target), listing(&w.src));
    // And the catalog's positions are right: restore through it too.
    w.drop_containers();
    let t2 = w.t.path().join("via-catalog");
    let r = w.tape_restore(&t2, 0).unwrap();
    assert!(r.fetched.lost.is_empty(), "{:?}", r.fetched.lost);
    assert_eq!(listing(&t2), listing(&w.src));
}

#[test]
fn an_object_larger_than_a_cartridge_is_a_clear_error() {
    let mut w = world_with(512 << 10, 64 << 10);
    w.label_all();
    let req = WriteRequest::new("default");
    let e = set::write(&w.repo, &w.catalog, &mut w.lib, &req, &w.actor, &nop).unwrap_err();
    assert!(
        e.to_string().contains("does not fit on an empty cartridge"),
        "{e}"
    );
}

#[test]
fn a_truncated_cartridge_and_a_blank_one_lose_only_what_is_cut_off() {
    let mut w = world();
    w.label_all();
    let out = w.write();
    let (newdir, mut lib2) = new_machine(&w);
    // A cartridge holding only file data (not the snapshot's manifest, whose
    // loss would leave nothing to restore) loses its second half (a cut
    // tape), and a blank cartridge sits in a mail slot.
    let manifest = manifest_containers(&w);
    let objects = w.catalog.tape_objects(&out.set.unwrap()).unwrap();
    let victim = out
        .cartridges
        .iter()
        .find(|b| {
            let on: Vec<&String> = objects
                .iter()
                .filter(|o| &o.barcode == *b)
                .map(|o| &o.key)
                .collect();
            on.iter().any(|k| k.starts_with("data/"))
                && !on
                    .iter()
                    .any(|k| manifest.contains(k) || k.starts_with("snapshots/"))
        })
        .expect("a cartridge with file data only")
        .clone();
    let cart = lib2.dir().join("cartridges").join(&victim);
    let len = fs::metadata(&cart).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&cart)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let spec = coffer_tape::CartridgeSpec {
        capacity: 1 << 20,
        early_warning: 1 << 16,
        worm: false,
        cleaning: false,
        write_protected: false,
    };
    lib2.insert("BLANK1L9", Some(spec)).unwrap();
    let (repo2, catalog2, rec) = w.recover(&mut lib2, newdir.path(), &w.pass).unwrap();
    assert!(
        rec.skipped
            .iter()
            .any(|(b, why)| b == "BLANK1L9" && why == "blank"),
        "{:?}",
        rec.skipped
    );
    // What the cut took is on no catalog read (the cartridge's own catalog
    // was at its end): the restore names the files that needed it.
    let target = newdir.path().join("restored");
    let o = w.restore_from(&repo2, &catalog2, &target);
    assert!(!o.errors.is_empty(), "the files cut off are named");
    let src = listing(&w.src);
    let got = listing(&target);
    let intact = src.iter().filter(|(p, b)| got.get(*p) == Some(*b)).count();
    assert_eq!(intact + o.errors.len(), src.len(), "{:?}", o.errors);
    assert!(intact > 0);
}

#[test]
fn a_missing_last_cartridge_is_asked_for_and_incomplete_recovers_the_rest() {
    let mut w = world();
    w.label_all();
    let out = w.write();
    let n = out.cartridges.len();
    let last = out.cartridges[n - 1].clone();
    let ie = w.lib.changer_handle().export(&last).unwrap();
    w.lib.take(ie).unwrap();
    let (newdir, mut lib2) = new_machine(&w);
    let e = w.recover(&mut lib2, newdir.path(), &w.pass).err().unwrap();
    assert!(
        matches!(&e, Error::NeedCartridge { seq, .. } if *seq as usize == n),
        "{e}"
    );
    let (_, _, rec) = coffer_media::restore::recover(
        &mut lib2,
        &w.pass,
        &RecoverRequest {
            store: newdir.path().join("store2"),
            set: None,
            drive: 0,
            incomplete: true,
        },
        &w.actor,
        &nop,
    )
    .unwrap();
    assert_eq!(rec.cartridges.len(), n - 1);
    assert!(rec.set_continues);
    assert!(
        rec.notes.iter().any(|n| n.contains("later cartridges")),
        "{:?}",
        rec.notes
    );
}

#[test]
fn an_interrupted_write_is_closed_off_and_the_next_write_recovers_whole() {
    use coffer_tape::TapeDrive;
    let mut w = world_with(64 << 20, 2 << 20);
    w.label_all();
    let out = w.write();
    let barcode = out.cartridges[0].clone();
    // A writer died mid-archive: blocks on the tape, no filemark, and the
    // catalog never heard of them.
    {
        w.lib.changer_handle().load_barcode(&barcode, 0).unwrap();
        let mut d = w.lib.drive_handle(0).unwrap();
        d.space(coffer_tape::SpaceOver::EndOfData).unwrap();
        for i in 0..3u8 {
            d.write_block(&[i; 4096]).unwrap();
        }
        d.unload().unwrap();
        drop(d);
        w.lib.changer_handle().unload_drive(0).unwrap();
    }
    fs::write(w.src.join("later.bin"), noise(300_000, 77)).unwrap();
    let b = w.backup(Level::Incremental);
    let again = w.write();
    assert_eq!(again.cartridges, vec![barcode.clone()]);
    assert!(again.objects > 0);
    let (newdir, mut lib2) = new_machine(&w);
    let (repo2, catalog2, rec) = w.recover(&mut lib2, newdir.path(), &w.pass).unwrap();
    assert!(rec.missing.is_empty(), "{rec:?}");
    assert_eq!(rec.snapshots, 2);
    let target = newdir.path().join("restored");
    let req = RestoreRequest {
        snapshot: b.snapshot.id,
        ..w.restore_req(&target)
    };
    let o =
        coffer_engine::restore(&repo2, &catalog2, &req, &w.actor, &Progress::default()).unwrap();
    assert!(o.errors.is_empty(), "{:?}", o.errors);
    assert_eq!(listing(&target), listing(&w.src));
}

#[test]
fn relabelling_a_cartridge_of_a_set_puts_its_objects_on_another() {
    let mut w = world();
    w.label_all();
    let out = w.write();
    let set = out.set.unwrap();
    let first = out.cartridges[0].clone();
    let before = w.catalog.tape_objects(&set).unwrap();
    let on_first = before.iter().filter(|o| o.barcode == first).count();
    assert!(on_first > 0);
    set::label(&mut w.lib, &w.catalog, 0, &first, "default", true).unwrap();
    assert!(
        w.catalog
            .tape_objects(&set)
            .unwrap()
            .iter()
            .all(|o| o.barcode != first)
    );
    let again = w.write();
    assert_eq!(
        again.objects as usize, on_first,
        "what the erased cartridge held is written again"
    );
}

/// A store whose data is sealed under a rotated data key: the set carries
/// the (master-wrapped) data key, so a new machine recovers and restores
/// it, and a restore through the catalog's staging store reads it too.
#[test]
fn data_sealed_under_a_rotated_key_recovers_from_tape() {
    let mut w = world_opts(6 << 20, 3 << 20, true);
    w.label_all();
    let out = w.write();
    assert!(out.objects > 0);
    assert!(
        w.catalog
            .tape_objects(&out.set.unwrap())
            .unwrap()
            .iter()
            .any(|o| o.key == "datakeys/00000002"),
        "the data key is on the set"
    );
    let (newdir, mut lib2) = new_machine(&w);
    let (repo2, catalog2, rec) = w.recover(&mut lib2, newdir.path(), &w.pass).unwrap();
    assert!(rec.lost.is_empty() && rec.missing.is_empty(), "{rec:?}");
    assert_eq!(repo2.data_generation().unwrap(), 2);
    let target = newdir.path().join("restored");
    let o = w.restore_from(&repo2, &catalog2, &target);
    assert!(o.errors.is_empty(), "{:?}", o.errors);
    assert_eq!(listing(&target), listing(&w.src));
    w.drop_containers();
    let t2 = w.t.path().join("via-catalog");
    let r = w.tape_restore(&t2, 0).unwrap();
    assert!(r.fetched.lost.is_empty(), "{:?}", r.fetched.lost);
    assert_eq!(listing(&t2), listing(&w.src));
}

/// A rotation job whose cartridges run out partway: the write fails with a
/// clear error, and the cartridges it had begun are recorded as holding
/// the set (under its retention), not left as scratch to be overwritten.
#[test]
fn a_rotation_write_that_fails_partway_records_the_cartridges_it_used() {
    use coffer_media::rotation::{Book, Content, Day, PoolPolicy, tonight};
    let mut w = world();
    let day = Day::ymd(2026, 11, 23);
    let book = Book::new(&w.catalog, "operator", coffer_engine::now_ms());
    let mut p = PoolPolicy::gfs("rot", day);
    p.vault = None;
    book.put_pool(&p).unwrap();
    let carts: Vec<String> = (1..=7).map(|i| format!("CF{i:04}L9")).collect();
    book.add_cartridges("rot", &carts, true, day).unwrap();
    let prepared = tonight::prepare(
        &book,
        &mut w.lib,
        &w.catalog,
        w.repo.blobs().as_ref(),
        "rot",
        day,
        0,
    )
    .unwrap();
    // New scratch cartridges are labelled for the pool as the job needs them.
    assert_eq!(prepared.labelled, prepared.job.cartridges);
    let n = prepared.job.cartridges.len();
    assert!(n < 3, "the set needs 3+ cartridges; the plan gave {n}");
    let req = prepared
        .request(
            &w.catalog,
            WriteRequest {
                archive_bytes: 3 << 20,
                ..WriteRequest::new("rot")
            },
        )
        .unwrap();
    let e = set::write(&w.repo, &w.catalog, &mut w.lib, &req, &w.actor, &nop).unwrap_err();
    assert!(matches!(e, Error::NoWritableCartridge { .. }), "{e}");
    let used = prepared.record_partial(&book, &w.catalog, "rot").unwrap();
    assert_eq!(used, prepared.job.cartridges);
    let inv = book.inventory("rot").unwrap();
    let set = w.catalog.media_sets().unwrap().pop().unwrap().id.to_hex();
    for b in &used {
        let c = inv.cart(b).unwrap();
        assert_ne!(c.content, Content::Scratch, "{b}: {c:?}");
        assert_eq!(c.set.as_deref(), Some(set.as_str()), "{b}");
    }
    // The next day's plan does not take them as scratch.
    let next = book.today("rot", day.plus(1)).unwrap();
    let j = next.job.as_ref().expect("Tuesday has a tape job");
    for b in &j.cartridges[usize::from(matches!(
        j.set,
        coffer_media::rotation::SetChoice::Continue { .. }
    ))..]
    {
        assert!(!used.contains(b), "{b} planned as scratch again");
    }
}

/// A pool that crypto-shreds: the set's key is in escrow (catalog and the
/// store's `mediakeys/`), not on the labels, so the cartridges and the
/// passphrase alone cannot read it, but the store (or its replica) can;
/// once the rotation expires the set, both key copies are destroyed with a
/// disposal certificate and the cartridges are unreadable. Then the
/// expired cartridge is destroyed (a second certificate); a damaged one is
/// never planned again.
#[test]
fn an_expired_set_of_a_shredding_pool_is_crypto_shredded_then_its_cartridge_destroyed() {
    use coffer_media::rotation::{
        Allocation, Book, Content, Continuous, Day, PoolPolicy, Scheme, Weekday, shred, tonight,
    };
    let mut w = world_with(64 << 20, 4 << 20);
    let day = Day::ymd(2026, 11, 23);
    let book = Book::new(&w.catalog, "operator", coffer_engine::now_ms());
    let mut p = PoolPolicy::gfs("vaulted", day);
    p.scheme = Scheme::Continuous(Continuous {
        backup_days: Weekday::WORKING.to_vec(),
        keep_days: 2,
    });
    p.allocation = Allocation::AlwaysNew;
    p.vault = None;
    p.shred = true;
    p.encrypt = false;
    assert!(book.put_pool(&p).is_err(), "shredding needs encryption");
    p.encrypt = true;
    book.put_pool(&p).unwrap();
    let carts: Vec<String> = (1..=7).map(|i| format!("CF{i:04}L9")).collect();
    book.add_cartridges("vaulted", &carts, true, day).unwrap();

    let prepared = tonight::prepare(
        &book,
        &mut w.lib,
        &w.catalog,
        w.repo.blobs().as_ref(),
        "vaulted",
        day,
        0,
    )
    .unwrap();
    let req = prepared
        .request(
            &w.catalog,
            WriteRequest {
                escrow: true,
                ..WriteRequest::new("vaulted")
            },
        )
        .unwrap();
    // The plan's request carries the pool's encryption and escrow; a key
    // in escrow for a set written in plaintext is refused.
    assert!(req.encrypt && req.escrow);
    let plain = WriteRequest {
        encrypt: false,
        ..req.clone()
    };
    let e = set::write(&w.repo, &w.catalog, &mut w.lib, &plain, &w.actor, &nop).unwrap_err();
    assert!(e.to_string().contains("must be encrypted"), "{e}");
    let out = set::write(&w.repo, &w.catalog, &mut w.lib, &req, &w.actor, &nop).unwrap();
    assert!(prepared.record(&book, "vaulted", &out).unwrap());
    let set_id = out.set.unwrap();
    let written = out.cartridges[0].clone();
    let info = w.catalog.media_set(&set_id.to_hex()).unwrap();
    assert!(info.escrowed && info.wrapped_key.is_some());
    let escrow = set::escrow_key(&set_id);
    assert_eq!(
        w.repo.blobs().get(&escrow).unwrap(),
        info.wrapped_key.clone().unwrap()
    );

    // The cartridges and the passphrase alone: the key is not on them.
    let (newdir, mut lib2) = new_machine(&w);
    let e = w
        .recover(&mut lib2, newdir.path(), &w.pass)
        .map(|_| ())
        .unwrap_err();
    assert!(e.to_string().contains("held in escrow"), "{e}");
    // With the store's replica (its objects, no catalog): it reads.
    let (replica, mut lib3) = new_machine(&w);
    for k in w.repo.blobs().list("").unwrap() {
        if k.contains('/') || k == "config" {
            let to = replica.path().join("store").join(&k);
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::write(&to, w.repo.blobs().get(&k).unwrap()).unwrap();
        }
    }
    let (repo3, catalog3, rec) = w.recover(&mut lib3, replica.path(), &w.pass).unwrap();
    assert!(rec.lost.is_empty() && rec.missing.is_empty(), "{rec:?}");
    let target = replica.path().join("restored");
    let o = w.restore_from(&repo3, &catalog3, &target);
    assert!(o.errors.is_empty(), "{:?}", o.errors);
    assert_eq!(listing(&target), listing(&w.src));

    // The days pass; nothing is shredded while the set is kept.
    let mut shredded = Vec::new();
    for k in 1..=8 {
        let d = day.plus(k);
        let plan = book.today("vaulted", d).unwrap();
        book.settle("vaulted", &plan).unwrap();
        let now = shred::expired(
            &w.catalog,
            w.repo.blobs().as_ref(),
            "vaulted",
            "operator",
            7,
        )
        .unwrap();
        if !now.is_empty() {
            assert!(
                plan.expire.contains(&set_id.to_hex()),
                "{d}: shredded before it expired"
            );
            assert!(
                d >= day.plus(2),
                "{d}: the set is kept two days after its write"
            );
        }
        shredded.extend(now);
    }
    assert_eq!(shredded.len(), 1, "{shredded:?}");
    assert_eq!(shredded[0].set, set_id.to_hex());
    let info = w.catalog.media_set(&set_id.to_hex()).unwrap();
    assert_eq!(info.wrapped_key, None);
    assert_eq!(info.shredded_ms, Some(7));
    assert!(matches!(
        w.repo.blobs().get(&escrow),
        Err(coffer_store::Error::NotFound { .. })
    ));
    let cert = w
        .catalog
        .disposals()
        .unwrap()
        .into_iter()
        .find(|c| c.id == shredded[0].certificate)
        .unwrap();
    assert!(cert.keys[0].contains(info.key_fingerprint.as_deref().unwrap()));
    assert!(cert.detail.contains("crypto-shredding"), "{}", cert.detail);
    // A second pass shreds nothing more.
    assert!(
        shred::expired(
            &w.catalog,
            w.repo.blobs().as_ref(),
            "vaulted",
            "operator",
            8
        )
        .unwrap()
        .is_empty()
    );
    // The cartridge can no longer be read, through the catalog or not.
    w.drop_containers();
    drop(book);
    let after = w.t.path().join("after");
    let e = w.tape_restore(&after, 0).map(|_| ()).unwrap_err();
    assert!(e.to_string().contains("destroyed"), "{e}");

    // The expired cartridge is destroyed, with its certificate; a
    // cartridge still scratch is not.
    let book = Book::new(&w.catalog, "operator", coffer_engine::now_ms());
    let last = day.plus(8);
    let inv = book.inventory("vaulted").unwrap();
    assert_eq!(inv.cart(&written).unwrap().content, Content::Expired);
    let scratch = carts.iter().find(|b| **b != written).unwrap().clone();
    let e = book
        .disposed("vaulted", std::slice::from_ref(&scratch), last, "shredded")
        .unwrap_err();
    assert!(e.to_string().contains("only an expired"), "{e}");
    assert!(
        book.disposed("vaulted", std::slice::from_ref(&written), last, " ")
            .is_err()
    );
    let (_, certs) = book
        .disposed(
            "vaulted",
            std::slice::from_ref(&written),
            last,
            "degaussed and shredded by Acme, their certificate 42",
        )
        .unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(
        book.inventory("vaulted")
            .unwrap()
            .cart(&written)
            .unwrap()
            .content,
        Content::Disposed
    );
    assert!(
        book.disposed("vaulted", std::slice::from_ref(&written), last, "again")
            .is_err()
    );

    // A damaged cartridge is never planned again.
    book.damaged("vaulted", &scratch, last).unwrap();
    for k in 0..5 {
        let plan = book.today("vaulted", last.plus(k)).unwrap();
        if let Some(j) = &plan.job {
            assert!(!j.cartridges.contains(&scratch), "{:?}", j.cartridges);
            assert!(!j.cartridges.contains(&written), "{:?}", j.cartridges);
        }
    }
    let custody = w.catalog.custody(Some(&written)).unwrap();
    assert!(custody.iter().any(|e| e.event == "disposed"), "{custody:?}");
}

/// Reading a set back: every object authenticated and compared with the
/// store; a damaged block on tape is reported lost, a store object that no
/// longer matches the tape is reported as differing, and the job log says
/// so; a set the store has since compacted away still verifies by its MACs.
#[test]
fn a_media_set_read_back_finds_damage_on_tape_and_differences_from_the_store() {
    use coffer_media::restore::{VerifySetRequest, verify_set};
    let mut w = world();
    w.label_all();
    let out = w.write();
    let req = VerifySetRequest {
        drive: 1,
        ..VerifySetRequest::default()
    };
    let r = verify_set(&w.repo, &w.catalog, &mut w.lib, &req, &w.actor, &nop).unwrap();
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.set, out.set.unwrap());
    assert_eq!(r.objects, out.objects);
    assert_eq!(
        r.compared, out.objects,
        "every object compared with the store"
    );
    assert_eq!(r.cartridges, out.cartridges);
    let job = w.catalog.job_view(r.job_id).unwrap().record;
    assert_eq!(job.kind, JobKind::Verify);
    assert_eq!(job.status, JobStatus::Success);

    // A store object changed since (a rewritten index copy): it differs.
    let index = w.repo.blobs().list("index/").unwrap()[0].clone();
    let path = w.t.path().join("store").join(&index);
    let mut b = fs::read(&path).unwrap();
    let last = b.len() - 1;
    b[last] ^= 1;
    fs::write(&path, b).unwrap();
    // A damaged block inside a container on tape: that object is lost.
    let obj = file_data_object(&w, &out);
    let cart = w.lib.dir().join("cartridges").join(&obj.barcode);
    let (at, kind, len) = records(&cart)[usize::try_from(obj.block).unwrap() + 1];
    assert_eq!(kind, 0, "a data block");
    flip(&cart, at + u64::from(len) / 2);
    let r = verify_set(&w.repo, &w.catalog, &mut w.lib, &req, &w.actor, &nop).unwrap();
    assert!(!r.ok());
    assert_eq!(r.differ, vec![index.clone()], "{r:?}");
    assert!(!r.lost.is_empty(), "{r:?}");
    let job = w.catalog.job_view(r.job_id).unwrap().record;
    assert_eq!(job.status, JobStatus::Failed);
    assert!(
        job.messages.iter().any(|m| m.contains("differs: index/")),
        "{:?}",
        job.messages
    );
    assert!(
        job.messages.iter().any(|m| m.starts_with("lost: ")),
        "{:?}",
        job.messages
    );
}
