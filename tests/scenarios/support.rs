//! Helpers shared by the scenarios: a store in a temporary directory, the
//! `coffer` binary run as a user would run it, rich source trees, and a deep
//! tree comparison.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const PASS: &str = "correct horse battery staple";

pub fn coffer_bin() -> &'static str {
    env!("CARGO_BIN_EXE_coffer")
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Says why a test skipped part of itself, visibly in the test output.
pub fn skip(why: &str) {
    eprintln!("SKIPPED PART: {why}");
}

/// A store in a temporary directory, initialised with a cheap KDF and 1 MiB
/// containers so small trees still make several containers.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub store: PathBuf,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        Env::init(store, dir)
    }

    /// A new store at `store` (anywhere), with scratch space in `dir`.
    pub fn init(store: PathBuf, dir: tempfile::TempDir) -> Env {
        Env::init_with(store, dir, &[])
    }

    /// A new store with more `init` arguments (`--pool MEMBER`).
    pub fn init_with(store: PathBuf, dir: tempfile::TempDir, extra: &[&OsStr]) -> Env {
        let env = Env { dir, store };
        let mut args: Vec<&OsStr> = [
            "init",
            "--kdf-memory-kib",
            "1024",
            "--container-size-mib",
            "1",
        ]
        .iter()
        .map(OsStr::new)
        .collect();
        args.extend_from_slice(extra);
        env.ok(&args);
        env
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(coffer_bin());
        c.env("COFFER_STORE", &self.store)
            .env("COFFER_PASSPHRASE", PASS)
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null());
        c
    }

    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Run {
        Run::from(self.cmd().args(args).output().unwrap())
    }

    /// Runs `coffer` as an unprivileged user: as root, the whole scratch
    /// directory (store and trees) is handed to `nobody` and the command runs
    /// under `setpriv`; as any other user it simply runs.
    pub fn run_unprivileged<S: AsRef<OsStr>>(&self, args: &[S]) -> Run {
        if !is_root() {
            return self.run(args);
        }
        let ok = Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(self.dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "chown failed");
        std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            coffer_bin(),
        ])
        .env("COFFER_STORE", &self.store)
        .env("COFFER_PASSPHRASE", PASS)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .args(args);
        Run::from(c.output().unwrap())
    }

    /// Runs and asserts exit 0.
    pub fn ok<S: AsRef<OsStr>>(&self, args: &[S]) -> Run {
        let r = self.run(args);
        assert_eq!(
            r.code,
            0,
            "coffer {:?} failed:\nstdout: {}\nstderr: {}",
            args.iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned())
                .collect::<Vec<_>>(),
            r.stdout,
            r.stderr
        );
        r
    }

    /// `backup --json`, asserting the exit code; returns the snapshot object.
    pub fn backup(
        &self,
        asset: &str,
        level: &str,
        src: &Path,
        expect_code: i32,
    ) -> serde_json::Value {
        let r = self.run(&[
            OsStr::new("--json"),
            OsStr::new("backup"),
            OsStr::new("--asset"),
            OsStr::new(asset),
            OsStr::new("--level"),
            OsStr::new(level),
            src.as_os_str(),
        ]);
        assert_eq!(
            r.code, expect_code,
            "backup: stdout {}\nstderr {}",
            r.stdout, r.stderr
        );
        r.json()
    }

    pub fn restore(&self, snap: &str, target: &Path, extra: &[&str]) -> Run {
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("restore"),
            OsStr::new(snap),
            OsStr::new("--target"),
            target.as_os_str(),
        ];
        args.extend(extra.iter().map(OsStr::new));
        self.run(&args)
    }
}

/// Deterministic pseudo-random bytes (incompressible).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn set_mtime(p: &Path, s: i64, ns: i64) {
    use nix::sys::stat::{UtimensatFlags, utimensat};
    use nix::sys::time::TimeSpec;
    utimensat(
        nix::fcntl::AT_FDCWD,
        p,
        &TimeSpec::new(s, ns),
        &TimeSpec::new(s, ns),
        UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

/// A tree with every entry type and metadata the engine must keep.
/// Returns the features it could set up on this machine.
pub fn rich_tree(root: &Path) -> Vec<&'static str> {
    let mut features = vec![
        "files",
        "dirs",
        "symlinks",
        "hardlinks",
        "fifo",
        "non-utf8",
        "modes",
        "sparse",
        "xattrs",
    ];
    let w = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    std::fs::create_dir_all(root).unwrap();
    w("small.txt", b"hello coffer\n");
    w("empty", b"");
    w("big.bin", &noise(6 * 1024 * 1024 + 123, 1));
    w(
        "compressible.log",
        &b"2026-11-26 INFO backup finished ok\n".repeat(60_000),
    );
    w("sub/deeper/deepest/leaf.txt", b"leaf");
    w("sub/deeper/data.bin", &noise(300_000, 2));
    std::fs::create_dir_all(root.join("emptydir")).unwrap();
    // sparse: 64 MiB with two data islands
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(root.join("sparse.img")).unwrap();
        f.set_len(64 << 20).unwrap();
        f.write_all_at(&noise(1 << 20, 3), 8 << 20).unwrap();
        f.write_all_at(b"tail island", 40 << 20).unwrap();
    }
    // non-UTF-8 names
    std::fs::write(
        root.join(OsStr::from_bytes(b"caf\xe9.txt")),
        b"latin-1 name",
    )
    .unwrap();
    std::fs::create_dir_all(root.join(OsStr::from_bytes(b"\xff\xfedir"))).unwrap();
    std::fs::write(root.join(OsStr::from_bytes(b"\xff\xfedir/inner")), b"inner").unwrap();
    // symlinks
    std::os::unix::fs::symlink("small.txt", root.join("link-rel")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("link-abs")).unwrap();
    std::os::unix::fs::symlink("nowhere/at/all", root.join("dangling")).unwrap();
    // hardlinks: three names of one file
    w("sub/hard-a", b"one inode, three names");
    std::fs::hard_link(root.join("sub/hard-a"), root.join("hard-b")).unwrap();
    std::fs::hard_link(root.join("sub/hard-a"), root.join("sub/deeper/hard-c")).unwrap();
    // fifo
    nix::unistd::mkfifo(
        &root.join("pipe"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    // modes
    w("setuid-bin", b"#!/bin/sh\n");
    std::fs::set_permissions(
        root.join("setuid-bin"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    w("private", b"secret");
    std::fs::set_permissions(root.join("private"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::create_dir_all(root.join("setgid-dir")).unwrap();
    std::fs::set_permissions(
        root.join("setgid-dir"),
        std::fs::Permissions::from_mode(0o2775),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("sticky-dir")).unwrap();
    std::fs::set_permissions(
        root.join("sticky-dir"),
        std::fs::Permissions::from_mode(0o1777),
    )
    .unwrap();
    // xattrs (user.*) and a POSIX ACL (system.posix_acl_access)
    xattr::set(root.join("small.txt"), "user.comment", b"hello").unwrap();
    xattr::set(root.join("small.txt"), "user.binary", &[0, 255, 1]).unwrap();
    xattr::set(root.join("sub"), "user.dir", b"x").unwrap();
    w("acl-file", b"acl");
    // ACL: user::rw-, user:1234:r--, group::r--, mask::r--, other::r--
    let acl: Vec<u8> = [
        &[2u8, 0, 0, 0][..],
        &[1, 0, 6, 0, 255, 255, 255, 255],
        &[2, 0, 4, 0, 0xd2, 0x04, 0, 0],
        &[4, 0, 4, 0, 255, 255, 255, 255],
        &[0x10, 0, 4, 0, 255, 255, 255, 255],
        &[0x20, 0, 4, 0, 255, 255, 255, 255],
    ]
    .concat();
    if xattr::set(root.join("acl-file"), "system.posix_acl_access", &acl).is_ok() {
        features.push("acl");
    } else {
        skip("this filesystem refuses POSIX ACLs");
    }
    if is_root() {
        nix::sys::stat::mknod(
            &root.join("null-dev"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .unwrap();
        w("owned", b"owned by someone else");
        std::os::unix::fs::lchown(root.join("owned"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(root.join("link-rel"), Some(4321), Some(8765)).unwrap();
        features.push("devices");
        features.push("ownership");
    } else {
        skip("not root: device nodes and foreign ownership are not tested");
    }
    // nanosecond mtimes everywhere, directories last (deepest first)
    let mut all = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        all.push(p);
    }
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in all.iter().enumerate() {
        set_mtime(p, 1_600_000_000 + i as i64 * 7, 123_456_789 + i as i64);
    }
    features
}

#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Meta {
    pub kind: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    pub size: u64,
    pub content: Option<[u8; 32]>,
    pub link: Option<Vec<u8>>,
    pub rdev: u64,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// For files with several names: the smallest name of the inode.
    pub link_group: Option<Vec<u8>>,
}

/// Every entry below `root` (root itself as ""), with all metadata a restore must keep.
pub fn tree(root: &Path) -> BTreeMap<Vec<u8>, Meta> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<u8>> = BTreeMap::new();
    let mut multi: Vec<(Vec<u8>, (u64, u64))> = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = std::fs::symlink_metadata(&p).unwrap();
        let rel = p
            .strip_prefix(root)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .to_vec();
        let ft = md.file_type();
        if ft.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        let content = ft
            .is_file()
            .then(|| *blake3::hash(&std::fs::read(&p).unwrap()).as_bytes());
        let mut xattrs: Vec<(Vec<u8>, Vec<u8>)> = xattr::list(&p)
            .map(|names| {
                names
                    .filter_map(|n| Some((n.as_bytes().to_vec(), xattr::get(&p, &n).ok()??)))
                    .collect()
            })
            .unwrap_or_default();
        xattrs.sort();
        if ft.is_file() && md.nlink() > 1 {
            let e = inodes
                .entry((md.dev(), md.ino()))
                .or_insert_with(|| rel.clone());
            if rel < *e {
                *e = rel.clone();
            }
            multi.push((rel.clone(), (md.dev(), md.ino())));
        }
        out.insert(
            rel,
            Meta {
                kind: md.mode() & libc::S_IFMT,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                mtime: (md.mtime(), md.mtime_nsec()),
                size: if ft.is_dir() { 0 } else { md.size() },
                content,
                link: ft.is_symlink().then(|| {
                    std::fs::read_link(&p)
                        .unwrap()
                        .as_os_str()
                        .as_bytes()
                        .to_vec()
                }),
                rdev: if ft.is_file() || ft.is_dir() {
                    0
                } else {
                    md.rdev()
                },
                xattrs,
                link_group: None,
            },
        );
    }
    for (rel, key) in multi {
        out.get_mut(&rel).unwrap().link_group = inodes.get(&key).cloned();
    }
    out
}

pub fn assert_same_tree(expected: &BTreeMap<Vec<u8>, Meta>, actual: &BTreeMap<Vec<u8>, Meta>) {
    let mut problems = Vec::new();
    for (k, v) in expected {
        match actual.get(k) {
            None => problems.push(format!("missing: {}", String::from_utf8_lossy(k))),
            Some(a) if a != v => problems.push(format!(
                "differs: {}\n  expected {v:?}\n  actual   {a:?}",
                String::from_utf8_lossy(k)
            )),
            _ => {}
        }
    }
    for k in actual.keys() {
        if !expected.contains_key(k) {
            problems.push(format!("extra: {}", String::from_utf8_lossy(k)));
        }
    }
    assert!(
        problems.is_empty(),
        "trees differ:\n{}",
        problems.join("\n")
    );
}

/// Keys of the objects a store holds, with their sizes: to prove a failed
/// command changed nothing.
pub fn store_listing(store: &Path) -> BTreeMap<PathBuf, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![store.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let e = e.unwrap();
            let md = e.metadata().unwrap();
            let name = e.file_name();
            if md.is_dir() {
                stack.push(e.path());
            } else if !name.to_string_lossy().starts_with("catalog.db") {
                out.insert(e.path(), md.len());
            }
        }
    }
    out
}

/// The data objects (containers) of a store.
pub fn containers(store: &Path) -> Vec<PathBuf> {
    store_listing(store)
        .into_keys()
        .filter(|p| p.strip_prefix(store).unwrap().starts_with("data"))
        .collect()
}

/// Mounts a small tmpfs (root only); `None` where the machine refuses.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        if !is_root() {
            skip("not root: cannot mount a small filesystem");
            return None;
        }
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            Some(Tmpfs(at.to_path_buf()))
        } else {
            skip("mounting tmpfs is not allowed here");
            None
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A small ext4 filesystem in an image file, loop-mounted (root only);
/// `None`, with the reason printed, where the machine cannot.
pub struct LoopFs(pub PathBuf);

impl LoopFs {
    pub fn mount(image: &Path, at: &Path, mib: u64) -> Option<LoopFs> {
        if !is_root() {
            skip("not root: cannot loop-mount a filesystem");
            return None;
        }
        std::fs::create_dir_all(at).unwrap();
        let f = std::fs::File::create(image).unwrap();
        f.set_len(mib * 1024 * 1024).unwrap();
        drop(f);
        let mkfs = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0"])
            .arg(image)
            .status();
        if !mkfs.map(|s| s.success()).unwrap_or(false) {
            skip("mkfs.ext4 is not available");
            return None;
        }
        let ok = Command::new("mount")
            .args(["-o", "loop"])
            .arg(image)
            .arg(at)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            Some(LoopFs(at.to_path_buf()))
        } else {
            skip("loop devices are not available here");
            None
        }
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
