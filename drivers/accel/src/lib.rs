//! Hardware acceleration for Coffer's codec pipeline.
//!
//! Every new byte a backup writes goes through the same per-chunk work:
//! a keyed blake3 hash names the chunk, zstd compresses it, AES-256-GCM
//! seals what compression left, and a disk pool adds Reed-Solomon parity to
//! the sealed containers. How fast that runs, and at which zstd level and
//! thread count, depends on the machine. This crate answers the three
//! questions the appliance asks about it:
//!
//! - **What does the CPU offer?** [`features::detect`] reports the
//!   instruction-set extensions the codec crates use (AES-NI, PCLMULQDQ,
//!   AVX2, AVX-512 …), and says honestly which of them Coffer's codecs use.
//! - **Who does the work?** [`offload::Offload`] is the work a device could
//!   take (a QAT-class card, an LTO drive's own encryption); [`offload::Cpu`]
//!   is the implementation on the host's cores, and the reference any device
//!   must match byte for byte.
//! - **How fast is it here?** [`bench::run`] measures each stage through
//!   `&dyn Offload` (so a device is measured exactly like the CPU), on one
//!   core and on all threads; [`tune::choose`] turns that report and a
//!   throughput target into a [`tune::Tuning`]: the backup engine takes its
//!   zstd level and its codec thread count from `tune::choose`.
//!   [`report::render`] prints the lot as plain text for the shell.
//!
//! `docs/accel.md` describes the benchmark's method and data, the tuning
//! model and the offload contract.
//!
//! **Architecture invariant**: this crate depends on no `appliance/*` crate,
//! performs no I/O beyond reading `/proc/cpuinfo`, and [`tune`] and
//! [`report`] are pure functions of a [`bench::BenchReport`].
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod bench;
pub mod features;
pub mod offload;
pub mod report;
pub mod tune;

pub use bench::{BenchOptions, BenchReport, BenchResult, Stage};
pub use features::{CpuFeatures, detect};
pub use offload::{Cpu, Offload};
pub use tune::{Tuning, choose};

/// Errors of the codec work and of the benchmark.
///
/// Callers act on [`Error::Authentication`] (the data or its key is wrong:
/// never retry, report the chunk as damaged) and [`Error::TooLarge`] (a
/// frame claims more than the caller allowed); the rest carry the codec's
/// own message for the log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// AES-256-GCM refused to open: wrong key, nonce or associated data, or
    /// the ciphertext or its tag was altered.
    #[error(
        "AES-256-GCM authentication failed: wrong key, nonce or associated data, \
         or the ciphertext or its tag was altered"
    )]
    Authentication,
    /// AES-256-GCM refused to seal (the plaintext is longer than GCM allows).
    #[error("AES-256-GCM seal failed: {0}")]
    Seal(String),
    /// A zstd level outside the range the linked zstd supports.
    #[error("zstd level {level} is outside the supported range {min}..={max}")]
    Level {
        /// The level asked for.
        level: i32,
        /// Lowest supported level.
        min: i32,
        /// Highest supported level.
        max: i32,
    },
    /// zstd compression failed.
    #[error("zstd compress failed: {0}")]
    Compress(String),
    /// zstd decompression failed (not a zstd frame, damaged data).
    #[error("zstd decompress failed: {0}")]
    Decompress(String),
    /// The decompressed data would exceed the caller's limit.
    #[error("zstd decompress refused: the data decompresses to more than the limit of {max} bytes")]
    TooLarge {
        /// The caller's limit.
        max: usize,
    },
    /// Reed-Solomon parity could not be computed (shard count or size).
    #[error("Reed-Solomon parity failed: {0}")]
    Parity(String),
    /// An offload device failed; device implementations report here.
    #[error("offload device '{device}' failed: {message}")]
    Device {
        /// The device's name ([`Offload::name`]).
        device: String,
        /// What failed.
        message: String,
    },
    /// A benchmark test could not run, or an offload returned wrong results.
    #[error("benchmark test '{test}' failed: {message}")]
    Bench {
        /// The test's name.
        test: String,
        /// What failed.
        message: String,
    },
}
