//! The confinement of a restore drill: a mount namespace of the drill's
//! own thread.
//!
//! A drill restores a whole snapshot onto the appliance. What it restores
//! must not be usable (a restored setuid binary, a device node), and the
//! drill must not be able to change the copy it is testing. So the thread
//! that restores and verifies leaves the service's mount namespace for a
//! private one (`unshare(CLONE_NEWNS)` applies to the calling thread only,
//! and to the threads it starts; the rest of the service keeps its view),
//! in which:
//!
//! - propagation is private, so nothing mounted there is seen outside;
//! - every protected path (the store's objects, the disk pool's members)
//!   is a read-only bind mount of itself;
//! - the sandbox is a bind mount of itself with `nosuid`, `nodev` and
//!   `noexec`.
//!
//! When the work is done the thread goes back to the service's namespace
//! (`setns`), and the private one, with its mounts, is gone. Where the
//! kernel refuses a namespace (no `CAP_SYS_ADMIN`, a locked-down
//! container), the drill runs in its 0700 directory alone and the evidence
//! says so and why.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::statvfs::{FsFlags, statvfs};

/// How a drill's thread is confined.
#[derive(Debug)]
pub enum Isolation {
    /// In a private mount namespace, until [`Confined::leave`].
    Namespace(Confined),
    /// In the sandbox directory alone; why no namespace could be had.
    Directory(String),
}

impl Isolation {
    /// The evidence: how the sandbox was confined.
    pub fn describe(&self) -> String {
        match self {
            Isolation::Namespace(c) => c.description.clone(),
            Isolation::Directory(why) => {
                format!("private 0700 directory only (no mount namespace: {why})")
            }
        }
    }

    /// Back to the service's namespace (nothing for a directory).
    pub fn leave(self) -> Result<(), String> {
        match self {
            Isolation::Namespace(c) => c.leave(),
            Isolation::Directory(_) => Ok(()),
        }
    }
}

/// A thread in a private mount namespace; [`Confined::leave`] (or drop)
/// returns it to the namespace it came from.
#[derive(Debug)]
pub struct Confined {
    original: Option<File>,
    description: String,
}

impl Confined {
    /// Returns the thread to the service's mount namespace. The private
    /// namespace has no user left then, so the kernel discards it with
    /// its mounts.
    pub fn leave(mut self) -> Result<(), String> {
        self.back()
    }

    fn back(&mut self) -> Result<(), String> {
        let Some(fd) = self.original.take() else {
            return Ok(());
        };
        // `setns` into a mount namespace wants this thread's filesystem
        // context unshared; a helper thread the restore started may still
        // be exiting (it shares the context until the kernel frees it
        // after the join), so EINVAL is retried for a while.
        let mut last = None;
        for _ in 0..500 {
            match setns(&fd, CloneFlags::CLONE_NEWNS) {
                Ok(()) => return Ok(()),
                Err(nix::errno::Errno::EINVAL) => {
                    last = Some(nix::errno::Errno::EINVAL);
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                Err(e) => return Err(format!("returning to the service's mount namespace: {e}")),
            }
        }
        Err(format!(
            "returning to the service's mount namespace: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        ))
    }
}

impl Drop for Confined {
    fn drop(&mut self) {
        if let Err(e) = self.back() {
            tracing::error!(error = %e, "a drill thread could not leave its mount namespace");
        }
    }
}

/// The per-mount flags `path` is mounted with now, which a bind remount
/// must keep (a mount inherited from a more privileged namespace has them
/// locked).
fn kept_flags(path: &Path) -> MsFlags {
    let mut f = MsFlags::empty();
    if let Ok(st) = statvfs(path) {
        let fl = st.flags();
        for (s, m) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if fl.contains(s) {
                f |= m;
            }
        }
    }
    f
}

fn bind(path: &Path, flags: MsFlags) -> Result<(), String> {
    mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| format!("bind mount of '{}': {e}", path.display()))?;
    mount(
        None::<&str>,
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | kept_flags(path) | flags,
        None::<&str>,
    )
    .map_err(|e| format!("remount of '{}': {e}", path.display()))
}

/// Moves the calling thread into a private mount namespace where every
/// path of `protect` that exists is read-only and `sandbox` is `nosuid`,
/// `nodev`, `noexec`. Anything that fails leaves the thread where it was,
/// and the drill runs in the directory alone ([`Isolation::Directory`],
/// with the reason).
pub fn confine(sandbox: &Path, protect: &[PathBuf]) -> Isolation {
    let original = match File::open("/proc/thread-self/ns/mnt") {
        Ok(f) => f,
        Err(e) => return Isolation::Directory(format!("/proc/thread-self/ns/mnt: {e}")),
    };
    if let Err(e) = unshare(CloneFlags::CLONE_NEWNS) {
        return Isolation::Directory(format!("unshare(CLONE_NEWNS): {e}"));
    }
    let mut confined = Confined {
        original: Some(original),
        description: String::new(),
    };
    let setup = (|| -> Result<usize, String> {
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(|e| format!("making mount propagation private: {e}"))?;
        let mut n = 0;
        for p in protect {
            // A store directory holding the state directory (and so the
            // sandbox) keeps that entry writable.
            if sandbox.starts_with(p) {
                continue;
            }
            if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir() || m.is_file()) {
                bind(p, MsFlags::MS_RDONLY)?;
                n += 1;
            }
        }
        bind(
            sandbox,
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        )?;
        Ok(n)
    })();
    match setup {
        Ok(n) => {
            confined.description = format!(
                "private mount namespace: {n} store path(s) read-only, the sandbox nosuid, nodev, noexec and seen by the drill alone"
            );
            Isolation::Namespace(confined)
        }
        Err(why) => match confined.back() {
            Ok(()) => Isolation::Directory(why),
            Err(e) => Isolation::Directory(format!("{why}; then {e}")),
        },
    }
}

/// What a drill of the store in `store_dir` protects: every entry of the
/// store directory but its catalog (the catalog and its lock are written
/// by the drill's own job), and `extra` (a disk pool's members).
pub fn store_paths(store_dir: &Path, extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(store_dir) {
        for e in rd.flatten() {
            let name = e.file_name();
            if name.to_string_lossy().starts_with("catalog.") {
                continue;
            }
            out.push(e.path());
        }
    }
    out.sort();
    out.extend(extra.iter().cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `path` is a mount point in the view of `mountinfo`.
    fn mounted(mountinfo: &str, path: &Path) -> bool {
        let text = std::fs::read_to_string(mountinfo).unwrap();
        let p = path.to_string_lossy();
        text.lines()
            .any(|l| l.split(' ').nth(4).is_some_and(|m| m == p))
    }

    #[test]
    fn a_confined_thread_sees_the_store_read_only_and_nobody_sees_its_sandbox() {
        let t = tempfile::tempdir().unwrap();
        let store = t.path().join("store");
        std::fs::create_dir_all(store.join("data")).unwrap();
        std::fs::write(store.join("config"), b"c").unwrap();
        std::fs::write(store.join("catalog.db"), b"x").unwrap();
        let sandbox = t.path().join("sandbox");
        std::fs::create_dir(&sandbox).unwrap();
        let protect = store_paths(&store, &[]);
        assert_eq!(protect, vec![store.join("config"), store.join("data")]);
        // A thread of its own, as a drill's job has.
        let (store2, sandbox2) = (store.clone(), sandbox.clone());
        std::thread::spawn(move || {
            let iso = confine(&sandbox2, &protect);
            let Isolation::Namespace(_) = &iso else {
                // Root is granted one on every kernel these tests run on;
                // elsewhere the reason is the evidence, and nothing below
                // can be checked.
                let why = iso.describe();
                assert!(
                    !nix::unistd::geteuid().is_root(),
                    "root got no namespace: {why}"
                );
                eprintln!("skipped: no mount namespace for a non-root user: {why}");
                return;
            };
            assert!(iso.describe().contains("2 store path(s) read-only"));
            let e = std::fs::write(store2.join("data/new"), b"x").unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
            let e = std::fs::write(store2.join("config"), b"y").unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
            // The catalog stays writable for the job's own rows.
            std::fs::write(store2.join("catalog.db"), b"y").unwrap();
            std::fs::write(sandbox2.join("restored"), b"z").unwrap();
            let fl = statvfs(&sandbox2).unwrap().flags();
            assert!(fl.contains(FsFlags::ST_NOSUID | FsFlags::ST_NODEV | FsFlags::ST_NOEXEC));
            assert!(mounted("/proc/thread-self/mountinfo", &sandbox2));
            // The process's first thread keeps the service's view.
            assert!(!mounted("/proc/self/mountinfo", &sandbox2));
            // A thread the drill starts shares its namespace.
            let s3 = store2.clone();
            std::thread::spawn(move || std::fs::write(s3.join("data/t"), b"x").is_err())
                .join()
                .map(|refused| assert!(refused))
                .unwrap();
            iso.leave().unwrap();
            assert!(!mounted("/proc/thread-self/mountinfo", &sandbox2));
            std::fs::write(store2.join("data/after"), b"x").unwrap();
        })
        .join()
        .unwrap();
        assert_eq!(std::fs::read(sandbox.join("restored")).unwrap(), b"z");
        assert_eq!(std::fs::read(store.join("catalog.db")).unwrap(), b"y");
        assert!(!store.join("data/new").exists());
    }
}
