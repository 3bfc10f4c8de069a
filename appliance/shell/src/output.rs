//! Formatting for people (tables, sizes, modes) and progress display.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use coffer_engine::Progress;
use coffer_store::{Entry, EntryKind};

pub use coffer_types::size;

/// `drwxr-xr-x`-style mode string.
pub fn mode_string(e: &Entry) -> String {
    let mut s = String::with_capacity(10);
    s.push(e.kind.letter());
    let m = e.mode;
    let bit = |b: u32, c: char| if m & b != 0 { c } else { '-' };
    let special = |x: bool, set: bool, lower: char, upper: char| match (x, set) {
        (true, true) => lower,
        (false, true) => upper,
        (true, false) => 'x',
        (false, false) => '-',
    };
    s.push(bit(0o400, 'r'));
    s.push(bit(0o200, 'w'));
    s.push(special(m & 0o100 != 0, m & 0o4000 != 0, 's', 'S'));
    s.push(bit(0o040, 'r'));
    s.push(bit(0o020, 'w'));
    s.push(special(m & 0o010 != 0, m & 0o2000 != 0, 's', 'S'));
    s.push(bit(0o004, 'r'));
    s.push(bit(0o002, 'w'));
    s.push(special(m & 0o001 != 0, m & 0o1000 != 0, 't', 'T'));
    s
}

/// An entry as JSON (for `ls --json`, `find --json`, `diff --json`).
pub fn entry_json(e: &Entry) -> serde_json::Value {
    let kind = match e.kind {
        EntryKind::File => "file",
        EntryKind::Dir => "dir",
        EntryKind::Symlink => "symlink",
        EntryKind::Hardlink => "hardlink",
        EntryKind::Fifo => "fifo",
        EntryKind::CharDev => "chardev",
        EntryKind::BlockDev => "blockdev",
        EntryKind::Socket => "socket",
    };
    serde_json::json!({
        "path": e.display_path(),
        "type": kind,
        "mode": e.mode,
        "uid": e.uid,
        "gid": e.gid,
        "size": e.size,
        "mtime": coffer_types::rfc3339_ms(e.mtime_s.saturating_mul(1000) + i64::from(e.mtime_ns / 1_000_000)),
        "mtime_ns": e.mtime_ns,
        "target": if e.target.is_empty() { None } else { Some(String::from_utf8_lossy(&e.target).into_owned()) },
    })
}

/// A spinner on stderr while a job runs, only when stderr is a terminal.
pub struct Spinner {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Spinner {
    /// Starts showing `what` with the live counters of `progress`.
    pub fn start(what: &'static str, progress: Arc<Progress>, quiet: bool) -> Spinner {
        let stop = Arc::new(AtomicBool::new(false));
        if quiet || !std::io::stderr().is_terminal() {
            return Spinner { stop, handle: None };
        }
        let bar = indicatif::ProgressBar::new_spinner();
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                bar.set_message(format!(
                    "{what}: {} entries, {} files, {}",
                    progress.entries.load(Ordering::Relaxed),
                    progress.files.load(Ordering::Relaxed),
                    size(progress.bytes.load(Ordering::Relaxed))
                ));
                bar.tick();
                std::thread::sleep(Duration::from_millis(100));
            }
            bar.finish_and_clear();
        });
        Spinner {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
