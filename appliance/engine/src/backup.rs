//! Backup of a directory tree at full, incremental or differential level.
//!
//! Threads: this thread walks the tree; `threads` readers read, chunk and
//! hash files and claim new chunks; `threads` packers compress, encrypt and
//! seal containers; one collector puts finished entries back in walk order
//! and writes the manifest. Queues are bounded and at most [`MAX_IN_FLIGHT`]
//! entries are between walker and collector, so memory stays flat whatever
//! the tree's size; no file is ever held whole (one chunk at a time).

use std::collections::BTreeMap;
use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use coffer_catalog::{Catalog, JobEnd, NewJob};
use coffer_store::ChunkStream;
use coffer_store::manifest::{ManifestDecoder, path_order};
use coffer_store::{Entry, EntryKind, Extent, Packer, Repo, SnapshotRecord};
use coffer_types::{
    BackupStats, ChunkId, JobKind, JobStatus, Level, Scope, SnapshotId, SnapshotInfo, rfc3339_ms,
};
use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use globset::{Glob, GlobSet, GlobSetBuilder};
use nix::fcntl::{FcntlArg, OFlag, fcntl, openat};
use nix::sys::stat::Mode;

use crate::fsmeta::{
    Stat, content_changed, entry_from, kind_of, read_xattrs, read_xattrs_fd, unchanged,
};
use crate::{Actor, Error, Progress, Result, now_ms};

/// Most entries between the walker and the manifest writer at once.
pub const MAX_IN_FLIGHT: usize = 4096;

/// Entries the walker batches per message to the collector.
const WALK_BATCH: usize = 256;

/// Timestamp granularity assumed when deciding whether a file recorded by
/// the reference backup could have changed unseen in the same tick.
pub const RACY_WINDOW_MS: i64 = 1000;

/// What to back up.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    /// The asset (system) name.
    pub asset: String,
    /// Requested level.
    pub level: Level,
    /// The directory to back up.
    pub source: PathBuf,
    /// Exclude globs (matched against the path relative to the source, the
    /// absolute path and the file name).
    pub excludes: Vec<String>,
    /// Do not descend into other filesystems.
    pub one_file_system: bool,
    /// Reader and packer threads each (0 = one per core).
    pub threads: usize,
    /// zstd level for new containers; `None` = the store's own.
    pub compression_level: Option<i32>,
}

/// What a backup did.
#[derive(Debug, Clone)]
pub struct BackupOutcome {
    /// The snapshot made.
    pub snapshot: SnapshotInfo,
    /// One line per entry with a problem, naming the path and the reason.
    pub warnings: Vec<String>,
    /// Set when an incremental or differential found no reference and ran as a full.
    pub notice: Option<String>,
    /// The job log row.
    pub job_id: i64,
}

#[derive(Default)]
struct Stats {
    files_read: std::sync::atomic::AtomicU64,
    bytes_read: std::sync::atomic::AtomicU64,
    files_unchanged: std::sync::atomic::AtomicU64,
    bytes_unchanged: std::sync::atomic::AtomicU64,
    chunks_new: std::sync::atomic::AtomicU64,
    bytes_new: std::sync::atomic::AtomicU64,
    bytes_stored: std::sync::atomic::AtomicU64,
}

/// The first error of any thread stops the others.
#[derive(Default)]
struct Abort {
    flag: AtomicBool,
    error: Mutex<Option<Error>>,
}

impl Abort {
    fn set(&self, e: Error) {
        if let Ok(mut g) = self.error.lock()
            && g.is_none()
        {
            *g = Some(e);
        }
        self.flag.store(true, Ordering::SeqCst);
    }
    fn is_set(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }
    fn take(&self) -> Option<Error> {
        self.error.lock().ok().and_then(|mut g| g.take())
    }
}

/// Runs a backup and records it in the job log.
pub fn backup(
    repo: &Repo,
    catalog: &Catalog,
    req: &BackupRequest,
    actor: &Actor,
    progress: &Progress,
) -> Result<BackupOutcome> {
    backup_job(repo, catalog, req, actor, progress, None)
}

/// Runs a backup that the daemon queued as job `job_id` (a `queued` row in
/// the job log): the row turns `running`, then ends as [`backup`] ends it.
/// A stop request ends it `cancelled` or `interrupted`.
pub fn backup_queued(
    repo: &Repo,
    catalog: &Catalog,
    req: &BackupRequest,
    actor: &Actor,
    progress: &Progress,
    job_id: i64,
) -> Result<BackupOutcome> {
    backup_job(repo, catalog, req, actor, progress, Some(job_id))
}

fn backup_job(
    repo: &Repo,
    catalog: &Catalog,
    req: &BackupRequest,
    actor: &Actor,
    progress: &Progress,
    queued: Option<i64>,
) -> Result<BackupOutcome> {
    // Held to the end: no garbage collection deletes a container this
    // backup deduplicates against, and an index from before the last one
    // is loaded again first.
    let _lock = crate::lock::StoreLock::shared(catalog)?;
    repo.refresh()?;
    let started_ms = now_ms();
    let canonical = std::fs::canonicalize(&req.source);
    let scope = Scope {
        paths: vec![match &canonical {
            Ok(p) => p.display().to_string(),
            Err(_) => req.source.display().to_string(),
        }],
        excludes: req.excludes.clone(),
        one_file_system: req.one_file_system,
    };
    let new = NewJob {
        kind: JobKind::Backup,
        asset: Some(req.asset.clone()),
        level: Some(req.level),
        scope: scope.clone(),
        started_ms,
        identity: actor.identity.clone(),
        host: actor.host.clone(),
        pid: std::process::id(),
    };
    let job_id = crate::start_job(catalog, &new, queued)?;
    let result = canonical
        .map_err(|e| Error::io("open source", &req.source, e))
        .and_then(|source| {
            run(
                repo, catalog, req, &source, scope, started_ms, actor, progress,
            )
        });
    let (status, stats, messages, snapshot) = match &result {
        Ok(o) => (
            if o.warnings.is_empty() {
                JobStatus::Success
            } else {
                JobStatus::Warning
            },
            o.snapshot.stats,
            o.notice
                .iter()
                .cloned()
                .chain(o.warnings.iter().cloned())
                .collect::<Vec<_>>(),
            Some(o.snapshot.id),
        ),
        Err(e) => (
            match e {
                Error::Stopped(crate::Stop::Cancel) => JobStatus::Cancelled,
                Error::Stopped(crate::Stop::Shutdown) => JobStatus::Interrupted,
                _ => JobStatus::Failed,
            },
            BackupStats::default(),
            vec![format!("error: {e}")],
            None,
        ),
    };
    catalog.finish_job(
        job_id,
        &JobEnd {
            status,
            stats,
            messages: &messages,
            snapshot,
            ended_ms: now_ms(),
        },
    )?;
    result.map(|mut o| {
        o.job_id = job_id;
        o
    })
}

#[allow(clippy::too_many_arguments)]
fn run(
    repo: &Repo,
    catalog: &Catalog,
    req: &BackupRequest,
    source: &Path,
    scope: Scope,
    started_ms: i64,
    actor: &Actor,
    progress: &Progress,
) -> Result<BackupOutcome> {
    // The source itself may be reached through symlinks (the operator named
    // it); everything below it is reached through descriptors.
    let root = File::open(source).map_err(|e| Error::io("open source", source, e))?;
    let root_md = root.metadata().map_err(|e| Error::io("stat", source, e))?;
    if !root_md.is_dir() {
        return Err(Error::Invalid(format!(
            "source '{}' is not a directory",
            source.display()
        )));
    }
    let excludes = build_excludes(&req.excludes)?;
    let (level, reference, notice) = pick_reference(repo, catalog, &req.asset, req.level)?;
    let threads = if req.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    } else {
        req.threads
    };

    let stats = Stats::default();
    let abort = Abort::default();
    let warnings = Mutex::new(Vec::<String>::new());
    let (file_tx, file_rx) = bounded::<FileJob>(256);
    let (done_tx, done_rx) = unbounded::<Vec<Done>>();
    let (ticket_tx, ticket_rx) = bounded::<()>(MAX_IN_FLIGHT);

    let manifest = std::thread::scope(|s| -> Result<_> {
        let mut readers = Vec::new();
        for _ in 0..threads {
            let rx = file_rx.clone();
            let dtx = done_tx.clone();
            let (stats, abort) = (&stats, &abort);
            readers.push(s.spawn(move || {
                let mut w = Worker {
                    packer: match req.compression_level {
                        Some(l) => Packer::with_level(repo, l),
                        None => Packer::new(repo),
                    },
                    window: Vec::new(),
                };
                for job in rx {
                    let done = if abort.is_set() {
                        Done {
                            seq: job.seq,
                            entry: None,
                            warning: None,
                        }
                    } else {
                        let seq = job.seq;
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            read_file(repo, job, &mut w, stats, abort, progress)
                        }))
                        .unwrap_or_else(|_| {
                            abort.set(Error::WorkerPanicked);
                            Done {
                                seq,
                                entry: None,
                                warning: None,
                            }
                        })
                    };
                    if dtx.send(vec![done]).is_err() {
                        break;
                    }
                }
                // A stopped job checkpoints: what its packer holds is sealed
                // and indexed, so the retry finds it already stored.
                if (!abort.is_set() || progress.stop_requested().is_some())
                    && let Err(e) = w.packer.flush()
                {
                    abort.set(e.into());
                }
                stats
                    .bytes_stored
                    .fetch_add(w.packer.stored, Ordering::Relaxed);
            }));
        }
        let collector = {
            let (abort, warnings) = (&abort, &warnings);
            s.spawn(move || collect(repo, source, done_rx, ticket_rx, abort, warnings))
        };

        let mut walker = Walker {
            repo,
            excludes: &excludes,
            root_dev: root_md.dev(),
            one_fs: req.one_file_system,
            reference: reference.as_ref().map(|r| RefCursor::new(repo.manifest(r))),
            racy_from_ms: reference.as_ref().map_or(i64::MAX, |r| {
                r.info.started_ms.saturating_sub(RACY_WINDOW_MS)
            }),
            hardlinks: HashMap::new(),
            seq: 0,
            batch: Vec::new(),
            file_tx: &file_tx,
            done_tx: &done_tx,
            ticket_tx: &ticket_tx,
            stats: &stats,
            abort: &abort,
            progress,
        };
        if let Err(e) = walker
            .walk_dir(Arc::new(root), source, Vec::new(), Stat::from(&root_md))
            .and_then(|()| walker.flush())
        {
            abort.set(e);
        }
        drop(walker);
        drop(file_tx);
        drop(done_tx);
        let mut panicked = false;
        for h in readers {
            panicked |= h.join().is_err();
        }
        let manifest = collector.join();
        if panicked {
            return Err(Error::WorkerPanicked);
        }
        manifest.map_err(|_| Error::WorkerPanicked)
    })?;
    if let Some(e) = abort.take() {
        return Err(e);
    }
    let (manifest_len, manifest_chunks, manifest_stored, entries) =
        manifest.ok_or_else(|| Error::Invalid("backup aborted".into()))?;
    let warnings = warnings.into_inner().unwrap_or_default();
    let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let st = BackupStats {
        files_read: ld(&stats.files_read),
        bytes_read: ld(&stats.bytes_read),
        files_unchanged: ld(&stats.files_unchanged),
        bytes_unchanged: ld(&stats.bytes_unchanged),
        entries,
        chunks_new: ld(&stats.chunks_new),
        bytes_new: ld(&stats.bytes_new),
        bytes_stored: ld(&stats.bytes_stored) + manifest_stored,
        warnings: warnings.len() as u64,
    };
    let mut id = [0u8; 16];
    coffer_keys::random_bytes(&mut id).map_err(coffer_store::Error::from)?;
    let finished_ms = now_ms();
    let info = SnapshotInfo {
        id: SnapshotId(id),
        asset: req.asset.clone(),
        level,
        time: rfc3339_ms(started_ms),
        started_ms,
        finished_ms,
        reference: reference.as_ref().map(|r| r.info.id),
        host: actor.host.clone(),
        identity: actor.identity.clone(),
        scope,
        stats: st,
    };
    let rec = SnapshotRecord {
        info: info.clone(),
        manifest_len,
        manifest: manifest_chunks,
    };
    // The commit point: the snapshot exists once its record does.
    repo.write_snapshot(&rec)?;
    catalog.insert_snapshot(&info)?;
    // What the storage had to report (a pool running degraded, shards read
    // through parity) goes in the job log with the file warnings.
    let mut warnings = warnings;
    warnings.extend(repo.blobs().notices());
    tracing::info!(snapshot = %info.id, asset = %info.asset, level = %level, entries, "snapshot committed");
    Ok(BackupOutcome {
        snapshot: info,
        warnings,
        notice,
        job_id: 0,
    })
}

fn build_excludes(patterns: &[String]) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p).map_err(|e| Error::Invalid(format!("bad exclude pattern '{p}': {e}")))?);
    }
    b.build()
        .map_err(|e| Error::Invalid(format!("bad exclude patterns: {e}")))
}

type Reference = (Level, Option<SnapshotRecord>, Option<String>);

fn pick_reference(repo: &Repo, catalog: &Catalog, asset: &str, level: Level) -> Result<Reference> {
    let levels: &[Level] = match level {
        Level::Full => return Ok((Level::Full, None, None)),
        Level::Incremental => &[Level::Full, Level::Incremental, Level::Differential],
        Level::Differential => &[Level::Full],
    };
    match catalog.latest_snapshot(asset, levels)? {
        Some(info) => Ok((level, Some(repo.load_snapshot(&info.id)?), None)),
        None => Ok((
            Level::Full,
            None,
            Some(format!(
                "no full backup of asset '{asset}' exists: this {level} backup ran as a full"
            )),
        )),
    }
}

struct FileJob {
    seq: u64,
    entry: Entry,
    /// The directory that holds the file, and its name there.
    dir: Arc<File>,
    name: OsString,
    /// For messages.
    path: PathBuf,
    md: Stat,
}

struct Done {
    seq: u64,
    entry: Option<Entry>,
    warning: Option<String>,
}

/// Walks the previous snapshot's manifest alongside the tree.
struct RefCursor<'a> {
    dec: ManifestDecoder<ChunkStream<'a>>,
    cur: Option<Entry>,
    failed: bool,
}

impl<'a> RefCursor<'a> {
    fn new(dec: ManifestDecoder<ChunkStream<'a>>) -> RefCursor<'a> {
        RefCursor {
            dec,
            cur: None,
            failed: false,
        }
    }

    /// The reference entry at `path`, if there is one. Paths must be asked
    /// for in manifest order.
    fn find(&mut self, path: &[u8]) -> Result<Option<&Entry>> {
        loop {
            if self.failed {
                return Ok(None);
            }
            if let Some(c) = &self.cur {
                match path_order(&c.path, path) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => return Ok(self.cur.as_ref()),
                    std::cmp::Ordering::Greater => return Ok(None),
                }
            }
            match self.dec.next_entry() {
                Ok(Some(e)) => self.cur = Some(e),
                Ok(None) => {
                    self.failed = true;
                    self.cur = None;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

struct Walker<'a, 'r> {
    repo: &'r Repo,
    excludes: &'a GlobSet,
    root_dev: u64,
    one_fs: bool,
    reference: Option<RefCursor<'r>>,
    /// Files whose recorded ctime is at or after this (ms) may have changed
    /// in the same timestamp tick as the reference backup read them ("racy"):
    /// they are read again rather than trusted.
    racy_from_ms: i64,
    hardlinks: HashMap<(u64, u64), Vec<u8>>,
    seq: u64,
    /// Entries finished by the walker itself, sent to the collector in
    /// batches (one channel message and wake-up per batch, not per entry).
    batch: Vec<Done>,
    file_tx: &'a Sender<FileJob>,
    done_tx: &'a Sender<Vec<Done>>,
    ticket_tx: &'a Sender<()>,
    stats: &'a Stats,
    abort: &'a Abort,
    progress: &'a Progress,
}

/// `/proc/self/fd/N` for an open directory: paths below it resolve inside
/// that very directory, whatever happens to its name meanwhile.
fn proc_path(dir: &File) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()))
}

/// Opens child directory `name` of `dir` without following a symlink, and
/// checks it is the one that was stat'ed.
fn open_dir_at(dir: &File, name: &OsStr, md: &Stat) -> std::io::Result<File> {
    let fd = openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(std::io::Error::from)?;
    let f = File::from(fd);
    let now = f.metadata()?;
    if now.ino() != md.ino || now.dev() != md.dev {
        return Err(std::io::Error::other("was replaced while being read"));
    }
    Ok(f)
}

fn join_rel(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = rel.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

impl Walker<'_, '_> {
    fn emit(&mut self, entry: Option<Entry>, warning: Option<String>) -> Result<()> {
        self.ticket()?;
        let seq = self.seq;
        self.seq += 1;
        self.batch.push(Done {
            seq,
            entry,
            warning,
        });
        if self.batch.len() >= WALK_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends the batched entries to the collector. Done before anything
    /// that may block on the collector, which waits for them in order.
    fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.done_tx
            .send(std::mem::take(&mut self.batch))
            .map_err(|_| Error::Invalid("backup aborted".into()))
    }

    /// A place among the entries in flight; waits (after flushing) when
    /// [`MAX_IN_FLIGHT`] are.
    fn ticket(&mut self) -> Result<()> {
        let tx = self.ticket_tx;
        self.send_flushing(tx, ())
    }

    /// Sends on a bounded queue. When it is full, the batch goes to the
    /// collector first: whoever empties the queue may be waiting, through
    /// the collector, for the entries in it.
    fn send_flushing<T>(&mut self, tx: &Sender<T>, item: T) -> Result<()> {
        let aborted = || Error::Invalid("backup aborted".into());
        match tx.try_send(item) {
            Ok(()) => Ok(()),
            Err(crossbeam_channel::TrySendError::Full(item)) => {
                self.flush()?;
                tx.send(item).map_err(|_| aborted())
            }
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => Err(aborted()),
        }
    }

    fn warn(&mut self, path: &Path, what: impl std::fmt::Display) -> Result<()> {
        self.emit(None, Some(format!("{}: {what}", path.display())))
    }

    fn excluded(&self, rel: &[u8], abs: &Path) -> bool {
        if self.excludes.is_empty() || rel.is_empty() {
            return false;
        }
        let name = rel.rsplit(|c| *c == b'/').next().unwrap_or(rel);
        self.excludes.is_match(Path::new(OsStr::from_bytes(rel)))
            || self.excludes.is_match(abs)
            || self.excludes.is_match(Path::new(OsStr::from_bytes(name)))
    }

    /// Walks one directory, open as `dir`: its entry, then its children in
    /// name order. Children are reached through `/proc/self/fd/N/<name>` and
    /// `openat(O_NOFOLLOW)`, so a directory swapped for a symlink mid-walk is
    /// never followed out of the source.
    fn walk_dir(&mut self, dir: Arc<File>, abs: &Path, rel: Vec<u8>, md: Stat) -> Result<()> {
        if self.abort.is_set() {
            return Ok(());
        }
        let mut entry = entry_from(EntryKind::Dir, rel.clone(), &md);
        match read_xattrs_fd(&dir) {
            Ok(x) => entry.xattrs = x,
            Err(e) => self.warn(abs, format!("cannot read extended attributes: {e}"))?,
        }
        Progress::add(&self.progress.entries, 1);
        self.emit(Some(entry), None)?;
        if self.one_fs && md.dev != self.root_dev {
            return Ok(());
        }
        let here = proc_path(&dir);
        let rd = match std::fs::read_dir(&here) {
            Ok(rd) => rd,
            Err(e) => return self.warn(abs, format!("cannot list directory: {e}")),
        };
        let mut names = Vec::new();
        for ent in rd {
            match ent {
                Ok(ent) => names.push(ent.file_name()),
                Err(e) => {
                    self.warn(abs, format!("cannot list directory: {e}"))?;
                    break;
                }
            }
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            if let Some(why) = self.progress.stop_requested() {
                self.abort.set(Error::Stopped(why));
            }
            if self.abort.is_set() {
                return Ok(());
            }
            let child_abs = abs.join(&name);
            let child_rel = join_rel(&rel, name.as_bytes());
            if self.excluded(&child_rel, &child_abs) {
                continue;
            }
            let md = match Stat::at(&dir, &name) {
                Ok(md) => md,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.warn(&child_abs, "vanished before it could be read")?;
                    continue;
                }
                Err(e) => {
                    self.warn(&child_abs, format!("cannot stat: {e}"))?;
                    continue;
                }
            };
            let kind = kind_of(md.mode);
            if kind != EntryKind::Dir {
                self.leaf(kind, &dir, name, &child_abs, child_rel, md)?;
                continue;
            }
            if self.one_fs && md.dev != self.root_dev {
                // The mount point is kept (empty); the other filesystem is not entered.
                let mut e = entry_from(EntryKind::Dir, child_rel, &md);
                match read_xattrs(&here.join(&name)) {
                    Ok(x) => e.xattrs = x,
                    Err(err) => self.warn(
                        &child_abs,
                        format!("cannot read extended attributes: {err}"),
                    )?,
                }
                self.emit(Some(e), None)?;
                continue;
            }
            match open_dir_at(&dir, &name, &md) {
                Ok(child) => self.walk_dir(Arc::new(child), &child_abs, child_rel, md)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.warn(&child_abs, "vanished before it could be read")?;
                }
                Err(e) => self.warn(&child_abs, format!("cannot open directory: {e}"))?,
            }
        }
        Ok(())
    }

    fn leaf(
        &mut self,
        kind: EntryKind,
        dir: &Arc<File>,
        name: OsString,
        abs: &Path,
        rel: Vec<u8>,
        md: Stat,
    ) -> Result<()> {
        Progress::add(&self.progress.entries, 1);
        // Regular files never need the path (they are opened relative to
        // `dir`): it is built only for the other kinds.
        let via = || proc_path(dir).join(&name);
        let mut entry = entry_from(kind, rel, &md);
        // A regular file's xattrs come from its open descriptor when it is
        // read, or from the reference snapshot when it is unchanged (setting
        // an xattr changes the ctime, which `unchanged` compares).
        if kind != EntryKind::File {
            match read_xattrs(&via()) {
                Ok(x) => entry.xattrs = x,
                Err(e) => self.warn(abs, format!("cannot read extended attributes: {e}"))?,
            }
        }
        match kind {
            EntryKind::Symlink => match std::fs::read_link(via()) {
                Ok(t) => entry.target = t.as_os_str().as_bytes().to_vec(),
                Err(e) => return self.warn(abs, format!("cannot read symlink: {e}")),
            },
            EntryKind::File => {
                if md.nlink > 1 {
                    let key = (md.dev, md.ino);
                    if let Some(first) = self.hardlinks.get(&key) {
                        entry.kind = EntryKind::Hardlink;
                        entry.target = first.clone();
                        entry.size = 0;
                        return self.emit(Some(entry), None);
                    }
                    self.hardlinks.insert(key, entry.path.clone());
                }
                if let Some(reused) = self.reuse(&entry)? {
                    self.stats.files_unchanged.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .bytes_unchanged
                        .fetch_add(reused.size, Ordering::Relaxed);
                    Progress::add(&self.progress.files, 1);
                    return self.emit(Some(reused), None);
                }
                self.ticket()?;
                let seq = self.seq;
                self.seq += 1;
                let job = FileJob {
                    seq,
                    entry,
                    dir: dir.clone(),
                    name,
                    path: abs.to_path_buf(),
                    md,
                };
                let tx = self.file_tx;
                return self.send_flushing(tx, job);
            }
            _ => {}
        }
        self.emit(Some(entry), None)
    }

    /// The reference snapshot's content for an unchanged file, if every one
    /// of its chunks is still in a sound container.
    fn reuse(&mut self, now: &Entry) -> Result<Option<Entry>> {
        let Some(cur) = self.reference.as_mut() else {
            return Ok(None);
        };
        let Some(prev) = cur.find(&now.path)? else {
            return Ok(None);
        };
        if !unchanged(prev, now) {
            return Ok(None);
        }
        let prev_ctime_ms = prev
            .ctime_s
            .saturating_mul(1000)
            .saturating_add(i64::from(prev.ctime_ns / 1_000_000));
        if prev_ctime_ms >= self.racy_from_ms {
            return Ok(None);
        }
        for ext in &prev.extents {
            if let Extent::Data { id, .. } = ext
                && self.repo.locate(id)?.is_none()
            {
                return Ok(None);
            }
        }
        let mut e = now.clone();
        e.xattrs = prev.xattrs.clone();
        e.extents = prev.extents.clone();
        e.content_hash = prev.content_hash;
        Ok(Some(e))
    }
}

/// Puts finished entries back in walk order and writes the manifest.
fn collect(
    repo: &Repo,
    source: &Path,
    done_rx: Receiver<Vec<Done>>,
    ticket_rx: Receiver<()>,
    abort: &Abort,
    warnings: &Mutex<Vec<String>>,
) -> Option<(u64, Vec<ChunkId>, u64, u64)> {
    let mut mw = repo.manifest_writer();
    let mut pending: BTreeMap<u64, Done> = BTreeMap::new();
    let mut next = 0u64;
    // First names of multi-link files that made it into the manifest.
    let mut linked: HashSet<Vec<u8>> = HashSet::new();
    let warn = |w: String| {
        tracing::warn!("{w}");
        if let Ok(mut g) = warnings.lock() {
            g.push(w);
        }
    };
    for d in done_rx.into_iter().flatten() {
        // In-order entries (most of them) skip the reorder map.
        let mut ready = if d.seq == next {
            Some(d)
        } else {
            pending.insert(d.seq, d);
            None
        };
        while let Some(mut d) = ready.take().or_else(|| pending.remove(&next)) {
            next += 1;
            let _ = ticket_rx.recv();
            if let Some(w) = d.warning.take() {
                warn(w);
            }
            match &d.entry {
                Some(e) if e.kind == EntryKind::File && e.nlink > 1 => {
                    linked.insert(e.path.clone());
                }
                Some(e) if e.kind == EntryKind::Hardlink && !linked.contains(&e.target) => {
                    warn(format!(
                        "{}: not backed up: it is a hard link to {}, which could not be read",
                        source.join(OsStr::from_bytes(&e.path)).display(),
                        source.join(OsStr::from_bytes(&e.target)).display()
                    ));
                    d.entry = None;
                }
                _ => {}
            }
            if let (Some(e), false) = (d.entry, abort.is_set())
                && let Err(err) = mw.push(&e)
            {
                abort.set(err.into());
            }
        }
    }
    if abort.is_set() {
        return None;
    }
    let entries = mw.entries();
    match mw.finish() {
        Ok((len, chunks, stored)) => Some((len, chunks, stored, entries)),
        Err(e) => {
            abort.set(e.into());
            None
        }
    }
}

/// Opens a source file relative to its directory: never through a symlink,
/// never blocking (a file swapped for a FIFO would hang the open), without
/// touching its access time where the kernel allows.
fn open_source(dir: &File, name: &OsStr) -> std::io::Result<File> {
    let open = |extra: OFlag| {
        openat(
            dir,
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | extra,
            Mode::empty(),
        )
    };
    let fd = match open(OFlag::O_NOATIME) {
        Err(nix::errno::Errno::EPERM) => open(OFlag::empty()),
        r => r,
    }
    .map_err(std::io::Error::from)?;
    let file = File::from(fd);
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("is no longer a regular file"));
    }
    let flags = OFlag::from_bits_truncate(fcntl(&file, FcntlArg::F_GETFL)?);
    fcntl(&file, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    Ok(file)
}

/// Data regions of a file: `(offset, len)`; the gaps are holes. Files that
/// occupy as many blocks as their size are one region without asking.
fn data_regions(file: &File, md: &Stat) -> Vec<(u64, u64)> {
    use std::os::fd::AsFd;
    let size = md.size;
    if size == 0 {
        return Vec::new();
    }
    if md.blocks.saturating_mul(512) >= size {
        return vec![(0, u64::MAX)];
    }
    let fd = file.as_fd();
    let mut out = Vec::new();
    let mut pos: i64 = 0;
    let end = size as i64;
    while pos < end {
        let data = match nix::unistd::lseek(fd, pos, nix::unistd::Whence::SeekData) {
            Ok(d) => d,
            Err(nix::errno::Errno::ENXIO) => break,
            Err(_) => return vec![(0, u64::MAX)],
        };
        let hole = nix::unistd::lseek(fd, data, nix::unistd::Whence::SeekHole).unwrap_or(end);
        if hole <= data {
            break;
        }
        out.push((data as u64, (hole - data) as u64));
        pos = hole;
    }
    out
}

/// Why a file could not be read, as its warning says it.
struct ReadFail(String);

impl From<std::io::Error> for ReadFail {
    fn from(e: std::io::Error) -> ReadFail {
        ReadFail(format!("cannot read: {e}"))
    }
}

/// A reader thread's own state: the container it packs new chunks into and
/// the window it reads files through. Chunks never cross threads and no
/// buffer is allocated per chunk.
struct Worker<'r> {
    packer: Packer<'r>,
    window: Vec<u8>,
}

fn read_file(
    repo: &Repo,
    job: FileJob,
    w: &mut Worker<'_>,
    stats: &Stats,
    abort: &Abort,
    progress: &Progress,
) -> Done {
    let FileJob {
        seq,
        mut entry,
        dir,
        name,
        path,
        md,
    } = job;
    let fail = |w: String| Done {
        seq,
        entry: None,
        warning: Some(format!("{}: {w}", path.display())),
    };
    let file = match open_source(&dir, &name) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return fail("vanished before it could be read".into());
        }
        Err(e) => return fail(format!("cannot read: {e}")),
    };
    let before = match file.metadata() {
        Ok(m) => Stat::from(&m),
        Err(e) => return fail(format!("cannot stat: {e}")),
    };
    let mut warning = None;
    if before.ino != md.ino || before.dev != md.dev || !before.is_file() {
        return fail("was replaced while being read; not backed up".into());
    }
    match read_xattrs_fd(&file) {
        Ok(x) => entry.xattrs = x,
        Err(e) => {
            warning = Some(format!(
                "{}: cannot read extended attributes: {e}",
                path.display()
            ))
        }
    }
    let mut hasher = repo.content_hasher();
    let mut extents = Vec::new();
    let mut offset = 0u64;
    let zeros = [0u8; 65536];
    let add_hole = |extents: &mut Vec<Extent>, hasher: &mut blake3::Hasher, len: u64| {
        extents.push(Extent::Hole { len });
        let mut left = len;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            hasher.update(&zeros[..n]);
            left -= n as u64;
        }
    };
    let Worker { packer, window } = w;
    let min = repo.config().chunker.min as usize;
    let small = before.size <= min as u64;
    let regions = data_regions(&file, &before);
    // A file that is one chunk has the chunk's id as its content hash (both
    // are blake3 under the same key): it is hashed once, not twice.
    let mut single_chunk: Option<ChunkId> = None;
    let one_region = regions.len() == 1 && regions[0].0 == 0;
    for (start, len) in regions {
        if start > offset {
            add_hole(&mut extents, &mut hasher, start - offset);
            offset = start;
        }
        let mut f = &file;
        if let Err(e) = f.seek(SeekFrom::Start(start)) {
            return fail(format!("cannot read: {e}"));
        }
        let mut region = f.take(len);
        let mut emit = |data: &[u8], whole: bool| -> std::result::Result<(), String> {
            let id = repo.chunk_id(data);
            if whole {
                single_chunk = Some(id);
            } else {
                hasher.update(data);
            }
            let n = data.len() as u64;
            offset += n;
            stats.bytes_read.fetch_add(n, Ordering::Relaxed);
            Progress::add(&progress.bytes, n);
            extents.push(Extent::Data { id, len: n as u32 });
            match repo.claim(&id) {
                Ok(true) => {
                    stats.chunks_new.fetch_add(1, Ordering::Relaxed);
                    stats.bytes_new.fetch_add(n, Ordering::Relaxed);
                    packer.add(id, data).map_err(|e| {
                        repo.release(&[id]);
                        abort.set(e.into());
                        "backup aborted".to_string()
                    })
                }
                Ok(false) => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        };
        let res = if small {
            window.clear();
            match (&mut region).take(min as u64).read_to_end(window) {
                Ok(0) => Ok(()),
                Ok(n) => emit(&window[..n], one_region && n as u64 == before.size),
                Err(e) => Err(format!("cannot read: {e}")),
            }
        } else {
            let mut emit_all = |c: &[u8]| {
                if let Some(why) = progress.stop_requested() {
                    abort.set(Error::Stopped(why));
                }
                if abort.is_set() {
                    return Err(ReadFail("backup aborted".into()));
                }
                emit(c, false).map_err(ReadFail)
            };
            repo.chunker()
                .for_each_chunk(region, window, &mut emit_all)
                .map_err(|ReadFail(e)| e)
        };
        if let Err(e) = res {
            return fail(e);
        }
    }
    if offset < before.size {
        // A trailing hole (or a file that shrank: caught below).
        let after_size = file.metadata().map(|m| m.size()).unwrap_or(0);
        if after_size == before.size {
            add_hole(&mut extents, &mut hasher, before.size - offset);
            offset = before.size;
        }
    }
    let earlier = warning.take();
    match file.metadata().map(|m| Stat::from(&m)) {
        Ok(after) if content_changed(&before, &after) || offset != after.size => {
            warning = Some(format!(
                "{}: changed while being read; the copy may be inconsistent (read {offset} bytes, size now {})",
                path.display(),
                after.size
            ));
        }
        Ok(_) => {}
        Err(e) => {
            warning = Some(format!(
                "{}: cannot stat after reading: {e}",
                path.display()
            ))
        }
    }
    // Both problems are reported when there are two.
    warning = match (earlier, warning) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    };
    entry.size = offset;
    entry.mtime_s = before.mtime;
    entry.mtime_ns = before.mtime_ns as u32;
    entry.ctime_s = before.ctime;
    entry.ctime_ns = before.ctime_ns as u32;
    entry.extents = extents;
    entry.content_hash = match single_chunk {
        Some(id) => id.0,
        None => *hasher.finalize().as_bytes(),
    };
    stats.files_read.fetch_add(1, Ordering::Relaxed);
    Progress::add(&progress.files, 1);
    Done {
        seq,
        entry: Some(entry),
        warning,
    }
}
