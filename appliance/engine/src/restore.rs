//! Restore of a snapshot, whole or chosen paths, into a target directory.
//!
//! Safety: the manifest is untrusted input. Every path is checked to be a
//! sequence of plain names (no `..`, `.`, empty or absolute components), and
//! every entry is created relative to a directory file descriptor that was
//! opened component by component with `O_NOFOLLOW | O_DIRECTORY` from the
//! target. A symlink in the way — restored earlier from the same manifest or
//! already in the target — is never followed; the entry is skipped with a
//! warning. Existing files are not replaced unless `overwrite` is set.
//!
//! Metadata: ownership (when running as root), mode including
//! setuid/setgid/sticky (applied after chown, which clears them), extended
//! attributes (POSIX ACLs ride on `system.posix_acl_*`), and mtime to the
//! nanosecond; directory metadata is applied last, deepest first, so writing
//! their contents does not disturb it. Files are written by a pool of
//! threads; files with several links are written in order so their links can
//! follow.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use coffer_catalog::{Catalog, JobEnd, NewJob};
use coffer_store::{Entry, EntryKind, Extent, Repo};
use coffer_types::{BackupStats, JobKind, JobStatus, Scope, SnapshotId};
use crossbeam_channel::bounded;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{
    FchmodatFlags, Mode, SFlag, UtimensatFlags, fchmodat, futimens, mkdirat, mknodat, utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchownat, linkat, mkfifoat, symlinkat, unlinkat};

use crate::{Actor, Error, Progress, Result, now_ms};

/// What to restore.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// Where its contents land (created if missing).
    pub target: PathBuf,
    /// Paths inside the snapshot to restore (empty = everything).
    pub paths: Vec<Vec<u8>>,
    /// Replace files that exist in the target.
    pub overwrite: bool,
    /// Writer threads (0 = one per core).
    pub threads: usize,
}

/// What a restore did.
#[derive(Debug, Clone, Default)]
pub struct RestoreOutcome {
    /// Entries restored.
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Content bytes written.
    pub bytes: u64,
    /// Entries skipped by policy or because the manifest is unsafe, with the reason.
    pub warnings: Vec<String>,
    /// Entries whose data could not be read from the store or written to the
    /// target (damage, full disk): the restore is incomplete.
    pub errors: Vec<String>,
    /// The job log row.
    pub job_id: i64,
}

/// Splits a manifest path into safe components, or says why it is unsafe.
pub fn safe_components(path: &[u8]) -> std::result::Result<Vec<&[u8]>, &'static str> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    if path.starts_with(b"/") {
        return Err("absolute path");
    }
    let comps: Vec<&[u8]> = path.split(|c| *c == b'/').collect();
    for c in &comps {
        match *c {
            b"" => return Err("empty path component"),
            b"." | b".." => return Err("'.' or '..' component"),
            c if c.contains(&0) => return Err("NUL in name"),
            _ => {}
        }
    }
    Ok(comps)
}

/// Normalises a path given on the command line to manifest form.
pub fn normalize_selection(p: &[u8]) -> Vec<u8> {
    p.split(|c| *c == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect::<Vec<_>>()
        .join(&b'/')
}

fn selected(path: &[u8], sel: &[Vec<u8>]) -> bool {
    if sel.is_empty() || path.is_empty() {
        return true;
    }
    sel.iter().any(|s| {
        let under =
            |a: &[u8], b: &[u8]| a.len() > b.len() && a.starts_with(b) && a[b.len()] == b'/';
        path == s.as_slice() || under(path, s) || under(s, path)
    })
}

/// Open directories along the current path, so consecutive entries of one
/// directory cost one `openat` in all.
struct DirCache {
    root: Arc<OwnedFd>,
    stack: Vec<(Vec<u8>, Arc<OwnedFd>)>,
}

impl DirCache {
    /// The directory at `comps` below the target, created (mode 0700, fixed
    /// later by its own entry) when missing; never through a symlink.
    /// A symlink in the way is a warning (the entry is skipped by policy);
    /// failing to create or open a directory is an error.
    fn open(&mut self, comps: &[&[u8]]) -> std::result::Result<Arc<OwnedFd>, Problem> {
        let keep = self
            .stack
            .iter()
            .zip(comps)
            .take_while(|((n, _), c)| n.as_slice() == **c)
            .count();
        self.stack.truncate(keep);
        for c in &comps[keep..] {
            let parent = self
                .stack
                .last()
                .map(|(_, f)| f.clone())
                .unwrap_or_else(|| self.root.clone());
            let name = OsStr::from_bytes(c);
            let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
            let fd = match openat(parent.as_fd(), name, flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => {
                    mkdirat(parent.as_fd(), name, Mode::from_bits_truncate(0o700)).map_err(
                        |e| Problem::Error(format!("cannot create directory for it: {e}")),
                    )?;
                    openat(parent.as_fd(), name, flags, Mode::empty())
                        .map_err(|e| Problem::Error(format!("cannot open directory for it: {e}")))?
                }
                Err(Errno::ELOOP) | Err(Errno::ENOTDIR) => {
                    return Err(Problem::Warning(format!(
                        "skipped: '{}' in its path is not a directory (a symlink is never followed)",
                        String::from_utf8_lossy(c)
                    )));
                }
                Err(e) => {
                    return Err(Problem::Error(format!("cannot open directory for it: {e}")));
                }
            };
            self.stack.push((c.to_vec(), Arc::new(fd)));
        }
        Ok(self
            .stack
            .last()
            .map(|(_, f)| f.clone())
            .unwrap_or_else(|| self.root.clone()))
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn mtime_spec(e: &Entry) -> TimeSpec {
    TimeSpec::new(e.mtime_s, i64::from(e.mtime_ns.min(999_999_999)))
}

fn proc_path(dir: BorrowedFd<'_>, name: &[u8]) -> PathBuf {
    let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    p.push(OsStr::from_bytes(name));
    p
}

fn xattr_error(k: &[u8], err: impl std::fmt::Display) -> String {
    format!(
        "cannot set extended attribute '{}': {err}",
        String::from_utf8_lossy(k)
    )
}

/// Joins the metadata failures of one entry; all steps are tried.
fn meta_result(failures: Vec<String>) -> std::result::Result<(), String> {
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

/// Applies owner, xattrs, mode and mtime (in that order: chown clears
/// setuid/setgid and file capabilities, and a read-only mode would forbid
/// setting xattrs) to an open file or directory.
fn apply_meta_fd(f: &File, e: &Entry) -> std::result::Result<(), String> {
    use xattr::FileExt as _;
    let mut failures = Vec::new();
    if is_root()
        && let Err(err) = std::os::unix::fs::fchown(f, Some(e.uid), Some(e.gid))
    {
        failures.push(format!("cannot set owner: {err}"));
    }
    for (k, v) in &e.xattrs {
        if let Err(err) = f.set_xattr(OsStr::from_bytes(k), v) {
            failures.push(xattr_error(k, err));
        }
    }
    if let Err(err) = f.set_permissions(std::fs::Permissions::from_mode(e.mode & 0o7777)) {
        failures.push(format!("cannot set mode: {err}"));
    }
    if let Err(err) = futimens(f.as_fd(), &TimeSpec::UTIME_OMIT, &mtime_spec(e)) {
        failures.push(format!("cannot set times: {err}"));
    }
    meta_result(failures)
}

/// Applies metadata to a symlink, fifo or device node by name. Nothing here
/// follows a symlink: ownership and times use `AT_SYMLINK_NOFOLLOW`, xattrs
/// the `l*` calls, and the mode is set through an `O_PATH` descriptor whose
/// type was checked (Linux has no lchmod).
fn apply_meta_at(dir: BorrowedFd<'_>, name: &[u8], e: &Entry) -> std::result::Result<(), String> {
    let n = OsStr::from_bytes(name);
    let mut failures = Vec::new();
    if is_root()
        && let Err(err) = fchownat(
            dir,
            n,
            Some(Uid::from_raw(e.uid)),
            Some(Gid::from_raw(e.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
    {
        failures.push(format!("cannot set owner: {err}"));
    }
    if !e.xattrs.is_empty() {
        let p = proc_path(dir, name);
        for (k, v) in &e.xattrs {
            if let Err(err) = xattr::set(&p, OsStr::from_bytes(k), v) {
                failures.push(xattr_error(k, err));
            }
        }
    }
    if e.kind != EntryKind::Symlink
        && let Err(err) = chmod_nofollow(dir, n, e.mode & 0o7777)
    {
        failures.push(format!("cannot set mode: {err}"));
    }
    if let Err(err) = utimensat(
        dir,
        n,
        &TimeSpec::UTIME_OMIT,
        &mtime_spec(e),
        UtimensatFlags::NoFollowSymlink,
    ) {
        failures.push(format!("cannot set times: {err}"));
    }
    meta_result(failures)
}

/// chmod of `name` in `dir` that refuses to act on a symlink.
fn chmod_nofollow(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> nix::Result<()> {
    let fd = openat(
        dir,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let st = nix::sys::stat::fstat(&fd)?;
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        return Err(Errno::ELOOP);
    }
    // /proc/self/fd/N names the inode the O_PATH descriptor holds.
    let path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    fchmodat(
        nix::fcntl::AT_FDCWD,
        &path,
        Mode::from_bits_truncate(mode),
        FchmodatFlags::FollowSymlink,
    )
}

/// Creates `name` in `dir` with `create`; an existing entry is removed first
/// when `overwrite`, otherwise it is a warning. Failing to create is an error.
fn create_at(
    dir: BorrowedFd<'_>,
    name: &[u8],
    overwrite: bool,
    mut create: impl FnMut() -> nix::Result<()>,
) -> std::result::Result<(), Problem> {
    match create() {
        Ok(()) => Ok(()),
        Err(Errno::EEXIST) if overwrite => {
            unlinkat(dir, OsStr::from_bytes(name), UnlinkatFlags::NoRemoveDir)
                .map_err(|e| Problem::Error(format!("exists and cannot be replaced: {e}")))?;
            create().map_err(|e| Problem::Error(format!("cannot create: {e}")))
        }
        Err(Errno::EEXIST) => Err(Problem::Warning(
            "exists in the target; not overwritten (use --overwrite)".into(),
        )),
        Err(e) => Err(Problem::Error(format!("cannot create: {e}"))),
    }
}

/// Why an entry was not restored: a warning (skipped by policy, or metadata
/// that could not be set) or an error (its data could not be read, created or
/// written).
#[derive(Debug)]
enum Problem {
    Warning(String),
    Error(String),
}

impl From<String> for Problem {
    fn from(s: String) -> Problem {
        Problem::Warning(s)
    }
}

/// Writes one regular file's content and metadata.
fn write_file(
    repo: &Repo,
    dir: BorrowedFd<'_>,
    name: &[u8],
    e: &Entry,
    extents: &[Extent],
    overwrite: bool,
    progress: &Progress,
) -> std::result::Result<u64, Problem> {
    let n = OsStr::from_bytes(name);
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut fd = None;
    create_at(dir, name, overwrite, || {
        fd = Some(openat(dir, n, flags, Mode::from_bits_truncate(0o600))?);
        Ok(())
    })?;
    let file = File::from(fd.ok_or_else(|| "cannot create: no descriptor".to_string())?);
    let mut offset = 0u64;
    let mut written = 0u64;
    for ext in extents {
        match ext {
            Extent::Data { id, len } => {
                let data = repo
                    .read_chunk(id)
                    .map_err(|e| Problem::Error(format!("cannot read its content: {e}")))?;
                if data.len() as u64 != u64::from(*len) {
                    return Err(Problem::Error(format!(
                        "chunk {id} has {} bytes, manifest says {len}",
                        data.len()
                    )));
                }
                file.write_all_at(&data, offset)
                    .map_err(|e| Problem::Error(format!("write failed: {e}")))?;
                offset += u64::from(*len);
                written += u64::from(*len);
                Progress::add(&progress.bytes, u64::from(*len));
            }
            Extent::Hole { len } => offset += len,
        }
    }
    file.set_len(e.size)
        .map_err(|e| Problem::Error(format!("write failed: {e}")))?;
    apply_meta_fd(&file, e)?;
    Ok(written)
}

struct FileTask {
    dir: Arc<OwnedFd>,
    name: Vec<u8>,
    entry: Entry,
    display: String,
}

/// Restores a snapshot and records the job in the job log.
pub fn restore(
    repo: &Repo,
    catalog: &Catalog,
    req: &RestoreRequest,
    actor: &Actor,
    progress: &Progress,
) -> Result<RestoreOutcome> {
    // No compaction moves a chunk away while this restore reads it.
    let _lock = crate::lock::StoreLock::shared(catalog)?;
    repo.refresh()?;
    let rec = repo.load_snapshot(&req.snapshot)?;
    let job_id = catalog.begin_job(&NewJob {
        kind: JobKind::Restore,
        asset: Some(rec.info.asset.clone()),
        level: None,
        scope: Scope {
            paths: if req.paths.is_empty() {
                vec!["/".into()]
            } else {
                req.paths
                    .iter()
                    .map(|p| format!("/{}", String::from_utf8_lossy(p)))
                    .collect()
            },
            excludes: Vec::new(),
            one_file_system: false,
        },
        started_ms: now_ms(),
        identity: actor.identity.clone(),
        host: actor.host.clone(),
        pid: std::process::id(),
    })?;
    let result = run(repo, &rec, req, progress);
    let (status, messages, stats) = match &result {
        Ok(o) => (
            if !o.errors.is_empty() {
                JobStatus::Failed
            } else if o.warnings.is_empty() {
                JobStatus::Success
            } else {
                JobStatus::Warning
            },
            o.errors
                .iter()
                .map(|e| format!("restore into {}: error: {e}", req.target.display()))
                .chain(
                    o.warnings
                        .iter()
                        .map(|w| format!("restore into {}: {w}", req.target.display())),
                )
                .collect::<Vec<_>>(),
            BackupStats {
                files_read: o.files,
                bytes_read: o.bytes,
                entries: o.entries,
                warnings: o.warnings.len() as u64,
                ..BackupStats::default()
            },
        ),
        Err(e) => (
            JobStatus::Failed,
            vec![format!("error: {e}")],
            BackupStats::default(),
        ),
    };
    catalog.finish_job(
        job_id,
        &JobEnd {
            status,
            stats,
            messages: &messages,
            snapshot: Some(req.snapshot),
            ended_ms: now_ms(),
        },
    )?;
    result.map(|mut o| {
        o.job_id = job_id;
        o
    })
}

fn run(
    repo: &Repo,
    rec: &coffer_store::SnapshotRecord,
    req: &RestoreRequest,
    progress: &Progress,
) -> Result<RestoreOutcome> {
    // Create the target's last component ourselves and open what we created
    // with O_NOFOLLOW, so nobody can swap a symlink in between. A target that
    // already exists is the operator's choice and is opened as named.
    if let Some(parent) = req.target.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create target", parent, e))?;
    }
    let created = match std::fs::create_dir(&req.target) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(Error::io("create target", &req.target, e)),
    };
    let nofollow = if created { libc::O_NOFOLLOW } else { 0 };
    let root = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC | nofollow)
            .open(&req.target)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENOTDIR) => Error::Invalid(format!(
                    "target '{}' exists and is not a directory",
                    req.target.display()
                )),
                _ => Error::io("open target", &req.target, e),
            })?
    };
    let root: Arc<OwnedFd> = Arc::new(root.into());
    let threads = if req.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    } else {
        req.threads
    };
    let mut dirs = DirCache {
        root: root.clone(),
        stack: Vec::new(),
    };
    let warnings = Mutex::new(Vec::<String>::new());
    let errors = Mutex::new(Vec::<String>::new());
    let warn = |path: &str, w: String| {
        tracing::warn!(path, "{w}");
        if let Ok(mut g) = warnings.lock() {
            g.push(format!("{path}: {w}"));
        }
    };
    let report = |path: &str, p: Problem| match p {
        Problem::Warning(w) => warn(path, w),
        Problem::Error(e) => {
            tracing::warn!(path, "{e}");
            if let Ok(mut g) = errors.lock() {
                g.push(format!("{path}: {e}"));
            }
        }
    };
    let mut out = RestoreOutcome::default();
    let mut dir_entries: Vec<Entry> = Vec::new();
    let mut root_entry = None;
    // Content of files with several links, so a link whose first name was not
    // restored (not selected, or failed) can still be written.
    let mut multi: HashMap<Vec<u8>, (Vec<Extent>, bool)> = HashMap::new();
    let mut matched = vec![false; req.paths.len()];
    let totals = Mutex::new((0u64, 0u64));

    let walk = std::thread::scope(|s| -> Result<()> {
        let (tx, rx) = bounded::<FileTask>(threads * 8);
        let mut workers = Vec::new();
        for _ in 0..threads {
            let rx = rx.clone();
            let (report, totals) = (&report, &totals);
            workers.push(s.spawn(move || {
                for t in rx {
                    match write_file(
                        repo,
                        t.dir.as_fd(),
                        &t.name,
                        &t.entry,
                        &t.entry.extents,
                        req.overwrite,
                        progress,
                    ) {
                        Ok(n) => {
                            if let Ok(mut g) = totals.lock() {
                                g.0 += 1;
                                g.1 += n;
                            }
                        }
                        Err(p) => report(&t.display, p),
                    }
                }
            }));
        }
        drop(rx);
        let mut dec = repo.manifest(rec);
        let result = (|| -> Result<()> {
            while let Some(e) = dec.next_entry()? {
                for (i, s) in req.paths.iter().enumerate() {
                    if e.path == *s {
                        matched[i] = true;
                    }
                }
                if !selected(&e.path, &req.paths) {
                    if e.kind == EntryKind::File && e.nlink > 1 {
                        // Not restored itself, but a selected link to it may need its content.
                        multi.insert(e.path.clone(), (e.extents.clone(), false));
                    }
                    continue;
                }
                let display = e.display_path();
                let comps = match safe_components(&e.path) {
                    Ok(c) => c,
                    Err(why) => {
                        warn(
                            &display,
                            format!("unsafe path in the manifest ({why}); skipped"),
                        );
                        continue;
                    }
                };
                Progress::add(&progress.entries, 1);
                let Some((name, parents)) = comps.split_last() else {
                    root_entry = Some(e);
                    continue;
                };
                let dir = match dirs.open(parents) {
                    Ok(d) => d,
                    Err(p) => {
                        report(&display, p);
                        continue;
                    }
                };
                out.entries += 1;
                let res: std::result::Result<(), Problem> = match e.kind {
                    EntryKind::Dir => {
                        match mkdirat(
                            dir.as_fd(),
                            OsStr::from_bytes(name),
                            Mode::from_bits_truncate(0o700),
                        ) {
                            Ok(()) | Err(Errno::EEXIST) => {
                                dir_entries.push(e);
                                Ok(())
                            }
                            Err(err) => {
                                Err(Problem::Error(format!("cannot create directory: {err}")))
                            }
                        }
                    }
                    EntryKind::File if e.nlink > 1 => {
                        let r = write_file(
                            repo,
                            dir.as_fd(),
                            name,
                            &e,
                            &e.extents,
                            req.overwrite,
                            progress,
                        );
                        multi.insert(e.path.clone(), (e.extents.clone(), r.is_ok()));
                        r.map(|n| {
                            if let Ok(mut g) = totals.lock() {
                                g.0 += 1;
                                g.1 += n;
                            }
                        })
                    }
                    EntryKind::File => {
                        let task = FileTask {
                            dir,
                            name: name.to_vec(),
                            entry: e,
                            display,
                        };
                        tx.send(task).map_err(|_| Error::WorkerPanicked)?;
                        continue;
                    }
                    EntryKind::Hardlink => restore_link(
                        repo,
                        &mut dirs,
                        &dir,
                        name,
                        &e,
                        &multi,
                        req.overwrite,
                        progress,
                    ),
                    EntryKind::Symlink => create_at(dir.as_fd(), name, req.overwrite, || {
                        symlinkat(
                            OsStr::from_bytes(&e.target),
                            dir.as_fd(),
                            OsStr::from_bytes(name),
                        )
                    })
                    .and_then(|()| apply_meta_at(dir.as_fd(), name, &e).map_err(Problem::Warning)),
                    EntryKind::Fifo => create_at(dir.as_fd(), name, req.overwrite, || {
                        mkfifoat(
                            dir.as_fd(),
                            OsStr::from_bytes(name),
                            Mode::from_bits_truncate(0o600),
                        )
                    })
                    .and_then(|()| apply_meta_at(dir.as_fd(), name, &e).map_err(Problem::Warning)),
                    EntryKind::CharDev | EntryKind::BlockDev => {
                        let kind = if e.kind == EntryKind::CharDev {
                            SFlag::S_IFCHR
                        } else {
                            SFlag::S_IFBLK
                        };
                        create_at(dir.as_fd(), name, req.overwrite, || {
                            mknodat(
                                dir.as_fd(),
                                OsStr::from_bytes(name),
                                kind,
                                Mode::from_bits_truncate(0o600),
                                e.rdev,
                            )
                        })
                        .and_then(|()| {
                            apply_meta_at(dir.as_fd(), name, &e).map_err(Problem::Warning)
                        })
                    }
                    EntryKind::Socket => Ok(()),
                };
                if let Err(p) = res {
                    report(&display, p);
                }
            }
            Ok(())
        })();
        drop(tx);
        let mut panicked = false;
        for w in workers {
            panicked |= w.join().is_err();
        }
        if panicked {
            return Err(Error::WorkerPanicked);
        }
        result
    });
    walk?;
    for (i, m) in matched.iter().enumerate() {
        if !m {
            return Err(Error::Invalid(format!(
                "path '/{}' is not in snapshot {}",
                String::from_utf8_lossy(&req.paths[i]),
                rec.info.id
            )));
        }
    }
    // Directory metadata last, deepest first.
    for e in dir_entries.iter().rev() {
        let Ok(comps) = safe_components(&e.path) else {
            continue;
        };
        let res = dirs.open(&comps).and_then(|fd| {
            let f = File::from(
                fd.as_fd()
                    .try_clone_to_owned()
                    .map_err(|err| Problem::Error(err.to_string()))?,
            );
            apply_meta_fd(&f, e).map_err(Problem::Warning)
        });
        dirs.stack.clear();
        if let Err(p) = res {
            report(&e.display_path(), p);
        }
    }
    if let (Some(e), true) = (root_entry, created) {
        let f = File::from(
            root.as_fd()
                .try_clone_to_owned()
                .map_err(|err| Error::io("open target", &req.target, err))?,
        );
        if let Err(w) = apply_meta_fd(&f, &e) {
            warn(&req.target.display().to_string(), w);
        }
    }
    let (files, bytes) = totals.into_inner().unwrap_or_default();
    out.files = files;
    out.bytes = bytes;
    out.warnings = warnings.into_inner().unwrap_or_default();
    out.warnings.extend(repo.blobs().notices());
    out.errors = errors.into_inner().unwrap_or_default();
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn restore_link(
    repo: &Repo,
    dirs: &mut DirCache,
    dir: &Arc<OwnedFd>,
    name: &[u8],
    e: &Entry,
    multi: &HashMap<Vec<u8>, (Vec<Extent>, bool)>,
    overwrite: bool,
    progress: &Progress,
) -> std::result::Result<(), Problem> {
    let tcomps = safe_components(&e.target)
        .map_err(|why| format!("unsafe link target in the manifest ({why})"))?;
    let Some((tname, tparents)) = tcomps.split_last() else {
        return Err(Problem::Warning("link target is the root".into()));
    };
    match multi.get(&e.target) {
        Some((_, true)) => {
            let tdir = dirs.open(tparents)?;
            create_at(dir.as_fd(), name, overwrite, || {
                linkat(
                    tdir.as_fd(),
                    OsStr::from_bytes(tname),
                    dir.as_fd(),
                    OsStr::from_bytes(name),
                    AtFlags::empty(), // no AT_SYMLINK_FOLLOW: a symlink is linked, never followed
                )
            })
        }
        Some((extents, false)) => {
            // The first name was not restored: write the content under this name.
            let mut as_file = e.clone();
            as_file.kind = EntryKind::File;
            as_file.size = extents.iter().map(Extent::len).sum();
            write_file(
                repo,
                dir.as_fd(),
                name,
                &as_file,
                extents,
                overwrite,
                progress,
            )
            .map(|_| ())
        }
        None => Err(Problem::Warning(format!(
            "its first name '/{}' is not in the snapshot before it",
            String::from_utf8_lossy(&e.target)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_paths_are_refused() {
        for bad in [
            &b"../x"[..],
            b"/etc/passwd",
            b"a/../../b",
            b"a//b",
            b"./a",
            b"a/.",
            b"a/\0b",
            b"a/",
        ] {
            assert!(
                safe_components(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            safe_components(b"a/b\xff/c").unwrap(),
            vec![&b"a"[..], b"b\xff", b"c"]
        );
        assert!(safe_components(b"").unwrap().is_empty());
    }

    #[test]
    fn selection_includes_ancestors_and_descendants() {
        let sel = vec![b"etc/ssh".to_vec()];
        assert!(selected(b"etc", &sel));
        assert!(selected(b"etc/ssh", &sel));
        assert!(selected(b"etc/ssh/sshd_config", &sel));
        assert!(!selected(b"etc/sshd", &sel));
        assert!(!selected(b"var", &sel));
        assert_eq!(normalize_selection(b"/etc//ssh/"), b"etc/ssh");
    }
}
