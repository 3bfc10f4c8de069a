//! Offsite replication between real appliances: `cofferd` instances on
//! loopback, TLS with pinned certificates, pairing, replication after a
//! backup, a receiver killed mid-transfer (a separate `cofferd` process,
//! SIGKILL) and the resumed transfer, and a restore on a third appliance
//! from the offsite copy with the passphrase alone.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{Client, TestDaemon, asset, fresh, wait_job};
use serde_json::{Value, json};

fn wait(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn job(c: &mut Client, id: &Value) -> Value {
    c.ok("job_get", json!({ "id": id }))
}

fn replicate_jobs(c: &mut Client) -> Vec<Value> {
    common::jobs(c)
        .into_iter()
        .filter(|j| j["kind"] == json!("replicate"))
        .collect()
}

/// Every object file under a store directory, with its blake3.
fn objects(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for prefix in ["config", "keys", "data", "index", "snapshots"] {
        let p = dir.join(prefix);
        if p.is_file() {
            out.push((
                prefix.to_string(),
                blake3::hash(&std::fs::read(&p).unwrap())
                    .to_hex()
                    .to_string(),
            ));
            continue;
        }
        let mut stack = vec![p];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd {
                let e = e.unwrap().path();
                if e.is_dir() {
                    stack.push(e);
                } else if !e.file_name().unwrap().to_string_lossy().starts_with('.') {
                    let rel = e.strip_prefix(dir).unwrap().display().to_string();
                    out.push((
                        rel,
                        blake3::hash(&std::fs::read(&e).unwrap())
                            .to_hex()
                            .to_string(),
                    ));
                }
            }
        }
    }
    out.sort();
    out
}

/// Copies a store's objects (not its catalog).
fn copy_tree(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with("catalog.db") {
            continue;
        }
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

fn fingerprint(c: &mut Client) -> String {
    listing(c)["identity"]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Lets the appliance presenting `fp` push to `d` as remote `name`
/// (inbound only: no address).
fn allow_pushes(d: &TestDaemon, c: &mut Client, secret: &[u8], name: &str, fp: &str) {
    fresh(d, c, secret);
    c.ok(
        "remote_add",
        json!({"remote": {"name": name, "kind": "appliance", "fingerprint": fp}}),
    );
}

/// Adds the offsite appliance at `addr`, pinned to `fp`, to `d` as `offsite`.
fn add_offsite(d: &TestDaemon, c: &mut Client, secret: &[u8], addr: &str, fp: &str) {
    fresh(d, c, secret);
    c.ok(
        "remote_add",
        json!({"remote": {"name": "offsite", "kind": "appliance", "address": addr, "fingerprint": fp}}),
    );
}

fn listing(c: &mut Client) -> Value {
    c.ok("remote_list", Value::Null)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn two_appliances_pair_replicate_after_backup_and_a_third_restores_from_the_copy() {
    let a = TestDaemon::start();
    let b = TestDaemon::start_with(|c| {
        c.auth.session_idle = coffer_types::api::Duration(7 * 86_400);
        c.replication.listen = Some("127.0.0.1:0".into());
    });
    let (mut ca, sa) = a.admin();
    let (mut cb, sb) = b.admin();
    let b_addr = b
        .running
        .as_ref()
        .unwrap()
        .replication_address()
        .unwrap()
        .to_string();
    let b_fp = fingerprint(&mut cb);
    let a_fp = fingerprint(&mut ca);
    assert_eq!(a_fp, a.running.as_ref().unwrap().replication_fingerprint());
    assert_ne!(a_fp, b_fp);

    // Adding needs fresh MFA (the login's lasts minutes); the probe shows
    // what B presents, unpinned.
    a.clock.advance(10 * common::MINUTE);
    ca.fails(
        "remote_add",
        json!({"remote": {"name": "offsite", "kind": "appliance", "address": b_addr}}),
        "fresh_mfa_required",
    );
    fresh(&a, &mut ca, &sa);
    let added = ca.ok(
        "remote_add",
        json!({"remote": {"name": "offsite", "kind": "appliance", "address": b_addr}}),
    );
    assert_eq!(added["theirs"], json!(b_fp), "{added}");
    assert_eq!(added["paired"], json!(false));
    // Not paired yet: a replication fails and says so; nothing is sent.
    let id = ca.ok("replicate_run", json!({"remote": "offsite"}))["job"].clone();
    let j = wait_job(&mut ca, &id);
    assert_eq!(j["status"], json!("failed"), "{j}");
    assert!(j["messages"].to_string().contains("not paired"), "{j}");
    // A wrong fingerprint is refused; the right one pins.
    fresh(&a, &mut ca, &sa);
    let wrong = "00".repeat(32);
    let e = ca.fails(
        "remote_pair",
        json!({"name": "offsite", "fingerprint": wrong}),
        "invalid",
    );
    assert!(e.contains("not the"), "{e}");
    fresh(&a, &mut ca, &sa);
    let p = ca.ok(
        "remote_pair",
        json!({"name": "offsite", "fingerprint": b_fp}),
    );
    assert_eq!(p["paired"], json!(true), "{p}");
    assert_eq!(listing(&mut ca)["remotes"][0]["fingerprint"], json!(b_fp));

    // B has not pinned A: the handshake fails, the job fails with the
    // reason, an alert is raised, A's store is untouched.
    let before = objects(&a.dir.path().join("store"));
    let id = ca.ok("replicate_run", json!({"remote": "offsite"}))["job"].clone();
    let j = wait_job(&mut ca, &id);
    assert_eq!(j["status"], json!("failed"), "{j}");
    assert!(j["messages"].to_string().contains("offsite"), "{j}");
    let alerts = ca.ok("alert_list", json!({}));
    assert!(
        alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["kind"] == json!("replication-failed")),
        "{alerts}"
    );
    assert_eq!(objects(&a.dir.path().join("store")), before);
    let audit = cb.ok("audit_list", json!({"filter": {"action": "replication."}}));
    assert!(audit.to_string().contains("refused"), "{audit}");

    // B pins A (inbound only: no address).
    allow_pushes(&b, &mut cb, &sb, "site-a", &a_fp);

    // A profile that replicates: a good backup queues the replication.
    let (src, mut prof) = common::add_replicated_asset(&mut ca, a.dir.path(), "offsite");
    let status = ca.ok("replicate_status", Value::Null);
    assert_eq!(
        status["lag"][0]["breached"],
        json!(false),
        "no backup yet: {status}"
    );
    let bid = ca.ok("job_run", json!({"asset": "web-01", "level": "full"}))["job"].clone();
    assert_eq!(wait_job(&mut ca, &bid)["status"], json!("success"));
    let mut rj = Value::Null;
    wait("the replication after the backup", 120, || {
        let done: Vec<_> = replicate_jobs(&mut ca)
            .into_iter()
            .filter(|j| j["identity"] == json!("scheduler") && j["status"] == json!("success"))
            .collect();
        rj = done.last().cloned().unwrap_or(Value::Null);
        !done.is_empty()
    });
    let r = &rj["replication"];
    assert!(r["sent"].as_u64().unwrap() > 3, "{rj}");
    assert_eq!(r["verified"], r["sent"], "{rj}");
    assert_eq!(r["mismatched"], json!(0));
    assert_eq!(rj["remote"], json!("offsite"));
    // The copy at B is A's store object for object (ciphertext only).
    let a_id = common::store_id(&a);
    let replica = b.dir.path().join("replicas").join(&a_id);
    assert_eq!(objects(&replica), objects(&a.dir.path().join("store")));
    assert!(!replica.join("catalog.db").exists());
    let status = ca.ok("replicate_status", Value::Null);
    assert_eq!(status["lag"][0]["breached"], json!(false), "{status}");
    assert!(status["lag"][0]["newest_copy"].is_string(), "{status}");
    assert!(status["remotes"][0]["last_success"].is_string(), "{status}");
    let alerts = ca.ok("alert_list", json!({}));
    assert!(
        !alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["kind"] == json!("replication-failed")),
        "a good run clears the failure: {alerts}"
    );

    // B keeps A's copy bound to A (remote site-a).
    let held = &listing(&mut cb)["replicas"];
    assert_eq!(held[0]["store"], json!(a_id), "{held}");
    assert_eq!(held[0]["owner"], json!("site-a"), "{held}");
    assert_eq!(held[0]["fingerprint"], json!(a_fp), "{held}");
    assert!(held[0]["objects"].as_u64().unwrap() > 3, "{held}");

    // A restore drill from the offsite copy: pulled from B into the
    // drill's sandbox, restored with A's keys, every file verified.
    let id = ca.ok(
        "drill_run",
        json!({"asset": "web-01", "from": "remote", "remote": "offsite"}),
    )["job"]
        .clone();
    let j = wait_job(&mut ca, &id);
    assert_eq!(j["status"], json!("success"), "{j}");
    assert_eq!(j["remote"], json!("offsite"), "{j}");
    let drill = &ca.ok("drill_list", json!({"asset": "web-01"}))[0];
    assert_eq!(drill["result"], json!("pass"), "{drill}");
    assert_eq!(drill["source"], json!("remote"));
    assert_eq!(drill["files"], json!(2));
    let copy = drill["copy"].as_str().unwrap();
    assert!(
        copy.contains(&format!("remote 'offsite' (appliance at {b_addr})")),
        "{copy}"
    );
    assert!(copy.contains(&a_id), "{copy}");
    // A drill from a remote names it; a drill from disk names none.
    ca.fails(
        "drill_run",
        json!({"asset": "web-01", "from": "remote"}),
        "invalid",
    );
    ca.fails(
        "drill_run",
        json!({"asset": "web-01", "remote": "offsite"}),
        "invalid",
    );
    ca.fails(
        "drill_run",
        json!({"asset": "web-01", "from": "remote", "remote": "nowhere"}),
        "not_found",
    );
    // Verification of the copy: read back whole and authenticated.
    let v = ca.ok("verify_run", json!({"what": "remote", "name": "offsite"}));
    let j = wait_job(&mut ca, &v["jobs"][0]);
    assert_eq!(j["status"], json!("success"), "{j}");
    let msg = j["messages"].to_string();
    assert!(msg.contains("holds 1 of the store's 1 snapshots"), "{msg}");
    assert!(msg.contains("read and authenticated"), "{msg}");
    // Bit rot in B's copy: the read-back finds it, fails and alerts; so
    // does a drill from the copy. The scratch copies are gone after.
    let data = replica.join("data");
    let sub = std::fs::read_dir(&data)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let victim = std::fs::read_dir(&sub)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let good = std::fs::read(&victim).unwrap();
    // Every byte after the container's header flipped: no chunk in it
    // authenticates any more.
    let mut bad = good.clone();
    for b in &mut bad[64..] {
        *b ^= 0x33;
    }
    std::fs::write(&victim, &bad).unwrap();
    let v = ca.ok("verify_run", json!({"what": "remote"}));
    assert_eq!(v["jobs"].as_array().unwrap().len(), 1, "{v}");
    let j = wait_job(&mut ca, &v["jobs"][0]);
    assert_eq!(j["status"], json!("failed"), "{j}");
    assert!(j["messages"].to_string().contains("container"), "{j}");
    let alerts = ca.ok("alert_list", json!({})).to_string();
    assert!(alerts.contains("remote:offsite"), "{alerts}");
    let id = ca.ok(
        "drill_run",
        json!({"asset": "web-01", "from": "remote", "remote": "offsite"}),
    )["job"]
        .clone();
    assert_eq!(wait_job(&mut ca, &id)["status"], json!("failed"));
    let drill = &ca.ok("drill_list", json!({"asset": "web-01"}))[0];
    assert_eq!(drill["result"], json!("fail"), "{drill}");
    std::fs::write(&victim, &good).unwrap();
    let state = a.dir.path().join("state");
    let leftovers: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("verify-remote-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(
        std::fs::read_dir(state.join("drills")).unwrap().count(),
        0,
        "the drill sandboxes are removed"
    );

    // Another appliance B is paired with, holding a clone of A's store
    // (same store id), cannot write into A's copy at B.
    let store_copy = tempfile::tempdir().unwrap();
    copy_tree(&a.dir.path().join("store"), store_copy.path());
    let a_pass = a.dir.path().join("passphrase");
    let impostor = TestDaemon::start_with(|c| {
        c.auth.session_idle = coffer_types::api::Duration(7 * 86_400);
        c.store.path = store_copy.path().to_path_buf();
        c.store.passphrase_file = Some(a_pass.clone());
    });
    let (mut ci, si) = impostor.admin();
    let copy_id = coffer_store::StoreConfig::read(&coffer_store::DirStore::new(store_copy.path()))
        .unwrap()
        .store_id
        .0;
    assert_eq!(hex::encode(copy_id), a_id);
    let i_fp = fingerprint(&mut ci);
    allow_pushes(&b, &mut cb, &sb, "impostor", &i_fp);
    add_offsite(&impostor, &mut ci, &si, &b_addr, &b_fp);
    // The clone gains objects B's copy lacks.
    let evil = impostor.dir.path().join("evil");
    std::fs::create_dir_all(&evil).unwrap();
    std::fs::write(evil.join("payload"), b"not A's data").unwrap();
    ci.ok("asset_add", json!({"asset": asset("evil", &evil, None)}));
    let bid = ci.ok("job_run", json!({"asset": "evil", "level": "full"}))["job"].clone();
    assert_eq!(wait_job(&mut ci, &bid)["status"], json!("success"));
    assert_ne!(objects(store_copy.path()), objects(&replica));
    let before = objects(&replica);
    let id = ci.ok("replicate_run", json!({"remote": "offsite"}))["job"].clone();
    let j = wait_job(&mut ci, &id);
    assert_eq!(j["status"], json!("failed"), "{j}");
    assert!(
        j["messages"]
            .to_string()
            .contains("belongs to remote 'site-a'"),
        "{j}"
    );
    assert_eq!(objects(&replica), before, "A's copy is untouched");
    let audit = cb.ok(
        "audit_list",
        json!({"filter": {"action": "replication.receive"}}),
    );
    assert!(audit.to_string().contains("belongs to remote"), "{audit}");
    drop(impostor);

    // Again: nothing new, nothing sent.
    let id = ca.ok("replicate_run", json!({"remote": "offsite"}))["job"].clone();
    let j = wait_job(&mut ca, &id);
    assert_eq!(j["status"], json!("success"), "{j}");
    assert_eq!(j["replication"]["sent"], json!(0), "{j}");
    assert_eq!(
        j["replication"]["skipped"], j["replication"]["objects"],
        "{j}"
    );

    // On a calendar of its own: a backup no longer queues a replication;
    // the calendar does (changing it needs fresh MFA, as a schedule does).
    let scheduled = |c: &mut Client| {
        replicate_jobs(c)
            .into_iter()
            .filter(|j| j["identity"] == json!("scheduler"))
            .count()
    };
    let before = scheduled(&mut ca);
    prof["replicate_schedule"] = json!("hourly");
    a.clock.advance(10 * common::MINUTE);
    ca.fails(
        "profile_update",
        json!({ "profile": prof }),
        "fresh_mfa_required",
    );
    fresh(&a, &mut ca, &sa);
    ca.ok("profile_update", json!({ "profile": prof }));
    let status = ca.ok("replicate_status", Value::Null);
    assert_eq!(status["next"][0]["profile"], json!("p"), "{status}");
    assert_eq!(status["next"][0]["remotes"], json!(["offsite"]), "{status}");
    std::fs::write(src.join("later.txt"), b"after the calendar change").unwrap();
    let bid = ca.ok(
        "job_run",
        json!({"asset": "web-01", "level": "incremental"}),
    )["job"]
        .clone();
    assert_eq!(wait_job(&mut ca, &bid)["status"], json!("success"));
    common::wait_job_audited(&mut ca, &bid);
    assert_eq!(
        scheduled(&mut ca),
        before,
        "no replication after the backup"
    );
    // The hour turns (the calendar's state is written at the scheduler's
    // first pass after the change; until then the clock keeps turning).
    let mut turned = 0;
    wait("the hourly replication", 120, || {
        if scheduled(&mut ca) > before {
            return true;
        }
        if turned < 3 {
            a.clock.advance(common::HOUR);
            turned += 1;
        }
        false
    });
    let audit = ca.ok("audit_list", json!({"filter": {"action": "job.queue"}}));
    assert!(
        audit
            .to_string()
            .contains("replication of profile p due at"),
        "{audit}"
    );
    wait("the scheduled replication to finish", 120, || {
        replicate_jobs(&mut ca)
            .iter()
            .filter(|j| j["identity"] == json!("scheduler"))
            .all(|j| j["status"] == json!("success"))
    });
    assert_eq!(objects(&replica), objects(&a.dir.path().join("store")));

    // The lag alert: more than a day after the backup, nothing newer
    // reached B. (Backups carry the wall clock's time, which may be days
    // or weeks ahead of the test's: the clock moves to two days past it.)
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    a.clock
        .set(real.max(cofferd::Clock::now_ms(a.clock.as_ref())) + 2 * common::DAY);
    // The session idled out over the jump: log in again.
    let code = a.code(&sa);
    ca.login("admin", "correct horse battery", &code);
    wait("the lag alert", 60, || {
        ca.ok("alert_list", json!({}))
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["kind"] == json!("replica-lag") && x["subject"] == json!("web-01@offsite"))
    });

    // A third appliance, paired with B, restores A's snapshot from B's
    // copy with A's passphrase alone.
    let c3 = TestDaemon::start();
    let (mut cc, sc) = c3.admin();
    let c_fp = fingerprint(&mut cc);
    allow_pushes(&b, &mut cb, &sb, "new-site", &c_fp);
    add_offsite(&c3, &mut cc, &sc, &b_addr, &b_fp);
    let pass = std::fs::read_to_string(a.dir.path().join("passphrase")).unwrap();
    let target = c3.dir.path().join("restored");
    let id = common::remote_restore(&mut cc, "offsite", &a_id, &target, pass.trim_end());
    let j = wait_job(&mut cc, &id);
    assert_eq!(j["status"], json!("success"), "{j}");
    assert_eq!(j["kind"], json!("remote-restore"));
    common::assert_sample_restored(&target, &src);
    // The passphrase is in no log.
    let logs = cc.ok("job_log", json!({"id": id}));
    assert!(!logs.to_string().contains(pass.trim_end()));
    let audit = cc.ok("audit_list", json!({"filter": {}}));
    assert!(!audit.to_string().contains(pass.trim_end()));
    // A wrong passphrase: the job fails and says why.
    let id = common::remote_restore(
        &mut cc,
        "offsite",
        &a_id,
        &c3.dir.path().join("again"),
        "wrong",
    );
    let j = wait_job(&mut cc, &id);
    assert_eq!(j["status"], json!("failed"), "{j}");
    assert!(j["messages"].to_string().contains("passphrase"), "{j}");
}

/// A `cofferd` process (so it can be killed) with a replication endpoint.
struct Proc {
    dir: PathBuf,
    child: Child,
}

impl Proc {
    fn start(dir: &Path, port: u16) -> Proc {
        let mut c = cofferd::Config::development(dir);
        c.replication.listen = Some(format!("127.0.0.1:{port}"));
        c.auth.session_idle = coffer_types::api::Duration(86_400);
        c.panel.backend = cofferd::config::PanelBackend::None;
        let path = dir.join("cofferd.toml");
        std::fs::write(&path, toml::to_string(&c).unwrap()).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_cofferd"))
            .arg("--config")
            .arg(&path)
            .env("COFFER_LOG", "warn")
            .spawn()
            .unwrap();
        let sock = dir.join("control.sock");
        wait("cofferd to listen", 60, || {
            std::os::unix::net::UnixStream::connect(&sock).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Proc {
            dir: dir.to_path_buf(),
            child,
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(self.dir.join("control.sock"));
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn now_code(secret: &[u8]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    coffer_auth::totp::code_at(secret, now)
}

#[test]
fn a_receiver_killed_mid_transfer_resumes_where_it_stopped_and_verifies() {
    let bdir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut b = Proc::start(bdir.path(), port);
    let mut cb = Client::connect(&bdir.path().join("control.sock"));
    let e = cb.ok(
        "bootstrap",
        json!({"user": "admin", "password": "correct horse battery"}),
    );
    let sb = coffer_auth::totp::base32_decode(e["secret_base32"].as_str().unwrap()).unwrap();
    cb.login("admin", "correct horse battery", &now_code(&sb));
    let b_fp = cb.ok("remote_list", Value::Null)["identity"]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();

    let mut a = TestDaemon::start();
    let (mut ca, sa) = a.admin();
    let a_fp = fingerprint(&mut ca);
    // B takes A's pushes; the real clock's TOTP step is used once, so the
    // login's code cannot serve here: wait for the next step if needed.
    let code = {
        let first = now_code(&sb);
        let mut c = first.clone();
        wait("a new TOTP step", 40, || {
            c = now_code(&sb);
            c != first
        });
        c
    };
    cb.mfa = Some(code);
    cb.ok(
        "remote_add",
        json!({"remote": {"name": "site-a", "kind": "appliance", "fingerprint": a_fp}}),
    );
    // A: a big asset, and a bandwidth limit so the transfer takes a while.
    let src = a.dir.path().join("big");
    std::fs::create_dir_all(&src).unwrap();
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let noise: Vec<u8> = (0..24 * 1024 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(src.join("noise.bin"), &noise).unwrap();
    ca.ok("asset_add", json!({"asset": asset("big", &src, None)}));
    let bid = ca.ok("job_run", json!({"asset": "big", "level": "full"}))["job"].clone();
    assert_eq!(wait_job(&mut ca, &bid)["status"], json!("success"));
    fresh(&a, &mut ca, &sa);
    ca.ok(
        "remote_add",
        json!({"remote": {"name": "offsite", "kind": "appliance",
            "address": format!("127.0.0.1:{port}"), "fingerprint": b_fp, "bandwidth_mb_s": 4}}),
    );
    let id = ca.ok("replicate_run", json!({"remote": "offsite"}))["job"].clone();
    // Kill B once a good part has gone across.
    wait("bytes on the link", 60, || {
        job(&mut ca, &id)["progress"]["bytes"].as_u64().unwrap_or(0) > 6_000_000
    });
    b.kill();
    let j = wait_job(&mut ca, &id);
    assert_eq!(j["status"], json!("failed"), "{j}");
    assert!(j["messages"].to_string().contains("offsite"), "{j}");
    // How far it got is recorded, not lost with the failure.
    assert!(
        j["replication"]["bytes_sent"].as_u64().unwrap() > 6_000_000,
        "{j}"
    );
    let a_id = common::store_id(&a);
    let partial = bdir.path().join("replicas").join(&a_id).join(".partial");
    assert!(partial.exists(), "the interrupted object is kept to resume");

    // B comes back; the next run resumes and verifies everything.
    let _b2 = Proc::start(bdir.path(), port);
    let id = ca.ok("replicate_run", json!({"remote": "offsite"}))["job"].clone();
    let j = wait_job(&mut ca, &id);
    assert_eq!(j["status"], json!("success"), "{j}");
    let r = &j["replication"];
    assert!(r["bytes_resumed"].as_u64().unwrap() > 0, "{j}");
    assert_eq!(r["verified"], r["sent"], "{j}");
    assert_eq!(r["mismatched"], json!(0), "{j}");
    assert_eq!(
        objects(&bdir.path().join("replicas").join(&a_id)),
        objects(&a.dir.path().join("store"))
    );

    // The sender shut down mid-transfer: the job ends interrupted, and the
    // next start queues it again once; it resumes and verifies.
    let more: Vec<u8> = noise[..12 * 1024 * 1024].iter().map(|b| b ^ 0x5a).collect();
    std::fs::write(src.join("more.bin"), more).unwrap();
    let bid = ca.ok("job_run", json!({"asset": "big", "level": "incremental"}))["job"].clone();
    assert_eq!(wait_job(&mut ca, &bid)["status"], json!("success"));
    let id = ca.ok("replicate_run", json!({"remote": "offsite"}))["job"].clone();
    wait("bytes on the link", 60, || {
        job(&mut ca, &id)["progress"]["bytes"].as_u64().unwrap_or(0) > 3_000_000
    });
    a.stop();
    a.boot(None);
    let mut ca = Client::connect(&a.socket());
    a.next_step();
    ca.login("admin", "correct horse battery", &a.code(&sa));
    let j = job(&mut ca, &id);
    assert_eq!(j["status"], json!("interrupted"), "{j}");
    let mut retry = Value::Null;
    wait("the requeued replication", 120, || {
        retry = replicate_jobs(&mut ca)
            .into_iter()
            .find(|j| j["attempt"] == json!(2))
            .unwrap_or(Value::Null);
        retry["status"] == json!("success")
    });
    let r = &retry["replication"];
    assert!(r["bytes_resumed"].as_u64().unwrap() > 0, "{retry}");
    assert_eq!(r["verified"], r["sent"], "{retry}");
    assert_eq!(
        objects(&bdir.path().join("replicas").join(&a_id)),
        objects(&a.dir.path().join("store"))
    );
}
