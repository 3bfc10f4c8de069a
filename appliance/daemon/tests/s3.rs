//! Replication to S3 with Object Lock from the daemon, against a real S3
//! server (moto) on loopback: an S3 remote with sealed credentials, a
//! replication after a backup with every object locked, the lock refusing
//! deletion, a bucket without Object Lock refused before anything is
//! uploaded, refused credentials, and a new appliance restoring everything
//! from the bucket with the passphrase alone.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
#[path = "../../replicate/tests/common/moto.rs"]
#[allow(dead_code)]
mod moto;

use std::time::{Duration, Instant};

use coffer_replicate::s3::{LockMode, S3Store};
use coffer_store::BlobStore;
use common::{TestDaemon, fresh, wait_job};
use moto::Moto;
use serde_json::{Value, json};

const SECRET: &str = "wJalrXUtnFEMI-K7MDENG-bPxRfiCY";

fn s3_remote(name: &str, m: &Moto, bucket: &str, lock: &str) -> Value {
    json!({"remote": {"name": name, "kind": "s3", "s3": {
        "endpoint": m.endpoint(), "bucket": bucket, "lock": lock, "lock_days": 1,
        "access_key_id": "testing", "secret_access_key": SECRET}}})
}

#[test]
fn a_store_replicates_to_a_locked_bucket_and_restores_from_it_alone() {
    let m = Moto::start();
    m.bucket("coffer-vault", true);
    m.bucket("coffer-plain", false);
    let a = TestDaemon::start();
    let (mut ca, sa) = a.admin();
    fresh(&a, &mut ca, &sa);
    let added = ca.ok(
        "remote_add",
        s3_remote("vault", &m, "coffer-vault", "compliance"),
    );
    assert_eq!(added["paired"], json!(true), "{added}");
    fresh(&a, &mut ca, &sa);
    ca.ok(
        "remote_add",
        s3_remote("plain", &m, "coffer-plain", "compliance"),
    );
    // The secret is sealed: not in the listing, the catalog or the audit.
    let listing = ca.ok("remote_list", Value::Null);
    assert!(!listing.to_string().contains(SECRET), "{listing}");
    assert_eq!(
        listing["remotes"][1]["credentials"],
        json!("stored"),
        "{listing}"
    );
    let db = std::fs::read(a.dir.path().join("store/catalog.db")).unwrap();
    assert!(!db.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
    let audit = ca.ok("audit_list", json!({"filter": {}}));
    assert!(!audit.to_string().contains(SECRET));

    // A backup of an asset whose profile replicates to the bucket.
    let (src, _) = common::add_replicated_asset(&mut ca, a.dir.path(), "vault");
    let bid = ca.ok("job_run", json!({"asset": "web-01", "level": "full"}))["job"].clone();
    assert_eq!(wait_job(&mut ca, &bid)["status"], json!("success"));
    let start = Instant::now();
    let rj = loop {
        let jobs = common::jobs(&mut ca);
        if let Some(j) = jobs
            .iter()
            .find(|j| j["kind"] == json!("replicate") && j["remote"] == json!("vault"))
        {
            let j = wait_job(&mut ca, &j["id"]);
            break j;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no replication queued"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(rj["status"], json!("success"), "{rj}");
    let r = &rj["replication"];
    // Every store object, plus the catalog export.
    assert_eq!(
        r["sent"].as_u64().unwrap(),
        r["objects"].as_u64().unwrap() + 1,
        "{rj}"
    );
    assert_eq!(r["verified"], r["objects"], "{rj}");
    assert_eq!(r["mismatched"], json!(0));

    // Every object in the bucket is locked, COMPLIANCE, for a day.
    let id = common::store_id(&a);
    let mut cfg = m.config("coffer-vault");
    cfg.prefix = format!("{id}/");
    let bucket = S3Store::open(cfg).unwrap();
    let keys = bucket.list("").unwrap();
    assert!(keys.iter().any(|k| k.starts_with("catalog/")), "{keys:?}");
    let local = coffer_store::DirStore::new(a.dir.path().join("store"));
    for prefix in ["data/", "snapshots/", "index/", "keys/"] {
        for k in local.list(prefix).unwrap() {
            assert!(keys.contains(&k), "{k} missing from the bucket");
            let lock = bucket.retention(&k).unwrap().expect("locked");
            assert_eq!(lock.mode, LockMode::Compliance, "{k}");
            let wall = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            assert!(lock.retain_until_s > wall + 80_000, "{k}");
            assert_eq!(bucket.get(&k).unwrap(), local.get(&k).unwrap(), "{k}");
        }
    }
    let data = local.list("data/").unwrap();
    let version = bucket.versions(&data[0]).unwrap()[0].clone();
    let e = bucket
        .delete_version(&data[0], &version)
        .unwrap_err()
        .to_string();
    assert!(!e.is_empty());
    assert_eq!(bucket.get(&data[0]).unwrap(), local.get(&data[0]).unwrap());

    // A restore drill from the bucket (read in place, nothing staged) and
    // a read-back of the bucket's copy, both with the store's keys.
    let did = ca.ok(
        "drill_run",
        json!({"asset": "web-01", "from": "remote", "remote": "vault"}),
    )["job"]
        .clone();
    assert_eq!(wait_job(&mut ca, &did)["status"], json!("success"));
    let drill = &ca.ok("drill_list", json!({"asset": "web-01"}))[0];
    assert_eq!(drill["result"], json!("pass"), "{drill}");
    assert_eq!(drill["source"], json!("remote"));
    assert_eq!(drill["files"], json!(2));
    let copy = drill["copy"].as_str().unwrap();
    assert!(
        copy.contains("remote 'vault'") && copy.contains("coffer-vault"),
        "{copy}"
    );
    let v = ca.ok("verify_run", json!({"what": "remote", "name": "vault"}));
    let j = wait_job(&mut ca, &v["jobs"][0]);
    assert_eq!(j["status"], json!("success"), "{j}");
    assert!(
        j["messages"]
            .to_string()
            .contains("holds 1 of the store's 1 snapshots"),
        "{j}"
    );

    // A bucket without Object Lock is refused before anything goes up.
    let id2 = ca.ok("replicate_run", json!({"remote": "plain"}))["job"].clone();
    let j = wait_job(&mut ca, &id2);
    assert_eq!(j["status"], json!("failed"), "{j}");
    assert!(j["messages"].to_string().contains("Object Lock"), "{j}");
    assert!(m.keys("coffer-plain").is_empty());
    let alerts = ca.ok("alert_list", json!({}));
    assert!(
        alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["kind"] == json!("replication-failed") && x["subject"] == json!("plain")),
        "{alerts}"
    );

    // A new, empty appliance restores the snapshot from the bucket alone.
    let b = TestDaemon::start();
    let (mut cb, sb) = b.admin();
    fresh(&b, &mut cb, &sb);
    cb.ok(
        "remote_add",
        s3_remote("vault", &m, "coffer-vault", "compliance"),
    );
    let pass = std::fs::read_to_string(a.dir.path().join("passphrase")).unwrap();
    let target = b.dir.path().join("restored");
    let rid = common::remote_restore(&mut cb, "vault", &id, &target, pass.trim_end());
    let j = wait_job(&mut cb, &rid);
    assert_eq!(j["status"], json!("success"), "{j}");
    common::assert_sample_restored(&target, &src);
}

#[test]
fn refused_credentials_fail_the_job_with_the_reason_and_never_the_secret() {
    let m = Moto::start_checking_keys();
    let a = TestDaemon::start();
    let (mut ca, sa) = a.admin();
    fresh(&a, &mut ca, &sa);
    ca.ok(
        "remote_add",
        s3_remote("vault", &m, "coffer-vault", "compliance"),
    );
    let id = ca.ok("replicate_run", json!({"remote": "vault"}))["job"].clone();
    let j = wait_job(&mut ca, &id);
    assert_eq!(j["status"], json!("failed"), "{j}");
    let text = j.to_string();
    assert!(text.contains("credentials"), "{j}");
    assert!(!text.contains(SECRET), "{j}");
    let log = ca.ok("job_log", json!({"id": id}));
    assert!(!log.to_string().contains(SECRET));
    let alerts = ca.ok("alert_list", json!({}));
    assert!(!alerts.to_string().contains(SECRET));
}
