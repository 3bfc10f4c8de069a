//! `coffer-image build` refuses what it cannot finish before it writes an
//! image: binaries that are not built, a missing signing key, and — where
//! this machine can run mmdebstrap (root, the tool installed) — a Debian
//! mirror that cannot be reached: a clear error, and nothing in the output
//! directory. (The whole build and the image booting are the boot test's,
//! `image/tests/boot_test.py`.)

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn key() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/update/test-only.key")
}

fn can_build() -> Option<&'static str> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("not root");
    }
    for t in [
        "mmdebstrap",
        "sfdisk",
        "mkfs.ext4",
        "mkfs.vfat",
        "mcopy",
        "objcopy",
    ] {
        let found = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(t).exists()));
        if !found {
            return Some("a build tool is missing");
        }
    }
    None
}

/// Fake binaries that pass the ELF check: copies of this test's own executable.
fn binaries(dir: &Path) -> PathBuf {
    let b = dir.join("bin");
    std::fs::create_dir_all(&b).unwrap();
    let me = std::env::current_exe().unwrap();
    for n in ["cofferd", "coffer", "coffer-image"] {
        std::fs::copy(&me, b.join(n)).unwrap();
    }
    b
}

fn build(dir: &Path, extra: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_coffer-image"))
        .arg("build")
        .arg("--out")
        .arg(dir.join("out"))
        .arg("--cache")
        .arg(dir.join("cache"))
        .args(["--version", "0.1.0", "--security-mirror", "none"])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn images_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("out"))
        .map(|rd| {
            rd.flatten()
                .map(|d| d.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_build_without_its_inputs_stops_with_the_reason_and_writes_no_image() {
    if let Some(why) = can_build() {
        eprintln!("skipped: {why} (the build runs mmdebstrap as root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = binaries(dir.path());
    let bin_s = bin.to_str().unwrap();
    let key_s = key();
    let key_s = key_s.to_str().unwrap();

    // Not built: a text file where cofferd should be.
    let bad = dir.path().join("notbuilt");
    std::fs::create_dir_all(&bad).unwrap();
    for n in ["cofferd", "coffer", "coffer-image"] {
        std::fs::write(bad.join(n), "#!/bin/sh\n").unwrap();
    }
    let (ok, err) = build(
        dir.path(),
        &["--key", key_s, "--binaries", bad.to_str().unwrap()],
    );
    assert!(!ok);
    assert!(err.contains("is not a built binary"), "{err}");

    // No signing key.
    let (ok, err) = build(dir.path(), &["--key", "/no/such.key", "--binaries", bin_s]);
    assert!(!ok);
    assert!(err.contains("/no/such.key"), "{err}");

    // A mirror nobody answers on (nothing listens on the discard port).
    let (ok, err) = build(
        dir.path(),
        &[
            "--key",
            key_s,
            "--binaries",
            bin_s,
            "--mirror",
            "http://127.0.0.1:9/debian",
        ],
    );
    assert!(!ok);
    assert!(
        err.contains(
            "could not make the base system from the Debian mirror http://127.0.0.1:9/debian"
        ),
        "{err}"
    );
    assert!(err.contains("nothing was written"), "{err}");
    assert_eq!(images_in(dir.path()), Vec::<String>::new());
}
