//! Restore drills through the daemon: on demand from the console's API and
//! on a profile's drill calendar; evidence recorded and listed; a failed
//! drill fails its job and raises an alert, and a later passing one clears
//! it; a daemon killed mid-drill fails it at the next
//! start.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use serde_json::{Value, json};

fn drills(c: &mut Client) -> Vec<Value> {
    c.ok("drill_list", json!({})).as_array().unwrap().clone()
}

#[test]
fn drills_run_on_demand_and_on_their_calendar_and_record_the_evidence() {
    let mut d = TestDaemon::start();
    let (mut admin, _secret) = d.admin();
    let src = sample_tree(d.dir.path());
    let mut prof = profile("quarterly", "Sun 02:00");
    prof["drill"] = json!({ "schedule": "*-*-* 06:00", "from": "disk" });
    admin.ok("profile_add", json!({ "profile": prof }));
    admin.ok(
        "asset_add",
        json!({"asset": asset("web", &src, Some("quarterly"))}),
    );
    d.clock.set(MONDAY + HOUR);
    let j = admin.ok("job_run", json!({"asset": "web", "level": "full"}));
    assert_eq!(wait_job(&mut admin, &j["job"])["status"], json!("success"));

    // On demand.
    let j = admin.ok("drill_run", json!({"asset": "web"}));
    let done = wait_job(&mut admin, &j["job"]);
    assert_eq!(done["status"], json!("success"), "{done}");
    assert_eq!(done["kind"], json!("drill"));
    let all = drills(&mut admin);
    assert_eq!(all.len(), 1);
    let e = &all[0];
    assert_eq!(e["result"], json!("pass"), "{e}");
    assert_eq!(e["source"], json!("disk"));
    assert_eq!(e["identity"], json!("admin"));
    assert_eq!(e["files"], json!(2), "{e}");
    assert_eq!(e["bytes"], json!(300_000 + 20), "{e}");
    assert_eq!(e["rto_ms"], json!(4 * HOUR), "{e}");
    assert_eq!(e["job"], j["job"]);
    assert!(
        !d.dir
            .path()
            .join(format!("state/drills/drill-{}", e["id"]))
            .exists()
    );
    assert!(
        d.dir.path().join("state/drills").exists(),
        "the sandbox root was used"
    );

    // On its calendar (06:00), as the scheduler.
    d.clock.set(MONDAY + 6 * HOUR);
    d.wait_for("the scheduled drill", || {
        drills(&mut admin)
            .iter()
            .any(|x| x["identity"] == json!("scheduler") && x["result"] != json!("running"))
    });
    let sched = drills(&mut admin)
        .into_iter()
        .find(|x| x["identity"] == json!("scheduler"))
        .unwrap();
    assert_eq!(sched["result"], json!("pass"), "{sched}");

    // A copy that cannot be read (no tape set holds the snapshot; the
    // library is not there): the drill fails with the reason, its job fails
    // and an alert is raised. (The RTO check is the engine's test.)
    let j = admin.ok("drill_run", json!({"asset": "web", "from": "tape"}));
    let done = wait_job(&mut admin, &j["job"]);
    assert_eq!(done["status"], json!("failed"), "{done}");
    let last = drills(&mut admin)[0].clone();
    assert_eq!(last["result"], json!("fail"), "{last}");
    assert_eq!(last["source"], json!("tape"), "{last}");
    assert!(last["reason"].as_str().unwrap().contains("tape"), "{last}");
    let alerts = admin.ok("alert_list", json!({}));
    assert!(alerts.to_string().contains("drill-failed"), "{alerts}");
    // The next drill that passes clears it.
    let j = admin.ok("drill_run", json!({"asset": "web", "random": true}));
    assert_eq!(wait_job(&mut admin, &j["job"])["status"], json!("success"));
    let alerts = admin.ok("alert_list", json!({}));
    assert!(!alerts.to_string().contains("drill-failed"), "{alerts}");

    // Bad input: no such asset or snapshot, a snapshot of another asset.
    admin.fails("drill_run", json!({"asset": "nope"}), "not_found");
    admin.fails(
        "drill_run",
        json!({"asset": "web", "snapshot": "ffffffff"}),
        "not_found",
    );
    let audit = admin.ok("audit_list", json!({"filter": {"action": "drill.run"}}));
    assert!(audit.as_array().unwrap().len() >= 3, "{audit}");

    // A daemon killed mid-drill: the drill left running is failed at the
    // next start and its sandbox removed.
    let cat = coffer_catalog::Catalog::open(&d.dir.path().join("store/catalog.db")).unwrap();
    let snap = drills(&mut admin)[0]["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let id = cat
        .begin_drill(&coffer_catalog::NewDrill {
            job: None,
            asset: "web".into(),
            snapshot: snap,
            source: "disk".into(),
            copy: String::new(),
            identity: "admin".into(),
            started_ms: MONDAY + 7 * HOUR,
            rto_ms: None,
        })
        .unwrap();
    let sandbox = d.dir.path().join(format!("state/drills/drill-{id}/tree"));
    std::fs::create_dir_all(&sandbox).unwrap();
    std::fs::write(sandbox.join("half.bin"), vec![1u8; 1000]).unwrap();
    drop(admin);
    d.stop();
    d.boot(None);
    let (mut admin, _) = {
        d.next_step();
        let mut c = d.client();
        c.login("admin", "correct horse battery", &d.code(&_secret));
        (c, ())
    };
    let killed = drills(&mut admin)
        .into_iter()
        .find(|x| x["id"] == json!(id))
        .unwrap();
    assert_eq!(killed["result"], json!("fail"), "{killed}");
    assert!(killed["reason"].as_str().unwrap().contains("interrupted"));
    assert!(
        !d.dir
            .path()
            .join(format!("state/drills/drill-{id}"))
            .exists()
    );
}
