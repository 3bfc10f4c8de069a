//! Coffer's datastore: the format every copy of a backup shares.
//!
//! ```text
//! file bytes ─▶ chunker (FastCDC, seeded) ─▶ id = keyed blake3 ─▶ dedup (index)
//!            ─▶ zstd (kept only if smaller) ─▶ AES-256-GCM (per-container key)
//!            ─▶ container (sealed when full: own table + blake3 trailer)
//! tree       ─▶ manifest records ─▶ same chunk path
//! snapshot   ─▶ encrypted record naming the manifest's chunks, written last
//! ```
//!
//! Everything goes through the [`BlobStore`] trait ([`DirStore`] on a
//! filesystem, [`MemStore`] in memory; pools and S3 later implement it too).
//! [`Repo`] is an opened store: config, master key and chunk index. The byte
//! layouts are specified in `docs/formats/store.md`; the constants live in
//! [`format::magic`] and are never edited.
//!
//! Error policy: every failure is an [`Error`] variant that says what failed
//! and on what; damaged data is [`Error::Corrupt`] and never a panic; no
//! operation here changes an object that exists (objects are immutable).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod blob;
pub mod chunker;
pub mod container;
pub mod format;
pub mod manifest;
mod repo;
pub mod snapshot;

pub use blob::{BlobStore, DirStore, MemStore, ObjectWriter, check_key};
pub use chunker::{Chunker, ChunkerParams};
pub use manifest::{Entry, EntryKind, Extent};
pub use repo::{
    ChunkLoc, ChunkStream, ContainerCheck, DataKeyInfo, InitOptions, MAX_RECORDS, ManifestWriter,
    Packer, Repo, StoreConfig, data_key_object, scan_containers,
};
pub use snapshot::SnapshotRecord;

use std::path::Path;

/// Errors of the datastore.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An object does not exist.
    #[error("object '{key}' not found")]
    NotFound {
        /// Object key.
        key: String,
    },
    /// An object already exists and objects are never replaced.
    #[error("object '{key}' already exists")]
    AlreadyExists {
        /// Object key.
        key: String,
    },
    /// An object is shorter than its structure says.
    #[error("object '{key}' is truncated: {detail}")]
    Truncated {
        /// Object key.
        key: String,
        /// What was expected.
        detail: String,
    },
    /// An I/O operation failed.
    #[error("{op} '{path}' failed: {error}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The file.
        path: String,
        /// The OS error: in the message, not a separate source, so an
        /// error chain prints it once.
        error: std::io::Error,
    },
    /// Data does not parse or fails its checks.
    #[error("{what} is damaged: {reason}")]
    Corrupt {
        /// What was being read.
        what: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The data was written by a newer coffer.
    #[error(
        "{what} has format version {found}, newer than this coffer supports ({supported}); upgrade coffer"
    )]
    NewerFormat {
        /// Which structure.
        what: String,
        /// Version found.
        found: u16,
        /// Newest supported.
        supported: u16,
    },
    /// The location holds no store.
    #[error("no coffer store at '{0}' (run 'coffer --store {0} init' first)")]
    NotAStore(String),
    /// `init` on an existing store.
    #[error("'{0}' already holds a coffer store")]
    StoreExists(String),
    /// A chunk the index does not know.
    #[error("chunk {0} is not in the store")]
    MissingChunk(coffer_types::ChunkId),
    /// Compression or framing failed.
    #[error("codec: {0}")]
    Codec(String),
    /// A manifest stream could not be read.
    #[error("reading manifest: {0}")]
    Manifest(String),
    /// A container was sealed under a data key generation this store no
    /// longer holds: destroyed (crypto-shredded), so its data is gone.
    #[error(
        "data key generation {generation} is not in this store (destroyed: what it sealed was crypto-shredded)"
    )]
    KeyUnavailable {
        /// The generation.
        generation: u32,
    },
    /// An object is under a retention lock: it cannot be deleted or changed
    /// until the retention code releases it.
    #[error("object '{key}' is under a retention lock")]
    Locked {
        /// Object key.
        key: String,
    },
    /// The storage backend cannot do what was asked or failed as a whole
    /// (a pool that cannot place a stripe, a feature it lacks).
    #[error("{store}: {reason}")]
    Backend {
        /// The backend, as [`BlobStore::describe`] names it.
        store: String,
        /// What went wrong.
        reason: String,
    },
    /// Key handling failed (wrong passphrase, damaged key file, …).
    #[error(transparent)]
    Keys(#[from] coffer_keys::Error),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            op,
            path: path.display().to_string(),
            error: source,
        }
    }

    pub(crate) fn from_io_get(key: &str, path: &Path, e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound { key: key.into() }
        } else {
            Error::io("read", path, e)
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
