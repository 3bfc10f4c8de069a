//! Every entry type and every piece of metadata survives backup and restore.

use std::os::unix::fs::MetadataExt;

use crate::support::*;

#[test]
fn full_backup_restores_every_entry_type_and_metadata() {
    let env = Env::new();
    let src = env.path("src");
    let features = rich_tree(&src);
    let expected = tree(&src);
    let snap = env.backup("files-01", "full", &src, 0);
    let s = &snap["snapshot"];
    assert_eq!(s["level"], "full");
    assert_eq!(
        s["stats"]["entries"].as_u64().unwrap(),
        expected.len() as u64
    );
    assert!(
        s["stats"]["chunks_new"].as_u64().unwrap() > 3,
        "big.bin spans several chunks"
    );
    // compressible data is stored smaller than read
    assert!(
        s["stats"]["bytes_stored"].as_u64().unwrap() < s["stats"]["bytes_read"].as_u64().unwrap()
    );

    let target = env.path("restored");
    let id = s["id"].as_str().unwrap();
    let r = env.restore(&id[..8], &target, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let actual = tree(&target);
    assert_same_tree(&expected, &actual);
    // holes stay holes
    let md = std::fs::metadata(target.join("sparse.img")).unwrap();
    assert_eq!(md.len(), 64 << 20);
    assert!(
        md.blocks() * 512 < 4 << 20,
        "sparse file restored dense: {} blocks",
        md.blocks()
    );
    eprintln!("features covered: {features:?}");
    assert!(features.contains(&"xattrs"));
}

#[test]
fn chosen_paths_restore_alone_and_existing_files_are_kept() {
    let env = Env::new();
    let src = env.path("src");
    rich_tree(&src);
    let expected = tree(&src);
    env.backup("files-01", "full", &src, 0);

    let target = env.path("partial");
    let r = env.restore("latest", &target, &["/sub/deeper", "small.txt"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let got = tree(&target);
    assert!(got.contains_key(&b"sub/deeper/deepest/leaf.txt"[..]));
    assert!(got.contains_key(&b"small.txt"[..]));
    assert!(
        !got.contains_key(&b"big.bin"[..]),
        "unselected file restored"
    );
    assert_eq!(got[&b"small.txt"[..]], expected[&b"small.txt"[..]]);
    // the hard link whose first name was not selected is written as a file
    assert_eq!(
        got[&b"sub/deeper/hard-c"[..]].content,
        expected[&b"hard-b"[..]].content
    );
    // ancestors get their own metadata
    assert_eq!(got[&b"sub"[..]].mode, expected[&b"sub"[..]].mode);
    assert_eq!(got[&b"sub"[..]].mtime, expected[&b"sub"[..]].mtime);

    // a path not in the snapshot is an error
    let r = env.restore("latest", &env.path("none"), &["no/such/path"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not in snapshot"), "{}", r.stderr);

    // existing files are not overwritten unless asked
    std::fs::write(target.join("small.txt"), b"local edit").unwrap();
    let r = env.restore("latest", &target, &["small.txt"]);
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("small.txt") && r.stdout.contains("not overwritten"),
        "{}",
        r.stdout
    );
    assert_eq!(
        std::fs::read(target.join("small.txt")).unwrap(),
        b"local edit"
    );
    let r = env.restore("latest", &target, &["small.txt", "--overwrite"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        std::fs::read(target.join("small.txt")).unwrap(),
        b"hello coffer\n"
    );
}

#[test]
fn unprivileged_restore_keeps_read_only_modes_xattrs_and_times() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("ro-dir")).unwrap();
    std::fs::write(src.join("ro-dir/inside"), b"inside a read-only directory").unwrap();
    std::fs::write(src.join("ro-file"), b"read-only").unwrap();
    xattr::set(src.join("ro-file"), "user.note", b"kept").unwrap();
    xattr::set(src.join("ro-dir"), "user.note", b"kept too").unwrap();
    for (p, mode, t) in [
        ("ro-dir/inside", 0o444, 1),
        ("ro-file", 0o444, 2),
        ("ro-dir", 0o555, 3),
    ] {
        std::fs::set_permissions(
            src.join(p),
            std::os::unix::fs::PermissionsExt::from_mode(mode),
        )
        .unwrap();
        set_mtime(&src.join(p), 1_650_000_000 + t, 42);
    }
    let target = env.path("out");
    let r = env.run_unprivileged(&["backup", "--asset", "u", src.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let r = env.run_unprivileged(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_same_tree(&tree(&src), &tree(&target));
}

#[test]
fn excludes_and_one_file_system() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("cache/deep")).unwrap();
    std::fs::write(src.join("keep.txt"), b"keep").unwrap();
    std::fs::write(src.join("drop.tmp"), b"drop").unwrap();
    std::fs::write(src.join("cache/deep/x"), b"x").unwrap();
    std::fs::create_dir_all(src.join("mnt")).unwrap();
    let mounted = Tmpfs::mount(&src.join("mnt"), "1m");
    if mounted.is_some() {
        std::fs::write(src.join("mnt/other-fs.txt"), b"on another filesystem").unwrap();
    }
    let r = env.run(&[
        "--json",
        "backup",
        "--asset",
        "a",
        "--exclude",
        "*.tmp",
        "--exclude",
        "cache",
        "--one-file-system",
        src.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let target = env.path("out");
    assert_eq!(env.restore("latest", &target, &[]).code, 0);
    assert!(target.join("keep.txt").exists());
    assert!(!target.join("drop.tmp").exists());
    assert!(!target.join("cache").exists());
    assert!(
        target.join("mnt").is_dir(),
        "the mount point itself is kept"
    );
    if mounted.is_some() {
        assert!(
            !target.join("mnt/other-fs.txt").exists(),
            "crossed into another filesystem"
        );
    }
    let scope = &r.json()["snapshot"]["scope"];
    assert_eq!(scope["excludes"], serde_json::json!(["*.tmp", "cache"]));
    assert_eq!(scope["one_file_system"], true);
}
