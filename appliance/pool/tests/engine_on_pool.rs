//! The datastore engine on a pool, with members failing in the middle of a
//! backup and of a restore. A fault-injecting `BlobStore` wrapper (shipped
//! test code, in the spirit of redb's fault backends) pulls a member and
//! damages shards after a set number of object operations, so the failure
//! lands mid-job every time.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use coffer_catalog::Catalog;
use coffer_engine::{Actor, BackupRequest, Progress, RestoreRequest};
use coffer_keys::{KdfParams, Passphrase};
use coffer_pool::admin::{self, CreateOptions};
use coffer_pool::{OpenOptions, Pool};
use coffer_store::{BlobStore, InitOptions, ObjectWriter, Repo};
use coffer_types::Level;

type Action = Box<dyn FnOnce() + Send>;

/// Runs `action` once, when the `after`-th write (`create`/`put`) or read
/// (`get_range`/`reader`) reaches the store.
struct Tripwire {
    inner: Arc<Pool>,
    writes: AtomicUsize,
    reads: AtomicUsize,
    after_writes: usize,
    after_reads: usize,
    action: Mutex<Option<Action>>,
}

impl Tripwire {
    fn new(inner: Arc<Pool>, after_writes: usize, after_reads: usize, action: Action) -> Tripwire {
        Tripwire {
            inner,
            writes: AtomicUsize::new(0),
            reads: AtomicUsize::new(0),
            after_writes,
            after_reads,
            action: Mutex::new(Some(action)),
        }
    }
    fn tick(&self, counter: &AtomicUsize, at: usize) {
        if counter.fetch_add(1, Ordering::SeqCst) + 1 == at
            && let Some(a) = self.action.lock().unwrap().take()
        {
            a();
        }
    }
    fn fired(&self) -> bool {
        self.action.lock().unwrap().is_none()
    }
}

impl BlobStore for Tripwire {
    fn put(&self, key: &str, data: &[u8]) -> coffer_store::Result<()> {
        self.tick(&self.writes, self.after_writes);
        self.inner.put(key, data)
    }
    fn create<'a>(&'a self, key: &str) -> coffer_store::Result<Box<dyn ObjectWriter + 'a>> {
        self.tick(&self.writes, self.after_writes);
        self.inner.create(key)
    }
    fn get(&self, key: &str) -> coffer_store::Result<Vec<u8>> {
        self.inner.get(key)
    }
    fn get_range(&self, key: &str, offset: u64, len: u64) -> coffer_store::Result<Vec<u8>> {
        self.tick(&self.reads, self.after_reads);
        self.inner.get_range(key, offset, len)
    }
    fn size(&self, key: &str) -> coffer_store::Result<u64> {
        self.inner.size(key)
    }
    fn list(&self, prefix: &str) -> coffer_store::Result<Vec<String>> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> coffer_store::Result<()> {
        self.inner.delete(key)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn reader<'a>(&'a self, key: &str) -> coffer_store::Result<Box<dyn Read + Send + 'a>> {
        self.tick(&self.reads, self.after_reads);
        self.inner.reader(key)
    }
    fn notices(&self) -> Vec<String> {
        self.inner.notices()
    }
}

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

/// Flips one byte in the first block of every data-shard file under
/// `member`: each shard now fails its hash where it is read.
fn damage_member(member: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![member.join("objects/data")];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let mut b = fs::read(&p).unwrap();
                if b.len() > 200 {
                    b[170] ^= 0xff;
                    fs::write(&p, b).unwrap();
                    n += 1;
                }
            }
        }
    }
    n
}

/// Pulls a member's disk while other threads write to it: the directory
/// vanishes from its path at once (a rename, as an unmount does), and is
/// then deleted. Deleting in place would race the writers creating files.
fn pull(member: &Path) {
    let gone = member.with_extension("pulled");
    fs::rename(member, &gone).unwrap();
    fs::remove_dir_all(&gone).unwrap_or_else(|e| {
        // A writer that still held the directory open may have added a
        // file meanwhile; the member is gone from its path either way.
        eprintln!("leftovers of the pulled member: {e}");
    });
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

fn open(p: &Path) -> Arc<Pool> {
    Arc::new(
        Pool::open(
            p,
            &OpenOptions {
                smart: false,
                ..OpenOptions::default()
            },
        )
        .unwrap(),
    )
}

#[test]
fn backup_and_restore_survive_members_lost_and_damaged_mid_job() {
    let t = tempfile::tempdir().unwrap();
    let members: Vec<PathBuf> = (0..6).map(|i| t.path().join(format!("m{i}"))).collect();
    for m in &members {
        fs::create_dir(m).unwrap();
    }
    let spare = t.path().join("spare");
    fs::create_dir(&spare).unwrap();
    admin::create(
        &members,
        &CreateOptions {
            name: "main".into(),
            geometry: None,
            allow_same_device: true,
            block_size: None,
        },
    )
    .unwrap();
    // ~12 MiB of incompressible files: a dozen 1 MiB containers
    let src = t.path().join("src");
    for d in 0..4 {
        fs::create_dir_all(src.join(format!("dir{d}"))).unwrap();
        for f in 0..6 {
            fs::write(
                src.join(format!("dir{d}/f{f}")),
                noise(300_000 + f * 77_777, (d * 10 + f) as u64),
            )
            .unwrap();
        }
    }
    let pass = Passphrase::new(b"pool test".to_vec()).unwrap();
    let catalog = Catalog::open(&t.path().join("catalog.db")).unwrap();
    let actor = Actor {
        identity: "test".into(),
        host: "test".into(),
    };
    let init = InitOptions {
        container_size: 1024 * 1024,
        kdf: KdfParams {
            m_kib: 1024,
            t: 1,
            p: 1,
        },
        ..InitOptions::default()
    };
    Repo::init(open(&members[0]), &pass, init).unwrap();

    // Backup: after the 4th object write, member 4 disappears (disk pulled)
    // and every data shard already on member 1 is damaged.
    let (m1, m4) = (members[1].clone(), members[4].clone());
    let wire = Arc::new(Tripwire::new(
        open(&members[0]),
        4,
        usize::MAX,
        Box::new(move || {
            pull(&m4);
            assert!(damage_member(&m1) > 0);
        }),
    ));
    let repo = Repo::open(wire.clone(), &pass).unwrap();
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
    assert!(wire.fired(), "the failure happened during the backup");
    let notes = out.warnings.join("\n");
    assert!(
        notes.contains("missing") && notes.contains("ran degraded"),
        "{notes}"
    );
    drop(repo);

    // Replace the pulled disk; the rebuild scrub restores full redundancy
    // (member 1's damaged shards are rewritten, member 4's rebuilt).
    let pool = open(&members[0]);
    let old = pool.meta().members[4].id.clone();
    admin::replace(&pool, &old, &spare, true).unwrap();
    drop(pool);
    let pool = open(&members[0]);
    let r = pool.scrub(&|_| {}).unwrap();
    assert!(r.ok(), "{r:?}");
    assert!(
        r.shards_repaired > 0 && r.shards_damaged > 0 && r.shards_missing > 0,
        "{r:?}"
    );
    let again = pool.scrub(&|_| {}).unwrap();
    assert_eq!(
        (
            again.shards_missing,
            again.shards_damaged,
            again.shards_repaired
        ),
        (0, 0, 0),
        "fully redundant after the rebuild: {again:?}"
    );
    drop(pool);

    // Restore: after the 5th read, member 2 disappears and every data
    // shard on member 0 is damaged: two failures, m = 2.
    let (m0, m2) = (members[0].clone(), members[2].clone());
    let wire = Arc::new(Tripwire::new(
        open(&members[3]),
        usize::MAX,
        5,
        Box::new(move || {
            pull(&m2);
            assert!(damage_member(&m0) > 0);
        }),
    ));
    let repo = Repo::open(wire.clone(), &pass).unwrap();
    let target = t.path().join("restored");
    let res = coffer_engine::restore(
        &repo,
        &catalog,
        &RestoreRequest {
            snapshot: out.snapshot.id,
            target: target.clone(),
            paths: Vec::new(),
            overwrite: false,
            threads: 2,
        },
        &actor,
        &Progress::default(),
    )
    .unwrap();
    assert!(wire.fired(), "the failure happened during the restore");
    assert!(res.errors.is_empty(), "{:?}", res.errors);
    assert!(
        res.warnings.iter().any(|w| w.contains("parity")),
        "{:?}",
        res.warnings
    );
    assert_eq!(listing(&target), listing(&src), "restored bit for bit");
}
