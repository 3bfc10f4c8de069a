//! The service end to end, in-process: a daemon on a temporary socket with a
//! manual clock, driven over its real control API.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use serde_json::{Value, json};

/// Backup jobs (asset, level, status), oldest first: the prune each good
/// backup queues is left out.
fn statuses(c: &mut Client) -> Vec<(String, String, String)> {
    jobs(c)
        .iter()
        .filter(|j| j["kind"] == json!("backup"))
        .map(|j| {
            (
                j["asset"].as_str().unwrap_or("").to_string(),
                j["level"].as_str().unwrap_or("").to_string(),
                j["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn audit_actions(c: &mut Client) -> Vec<(String, String, String, String)> {
    let mut v: Vec<Value> = c
        .ok("audit_list", json!({"filter": {"limit": 1000}}))
        .as_array()
        .unwrap()
        .clone();
    v.reverse();
    v.iter()
        .map(|e| {
            (
                e["identity"].as_str().unwrap().to_string(),
                e["source"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
                e["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_wire_format_refuses_garbage_and_oversized_lines_clearly() {
    let d = TestDaemon::start();
    let mut c = d.client();
    let s = c.ok("status", Value::Null);
    assert_eq!(s["needs_bootstrap"], json!(true));
    assert_eq!(s["api"], json!(1));
    assert_eq!(s["development"], json!(true));

    let r = c.raw(b"this is not json");
    assert_eq!(r["ok"], json!(false));
    assert_eq!(r["error"]["code"], json!("bad_request"));
    assert_eq!(r["id"], json!(0));
    let r = c.raw(br#"{"id": 42, "op": "launch_missiles"}"#);
    assert_eq!(r["error"]["code"], json!("bad_request"));
    assert_eq!(r["id"], json!(42), "the id of a JSON line is echoed");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("launch_missiles"),
        "{r}"
    );
    // The connection survives bad lines.
    c.ok("status", Value::Null);
    // A request without credentials for a protected call.
    c.fails("asset_list", Value::Null, "unauthenticated");
    c.auth = Some(json!({"session": "00"}));
    c.fails("asset_list", Value::Null, "unauthenticated");

    // Oversized: refused, then the connection is closed.
    let mut big = d.client();
    let line = format!(
        r#"{{"id": 1, "op": "asset_import", "args": {{"csv": "{}"}}}}"#,
        "x".repeat(1 << 20)
    );
    let r = big.raw(line.as_bytes());
    assert_eq!(r["error"]["code"], json!("too_large"), "{r}");

    // The socket is private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.socket()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn bootstrap_login_register_schedule_and_the_job_and_audit_logs() {
    let d = TestDaemon::start();
    let src = sample_tree(d.dir.path());
    let (mut c, secret) = d.admin();
    // Bootstrap happens once.
    d.client().fails(
        "bootstrap",
        json!({"user": "eve", "password": "another long password"}),
        "state",
    );
    // The development seed: a sample profile and asset.
    let profiles = c.ok("profile_list", Value::Null);
    assert!(
        profiles
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "standard")
    );
    c.ok(
        "profile_add",
        json!({"profile": profile("hourly", "*-*-* *:15")}),
    );
    c.ok(
        "asset_add",
        json!({"asset": asset("web-01", &src, Some("hourly"))}),
    );
    c.ok("asset_add", json!({"asset": asset("orphan", &src, None)}));
    let assets = c.ok("asset_list", Value::Null);
    let orphan = assets
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "orphan")
        .unwrap();
    assert_eq!(
        orphan["unprotected"],
        json!(true),
        "an asset with no profile is flagged"
    );
    let next = c.ok("schedule_next", json!({"count": 3}));
    assert!(
        next.as_array()
            .unwrap()
            .iter()
            .any(|n| n["asset"] == "web-01"
                && n["at"] == "2026-11-23T00:15:00.000Z"
                && n["level"] == "incremental"),
        "{next}"
    );

    // The scheduler fires at 00:15 by the daemon's clock, and not before.
    d.clock.set(MONDAY + 14 * MINUTE);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(statuses(&mut c).iter().all(|(a, _, _)| a != "web-01"));
    d.clock.set(MONDAY + 15 * MINUTE);
    d.wait_for("the scheduled job to succeed", || {
        statuses(&mut c)
            .iter()
            .any(|(a, _, s)| a == "web-01" && s == "success")
    });
    // The backup (a prune of the asset may be queued after it).
    let job = jobs(&mut c)
        .into_iter()
        .find(|j| j["asset"] == "web-01" && j["kind"] == "backup")
        .unwrap();
    assert_eq!(job["identity"], json!("scheduler"));
    assert_eq!(job["source"], json!("scheduler"));
    assert_eq!(job["profile"], json!("hourly"));
    assert_eq!(
        job["level"],
        json!("incremental"),
        "the level asked for is logged"
    );
    assert!(
        job["messages"][0]
            .as_str()
            .unwrap()
            .contains("ran as a full"),
        "and what it ran as: {job}"
    );
    assert!(job["snapshot"].is_string());
    let log = c.ok("job_log", json!({"id": job["id"]}));
    let lines: Vec<&str> = log["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("backup of 'web-01' started")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("backup finished")),
        "{lines:?}"
    );

    // A backup started by hand carries the user's identity.
    let r = c.ok(
        "job_run",
        json!({"asset": "web-01", "level": "incremental"}),
    );
    let id = r["job"].as_i64().unwrap();
    d.wait_for("the manual job", || {
        c.ok("job_get", json!({"id": id}))["status"] == "success"
    });
    let j = c.ok("job_get", json!({"id": id}));
    assert_eq!(j["identity"], json!("admin"));
    assert_eq!(j["source"], json!("console"));

    // The audit log holds all of it, and its chain verifies.
    let a = audit_actions(&mut c);
    let has = |who: &str, src: &str, act: &str, res: &str| {
        a.iter()
            .any(|(w, s, ac, r)| w == who && s == src && ac == act && r == res)
    };
    assert!(has("admin", "console", "bootstrap", "ok"), "{a:?}");
    assert!(has("admin", "console", "login", "ok"), "{a:?}");
    assert!(has("admin", "console", "asset.add", "ok"), "{a:?}");
    assert!(has("scheduler", "scheduler", "job.queue", "ok"), "{a:?}");
    assert!(has("scheduler", "scheduler", "job.finish", "ok"), "{a:?}");
    assert!(has("admin", "console", "job.run", "ok"), "{a:?}");
    let v = c.ok("audit_verify", Value::Null);
    assert_eq!(v["ok"], json!(true), "{v}");
    let _ = secret;
}

#[test]
fn lockout_expired_sessions_and_replayed_codes() {
    // The default 15-minute idle timeout.
    let d = TestDaemon::start_with(|_| {});
    let (mut admin, secret) = d.admin();
    let mut c = d.client();
    // The code admin just used is refused a second time.
    let used = d.code(&secret);
    c.fails(
        "login",
        json!({"user": "admin", "password": "correct horse battery", "code": used}),
        "login_failed",
    );
    d.next_step();
    for _ in 0..4 {
        c.fails(
            "login",
            json!({"user": "admin", "password": "wrong password!!", "code": d.code(&secret)}),
            "login_failed",
        );
    }
    // The 5th failure locks; then even the right credentials are refused.
    c.fails(
        "login",
        json!({"user": "admin", "password": "wrong password!!", "code": d.code(&secret)}),
        "locked_out",
    );
    d.next_step();
    c.fails(
        "login",
        json!({"user": "admin", "password": "correct horse battery", "code": d.code(&secret)}),
        "locked_out",
    );
    // Sessions end after 15 minutes idle (admin's, opened before).
    d.clock.advance(16 * MINUTE);
    admin.fails("asset_list", Value::Null, "session_expired");
    // The lockout has ended too (15 minutes).
    d.next_step();
    c.login("admin", "correct horse battery", &d.code(&secret));
    c.ok("asset_list", Value::Null);
    let a = audit_actions(&mut c);
    assert!(
        a.iter()
            .filter(|(w, _, act, r)| w == "admin" && act == "login" && r == "failed")
            .count()
            >= 6,
        "{a:?}"
    );
}

#[test]
fn destructive_actions_need_fresh_mfa_and_tokens_cannot_skip_it() {
    let d = TestDaemon::start();
    let src = sample_tree(d.dir.path());
    let (mut c, secret) = d.admin();
    c.ok(
        "profile_add",
        json!({"profile": profile("p", "*-*-* 02:00")}),
    );
    c.ok(
        "asset_add",
        json!({"asset": asset("db-01", &src, Some("p"))}),
    );
    // Six minutes later the login no longer counts as fresh MFA.
    d.clock.advance(6 * MINUTE);
    let changed = profile("p", "*-*-* 03:00");
    let msg = c.fails(
        "profile_update",
        json!({"profile": changed}),
        "fresh_mfa_required",
    );
    assert!(msg.contains("TOTP"), "{msg}");
    c.fails(
        "asset_remove",
        json!({"name": "db-01"}),
        "fresh_mfa_required",
    );
    // A change that moves no schedule and shortens nothing needs no MFA.
    let mut same = profile("p", "*-*-* 02:00");
    same["retries"] = json!(3);
    c.ok("profile_update", json!({"profile": same}));
    // With a code in the request, it goes through.
    c.mfa = Some(d.code(&secret));
    c.ok("profile_update", json!({"profile": changed}));
    // A token of an administrator cannot remove without its owner's code.
    d.next_step();
    c.mfa = Some(d.code(&secret));
    let t = c.ok(
        "token_create",
        json!({"name": "ci", "roles": ["administrator"]}),
    );
    let mut api = d.client();
    api.auth = Some(json!({"token": t["token"]}));
    api.ok("asset_list", Value::Null);
    api.fails(
        "asset_remove",
        json!({"name": "db-01"}),
        "fresh_mfa_required",
    );
    d.next_step();
    api.mfa = Some(d.code(&secret));
    api.ok("asset_remove", json!({"name": "db-01"}));
    let a = audit_actions(&mut c);
    assert!(
        a.iter().any(
            |(w, s, act, r)| (w.starts_with("token:") && w.ends_with("(admin)"))
                && s == "api"
                && act == "asset.remove"
                && r == "denied"
        ),
        "{a:?}"
    );
    assert!(
        a.iter().any(
            |(w, s, act, r)| (w.starts_with("token:") && w.ends_with("(admin)"))
                && s == "api"
                && act == "asset.remove"
                && r == "ok"
        ),
        "{a:?}"
    );
}

/// Each role against one call per permission class, through the API.
#[test]
fn each_role_is_allowed_exactly_what_the_matrix_says() {
    use coffer_auth::Permission as P;
    use coffer_types::api::Role;
    let d = TestDaemon::start();
    let src = sample_tree(d.dir.path());
    let (mut admin, secret) = d.admin();
    admin.ok(
        "profile_add",
        json!({"profile": profile("p", "*-*-* 02:00")}),
    );
    admin.ok("asset_add", json!({"asset": asset("a", &src, Some("p"))}));
    // (permission, op, args) — args valid enough that success is possible.
    let probes: Vec<(P, &str, Value)> = vec![
        (P::AssetRead, "asset_list", Value::Null),
        (P::ProfileRead, "profile_list", Value::Null),
        (P::JobRead, "job_list", json!({})),
        (P::SnapshotRead, "snapshot_list", json!({})),
        (P::AlertRead, "alert_list", json!({})),
        (P::AuditRead, "audit_verify", Value::Null),
        (P::UserRead, "user_list", Value::Null),
        (
            P::AssetWrite,
            "asset_add",
            json!({"asset": asset("x-ROLE", &src, Some("p"))}),
        ),
        (
            P::ProfileWrite,
            "profile_add",
            json!({"profile": profile("q-ROLE", "*-*-* 05:00")}),
        ),
        (P::JobRun, "job_run", json!({"asset": "a", "level": "full"})),
        (P::ConfigReload, "reload", Value::Null),
    ];
    let mut n = 0;
    for role in Role::ALL {
        n += 1;
        let name = format!("user{n}");
        let (mut u, _) = user_with_role(&d, &mut admin, &secret, &name, role);
        for (perm, op, args) in &probes {
            let args: Value =
                serde_json::from_str(&serde_json::to_string(args).unwrap().replace("ROLE", &name))
                    .unwrap();
            let r = u.call(op, args);
            let allowed = coffer_auth::allows(role, *perm);
            if allowed {
                assert_ne!(r["error"]["code"], json!("forbidden"), "{role} {op}: {r}");
            } else {
                assert_eq!(r["error"]["code"], json!("forbidden"), "{role} {op}: {r}");
            }
        }
    }
}

#[test]
fn a_queued_job_can_be_cancelled_and_a_failing_scheduled_job_is_retried_then_alerted() {
    let d = TestDaemon::start();
    let (mut c, _) = d.admin();
    let missing = d.dir.path().join("no-such-dir");
    c.ok(
        "profile_add",
        json!({"profile": profile("p", "*-*-* 00:30")}),
    );
    c.ok(
        "asset_add",
        json!({"asset": asset("gone", &missing, Some("p"))}),
    );
    d.clock.set(MONDAY + 30 * MINUTE);
    // (The development asset `sample-docs` is due at 00:30 too: look at
    // this asset's jobs only.)
    d.wait_for("the first attempt to fail and a retry to be queued", || {
        let s = statuses(&mut c);
        s.iter().any(|(a, _, st)| a == "gone" && st == "failed")
            && s.iter().any(|(a, _, st)| a == "gone" && st == "queued")
    });
    let retry = jobs(&mut c)
        .into_iter()
        .find(|j| j["status"] == "queued" && j["asset"] == "gone")
        .unwrap();
    assert_eq!(retry["attempt"], json!(2));
    // Backoff: 10 minutes; not before.
    d.clock.advance(5 * MINUTE);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(
        c.ok("job_get", json!({"id": retry["id"]}))["status"],
        json!("queued")
    );
    d.clock.advance(6 * MINUTE);
    d.wait_for("the retry to fail", || {
        c.ok("job_get", json!({"id": retry["id"]}))["status"] == "failed"
    });
    // Retries spent (profile says 1): an alert, and no third attempt.
    d.wait_for("the job-failed alert", || {
        c.ok("alert_list", json!({}))
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "job-failed" && a["subject"] == "gone")
    });
    assert_eq!(
        statuses(&mut c)
            .iter()
            .filter(|(a, _, _)| a == "gone")
            .count(),
        2
    );

    // Cancel a queued job: hold the queue with a stopped scheduler.
    let src = sample_tree(d.dir.path());
    c.ok("asset_add", json!({"asset": asset("big", &src, None)}));
    let a = c.ok("job_run", json!({"asset": "big", "level": "full"}))["job"]
        .as_i64()
        .unwrap();
    let b = c.ok("job_run", json!({"asset": "big", "level": "full"}))["job"]
        .as_i64()
        .unwrap();
    // Two jobs of one asset never run at once: b waits while a runs.
    let m = c.ok("job_cancel", json!({"id": b}));
    assert!(
        m["message"].as_str().unwrap().contains("cancel")
            || m["message"].as_str().unwrap().contains("stopping"),
        "{m}"
    );
    d.wait_for("job a to end", || {
        c.ok("job_get", json!({"id": a}))["status"] == "success"
    });
    let st = c.ok("job_get", json!({"id": b}))["status"].clone();
    assert!(st == "cancelled", "{st}");
    c.fails("job_cancel", json!({"id": a}), "state");
}

#[test]
fn catch_up_after_downtime_runs_once_not_once_per_missed_slot() {
    let mut d = TestDaemon::start();
    let src = sample_tree(d.dir.path());
    let (mut c, _) = d.admin();
    // Every hour at :15.
    c.ok(
        "profile_add",
        json!({"profile": profile("hourly", "*-*-* *:15")}),
    );
    c.ok(
        "asset_add",
        json!({"asset": asset("web", &src, Some("hourly"))}),
    );
    d.clock.set(MONDAY + 15 * MINUTE);
    d.wait_for("the first run", || {
        statuses(&mut c)
            .iter()
            .any(|(a, _, s)| a == "web" && s == "success")
    });
    drop(c);
    d.stop();
    // Off for three days: 72 slots missed.
    d.clock.set(MONDAY + 3 * DAY + 20 * MINUTE);
    d.boot(None);
    d.wait_for("the catch-up run", || {
        statuses_from_catalog(&d)
            .iter()
            .filter(|(a, _, s)| a == "web" && s == "success")
            .count()
            == 2
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(
        statuses_from_catalog(&d)
            .iter()
            .filter(|(a, _, _)| a == "web")
            .count(),
        2,
        "exactly one catch-up run"
    );
}

/// Reads the backup jobs straight from the catalog (no session needed).
fn statuses_from_catalog(d: &TestDaemon) -> Vec<(String, String, String)> {
    let cat = coffer_catalog::Catalog::open(&d.dir.path().join("store/catalog.db")).unwrap();
    cat.job_views(&Default::default())
        .unwrap()
        .into_iter()
        .filter(|j| j.record.kind == coffer_types::JobKind::Backup)
        .map(|j| {
            (
                j.record.asset.unwrap_or_default(),
                j.record
                    .level
                    .map(|l| l.as_str().to_string())
                    .unwrap_or_default(),
                j.record.status.as_str().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_rpo_monitor_raises_and_clears_an_alert() {
    let d = TestDaemon::start();
    let src = sample_tree(d.dir.path());
    let (mut c, _) = d.admin();
    let mut a = asset("fin-01", &src, None);
    a["rpo"] = json!("2h");
    c.ok("profile_add", json!({"profile": profile("p", "Sun 01:00")}));
    a["profile"] = json!("p");
    c.ok("asset_add", json!({"asset": a}));
    let rpo_alert = |c: &mut Client| {
        c.ok("alert_list", json!({}))
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["kind"] == "rpo" && x["subject"] == "fin-01")
            .cloned()
    };
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(rpo_alert(&mut c).is_none(), "a new asset is not late yet");
    d.clock.advance(3 * HOUR);
    d.wait_for("the RPO alert", || rpo_alert(&mut c).is_some());
    let alert = rpo_alert(&mut c).unwrap();
    assert!(
        alert["message"].as_str().unwrap().contains("RPO"),
        "{alert}"
    );
    // A good backup clears it (its time is the wall clock, ahead of the
    // test's clock, so it counts as recent).
    let id = c.ok("job_run", json!({"asset": "fin-01", "level": "full"}))["job"].clone();
    d.wait_for("the backup", || {
        c.ok("job_get", json!({"id": id}))["status"] == "success"
    });
    d.clock.advance(2 * MINUTE);
    d.wait_for("the alert to clear", || rpo_alert(&mut c).is_none());
}
