//! Turning what `lstat` and the xattr calls say into manifest entries.

use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::fcntl::AtFlags;
use nix::sys::stat::fstatat;

use coffer_store::{Entry, EntryKind};

/// The entry kind of a file type, from `st_mode`.
pub fn kind_of(mode: u32) -> EntryKind {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => EntryKind::Dir,
        libc::S_IFLNK => EntryKind::Symlink,
        libc::S_IFIFO => EntryKind::Fifo,
        libc::S_IFCHR => EntryKind::CharDev,
        libc::S_IFBLK => EntryKind::BlockDev,
        libc::S_IFSOCK => EntryKind::Socket,
        _ => EntryKind::File,
    }
}

/// What a stat call says about one file: from std's `Metadata` (an fstat of
/// an open file) or from `fstatat` relative to an open directory, which costs
/// no path walk through `/proc/self/fd`.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub mtime_ns: i64,
    pub ctime: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub dev: u64,
    pub nlink: u64,
    pub size: u64,
    pub rdev: u64,
    pub blocks: u64,
}

impl Stat {
    /// `lstat` of `name` inside the open directory `dir`.
    pub fn at(dir: &File, name: &OsStr) -> std::io::Result<Stat> {
        let st = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(std::io::Error::from)?;
        Ok(Stat {
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime: st.st_mtime,
            mtime_ns: st.st_mtime_nsec,
            ctime: st.st_ctime,
            ctime_ns: st.st_ctime_nsec,
            ino: st.st_ino,
            dev: st.st_dev,
            nlink: st.st_nlink,
            size: u64::try_from(st.st_size).unwrap_or(0),
            rdev: st.st_rdev,
            blocks: u64::try_from(st.st_blocks).unwrap_or(0),
        })
    }

    /// Whether it is a regular file.
    pub fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
}

impl From<&Metadata> for Stat {
    fn from(md: &Metadata) -> Stat {
        Stat {
            mode: md.mode(),
            uid: md.uid(),
            gid: md.gid(),
            mtime: md.mtime(),
            mtime_ns: md.mtime_nsec(),
            ctime: md.ctime(),
            ctime_ns: md.ctime_nsec(),
            ino: md.ino(),
            dev: md.dev(),
            nlink: md.nlink(),
            size: md.size(),
            rdev: md.rdev(),
            blocks: md.blocks(),
        }
    }
}

/// An entry with the metadata of `md` (no content, no xattrs).
pub fn entry_from(kind: EntryKind, path: Vec<u8>, md: &Stat) -> Entry {
    let mut e = Entry::new(kind, path);
    e.mode = md.mode & 0o7777;
    e.uid = md.uid;
    e.gid = md.gid;
    e.mtime_s = md.mtime;
    e.mtime_ns = md.mtime_ns as u32;
    e.ctime_s = md.ctime;
    e.ctime_ns = md.ctime_ns as u32;
    e.ino = md.ino;
    e.nlink = u32::try_from(md.nlink).unwrap_or(u32::MAX);
    e.size = if kind == EntryKind::File { md.size } else { 0 };
    e.rdev = if matches!(kind, EntryKind::CharDev | EntryKind::BlockDev) {
        md.rdev
    } else {
        0
    };
    e
}

/// Whether a file's content may have changed between two stats.
pub fn content_changed(a: &Stat, b: &Stat) -> bool {
    a.size != b.size
        || a.mtime != b.mtime
        || a.mtime_ns != b.mtime_ns
        || a.ino != b.ino
        || a.dev != b.dev
}

/// Whether an entry from an earlier snapshot describes the same unchanged
/// file: size, mtime, ctime and inode all equal.
pub fn unchanged(prev: &Entry, now: &Entry) -> bool {
    prev.kind == EntryKind::File
        && now.kind == EntryKind::File
        && prev.size == now.size
        && prev.mtime_s == now.mtime_s
        && prev.mtime_ns == now.mtime_ns
        && prev.ctime_s == now.ctime_s
        && prev.ctime_ns == now.ctime_ns
        && prev.ino == now.ino
}

/// Extended attributes as (name, value) pairs, sorted by name.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// Reads the extended attributes of `path` itself (symlinks not followed).
/// Filesystems without xattrs give none.
pub fn read_xattrs(path: &Path) -> std::io::Result<Xattrs> {
    collect_xattrs(xattr::list(path), |n| xattr::get(path, n))
}

/// Reads the extended attributes of an open file or directory.
pub fn read_xattrs_fd(f: &std::fs::File) -> std::io::Result<Xattrs> {
    use xattr::FileExt;
    collect_xattrs(f.list_xattr(), |n| f.get_xattr(n))
}

fn collect_xattrs(
    names: std::io::Result<xattr::XAttrs>,
    get: impl Fn(&std::ffi::OsStr) -> std::io::Result<Option<Vec<u8>>>,
) -> std::io::Result<Xattrs> {
    use std::os::unix::ffi::OsStrExt;
    let names = match names {
        Ok(n) => n,
        Err(e) if is_unsupported(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names {
        match get(&name) {
            Ok(Some(v)) => out.push((name.as_bytes().to_vec(), v)),
            Ok(None) => {}
            Err(e) if is_unsupported(&e) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort();
    Ok(out)
}

fn is_unsupported(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::ENODATA))
}
