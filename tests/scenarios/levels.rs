//! Full, incremental and differential: each reads what its level says, and
//! every snapshot restores on its own to the tree as it was.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::*;

fn stat(snap: &serde_json::Value, k: &str) -> u64 {
    snap["snapshot"]["stats"][k].as_u64().unwrap()
}

/// Waits out the racy window: a file changed within a second before a
/// backup started is read again by the next one, however unchanged it looks.
fn settle() {
    std::thread::sleep(std::time::Duration::from_millis(1100));
}

fn bump(p: &Path, data: &[u8], t: i64) {
    std::fs::write(p, data).unwrap();
    set_mtime(p, t, 0);
}

#[test]
fn levels_read_only_what_changed_and_every_snapshot_restores_alone() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    for i in 0..20 {
        std::fs::write(
            src.join(format!("d/f{i:02}")),
            noise(10_000 + i * 100, i as u64),
        )
        .unwrap();
    }
    std::fs::write(src.join("big"), noise(3 << 20, 99)).unwrap();
    let mut states: Vec<(String, BTreeMap<Vec<u8>, Meta>)> = Vec::new();

    settle();
    let full = env.backup("web-01", "full", &src, 0);
    assert_eq!(stat(&full, "files_read"), 21);
    assert_eq!(stat(&full, "files_unchanged"), 0);
    states.push((full["snapshot"]["id"].as_str().unwrap().into(), tree(&src)));

    // change one file, add one: the incremental reads exactly those two
    bump(&src.join("d/f03"), b"changed once", 1_700_000_000);
    std::fs::write(src.join("d/new"), b"added").unwrap();
    settle();
    let inc1 = env.backup("web-01", "incremental", &src, 0);
    assert_eq!(inc1["snapshot"]["level"], "incremental");
    assert_eq!(stat(&inc1, "files_read"), 2);
    assert_eq!(stat(&inc1, "files_unchanged"), 20);
    assert_eq!(inc1["snapshot"]["reference"], full["snapshot"]["id"]);
    states.push((inc1["snapshot"]["id"].as_str().unwrap().into(), tree(&src)));

    // change another: the next incremental reads only it (reference: the incremental)
    bump(&src.join("d/f07"), b"changed twice", 1_700_000_100);
    settle();
    let inc2 = env.backup("web-01", "incremental", &src, 0);
    assert_eq!(stat(&inc2, "files_read"), 1);
    assert_eq!(inc2["snapshot"]["reference"], inc1["snapshot"]["id"]);
    states.push((inc2["snapshot"]["id"].as_str().unwrap().into(), tree(&src)));

    // a metadata-only change (ctime moves) is read again too
    std::fs::set_permissions(
        src.join("d/f11"),
        std::os::unix::fs::PermissionsExt::from_mode(0o640),
    )
    .unwrap();
    // delete one: the differential reads everything changed since the full
    std::fs::remove_file(src.join("d/f15")).unwrap();
    settle();
    let diff = env.backup("web-01", "differential", &src, 0);
    assert_eq!(diff["snapshot"]["level"], "differential");
    assert_eq!(diff["snapshot"]["reference"], full["snapshot"]["id"]);
    assert_eq!(
        stat(&diff, "files_read"),
        4,
        "f03, new, f07, f11 changed since the full"
    );
    // nothing new to store for content already in the store
    assert_eq!(stat(&diff, "bytes_new"), 0, "{diff}");
    states.push((diff["snapshot"]["id"].as_str().unwrap().into(), tree(&src)));

    // an unchanged big file is not read again, and dedup stores no new data
    let inc3 = env.backup("web-01", "incremental", &src, 0);
    assert_eq!(stat(&inc3, "files_read"), 0);
    assert_eq!(stat(&inc3, "bytes_new"), 0);

    for (i, (id, state)) in states.iter().enumerate() {
        let target = env.path(&format!("restore-{i}"));
        let r = env.restore(id, &target, &[]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        assert_same_tree(state, &tree(&target));
    }

    // the listing shows all five with their levels
    let list = env.ok(&["snapshots", "--json"]).json();
    let levels: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["level"].as_str().unwrap())
        .collect();
    assert_eq!(
        levels,
        [
            "full",
            "incremental",
            "incremental",
            "differential",
            "incremental"
        ]
    );
    for s in list.as_array().unwrap() {
        assert!(
            s["id"].is_string()
                && s["asset"] == "web-01"
                && s["time"].as_str().unwrap().ends_with('Z')
        );
    }
}

#[test]
fn incremental_without_a_full_runs_as_full_and_says_so() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), b"a").unwrap();
    settle();
    let r = env.backup("db-01", "incremental", &src, 0);
    assert_eq!(r["snapshot"]["level"], "full");
    assert!(r["notice"].as_str().unwrap().contains("ran as a full"));
    let d = env.backup("db-01", "differential", &src, 0);
    assert_eq!(d["snapshot"]["level"], "differential");
    assert_eq!(stat(&d, "files_read"), 0);
    // another asset has its own chain
    let other = env.backup("db-02", "differential", &src, 0);
    assert_eq!(other["snapshot"]["level"], "full");
    assert_eq!(
        stat(&other, "bytes_new"),
        0,
        "same content deduplicates across assets"
    );
}

#[test]
fn a_file_changed_just_before_a_backup_is_read_again() {
    // Same size, same mtime (reset), same inode: only the timing tells.
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let f = src.join("racy");
    bump(&f, b"version 1", 1_700_000_000);
    env.backup("r", "full", &src, 0);
    bump(&f, b"version 2", 1_700_000_000);
    let inc = env.backup("r", "incremental", &src, 0);
    assert_eq!(stat(&inc, "files_read"), 1, "a racy file was trusted");
    let t = env.path("out");
    assert_eq!(env.restore("latest", &t, &[]).code, 0);
    assert_eq!(std::fs::read(t.join("racy")).unwrap(), b"version 2");
}

#[test]
fn unreadable_and_changing_files_are_warnings_naming_the_path() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("fine"), b"fine").unwrap();
    let growing = src.join("growing.log");
    std::fs::write(&growing, noise(24 << 20, 5)).unwrap();
    std::fs::write(src.join("locked"), b"no access").unwrap();
    std::fs::hard_link(src.join("locked"), src.join("m-second-name")).unwrap();
    std::fs::set_permissions(
        src.join("locked"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();

    // A writer appends to growing.log while the backup runs (bounded: 20 s at most).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, p) = (stop.clone(), growing.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
            let t = std::time::Instant::now();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && t.elapsed().as_secs() < 20 {
                f.write_all(&[b'x'; 4096]).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(20));
    // As root the mode-000 file would be readable: the backup runs as nobody.
    let out = env.run_unprivileged(&["--json", "backup", "--asset", "w", src.to_str().unwrap()]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let stdout = out.stdout.clone();
    assert_eq!(out.code, 3, "{stdout}\n{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let warnings: Vec<String> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("locked") && w.contains("ermission denied")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("growing.log") && w.contains("changed while being read")),
        "{warnings:?}"
    );
    // the job log says so too
    let log = env.ok(&["log", "--json"]).json();
    assert_eq!(log[0]["status"], "warning");
    assert!(
        log[0]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m.as_str().unwrap().contains("locked"))
    );
    // the readable file is in the snapshot
    let target = env.path("out");
    assert_eq!(env.restore("latest", &target, &[]).code, 0);
    assert_eq!(std::fs::read(target.join("fine")).unwrap(), b"fine");
}
