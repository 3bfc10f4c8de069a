//! Replication sessions between a real store and a replica directory over
//! a socket pair: everything arrives and restores with the passphrase
//! alone; a second push sends only what is new; a cut link resumes at the
//! byte it stopped; a damaged object is caught by the receiver's hash; a
//! refused store and a hostile object name leave nothing behind.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use coffer_replicate::wire::{self, Msg};
use coffer_replicate::{Error, TokenBucket, push, serve};
use coffer_store::BlobStore;
use coffer_types::Level;
use common::{noise, plain, restore_from_replica, world};

/// Fails every write after `left` bytes (the link is cut).
struct CutAfter {
    inner: UnixStream,
    left: usize,
}

impl Read for CutAfter {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl Write for CutAfter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            let _ = self.inner.shutdown(std::net::Shutdown::Both);
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "cut",
            ));
        }
        let n = buf.len().min(self.left);
        let n = self.inner.write(&buf[..n])?;
        self.left -= n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Flips one byte inside the first large write (a data frame).
struct FlipOnce {
    inner: UnixStream,
    done: bool,
}

impl Read for FlipOnce {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl Write for FlipOnce {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.done && buf.len() > 64 * 1024 {
            self.done = true;
            let mut copy = buf[..4096].to_vec();
            copy[1000] ^= 0x40;
            return self.inner.write(&copy);
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A sender whose every message the test writes by hand: a receiver
/// serving the world's replica, the Hello sent and the inventory read.
fn hand_crafted_sender(
    w: &common::World,
    source: &str,
) -> (
    UnixStream,
    std::thread::JoinHandle<Result<coffer_replicate::ServeReport, Error>>,
) {
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let root = w.offsite();
    let receiver = std::thread::spawn(move || serve(&mut b, &root, &|_, _| Ok(())));
    wire::send(
        &mut a,
        &Msg::Hello {
            store: w.id,
            source: source.into(),
        },
    )
    .unwrap();
    while wire::recv(&mut a).unwrap() != Msg::InventoryEnd {}
    (a, receiver)
}

#[test]
fn a_push_copies_every_object_verified_and_the_copy_restores_with_the_passphrase_alone() {
    let w = world();
    let (pushed, served) = w.session(plain);
    let p = pushed.unwrap();
    let s = served.unwrap();
    let objects = w.objects();
    assert_eq!(p.objects, objects.len() as u64);
    assert_eq!((p.sent, p.skipped), (objects.len() as u64, 0));
    assert_eq!(p.verified, p.sent);
    assert!(p.mismatched.is_empty());
    let total: u64 = objects.iter().map(|(_, s)| s).sum();
    assert_eq!(p.bytes_sent, total);
    assert_eq!((s.stored, s.bytes), (p.sent, total));
    assert_eq!(s.source, "coffer-01");
    // The replica holds exactly the store's objects, byte for byte: only
    // ciphertext (no catalog, no key material beyond the sealed key file).
    for (k, _) in &objects {
        assert_eq!(
            std::fs::read(w.replica_dir().join(k)).unwrap(),
            w.store.get(k).unwrap(),
            "{k}"
        );
    }
    assert!(!w.replica_dir().join("catalog.db").exists());
    restore_from_replica(&w);
}

#[test]
fn a_second_push_sends_only_the_new_objects() {
    let w = world();
    w.session(plain).0.unwrap();
    let before: std::collections::HashSet<String> =
        w.objects().into_iter().map(|(k, _)| k).collect();
    // New data under a rotated data key: the key object travels too, and
    // the copy restores with the passphrase alone.
    w.repo.rotate_data_key(1).unwrap();
    std::fs::write(w.src.join("blob0"), noise(99, 300_000)).unwrap();
    w.backup(Level::Incremental);
    let new: Vec<(String, u64)> = w
        .objects()
        .into_iter()
        .filter(|(k, _)| !before.contains(k))
        .collect();
    assert!(!new.is_empty());
    let p = w.session(plain).0.unwrap();
    assert_eq!(p.sent, new.len() as u64);
    assert_eq!(p.skipped, before.len() as u64);
    assert_eq!(p.bytes_sent, new.iter().map(|(_, s)| s).sum::<u64>());
    assert_eq!(p.verified, p.sent);
    assert!(w.replica_dir().join("datakeys/00000002").exists());
    restore_from_replica(&w);
}

#[test]
fn a_cut_link_resumes_where_it_stopped() {
    let w = world();
    // Cut in the middle of the largest object (the objects go in this
    // order; frame headers add well under 2 kB before it).
    let objects = w.objects();
    let (big, _) = objects
        .iter()
        .enumerate()
        .max_by_key(|(_, (_, size))| *size)
        .unwrap();
    let before: u64 = objects[..big].iter().map(|(_, s)| s).sum();
    let cut = before + objects[big].1 / 2 + 2000;
    let (pushed, served) = w.session(|s| {
        Box::new(CutAfter {
            inner: s,
            left: cut as usize,
        })
    });
    assert!(matches!(pushed, Err(Error::Link(_))), "{pushed:?}");
    assert!(served.is_err());
    let partials: Vec<_> = std::fs::read_dir(w.replica_dir().join(".partial"))
        .unwrap()
        .collect();
    assert_eq!(partials.len(), 1, "one object was cut mid-way");
    let p = w.session(plain).0.unwrap();
    assert!(p.bytes_resumed > 0, "{p:?}");
    assert!(p.skipped > 0, "{p:?}");
    assert_eq!(p.verified, p.sent);
    let total: u64 = w.objects().iter().map(|(_, s)| s).sum();
    // Nothing was sent twice: what the first session stored or left
    // partial is not sent again.
    assert!(p.bytes_sent < total, "{p:?}");
    assert_eq!(
        std::fs::read_dir(w.replica_dir().join(".partial"))
            .unwrap()
            .count(),
        0
    );
    restore_from_replica(&w);
}

#[test]
fn a_damaged_object_is_caught_by_the_receivers_hash_and_sent_again() {
    let w = world();
    let (pushed, served) = w.session(|s| {
        Box::new(FlipOnce {
            inner: s,
            done: false,
        })
    });
    let p = pushed.unwrap();
    let s = served.unwrap();
    assert_eq!(p.mismatched.len(), 1, "{p:?}");
    assert_eq!(s.discarded, p.mismatched);
    assert_eq!(p.verified, p.sent - 1);
    let damaged = &p.mismatched[0];
    assert!(!w.replica_dir().join(damaged).exists());
    let again = w.session(plain).0.unwrap();
    assert_eq!(again.sent, 1);
    assert_eq!(again.verified, 1);
    restore_from_replica(&w);
}

#[test]
fn a_refused_store_and_a_hostile_object_name_leave_nothing_behind() {
    let w = world();
    let (a, mut b) = UnixStream::pair().unwrap();
    let root = w.offsite();
    let receiver = std::thread::spawn(move || {
        serve(&mut b, &root, &|_, source| {
            Err(format!("no replication agreement with '{source}'"))
        })
    });
    let mut a = a;
    let e = push(
        &mut a,
        w.store.as_ref(),
        w.id,
        "stranger",
        &mut TokenBucket::new(0),
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the peer refused: no replication agreement with 'stranger'"
    );
    assert!(receiver.join().unwrap().is_err());
    assert!(!w.offsite().exists());

    // A sender naming an object outside the replica.
    let (mut a, receiver) = hand_crafted_sender(&w, "evil");
    wire::send(
        &mut a,
        &Msg::Begin {
            key: "../../escaped".into(),
            size: 4,
            offset: 0,
        },
    )
    .unwrap();
    let reply = wire::recv(&mut a).unwrap();
    assert!(
        matches!(&reply, Msg::Refused { message } if message.contains("no store has")),
        "{reply:?}"
    );
    let e = receiver.join().unwrap().unwrap_err().to_string();
    assert!(e.contains("'../../escaped'"), "{e}");
    assert!(!w.t.path().join("escaped").exists());
    assert!(!w.offsite().join("escaped").exists());
}

#[test]
fn a_sender_cannot_replace_an_object_the_replica_holds() {
    let w = world();
    let (pushed, served) = w.session(plain);
    assert!(pushed.unwrap().mismatched.is_empty());
    served.unwrap();
    let snap = w.store.list("snapshots/").unwrap().remove(0);
    let held = std::fs::read(w.replica_dir().join(&snap)).unwrap();
    // A compromised primary sends other bytes under a key the replica has.
    let (mut a, receiver) = hand_crafted_sender(&w, "ransomware");
    let forged = vec![0u8; held.len()];
    wire::send(
        &mut a,
        &Msg::Begin {
            key: snap.clone(),
            size: forged.len() as u64,
            offset: 0,
        },
    )
    .unwrap();
    let reply = wire::recv(&mut a).unwrap();
    assert!(
        matches!(&reply, Msg::Refused { message } if message.contains("never replaced")),
        "{reply:?}"
    );
    assert!(receiver.join().unwrap().is_err());
    assert_eq!(std::fs::read(w.replica_dir().join(&snap)).unwrap(), held);
}

/// A tmpfs of a given size mounted on a directory, unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    /// `None` where this machine may not mount (not root, no tmpfs).
    fn mount(dir: &std::path::Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallDisk(dir.to_path_buf()))
    }
    fn grow(&self, size: &str) {
        let st = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_offsite_disk_fails_clearly_leaves_the_store_untouched_and_resumes_once_there_is_room() {
    let w = world();
    let Some(disk) = SmallDisk::mount(&w.offsite(), "512k") else {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs here (needs root); the full-disk case is untested"
        );
        return;
    };
    let objects = w.objects();
    let total: u64 = objects.iter().map(|(_, s)| s).sum();
    assert!(
        total > 1 << 20,
        "the store is larger than the disk: {total}"
    );
    let before: Vec<Vec<u8>> = objects
        .iter()
        .map(|(k, _)| w.store.get(k).unwrap())
        .collect();
    let (pushed, served) = w.session(plain);
    let e = pushed.unwrap_err().to_string();
    assert!(e.contains("No space left"), "{e}");
    assert!(served.unwrap_err().to_string().contains("No space left"));
    // The local store is exactly as it was.
    assert_eq!(w.objects(), objects);
    for ((k, _), b) in objects.iter().zip(&before) {
        assert_eq!(&w.store.get(k).unwrap(), b, "{k}");
    }
    // Room is made: the next push finishes the copy, verified.
    disk.grow("16m");
    let p = w.session(plain).0.unwrap();
    assert_eq!(p.verified, p.sent);
    assert!(p.mismatched.is_empty());
    assert_eq!(p.skipped + p.sent, objects.len() as u64);
    restore_from_replica(&w);
    drop(disk);
}
