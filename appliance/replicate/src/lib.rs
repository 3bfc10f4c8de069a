//! `coffer-replicate`: offsite copies of a store.
//!
//! A store is a set of immutable, sealed objects (`config`, `keys/…`,
//! `data/…` containers, `index/…`, `snapshots/…`), so replicating it is
//! copying the objects the other side lacks. This crate holds the
//! appliance-to-appliance protocol (`docs/formats/replication.md`):
//! [`wire`] (frames), [`session`] ([`push`] from the store's side,
//! [`serve`] on the receiving side: inventory, only the missing objects,
//! resume of an interrupted object at its last byte, the receiver's blake3
//! of every object it stored compared with the sender's), [`limit`] (a
//! token bucket for bandwidth), and [`replica`] (the receiving side's
//! storage: a directory store per replicated store, ciphertext only — the
//! receiver never holds the keys, and the copy opens with the passphrase
//! alone).
//!
//! The sessions run over any byte stream; the daemon puts them on TLS with
//! pinned peer certificates.
//!
//! The other offsite target is an S3-compatible bucket: [`s3`] (a
//! [`coffer_store::BlobStore`] on a bucket, with S3 Object Lock as the
//! retention lock) and [`mirror`] (copy the objects the bucket lacks,
//! locked, each checked after upload; `docs/formats/s3-layout.md`).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod limit;
pub mod mirror;
pub mod replica;
pub mod s3;
pub mod session;
pub mod tls;
pub mod wire;

pub use limit::TokenBucket;
pub use mirror::{MirrorReport, mirror};
pub use replica::Replica;
pub use s3::{Lock, LockMode, S3Config, S3Credentials, S3Store};
pub use session::{PushReport, ServeReport, pull, push, serve, serve_from};

/// What went wrong in a replication session.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The link failed (connection reset, timeout).
    #[error("the replication link failed: {0}")]
    Link(std::io::Error),
    /// The other side closed the link mid-session.
    #[error("the peer closed the link mid-session")]
    Closed,
    /// The other side sent something this protocol does not allow.
    #[error("replication protocol error: {0}")]
    Protocol(String),
    /// The other side refused, and said why.
    #[error("the peer refused: {0}")]
    Refused(String),
    /// Local storage failed (reading the store, writing the replica).
    #[error("{0}")]
    Storage(String),
}

impl From<coffer_store::Error> for Error {
    fn from(e: coffer_store::Error) -> Self {
        Error::Storage(e.to_string())
    }
}
