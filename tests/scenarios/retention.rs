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
