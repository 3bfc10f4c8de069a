//! Ctrl-C while watching a job stops the watching, not the shell.
//!
//! [`install`] blocks SIGINT in the calling thread (and so in every thread
//! started after it) and starts one thread that waits for it with
//! `sigwait`: while a [`Watching`] guard lives, the first SIGINT only sets
//! a flag the watcher polls; any other SIGINT ends the process as the
//! default action would. No signal handler runs, so no `unsafe` is needed.
//! (The line editor and the password prompt read Ctrl-C as a key, with the
//! terminal's signals off, so they never see a SIGINT.)

use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{SigSet, Signal};

static WATCHING: AtomicBool = AtomicBool::new(false);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();

/// Routes SIGINT to the waiting thread. Call before starting other threads.
pub fn install() {
    INSTALL.call_once(|| {
        let mut set = SigSet::empty();
        set.add(Signal::SIGINT);
        if set.thread_block().is_err() {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("sigint".into())
            .spawn(move || {
                while set.wait().is_ok() {
                    if WATCHING.load(Ordering::SeqCst) && !INTERRUPTED.swap(true, Ordering::SeqCst)
                    {
                        continue;
                    }
                    eprintln!();
                    std::process::exit(130);
                }
            });
        if spawned.is_err() {
            let _ = set.thread_unblock();
        }
    });
}

/// While it lives, the first Ctrl-C is reported by [`Watching::interrupted`]
/// instead of ending the process.
pub struct Watching(());

impl Watching {
    /// Starts watching for Ctrl-C.
    pub fn start() -> Watching {
        INTERRUPTED.store(false, Ordering::SeqCst);
        WATCHING.store(true, Ordering::SeqCst);
        Watching(())
    }

    /// Whether Ctrl-C was pressed since [`Watching::start`].
    pub fn interrupted(&self) -> bool {
        INTERRUPTED.load(Ordering::SeqCst)
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        WATCHING.store(false, Ordering::SeqCst);
        INTERRUPTED.store(false, Ordering::SeqCst);
    }
}
