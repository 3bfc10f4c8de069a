//! Tape, as an operator drives it from the shell: a virtual library, labels,
//! a backup written to a media set spanning three cartridges, and then a new
//! machine with nothing but the library's cartridges and the passphrase
//! recovering the store and restoring the tree exactly.

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::support::*;

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn backup_to_a_three_cartridge_set_then_recover_on_a_new_machine() {
    let env = Env::new();
    let vtl = env.path("vtl");
    let lib = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.push("--library".into());
        v.push(vtl.to_string_lossy().into_owned());
        v
    };
    env.ok(&[
        "vtl",
        "create",
        vtl.to_str().unwrap(),
        "--slots",
        "10",
        "--ie-slots",
        "2",
        "--capacity",
        "4M",
        "--early-warning",
        "2M",
    ]);
    let src = env.path("src");
    let features = rich_tree(&src);
    for i in 0..9 {
        fs::write(src.join(format!("big{i}.bin")), noise(900_000, i)).unwrap();
    }
    let snap = env.backup("srv", "full", &src, 0);
    let snap_id = snap["snapshot"]["id"].as_str().unwrap().to_string();

    let r = env.ok(&lib(&["--json", "media", "label", "--all-blank"]));
    assert_eq!(r.json().as_array().unwrap().len(), 7, "{}", r.stdout);
    let r = env.ok(&lib(&["--json", "media", "write"]));
    let w = r.json();
    let carts = w["cartridges"].as_array().unwrap();
    assert!(carts.len() >= 3, "the set spans {carts:?}");
    let inv = env.ok(&lib(&["--json", "changer", "inventory"])).json();
    assert!(
        inv["drives"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["full"] == false),
        "drives unloaded"
    );
    let list = env.ok(&lib(&["--json", "media", "list"])).json();
    assert_eq!(list["media_sets"].as_array().unwrap().len(), 1);
    let log = env.ok(&["--json", "log", "--kind", "media-write"]).json();
    assert_eq!(log.as_array().unwrap().len(), 1, "{log}");

    // The new machine: its own empty directory, a copy of the cartridges,
    // the passphrase. No store, no catalog.
    let new = tempfile::tempdir().unwrap();
    copy_dir(&vtl, &new.path().join("vtl"));
    let target = new.path().join("restored");
    let out = Command::new(coffer_bin())
        .env("COFFER_PASSPHRASE", PASS)
        .env_remove("COFFER_STORE")
        .args([OsStr::new("--json"), OsStr::new("--store")])
        .arg(new.path().join("store"))
        .args(["media", "recover", "--restore", &snap_id, "--target"])
        .arg(&target)
        .arg("--library")
        .arg(new.path().join("vtl"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "recover failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rec["cartridges"], w["cartridges"]);
    assert_eq!(rec["lost"].as_array().unwrap().len(), 0);
    assert_eq!(rec["snapshots"], 1);
    assert_same_tree(&tree(&src), &tree(&target));
    eprintln!("tree features covered: {features:?}");
}

#[test]
fn tape_commands_refuse_bad_requests_clearly() {
    let env = Env::new();
    let vtl = env.path("vtl");
    let v = vtl.to_str().unwrap();
    env.ok(&[
        "vtl",
        "create",
        v,
        "--slots",
        "4",
        "--capacity",
        "4M",
        "--early-warning",
        "1M",
        "--worm",
        "1",
    ]);
    // No library given.
    let r = env
        .cmd()
        .env_remove("COFFER_LIBRARY")
        .args(["drive", "status"])
        .output()
        .unwrap();
    assert_ne!(r.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&r.stderr).contains("--library"));
    // A cartridge that is not there, a bad element, a malformed size.
    let r = env.run(&["drive", "load", "NOPE01L9", "--library", v]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("NOPE01L9"), "{}", r.stderr);
    let r = env.run(&["changer", "move", "shelf:1", "slot:0", "--library", v]);
    assert!(r.stderr.contains("not an element kind"), "{}", r.stderr);
    let r = env.run(&[
        "vtl",
        "create",
        &env.path("v2").to_string_lossy(),
        "--capacity",
        "lots",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    // Writing with no labelled cartridge says how to label one.
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), b"a").unwrap();
    env.backup("srv", "full", &src, 0);
    let r = env.run(&["media", "write", "--library", v]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("coffer media label"), "{}", r.stderr);
    // The WORM cartridge: labelled once, never relabelled.
    env.ok(&["media", "label", "CF0001LZ", "--library", v]);
    let r = env.run(&["media", "label", "CF0001LZ", "--force", "--library", v]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("WORM"), "{}", r.stderr);
    // A malformed library state file.
    fs::write(vtl.join("library.json"), "{").unwrap();
    let r = env.run(&["changer", "inventory", "--library", v]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("library.json"), "{}", r.stderr);
}

#[test]
fn drive_changer_and_restore_commands_from_the_shell() {
    let env = Env::new();
    let vtl = env.path("vtl");
    let v = vtl.to_str().unwrap().to_string();
    let lib = |args: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        a.push("--library".into());
        a.push(v.clone());
        a
    };
    env.ok(&[
        "vtl",
        "create",
        &v,
        "--slots",
        "6",
        "--ie-slots",
        "2",
        "--capacity",
        "16M",
        "--early-warning",
        "4M",
    ]);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..4 {
        fs::write(src.join(format!("f{i}")), noise(500_000, 40 + i)).unwrap();
    }
    let snap = env.backup("srv", "full", &src, 0)["snapshot"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Drive: load, status, unload back to its slot.
    env.ok(&lib(&["drive", "load", "CF0001L9"]));
    let st = env.ok(&lib(&["--json", "drive", "status"])).json();
    assert_eq!(st["barcode"], "CF0001L9");
    assert_eq!(st["ready"], true);
    let r = env.ok(&lib(&["--json", "drive", "unload"])).json();
    assert_eq!(r["to"], "its slot");
    let st = env.ok(&lib(&["--json", "drive", "status"])).json();
    assert!(st["barcode"].is_null());

    // Changer: move by barcode, export to a mail slot, the operator takes it
    // out and brings it back, import.
    env.ok(&lib(&["changer", "move", "CF0002L9", "slot:5"]));
    let inv = env.ok(&lib(&["--json", "changer", "inventory"])).json();
    assert_eq!(inv["slots"][5]["barcode"], "CF0002L9");
    let e = env
        .ok(&lib(&["--json", "changer", "export", "CF0002L9"]))
        .json();
    assert_eq!(e["mail_slot"], 0);
    env.ok(&["vtl", "take", &v, "--ie-slot", "0"]);
    let inv = env.ok(&lib(&["--json", "changer", "inventory"])).json();
    assert!(
        inv.to_string().find("CF0002L9").is_none(),
        "out of the library"
    );
    env.ok(&["vtl", "insert", &v, "CF0002L9"]);
    env.ok(&lib(&["changer", "import"]));
    let inv = env.ok(&lib(&["--json", "changer", "inventory"])).json();
    assert!(
        inv["slots"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["barcode"] == "CF0002L9")
    );

    // A media set, then restore from it with the store's containers gone.
    env.ok(&lib(&["media", "label", "CF0001L9", "CF0002L9"]));
    env.ok(&lib(&["media", "write", &snap]));
    for c in containers(&env.store) {
        fs::remove_file(c).unwrap();
    }
    let target = env.path("restored");
    let r = env
        .ok(&lib(&[
            "--json",
            "media",
            "restore",
            &snap,
            "--target",
            target.to_str().unwrap(),
        ]))
        .json();
    assert_eq!(r["errors"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["cartridges"][0], "CF0001L9");
    assert!(r["media_job"].is_i64() && r["job"].is_i64());
    for i in 0..4 {
        assert_eq!(
            fs::read(target.join(format!("f{i}"))).unwrap(),
            noise(500_000, 40 + i)
        );
    }
    let log = env.ok(&["--json", "log", "--kind", "media-restore"]).json();
    assert_eq!(log.as_array().unwrap().len(), 1);
    // Eject puts the cartridge in a mail slot.
    env.ok(&lib(&["drive", "load", "CF0001L9"]));
    let r = env.ok(&lib(&["--json", "drive", "eject"])).json();
    assert_eq!(r["to"], "mail slot 0");
}
