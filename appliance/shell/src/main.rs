//! `coffer`: the appliance's management shell and command line.
//!
//! Direct mode (`--store DIR`, or `COFFER_STORE`) works on a store with no
//! daemon: a disaster-recovery restore needs nothing but this binary, the
//! media and the passphrase. Exit codes: 0 success, 1 failure, 2 usage error,
//! 3 success with warnings, 4 verification found damage.
//!
//! Remote mode (`coffer shell`, or `coffer` alone; `coffer remote COMMAND`
//! for scripts) is a client of `cofferd`'s control socket: see [`remote`].

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod bench_cmd;
mod cli;
mod demo;
mod dev;
mod output;
mod pool_cmd;
mod protect_cmd;
mod remote;
mod rotation_cmd;
mod setup_cmd;
mod tape_cmd;

use std::process::ExitCode;

fn main() -> ExitCode {
    tune_malloc();
    default_sigpipe();
    cli::main()
}

/// `coffer ls latest | head` ends quietly when `head` exits, as command-line
/// tools do, instead of panicking on the closed pipe (Rust ignores SIGPIPE).
/// A long-running server in this binary must ignore SIGPIPE again: a client
/// hanging up must not kill it.
#[allow(unsafe_code)]
fn default_sigpipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: restores the default disposition (no handler runs), before
    // any other thread exists.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

/// Fixes glibc's mmap threshold at 4 MiB. Left alone, glibc raises it to the
/// size of the largest block freed so far, and the first such block is the
/// key derivation's 19 MiB: from then on every buffer up to 19 MiB comes
/// from the heap arenas, which keep freed memory resident, and the growing
/// chunk index is copied rather than remapped when it grows. Measured on a
/// 250,000-file full backup: peak RSS 112 → 75 MiB (docs/performance.md);
/// 1 MiB saved more there but doubled restore's and verify's peak.
#[allow(unsafe_code)]
fn tune_malloc() {
    // SAFETY: mallopt only sets an allocator parameter; it is called before
    // any other thread exists and is harmless if the parameter is refused.
    let _ = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20) };
}
