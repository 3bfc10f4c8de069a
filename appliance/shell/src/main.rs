//! `coffer`: the appliance's management shell and command line.
//!
//! Direct mode (`--store DIR`, or `COFFER_STORE`) works on a store with no
//! daemon: a disaster-recovery restore needs nothing but this binary, the
//! media and the passphrase. Exit codes: 0 success, 1 failure, 2 usage error,
//! 3 success with warnings, 4 verification found damage.

mod cli;
mod demo;
mod output;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
