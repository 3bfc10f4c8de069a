//! Verification jobs: the store read back on the `[verify]` calendar as
//! the scheduler and on demand; damage fails the job with the files it
//! touches and raises a `verify-failed` alert; a bad calendar is refused.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use serde_json::json;

#[test]
fn the_store_is_verified_on_its_calendar_and_damage_raises_an_alert() {
    let d = TestDaemon::start_with(|c| {
        c.auth.session_idle = coffer_types::api::Duration(7 * 86_400);
        c.verify.store = Some("*-*-* 03:00".into());
    });
    let (mut admin, _) = d.admin();
    let src = sample_tree(d.dir.path());
    admin.ok("asset_add", json!({"asset": asset("web", &src, None)}));
    d.clock.set(MONDAY + HOUR);
    let j = admin.ok("job_run", json!({"asset": "web", "level": "full"}));
    assert_eq!(wait_job(&mut admin, &j["job"])["status"], json!("success"));

    // 03:00: the scheduler verifies the store.
    d.clock.set(MONDAY + 3 * HOUR);
    let mut job = None;
    d.wait_for("the scheduled verification", || {
        job = jobs(&mut admin)
            .into_iter()
            .find(|j| j["kind"] == json!("verify"));
        job.as_ref()
            .is_some_and(|j| j["status"] == json!("success"))
    });
    let job = job.unwrap();
    assert_eq!(job["identity"], json!("scheduler"));

    // A container damaged on disk: verification on demand fails, names
    // the damage, and raises an alert.
    let data = d.dir.path().join("store/data");
    let sub = std::fs::read_dir(&data)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let file = std::fs::read_dir(&sub)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut b = std::fs::read(&file).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x55;
    std::fs::write(&file, b).unwrap();
    let v = admin.ok("verify_run", json!({}));
    let done = wait_job(&mut admin, &v["jobs"][0]);
    assert_eq!(done["status"], json!("failed"), "{done}");
    let alerts = admin.ok("alert_list", json!({}));
    assert!(alerts.to_string().contains("verify-failed"), "{alerts}");
    let audit = admin.ok("audit_list", json!({"filter": {"action": "verify.run"}}));
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
    // No media set yet: a tape verification is refused with the reason.
    let m = admin.fails("verify_run", json!({"what": "tape"}), "invalid");
    assert!(m.contains("no media set"), "{m}");
}
