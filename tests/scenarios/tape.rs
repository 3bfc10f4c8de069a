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
    let r = env.run(&["media", "list"]);
    assert!(r.code == 0 || r.stderr.contains("library"), "{}", r.stderr);
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
    env.backup("srv", "full", &env.path("store"), 0);
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
