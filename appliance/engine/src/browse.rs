//! Reading snapshots without restoring them: list, compare, find.

use std::cmp::Ordering;

use coffer_store::manifest::path_order;
use coffer_store::{Entry, Repo};
use coffer_types::SnapshotInfo;
use globset::Glob;

use crate::restore::normalize_selection;
use crate::{Error, Result};

/// Entries of a snapshot at or under `under` (empty = all), in manifest order.
pub fn list(
    repo: &Repo,
    info: &SnapshotInfo,
    under: &[u8],
    mut f: impl FnMut(&Entry),
) -> Result<()> {
    let under = normalize_selection(under);
    let rec = repo.load_snapshot(&info.id)?;
    let mut dec = repo.manifest(&rec);
    while let Some(e) = dec.next_entry()? {
        let inside = under.is_empty()
            || e.path == under
            || (e.path.len() > under.len()
                && e.path.starts_with(&under)
                && e.path[under.len()] == b'/');
        if inside {
            f(&e);
        }
    }
    Ok(())
}

/// How an entry differs between two snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Only in the newer.
    Added,
    /// Only in the older.
    Removed,
    /// Content (or kind, or link target) differs.
    Modified,
    /// Only metadata (mode, owner, mtime, xattrs) differs.
    Metadata,
}

impl Change {
    /// The one-character marker shown by `coffer diff`.
    pub fn marker(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Modified => 'M',
            Change::Metadata => 'U',
        }
    }
}

fn compare(a: &Entry, b: &Entry) -> Option<Change> {
    if a.kind != b.kind
        || a.size != b.size
        || a.content_hash != b.content_hash
        || a.target != b.target
        || a.rdev != b.rdev
    {
        return Some(Change::Modified);
    }
    if a.mode != b.mode
        || a.uid != b.uid
        || a.gid != b.gid
        || a.mtime_s != b.mtime_s
        || a.mtime_ns != b.mtime_ns
        || a.xattrs != b.xattrs
    {
        return Some(Change::Metadata);
    }
    None
}

/// Differences from snapshot `a` to snapshot `b`, merge-joined in manifest
/// order (constant memory).
pub fn diff(
    repo: &Repo,
    a: &SnapshotInfo,
    b: &SnapshotInfo,
    mut f: impl FnMut(Change, &Entry),
) -> Result<()> {
    let ra = repo.load_snapshot(&a.id)?;
    let rb = repo.load_snapshot(&b.id)?;
    let mut da = repo.manifest(&ra);
    let mut db = repo.manifest(&rb);
    let mut ea = da.next_entry()?;
    let mut eb = db.next_entry()?;
    loop {
        match (&ea, &eb) {
            (None, None) => return Ok(()),
            (Some(x), None) => {
                f(Change::Removed, x);
                ea = da.next_entry()?;
            }
            (None, Some(y)) => {
                f(Change::Added, y);
                eb = db.next_entry()?;
            }
            (Some(x), Some(y)) => match path_order(&x.path, &y.path) {
                Ordering::Less => {
                    f(Change::Removed, x);
                    ea = da.next_entry()?;
                }
                Ordering::Greater => {
                    f(Change::Added, y);
                    eb = db.next_entry()?;
                }
                Ordering::Equal => {
                    if let Some(c) = compare(x, y) {
                        f(c, y);
                    }
                    ea = da.next_entry()?;
                    eb = db.next_entry()?;
                }
            },
        }
    }
}

/// Entries whose path (`/`-rooted) or name matches `pattern`, across `snaps`.
pub fn find(
    repo: &Repo,
    snaps: &[SnapshotInfo],
    pattern: &str,
    mut f: impl FnMut(&SnapshotInfo, &Entry),
) -> Result<()> {
    let glob = Glob::new(pattern)
        .map_err(|e| Error::Invalid(format!("bad pattern '{pattern}': {e}")))?
        .compile_matcher();
    for s in snaps {
        list(repo, s, b"", |e| {
            let full = e.display_path();
            let name = full.rsplit('/').next().unwrap_or("");
            if glob.is_match(&full) || glob.is_match(name) {
                f(s, e);
            }
        })?;
    }
    Ok(())
}
