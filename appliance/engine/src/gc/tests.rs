use std::path::{Path, PathBuf};
use std::sync::Arc;

use coffer_keys::{KdfParams, Passphrase};
use coffer_store::{BlobStore, ChunkerParams, DirStore, InitOptions, ObjectWriter};
use coffer_types::{Level, SnapshotId};

use super::*;
use crate::{BackupRequest, RestoreRequest, backup, restore};

pub(crate) fn pass() -> Passphrase {
    Passphrase::new(b"correct horse battery staple".to_vec()).unwrap()
}

pub(crate) fn actor() -> Actor {
    Actor {
        identity: "test".into(),
        host: "here".into(),
    }
}

pub(crate) struct World {
    pub(crate) dir: tempfile::TempDir,
}

impl World {
    pub(crate) fn new() -> World {
        let w = World {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(w.store()).unwrap();
        coffer_store::Repo::init(
            Arc::new(DirStore::new(w.store())),
            &pass(),
            InitOptions {
                container_size: 1024 * 1024,
                zstd_level: 1,
                kdf: KdfParams {
                    m_kib: 64,
                    t: 1,
                    p: 1,
                },
                chunker: ChunkerParams {
                    min: 16 * 1024,
                    avg: 64 * 1024,
                    max: 256 * 1024,
                },
            },
        )
        .unwrap();
        w
    }
    pub(crate) fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }
    pub(crate) fn src(&self) -> PathBuf {
        self.dir.path().join("src")
    }
    pub(crate) fn repo(&self) -> Repo {
        Repo::open(Arc::new(DirStore::new(self.store())), &pass()).unwrap()
    }
    pub(crate) fn catalog(&self) -> Catalog {
        Catalog::open(&self.store().join("catalog.db")).unwrap()
    }
    pub(crate) fn backup(&self, repo: &Repo) -> SnapshotId {
        backup(
            repo,
            &self.catalog(),
            &BackupRequest {
                asset: "files".into(),
                level: Level::Full,
                source: self.src(),
                excludes: Vec::new(),
                one_file_system: false,
                threads: 2,
                compression_level: None,
            },
            &actor(),
            &Progress::default(),
        )
        .unwrap()
        .snapshot
        .id
    }
    fn forget(&self, repo: &Repo, id: &SnapshotId) {
        repo.delete_snapshot(id).unwrap();
        self.catalog().delete_snapshot(id).unwrap();
    }
    fn containers(&self) -> usize {
        walk(&self.store().join("data")).len()
    }
}

pub(crate) fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Incompressible bytes from a seed.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Files `first..first + n`, 60 to 200 KiB each.
pub(crate) fn write_files(dir: &Path, first: u64, n: u64) {
    std::fs::create_dir_all(dir).unwrap();
    for i in first..first + n {
        let len = 60 * 1024 + (i as usize * 7919) % (140 * 1024);
        std::fs::write(dir.join(format!("f{i:04}")), noise(len, i)).unwrap();
    }
}

/// Restores `id` and compares it byte for byte with `expected` (a copy of
/// the source as it was backed up).
pub(crate) fn assert_restores(w: &World, repo: &Repo, id: &SnapshotId, expected: &Path) {
    let target = w.dir.path().join(format!("restore-{id}"));
    let _ = std::fs::remove_dir_all(&target);
    restore(
        repo,
        &w.catalog(),
        &RestoreRequest {
            snapshot: *id,
            target: target.clone(),
            paths: Vec::new(),
            overwrite: false,
            threads: 2,
        },
        &actor(),
        &Progress::default(),
    )
    .unwrap();
    let want: Vec<_> = walk(expected)
        .iter()
        .map(|p| p.strip_prefix(expected).unwrap().to_path_buf())
        .collect();
    let got: Vec<_> = walk(&target)
        .iter()
        .map(|p| p.strip_prefix(&target).unwrap().to_path_buf())
        .collect();
    assert_eq!(want, got);
    for rel in want {
        assert!(
            std::fs::read(expected.join(&rel)).unwrap()
                == std::fs::read(target.join(&rel)).unwrap(),
            "{} differs",
            rel.display()
        );
    }
    std::fs::remove_dir_all(&target).unwrap();
}

const DRY: GcOptions = GcOptions {
    compact_below: 0.5,
    dry_run: true,
    retire_before: 0,
    full: false,
};

/// A collection of `w`'s store through `repo`, recording a job (unless a
/// dry run).
pub(crate) fn run_gc(w: &World, repo: &Repo, opts: GcOptions) -> Result<GcReport> {
    gc(
        repo,
        &w.catalog(),
        &opts,
        crate::now_ms(),
        &actor(),
        &Progress::default(),
        None,
    )
}

/// A dry run of a full collection (every manifest read, every container
/// examined, the mark cache ignored and left as it is).
pub(crate) fn full_dry_run(w: &World, repo: &Repo, compact_below: f64) -> GcReport {
    run_gc(
        w,
        repo,
        GcOptions {
            compact_below,
            dry_run: true,
            retire_before: 0,
            full: true,
        },
    )
    .unwrap()
}

fn copy_tree(from: &Path, to: &Path) {
    for p in walk(from) {
        let dst = to.join(p.strip_prefix(from).unwrap());
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(&p, &dst).unwrap();
    }
}

/// A store with two snapshots of which only the second is kept: 60 files,
/// then 45 of them deleted and 15 new ones. Returns the kept snapshot and a
/// copy of its source.
fn two_generations(w: &World) -> (SnapshotId, PathBuf) {
    let repo = w.repo();
    write_files(&w.src(), 0, 60);
    let first = w.backup(&repo);
    for i in 0..60 {
        if i % 4 != 0 {
            std::fs::remove_file(w.src().join(format!("f{i:04}"))).unwrap();
        }
    }
    write_files(&w.src(), 100, 15);
    let second = w.backup(&repo);
    let copy = w.dir.path().join("expected");
    copy_tree(&w.src(), &copy);
    w.forget(&repo, &first);
    (second, copy)
}

#[test]
fn gc_frees_what_no_snapshot_references_and_compacts_mostly_dead_containers() {
    let w = World::new();
    let (kept, expected) = two_generations(&w);
    let before = w.containers();
    let repo = w.repo();
    let dry = run_gc(&w, &repo, DRY).unwrap();
    assert!(dry.dead_bytes > dry.live_bytes, "{dry:?}");
    assert!(!dry.delete.is_empty() || !dry.compact.is_empty(), "{dry:?}");
    assert_eq!(w.containers(), before, "a dry run deletes nothing");
    assert!(
        w.catalog()
            .jobs(&Default::default())
            .unwrap()
            .iter()
            .all(|j| j.kind != JobKind::Gc),
        "a dry run records no job"
    );

    let r = run_gc(&w, &repo, GcOptions::default()).unwrap();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.stats.snapshots_kept, 1);
    assert_eq!(r.delete, dry.delete);
    assert_eq!(r.compact, dry.compact);
    assert!(r.stats.bytes_freed > 0);
    assert_eq!(
        r.stats.containers_deleted as usize,
        dry.delete.len() + dry.compact.len()
    );
    // The copies went into as few new containers as 1 MiB containers allow.
    let new = w.containers() + r.stats.containers_deleted as usize - before;
    assert!(r.stats.chunks_copied > 0, "{r:?}");
    assert!(
        new >= 1 && new as u64 <= r.stats.bytes_copied / (1 << 20) + 1,
        "{new} new containers for {} bytes",
        r.stats.bytes_copied
    );
    // The job log and its figures.
    let jobs = w.catalog().jobs(&Default::default()).unwrap();
    let job = jobs.iter().find(|j| j.kind == JobKind::Gc).unwrap();
    assert_eq!(job.status, JobStatus::Success);
    assert_eq!(
        w.catalog()
            .maintenance_stats(job.id)
            .unwrap()
            .unwrap()
            .bytes_freed,
        r.stats.bytes_freed
    );
    // The kept snapshot restores whole, with this repo and a fresh one.
    assert_restores(&w, &repo, &kept, &expected);
    // The same repo no longer knows the removed containers: a verification
    // through it finds nothing missing, and it has nothing left to collect.
    let v = crate::verify(
        repo.blobs().as_ref(),
        Some(&repo),
        Some(&w.catalog()),
        true,
        &actor(),
        &Progress::default(),
    )
    .unwrap();
    assert!(v.ok(), "{:?}", crate::verify::describe(&v));
    let same = run_gc(&w, &repo, DRY).unwrap();
    assert!(
        same.delete.is_empty() && same.compact.is_empty(),
        "{same:?}"
    );
    let fresh = w.repo();
    assert_restores(&w, &fresh, &kept, &expected);
    // What is left is all live, or live enough: a second run has nothing to do.
    let again = run_gc(&w, &fresh, GcOptions::default()).unwrap();
    assert!(
        again.delete.is_empty() && again.compact.is_empty(),
        "{again:?}"
    );
    assert_eq!(again.stats.chunks_copied, 0);
    // With the last snapshot gone, everything goes.
    w.forget(&fresh, &kept);
    let all = run_gc(&w, &fresh, GcOptions::default()).unwrap();
    assert_eq!(all.live_chunks, 0);
    assert_eq!(w.containers(), 0);
    assert!(walk(&w.store().join("index")).is_empty());
}

/// A store whose `n`-th change (put, delete or commit) and every later one
/// fail: a process killed at that point.
struct Dying {
    inner: DirStore,
    left: std::sync::atomic::AtomicI64,
}

impl Dying {
    fn step(&self) -> coffer_store::Result<()> {
        if self.left.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) <= 0 {
            return Err(coffer_store::Error::Backend {
                store: "dying".into(),
                reason: "killed".into(),
            });
        }
        Ok(())
    }
}

struct DyingWriter<'a> {
    store: &'a Dying,
    inner: Box<dyn ObjectWriter + 'a>,
}

impl ObjectWriter for DyingWriter<'_> {
    fn write(&mut self, data: &[u8]) -> coffer_store::Result<()> {
        self.inner.write(data)
    }
    fn commit(self: Box<Self>) -> coffer_store::Result<()> {
        self.store.step()?;
        self.inner.commit()
    }
}

impl BlobStore for Dying {
    fn put(&self, key: &str, data: &[u8]) -> coffer_store::Result<()> {
        self.step()?;
        self.inner.put(key, data)
    }
    fn get(&self, key: &str) -> coffer_store::Result<Vec<u8>> {
        self.inner.get(key)
    }
    fn get_range(&self, key: &str, offset: u64, len: u64) -> coffer_store::Result<Vec<u8>> {
        self.inner.get_range(key, offset, len)
    }
    fn size(&self, key: &str) -> coffer_store::Result<u64> {
        self.inner.size(key)
    }
    fn list(&self, prefix: &str) -> coffer_store::Result<Vec<String>> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> coffer_store::Result<()> {
        self.step()?;
        self.inner.delete(key)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn create<'a>(&'a self, key: &str) -> coffer_store::Result<Box<dyn ObjectWriter + 'a>> {
        Ok(Box::new(DyingWriter {
            store: self,
            inner: self.inner.create(key)?,
        }))
    }
}

/// Every step of a collection, killed there: the kept snapshot still
/// restores from what is left, and a second run finishes the job.
#[test]
fn gc_killed_at_every_step_loses_nothing_and_a_rerun_finishes() {
    let w = World::new();
    let (kept, expected) = two_generations(&w);
    let pristine = w.dir.path().join("pristine");
    copy_tree(&w.store(), &pristine);
    let mut steps = 0;
    for n in 0.. {
        std::fs::remove_dir_all(w.store()).unwrap();
        copy_tree(&pristine, &w.store());
        let dying = Arc::new(Dying {
            inner: DirStore::new(w.store()),
            left: std::sync::atomic::AtomicI64::new(i64::MAX),
        });
        let repo = Repo::open(dying.clone(), &pass()).unwrap();
        dying.left.store(n, std::sync::atomic::Ordering::SeqCst);
        let r = run_gc(&w, &repo, GcOptions::default());
        if r.is_ok() {
            steps = n;
            break;
        }
        // What a restarted process finds.
        let after = w.repo();
        assert_restores(&w, &after, &kept, &expected);
        let rerun = run_gc(&w, &after, GcOptions::default()).unwrap();
        assert!(rerun.warnings.is_empty(), "{:?}", rerun.warnings);
        let fresh = w.repo();
        assert_restores(&w, &fresh, &kept, &expected);
        let done = run_gc(&w, &fresh, DRY).unwrap();
        assert!(
            done.delete.is_empty() && done.compact.is_empty(),
            "killed at step {n}, the rerun left work: {done:?}"
        );
    }
    // The marker, the copies, the deletions: many steps were tried.
    assert!(steps > 5, "only {steps} steps");
}

/// A process whose index was loaded before a collection (the daemon's,
/// while `coffer gc` ran in direct mode) loads it again before its next
/// backup, and stores again what the collection removed.
#[test]
fn a_backup_after_a_collection_by_another_process_never_references_removed_data() {
    let w = World::new();
    let stale = w.repo();
    write_files(&w.src(), 0, 20);
    let copy = w.dir.path().join("expected");
    copy_tree(&w.src(), &copy);
    let first = w.backup(&stale);
    // Another process forgets the snapshot and collects everything.
    let other = w.repo();
    w.forget(&other, &first);
    run_gc(&w, &other, GcOptions::default()).unwrap();
    assert_eq!(w.containers(), 0);
    // The same files again, through the stale index.
    let second = w.backup(&stale);
    assert!(w.containers() > 0, "the data was stored again");
    assert_restores(&w, &w.repo(), &second, &copy);
}

/// A collection waits for the backups (restores, verifications) holding the
/// store lock, and they wait for it.
#[test]
fn gc_waits_for_the_jobs_that_hold_the_store_lock() {
    let w = World::new();
    let (_, _) = two_generations(&w);
    let held = StoreLock::shared(&w.catalog()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let store = w.store();
    let t = std::thread::spawn(move || {
        let repo = Repo::open(Arc::new(DirStore::new(&store)), &pass()).unwrap();
        let cat = Catalog::open(&store.join("catalog.db")).unwrap();
        let r = gc(
            &repo,
            &cat,
            &GcOptions::default(),
            crate::now_ms(),
            &actor(),
            &Progress::default(),
            None,
        );
        tx.send(r.is_ok()).unwrap();
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        rx.try_recv().is_err(),
        "gc ran while a job held the store lock"
    );
    drop(held);
    assert!(rx.recv_timeout(std::time::Duration::from_secs(60)).unwrap());
    t.join().unwrap();
}

/// A snapshot whose record cannot be read stops the collection before
/// anything is deleted: what it references is unknown.
#[test]
fn an_unreadable_snapshot_stops_the_collection_before_anything_goes() {
    let w = World::new();
    let (kept, _) = two_generations(&w);
    let before = w.containers();
    let rec = w.store().join("snapshots").join(kept.to_string());
    let mut bytes = std::fs::read(&rec).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0xFF;
    std::fs::remove_file(&rec).unwrap();
    std::fs::write(&rec, &bytes).unwrap();
    let e = run_gc(&w, &w.repo(), GcOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("snapshot {kept} cannot be read")),
        "{e}"
    );
    assert!(e.contains("nothing is collected"), "{e}");
    assert_eq!(w.containers(), before);
    let jobs = w.catalog().jobs(&Default::default()).unwrap();
    let job = jobs.iter().find(|j| j.kind == JobKind::Gc).unwrap();
    assert_eq!(job.status, JobStatus::Failed);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3))]

    /// Simulated days of backups of a changing tree, each followed by a
    /// prune under a GFS policy and, every few days, a collection (with
    /// aggressive compaction): every snapshot the policy keeps restores
    /// exactly as it was backed up, from a freshly opened store.
    #[test]
    fn days_of_backup_prune_and_gc_never_cost_a_kept_snapshot_a_chunk(
        seed in proptest::prelude::any::<u64>(),
        days in 25u64..45,
    ) {
        use crate::retention::{Candidate, plan};
        let w = World::new();
        let repo = w.repo();
        let policy = coffer_types::api::Retention {
            keep_last: Some(2),
            keep_daily: Some(4),
            keep_weekly: Some(3),
            keep_monthly: Some(1),
            ..Default::default()
        };
        let day_ms = 86_400_000i64;
        let start = 1_790_000_000_000i64;
        let mut held: Vec<(Candidate, PathBuf)> = Vec::new();
        let mut rng = seed | 1;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        write_files(&w.src(), 0, 12);
        for day in 0..days {
            // Change a few files: rewrite, delete, add.
            for _ in 0..3 {
                let i = next() % 30;
                let p = w.src().join(format!("f{i:04}"));
                if next() % 3 == 0 {
                    let _ = std::fs::remove_file(&p);
                } else {
                    let len = 20 * 1024 + (next() % (60 * 1024)) as usize;
                    std::fs::write(&p, noise(len, next())).unwrap();
                }
            }
            let id = w.backup(&repo);
            let copy = w.dir.path().join(format!("day{day}"));
            copy_tree(&w.src(), &copy);
            held.push((
                Candidate { id, time_ms: start + day as i64 * day_ms, locked_until_ms: None, hold: false },
                copy,
            ));
            let now = start + day as i64 * day_ms + 3_600_000;
            let cands: Vec<Candidate> = held.iter().map(|(c, _)| c.clone()).collect();
            for v in plan(now, &policy, &cands).iter().filter(|v| !v.keep()) {
                w.forget(&repo, &v.id);
                let (_, dir) = held.iter().find(|(c, _)| c.id == v.id).unwrap();
                std::fs::remove_dir_all(dir).unwrap();
                held.retain(|(c, _)| c.id != v.id);
            }
            if day % 4 == 3 || day + 1 == days {
                let r = run_gc(&w, &repo, GcOptions { compact_below: 0.9, dry_run: false, retire_before: 0, full: false }).unwrap();
                proptest::prop_assert!(r.warnings.is_empty(), "{:?}", r.warnings);
                let fresh = w.repo();
                for (c, dir) in &held {
                    assert_restores(&w, &fresh, &c.id, dir);
                }
                // The incremental collection left nothing a full one finds.
                let full = full_dry_run(&w, &fresh, 0.9);
                proptest::prop_assert!(
                    full.full && full.delete.is_empty() && full.compact.is_empty(),
                    "day {day}: a full collection still finds work: {full:?}"
                );
            }
        }
        // GFS over 25+ days: 2 last, 4 daily, 3 weekly, 1 monthly overlap.
        proptest::prop_assert!(held.len() >= 4 && held.len() <= 10, "{}", held.len());
    }
}

/// A prune killed at each of its removals (the store refusing every change
/// from then on), and one killed between a snapshot's record and its
/// catalog row: a rerun removes exactly what the policy removes, and the
/// kept snapshot restores.
#[test]
fn a_prune_killed_midway_is_finished_by_a_rerun() {
    use crate::prune::{PruneOrder, plan_order, prune};
    let policy = coffer_types::api::Retention {
        keep_last: Some(1),
        ..Default::default()
    };
    for n in 0..4 {
        let w = World::new();
        let repo = w.repo();
        let mut ids = Vec::new();
        for i in 0..4 {
            write_files(&w.src(), i * 10, 2);
            ids.push(w.backup(&repo));
        }
        let kept = *ids.last().unwrap();
        let order = PruneOrder {
            policy: Some(policy.clone()),
            ..Default::default()
        };
        let now = crate::now_ms();
        let dying = Arc::new(Dying {
            inner: DirStore::new(w.store()),
            left: std::sync::atomic::AtomicI64::new(i64::MAX),
        });
        let doomed = Repo::open(dying.clone(), &pass()).unwrap();
        dying.left.store(n, std::sync::atomic::Ordering::SeqCst);
        let cat = w.catalog();
        let run = |repo: &Repo| {
            let plans = plan_order(&cat, &order, now, true).unwrap();
            prune(
                repo,
                &cat,
                &plans,
                now,
                &actor(),
                &Progress::default(),
                None,
            )
            .unwrap()
        };
        let r = run(&doomed);
        assert_eq!(r.removed.len() as i64, n.min(3), "killed at removal {n}");
        assert_eq!(r.warnings.len() as i64, 3 - n.min(3), "{:?}", r.warnings);
        // Killed between a record and its row: the row outlives the record.
        if let Some(orphan) = ids
            .iter()
            .find(|id| cat.resolve_snapshot(&id.to_hex()).is_ok() && **id != kept)
        {
            repo.delete_snapshot(orphan).unwrap();
        }
        let fresh = w.repo();
        let r = run(&fresh);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        let left: Vec<SnapshotId> = cat.snapshots(None).unwrap().iter().map(|s| s.id).collect();
        assert_eq!(left, vec![kept]);
        assert_eq!(fresh.snapshot_ids().unwrap(), vec![kept]);
        assert_restores(&w, &fresh, &kept, &w.src());
    }
}

/// The mark cache: a collection reads the manifests of the snapshots new
/// since the last one only, and examines only the containers that can have
/// changed; what it leaves is what a full collection would leave.
#[test]
fn a_collection_reads_and_examines_only_what_changed_since_the_last() {
    let w = World::new();
    let repo = w.repo();
    let mut snaps = Vec::new();
    for day in 0..6u64 {
        // Each day adds five files and rewrites three older ones.
        write_files(&w.src(), day * 5, 5);
        for i in (0..day * 5).step_by(4).take(3) {
            let p = w.src().join(format!("f{i:04}"));
            std::fs::write(p, noise(90 * 1024, 1000 * day + i)).unwrap();
        }
        snaps.push(w.backup(&repo));
    }
    let copy = w.dir.path().join("expected");
    copy_tree(&w.src(), &copy);

    // First collection: no cache, so it is a full one.
    let first = run_gc(&w, &repo, GcOptions::default()).unwrap();
    assert!(first.full, "{first:?}");
    assert_eq!(first.manifests_read, 6);
    assert_eq!(first.examined, first.containers);

    // Nothing changed: nothing read, nothing examined.
    let idle = run_gc(&w, &repo, GcOptions::default()).unwrap();
    assert!(!idle.full, "{idle:?}");
    assert_eq!((idle.manifests_read, idle.examined), (0, 0), "{idle:?}");

    // One new snapshot: its manifest, and the containers it wrote.
    write_files(&w.src(), 100, 4);
    std::fs::remove_dir_all(&copy).unwrap();
    copy_tree(&w.src(), &copy);
    let before = repo.container_ids().unwrap().len() as u64;
    snaps.push(w.backup(&repo));
    let added = repo.container_ids().unwrap().len() as u64 - before;
    let new = run_gc(&w, &repo, GcOptions::default()).unwrap();
    assert_eq!(new.manifests_read, 1, "{new:?}");
    assert_eq!(new.examined, added, "{new:?}");
    assert!(new.delete.is_empty() && new.compact.is_empty(), "{new:?}");

    // The two oldest snapshots go: no manifest is read, and only the
    // containers they referenced are examined.
    for id in snaps.drain(..2) {
        w.forget(&repo, &id);
    }
    let pruned = run_gc(&w, &repo, GcOptions::default()).unwrap();
    assert_eq!(pruned.manifests_read, 0, "{pruned:?}");
    assert!(
        pruned.examined > 0 && pruned.examined < pruned.containers,
        "{pruned:?}"
    );
    assert!(pruned.stats.containers_deleted + pruned.stats.containers_compacted > 0);
    let fresh = w.repo();
    let full = full_dry_run(&w, &fresh, 0.5);
    assert!(
        full.delete.is_empty() && full.compact.is_empty(),
        "the incremental collection left work: {full:?}"
    );
    assert_restores(&w, &fresh, snaps.last().unwrap(), &copy);

    // After a compaction the marks followed the copies: dropping every
    // snapshot but the newest and collecting everything compacts, then a
    // full collection agrees and the newest restores.
    let newest = *snaps.last().unwrap();
    for id in &snaps[..snaps.len() - 1] {
        w.forget(&fresh, id);
    }
    let tight = GcOptions {
        compact_below: 0.95,
        ..GcOptions::default()
    };
    let r = run_gc(&w, &fresh, tight).unwrap();
    assert!(
        r.full,
        "a higher threshold than last time examines everything"
    );
    assert!(r.stats.containers_compacted > 0, "{r:?}");
    let again = run_gc(&w, &w.repo(), tight).unwrap();
    assert!(!again.full && again.manifests_read == 0, "{again:?}");
    assert!(
        again.delete.is_empty() && again.compact.is_empty(),
        "{again:?}"
    );
    let fresh = w.repo();
    let full = full_dry_run(&w, &fresh, 0.95);
    assert!(
        full.delete.is_empty() && full.compact.is_empty(),
        "{full:?}"
    );
    assert_restores(&w, &fresh, &newest, &copy);
    // Everything goes, with the cache only.
    w.forget(&fresh, &newest);
    let all = run_gc(&w, &fresh, tight).unwrap();
    assert!(!all.full, "{all:?}");
    assert_eq!(w.containers(), 0);
}

/// A cache that cannot be trusted is not used: a collection by a process
/// with another catalog (the generation moved), or a cache row that does
/// not decode, make the next collection a full one, which loses nothing.
#[test]
fn a_mark_cache_that_cannot_be_trusted_is_rebuilt() {
    let w = World::new();
    let (kept, expected) = two_generations(&w);
    let repo = w.repo();
    assert!(run_gc(&w, &repo, GcOptions::default()).unwrap().full);
    assert!(!run_gc(&w, &repo, GcOptions::default()).unwrap().full);
    // Another catalog collects the same store.
    let other = w.dir.path().join("other.db");
    let cat = Catalog::open(&other).unwrap();
    write_files(&w.src(), 500, 3);
    let extra = w.backup(&repo);
    w.forget(&repo, &extra);
    gc(
        &repo,
        &cat,
        &GcOptions::default(),
        crate::now_ms(),
        &actor(),
        &Progress::default(),
        None,
    )
    .unwrap();
    let r = run_gc(&w, &repo, GcOptions::default()).unwrap();
    assert!(r.full && r.manifests_read == 1, "{r:?}");
    // A row that does not decode.
    let store = repo.config().store_id.to_hex();
    let conn = rusqlite::Connection::open(w.store().join("catalog.db")).unwrap();
    let n = conn
        .execute(
            "UPDATE gc_marks SET positions = x'0102' WHERE store = ?1",
            [&store],
        )
        .unwrap();
    assert_eq!(n, 1);
    drop(conn);
    let r = run_gc(&w, &repo, GcOptions::default()).unwrap();
    assert!(r.full && r.manifests_read == 1, "{r:?}");
    assert_restores(&w, &w.repo(), &kept, &expected);
}

/// A snapshot marked while one of its chunks is in no container (its
/// container was lost) is marked again by every collection until a copy
/// appears; once a later backup stores the chunk again, that copy is kept
/// for it even after the later backup is pruned.
#[test]
fn a_chunk_stored_again_after_a_loss_is_kept_for_the_snapshot_that_lost_it() {
    let w = World::new();
    let repo = w.repo();
    write_files(&w.src(), 0, 12);
    let copy = w.dir.path().join("expected");
    copy_tree(&w.src(), &copy);
    let first = w.backup(&repo);
    assert!(run_gc(&w, &repo, GcOptions::default()).unwrap().full);
    // Lose the container holding f0000's first chunk.
    let rec = repo.load_snapshot(&first).unwrap();
    let mut dec = repo.manifest(&rec);
    let mut chunk = None;
    while let Some(e) = dec.next_entry().unwrap() {
        if e.path.ends_with(b"f0000")
            && let Some(Extent::Data { id, .. }) = e.extents.first()
        {
            chunk = Some(*id);
        }
    }
    let chunk = chunk.unwrap();
    let lost = repo.locate(&chunk).unwrap().unwrap().container;
    repo.remove_container(&lost).unwrap();
    let repo = w.repo();
    let r = run_gc(&w, &repo, GcOptions::default()).unwrap();
    assert!(r.full, "a container the cache knew is gone: {r:?}");
    // The same tree again stores the lost chunks again.
    let second = w.backup(&repo);
    assert!(repo.locate(&chunk).unwrap().is_some());
    let r = run_gc(&w, &repo, GcOptions::default()).unwrap();
    assert!(
        !r.full && r.manifests_read == 2,
        "the incomplete snapshot is marked again: {r:?}"
    );
    w.forget(&repo, &second);
    let r = run_gc(&w, &repo, GcOptions::default()).unwrap();
    assert_eq!(r.manifests_read, 0, "now complete and cached: {r:?}");
    assert_restores(&w, &w.repo(), &first, &copy);
}
