//! Golden fixture: a store written by format v1 (committed under
//! `tests/fixtures/store-v1/`) must stay readable by every later coffer:
//! parsed, its catalog rebuilt from the store alone, restored and verified.
//! To regenerate (only when the format version changes, never silently):
//! delete the fixture and run this test with `COFFER_WRITE_GOLDEN=1`.

use std::path::{Path, PathBuf};

use crate::support::*;

const FIXTURE_PASS: &str = "golden fixture passphrase";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/store-v1")
}

fn golden_tree(root: &Path, version: u8) {
    std::fs::create_dir_all(root.join("dir")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::write(
        root.join("hello.txt"),
        format!("hello, golden world v{version}\n"),
    )
    .unwrap();
    std::fs::write(root.join("dir/data.bin"), noise(300_000, 7)).unwrap();
    std::fs::set_permissions(
        root.join("dir/data.bin"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let _ = std::fs::remove_file(root.join("dir/link"));
    std::os::unix::fs::symlink("../hello.txt", root.join("dir/link")).unwrap();
    for (p, t) in [
        ("hello.txt", 1),
        ("dir/data.bin", 2),
        ("dir/link", 3),
        ("dir", 4),
        ("empty", 5),
        ("", 6),
    ] {
        set_mtime(&root.join(p), 1_700_000_000 + t, 500_000_000);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn write_fixture(dir: &Path) {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(coffer_bin())
            .env("COFFER_STORE", dir)
            .env("COFFER_PASSPHRASE", FIXTURE_PASS)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "init",
        "--kdf-memory-kib",
        "1024",
        "--container-size-mib",
        "1",
    ]);
    golden_tree(&src, 1);
    run(&[
        "backup",
        "--asset",
        "golden",
        "--level",
        "full",
        src.to_str().unwrap(),
    ]);
    // Only hello.txt changes (same size and mtime: its ctime tells).
    std::fs::write(src.join("hello.txt"), "hello, golden world v2\n").unwrap();
    set_mtime(&src.join("hello.txt"), 1_700_000_001, 500_000_000);
    run(&[
        "backup",
        "--asset",
        "golden",
        "--level",
        "incremental",
        src.to_str().unwrap(),
    ]);
    for f in ["catalog.db", "catalog.db-wal", "catalog.db-shm"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let _ = std::fs::remove_dir(dir.join("tmp"));
}

#[test]
fn format_v1_fixture_stays_readable() {
    let fixture = fixture_dir();
    if !fixture.join("config").exists() {
        assert_eq!(
            std::env::var("COFFER_WRITE_GOLDEN").as_deref(),
            Ok("1"),
            "golden fixture missing at {}",
            fixture.display()
        );
        write_fixture(&fixture);
    }
    // The fixed-layout objects parse with today's code.
    let cfg =
        coffer_store::StoreConfig::decode(&std::fs::read(fixture.join("config")).unwrap()).unwrap();
    assert_eq!(cfg.container_size, 1 << 20);
    let key = coffer_keys::parse_key_file(&std::fs::read(fixture.join("keys/00000001")).unwrap())
        .unwrap();
    assert_eq!(key.params.m_kib, 1024);
    assert_eq!(key.generation, 1);

    // A disaster-recovery restore: the store alone, a new catalog, the passphrase.
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    copy_dir(&fixture, &store);
    let env = Env { store, dir: work };
    let run = |args: &[&str]| {
        let mut c = env.cmd();
        c.env("COFFER_PASSPHRASE", FIXTURE_PASS).args(args);
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["catalog", "rebuild"]);
    let snaps: serde_json::Value = serde_json::from_str(&run(&["--json", "snapshots"])).unwrap();
    let snaps = snaps.as_array().unwrap();
    assert_eq!(snaps.len(), 2);
    assert_eq!(snaps[0]["level"], "full");
    assert_eq!(snaps[1]["level"], "incremental");
    assert_eq!(snaps[1]["reference"], snaps[0]["id"]);
    assert_eq!(snaps[1]["stats"]["files_read"], 1);
    assert_eq!(snaps[1]["stats"]["files_unchanged"], 1);
    for (i, s) in snaps.iter().enumerate() {
        let expected_dir = env.path(&format!("expected-{i}"));
        golden_tree(&expected_dir, i as u8 + 1);
        let target = env.path(&format!("restored-{i}"));
        run(&[
            "restore",
            s["id"].as_str().unwrap(),
            "--target",
            target.to_str().unwrap(),
        ]);
        let mut expected = tree(&expected_dir);
        let mut actual = tree(&target);
        // owners differ between the machine that wrote the fixture and this one
        for m in expected.values_mut().chain(actual.values_mut()) {
            m.uid = 0;
            m.gid = 0;
        }
        assert_same_tree(&expected, &actual);
    }
    run(&["verify", "--read-data"]);
}
