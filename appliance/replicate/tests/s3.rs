//! A store mirrored into an S3 bucket on a real S3 server (moto, started
//! per test): only what the bucket lacks goes up, locked and checked; the
//! lock holds against deletes and overwrites; the bucket alone restores
//! with the passphrase; bad buckets, credentials, locks and foreign
//! objects are refused before anything is sent; large objects go up in
//! parts; the sync store works from inside a tokio runtime.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use coffer_replicate::s3::{Lock, LockMode, S3Credentials, S3Store};
use coffer_replicate::session::Progress;
use coffer_replicate::{Error, MirrorReport, TokenBucket, mirror};
use coffer_store::{BlobStore, DirStore};
use coffer_types::Level;
use common::moto::Moto;
use common::{World, noise, restore_from, world};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn lock_for(mode: LockMode, secs: i64) -> Lock {
    Lock {
        mode,
        retain_until_s: now() + secs,
    }
}

fn prefix(w: &World) -> String {
    let hex: String = w.id.iter().map(|b| format!("{b:02x}")).collect();
    format!("coffer/{hex}/")
}

/// A locked bucket `name` on `moto`, opened with the world's prefix.
fn locked_bucket(moto: &Moto, name: &str, w: &World) -> S3Store {
    moto.bucket(name, true);
    let mut cfg = moto.config(name);
    cfg.prefix = prefix(w);
    S3Store::open(cfg).unwrap()
}

fn run_mirror(
    w: &World,
    dst: &S3Store,
    lock: Option<Lock>,
) -> (Result<MirrorReport, Error>, Option<Progress>) {
    let mut last = None;
    let r = mirror(
        w.store.as_ref(),
        dst,
        lock,
        &mut TokenBucket::new(0),
        &mut |p| last = Some(p),
    );
    (r, last)
}

#[test]
fn a_mirror_sends_only_what_the_bucket_lacks_locked_and_verified() {
    let w = world();
    let moto = Moto::start();
    let dst = locked_bucket(&moto, "coffer-offsite", &w);
    let lock = lock_for(LockMode::Compliance, 86_400);
    let (r, last) = run_mirror(&w, &dst, Some(lock));
    let r = r.unwrap();
    let objects = w.objects();
    let n = objects.len() as u64;
    let total: u64 = objects.iter().map(|(_, s)| s).sum();
    assert_eq!(
        r,
        MirrorReport {
            objects: n,
            skipped: 0,
            sent: n,
            bytes_sent: total,
            verified: n,
            mismatched: Vec::new(),
            locked: 0,
        }
    );
    let last = last.unwrap();
    assert_eq!((last.to_send, last.sent, last.bytes), (n, n, total));
    // The bucket holds exactly the store's keys under the prefix, each
    // with its blake3 and the lock.
    let mut keys = moto.keys("coffer-offsite");
    keys.sort();
    let mut want: Vec<String> = objects
        .iter()
        .map(|(k, _)| format!("{}{k}", prefix(&w)))
        .collect();
    want.sort();
    assert_eq!(keys, want);
    for (k, _) in &objects {
        assert_eq!(dst.retention(k).unwrap(), Some(lock), "{k}");
        assert_eq!(
            dst.stored_hash(k).unwrap(),
            Some(*blake3::hash(&w.store.get(k).unwrap()).as_bytes())
        );
    }

    // Again: nothing to send, nothing to lock.
    let r = run_mirror(&w, &dst, Some(lock)).0.unwrap();
    assert_eq!((r.sent, r.skipped, r.locked, r.bytes_sent), (0, n, 0, 0));
    // A longer lock extends every object's; a shorter one changes nothing.
    let longer = Lock {
        retain_until_s: lock.retain_until_s + 3600,
        ..lock
    };
    let r = run_mirror(&w, &dst, Some(longer)).0.unwrap();
    assert_eq!((r.sent, r.skipped, r.locked), (0, n, n));
    let r = run_mirror(&w, &dst, Some(lock)).0.unwrap();
    assert_eq!((r.sent, r.locked), (0, 0));
    assert_eq!(dst.retention("config").unwrap(), Some(longer));

    // After another backup only the new objects go.
    let before: HashSet<String> = objects.into_iter().map(|(k, _)| k).collect();
    std::fs::write(w.src.join("blob0"), noise(99, 300_000)).unwrap();
    w.backup(Level::Incremental);
    let new: Vec<(String, u64)> = w
        .objects()
        .into_iter()
        .filter(|(k, _)| !before.contains(k))
        .collect();
    assert!(new.iter().any(|(k, _)| k.starts_with("snapshots/")));
    assert!(new.iter().any(|(k, _)| k.starts_with("data/")));
    let r = run_mirror(&w, &dst, Some(longer)).0.unwrap();
    assert_eq!(r.sent, new.len() as u64);
    assert_eq!(r.skipped, before.len() as u64);
    assert_eq!(r.bytes_sent, new.iter().map(|(_, s)| s).sum::<u64>());
    assert_eq!((r.verified, r.locked), (r.sent, 0));
    assert!(r.mismatched.is_empty());
}

#[test]
fn the_object_lock_holds_against_deletes_and_overwrites() {
    let w = world();
    let moto = Moto::start();
    let dst = locked_bucket(&moto, "coffer-locked", &w);
    let lock = lock_for(LockMode::Compliance, 86_400);
    run_mirror(&w, &dst, Some(lock)).0.unwrap();
    let key = w.store.list("data/").unwrap().remove(0);
    let original = w.store.get(&key).unwrap();
    let full = format!("{}{key}", prefix(&w));
    assert_eq!(dst.retention(&key).unwrap(), Some(lock));
    let versions = dst.versions(&key).unwrap();
    assert_eq!(versions.len(), 1);
    let v = &versions[0];

    let e = dst.delete_version(&key, v).unwrap_err().to_string();
    assert!(e.contains("refused") && e.contains("Object Lock"), "{e}");
    // The store never replaces an object...
    assert!(matches!(
        dst.put(&key, b"other"),
        Err(coffer_store::Error::AlreadyExists { .. })
    ));
    // ...and an overwrite behind its back makes a new version; the locked
    // one is still there, byte for byte.
    moto.put_raw("coffer-locked", &full, b"overwritten");
    let versions = dst.versions(&key).unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(&versions[1], v, "newest first");
    assert_eq!(moto.get_version("coffer-locked", &full, v), original);
    // A plain delete leaves a delete marker; the locked version survives.
    dst.delete(&key).unwrap();
    assert!(matches!(
        dst.get(&key),
        Err(coffer_store::Error::NotFound { .. })
    ));
    assert_eq!(moto.get_version("coffer-locked", &full, v), original);
    assert!(dst.delete_version(&key, v).is_err());

    // A lock cannot be released; one is applied only if configured.
    let e = dst.retention_lock("config", false).unwrap_err().to_string();
    assert!(e.contains("cannot be released"), "{e}");
    assert!(e.contains("compliance lock on 'config' expires at"), "{e}");
    dst.put("keys/extra", b"x").unwrap();
    assert_eq!(dst.retention("keys/extra").unwrap(), None);
    assert!(dst.retention_lock("keys/extra", true).is_err());
    let later = lock_for(LockMode::Compliance, 2 * 86_400);
    dst.set_lock(Some(later));
    dst.retention_lock("keys/extra", true).unwrap();
    assert_eq!(dst.retention("keys/extra").unwrap(), Some(later));
    dst.put("keys/extra2", b"y").unwrap();
    assert_eq!(dst.retention("keys/extra2").unwrap(), Some(later));

    // GOVERNANCE also refuses a delete made without the bypass.
    let gov = lock_for(LockMode::Governance, 3600);
    dst.put_with_lock("snapshots/gov", b"governed", Some(gov))
        .unwrap();
    assert_eq!(dst.retention("snapshots/gov").unwrap(), Some(gov));
    let v = dst.versions("snapshots/gov").unwrap().remove(0);
    let e = dst
        .delete_version("snapshots/gov", &v)
        .unwrap_err()
        .to_string();
    assert!(e.contains("refused"), "{e}");
    assert_eq!(dst.get("snapshots/gov").unwrap(), b"governed");
}

#[test]
fn the_bucket_alone_restores_with_the_passphrase() {
    let w = world();
    let moto = Moto::start();
    let dst = locked_bucket(&moto, "coffer-dr", &w);
    run_mirror(&w, &dst, Some(lock_for(LockMode::Compliance, 3600)))
        .0
        .unwrap();
    drop(dst);
    let mut cfg = moto.config("coffer-dr");
    cfg.prefix = prefix(&w);
    let blobs: Arc<dyn BlobStore> = Arc::new(S3Store::open(cfg).unwrap());
    restore_from(&w, blobs);
}

#[test]
fn a_bucket_without_object_lock_is_refused_before_anything_is_sent() {
    let w = world();
    let moto = Moto::start();
    moto.bucket("coffer-plain", false);
    moto.bucket("coffer-locked", true);
    let dst = S3Store::open(moto.config("coffer-plain")).unwrap();
    assert_eq!(dst.bucket_lock().unwrap(), None);
    let e = dst.require_lock().unwrap_err();
    assert!(matches!(e, Error::Refused(_)), "{e:?}");
    let e = e.to_string();
    assert!(
        e.contains("bucket 'coffer-plain' does not have Object Lock enabled"),
        "{e}"
    );
    let e = run_mirror(&w, &dst, Some(lock_for(LockMode::Compliance, 60)))
        .0
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not have Object Lock enabled"), "{e}");
    assert!(moto.keys("coffer-plain").is_empty());
    // Without a lock the same bucket takes a plain copy.
    let r = run_mirror(&w, &dst, None).0.unwrap();
    assert_eq!(r.verified, w.objects().len() as u64);
    assert_eq!(dst.retention("config").unwrap(), None);

    let locked = S3Store::open(moto.config("coffer-locked")).unwrap();
    assert_eq!(locked.bucket_lock().unwrap(), Some(None));
    locked.require_lock().unwrap();
    // A lock that already ended is refused, by mirror and by a put.
    let past = lock_for(LockMode::Compliance, -60);
    let e = run_mirror(&w, &locked, Some(past))
        .0
        .unwrap_err()
        .to_string();
    assert!(e.contains("in the past"), "{e}");
    let e = locked
        .put_with_lock("config", b"x", Some(past))
        .unwrap_err()
        .to_string();
    assert!(e.contains("in the past"), "{e}");
    assert!(moto.keys("coffer-locked").is_empty());

    // No such bucket; a part size S3 would refuse.
    let e = S3Store::open(moto.config("coffer-missing"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no bucket 'coffer-missing'"), "{e}");
    let mut cfg = moto.config("coffer-locked");
    cfg.part_size = 1024 * 1024;
    let e = S3Store::open(cfg).unwrap_err().to_string();
    assert!(e.contains("minimum"), "{e}");
}

#[test]
fn refused_credentials_and_an_unreachable_endpoint_say_so_without_the_secret() {
    let moto = Moto::start_checking_keys();
    let secret = "wJalrXUtnFEMI-K7MDENG-do-not-print";
    let token = "FwoGZXIvYXdzEJr-do-not-print";
    let mut cfg = moto.config("coffer-offsite");
    cfg.credentials = S3Credentials {
        access_key_id: "AKIAUNKNOWNKEY000000".into(),
        secret_access_key: zeroize::Zeroizing::new(secret.into()),
        session_token: Some(zeroize::Zeroizing::new(token.into())),
    };
    let e = S3Store::open(cfg.clone()).unwrap_err();
    let msg = format!("{e} {e:?}");
    assert!(matches!(e, Error::Refused(_)), "{e:?}");
    assert!(
        msg.contains("the credentials for bucket 'coffer-offsite' were refused"),
        "{msg}"
    );
    assert!(!msg.contains(secret) && !msg.contains(token), "{msg}");
    assert!(!format!("{cfg:?}").contains(secret));

    // Nothing listens: the link error names the endpoint.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    cfg.endpoint = Some(format!("http://127.0.0.1:{port}"));
    let e = S3Store::open(cfg).unwrap_err();
    assert!(matches!(e, Error::Link(_)), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!(
            "cannot reach the S3 endpoint http://127.0.0.1:{port}"
        )),
        "{msg}"
    );
    assert!(!msg.contains(secret), "{msg}");
}

#[test]
fn a_foreign_object_under_a_stores_key_stops_the_mirror_and_nothing_is_overwritten() {
    let w = world();
    let moto = Moto::start();
    let dst = locked_bucket(&moto, "coffer-foreign", &w);
    let key = w.store.list("data/").unwrap().remove(0);
    let ours = w.store.get(&key).unwrap();
    let mut theirs = ours.clone();
    theirs[100] ^= 1;
    dst.put_with_lock(&key, &theirs, None).unwrap();
    let e = run_mirror(&w, &dst, Some(lock_for(LockMode::Compliance, 60)))
        .0
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("'{key}'")) && e.contains("differs"),
        "{e}"
    );
    assert_eq!(w.store.get(&key).unwrap(), ours);
    assert_eq!(dst.get(&key).unwrap(), theirs);
    assert_eq!(dst.versions(&key).unwrap().len(), 1);
    // Checked before anything was sent.
    assert_eq!(moto.keys("coffer-foreign").len(), 1);
    // A different size says so too.
    let dst = locked_bucket(&moto, "coffer-foreign-size", &w);
    let other = w.store.list("index/").unwrap().remove(0);
    dst.put_with_lock(&other, b"short", None).unwrap();
    let e = run_mirror(&w, &dst, None).0.unwrap_err().to_string();
    assert!(
        e.contains(&format!("'{other}'")) && e.contains("5 bytes there"),
        "{e}"
    );
    assert_eq!(moto.keys("coffer-foreign-size").len(), 1);
}

#[test]
fn a_large_object_goes_up_in_parts_and_is_locked() {
    let t = tempfile::tempdir().unwrap();
    let src = DirStore::new(t.path());
    let big = noise(7, 12 * 1024 * 1024 + 12345);
    src.put("config", b"config bytes").unwrap();
    src.put("data/ab/big", &big).unwrap();
    let moto = Moto::start();
    moto.bucket("coffer-parts", true);
    let mut cfg = moto.config("coffer-parts");
    cfg.part_size = 5 * 1024 * 1024;
    let dst = S3Store::open(cfg).unwrap();
    let lock = lock_for(LockMode::Compliance, 3600);
    let mut pieces = Vec::new();
    let mut limit = TokenBucket::new(0);
    let r = mirror(&src, &dst, Some(lock), &mut limit, &mut |p| pieces.push(p)).unwrap();
    assert_eq!((r.sent, r.verified), (2, 2), "{r:?}");
    assert_eq!(r.bytes_sent, big.len() as u64 + 12);
    assert_eq!(dst.retention("data/ab/big").unwrap(), Some(lock));
    assert_eq!(dst.get("data/ab/big").unwrap(), big);
    let at = 5 * 1024 * 1024 - 10;
    assert_eq!(
        dst.get_range("data/ab/big", at as u64, 20).unwrap(),
        &big[at..at + 20]
    );
    assert!(matches!(
        dst.get_range("data/ab/big", big.len() as u64 - 5, 10),
        Err(coffer_store::Error::Truncated { .. })
    ));
    let v = dst.versions("data/ab/big").unwrap().remove(0);
    let e = dst
        .delete_version("data/ab/big", &v)
        .unwrap_err()
        .to_string();
    assert!(e.contains("refused"), "{e}");
    // With a rate limit the pieces wait for their tokens.
    let mut cfg = moto.config("coffer-parts");
    cfg.prefix = "slow/".into();
    cfg.part_size = 5 * 1024 * 1024;
    let slow = S3Store::open(cfg).unwrap();
    let mut limit = TokenBucket::new(8 * 1024 * 1024);
    let t0 = std::time::Instant::now();
    mirror(&src, &slow, None, &mut limit, &mut |_| {}).unwrap();
    // 12 MiB at 8 MiB/s with an 8 MiB burst: at least half a second.
    assert!(t0.elapsed().as_secs_f64() > 0.5, "{:?}", t0.elapsed());
}

#[test]
fn the_sync_store_works_inside_a_tokio_runtime() {
    let moto = Moto::start();
    moto.bucket("coffer-rt", false);
    let mut cfg = moto.config("coffer-rt");
    cfg.prefix = "p/".into();
    let store = Arc::new(S3Store::open(cfg).unwrap());
    // The BlobStore contract, from a plain thread.
    store.put("data/ab/abc", b"hello world").unwrap();
    assert!(matches!(
        store.put("data/ab/abc", b"other"),
        Err(coffer_store::Error::AlreadyExists { .. })
    ));
    assert_eq!(store.get("data/ab/abc").unwrap(), b"hello world");
    assert_eq!(store.get_range("data/ab/abc", 6, 5).unwrap(), b"world");
    assert!(store.get_range("data/ab/abc", 11, 0).unwrap().is_empty());
    assert!(matches!(
        store.get_range("data/ab/abc", 6, 6),
        Err(coffer_store::Error::Truncated { .. })
    ));
    assert_eq!(store.size("data/ab/abc").unwrap(), 11);
    assert!(matches!(
        store.get("nope"),
        Err(coffer_store::Error::NotFound { .. })
    ));
    assert!(matches!(
        store.size("nope"),
        Err(coffer_store::Error::NotFound { .. })
    ));
    assert!(store.put("../x", b"x").is_err());
    assert_eq!(
        store.describe(),
        format!("s3://coffer-rt/p/ ({})", moto.endpoint())
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // From spawn_blocking.
    let s = store.clone();
    let listed = rt.block_on(async {
        tokio::task::spawn_blocking(move || {
            s.put("snapshots/1", b"s").unwrap();
            s.list("").unwrap()
        })
        .await
        .unwrap()
    });
    assert_eq!(listed, vec!["data/ab/abc", "snapshots/1"]);
    // From async code on a runtime thread, where block_on would panic.
    let s = store.clone();
    let got = rt.block_on(async move { s.get("snapshots/1").unwrap() });
    assert_eq!(got, b"s");
    // From a thread that entered the runtime.
    {
        let _entered = rt.enter();
        assert_eq!(store.list("snapshots/").unwrap(), vec!["snapshots/1"]);
        store.delete("snapshots/1").unwrap();
        store.delete("snapshots/1").unwrap();
        assert!(store.list("snapshots/").unwrap().is_empty());
    }
    // Dropped inside a runtime, it does not panic either.
    let s = Arc::into_inner(store).unwrap();
    rt.block_on(async move { drop(s) });
}
