//! The ISO 27001 A.8.13 evidence report: every section reflects facts
//! seeded through the API (assets and a gap, backups and a failure, a
//! drill, a retention lock, a key rotation, a user, a failed login, a
//! privileged action), it states that the audit chain verifies, a period
//! with no data gives empty sections, and the HTML renders in headless
//! Chromium.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use serde_json::{Value, json};

fn names(v: &Value, key: &str) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x[key].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn the_evidence_report_reflects_the_seeded_facts_and_renders() {
    // No scheduled jobs (the development sample asset would back up).
    let d = TestDaemon::start_with(|c| {
        c.auth.session_idle = coffer_types::api::Duration(7 * 86_400);
        c.scheduler.enabled = false;
    });
    let (mut admin, secret) = d.admin();
    let src = sample_tree(d.dir.path());
    let mut prof = profile("quarterly", "Sun 02:00");
    prof["drill"] = json!({ "schedule": "*-01,04,07,10-01 03:00" });
    admin.ok("profile_add", json!({ "profile": prof }));
    admin.ok(
        "asset_add",
        json!({"asset": asset("web", &src, Some("quarterly"))}),
    );
    admin.ok("asset_add", json!({"asset": asset("orphan", &src, None)}));
    let gone = d.dir.path().join("gone");
    admin.ok(
        "asset_add",
        json!({"asset": asset("ghost", &gone, Some("quarterly"))}),
    );
    d.clock.set(MONDAY + HOUR);
    let j = admin.ok("job_run", json!({"asset": "web", "level": "full"}));
    let web_job = wait_job(&mut admin, &j["job"]);
    assert_eq!(web_job["status"], json!("success"));
    let snap = web_job["snapshot"].as_str().unwrap().to_string();
    let j = admin.ok("job_run", json!({"asset": "ghost", "level": "full"}));
    assert_eq!(wait_job(&mut admin, &j["job"])["status"], json!("failed"));
    let j = admin.ok("drill_run", json!({"asset": "web"}));
    assert_eq!(wait_job(&mut admin, &j["job"])["status"], json!("success"));
    admin.ok(
        "lock_set",
        json!({"snapshot": snap, "until_ms": MONDAY + 30 * DAY, "reason": "quarter close"}),
    );
    admin.ok("key_rotate", Value::Null);
    admin.ok("key_rotate", Value::Null);
    // Retiring the old keys destroys generation 2 with a certificate.
    fresh(&d, &mut admin, &secret);
    let j = admin.ok("gc", json!({"retire_old_keys": true}));
    assert_eq!(wait_job(&mut admin, &j["job"])["status"], json!("success"));
    fresh(&d, &mut admin, &secret);
    admin.ok(
        "user_add",
        json!({"name": "ada", "password": "a long enough password", "roles": ["auditor"]}),
    );
    let mut intruder = d.client();
    let r = intruder.call(
        "login",
        json!({"user": "ada", "password": "wrong password!", "code": "000000"}),
    );
    assert_eq!(r["ok"], json!(false));

    // Jobs carry the real time they ran, the audit log and the drills the
    // daemon's clock (2026-11-23): the period spans both.
    let today = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
    let monday = "2026-11-23".to_string();
    let (from, to) = if today < monday {
        (today, monday)
    } else {
        (monday, today)
    };
    let out = admin.ok("report_iso27001", json!({"from": from, "to": to}));
    let r = &out["report"];
    assert_eq!(r["audit_chain"]["ok"], json!(true), "{}", r["audit_chain"]);
    // The development defaults' sample asset is in the register too.
    assert_eq!(
        names(&r["assets"], "name"),
        ["ghost", "orphan", "sample-docs", "web"],
        "{}",
        r["assets"]
    );
    let web = r["assets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == json!("web"))
        .unwrap();
    assert_eq!(web["rpo"], json!("1d"));
    assert_eq!(web["rto"], json!("4h"));
    assert_eq!(web["profile"], json!("quarterly"));
    let gaps = r["gaps"].to_string();
    assert!(gaps.contains("orphan: no profile"), "{gaps}");
    assert!(gaps.contains("ghost: never backed up"), "{gaps}");
    let backups = r["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 2, "{}", r["backups"]);
    let b = backups.iter().find(|b| b["asset"] == json!("web")).unwrap();
    assert_eq!(b["status"], json!("success"));
    assert_eq!(b["identity"], json!("admin"));
    assert_eq!(b["level"], json!("full"));
    assert!(b["bytes_read"].as_u64().unwrap() >= 300_000);
    assert_eq!(r["drills"][0]["result"], json!("pass"));
    assert_eq!(r["drills"][0]["asset"], json!("web"));
    assert!(r["drills"][0]["duration_ms"].as_i64().is_some());
    let comp = r["compliance"].as_array().unwrap();
    assert_eq!(comp.len(), 4);
    assert_eq!(r["retention"]["locks"][0]["snapshot"], json!(snap));
    assert!(
        r["keys"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == json!("rotated")),
        "{}",
        r["keys"]
    );
    let disposals = r["disposals"].as_array().unwrap();
    assert!(
        disposals
            .iter()
            .any(|c| c["keys"].to_string().contains("data key generation 2")),
        "{}",
        r["disposals"]
    );
    let users = r["access"]["users"].as_array().unwrap();
    let ada = users.iter().find(|u| u["name"] == json!("ada")).unwrap();
    assert_eq!(ada["roles"], json!(["auditor"]));
    assert_eq!(r["access"]["failed_logins"].as_array().unwrap().len(), 1);
    let privileged = r["access"]["privileged_actions"].to_string();
    for action in ["asset.add", "lock.set", "key.rotate", "user.add"] {
        assert!(privileged.contains(action), "{action}: {privileged}");
    }
    let failed = r["failed_jobs"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["asset"], json!("ghost"));
    assert_eq!(
        failed[0]["followed_by"],
        json!("nothing yet"),
        "{}",
        failed[0]
    );

    // A period with no data: the register is there, the logs are empty.
    let empty = admin.ok(
        "report_iso27001",
        json!({"from": "2025-01-01", "to": "2025-01-31"}),
    );
    let e = &empty["report"];
    assert!(e["backups"].as_array().unwrap().is_empty());
    assert!(e["drills"].as_array().unwrap().is_empty());
    assert!(
        e["access"]["privileged_actions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        empty["html"]
            .as_str()
            .unwrap()
            .contains("None in this period.")
    );
    // Bad periods.
    let m = admin.fails(
        "report_iso27001",
        json!({"from": "2026-11-30", "to": "2026-11-01"}),
        "invalid",
    );
    assert!(m.contains("before it begins"), "{m}");
    admin.fails(
        "report_iso27001",
        json!({"from": "yesterday", "to": "2026-11-01"}),
        "invalid",
    );
    let audit = admin.ok("audit_list", json!({"filter": {"action": "report."}}));
    assert!(!audit.as_array().unwrap().is_empty(), "{audit}");

    // The HTML, rendered by a real browser.
    let html = out["html"].as_str().unwrap();
    let file = d.dir.path().join("report.html");
    std::fs::write(&file, html).unwrap();
    let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
    else {
        eprintln!("skipped the browser check: no chromium on this machine (.ci/run installs it)");
        return;
    };
    let dom = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--dump-dom",
        ])
        .arg(format!("file://{}", file.display()))
        .output()
        .unwrap();
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    for shown in [
        "Integrity of the audit log",
        "The audit chain verifies",
        "Asset register",
        "Coverage gaps",
        "orphan: no profile",
        "Backup log",
        "Restore drills",
        "3-2-1-1-0",
        "quarter close",
        "Access review",
        "Disposal certificates",
        "data key generation 2",
        "Failed jobs and missed RPOs",
        "ghost",
    ] {
        assert!(dom.contains(shown), "{shown} not rendered");
    }
    let shot = d.dir.path().join("report.png");
    let png = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1200,1600",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", file.display()))
        .output()
        .unwrap();
    assert!(
        png.status.success(),
        "{}",
        String::from_utf8_lossy(&png.stderr)
    );
    let bytes = std::fs::read(&shot).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000,
        "{} bytes",
        bytes.len()
    );
}
