//! Prune and garbage collection as an operator runs them in direct mode:
//! the dry run's reasons, the real run, `gc` killed with SIGKILL at random
//! moments and run again, and bad options refused.

use std::time::{Duration, Instant};

use crate::support::*;

/// Three backups of a tree that changes between them; returns the
/// snapshot ids (oldest first) and a copy of the newest tree.
fn three_generations(env: &Env) -> (Vec<String>, std::path::PathBuf) {
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut ids = Vec::new();
    for round in 0..3u64 {
        for i in 0..10u64 {
            let n = round * 6 + i;
            std::fs::write(src.join(format!("f{n:02}")), noise(300 << 10, n)).unwrap();
        }
        if round > 0 {
            for i in 0..6u64 {
                let _ = std::fs::remove_file(src.join(format!("f{:02}", (round - 1) * 6 + i)));
            }
        }
        let s = env.backup("files", "full", &src, 0);
        ids.push(s["snapshot"]["id"].as_str().unwrap().to_string());
    }
    (ids, src)
}

fn data_bytes(store: &std::path::Path) -> u64 {
    containers(store)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

#[test]
fn prune_explains_then_removes_and_gc_frees_what_only_they_referenced() {
    let env = Env::new();
    let (ids, src) = three_generations(&env);
    let expected = tree(&src);

    // The dry run: per snapshot, keep or remove and why.
    let r = env.ok(&["prune", "--dry-run", "--keep-last", "1"]);
    assert!(r.stdout.contains("files: keep 1, remove 2"), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!("keep    {}", &ids[2][..12])),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("last 1 of 1; expires after 1 newer snapshot"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("remove  {}", &ids[0][..12])),
        "{}",
        r.stdout
    );
    let j = env
        .ok(&["--json", "prune", "--dry-run", "--keep-last", "1"])
        .json();
    let snaps = j[0]["snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), 3);
    assert_eq!(snaps[0]["id"], ids[2].as_str());
    assert_eq!(snaps[0]["keep"], true);
    assert_eq!(snaps[0]["reasons"][0], "last 1 of 1");
    assert_eq!(snaps[2]["keep"], false);
    // Nothing changed.
    assert_eq!(
        env.ok(&["--json", "snapshots"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // Without any rule (and no profile in the register) everything is kept.
    let none = env.ok(&["prune", "--dry-run"]);
    assert!(
        none.stdout
            .contains("keep 3, remove 0 (no profile: everything is kept)"),
        "{}",
        none.stdout
    );

    let before = data_bytes(&env.store);
    let r = env.ok(&["--json", "prune", "--keep-last", "1"]).json();
    assert_eq!(r["stats"]["snapshots_removed"], 2);
    let left = env.ok(&["--json", "snapshots"]).json();
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["id"], ids[2].as_str());
    assert_eq!(
        data_bytes(&env.store),
        before,
        "prune deletes records, gc data"
    );

    let g = env.ok(&["--json", "gc"]).json();
    assert!(g["stats"]["bytes_freed"].as_u64().unwrap() > 0, "{g}");
    let after = data_bytes(&env.store);
    assert!(after < before, "{after} !< {before}");
    // What is left is what the kept snapshot needs, and nothing else.
    let dry = env.ok(&["--json", "gc", "--dry-run"]).json();
    assert_eq!(dry["delete"], serde_json::json!([]), "{dry}");
    assert_eq!(dry["compact"], serde_json::json!([]), "{dry}");
    env.ok(&["verify", "--read-data"]);
    let target = env.path("restored");
    let r = env.restore(&ids[2], &target, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_same_tree(&expected, &tree(&target));
    // Both runs are in the job log.
    let log = env.ok(&["log"]).stdout;
    assert!(log.contains("prune") && log.contains("gc"), "{log}");
}

#[test]
fn gc_killed_at_random_moments_loses_nothing_and_the_next_run_finishes() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut seed = 0x9e37_79b9_u64;
    let mut killed = 0;
    for round in 0..5u64 {
        // Two snapshots, the first forgotten: plenty to delete and compact.
        for i in 0..16u64 {
            std::fs::write(
                src.join(format!("f{i:02}")),
                noise(256 << 10, round * 100 + i),
            )
            .unwrap();
        }
        env.backup("kill", "full", &src, 0);
        for i in 0..12u64 {
            std::fs::write(
                src.join(format!("f{i:02}")),
                noise(256 << 10, round * 100 + 50 + i),
            )
            .unwrap();
        }
        env.backup("kill", "full", &src, 0);
        let expected = tree(&src);
        env.ok(&["prune", "--keep-last", "1"]);
        let mut child = env
            .cmd()
            .args(["--quiet", "gc", "--compact-below", "0.95"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % 120));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
        // The kept snapshot restores whole after the kill ...
        let snaps = env.ok(&["--json", "snapshots"]).json();
        let keep = snaps.as_array().unwrap().last().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let target = env.path(&format!("after-kill-{round}"));
        let r = env.restore(&keep, &target, &[]);
        assert_eq!(r.code, 0, "round {round}: {}", r.stderr);
        assert_same_tree(&expected, &tree(&target));
        // ... and a rerun finishes: nothing left to do, nothing damaged.
        let t = Instant::now();
        env.ok(&["gc", "--compact-below", "0.95"]);
        assert!(t.elapsed() < Duration::from_secs(120));
        let dry = env
            .ok(&["--json", "gc", "--dry-run", "--compact-below", "0.95"])
            .json();
        assert_eq!(dry["delete"], serde_json::json!([]), "round {round}: {dry}");
        assert_eq!(
            dry["compact"],
            serde_json::json!([]),
            "round {round}: {dry}"
        );
        env.ok(&["verify", "--read-data"]);
    }
    eprintln!("gc killed in {killed} of 5 rounds");
}

#[test]
fn bad_prune_and_gc_options_are_refused_clearly() {
    let env = Env::new();
    let r = env.run(&["gc", "--compact-below", "2"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("--compact-below is a share between 0 and 1"),
        "{}",
        r.stderr
    );
    let r = env.run(&["prune", "--dry-run", "--keep-within", "soon"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("duration"), "{}", r.stderr);
    let r = env.run(&["prune", "--keep-daily", "-3"]);
    assert_ne!(r.code, 0);
}

/// Clears the immutable attribute under `dir` so the scratch directory can
/// go (a test cannot wait for a lock to end).
fn unlock_all(dir: &std::path::Path) {
    let _ = std::process::Command::new("chattr")
        .args(["-R", "-i"])
        .arg(dir)
        .status();
}

#[test]
fn a_locked_snapshot_survives_prune_deletion_and_gc_and_keys_rotate_and_escrow() {
    let env = Env::new();
    let (ids, _) = three_generations(&env);

    // Lock the oldest for 30 days; shortening is refused.
    let r = env.ok(&[
        "lock", "set", &ids[0], "--until", "30d", "--reason", "audit",
    ]);
    assert!(r.stdout.contains("locked until"), "{}", r.stdout);
    let r = env.run(&["lock", "set", &ids[0], "--until", "1d"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("never shortened"), "{}", r.stderr);
    let r = env.run(&["lock", "set", &ids[0], "--until", "soon"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("neither a time"), "{}", r.stderr);
    let locks = env.ok(&["--json", "lock", "show"]).json();
    assert_eq!(locks[0]["active"], true, "{locks}");
    assert_eq!(locks[0]["reason"], "audit");

    // By hand: refused, with the reason; by policy: kept.
    let r = env.run(&["prune", "--snapshot", &ids[0]]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("refused: snapshot"), "{}", r.stdout);
    assert!(r.stdout.contains("retention-locked until"), "{}", r.stdout);
    let plan = env
        .ok(&["--json", "prune", "--dry-run", "--keep-last", "1"])
        .json();
    let oldest = &plan[0]["snapshots"][2];
    assert_eq!(oldest["keep"], true, "{plan}");
    assert_eq!(oldest["protected"], true, "{plan}");
    env.ok(&["prune", "--keep-last", "1"]);
    let left: Vec<String> = env
        .ok(&["--json", "snapshots"])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&ids[0]) && left.contains(&ids[2]));

    // On a filesystem with the attribute, not even root removes its files.
    let record = env.store.join("snapshots").join(&ids[0]);
    if is_root() && std::fs::remove_file(&record).is_err() {
        assert!(record.exists());
    } else {
        skip("immutable attribute (needs root and ext4/xfs/btrfs)");
    }
    env.ok(&["gc", "--compact-below", "1"]);
    env.ok(&["verify", "--read-data"]);
    let target = env.path("restored");
    let r = env.restore(&ids[0], &target, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let certs = env.ok(&["--json", "disposal", "list"]).json();
    assert!(
        certs[0]["what"].as_str().unwrap().contains("container"),
        "{certs}"
    );
    assert!(env.ok(&["disposal", "list"]).stdout.contains("digest"));

    // The trusted clock agrees with the wall clock here.
    let c = env.ok(&["--json", "clock"]).json();
    assert!(c["ahead_ms"].as_i64().unwrap().abs() < 120_000, "{c}");

    // Keys: status, paper key, re-wrap under a new passphrase, import.
    let s = env.ok(&["--json", "key", "status"]).json();
    assert_eq!(s["key_files"], 1);
    let key_id = s["master_key_id"].as_str().unwrap().to_string();
    let paper = env.ok(&["key", "export"]).stdout;
    assert!(paper.starts_with("COFFER PAPER KEY v1"), "{paper}");
    // `coffer ARGS` with a new passphrase for the key to be sealed under.
    let new_pass = |new: &str, args: &[&std::ffi::OsStr]| {
        env.cmd()
            .args(args)
            .env("COFFER_NEW_PASSPHRASE", new)
            .output()
            .unwrap()
    };
    let out = new_pass("a second passphrase", &["key".as_ref(), "passwd".as_ref()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = env.run(&["verify"]);
    assert_ne!(r.code, 0, "the old passphrase no longer opens the store");
    assert!(r.stderr.contains("passphrase"), "{}", r.stderr);
    let with = |pass: &str, args: &[&str]| {
        env.cmd()
            .args(args)
            .env("COFFER_PASSPHRASE", pass)
            .output()
            .unwrap()
    };
    assert!(with("a second passphrase", &["verify"]).status.success());
    // The officer left with the passphrase: the paper key restores access.
    let paper_file = env.path("paper.txt");
    let mut lines: Vec<String> = paper.lines().map(str::to_string).collect();
    let l = lines.iter_mut().find(|l| l.starts_with("2: ")).unwrap();
    let c = l.as_bytes()[3];
    l.replace_range(3..4, if c == b'0' { "1" } else { "0" });
    std::fs::write(&paper_file, lines.join("\n")).unwrap();
    let import = ["key".as_ref(), "import".as_ref(), paper_file.as_os_str()];
    let out = new_pass("a third passphrase", &import);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2") && err.contains("checksum"), "{err}");
    std::fs::write(&paper_file, &paper).unwrap();
    let out = new_pass("a third passphrase", &import);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&key_id));
    assert!(with("a third passphrase", &["verify"]).status.success());
    let s = with("a third passphrase", &["--json", "key", "status"]);
    let s: serde_json::Value = serde_json::from_slice(&s.stdout).unwrap();
    let events: Vec<&str> = s["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["imported", "rewrapped", "exported"]);

    // Data key rotation: new data under generation 2, then 3; retiring old
    // keys re-encrypts generation 2's data and destroys its key (what the
    // lock pins stays as it is, under generation 1).
    let src = env.path("src");
    for (i, expect) in [(90u64, 2), (91, 3)] {
        let r = with("a third passphrase", &["--json", "key", "rotate"]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let k: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
        assert_eq!(k["generation"], expect, "{k}");
        std::fs::write(src.join(format!("g{i}")), noise(400 << 10, i)).unwrap();
        let b = env
            .cmd()
            .args(["backup", "--asset", "files", "--level", "full"])
            .arg(&src)
            .env("COFFER_PASSPHRASE", "a third passphrase")
            .output()
            .unwrap();
        assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    }
    let r = with("a third passphrase", &["--json", "gc", "--retire-old-keys"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let g: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(g["shredded"][0][0], 2, "{g}");
    assert!(!env.store.join("datakeys/00000002").exists());
    assert!(env.store.join("datakeys/00000003").exists());
    assert!(
        with("a third passphrase", &["verify", "--read-data"])
            .status
            .success()
    );
    let out = with("a third passphrase", &["disposal", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("data key generation 2, id"), "{text}");
    unlock_all(env.dir.path());
}
