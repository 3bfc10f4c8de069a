//! Block devices for Coffer: what disks the appliance has and how healthy
//! they are, the capacity of the filesystems on them, and the immutable
//! attribute that retention locks set on sealed data.
//!
//! - [`disks`]: block devices from sysfs (size, rotational, model, serial,
//!   WWN, the stable `/dev/disk/by-id` name, partitions, mounts).
//! - [`smart`]: disk health parsed from `smartctl --json` output, with a
//!   verdict the pool acts on (a failing member leaves placement).
//! - [`fs`]: `statvfs` capacity, the device under a path, and the
//!   `FS_IMMUTABLE_FL` attribute through the filesystem ioctl (what
//!   `chattr +i` sets).
//!
//! Linux appears only here: the pool above talks to these functions, and
//! every sysfs, `/dev` and mount table path is a parameter so tests run on
//! recorded trees.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod disks;
pub mod fs;
pub mod smart;

pub use disks::{Disk, Partition, discover};
pub use fs::{Capacity, capacity, disk_of_path, is_immutable, set_immutable};
pub use smart::{Health, Verdict};

use std::path::Path;

/// Errors of the block layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system call failed on a path.
    #[error("{op} '{path}' failed: {error}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The file or device.
        path: String,
        /// The OS error.
        error: std::io::Error,
    },
    /// The filesystem does not support the immutable attribute.
    #[error("'{path}' is on a filesystem without the immutable attribute: {error}")]
    Unsupported {
        /// The file.
        path: String,
        /// The OS error (ENOTTY, EOPNOTSUPP).
        error: std::io::Error,
    },
    /// `smartctl` output could not be understood.
    #[error("smartctl output for '{device}' is not usable: {reason}")]
    Smart {
        /// The device.
        device: String,
        /// Why.
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: &Path, error: std::io::Error) -> Error {
        Error::Io {
            op,
            path: path.display().to_string(),
            error,
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
