//! Retention through the daemon: prune after each backup, retention locks,
//! legal holds (security officer, fresh MFA), the trusted clock, gc and
//! its disposal certificate, key status; every step audited.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use cofferd::Clock;
use common::*;
use serde_json::{Value, json};

fn backup(c: &mut Client, asset: &str) -> String {
    let j = c.ok("job_run", json!({"asset": asset, "level": "full"}));
    let done = wait_job(c, &j["job"]);
    assert_eq!(done["status"], json!("success"), "{done}");
    done["snapshot"].as_str().unwrap().to_string()
}

fn snapshots(c: &mut Client, asset: &str) -> Vec<String> {
    c.ok("snapshot_list", json!({ "asset": asset }))
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

/// Waits for every queued or running job to end.
fn settle(c: &mut Client) {
    for j in jobs(c) {
        if matches!(j["status"].as_str(), Some("queued" | "running")) {
            wait_job(c, &j["id"]);
        }
    }
}

fn prune_now(c: &mut Client, asset: &str) -> Value {
    let j = c.ok("prune", json!({ "asset": asset }));
    let done = wait_job(c, &j["job"]);
    assert!(
        matches!(done["status"].as_str(), Some("success" | "warning")),
        "{done}"
    );
    done
}

fn audit_has(c: &mut Client, action: &str, result: &str) -> bool {
    c.ok("audit_list", json!({ "filter": { "action": action } }))
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["result"] == json!(result))
}

#[test]
fn locks_holds_and_the_trusted_clock_protect_snapshots_through_the_daemon() {
    let d = TestDaemon::start();
    let (mut admin, secret) = d.admin();
    let src = sample_tree(d.dir.path());
    // Data only the first snapshot has: gc frees it once that one goes.
    let unique: Vec<u8> = (0..400_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(src.join("only-first.bin"), unique).unwrap();
    let mut prof = profile("keep1", "Sun 02:00");
    prof["retention"] = json!({ "keep_last": 1 });
    admin.ok("profile_add", json!({ "profile": prof }));
    admin.ok(
        "asset_add",
        json!({"asset": asset("web", &src, Some("keep1"))}),
    );

    // A backup queues a prune of its asset by retention.
    let first = backup(&mut admin, "web");
    settle(&mut admin);
    assert!(
        jobs(&mut admin)
            .iter()
            .any(|j| j["kind"] == json!("prune") && j["status"] == json!("success")),
        "a prune ran after the backup"
    );

    // Lock the first snapshot for 30 days; it cannot be shortened.
    let until = MONDAY + 30 * DAY;
    let r = admin.ok(
        "lock_set",
        json!({"snapshot": &first[..12], "until_ms": until, "reason": "quarter close"}),
    );
    assert!(r["immutable_objects"].as_u64().unwrap() >= 3, "{r}");
    let m = admin.fails(
        "lock_set",
        json!({"snapshot": &first, "until_ms": MONDAY + DAY}),
        "forbidden",
    );
    assert!(m.contains("never shortened"), "{m}");
    let m = admin.fails(
        "lock_set",
        json!({"snapshot": &first, "until_ms": MONDAY - DAY}),
        "invalid",
    );
    assert!(m.contains("not in the future"), "{m}");

    // Moving the asset to a profile that keeps less is shortening its
    // retention: fresh MFA.
    let mut weak = profile("weak", "Sun 03:00");
    weak["retention"] = json!({ "keep_last": 0 });
    admin.ok("profile_add", json!({ "profile": weak }));
    d.clock.advance(20 * MINUTE);
    let m = admin.fails(
        "asset_update",
        json!({"asset": asset("web", &src, Some("weak"))}),
        "fresh_mfa_required",
    );
    assert!(m.contains("retention.shorten"), "{m}");
    // So is an import that replaces it with one in that profile.
    let csv = format!(
        "name,owner,criticality,sources,excludes,rpo,rto,profile\nweb,ops team,high,{},,1d,4h,weak\n",
        src.display()
    );
    let m = admin.fails(
        "asset_import",
        json!({"csv": csv, "replace": true}),
        "fresh_mfa_required",
    );
    assert!(m.contains("retention.shorten"), "{m}");

    // The next backup's prune keeps it (keep-last 1 alone would not).
    std::fs::remove_file(src.join("only-first.bin")).unwrap();
    let second = backup(&mut admin, "web");
    settle(&mut admin);
    assert_eq!(snapshots(&mut admin, "web").len(), 2);
    let plan = admin.ok("retention_show", json!({"asset": "web"}));
    let kept = &plan[0]["snapshots"][1];
    assert_eq!(kept["id"], json!(first));
    assert!(
        kept["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("locked until"),
        "{plan}"
    );

    // Deleting it by hand: fresh MFA first (the login's has gone stale),
    // then refused by the lock.
    d.clock.advance(20 * MINUTE);
    let m = admin.fails(
        "snapshot_delete",
        json!({"snapshot": &first}),
        "fresh_mfa_required",
    );
    assert!(!m.is_empty());
    fresh(&d, &mut admin, &secret);
    let m = admin.fails("snapshot_delete", json!({"snapshot": &first}), "forbidden");
    assert!(m.contains("retention-locked until"), "{m}");
    assert!(audit_has(&mut admin, "snapshot.delete", "denied"));

    // Legal holds are the security officer's, with fresh MFA.
    let m = admin.fails(
        "hold_set",
        json!({"asset": "web", "reason": "case 1"}),
        "forbidden",
    );
    assert!(m.contains("hold.manage"), "{m}");
    fresh(&d, &mut admin, &secret);
    let e = admin.ok(
        "user_add",
        json!({"name": "olga", "password": "a long enough password", "roles": ["security-officer"]}),
    );
    let osecret = coffer_auth::totp::base32_decode(e["secret_base32"].as_str().unwrap()).unwrap();
    let mut officer = d.client();
    d.next_step();
    officer.login("olga", "a long enough password", &d.code(&osecret));
    d.clock.advance(20 * MINUTE);
    officer.fails(
        "hold_set",
        json!({"asset": "web", "reason": "case 1"}),
        "fresh_mfa_required",
    );
    fresh(&d, &mut officer, &osecret);
    let h = officer.ok("hold_set", json!({"asset": "web", "reason": "case 1"}));
    let hold = h["hold"].as_i64().unwrap();
    // The officer rotates the data key by hand: generation 2.
    let k = officer.ok("key_rotate", Value::Null);
    assert_eq!(k["generation"], json!(2), "{k}");
    assert_eq!(
        officer.ok("hold_list", json!({})).as_array().unwrap().len(),
        1
    );

    // Someone sets the wall clock 400 days forward: no lock expires, and
    // an alert says so.
    d.clock.set_wall(d.clock.now_ms() + 400 * DAY);
    d.next_step();
    admin.login("admin", "correct horse battery", &d.code(&secret));
    d.next_step();
    officer.login("olga", "a long enough password", &d.code(&osecret));
    let clock = admin.ok("clock_show", Value::Null);
    assert!(clock["ahead_ms"].as_i64().unwrap() > 399 * DAY, "{clock}");
    assert!(
        clock["jump"].as_str().unwrap().contains("clock accept"),
        "{clock}"
    );
    let alerts = admin.ok("alert_list", json!({}));
    assert!(
        alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == json!("clock")),
        "{alerts}"
    );
    settle(&mut admin);
    prune_now(&mut admin, "web");
    assert!(snapshots(&mut admin, "web").contains(&first));

    // The officer accepts the new time (fresh MFA): the lock has ended,
    // but the hold still keeps everything.
    admin.fails("clock_accept", Value::Null, "forbidden");
    fresh(&d, &mut officer, &osecret);
    let c = officer.ok("clock_accept", Value::Null);
    assert_eq!(c["ahead_ms"], json!(0), "{c}");
    assert!(
        !admin
            .ok("alert_list", json!({}))
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == json!("clock") && a["cleared"].is_null()),
        "the clock alert cleared"
    );
    settle(&mut admin);
    prune_now(&mut admin, "web");
    assert!(snapshots(&mut admin, "web").contains(&first));

    // Released (fresh MFA): the next prune removes the first snapshot.
    d.clock.advance(20 * MINUTE);
    officer.fails("hold_release", json!({"id": hold}), "fresh_mfa_required");
    fresh(&d, &mut officer, &osecret);
    officer.ok("hold_release", json!({"id": hold}));
    fresh(&d, &mut officer, &osecret);
    officer.fails("hold_release", json!({"id": hold}), "forbidden");
    settle(&mut admin);
    prune_now(&mut admin, "web");
    let left = snapshots(&mut admin, "web");
    assert!(!left.contains(&first), "{left:?}");
    assert!(!left.is_empty());
    let _ = second;

    // gc frees it (compacting any container with a dead chunk: where the
    // packers put the first snapshot's chunks varies), files a disposal
    // certificate; key status for the auditor.
    let j = admin.ok("gc", json!({"compact_below_pct": 100}));
    let done = wait_job(&mut admin, &j["job"]);
    assert_eq!(done["status"], json!("success"), "{done}");
    let certs = admin.ok("disposal_list", Value::Null);
    let cert = &certs.as_array().unwrap()[0];
    assert!(
        cert["what"].as_str().unwrap().contains("container"),
        "{cert}"
    );
    assert_eq!(cert["digest"].as_str().unwrap().len(), 64);
    let keys = officer.ok("key_status", Value::Null);
    assert_eq!(keys["master_key_id"].as_str().unwrap().len(), 16, "{keys}");
    // The wall clock's 400 days passed the 90-day rotation: the scheduler
    // started generation 3 (audited).
    let gens: Vec<u64> = keys["data_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["generation"].as_u64().unwrap())
        .collect();
    assert_eq!(gens, [1, 2, 3], "{keys}");
    assert!(audit_has(&mut admin, "key.rotate", "ok"));
    // Retiring old keys re-encrypts generations 1 and 2 under 3 and
    // destroys generation 2's key, with a certificate naming it.
    d.clock.advance(20 * MINUTE);
    let m = admin.fails("gc", json!({"retire_old_keys": true}), "fresh_mfa_required");
    assert!(m.contains("key.destroy"), "{m}");
    fresh(&d, &mut admin, &secret);
    let j = admin.ok("gc", json!({"retire_old_keys": true}));
    let done = wait_job(&mut admin, &j["job"]);
    assert_eq!(done["status"], json!("success"), "{done}");
    let certs = admin.ok("disposal_list", Value::Null);
    assert!(
        certs.as_array().unwrap().iter().any(|c| c["keys"][0]
            .as_str()
            .is_some_and(|k| k.contains("data key generation 2"))),
        "{certs}"
    );
    let keys = officer.ok("key_status", Value::Null);
    assert!(
        keys["data_keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["generation"] == json!(2)
                && k["state"].as_str().unwrap().starts_with("destroyed")),
        "{keys}"
    );
    let restored = d.dir.path().join("restored");
    let _ = restored;
    admin.fails("gc", json!({"compact_below_pct": 150}), "invalid");

    for (action, result) in [
        ("lock.set", "ok"),
        ("lock.set", "denied"),
        ("hold.set", "denied"),
        ("hold.set", "ok"),
        ("hold.release", "ok"),
        ("clock.accept", "ok"),
        ("clock.accept", "denied"),
        ("gc", "ok"),
    ] {
        assert!(audit_has(&mut admin, action, result), "{action} {result}");
    }
}
