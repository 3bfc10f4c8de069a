//! Pool tests on real directories: placement, reads through parity, members
//! failing in the middle of writes and reads, scrub, rebuild, bad input.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use coffer_store::{BlobStore, Error as StoreError};

use crate::admin::{self, CreateOptions};
use crate::meta;
use crate::pool::OBJECTS;
use crate::{Error, Geometry, OpenOptions, Pool};

struct Fixture {
    _dir: tempfile::TempDir,
    members: Vec<PathBuf>,
    spare: PathBuf,
}

fn fixture(n: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let members: Vec<PathBuf> = (0..n).map(|i| dir.path().join(format!("d{i}"))).collect();
    for m in &members {
        fs::create_dir(m).unwrap();
    }
    let spare = dir.path().join("spare");
    fs::create_dir(&spare).unwrap();
    Fixture {
        _dir: dir,
        members,
        spare,
    }
}

fn opts(name: &str) -> CreateOptions {
    CreateOptions {
        name: name.into(),
        geometry: None,
        allow_same_device: true,
        // Small blocks so that small test objects span many stripes.
        block_size: Some(4096),
    }
}

fn open(p: &Path) -> Pool {
    Pool::open(p, &test_open()).unwrap()
}

fn test_open() -> OpenOptions {
    OpenOptions {
        smart: false,
        reserve: Some(0),
        ..OpenOptions::default()
    }
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    let mut x = (seed as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Every shard file of `key`, by member.
fn shard_files(f: &Fixture, key: &str) -> Vec<PathBuf> {
    f.members
        .iter()
        .map(|m| m.join(OBJECTS).join(key))
        .filter(|p| p.exists())
        .collect()
}

fn flip(p: &Path, at: u64) {
    let mut b = fs::read(p).unwrap();
    let i = (at as usize).min(b.len() - 1);
    b[i] ^= 0x55;
    fs::write(p, b).unwrap();
}

#[test]
fn objects_round_trip_across_members_with_default_geometry() {
    let f = fixture(6);
    let meta = admin::create(&f.members, &opts("main")).unwrap();
    assert_eq!((meta.data_shards, meta.parity_shards), (4, 2));
    let pool = open(&f.members[3]);
    let sizes = [0usize, 1, 2, 4095, 4096 * 4, 4096 * 4 + 1, 100_000, 1 << 20];
    for (i, n) in sizes.iter().enumerate() {
        let key = format!("data/{i:02}/obj{i}");
        let d = data(*n, i as u8);
        pool.put(&key, &d).unwrap();
        assert_eq!(pool.get(&key).unwrap(), d, "size {n}");
        assert_eq!(pool.size(&key).unwrap(), *n as u64);
        let mut r = Vec::new();
        pool.reader(&key).unwrap().read_to_end(&mut r).unwrap();
        assert_eq!(r, d);
        assert_eq!(shard_files(&f, &key).len(), 6, "one shard per member");
        // ranges across block and stripe edges
        for (off, len) in [
            (0, 1),
            (4095, 2),
            (4096 * 4 - 1, 3),
            (7, 50_000),
            (99_990, 10),
        ] {
            if off + len <= *n {
                assert_eq!(
                    pool.get_range(&key, off as u64, len as u64).unwrap(),
                    d[off..off + len],
                    "size {n} range {off}+{len}"
                );
            }
        }
        assert!(matches!(
            pool.get_range(&key, *n as u64, 1),
            Err(StoreError::Truncated { .. })
        ));
    }
    assert!(matches!(
        pool.put("data/00/obj0", b"again"),
        Err(StoreError::AlreadyExists { .. })
    ));
    assert_eq!(pool.list("data/0").unwrap().len(), sizes.len());
    assert!(matches!(pool.get("nope"), Err(StoreError::NotFound { .. })));
    assert!(pool.put("../escape", b"x").is_err());
    pool.delete("data/00/obj0").unwrap();
    assert!(shard_files(&f, "data/00/obj0").is_empty());
    assert!(
        pool.notices().is_empty(),
        "a healthy pool has nothing to report"
    );
    // no temporary files left anywhere
    for m in &f.members {
        assert_eq!(fs::read_dir(m.join("tmp")).unwrap().count(), 0);
    }
}

#[test]
fn reads_survive_m_lost_members_and_corrupt_shards() {
    let f = fixture(6);
    admin::create(&f.members, &opts("p")).unwrap();
    let pool = open(&f.members[0]);
    let d = data(300_000, 1);
    pool.put("data/aa/x", &d).unwrap();
    drop(pool);
    // one member gone, another's shard damaged in two places
    fs::remove_dir_all(&f.members[1]).unwrap();
    let p2 = f.members[2].join(OBJECTS).join("data/aa/x");
    flip(&p2, 200);
    flip(&p2, 40_000);
    let pool = open(&f.members[0]);
    assert_eq!(pool.get("data/aa/x").unwrap(), d);
    assert_eq!(
        pool.get_range("data/aa/x", 1000, 70_000).unwrap(),
        d[1000..71_000]
    );
    let notes = pool.notices().join("\n");
    assert!(notes.contains("missing"), "{notes}");
    assert!(
        notes.contains("damaged") && notes.contains("parity"),
        "{notes}"
    );
    // a third failure is more than m = 2: a clear error, not wrong data
    drop(pool);
    fs::remove_dir_all(&f.members[3]).unwrap();
    let pool = open(&f.members[0]);
    let e = pool.get("data/aa/x").unwrap_err().to_string();
    assert!(
        e.contains("cannot be rebuilt") || e.contains("needed"),
        "{e}"
    );
}

#[test]
fn a_pulled_or_unmounted_member_is_never_written_to_nor_recreated() {
    let f = fixture(4); // 2+2
    admin::create(&f.members, &opts("p")).unwrap();
    let pool = open(&f.members[0]);
    let d = data(100_000, 7);
    pool.put("data/cc/a", &d).unwrap();
    // Disk pulled: its directory is gone entirely.
    fs::remove_dir_all(&f.members[3]).unwrap();
    // Disk unmounted: an empty mount point is left behind.
    fs::remove_dir_all(&f.members[2]).unwrap();
    fs::create_dir(&f.members[2]).unwrap();
    pool.put("data/dd/b", &d).unwrap();
    assert_eq!(pool.get("data/dd/b").unwrap(), d);
    assert!(!f.members[3].exists(), "the pulled member was recreated");
    assert_eq!(
        fs::read_dir(&f.members[2]).unwrap().count(),
        0,
        "shards were written onto the empty mount point"
    );
    let notes = pool.notices().join("\n");
    assert!(
        notes.contains("pulled or unmounted") && notes.contains("ran degraded"),
        "{notes}"
    );
}

#[test]
fn a_member_lost_in_the_middle_of_a_write_degrades_then_scrub_restores_redundancy() {
    let f = fixture(4); // 2+2
    admin::create(&f.members, &opts("p")).unwrap();
    let pool = open(&f.members[0]);
    let d = data(200_000, 2);
    let mut w = pool.create("data/bb/y").unwrap();
    w.write(&d[..50_000]).unwrap();
    fs::remove_dir_all(&f.members[3]).unwrap();
    w.write(&d[50_000..]).unwrap();
    w.commit().unwrap();
    assert_eq!(pool.get("data/bb/y").unwrap(), d);
    let notes = pool.notices().join("\n");
    assert!(
        notes.contains("ran degraded") && notes.contains("1 object"),
        "{notes}"
    );
    // writes keep working while k members are left
    pool.put("data/bb/z", &d[..1000]).unwrap();
    drop(pool);
    // replace the dead member, scrub rebuilds its shards onto the new one
    let pool = open(&f.members[0]);
    assert_eq!(pool.status().health, crate::PoolHealth::Degraded);
    let old = pool.meta().members[3].id.clone();
    admin::replace(&pool, &old, &f.spare, true).unwrap();
    drop(pool);
    let pool = open(&f.members[0]);
    assert_eq!(pool.status().health, crate::PoolHealth::Online);
    let seen = std::cell::Cell::new(0u64);
    let r = pool.scrub(&|p| seen.set(p.objects_done)).unwrap();
    assert!(r.ok(), "{r:?}");
    assert_eq!(seen.get(), 2);
    assert_eq!(r.shards_missing, 2);
    assert_eq!(r.shards_repaired, 2);
    assert_eq!(r.members[3].written, 2, "rebuilt onto the new member");
    // full redundancy: a second scrub finds nothing, and any two members
    // may now fail
    let r2 = pool.scrub(&|_| {}).unwrap();
    assert_eq!(
        (r2.shards_missing, r2.shards_damaged, r2.shards_repaired),
        (0, 0, 0)
    );
    assert_eq!(r2.shards_checked, 8);
    drop(pool);
    fs::remove_dir_all(&f.members[0]).unwrap();
    fs::remove_dir_all(&f.members[1]).unwrap();
    let pool = open(&f.members[2]);
    assert_eq!(pool.get("data/bb/y").unwrap(), d);
    assert!(pool.status().last_scrub.is_some());
}

#[test]
fn a_write_that_cannot_place_k_shards_fails_and_leaves_nothing() {
    let f = fixture(3); // 2+1
    admin::create(&f.members, &opts("p")).unwrap();
    let pool = open(&f.members[0]);
    pool.put("data/cc/ok", b"kept").unwrap();
    let mut w = pool.create("data/cc/lost").unwrap();
    w.write(&data(50_000, 3)).unwrap();
    fs::remove_dir_all(&f.members[1]).unwrap();
    fs::remove_dir_all(&f.members[2]).unwrap();
    let e = match w.write(&data(50_000, 4)) {
        Err(e) => e,
        Ok(()) => w.commit().unwrap_err(),
    };
    let msg = e.to_string();
    assert!(
        msg.contains("cannot place a stripe") && msg.contains("nothing of it was kept"),
        "{msg}"
    );
    assert!(!f.members[0].join(OBJECTS).join("data/cc/lost").exists());
    assert_eq!(fs::read_dir(f.members[0].join("tmp")).unwrap().count(), 0);
    // what was written before is untouched: its shard on the surviving
    // member is still there (with two of three members gone it cannot be
    // read, and says so, until they are back)
    assert!(f.members[0].join(OBJECTS).join("data/cc/ok").exists());
    let e = pool.get("data/cc/ok").unwrap_err().to_string();
    assert!(e.contains("1 of the 2 shards needed"), "{e}");
}

#[test]
fn scrub_heals_damaged_truncated_and_foreign_shards() {
    let f = fixture(5); // 3+2
    admin::create(&f.members, &opts("p")).unwrap();
    let pool = open(&f.members[0]);
    let d = data(123_457, 5);
    for i in 0..4 {
        pool.put(&format!("data/dd/o{i}"), &d).unwrap();
    }
    drop(pool);
    let files = shard_files(&f, "data/dd/o0");
    flip(&files[0], 5000); // a block's bytes
    let files1 = shard_files(&f, "data/dd/o1");
    let len = fs::metadata(&files1[1]).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&files1[1])
        .unwrap()
        .set_len(len - 100)
        .unwrap(); // wrong size
    let files2 = shard_files(&f, "data/dd/o2");
    flip(&files2[2], 3); // header magic
    let pool = open(&f.members[0]);
    let r = pool.scrub(&|_| {}).unwrap();
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.objects, 4);
    assert_eq!(r.shards_damaged, 3, "{r:?}");
    assert_eq!(r.shards_repaired, 3, "{r:?}");
    assert_eq!(
        r.shards_missing, 0,
        "a damaged file is not also missing: {r:?}"
    );
    let r2 = pool.scrub(&|_| {}).unwrap();
    assert_eq!(
        (r2.shards_damaged, r2.shards_repaired, r2.shards_missing),
        (0, 0, 0),
        "{r2:?}"
    );
    for i in 0..4 {
        assert_eq!(pool.get(&format!("data/dd/o{i}")).unwrap(), d);
    }
    // beyond m: reported as unrecoverable, not "repaired"
    drop(pool);
    let files3 = shard_files(&f, "data/dd/o3");
    for p in &files3[..3] {
        flip(p, 200);
    }
    let pool = open(&f.members[0]);
    let r = pool.scrub(&|_| {}).unwrap();
    assert!(!r.ok());
    assert_eq!(r.unrecoverable.len(), 1, "{r:?}");
    assert!(r.unrecoverable[0].starts_with("data/dd/o3"));
}

#[test]
fn bad_members_are_refused_and_nothing_is_overwritten() {
    let f = fixture(4);
    // one member: no redundancy possible
    let e = admin::create(&f.members[..1], &opts("p")).unwrap_err();
    assert!(matches!(e, Error::Geometry(_)), "{e}");
    // k+m larger than the member count
    let mut o = opts("p");
    o.geometry = Some(Geometry { data: 3, parity: 2 });
    let e = admin::create(&f.members, &o).unwrap_err().to_string();
    assert!(e.contains("3+2 needs 5 members"), "{e}");
    // the same directory twice
    let twice = vec![
        f.members[0].clone(),
        f.members[1].clone(),
        f.members[0].clone(),
    ];
    let e = admin::create(&twice, &opts("p")).unwrap_err().to_string();
    assert!(e.contains("same directory"), "{e}");
    // the same disk without the development switch
    let mut strict = opts("p");
    strict.allow_same_device = false;
    let e = admin::create(&f.members, &strict).unwrap_err().to_string();
    assert!(e.contains("same disk"), "{e}");
    // not empty
    fs::write(f.members[2].join("precious"), b"keep me").unwrap();
    let e = admin::create(&f.members, &opts("p"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not empty") && e.contains("precious"), "{e}");
    assert_eq!(fs::read(f.members[2].join("precious")).unwrap(), b"keep me");
    fs::remove_file(f.members[2].join("precious")).unwrap();
    // members of another pool
    admin::create(&f.members[..2], &opts("other")).unwrap();
    let before = fs::read(f.members[0].join(meta::META_FILE)).unwrap();
    let e = admin::create(&f.members, &opts("p"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("already belongs to pool 'other'"), "{e}");
    assert_eq!(
        fs::read(f.members[0].join(meta::META_FILE)).unwrap(),
        before
    );
    let other = open(&f.members[0]);
    let e = admin::add(&other, &f.members[1], true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("already belongs"), "{e}");
    // not a member at all
    assert!(matches!(
        Pool::open(&f.spare, &test_open()),
        Err(Error::NotAMember { .. })
    ));
}

#[test]
fn stale_and_foreign_members_are_left_out_untouched() {
    let f = fixture(4);
    admin::create(&f.members, &opts("p")).unwrap();
    // member 3 misses a generation: it was away while the pool grew
    let stale = fs::read(f.members[3].join(meta::META_FILE)).unwrap();
    let pool = open(&f.members[0]);
    let extra = f.spare.clone();
    admin::add(&pool, &extra, true).unwrap();
    drop(pool);
    fs::write(f.members[3].join(meta::META_FILE), &stale).unwrap();
    let pool = open(&f.members[3]); // opened through the stale member
    assert_eq!(pool.meta().generation, 2, "the newest generation wins");
    let st = pool.status();
    assert_eq!(st.members[3].state, "stale");
    assert!(
        st.members[3]
            .reason
            .as_ref()
            .unwrap()
            .contains("generation 1")
    );
    assert_eq!(st.health, crate::PoolHealth::Degraded);
    assert_eq!(fs::read(f.members[3].join(meta::META_FILE)).unwrap(), stale);
    // stale metadata offered as a new member: refused
    let e = admin::replace(
        &pool,
        &pool.meta().members[3].id.clone(),
        &f.members[3],
        true,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("already belongs"), "{e}");
    // data goes to the others meanwhile
    pool.put("data/ee/a", b"hello").unwrap();
    assert!(!f.members[3].join(OBJECTS).join("data/ee/a").exists());
}

#[test]
fn export_and_import_on_new_paths() {
    let f = fixture(4);
    admin::create(&f.members, &opts("p")).unwrap();
    let pool = open(&f.members[0]);
    pool.put("data/ff/a", &data(70_000, 7)).unwrap();
    // not exported: refused without --force
    let e = admin::import(&f.members, false).unwrap_err();
    assert!(matches!(e, Error::NotExported(_)), "{e}");
    admin::export(&pool).unwrap();
    drop(pool);
    assert!(matches!(
        Pool::open(&f.members[0], &test_open()),
        Err(Error::Exported(_))
    ));
    // the disks come back mounted elsewhere, one of them missing
    let moved: Vec<PathBuf> = f
        .members
        .iter()
        .map(|m| {
            m.with_file_name(format!(
                "{}-moved",
                m.file_name().unwrap().to_string_lossy()
            ))
        })
        .collect();
    for (a, b) in f.members.iter().zip(&moved) {
        fs::rename(a, b).unwrap();
    }
    let rep = admin::import(&moved[..3], false).unwrap();
    assert_eq!(rep.found.len(), 3);
    assert_eq!(rep.missing.len(), 1);
    let pool = open(&moved[1]);
    assert_eq!(pool.get("data/ff/a").unwrap(), data(70_000, 7));
    assert_eq!(pool.status().health, crate::PoolHealth::Degraded);
    // paths of two pools at once
    let g = fixture(2);
    admin::create(&g.members, &opts("q")).unwrap();
    let mix = vec![moved[0].clone(), g.members[0].clone()];
    let e = admin::import(&mix, true).unwrap_err().to_string();
    assert!(e.contains("2 different pools"), "{e}");
}

#[test]
fn failing_smart_and_full_members_leave_placement() {
    let f = fixture(5); // 3+2
    admin::create(&f.members, &opts("p")).unwrap();
    let mut pool = open(&f.members[0]);
    let failed_nvme = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../drivers/block/tests/fixtures/smartctl/nvme-null-SAMSUNG_MZWLL3T2HAJQ-00005-nvme0.json"),
    )
    .unwrap();
    let h = coffer_block::smart::parse("/dev/nvme0", &failed_nvme).unwrap();
    let id = pool.meta().members[4].id.clone();
    pool.set_member_health(&id, h).unwrap();
    let st = pool.status();
    assert_eq!(st.members[4].state, "failing");
    assert!(st.members[4].reason.as_ref().unwrap().contains("SMART"));
    pool.put("data/gg/a", &data(10_000, 8)).unwrap();
    assert!(!f.members[4].join(OBJECTS).join("data/gg/a").exists());
    assert_eq!(pool.get("data/gg/a").unwrap(), data(10_000, 8));
    assert!(pool.notices().join("\n").contains("ran degraded"));
    // every member inside its reserve: the write fails clearly
    let full = Pool::open(
        &f.members[0],
        &OpenOptions {
            smart: false,
            reserve: Some(u64::MAX / 2),
            ..OpenOptions::default()
        },
    )
    .unwrap();
    let e = full.put("data/gg/b", b"x").unwrap_err().to_string();
    assert!(
        e.contains("cannot place a stripe") && e.contains("full"),
        "{e}"
    );
    assert_eq!(
        full.get("data/gg/a").unwrap(),
        data(10_000, 8),
        "reads go on"
    );
}

#[test]
fn retention_lock_blocks_deletion_until_released() {
    let f = fixture(3);
    admin::create(&f.members, &opts("p")).unwrap();
    let pool = open(&f.members[0]);
    pool.put("data/hh/a", b"sealed").unwrap();
    match pool.retention_lock("data/hh/a", true) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("SKIP: no immutable attribute here: {e}");
            return;
        }
    }
    let e = pool.delete("data/hh/a").unwrap_err();
    assert!(matches!(e, StoreError::Locked { .. }), "{e}");
    let files = shard_files(&f, "data/hh/a");
    assert_eq!(files.len(), 3);
    for p in &files {
        assert!(coffer_block::is_immutable(p).unwrap());
        assert_eq!(
            fs::remove_file(p).unwrap_err().raw_os_error(),
            Some(libc::EPERM),
            "not even root deletes a locked shard"
        );
    }
    assert_eq!(pool.get("data/hh/a").unwrap(), b"sealed");
    pool.retention_lock("data/hh/a", false).unwrap();
    pool.delete("data/hh/a").unwrap();
    assert!(shard_files(&f, "data/hh/a").is_empty());
}
