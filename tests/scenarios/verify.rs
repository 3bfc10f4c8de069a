//! Verification finds bit rot, truncation and loss, with and without keys,
//! and names the snapshots and files affected.

use std::io::{Seek, SeekFrom, Write};

use crate::support::*;

fn setup() -> (Env, std::path::PathBuf) {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..6 {
        std::fs::write(src.join(format!("file{i}")), noise(700_000, i)).unwrap();
    }
    env.backup("v", "full", &src, 0);
    (env, src)
}

/// The largest container: it holds file data (manifests are small).
fn largest_container(env: &Env) -> std::path::PathBuf {
    let mut cs = containers(&env.store);
    cs.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    cs.pop().unwrap()
}

#[test]
fn clean_store_verifies_with_and_without_keys() {
    let (env, _) = setup();
    let mut c = env.cmd();
    c.env_remove("COFFER_PASSPHRASE").args(["--json", "verify"]);
    let out = c.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["containers_checked"].as_u64().unwrap() >= 3);
    assert_eq!(v["snapshots_checked"], 0, "no keys: no manifests read");
    let v = env.ok(&["--json", "verify", "--read-data"]).json();
    assert_eq!(v["read_data"], true);
    assert_eq!(v["snapshots_checked"], 1);
    assert!(v["damaged_containers"].as_array().unwrap().is_empty());
}

#[test]
fn flipped_bit_is_found_and_mapped_to_files() {
    let (env, _) = setup();
    let victim = largest_container(&env);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .read(true)
        .open(&victim)
        .unwrap();
    f.seek(SeekFrom::Start(1000)).unwrap();
    let mut b = [0u8; 1];
    std::io::Read::read_exact(&mut f, &mut b).unwrap();
    f.seek(SeekFrom::Start(1000)).unwrap();
    f.write_all(&[b[0] ^ 0x04]).unwrap();
    drop(f);
    let cid = victim.file_name().unwrap().to_str().unwrap().to_string();

    // keyless: the container is named
    let mut c = env.cmd();
    c.env_remove("COFFER_PASSPHRASE").arg("verify");
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{stdout}");
    assert!(
        stdout.contains(&cid) && stdout.contains("hash mismatch"),
        "{stdout}"
    );

    // with keys: the snapshot and the files are named
    for args in [
        &["--json", "verify"][..],
        &["--json", "verify", "--read-data"][..],
    ] {
        let r = env.run(args);
        assert_eq!(r.code, 4, "{}", r.stderr);
        let v = r.json();
        assert_eq!(v["damaged_containers"][0][0], cid.as_str());
        let files = v["affected"][0]["files"].as_array().unwrap();
        assert!(!files.is_empty(), "{v}");
        assert!(
            files
                .iter()
                .all(|f| f.as_str().unwrap().starts_with("/file"))
        );
    }
    // restoring a damaged file is an error, the others restore
    let r = env.restore("latest", &env.path("out"), &[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("error:") && r.stderr.contains("restore incomplete"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    let log = env.ok(&["log", "--json", "--kind", "restore"]).json();
    assert_eq!(log[0]["status"], "failed");

    // verify remembered the damage: the next backup stores that data again
    // instead of deduplicating against the rotten copy, and restores heal
    let again = env.backup("v", "full", &env.path("src"), 0);
    assert!(
        again["snapshot"]["stats"]["bytes_new"].as_u64().unwrap() > 0,
        "{again}"
    );
    for snap in [
        "latest",
        env.ok(&["--json", "snapshots"]).json()[0]["id"]
            .as_str()
            .unwrap(),
    ] {
        let target = env.path(&format!("healed-{}", &snap[..6]));
        let r = env.restore(snap, &target, &[]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        assert_same_tree(&tree(&env.path("src")), &tree(&target));
    }
    // the rotten container is still reported until it is removed, but no file depends on it
    let v = env.run(&["--json", "verify"]);
    assert_eq!(v.code, 4);
    assert!(
        v.json()["affected"].as_array().unwrap().is_empty(),
        "{}",
        v.stdout
    );
}

#[test]
fn missing_and_truncated_containers_are_reported() {
    let (env, _) = setup();
    // the two largest containers hold file data (the manifest's is small)
    let mut cs = containers(&env.store);
    cs.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let truncated = cs.pop().unwrap();
    let missing = cs.pop().unwrap();
    let len = std::fs::metadata(&truncated).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&truncated)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    std::fs::remove_file(&missing).unwrap();
    let r = env.run(&["verify"]);
    assert_eq!(r.code, 4, "{}", r.stdout);
    let name = |p: &std::path::Path| p.file_name().unwrap().to_str().unwrap().to_string();
    assert!(
        r.stdout.contains(&name(&missing)) && r.stdout.contains("missing"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains(&name(&truncated)), "{}", r.stdout);
    assert!(
        r.stdout.contains("snapshot ") && r.stdout.contains("file /file"),
        "{}",
        r.stdout
    );
    // a new backup does not trust the damaged containers: it stores the data again
    let again = env.backup("v", "full", &env.path("src"), 0);
    assert!(again["snapshot"]["stats"]["bytes_new"].as_u64().unwrap() > 0);
    let target = env.path("healed");
    assert_eq!(env.restore("latest", &target, &[]).code, 0);
    assert_same_tree(&tree(&env.path("src")), &tree(&target));
}
