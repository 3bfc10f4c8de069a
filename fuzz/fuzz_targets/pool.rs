//! A pool member's shard replaced by any bytes: reading the object must
//! still give back exactly what was written (2+1: the other two shards
//! suffice), and scrub must repair it; any bytes as a member's metadata
//! file must be refused cleanly. Never a panic, never wrong data.
#![no_main]
use std::path::PathBuf;
use std::sync::OnceLock;

use coffer_pool::admin::{self, CreateOptions};
use coffer_pool::{OpenOptions, Pool, shard};
use coffer_store::BlobStore;
use libfuzzer_sys::fuzz_target;

const KEY: &str = "data/ab/object";

fn content() -> Vec<u8> {
    (0..20_000u32).map(|i| (i * 7 + i / 13) as u8).collect()
}

fn opts() -> OpenOptions {
    OpenOptions {
        smart: false,
        reserve: Some(0),
        ..OpenOptions::default()
    }
}

fn pool() -> &'static (tempfile::TempDir, Vec<PathBuf>) {
    static P: OnceLock<(tempfile::TempDir, Vec<PathBuf>)> = OnceLock::new();
    P.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let members: Vec<PathBuf> = (0..3).map(|i| d.path().join(format!("m{i}"))).collect();
        for m in &members {
            std::fs::create_dir(m).unwrap();
        }
        admin::create(
            &members,
            &CreateOptions {
                name: "fuzz".into(),
                geometry: None,
                allow_same_device: true,
                block_size: Some(4096),
            },
        )
        .unwrap();
        Pool::open(&members[0], &opts())
            .unwrap()
            .put(KEY, &content())
            .unwrap();
        (d, members)
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = shard::Header::decode(data);
    let (_, members) = pool();
    let victim = members[1].join("objects").join(KEY);
    let original = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, data).unwrap();
    let p = Pool::open(&members[0], &opts()).unwrap();
    assert_eq!(p.get(KEY).unwrap(), content());
    assert_eq!(
        p.get_range(KEY, 5000, 9000).unwrap(),
        content()[5000..14000]
    );
    let r = p.scrub(&|_| {}).unwrap();
    assert!(r.ok(), "{r:?}");
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        original,
        "scrub rewrote the shard"
    );
    // metadata: any bytes are refused or read, never a panic
    let meta = members[2].join("coffer-pool.json");
    let saved = std::fs::read(&meta).unwrap();
    std::fs::write(&meta, data).unwrap();
    let _ = Pool::open(&members[2], &opts());
    std::fs::write(&meta, saved).unwrap();
});
