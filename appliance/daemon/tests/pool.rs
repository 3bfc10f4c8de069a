//! A store on a disk pool, served by cofferd: backups land on the pool's
//! members (erasure coded), a restore drill cannot write to the store or
//! the members, a damaged shard is found and healed by a scrub job (on
//! demand and on the `[verify] pool` calendar), a pulled member raises
//! `pool-degraded` and shows in the metrics.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use serde_json::json;

const PASSPHRASE: &str = "pool store passphrase";

/// Three member directories, a pool over them, a store on the pool and
/// its directory (catalog and pool link) where the daemon's config says.
fn pool_store(root: &Path) -> Vec<PathBuf> {
    let members: Vec<PathBuf> = (0..3)
        .map(|i| {
            let p = root.join(format!("disk{i}"));
            std::fs::create_dir_all(&p).unwrap();
            p
        })
        .collect();
    let meta = coffer_pool::admin::create(
        &members,
        &coffer_pool::admin::CreateOptions {
            name: "tank".into(),
            geometry: None,
            allow_same_device: true,
            block_size: None,
        },
    )
    .unwrap();
    let pool = coffer_pool::Pool::open(&members[0], &coffer_pool::OpenOptions::default()).unwrap();
    let pass = coffer_keys::Passphrase::new(PASSPHRASE.as_bytes().to_vec()).unwrap();
    coffer_store::Repo::init(
        Arc::new(pool),
        &pass,
        coffer_store::InitOptions {
            kdf: coffer_keys::KdfParams {
                m_kib: 64,
                t: 1,
                p: 1,
            },
            ..coffer_store::InitOptions::default()
        },
    )
    .unwrap();
    let store = root.join("store");
    std::fs::create_dir_all(&store).unwrap();
    coffer_pool::PoolLink::write(&store, &meta).unwrap();
    coffer_catalog::Catalog::open(&store.join("catalog.db")).unwrap();
    let pf = root.join("passphrase");
    std::fs::write(&pf, PASSPHRASE).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pf, std::fs::Permissions::from_mode(0o600)).unwrap();
    members
}

/// Every shard file on a member, largest first.
fn shards(member: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![member.join("objects")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).unwrap().len()));
    out
}

fn metrics(addr: std::net::SocketAddr, token: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(
        format!("GET /metrics HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

#[test]
fn a_store_on_a_pool_is_served_drilled_scrubbed_and_watched() {
    let dir = tempfile::tempdir().unwrap();
    let members = pool_store(dir.path());
    let d = TestDaemon::start_in(dir, false, |c| {
        c.auth.session_idle = coffer_types::api::Duration(7 * 86_400);
        c.verify.pool = Some("*-*-* 04:00".into());
        c.metrics.listen = Some("127.0.0.1:0".into());
        c.health.check_every = coffer_types::api::Duration(1);
    });
    let (mut admin, secret) = d.admin();
    let src = sample_tree(d.dir.path());
    admin.ok("asset_add", json!({"asset": asset("web", &src, None)}));
    d.clock.set(MONDAY + HOUR);
    let j = admin.ok("job_run", json!({"asset": "web", "level": "full"}));
    assert_eq!(wait_job(&mut admin, &j["job"])["status"], json!("success"));
    // The objects are on the members, none in the store directory.
    for m in &members {
        assert!(!shards(m).is_empty(), "{} holds no shard", m.display());
    }
    assert!(!d.dir.path().join("store/data").exists());

    // A drill of the pool-backed store: passes, with the store directory's
    // link and the three members read-only in its namespace.
    let j = admin.ok("drill_run", json!({"asset": "web"}));
    assert_eq!(wait_job(&mut admin, &j["job"])["status"], json!("success"));
    let drill = &admin.ok("drill_list", json!({"asset": "web"}))[0];
    assert_eq!(drill["result"], json!("pass"), "{drill}");
    assert_eq!(drill["files"], json!(2));
    let iso = drill["isolation"].as_str().unwrap();
    assert!(iso.contains("4 store path(s) read-only"), "{iso}");

    // A damaged shard: the on-demand scrub finds it, rewrites it from
    // parity and ends `warning`; the next scrub finds nothing.
    let victim = shards(&members[1]).remove(0);
    let mut b = std::fs::read(&victim).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x5a;
    std::fs::write(&victim, &b).unwrap();
    let v = admin.ok("verify_run", json!({"what": "pool"}));
    let done = wait_job(&mut admin, &v["jobs"][0]);
    assert_eq!(done["status"], json!("warning"), "{done}");
    let msg = done["messages"].to_string();
    assert!(msg.contains("1 damaged, 1 rewritten from parity"), "{msg}");
    assert_ne!(
        std::fs::read(&victim).unwrap(),
        b,
        "the shard was rewritten"
    );
    // 04:00: the calendar's scrub, as the scheduler, finds it sound.
    d.clock.set(MONDAY + 4 * HOUR);
    let mut sched = None;
    d.wait_for("the scheduled scrub", || {
        sched = jobs(&mut admin).into_iter().find(|j| {
            j["kind"] == json!("verify")
                && j["identity"] == json!("scheduler")
                && j["status"] != json!("queued")
                && j["status"] != json!("running")
        });
        sched.is_some()
    });
    let sched = sched.unwrap();
    assert_eq!(sched["status"], json!("success"), "{sched}");
    assert!(
        sched["messages"]
            .to_string()
            .contains("0 missing, 0 damaged"),
        "{sched}"
    );

    // A member pulled: the health monitor takes it out and raises
    // `pool-degraded`; the metrics show the pool degraded.
    let moved = d.dir.path().join("pulled");
    std::fs::rename(&members[2], &moved).unwrap();
    d.wait_for("the pool-degraded alert", || {
        admin
            .ok("alert_list", json!({}))
            .to_string()
            .contains("pool-degraded")
    });
    let alerts = admin.ok("alert_list", json!({})).to_string();
    assert!(
        alerts.contains("disk pool 'tank' (2+1) is degraded"),
        "{alerts}"
    );
    assert!(alerts.contains("is missing"), "{alerts}");
    fresh(&d, &mut admin, &secret);
    let t = admin.ok(
        "token_create",
        json!({"name": "prometheus", "roles": ["administrator"]}),
    );
    let addr = d.running.as_ref().unwrap().metrics_address().unwrap();
    let page = metrics(addr, t["token"].as_str().unwrap());
    assert!(
        page.contains("coffer_pool_health{pool=\"tank\"} 1"),
        "{page}"
    );
    assert!(page.contains("state=\"missing\"} 0"), "{page}");
    // Still readable from two of three: a drill passes degraded.
    let j = admin.ok("drill_run", json!({"asset": "web"}));
    assert_eq!(wait_job(&mut admin, &j["job"])["status"], json!("success"));
}

#[test]
fn a_store_not_on_a_pool_refuses_a_scrub_with_the_reason() {
    let d = TestDaemon::start();
    let (mut admin, _) = d.admin();
    let m = admin.fails("verify_run", json!({"what": "pool"}), "invalid");
    assert!(m.contains("is not on a disk pool"), "{m}");
}
