//! Media rotation from the shell: a GFS pool with short retentions on the
//! virtual library, followed for five weeks as the operator would, every
//! step a `coffer media …` command: the day's procedure, real tape writes
//! of each night's set onto the cartridges the plan chose (recycling
//! expired ones), exports through the mail slots, courier pickups on
//! printed manifests, vault receipts, recalls, imports, cleaning; then the
//! chain of custody of a cartridge that went round.

use std::collections::HashSet;
use std::fs;

use serde_json::Value;

use crate::support::*;

#[test]
fn five_weeks_of_gfs_rotation_from_the_shell() {
    let env = Env::new();
    let vtl = env.path("vtl");
    let vtl_s = vtl.to_str().unwrap().to_string();
    let with_lib = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.push("--library".into());
        v.push(vtl_s.clone());
        v
    };
    env.ok(&[
        "vtl",
        "create",
        &vtl_s,
        "--slots",
        "14",
        "--ie-slots",
        "6",
        "--cartridges",
        "12",
        "--capacity",
        "64M",
        "--early-warning",
        "4M",
        "--prefix",
        "GF",
    ]);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("ledger.txt"), "day 0\n").unwrap();
    env.backup("books", "full", &src, 0);
    env.ok(&with_lib(&[
        "media",
        "label",
        "--all-blank",
        "--pool",
        "gfs",
    ]));

    // A pool whose scheme cannot work is refused.
    let r = env.run(&[
        "media", "pool", "add", "bad", "--scheme", "hanoi", "--sets", "12",
    ]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stderr.contains("2 to 8 sets"), "{}", r.stderr);

    let start = "2025-01-06";
    let r = env.ok(&[
        "media",
        "pool",
        "add",
        "gfs",
        "--vault",
        "iron",
        "--start",
        start,
        "--keep-daily-weeks",
        "1",
        "--keep-weekly-weeks",
        "1",
        "--keep-monthly-months",
        "1",
        "--courier-days",
        "1",
        "--pickups",
        "tue,fri",
    ]);
    assert!(r.stdout.contains("needs"), "{}", r.stdout);
    let inv = env
        .ok(&with_lib(&["--json", "changer", "inventory"]))
        .json();
    let mut barcodes: Vec<String> = inv["slots"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["barcode"].as_str().map(String::from))
        .filter(|b| !b.starts_with("CLN"))
        .collect();
    barcodes.sort();
    let mut add = vec!["media", "add", "gfs"];
    add.extend(barcodes.iter().map(String::as_str));
    env.ok(&add);
    // A barcode in a pool already, and a WORM cartridge in a recycling
    // pool: refused.
    let r = env.run(&["media", "add", "gfs", &barcodes[0]]);
    assert!(
        r.code != 0 && r.stderr.contains("already in pool gfs"),
        "{}",
        r.stderr
    );
    let r = env.run(&["media", "add", "gfs", "WRM001LZ"]);
    assert!(r.code != 0 && r.stderr.contains("WORM"), "{}", r.stderr);

    let day0 = coffer_media::rotation::Day::parse(start).unwrap();
    let mut writes = 0;
    let mut recycled = 0;
    let mut sent_manifests = 0;
    for k in 0..35 {
        let d = day0.plus(k).to_string();
        let r = env.run(&[
            "--json", "media", "rotation", "today", "--pool", "gfs", "--date", &d,
        ]);
        assert!(r.code == 0 || r.code == 3, "{}", r.stderr);
        let plan = r.json()[0].clone();
        assert_eq!(plan["scratch_short"], 0, "{d}: {plan}");
        let list = |key: &str| -> Vec<String> {
            plan[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        env.ok(&["media", "rotation", "settle", "--pool", "gfs", "--date", &d]);
        for key in ["due_at_vault", "due_onsite"] {
            let b = list(key);
            if !b.is_empty() {
                let mut a = vec!["media", "received", "--date", &d];
                a.extend(b.iter().map(String::as_str));
                env.ok(&a);
            }
        }
        // The vault ships yesterday's recalls.
        let manifests = env.ok(&["--json", "media", "manifest"]).json();
        for m in manifests.as_array().unwrap() {
            if m["direction"] == "to-site" && m["sent_ms"].is_null() {
                env.ok(&["media", "sent", &m["id"].to_string(), "--date", &d]);
            }
        }
        let load = list("load");
        if !load.is_empty() {
            let inv = env
                .ok(&with_lib(&["--json", "changer", "inventory"]))
                .json();
            let here: HashSet<String> = ["slots", "mail_slots"]
                .iter()
                .flat_map(|k| inv[*k].as_array().unwrap().iter())
                .filter_map(|e| e["barcode"].as_str().map(String::from))
                .collect();
            for b in &load {
                if !here.contains(b) {
                    env.ok(&["vtl", "insert", &vtl_s, b]);
                }
            }
            let mut a = vec!["media", "import", "--date", &d];
            a.extend(load.iter().map(String::as_str));
            env.ok(&with_lib(&a));
        }
        if !plan["job"].is_null() {
            fs::write(src.join("ledger.txt"), format!("day {k}\n")).unwrap();
            env.backup("books", "incremental", &src, 0);
            let r = env.ok(&with_lib(&[
                "media", "write", "--pool", "gfs", "--date", &d,
            ]));
            recycled += r.stdout.matches("recycled").count();
            writes += 1;
        }
        let export: Vec<String> = plan["export"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["barcode"].as_str().unwrap().to_string())
            .collect();
        if !export.is_empty() {
            let mut a = vec!["media", "export", "--date", &d];
            a.extend(export.iter().map(String::as_str));
            let r = env.ok(&with_lib(&a));
            assert!(r.stdout.contains("transfer manifest"), "{}", r.stdout);
        }
        if !list("send").is_empty() {
            let manifests = env.ok(&["--json", "media", "manifest"]).json();
            for m in manifests.as_array().unwrap() {
                if m["direction"] == "to-vault" && m["sent_ms"].is_null() {
                    let id = m["id"].to_string();
                    // The printed manifest goes with the courier.
                    let printed = env.ok(&["media", "manifest", &id]).stdout;
                    assert!(printed.contains("TRANSFER MANIFEST"), "{printed}");
                    let inv = env
                        .ok(&with_lib(&["--json", "changer", "inventory"]))
                        .json();
                    for e in inv["mail_slots"].as_array().unwrap() {
                        if let Some(b) = e["barcode"].as_str()
                            && m["barcodes"].as_array().unwrap().iter().any(|x| x == b)
                        {
                            env.ok(&["vtl", "take", &vtl_s, "--ie-slot", &e["index"].to_string()]);
                        }
                    }
                    env.ok(&["media", "sent", &id, "--date", &d]);
                    sent_manifests += 1;
                }
            }
        }
        let recall: Vec<(String, String)> = plan["recall"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["barcode"].as_str().unwrap().to_string(),
                    r["needed_by"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        for (b, by) in &recall {
            env.ok(&["media", "recall", b, "--needed-by", by, "--date", &d]);
        }
        if plan["cleaning_due"] == true {
            env.ok(&["media", "cleaned", "gfs", "--date", &d]);
        }
    }
    assert_eq!(writes, 25, "five weeks of working days");
    assert!(
        recycled >= 2,
        "expired cartridges were relabelled and reused: {recycled}"
    );
    assert!(sent_manifests >= 4, "{sent_manifests}");

    // Nothing is recorded ahead of its day.
    let r = env.run(&[
        "media",
        "rotation",
        "settle",
        "--pool",
        "gfs",
        "--date",
        "2099-01-01",
    ]);
    assert!(
        r.code != 0 && r.stderr.contains("after today"),
        "{}",
        r.stderr
    );
    // A rotation pool's plan chooses the set.
    let r = env.run(&with_lib(&["media", "write", "--pool", "gfs", "--new-set"]));
    assert!(
        r.code != 0 && r.stderr.contains("plan chooses the set"),
        "{}",
        r.stderr
    );

    // The day's procedure as text.
    let r = env.run(&[
        "media",
        "rotation",
        "today",
        "--pool",
        "gfs",
        "--date",
        "2025-02-10",
    ]);
    assert!(
        r.stdout.contains("Media rotation, pool gfs, 2025-02-10"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("Tonight's tape job"), "{}", r.stdout);

    // The chain of custody of a cartridge that went to the vault.
    let chain = env.ok(&["--json", "media", "custody"]).json();
    let went: &Value = chain
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "received-at-vault")
        .unwrap();
    let b = went["barcode"].as_str().unwrap();
    let mine = env.ok(&["media", "custody", b]).stdout;
    for step in [
        "registered",
        "written",
        "exported",
        "sent",
        "received-at-vault",
    ] {
        assert!(mine.contains(step), "{b}: {mine}");
    }
    let pool = env.ok(&["media", "pool", "show", "gfs"]).stdout;
    assert!(pool.contains("vaulted"), "{pool}");

    // A cartridge holding a kept set is found damaged: out of use at once,
    // destroyed only once its set expires. A scratch one is never destroyed.
    let shown = env.ok(&["--json", "media", "pool", "show", "gfs"]).json();
    let carts = shown["cartridges"].as_array().unwrap();
    let with = |content: &str| {
        carts
            .iter()
            .find(|c| c["content"] == content && c["place"]["place"] == "library")
            .map(|c| c["barcode"].as_str().unwrap().to_string())
    };
    let full = with("full").or_else(|| with("writing")).unwrap();
    let r = env.ok(&["media", "damaged", &full, "--date", "2025-02-09"]);
    assert!(r.stdout.contains("damaged"), "{}", r.stdout);
    let r = env.run(&[
        "media",
        "dispose",
        &full,
        "--method",
        "shredded",
        "--date",
        "2025-02-09",
    ]);
    assert!(
        r.code != 0 && r.stderr.contains("still kept"),
        "{}",
        r.stderr
    );
    // The spare cartridges stay scratch in the library.
    let scratch = with("scratch").expect("a scratch cartridge in the library");
    let r = env.run(&[
        "media",
        "dispose",
        &scratch,
        "--method",
        "shredded",
        "--date",
        "2025-02-09",
    ]);
    assert!(
        r.code != 0 && r.stderr.contains("only an expired"),
        "{}",
        r.stderr
    );
    let custody = env.ok(&["media", "custody", &full]).stdout;
    assert!(custody.contains("damaged"), "{custody}");
}
