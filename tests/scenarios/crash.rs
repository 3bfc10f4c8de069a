//! A backup killed with SIGKILL at any moment leaves store and catalog
//! consistent, and the next run reuses what was sealed.

use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn backups_killed_at_random_moments_leave_a_consistent_store() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..24 {
        std::fs::write(src.join(format!("f{i:02}")), noise(2 << 20, 100 + i)).unwrap();
    }
    // A complete backup of another asset, which must survive everything below.
    let first = env.backup("timing", "full", &src, 0);
    let first_id = first["snapshot"]["id"].as_str().unwrap().to_string();

    let mut seed = 0x1234_5678_u64;
    let mut killed = 0;
    for round in 0..6u64 {
        // Fresh data in a third of the files, so every run has work to seal.
        for i in 0..8u64 {
            let n = (round * 4 + i) % 24;
            std::fs::write(
                src.join(format!("f{n:02}")),
                noise(2 << 20, 1000 * (round + 1) + i),
            )
            .unwrap();
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let before = data_objects(&env.store);
        let mut child = env
            .cmd()
            .args([
                "--quiet",
                "backup",
                "--asset",
                "crash",
                src.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the run has sealed at least one container (bounded), then
        // kill it after a random extra delay: mid-write, mid-seal, or later.
        let t = Instant::now();
        while child.try_wait().unwrap().is_none()
            && data_objects(&env.store) <= before
            && t.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(seed % 150));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
        // After every kill: nothing listed is damaged.
        let v = env.run(&["--json", "verify", "--read-data"]);
        assert_eq!(
            v.code, 0,
            "store damaged after a kill in round {round}: {}",
            v.stdout
        );
        for s in env.ok(&["snapshots", "--json"]).json().as_array().unwrap() {
            assert!(s["stats"]["entries"].as_u64().unwrap() > 0);
        }
    }
    let expected = tree(&src);
    eprintln!("{killed} of 6 runs killed mid-backup");
    assert!(
        killed >= 4,
        "only {killed} runs were still running when killed"
    );
    let log = env.ok(&["log", "--json", "--asset", "crash"]).json();
    let interrupted = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["status"] == "interrupted")
        .count();
    // A run killed before it wrote its job row (within its first milliseconds)
    // leaves no row to mark; every other killed run must be marked.
    assert!(
        interrupted >= killed - 1,
        "{killed} killed, {interrupted} marked interrupted: {log}"
    );

    // The next run completes and reuses the containers the killed runs sealed.
    let done = env.backup("crash", "full", &src, 0);
    let stats = &done["snapshot"]["stats"];
    assert!(
        stats["bytes_new"].as_u64().unwrap() < stats["bytes_read"].as_u64().unwrap(),
        "nothing reused: {stats}"
    );
    let target = env.path("out");
    assert_eq!(
        env.restore(done["snapshot"]["id"].as_str().unwrap(), &target, &[])
            .code,
        0
    );
    assert_same_tree(&expected, &tree(&target));
    // the timing snapshot is intact too
    assert_eq!(env.restore(&first_id, &env.path("first"), &[]).code, 0);
}

/// Containers in the store, counted without tripping over concurrent writes.
fn data_objects(store: &std::path::Path) -> usize {
    let Ok(rd) = std::fs::read_dir(store.join("data")) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .map(|d| std::fs::read_dir(d.path()).map(|r| r.count()).unwrap_or(0))
        .sum()
}
