//! Filesystem facts about a path: capacity, the disk under it, and the
//! immutable attribute.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Capacity of the filesystem holding a path, from `statvfs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Capacity {
    /// Size of the filesystem in bytes.
    pub total: u64,
    /// Bytes an unprivileged writer may still use.
    pub available: u64,
    /// Bytes free including the root reserve.
    pub free: u64,
}

/// The capacity of the filesystem that holds `path`.
pub fn capacity(path: &Path) -> Result<Capacity> {
    let st = nix::sys::statvfs::statvfs(path)
        .map_err(|e| Error::io("statvfs", path, io::Error::from(e)))?;
    let frag = st.fragment_size();
    Ok(Capacity {
        total: st.blocks().saturating_mul(frag),
        available: st.blocks_available().saturating_mul(frag),
        free: st.blocks_free().saturating_mul(frag),
    })
}

/// The whole disk (its `/sys/block` name) under the filesystem that holds
/// `path`, found through `/sys/dev/block/MAJOR:MINOR`; `None` for
/// filesystems without a block device (tmpfs, overlay, network).
pub fn disk_of_path(path: &Path, sys: &Path) -> Option<String> {
    let dev = std::fs::metadata(path).ok()?.dev();
    let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    let link: PathBuf = sys.join(format!("dev/block/{major}:{minor}"));
    let target = std::fs::canonicalize(&link).ok()?;
    // A partition's sysfs directory sits inside its disk's and has a
    // `partition` file.
    let dir = if target.join("partition").exists() {
        target.parent()?.to_path_buf()
    } else {
        target
    };
    Some(dir.file_name()?.to_string_lossy().into_owned())
}

/// `FS_IMMUTABLE_FL` from `linux/fs.h`: the file cannot be modified,
/// renamed, linked to or deleted, not even by root, until it is cleared.
const FS_IMMUTABLE_FL: libc::c_int = 0x0000_0010;

fn get_flags(file: &File, path: &Path) -> Result<libc::c_int> {
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int (the kernel uses `int` despite
    // the `long` in the request's encoding) through the pointer, which
    // points at a live, aligned c_int; the descriptor is open for the
    // duration of the call.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) };
    if rc < 0 {
        return Err(flag_error("get attributes of", path));
    }
    Ok(flags)
}

fn flag_error(op: &'static str, path: &Path) -> Error {
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::ENOTTY) | Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) => Error::Unsupported {
            path: path.display().to_string(),
            error,
        },
        _ => Error::io(op, path, error),
    }
}

/// Whether the file at `path` has the immutable attribute.
pub fn is_immutable(path: &Path) -> Result<bool> {
    let f = File::open(path).map_err(|e| Error::io("open", path, e))?;
    Ok(get_flags(&f, path)? & FS_IMMUTABLE_FL != 0)
}

/// Sets or clears the immutable attribute of the file at `path` (what
/// `chattr +i` / `chattr -i` do). Needs `CAP_LINUX_IMMUTABLE` (root).
pub fn set_immutable(path: &Path, on: bool) -> Result<()> {
    let f = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let old = get_flags(&f, path)?;
    let new = if on {
        old | FS_IMMUTABLE_FL
    } else {
        old & !FS_IMMUTABLE_FL
    };
    if new == old {
        return Ok(());
    }
    // SAFETY: FS_IOC_SETFLAGS reads one int through the pointer, which
    // points at a live, aligned c_int; the descriptor is open.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_SETFLAGS, &new) };
    if rc < 0 {
        return Err(flag_error("set attributes of", path));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_of_a_real_filesystem() {
        let d = tempfile::tempdir().unwrap();
        let c = capacity(d.path()).unwrap();
        assert!(c.total > 0 && c.available <= c.free && c.free <= c.total);
        assert!(capacity(Path::new("/nonexistent/coffer")).is_err());
    }

    #[test]
    fn immutable_attribute_blocks_deletion_until_cleared() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("shard");
        std::fs::write(&p, b"sealed").unwrap();
        match set_immutable(&p, true) {
            Ok(()) => {}
            Err(Error::Unsupported { .. }) => {
                eprintln!("SKIP: the filesystem under the temp dir has no immutable attribute");
                return;
            }
            Err(Error::Io { error, .. }) if error.raw_os_error() == Some(libc::EPERM) => {
                eprintln!("SKIP: no CAP_LINUX_IMMUTABLE (not root)");
                return;
            }
            Err(e) => panic!("{e}"),
        }
        assert!(is_immutable(&p).unwrap());
        let err = std::fs::remove_file(&p).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM));
        assert!(std::fs::OpenOptions::new().append(true).open(&p).is_err());
        set_immutable(&p, false).unwrap();
        assert!(!is_immutable(&p).unwrap());
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn disk_of_a_path_on_tmpfs_is_none() {
        // /dev/shm is tmpfs: no block device behind it.
        if Path::new("/dev/shm").exists() {
            assert_eq!(disk_of_path(Path::new("/dev/shm"), Path::new("/sys")), None);
        }
    }
}
