//! Restore drills: the evidence that a copy restores within the asset's
//! RTO.
//!
//! A drill picks a snapshot of an asset (the newest, one at random, or the
//! one named), checks that the sandbox has room for it, restores it from
//! the copy the caller provides (the store itself, a tape media set, …)
//! into a fresh sandbox directory, and verifies every entry against the
//! manifest: each regular file's size and keyed BLAKE3 content hash,
//! directories, symbolic link targets, hard links. The time is measured
//! from the start until the last file is verified, on a monotonic clock,
//! and compared with the asset's RTO. A drill that takes longer is a
//! failure, with the reason. The sandbox is removed whatever happens. The
//! evidence row (what, from which copy, by whom, how long, how many files
//! and bytes were verified, pass or fail and why) is written when the
//! drill starts and finished once; the catalog refuses to change it after
//! that.
//!
//! A drill a killed process left `running` is failed by [`reap`] the next
//! time the service starts, and its sandbox is removed then.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use coffer_catalog::{Catalog, DrillEnd, NewDrill};
use coffer_store::manifest::{Entry, EntryKind};
use coffer_store::{Repo, SnapshotRecord};
use coffer_types::api::{DrillRecord, DrillSource};
use coffer_types::{Level, SnapshotId, SnapshotInfo};

use crate::restore::safe_components;
use crate::{Actor, Error, Result};

/// What to drill.
#[derive(Debug, Clone)]
pub struct DrillRequest {
    /// The asset.
    pub asset: String,
    /// This snapshot; `None`: the newest, or a random one.
    pub snapshot: Option<SnapshotId>,
    /// Pick a snapshot at random rather than the newest.
    pub random: bool,
    /// Which copy (recorded; the caller restores from it).
    pub source: DrillSource,
    /// Where sandboxes are made (`drill-<n>` under it).
    pub sandbox_root: PathBuf,
    /// The asset's RTO, ms.
    pub rto_ms: Option<i64>,
    /// The job log row running it.
    pub job: Option<i64>,
    /// Paths the drill must not be able to change (the store's objects,
    /// a disk pool's members: [`crate::sandbox::store_paths`]); read-only
    /// in the drill's mount namespace.
    pub protect: Vec<PathBuf>,
    /// Room the restore step needs in the sandbox beyond the restored
    /// tree.
    pub staging: Staging,
}

/// What a restore step stages in the sandbox besides the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staging {
    /// Nothing (the store, a bucket read in place).
    Nothing,
    /// About as much as the tree holds (a tape set's containers).
    AsTree,
    /// This many bytes (a whole pulled copy).
    Bytes(u64),
}

/// What the caller's restore did.
#[derive(Debug, Clone, Default)]
pub struct Restored {
    /// The copy restored from, in words (the store, a media set and its
    /// cartridges).
    pub copy: String,
    /// Entries that could not be restored: the drill fails.
    pub errors: Vec<String>,
}

/// The restore step: restores `snapshot` into `target` (a directory that
/// does not exist yet), using `scratch` (an empty directory in the
/// sandbox) for anything it needs to stage.
pub type RestoreStep<'a> =
    dyn FnMut(&SnapshotId, &Path, &Path) -> std::result::Result<Restored, String> + 'a;

/// The snapshot a drill restores.
pub fn pick(catalog: &Catalog, req: &DrillRequest) -> Result<SnapshotInfo> {
    if let Some(id) = &req.snapshot {
        let s = catalog.resolve_snapshot(&id.to_hex())?;
        if s.asset != req.asset {
            return Err(Error::Invalid(format!(
                "snapshot {} is of asset {}, not {}",
                s.id.short(),
                s.asset,
                req.asset
            )));
        }
        return Ok(s);
    }
    let all = catalog.snapshots(Some(&req.asset))?;
    if all.is_empty() {
        return Err(Error::Invalid(format!(
            "asset {} has no snapshot to drill",
            req.asset
        )));
    }
    if req.random {
        let mut b = [0u8; 8];
        coffer_keys::random_bytes(&mut b).map_err(|e| Error::Invalid(e.to_string()))?;
        let i = (u64::from_le_bytes(b) % all.len() as u64) as usize;
        return Ok(all[i].clone());
    }
    let newest = catalog
        .latest_snapshot(
            &req.asset,
            &[Level::Full, Level::Incremental, Level::Differential],
        )?
        .ok_or_else(|| Error::Invalid(format!("asset {} has no snapshot", req.asset)))?;
    Ok(newest)
}

/// Removes the sandbox when the drill leaves, however it leaves.
struct Sandbox(PathBuf);

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Err(e) = remove_tree(&self.0) {
            tracing::error!(path = %self.0.display(), error = %e, "a drill sandbox could not be removed");
        }
    }
}

/// Removes `dir`, first making every directory in it writable (a restored
/// tree may hold read-only directories).
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if !dir.exists() {
        return Ok(());
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(m) = std::fs::symlink_metadata(&d)
            && m.is_dir()
        {
            let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700));
            for e in std::fs::read_dir(&d)?.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
    }
    std::fs::remove_dir_all(dir)
}

/// Free bytes on the filesystem holding `dir`.
fn free_bytes(dir: &Path) -> Result<u64> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(|e| {
        Error::Invalid(format!(
            "cannot read the free space of '{}': {e}",
            dir.display()
        ))
    })?;
    Ok(st.blocks_available() as u64 * st.fragment_size() as u64)
}

/// What verification found.
#[derive(Debug, Default)]
struct Checked {
    files: u64,
    bytes: u64,
    mismatches: Vec<String>,
    mismatch_count: u64,
}

impl Checked {
    fn bad(&mut self, what: String) {
        self.mismatch_count += 1;
        if self.mismatches.len() < 10 {
            self.mismatches.push(what);
        }
    }
}

fn hash_file(repo: &Repo, path: &Path) -> std::io::Result<(u64, [u8; 32])> {
    let mut f = std::fs::File::open(path)?;
    let mut h = repo.content_hasher();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, *h.finalize().as_bytes()))
}

fn check(repo: &Repo, root: &Path, e: &Entry, out: &mut Checked) {
    let name = String::from_utf8_lossy(&e.path).into_owned();
    let Ok(comps) = safe_components(&e.path) else {
        out.bad(format!("{name}: unsafe path in the manifest"));
        return;
    };
    let mut path = root.to_path_buf();
    for c in comps {
        path.push(std::ffi::OsStr::from_bytes(c));
    }
    let meta = std::fs::symlink_metadata(&path);
    match e.kind {
        EntryKind::Dir => {
            if !meta.is_ok_and(|m| m.is_dir()) {
                out.bad(format!("/{name}: directory missing"));
            }
        }
        EntryKind::File | EntryKind::Hardlink => {
            if !meta.as_ref().is_ok_and(|m| m.is_file()) {
                out.bad(format!("/{name}: file missing"));
                return;
            }
            if e.kind == EntryKind::Hardlink {
                return;
            }
            match hash_file(repo, &path) {
                Ok((n, _)) if n != e.size => {
                    out.bad(format!("/{name}: {n} bytes, the manifest says {}", e.size));
                }
                Ok((n, h)) if h != e.content_hash => {
                    out.bad(format!(
                        "/{name}: content differs from the backup ({n} bytes)"
                    ));
                }
                Ok((n, _)) => {
                    out.files += 1;
                    out.bytes += n;
                }
                Err(err) => out.bad(format!("/{name}: cannot be read: {err}")),
            }
        }
        EntryKind::Symlink => match std::fs::read_link(&path) {
            Ok(t) if t.as_os_str().as_encoded_bytes() == e.target.as_slice() => {}
            Ok(_) => out.bad(format!("/{name}: link target differs")),
            Err(_) => out.bad(format!("/{name}: symbolic link missing")),
        },
        // Devices, pipes and sockets are recreated only where the restore
        // may (root); their absence is the restore's warning, not a
        // content error.
        EntryKind::Fifo | EntryKind::CharDev | EntryKind::BlockDev | EntryKind::Socket => {}
    }
}

/// The manifest's entries and the bytes its files hold.
fn manifest(repo: &Repo, rec: &SnapshotRecord) -> Result<(Vec<Entry>, u64)> {
    let mut entries = Vec::new();
    let mut bytes = 0u64;
    for e in repo.manifest(rec) {
        let e = e?;
        if e.kind == EntryKind::File {
            bytes += e.size;
        }
        entries.push(e);
    }
    Ok((entries, bytes))
}

fn human(ms: i64) -> String {
    if ms < 10_000 {
        format!("{:.2} s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{:.1} min", ms as f64 / 60_000.0)
    } else {
        format!("{:.2} h", ms as f64 / 3_600_000.0)
    }
}

/// Runs a drill: picks the snapshot, records the drill, restores it with
/// `restore` into a sandbox under `req.sandbox_root`, verifies it, times
/// it against the RTO, removes the sandbox and records the result.
/// `now_ms` is the recording clock (the service's). Errors before the
/// drill is recorded (no such asset or snapshot) are returned; every
/// later failure is a recorded `fail` with its reason.
pub fn run(
    repo: &Repo,
    catalog: &Catalog,
    req: &DrillRequest,
    actor: &Actor,
    now_ms: &dyn Fn() -> i64,
    restore: &mut RestoreStep<'_>,
) -> Result<DrillRecord> {
    let snap = pick(catalog, req)?;
    let started = Instant::now();
    let id = catalog.begin_drill(&NewDrill {
        job: req.job,
        asset: req.asset.clone(),
        snapshot: snap.id.to_hex(),
        source: req.source.as_str().into(),
        copy: String::new(),
        identity: actor.identity.clone(),
        started_ms: now_ms(),
        rto_ms: req.rto_ms,
    })?;
    let mut copy = String::new();
    let mut isolation = String::new();
    // No collection moves a chunk away while the drill reads the store.
    let lock = crate::lock::StoreLock::shared(catalog);
    let outcome = (|| -> std::result::Result<(Checked, Vec<String>), String> {
        let _lock = lock.map_err(|e| e.to_string())?;
        let rec = repo.load_snapshot(&snap.id).map_err(|e| e.to_string())?;
        let (entries, need) = manifest(repo, &rec).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&req.sandbox_root).map_err(|e| {
            format!(
                "cannot create the sandbox root '{}': {e}",
                req.sandbox_root.display()
            )
        })?;
        // Room for the tree, and for what the restore step stages.
        let margin = 64 << 20;
        let staged = match req.staging {
            Staging::Nothing => 0,
            Staging::AsTree => need,
            Staging::Bytes(n) => n,
        };
        let want = need.saturating_add(staged).saturating_add(margin);
        let free = free_bytes(&req.sandbox_root).map_err(|e| e.to_string())?;
        if free < want {
            return Err(format!(
                "not enough space for the sandbox in '{}': the snapshot needs about {} bytes, {} are free; nothing was restored",
                req.sandbox_root.display(),
                want,
                free
            ));
        }
        let dir = req.sandbox_root.join(format!("drill-{id}"));
        // A sandbox of its own, private to the service's user.
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(|e| format!("cannot create the sandbox '{}': {e}", dir.display()))?;
        }
        let _sandbox = Sandbox(dir.clone());
        let scratch = dir.join("staging");
        std::fs::create_dir(&scratch)
            .map_err(|e| format!("cannot create '{}': {e}", scratch.display()))?;
        let tree = dir.join("tree");
        // Restore and verify in the drill's own mount namespace; back to
        // the service's before the sandbox is removed.
        let confined = crate::sandbox::confine(&dir, &req.protect);
        isolation = confined.describe();
        let work = (|| {
            let r = restore(&snap.id, &tree, &scratch)?;
            copy = r.copy;
            let mut checked = Checked::default();
            for e in &entries {
                check(repo, &tree, e, &mut checked);
            }
            Ok((checked, r.errors))
        })();
        confined.leave()?;
        work
    })();
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let (pass, reason, files, bytes) = match outcome {
        Err(why) => (false, why, 0, 0),
        Ok((c, errors)) => {
            let mut why = Vec::new();
            if !errors.is_empty() {
                why.push(format!(
                    "{} entries could not be restored (first: {})",
                    errors.len(),
                    errors[0]
                ));
            }
            if c.mismatch_count > 0 {
                why.push(format!(
                    "{} entries do not match the backup: {}",
                    c.mismatch_count,
                    c.mismatches.join("; ")
                ));
            }
            if let Some(rto) = req.rto_ms
                && duration_ms > rto
            {
                why.push(format!(
                    "took {} against an RTO of {}: the RTO is not met",
                    human(duration_ms),
                    human(rto)
                ));
            }
            let pass = why.is_empty();
            let reason = if pass {
                format!(
                    "{} files ({} bytes) verified in {}{}",
                    c.files,
                    c.bytes,
                    human(duration_ms),
                    req.rto_ms
                        .map(|r| format!(", within the RTO of {}", human(r)))
                        .unwrap_or_default()
                )
            } else {
                why.join("; ")
            };
            (pass, reason, c.files, c.bytes)
        }
    };
    catalog.finish_drill(
        id,
        &DrillEnd {
            ended_ms: now_ms(),
            duration_ms,
            copy,
            files,
            bytes,
            pass,
            reason,
            isolation,
        },
    )?;
    catalog
        .drill(id)?
        .ok_or_else(|| Error::Invalid(format!("drill {id} vanished from the catalog")))
}

/// After a restart: fails every drill a killed process left `running`
/// and removes leftover sandboxes under `sandbox_root`. Returns the
/// drills failed.
pub fn reap(catalog: &Catalog, sandbox_root: &Path, now_ms: i64) -> Result<Vec<i64>> {
    let mut failed = Vec::new();
    for d in catalog.running_drills()? {
        catalog.finish_drill(
            d.id,
            &DrillEnd {
                ended_ms: now_ms,
                duration_ms: 0,
                copy: d.copy.clone(),
                files: 0,
                bytes: 0,
                pass: false,
                reason:
                    "interrupted: the appliance stopped during the drill; its sandbox was removed"
                        .into(),
                isolation: d.isolation.clone(),
            },
        )?;
        failed.push(d.id);
    }
    if let Ok(rd) = std::fs::read_dir(sandbox_root) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with("drill-")
                && let Err(err) = remove_tree(&e.path())
            {
                tracing::error!(path = %e.path().display(), error = %err, "a leftover drill sandbox could not be removed");
            }
        }
    }
    Ok(failed)
}

/// Restores `snapshot` of `repo` (the store, or a copy of it) into
/// `target` for a drill, keeping the restore's job row in a catalog of its
/// own in `scratch`: the drill is the evidence, and the appliance's job
/// log holds the drill's job, not a restore nobody asked for. Returns the
/// entries that could not be restored.
pub fn restore_into(
    repo: &Repo,
    actor: &Actor,
    snapshot: &SnapshotId,
    target: &Path,
    scratch: &Path,
    progress: &crate::Progress,
) -> std::result::Result<Vec<String>, String> {
    let catalog = Catalog::open(&scratch.join("catalog.db"))
        .map_err(|e| format!("cannot open the sandbox's catalog: {e}"))?;
    let out = crate::restore(
        repo,
        &catalog,
        &crate::RestoreRequest {
            snapshot: *snapshot,
            target: target.to_path_buf(),
            paths: Vec::new(),
            overwrite: false,
            threads: 0,
        },
        actor,
        progress,
    )
    .map_err(|e| e.to_string())?;
    Ok(out.errors)
}

/// The restore step for the appliance's own store.
pub fn from_store<'a>(
    repo: &'a Repo,
    actor: &'a Actor,
) -> impl FnMut(&SnapshotId, &Path, &Path) -> std::result::Result<Restored, String> + 'a {
    move |snapshot, target, scratch| {
        let errors = restore_into(
            repo,
            actor,
            snapshot,
            target,
            scratch,
            &crate::Progress::default(),
        )
        .map_err(|e| format!("restore from the store failed: {e}"))?;
        Ok(Restored {
            copy: format!("store {}", repo.config().store_id),
            errors,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::gc::tests::{World, actor};

    fn world() -> (World, Repo, Catalog, SnapshotId) {
        let w = World::new();
        let src = w.src();
        std::fs::create_dir_all(src.join("etc/deep")).unwrap();
        std::fs::write(src.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
        let big: Vec<u8> = (0..600_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(src.join("etc/deep/big.bin"), &big).unwrap();
        std::os::unix::fs::symlink("hosts", src.join("etc/link")).unwrap();
        let repo = w.repo();
        let snap = w.backup(&repo);
        let cat = w.catalog();
        (w, repo, cat, snap)
    }

    fn req(w: &World, rto_ms: Option<i64>) -> DrillRequest {
        DrillRequest {
            asset: "files".into(),
            snapshot: None,
            random: false,
            source: DrillSource::Disk,
            sandbox_root: w.dir.path().join("drills"),
            rto_ms,
            job: None,
            protect: crate::sandbox::store_paths(&w.store(), &[]),
            staging: Staging::Nothing,
        }
    }

    fn sandboxes(w: &World) -> usize {
        std::fs::read_dir(w.dir.path().join("drills"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    #[test]
    fn a_drill_restores_verifies_every_file_and_records_the_evidence() {
        let (w, repo, cat, snap) = world();
        let a = actor();
        let mut step = from_store(&repo, &a);
        let t0 = std::time::Instant::now();
        let d = run(
            &repo,
            &cat,
            &req(&w, Some(3_600_000)),
            &a,
            &|| 1_000,
            &mut step,
        )
        .unwrap();
        let around = t0.elapsed().as_millis() as i64;
        assert_eq!(d.result, "pass", "{d:?}");
        assert_eq!(d.snapshot, snap.to_hex());
        assert_eq!(d.files, 2);
        assert_eq!(d.bytes, 600_000 + 20);
        assert_eq!(d.source, "disk");
        assert!(d.copy.starts_with("store "), "{}", d.copy);
        assert_eq!(d.identity, "test");
        // Measured, within the time the call took.
        assert!(d.duration_ms.unwrap() <= around, "{d:?} in {around} ms");
        assert_eq!(d.rto_ms, Some(3_600_000));
        assert!(d.reason.contains("within the RTO"), "{}", d.reason);
        assert!(
            d.isolation.starts_with("private mount namespace"),
            "{}",
            d.isolation
        );
        assert_eq!(sandboxes(&w), 0, "the sandbox is removed");
        // The drill's job log holds no restore of its own: the restore's
        // row was in the sandbox's catalog.
        let jobs = cat.jobs(&coffer_catalog::JobFilter::default()).unwrap();
        assert!(
            jobs.iter()
                .all(|j| j.kind != coffer_types::JobKind::Restore),
            "{jobs:?}"
        );
        // Evidence is never changed.
        assert!(
            cat.finish_drill(
                d.id,
                &DrillEnd {
                    ended_ms: 2,
                    duration_ms: 1,
                    copy: String::new(),
                    files: 0,
                    bytes: 0,
                    pass: false,
                    reason: "rewritten".into(),
                    isolation: String::new(),
                }
            )
            .is_err()
        );
        assert_eq!(cat.drill(d.id).unwrap().unwrap(), d);
    }

    #[test]
    fn a_drill_over_its_rto_or_with_a_differing_file_fails_with_the_reason() {
        let (w, repo, cat, _) = world();
        let a = actor();
        // A copy slower than the RTO (a 10 ms RTO; it takes 30 ms or more).
        let mut fast = from_store(&repo, &a);
        let mut slow = |s: &SnapshotId, t: &Path, x: &Path| {
            std::thread::sleep(std::time::Duration::from_millis(30));
            fast(s, t, x)
        };
        let d = run(&repo, &cat, &req(&w, Some(10)), &a, &|| 1, &mut slow).unwrap();
        assert_eq!(d.result, "fail", "{d:?}");
        assert!(d.duration_ms.unwrap() >= 30);
        assert!(d.reason.contains("RTO is not met"), "{}", d.reason);
        assert_eq!(d.files, 2, "every file was verified all the same");
        // A copy that restores one file wrong.
        let mut inner = from_store(&repo, &a);
        let mut tampered = |s: &SnapshotId, t: &Path, x: &Path| {
            let r = inner(s, t, x)?;
            std::fs::write(t.join("etc/hosts"), "10.0.0.1 evil\n").unwrap();
            Ok(r)
        };
        let d = run(&repo, &cat, &req(&w, None), &a, &|| 2, &mut tampered).unwrap();
        assert_eq!(d.result, "fail");
        assert!(d.reason.contains("/etc/hosts"), "{}", d.reason);
        // A copy that cannot be read at all.
        let mut broken =
            |_: &SnapshotId, _: &Path, _: &Path| -> std::result::Result<Restored, String> {
                Err("cartridge CF0001L9 is not in the library".into())
            };
        let d = run(&repo, &cat, &req(&w, None), &a, &|| 3, &mut broken).unwrap();
        assert_eq!(d.result, "fail");
        assert!(d.reason.contains("CF0001L9"), "{}", d.reason);
        assert_eq!(sandboxes(&w), 0);
        assert_eq!(cat.drills(Some("files")).unwrap().len(), 3);
        // No such asset: refused before anything is recorded.
        let mut r = req(&w, None);
        r.asset = "nothing".into();
        let mut step = from_store(&repo, &a);
        assert!(run(&repo, &cat, &r, &a, &|| 4, &mut step).is_err());
        assert_eq!(cat.drills(None).unwrap().len(), 3);
    }

    #[test]
    fn a_sandbox_without_room_fails_before_restoring_anything() {
        let (w, repo, cat, _) = world();
        let root = w.dir.path().join("tiny");
        std::fs::create_dir_all(&root).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&root)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: cannot mount a tmpfs here (not root?)");
            return;
        }
        let a = actor();
        let mut called = false;
        let mut step =
            |_: &SnapshotId, _: &Path, _: &Path| -> std::result::Result<Restored, String> {
                called = true;
                Ok(Restored::default())
            };
        let r = DrillRequest {
            sandbox_root: root.clone(),
            ..req(&w, None)
        };
        let d = run(&repo, &cat, &r, &a, &|| 1, &mut step);
        let _ = std::process::Command::new("umount").arg(&root).status();
        let d = d.unwrap();
        assert_eq!(d.result, "fail");
        assert!(d.reason.contains("not enough space"), "{}", d.reason);
        assert!(!called, "nothing was restored");
    }

    #[test]
    fn a_drill_killed_halfway_is_failed_and_its_sandbox_removed_at_the_next_start() {
        let (w, _repo, cat, snap) = world();
        let root = w.dir.path().join("drills");
        let id = cat
            .begin_drill(&NewDrill {
                job: None,
                asset: "files".into(),
                snapshot: snap.to_hex(),
                source: "disk".into(),
                copy: String::new(),
                identity: "test".into(),
                started_ms: 5,
                rto_ms: None,
            })
            .unwrap();
        let sandbox = root.join(format!("drill-{id}/tree/etc"));
        std::fs::create_dir_all(&sandbox).unwrap();
        std::fs::write(sandbox.join("hosts"), "half").unwrap();
        // A read-only directory in the restored tree.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&sandbox, std::fs::Permissions::from_mode(0o500)).unwrap();
        let outside = w.dir.path().join("keep.txt");
        std::fs::write(&outside, "not the drill's").unwrap();
        assert_eq!(reap(&cat, &root, 9).unwrap(), vec![id]);
        let d = cat.drill(id).unwrap().unwrap();
        assert_eq!(d.result, "fail");
        assert!(d.reason.contains("interrupted"), "{}", d.reason);
        assert!(!root.join(format!("drill-{id}")).exists());
        assert!(outside.exists(), "nothing outside the sandbox is touched");
        assert!(reap(&cat, &root, 10).unwrap().is_empty());
    }

    #[test]
    fn a_drill_cannot_change_the_store_it_tests_and_its_sandbox_runs_nothing() {
        let (w, repo, cat, _) = world();
        let a = actor();
        let store = w.store();
        let mut inner = from_store(&repo, &a);
        let mut seen = Vec::new();
        let mut step = |s: &SnapshotId, t: &Path, scratch: &Path| {
            // A restore that goes wrong and writes into the store.
            seen.push(
                std::fs::write(store.join("data/planted"), b"x").map_err(|e| e.raw_os_error()),
            );
            seen.push(std::fs::write(store.join("config"), b"x").map_err(|e| e.raw_os_error()));
            let r = inner(s, t, scratch);
            // What was restored cannot be run from the sandbox.
            let fl = nix::sys::statvfs::statvfs(t).unwrap().flags();
            seen.push(
                if fl.contains(
                    nix::sys::statvfs::FsFlags::ST_NOEXEC | nix::sys::statvfs::FsFlags::ST_NOSUID,
                ) {
                    Ok(())
                } else {
                    Err(None)
                },
            );
            r
        };
        let d = run(&repo, &cat, &req(&w, None), &a, &|| 1_000, &mut step).unwrap();
        assert_eq!(d.result, "pass", "{d:?}");
        assert_eq!(
            seen,
            vec![Err(Some(libc::EROFS)), Err(Some(libc::EROFS)), Ok(())],
            "{}",
            d.isolation
        );
        assert!(!store.join("data/planted").exists());
        assert!(d.isolation.contains("read-only"), "{}", d.isolation);
        // The store is writable again outside the drill.
        std::fs::write(store.join("data/after"), b"x").unwrap();
    }
}
