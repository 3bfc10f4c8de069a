//! Bad input gets a clear error that says what and where, and the store is
//! left as it was.

use std::sync::Arc;

use coffer_store::{BlobStore, DirStore, Packer, Repo, SnapshotRecord};
use coffer_types::{BackupStats, Level, Scope, SnapshotId, SnapshotInfo};

use crate::support::*;

fn small_src(env: &Env) -> std::path::PathBuf {
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), noise(100_000, 1)).unwrap();
    src
}

#[test]
fn wrong_passphrase_is_refused_and_changes_nothing() {
    let env = Env::new();
    let src = small_src(&env);
    env.backup("a", "full", &src, 0);
    let before = store_listing(&env.store);
    let mut c = env.cmd();
    c.env("COFFER_PASSPHRASE", "not the passphrase").args([
        "backup",
        "--asset",
        "a",
        src.to_str().unwrap(),
    ]);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrong passphrase"), "{err}");
    assert_eq!(before, store_listing(&env.store));
    // no passphrase at all, no terminal: a clear message
    let mut c = env.cmd();
    c.env_remove("COFFER_PASSPHRASE").args(["ls", "latest"]);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no passphrase"));
    // a passphrase file works, trailing newline and all
    let pf = env.path("pass");
    std::fs::write(&pf, format!("{PASS}\n")).unwrap();
    let mut c = env.cmd();
    c.env_remove("COFFER_PASSPHRASE").args([
        "--passphrase-file",
        pf.to_str().unwrap(),
        "ls",
        "latest",
    ]);
    assert_eq!(c.output().unwrap().status.code(), Some(0));
}

#[test]
fn newer_format_unknown_snapshot_and_no_store_are_clear_errors() {
    let env = Env::new();
    let src = small_src(&env);
    env.backup("a", "full", &src, 0);
    let r = env.run(&[
        "restore",
        "deadbeef",
        "--target",
        env.path("t").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("no snapshot matches 'deadbeef'"),
        "{}",
        r.stderr
    );
    assert!(
        !env.path("t").exists(),
        "an unknown snapshot created the target"
    );

    let mut cfg = std::fs::read(env.store.join("config")).unwrap();
    cfg[8] = 7; // format version 7
    std::fs::write(env.store.join("config"), &cfg).unwrap();
    let before = store_listing(&env.store);
    let src_arg = src.to_str().unwrap();
    for args in [
        &["snapshots"][..],
        &["backup", "--asset", "a", src_arg],
        &["verify"],
    ] {
        let r = env.run(args);
        assert_eq!(r.code, 1, "{args:?}");
        assert!(
            r.stderr.contains("format version 7") && r.stderr.contains("upgrade coffer"),
            "{}",
            r.stderr
        );
    }
    assert_eq!(
        before,
        store_listing(&env.store),
        "a refused command changed the store"
    );

    let r = env.run(&[
        "--store",
        env.path("nothing-here").to_str().unwrap(),
        "snapshots",
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no coffer store"), "{}", r.stderr);

    let r = env.run(&["init"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("already holds a coffer store"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_manifest_that_does_not_parse_is_reported() {
    let env = Env::new();
    let blobs: Arc<dyn BlobStore> = Arc::new(DirStore::new(&env.store));
    let repo = Repo::open(blobs, &coffer_keys::Passphrase::new(PASS.into()).unwrap()).unwrap();
    let garbage = b"this is not a manifest stream at all".to_vec();
    let id = repo.chunk_id(&garbage);
    let mut p = Packer::new(&repo);
    assert!(repo.claim(&id).unwrap());
    p.add(id, &garbage).unwrap();
    p.flush().unwrap();
    let sid = SnapshotId([0x42; 16]);
    repo.write_snapshot(&SnapshotRecord {
        info: SnapshotInfo {
            id: sid,
            asset: "broken".into(),
            level: Level::Full,
            time: coffer_types::rfc3339_ms(5),
            started_ms: 5,
            finished_ms: 6,
            reference: None,
            host: "h".into(),
            identity: "i".into(),
            scope: Scope::default(),
            stats: BackupStats::default(),
        },
        manifest_len: garbage.len() as u64,
        manifest: vec![id],
    })
    .unwrap();
    for args in [
        vec!["ls", "42424242"],
        vec![
            "restore",
            "42424242",
            "--target",
            env.path("t").to_str().unwrap(),
        ],
    ] {
        let r = env.run(&args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stdout);
        assert!(
            r.stderr.contains("manifest") && r.stderr.contains("damaged"),
            "{}",
            r.stderr
        );
    }
    // a new backup of another asset is unaffected
    let src = small_src(&env);
    env.backup("fine", "full", &src, 0);
}

#[test]
fn restore_to_a_full_disk_fails_clearly_and_the_store_is_unharmed() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..4 {
        std::fs::write(src.join(format!("f{i}")), noise(1 << 20, i)).unwrap();
    }
    env.backup("a", "full", &src, 0);
    let Some(small) = Tmpfs::mount(&env.path("small"), "1500k") else {
        return;
    };
    let r = env.restore("latest", &small.0.join("t"), &[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("No space left on device"), "{}", r.stdout);
    assert!(r.stderr.contains("restore incomplete"));
    env.ok(&["verify", "--read-data"]);
}

#[test]
fn backup_to_a_full_store_fails_clearly_and_keeps_earlier_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let Some(small) = Tmpfs::mount(&dir.path().join("small"), "3m") else {
        return;
    };
    let env = Env::init(small.0.join("store"), tempfile::tempdir().unwrap());
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("small"), noise(200_000, 1)).unwrap();
    env.backup("a", "full", &src, 0);
    std::fs::write(src.join("huge"), noise(6 << 20, 2)).unwrap();
    let r = env.run(&["backup", "--asset", "a", src.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("No space left on device"), "{}", r.stderr);
    // The containers the failed backup did commit stay (a retry dedups
    // against them), but they leave the reserve free: the catalog beside
    // the store can still record every job that follows.
    let st = nix::sys::statvfs::statvfs(&small.0).unwrap();
    let free = st.blocks_available() * st.fragment_size();
    assert!(free >= 128 * 1024, "only {free} bytes left free");
    // the earlier snapshot is intact and the store verifies
    let list = env.ok(&["snapshots", "--json"]).json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let log = env.ok(&["log", "--json"]).json();
    assert_eq!(log[0]["status"], "failed");
    assert!(
        log[0]["messages"][0]
            .as_str()
            .unwrap()
            .contains("No space left")
    );
    std::fs::remove_file(src.join("huge")).unwrap();
    env.ok(&["verify", "--read-data"]);
    let t = env.path("t");
    assert_eq!(env.restore("latest", &t, &[]).code, 0);
    assert_eq!(std::fs::read(t.join("small")).unwrap(), noise(200_000, 1));
    drop(env);
}
