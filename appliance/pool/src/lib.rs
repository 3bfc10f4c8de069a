//! Coffer's disk pools: the appliance's first copy, spread over member disks
//! so that a dead disk costs nothing.
//!
//! A pool is a set of member disks, each a mounted filesystem (directories
//! or loop-mounted images in development). Every sealed object the store
//! writes (containers, indexes, snapshot records) is cut into stripes and
//! erasure coded into k data + m parity shards on k + m distinct members,
//! placed by free space ([`shard`] has the byte layout). Any k shards give
//! the object back; every block of every shard carries its own blake3, so
//! bit rot is found on read and healed from parity. Pool metadata (id,
//! members, k + m, generation) lives on every member ([`meta`]), so a pool
//! imports from its disks alone.
//!
//! [`Pool`] implements [`coffer_store::BlobStore`]: the datastore runs on a
//! pool unchanged. [`Pool::scrub`] reads every shard, verifies and heals;
//! [`admin`] creates, grows, replaces, exports and imports pools.
//!
//! Error policy: a member that fails (I/O error, missing mount, SMART
//! failing, shards failing their hash, full) is marked and left out, and
//! the operation goes on while k shards can be read or written; what was
//! degraded is reported through [`coffer_store::BlobStore::notices`]. A
//! write that cannot place k shards fails and leaves nothing behind.
//! Nothing here overwrites a disk that belongs to a pool, or a shard that
//! is not known to be damaged.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod link;
pub mod meta;
mod pool;
mod scrub;
pub mod shard;
#[cfg(test)]
mod tests;

pub use link::{POOL_LINK, PoolLink};
pub use meta::{MemberMeta, PoolMeta, PoolState};
pub use pool::{
    Geometry, MemberState, MemberStatus, OpenOptions, Pool, PoolHealth, PoolStatus,
    default_geometry,
};
pub use scrub::{MemberScrub, ScrubProgress, ScrubReport};

use std::path::{Path, PathBuf};

/// Errors of pools.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An OS call failed.
    #[error("{op} '{path}' failed: {error}")]
    Io {
        /// Operation.
        op: &'static str,
        /// File.
        path: String,
        /// OS error.
        error: std::io::Error,
    },
    /// A metadata copy is damaged or unreadable.
    #[error("pool metadata '{}' is damaged: {reason}", path.display())]
    BadMetadata {
        /// The metadata file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The path holds no pool member.
    #[error("'{}' is not a pool member (no {} there)", path.display(), meta::META_FILE)]
    NotAMember {
        /// The path.
        path: PathBuf,
    },
    /// A disk offered as a new member already belongs to a pool.
    #[error(
        "'{}' already belongs to pool '{name}' ({id}, generation {generation}, member {member}); nothing was changed. Wipe it first if it is really free",
        path.display()
    )]
    AlreadyMember {
        /// The path.
        path: PathBuf,
        /// That pool's name.
        name: String,
        /// That pool's id.
        id: String,
        /// Its generation on that disk.
        generation: u64,
        /// The member id on that disk.
        member: String,
    },
    /// A new member is not empty.
    #[error("'{}' is not empty ({entry} and maybe more); a new member must be an empty filesystem or directory; nothing was changed", path.display())]
    NotEmpty {
        /// The path.
        path: PathBuf,
        /// One entry found.
        entry: String,
    },
    /// Two members on one disk.
    #[error("{0}")]
    SameDisk(String),
    /// Impossible k + m for the members.
    #[error("{0}")]
    Geometry(String),
    /// The pool is exported and must be imported first.
    #[error("pool '{0}' is exported: import it with 'coffer pool import' before use")]
    Exported(String),
    /// Import of a pool that was not exported.
    #[error(
        "pool '{0}' was not exported: another appliance may be using it. If its old appliance is gone, import with --force"
    )]
    NotExported(String),
    /// Paths given to import belong to different pools or none.
    #[error("{0}")]
    Import(String),
    /// A member name or id matched nothing.
    #[error("no member '{0}' in this pool")]
    UnknownMember(String),
    /// Too few members to work.
    #[error("pool '{name}' is unavailable: {reason}")]
    Unavailable {
        /// The pool.
        name: String,
        /// Which members are missing and why.
        reason: String,
    },
    /// The block layer failed.
    #[error(transparent)]
    Block(#[from] coffer_block::Error),
    /// The datastore layer failed.
    #[error(transparent)]
    Store(#[from] coffer_store::Error),
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
