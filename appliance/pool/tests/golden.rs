//! The golden pool: three members (2+1) written by the first version of the
//! pool format, in `tests/fixtures/pool-v1/`. Every later version must
//! import and read it, and must write the same shards for the same objects.
//! Regenerate (only with a new format version) with
//! `COFFER_WRITE_POOL_FIXTURE=1 cargo test -p coffer-pool --test golden`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fs;
use std::path::{Path, PathBuf};

use coffer_pool::admin::{self, CreateOptions};
use coffer_pool::shard::{HEADER_LEN, Header};
use coffer_pool::{OpenOptions, Pool};
use coffer_store::BlobStore;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/pool-v1")
}

fn objects() -> Vec<(&'static str, Vec<u8>)> {
    let bytes = |n: usize, salt: u32| -> Vec<u8> {
        (0..n as u32)
            .map(|i| (i.wrapping_mul(2654435761).wrapping_add(salt) >> 13) as u8)
            .collect()
    };
    vec![
        ("data/00/small", bytes(1000, 1)),
        ("data/01/multi", bytes(30_000, 2)),
        ("snapshots/empty", Vec::new()),
    ]
}

fn opts() -> OpenOptions {
    OpenOptions {
        smart: false,
        reserve: Some(0),
        ..OpenOptions::default()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let t = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &t);
        } else {
            fs::copy(&p, &t).unwrap();
        }
    }
}

fn write_fixture(root: &Path) {
    let members: Vec<PathBuf> = (0..3).map(|i| root.join(format!("m{i}"))).collect();
    for m in &members {
        fs::create_dir_all(m).unwrap();
    }
    admin::create(
        &members,
        &CreateOptions {
            name: "golden".into(),
            geometry: None,
            allow_same_device: true,
            block_size: Some(4096),
        },
    )
    .unwrap();
    let p = Pool::open(&members[0], &opts()).unwrap();
    for (k, v) in objects() {
        p.put(k, &v).unwrap();
    }
    for m in &members {
        let _ = fs::remove_dir(m.join("tmp"));
    }
}

/// Every shard file of a member set, by (key, shard index).
fn shards(members: &[PathBuf]) -> Vec<((String, u8), Vec<u8>)> {
    let mut out = Vec::new();
    for m in members {
        for (k, _) in objects() {
            let p = m.join("objects").join(k);
            if let Ok(b) = fs::read(&p) {
                let h = Header::decode(&b).unwrap();
                out.push(((k.to_string(), h.index), b));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn the_golden_pool_imports_and_reads_and_shards_are_stable() {
    if std::env::var_os("COFFER_WRITE_POOL_FIXTURE").is_some() {
        let _ = fs::remove_dir_all(fixture());
        write_fixture(&fixture());
    }
    // The fixture's metadata records the paths it was made at: import it
    // from where it is now, as a new appliance would.
    let t = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), t.path());
    let members: Vec<PathBuf> = (0..3).map(|i| t.path().join(format!("m{i}"))).collect();
    let rep = admin::import(&members, true).unwrap();
    assert_eq!(rep.found.len(), 3);
    assert_eq!(rep.pool.name, "golden");
    let p = Pool::open(&members[1], &opts()).unwrap();
    for (k, v) in objects() {
        assert_eq!(p.get(k).unwrap(), v, "{k}");
    }
    let r = p.scrub(&|_| {}).unwrap();
    assert!(
        r.ok() && r.shards_damaged == 0 && r.shards_missing == 0,
        "{r:?}"
    );

    // This version writes the same shards for the same objects (up to the
    // pool id in the header, which is random per pool).
    let fresh = tempfile::tempdir().unwrap();
    write_fixture(fresh.path());
    let fresh_members: Vec<PathBuf> = (0..3).map(|i| fresh.path().join(format!("m{i}"))).collect();
    let (a, b) = (shards(&members), shards(&fresh_members));
    assert_eq!(a.len(), 9);
    assert_eq!(a.len(), b.len());
    for ((ka, sa), (kb, sb)) in a.iter().zip(&b) {
        assert_eq!(ka, kb);
        assert_eq!(
            sa[HEADER_LEN as usize..],
            sb[HEADER_LEN as usize..],
            "{ka:?} blocks"
        );
        let (ha, hb) = (Header::decode(sa).unwrap(), Header::decode(sb).unwrap());
        assert_eq!(
            (
                ha.k,
                ha.m,
                ha.index,
                ha.block,
                ha.len,
                ha.key,
                ha.shard_hash
            ),
            (
                hb.k,
                hb.m,
                hb.index,
                hb.block,
                hb.len,
                hb.key,
                hb.shard_hash
            ),
            "{ka:?} header"
        );
    }
}
