//! ls, diff, find, log and catalog rebuild, as scripts use them.

use crate::support::*;

#[test]
fn ls_diff_find_log_and_catalog_rebuild() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("etc/ssh")).unwrap();
    std::fs::write(src.join("etc/ssh/sshd_config"), b"PermitRootLogin no\n").unwrap();
    std::fs::write(src.join("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
    std::fs::write(src.join("gone.txt"), b"bye").unwrap();
    let a = env.backup("srv", "full", &src, 0)["snapshot"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(
        src.join("etc/ssh/sshd_config"),
        b"PermitRootLogin prohibit-password\n",
    )
    .unwrap();
    std::fs::remove_file(src.join("gone.txt")).unwrap();
    std::fs::write(src.join("new.txt"), b"hi").unwrap();
    std::fs::set_permissions(
        src.join("etc/hosts"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let b = env.backup("srv", "incremental", &src, 0)["snapshot"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // ls
    let ls = env.ok(&["--json", "ls", &a, "/etc"]).json();
    let paths: Vec<&str> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["/etc", "/etc/hosts", "/etc/ssh", "/etc/ssh/sshd_config"]
    );
    assert_eq!(ls[3]["size"], 19);
    assert_eq!(ls[3]["type"], "file");
    let text = env.ok(&["ls", &a]).stdout;
    assert!(
        text.lines()
            .any(|l| l.starts_with("-rw-r--r--") && l.ends_with("/gone.txt")),
        "{text}"
    );

    // diff
    let d = env.ok(&["diff", &a, &b]).stdout;
    let lines: Vec<&str> = d.lines().collect();
    assert!(lines.contains(&"- /gone.txt"), "{d}");
    assert!(lines.contains(&"+ /new.txt"), "{d}");
    assert!(lines.contains(&"M /etc/ssh/sshd_config"), "{d}");
    assert!(lines.contains(&"U /etc/hosts"), "{d}");

    // find across snapshots
    let f = env.ok(&["--json", "find", "sshd_config"]).json();
    assert_eq!(f.as_array().unwrap().len(), 2);
    assert_eq!(f[0]["snapshot"], a.as_str());
    assert_eq!(f[1]["entry"]["size"], 34);
    let f = env.ok(&["find", "*.txt"]).stdout;
    assert_eq!(f.lines().count(), 2, "{f}");

    // a restore and a verify go into the log too
    env.restore(&b, &env.path("r"), &[]);
    env.ok(&["verify"]);
    let log = env.ok(&["--json", "log"]).json();
    let kinds: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["verify", "restore", "backup", "backup"]);
    let backup = &log[3];
    assert_eq!(backup["status"], "success");
    assert_eq!(backup["level"], "full");
    assert_eq!(
        backup["scope"]["paths"][0],
        std::fs::canonicalize(&src).unwrap().to_str().unwrap()
    );
    assert!(
        backup["started"].as_str().unwrap().ends_with('Z')
            && backup["ended"].as_str().unwrap().ends_with('Z')
    );
    assert!(!backup["identity"].as_str().unwrap().is_empty());
    assert_eq!(backup["stats"]["files_read"], 3);
    assert_eq!(backup["snapshot"], a.as_str());
    let text = env.ok(&["log"]).stdout;
    assert!(text.contains("backup") && text.contains("success"));

    // catalog rebuild: the store alone brings the snapshots back
    let before = env.ok(&["--json", "snapshots"]).json();
    for f in ["catalog.db", "catalog.db-wal", "catalog.db-shm"] {
        let _ = std::fs::remove_file(env.store.join(f));
    }
    let mut c = env.cmd();
    c.env_remove("COFFER_PASSPHRASE")
        .args(["--json", "snapshots"]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&c.output().unwrap().stdout).unwrap(),
        serde_json::json!([])
    );
    env.ok(&["catalog", "rebuild"]);
    let after = env.ok(&["--json", "snapshots"]).json();
    assert_eq!(before, after);
    let log = env.ok(&["--json", "log"]).json();
    assert_eq!(
        log.as_array().unwrap().len(),
        2,
        "backup jobs reconstructed: {log}"
    );
    assert!(
        log[0]["messages"][0]
            .as_str()
            .unwrap()
            .contains("reconstructed")
    );

    // the chunk index comes back from the containers alone
    std::fs::remove_dir_all(env.store.join("index")).unwrap();
    let target = env.path("from-containers-alone");
    assert_eq!(env.restore(&b, &target, &[]).code, 0);
    assert_eq!(
        std::fs::read(target.join("etc/ssh/sshd_config")).unwrap(),
        b"PermitRootLogin prohibit-password\n"
    );
    assert!(
        env.store.join("index").read_dir().unwrap().count() > 0,
        "index objects rewritten"
    );
    env.ok(&["verify", "--read-data"]);

    // --store wins over COFFER_STORE; COFFER_STORE alone is enough
    let r = env.run(&["--store", "/nonexistent/coffer", "snapshots"]);
    assert_eq!(r.code, 1);
}
