//! Coffer's tape format and media sets.
//!
//! A **media set** is the unit written to tape: one or more cartridges
//! written in sequence, all sealed under the set's own key (wrapped by the
//! store's master key). A cartridge holds, in tape files separated by
//! filemarks: its media label, the media-set label (which carries what a
//! recovery needs: the store's config, its passphrase-sealed key file and
//! the wrapped set key), archives of store objects (containers, their index
//! copies, snapshot records) and, at the end, a tape catalog of what it
//! holds. Byte layouts: `docs/formats/tape.md`; constants in [`format`].
//!
//! - [`blocks`]: fixed-size sealed, checksummed blocks;
//! - [`archive`]: entries (store objects) streamed across blocks, with
//!   resynchronisation after a damaged block;
//! - [`label`]: media and media-set labels, tape catalogs;
//! - [`set`]: writing snapshots to a set through a changer (spanning
//!   cartridges at early warning), restoring from it, and recovering a
//!   store from cartridges and the passphrase alone.
//!
//! Error policy: every failure is an [`Error`] variant naming what failed on
//! which cartridge; a damaged block loses only the objects it touches and
//! is reported, never a panic; nothing on a cartridge is overwritten unless
//! the operator relabels it.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod archive;
pub mod blocks;
pub mod format;
pub mod label;
pub mod restore;
pub mod rotation;
pub mod set;

pub use label::{MediaLabel, SetLabel, TapeCatalog, TapeRef};

/// Errors of the media layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The drive or changer failed.
    #[error(transparent)]
    Tape(#[from] coffer_tape::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] coffer_store::Error),
    /// Key handling failed.
    #[error(transparent)]
    Keys(#[from] coffer_keys::Error),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] coffer_catalog::Error),
    /// The engine (restore) failed.
    #[error(transparent)]
    Engine(#[from] coffer_engine::Error),
    /// Tape data that does not parse.
    #[error("tape data is invalid: {0}")]
    Format(String),
    /// A sealed tape file was read without its set's key.
    #[error("this tape file is encrypted and no media set key was given")]
    KeyNeeded,
    /// The unwrapped set key is not the one the set label names.
    #[error(
        "the media set key does not match the fingerprint in the set label (the label was altered)"
    )]
    WrongSetKey,
    /// The cartridge has nothing recorded on it.
    #[error("cartridge {barcode} is blank: label it first (`coffer media label {barcode}`)")]
    Blank {
        /// Barcode.
        barcode: String,
    },
    /// The cartridge's label does not parse or is not Coffer's.
    #[error("cartridge {barcode}: {reason}")]
    Label {
        /// Barcode.
        barcode: String,
        /// What is wrong.
        reason: String,
    },
    /// The cartridge belongs elsewhere (another set, pool or store); nothing
    /// was written to it.
    #[error("cartridge {barcode} {reason}; nothing was written to it")]
    Foreign {
        /// Barcode.
        barcode: String,
        /// Where it belongs.
        reason: String,
    },
    /// A cartridge the operation needs is not in the library.
    #[error(
        "insert cartridge {barcode} (media set {set}, sequence {seq}) into a mail slot and run \
         `coffer changer import`: {reason}"
    )]
    NeedCartridge {
        /// Barcode.
        barcode: String,
        /// Its set (short id).
        set: String,
        /// Its sequence number.
        seq: u32,
        /// Why it is needed.
        reason: String,
    },
    /// No cartridge of the pool can take data.
    #[error(
        "no writable cartridge of pool '{pool}' is in the library: label a blank one with \
         `coffer media label BARCODE --pool {pool}`"
    )]
    NoWritableCartridge {
        /// The pool.
        pool: String,
    },
    /// A request that cannot be met as asked.
    #[error("{0}")]
    Invalid(String),
    /// A rotation job's cartridges are not in the library yet: the
    /// operator must bring them (the message says which). A job may wait.
    #[error("{0}")]
    NeedMedia(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
