//! The service's nightly media rotation jobs against the virtual tape
//! library: queued once a day at their time, waiting for the cartridges
//! the rotation asks for (a `media-request` alert), labelling new scratch
//! cartridges, writing the newest snapshots onto the plan's set and
//! recording the cartridges in the job log and the rotation; a job whose
//! cartridges never come gives up after `tape.wait_for_media` with a
//! `media-timeout` alert, and one can be cancelled while it waits.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use coffer_catalog::Catalog;
use coffer_media::rotation::{Book, Content, Day, Place, PoolPolicy};
use coffer_tape::{CartridgeSpec, MediaChanger, VirtualLibrary, VtlOptions};
use common::*;
use serde_json::{Value, json};

const SPEC: CartridgeSpec = CartridgeSpec {
    capacity: 64 << 20,
    early_warning: 4 << 20,
    worm: false,
    cleaning: false,
    write_protected: false,
};

fn media_jobs(c: &mut Client) -> Vec<Value> {
    jobs(c)
        .into_iter()
        .filter(|j| j["kind"] == json!("media-write"))
        .collect()
}

fn alerts(c: &mut Client, kind: &str) -> Vec<Value> {
    c.ok("alert_list", json!({}))
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == json!(kind))
        .cloned()
        .collect()
}

/// Waits until job `id` is running and alert `kind` is open.
fn wait_alert(d: &TestDaemon, c: &mut Client, kind: &str) -> Value {
    let mut found = None;
    d.wait_for(&format!("a {kind} alert"), || {
        found = alerts(c, kind).into_iter().next();
        found.is_some()
    });
    found.unwrap()
}

#[test]
fn nightly_rotation_jobs_wait_for_cartridges_write_and_give_up_in_time() {
    let mut d = TestDaemon::start_with(|c| {
        c.auth.session_idle = coffer_types::api::Duration(7 * 86_400);
        c.tape.wait_for_media = coffer_types::api::Duration(3600);
        c.tape.poll_every = coffer_types::api::Duration(1);
        c.tape.jobs = vec![
            cofferd::config::TapeJob {
                pool: "nightly".into(),
                at: "22:00".into(),
                profiles: Vec::new(),
            },
            cofferd::config::TapeJob {
                pool: "late".into(),
                at: "22:30".into(),
                profiles: Vec::new(),
            },
        ];
    });
    let vtl = d.dir.path().join("vtl");
    let lib = VirtualLibrary::create(
        &vtl,
        &VtlOptions {
            drives: 1,
            slots: 10,
            ie_slots: 6,
            capacity: SPEC.capacity,
            early_warning: SPEC.early_warning,
            cartridges: 0,
            worm: 0,
            cleaning: 0,
            prefix: "NT".into(),
        },
    )
    .unwrap();
    let (mut admin, secret) = d.admin();
    let src = sample_tree(d.dir.path());
    admin.ok("asset_add", json!({"asset": asset("books", &src, None)}));
    d.clock.set(MONDAY + HOUR);
    let j = admin.ok("job_run", json!({"asset": "books", "level": "full"}));
    assert_eq!(wait_job(&mut admin, &j["job"])["status"], json!("success"));

    // Two rotation pools; their cartridges are on the shelf, new and blank.
    let monday = Day::ymd(2026, 11, 23);
    let cat = Catalog::open(&d.dir.path().join("store/catalog.db")).unwrap();
    let book = Book::new(&cat, "operator", MONDAY + HOUR);
    let nightly: Vec<String> = (1..=8).map(|i| format!("NT{i:04}L9")).collect();
    let late: Vec<String> = (1..=8).map(|i| format!("LT{i:04}L9")).collect();
    for (name, carts) in [("nightly", &nightly), ("late", &late)] {
        let mut p = PoolPolicy::gfs(name, monday);
        p.vault = None;
        book.put_pool(&p).unwrap();
        book.add_cartridges(name, carts, false, monday).unwrap();
    }

    // Nothing before 22:00; at 22:00 pool nightly's job is queued, once.
    d.clock.set(MONDAY + 21 * HOUR + 59 * MINUTE);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(media_jobs(&mut admin).is_empty());
    d.clock.set(MONDAY + 22 * HOUR);
    d.wait_for("the nightly tape job", || {
        !media_jobs(&mut admin).is_empty()
    });
    let request = wait_alert(&d, &mut admin, "media-request");
    let msg = request["message"].as_str().unwrap().to_string();
    assert!(msg.contains("import"), "{msg}");
    let job = media_jobs(&mut admin)[0].clone();
    assert_eq!(job["status"], json!("running"), "{job}");
    assert_eq!(job["identity"], json!("scheduler"));

    // The operator brings what the day's procedure asks for.
    let plan = book.today("nightly", monday).unwrap();
    assert!(!plan.load.is_empty(), "{plan:?}");
    for b in &plan.load {
        lib.insert(b, Some(SPEC)).unwrap();
    }
    let mut ch = lib.changer_handle();
    book.import(
        "nightly",
        &plan.load,
        monday,
        Some(&mut ch as &mut dyn MediaChanger),
    )
    .unwrap();
    let done = wait_job(&mut admin, &job["id"]);
    assert_eq!(done["status"], json!("success"), "{done}");
    let written = done["messages"].to_string();
    let first = &plan.job.as_ref().unwrap().cartridges[0];
    assert!(written.contains(first.as_str()), "{written}");
    assert!(alerts(&mut admin, "media-request").is_empty());
    let inv = book.inventory("nightly").unwrap();
    let cart = inv.cart(first).unwrap();
    assert!(
        matches!(cart.content, Content::Writing | Content::Full),
        "{cart:?}"
    );
    assert_eq!(cart.place, Place::Library);
    let set = cart.set.clone().unwrap();
    assert!(
        !cat.tape_objects(&cat.media_set(&set).unwrap().id)
            .unwrap()
            .is_empty()
    );
    let log = std::fs::read_to_string(
        d.dir
            .path()
            .join(format!("state/jobs/{}.log", job["id"].as_i64().unwrap())),
    )
    .unwrap();
    assert!(log.contains("waiting for cartridges"), "{log}");
    assert!(log.contains(&format!("labelled {first}")), "{log}");

    // A restore drill from the tape copy: the set is read back through the
    // library into a sandbox and every file verified against the manifest.
    let j = admin.ok("drill_run", json!({"asset": "books", "from": "tape"}));
    let done = wait_job(&mut admin, &j["job"]);
    assert_eq!(done["status"], json!("success"), "{done}");
    let drill = admin.ok("drill_list", json!({}))[0].clone();
    assert_eq!(drill["result"], json!("pass"), "{drill}");
    assert_eq!(drill["source"], json!("tape"));
    let copy = drill["copy"].as_str().unwrap();
    assert!(
        copy.contains(&set[..8]) && copy.contains(first.as_str()),
        "{copy}"
    );
    assert_eq!(drill["files"], json!(2), "{drill}");

    // The tape copy read back in full, on demand: every object
    // authenticated and compared with the store.
    let v = admin.ok("verify_run", json!({"what": "tape", "name": "nightly"}));
    let done = wait_job(&mut admin, &v["jobs"][0]);
    assert_eq!(done["status"], json!("success"), "{done}");
    assert_eq!(done["kind"], json!("verify"));
    let said = done["messages"].to_string();
    assert!(
        said.contains(&set[..8]) && said.contains("all equal"),
        "{said}"
    );

    // Pool late's job (22:30) waits for cartridges that never come; the
    // operator cancels it.
    d.clock.set(MONDAY + 22 * HOUR + 30 * MINUTE);
    wait_alert(&d, &mut admin, "media-request");
    let late_job = media_jobs(&mut admin)
        .into_iter()
        .find(|j| j["id"] != job["id"])
        .unwrap();
    admin.ok("job_cancel", json!({"id": late_job["id"]}));
    let j = wait_job(&mut admin, &late_job["id"]);
    assert_eq!(j["status"], json!("cancelled"), "{j}");
    assert!(alerts(&mut admin, "media-request").is_empty());

    // Tuesday: a second backup; nightly continues its set on the
    // cartridge in the library at once. Late waits again, then gives up
    // after an hour with a media-timeout alert.
    std::fs::write(src.join("tuesday.txt"), "new on tuesday\n").unwrap();
    d.clock.set(MONDAY + DAY + HOUR);
    let j = admin.ok("job_run", json!({"asset": "books", "level": "incremental"}));
    assert_eq!(wait_job(&mut admin, &j["job"])["status"], json!("success"));
    d.clock.set(MONDAY + DAY + 22 * HOUR + 30 * MINUTE);
    d.wait_for("Tuesday's two tape jobs", || {
        media_jobs(&mut admin).len() == 4
    });
    let tuesday: Vec<Value> = media_jobs(&mut admin)
        .into_iter()
        .filter(|j| j["id"] != job["id"] && j["id"] != late_job["id"])
        .collect();
    let ours = tuesday
        .iter()
        .find(|j| j["scope"].to_string().contains("pool:nightly"))
        .unwrap();
    let theirs = tuesday
        .iter()
        .find(|j| j["scope"].to_string().contains("pool:late"))
        .unwrap();
    let ours = wait_job(&mut admin, &ours["id"]);
    assert_eq!(ours["status"], json!("success"), "{ours}");
    assert!(ours["messages"].to_string().contains(&set[..8]), "{ours}");
    wait_alert(&d, &mut admin, "media-request");
    d.clock.advance(HOUR + MINUTE);
    let j = wait_job(&mut admin, &theirs["id"]);
    assert_eq!(j["status"], json!("failed"), "{j}");
    assert!(j["messages"].to_string().contains("gave up"), "{j}");
    let timeout = wait_alert(&d, &mut admin, "media-timeout");
    assert!(
        timeout["message"].as_str().unwrap().contains("LT0001L9"),
        "{timeout}"
    );
    assert!(alerts(&mut admin, "media-request").is_empty());

    // A restart the same day queues nothing again.
    let before = media_jobs(&mut admin).len();
    drop(admin);
    d.stop();
    d.boot(None);
    d.next_step();
    let mut admin = d.client();
    admin.login("admin", "correct horse battery", &d.code(&secret));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(media_jobs(&mut admin).len(), before);
    let audit = admin.ok("audit_list", json!({"filter": {"action": "job.finish"}}));
    assert!(audit.to_string().contains("pool:nightly"), "{audit}");
}

/// The daily procedure through the control API (what the console shell's
/// `media …` commands send): the plan and its checklist, export with a
/// transfer manifest (the cartridge really moves to a mail slot), the
/// courier's pickup and the vault's receipt, the chain of custody, every
/// step audited; steps out of order, ahead of their day or without fresh
/// MFA for a disposal are refused.
#[test]
fn the_daily_rotation_procedure_through_the_api() {
    let d = TestDaemon::start_with(|c| {
        c.auth.session_idle = coffer_types::api::Duration(30 * 86_400);
        c.tape.poll_every = coffer_types::api::Duration(1);
        c.tape.jobs = vec![cofferd::config::TapeJob {
            pool: "gfs".into(),
            at: "22:00".into(),
            profiles: Vec::new(),
        }];
    });
    let lib = VirtualLibrary::create(
        &d.dir.path().join("vtl"),
        &VtlOptions {
            drives: 1,
            slots: 8,
            ie_slots: 4,
            capacity: SPEC.capacity,
            early_warning: SPEC.early_warning,
            cartridges: 6,
            worm: 0,
            cleaning: 0,
            prefix: "AP".into(),
        },
    )
    .unwrap();
    let barcodes: Vec<String> = lib
        .changer_handle()
        .inventory()
        .unwrap()
        .slots
        .iter()
        .filter_map(|e| e.barcode.clone())
        .collect();
    let (mut admin, secret) = d.admin();
    let src = sample_tree(d.dir.path());
    admin.ok("asset_add", json!({"asset": asset("books", &src, None)}));
    // A Friday: the weekly full.
    let friday = Day::ymd(2026, 11, 27);
    d.clock.set(MONDAY + 4 * DAY + HOUR);
    let j = admin.ok("job_run", json!({"asset": "books", "level": "full"}));
    assert_eq!(wait_job(&mut admin, &j["job"])["status"], json!("success"));
    let cat = Catalog::open(&d.dir.path().join("store/catalog.db")).unwrap();
    let book = Book::new(&cat, "operator", MONDAY);
    let mut p = PoolPolicy::gfs("gfs", friday);
    p.vault = Some("iron".into());
    book.put_pool(&p).unwrap();
    book.add_cartridges("gfs", &barcodes, true, friday).unwrap();
    let pools = admin.ok("media_pools", Value::Null);
    assert_eq!(
        pools[0]["cartridges"].as_array().unwrap().len(),
        6,
        "{pools}"
    );

    let today = admin.ok("media_today", json!({"pool": "gfs"}));
    assert!(
        today[0]["text"]
            .as_str()
            .unwrap()
            .contains("Tonight's tape job"),
        "{today}"
    );
    d.clock.set(MONDAY + 4 * DAY + 22 * HOUR);
    d.wait_for("Friday's tape job", || !media_jobs(&mut admin).is_empty());
    let job = media_jobs(&mut admin)[0].clone();
    assert_eq!(wait_job(&mut admin, &job["id"])["status"], json!("success"));

    // The days after: follow the procedure through the API.
    let (mut exported, mut sent, mut received) = (Vec::new(), 0, 0);
    for k in 1..=5 {
        d.clock.set(MONDAY + (4 + k) * DAY + 9 * HOUR);
        let day = friday.plus(k as i32).to_string();
        let plan = admin.ok("media_today", json!({"pool": "gfs"}))[0]["plan"].clone();
        assert_eq!(plan["day"], json!(day), "{plan}");
        let list = |key: &str| -> Vec<String> {
            plan[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        let due = list("due_at_vault");
        if !due.is_empty() {
            admin.ok(
                "media_step",
                json!({"step": {"action": "received", "barcodes": due}}),
            );
            received += due.len();
        }
        let export: Vec<String> = plan["export"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["barcode"].as_str().unwrap().to_string())
            .collect();
        if !export.is_empty() {
            let r = admin.ok(
                "media_step",
                json!({"step": {"action": "export", "barcodes": export}}),
            );
            assert!(r["manifest"].as_i64().is_some(), "{r}");
            exported.extend(export);
        }
        if !list("send").is_empty() {
            let manifests = admin.ok("media_manifest", json!({}));
            for m in manifests.as_array().unwrap() {
                if m["direction"] == "to-vault" && m["sent_ms"].is_null() {
                    let one = admin.ok("media_manifest", json!({"id": m["id"]}));
                    assert_eq!(one["manifest"]["barcodes"], m["barcodes"], "{one}");
                    admin.ok(
                        "media_step",
                        json!({"step": {"action": "sent", "manifest": m["id"]}}),
                    );
                    sent += 1;
                }
            }
        }
    }
    assert!(!exported.is_empty(), "the newest full goes to the vault");
    assert!(
        sent >= 1 && received >= 1,
        "sent {sent}, received {received}"
    );
    let b = &exported[0];
    // The export moved the cartridge into a mail slot of the library.
    assert!(
        lib.changer_handle()
            .inventory()
            .unwrap()
            .ie_slots
            .iter()
            .any(|e| e.barcode.as_deref() == Some(b.as_str()))
    );
    let custody = admin.ok("media_custody", json!({"barcode": b}));
    let events: Vec<&str> = custody
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for step in ["written", "exported", "sent", "received-at-vault"] {
        assert!(events.contains(&step), "{b}: {events:?}");
    }
    assert!(
        custody
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["identity"] == json!("admin"))
    );
    let audit = admin.ok("audit_list", json!({"filter": {"action": "media.step"}}));
    assert!(audit.as_array().unwrap().len() >= 3, "{audit}");
    assert!(audit.to_string().contains(b.as_str()), "{audit}");

    // Out of order, ahead of its day, or a disposal without fresh MFA.
    let m = admin.fails(
        "media_step",
        json!({"step": {"action": "received", "barcodes": [b]}}),
        "invalid",
    );
    assert!(m.contains(b.as_str()), "{m}");
    let m = admin.fails(
        "media_step",
        json!({"step": {"action": "cleaned", "pool": "gfs"}, "date": "2099-01-01"}),
        "invalid",
    );
    assert!(m.contains("never ahead"), "{m}");
    admin.fails(
        "media_step",
        json!({"step": {"action": "dispose", "barcodes": [b], "method": "shredded"}}),
        "fresh_mfa_required",
    );
    fresh(&d, &mut admin, &secret);
    let m = admin.fails(
        "media_step",
        json!({"step": {"action": "dispose", "barcodes": [b], "method": "shredded"}}),
        "invalid",
    );
    assert!(m.contains("only an expired"), "{m}");

    // 3-2-1-1-0: the store and the vaulted tape set hold the newest
    // snapshot (2 copies, 2 media, offsite, offline); no third copy, and no
    // drill has verified a copy yet.
    let c = admin.ok("compliance", Value::Null);
    let books = &c[0];
    assert_eq!(books["asset"], json!("books"));
    assert_eq!(books["met"], json!(false));
    let copies = books["copies"].as_array().unwrap();
    assert_eq!(copies.len(), 2, "{books}");
    let tape = copies.iter().find(|x| x["kind"] == json!("tape")).unwrap();
    assert_eq!(tape["offsite"], json!(true), "{tape}");
    assert_eq!(tape["immutable_or_offline"], json!(true), "{tape}");
    assert!(
        tape["name"].as_str().unwrap().contains(b.as_str()),
        "{tape}"
    );
    assert!(books["offsite_age_s"].as_i64().is_some(), "{books}");
    let missing: Vec<&str> = books["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(
        missing,
        [
            "3 copies: 2 of the newest snapshot",
            "0 errors: no restore drill has verified a copy yet"
        ],
        "{books}"
    );
    // A drill that passes answers the second.
    let j = admin.ok("drill_run", json!({"asset": "books"}));
    assert_eq!(wait_job(&mut admin, &j["job"])["status"], json!("success"));
    let status = admin.ok("status", Value::Null);
    let missing = status["compliance"][0]["missing"].clone();
    assert_eq!(
        missing,
        json!(["3 copies: 2 of the newest snapshot"]),
        "{status}"
    );
}
