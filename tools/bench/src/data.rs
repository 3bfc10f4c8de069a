//! The bench's data: real source trees from Debian's packages, the peers'
//! installation, the seeded mutation, and the restored-tree comparison.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Serialize;

/// The Debian package whose two versions are the default data.
pub const PACKAGE: &str = "linux-source-6.1";

fn sh(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let st = cmd.status().with_context(|| format!("start {shown}"))?;
    if !st.success() {
        bail!("{shown} failed: {st}");
    }
    Ok(())
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program} >/dev/null"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Installs restic and borg from Debian's packages when they are missing.
pub fn ensure_peers() -> Result<()> {
    if have("restic") && have("borg") {
        return Ok(());
    }
    eprintln!("installing restic and borgbackup from Debian's packages");
    sh(Command::new("apt-get").args(["update", "-qq"]))?;
    sh(Command::new("apt-get")
        .args(["install", "-y", "-qq", "restic", "borgbackup"])
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// A tool's own version line.
pub fn version_of(program: &Path, arg: &str) -> String {
    Command::new(program)
        .arg(arg)
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Fetches and unpacks `PACKAGE` at `version` under `data`, once; returns the tree.
pub fn debian_tree(data: &Path, version: &str) -> Result<PathBuf> {
    let dir = data.join(format!("{PACKAGE}_{version}"));
    let tree = dir.join(PACKAGE);
    if dir.join(".complete").exists() {
        return Ok(tree);
    }
    let dl = data.join("download");
    let _ = fs::remove_dir_all(&dl);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dl)?;
    fs::create_dir_all(&dir)?;
    let spec = format!("{PACKAGE}={version}");
    eprintln!("fetching {spec} from Debian");
    let get = |dl: &Path| {
        Command::new("apt-get")
            .args(["download", "-q", &spec])
            .current_dir(dl)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !get(&dl) {
        sh(Command::new("apt-get").args(["update", "-qq"]))?;
        if !get(&dl) {
            let avail = Command::new("apt-cache")
                .args(["madison", PACKAGE])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            bail!(
                "cannot download {spec}; versions Debian offers now:\n{avail}\
                 pick two with --versions A B, or give two directories with --dirs A B"
            );
        }
    }
    let deb = fs::read_dir(&dl)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("apt-get download left no .deb")?;
    let x = dl.join("x");
    sh(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x))?;
    let tarball = x.join(format!("usr/src/{PACKAGE}.tar.xz"));
    eprintln!("unpacking {}", tarball.display());
    sh(Command::new("tar")
        .arg("-xJf")
        .arg(&tarball)
        .arg("-C")
        .arg(&dir))?;
    if !tree.is_dir() {
        bail!("{} did not unpack to {}", tarball.display(), tree.display());
    }
    fs::remove_dir_all(&dl)?;
    File::create(dir.join(".complete"))?;
    Ok(tree)
}

/// File count and bytes of a tree.
#[derive(Serialize, Clone, Copy, Debug, Default)]
pub struct TreeSize {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
}

/// Calls `f` with the relative path and `lstat` of every entry below
/// `root` (not `root` itself), depth first.
fn walk(root: &Path, mut f: impl FnMut(&Path, &fs::Metadata)) -> Result<()> {
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for e in fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
            let e = e?;
            let md = e.metadata()?;
            let r = rel.join(e.file_name());
            f(&r, &md);
            if md.is_dir() {
                stack.push(r);
            }
        }
    }
    Ok(())
}

/// Regular files of `root`, relative, in sorted order.
pub fn files_of(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    walk(root, |rel, md| {
        if md.is_file() {
            out.push(rel.to_path_buf());
        }
    })?;
    out.sort();
    Ok(out)
}

pub fn tree_size(root: &Path) -> Result<TreeSize> {
    let mut s = TreeSize {
        dirs: 1,
        ..TreeSize::default()
    };
    walk(root, |_, md| {
        let ft = md.file_type();
        if ft.is_dir() {
            s.dirs += 1;
        } else if ft.is_symlink() {
            s.symlinks += 1;
        } else if ft.is_file() {
            s.files += 1;
            s.bytes += md.len();
        }
    })?;
    Ok(s)
}

/// Apparent size of everything under `root`, in bytes.
pub fn dir_bytes(root: &Path) -> Result<u64> {
    Ok(tree_size(root)?.bytes)
}

/// `src` becomes an exact copy of `from` (new inodes, the same times).
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    remove_tree(to)?;
    sh(Command::new("cp").arg("-a").arg(from).arg(to))
}

/// Mounts a tmpfs of `bytes` at `dir` (needs root); false if it cannot.
pub fn mount_tmpfs(dir: &Path, bytes: u64) -> bool {
    unmount(dir);
    if fs::create_dir_all(dir).is_err() {
        return false;
    }
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o"])
        .arg(format!("size={bytes}"))
        .arg("tmpfs")
        .arg(dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!(
            "cannot mount a tmpfs at {}; restoring to disk",
            dir.display()
        );
    }
    ok
}

/// Unmounts `dir` if something is mounted there.
pub fn unmount(dir: &Path) {
    let mounted = Command::new("mountpoint")
        .arg("-q")
        .arg(dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if mounted {
        let _ = Command::new("umount").arg(dir).status();
    }
}

/// A directory on tmpfs (`/dev/shm`) named `PREFIX-<pid>`, after removing
/// what interrupted runs left under that prefix (it would only take memory).
pub fn shm_scratch(prefix: &str) -> Result<PathBuf> {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        bail!("/dev/shm (tmpfs) is needed");
    }
    for e in fs::read_dir(shm)?.flatten() {
        if e.file_name().to_string_lossy().starts_with(prefix) {
            remove_tree(&e.path())?;
        }
    }
    Ok(shm.join(format!("{prefix}-{}", std::process::id())))
}

pub fn remove_tree(p: &Path) -> Result<()> {
    match fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("remove {}", p.display())),
    }
}

/// SplitMix64: a small, fixed, reproducible generator (the mutation must be
/// the same on every machine and every run, whatever crate versions say).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

/// What the mutation did.
#[derive(Serialize, Clone, Copy, Debug, Default, PartialEq)]
pub struct Mutation {
    pub modified: u64,
    pub added: u64,
    pub deleted: u64,
}

/// The seeded ~1% change: 1% of files get up to 4 KiB overwritten in place,
/// 0.1% new files appear (a copy of another file with a new first 64 bytes,
/// as a new source file resembles old ones), and 0.1% are deleted.
pub fn mutate(root: &Path, seed: u64) -> Result<Mutation> {
    let files = files_of(root)?;
    let n = files.len() as u64;
    let per_mille = |k: u64| (n * k).div_ceil(1000);
    let (n_mod, n_add, n_del) = (per_mille(10), per_mille(1), per_mille(1));
    if n_mod + n_del > n {
        bail!("{} has too few files ({n}) to mutate", root.display());
    }
    let mut rng = Rng::new(seed);
    // A partial Fisher-Yates shuffle picks distinct files to modify and delete.
    let mut idx: Vec<usize> = (0..files.len()).collect();
    for i in 0..(n_mod + n_del) as usize {
        let j = i + rng.below((idx.len() - i) as u64) as usize;
        idx.swap(i, j);
    }
    let mut m = Mutation::default();
    for &i in &idx[..n_mod as usize] {
        let p = root.join(&files[i]);
        let f = OpenOptions::new()
            .write(true)
            .open(&p)
            .with_context(|| format!("open {}", p.display()))?;
        let len = f.metadata()?.len();
        let off = rng.below(len);
        let n = (len - off).clamp(1, 4096) as usize;
        let mut buf = vec![0u8; n];
        rng.fill(&mut buf);
        f.write_all_at(&buf, off)?;
        m.modified += 1;
    }
    for k in 0..n_add {
        let like = &files[rng.below(n) as usize];
        let mut data = fs::read(root.join(like))?;
        let head = data.len().min(64);
        rng.fill(&mut data[..head]);
        let dir = like.parent().map(Path::to_path_buf).unwrap_or_default();
        let p = root.join(dir).join(format!("bench-added-{k}.c"));
        fs::write(&p, &data).with_context(|| format!("write {}", p.display()))?;
        m.added += 1;
    }
    for &i in &idx[n_mod as usize..(n_mod + n_del) as usize] {
        fs::remove_file(root.join(&files[i]))?;
        m.deleted += 1;
    }
    Ok(m)
}

/// Checks that `restored` is identical to `source`: the same names, types,
/// file contents, symlink targets, permission bits, and file mtimes.
pub fn compare_trees(source: &Path, restored: &Path) -> Result<u64> {
    let mut checked = 0u64;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let (a, b) = (source.join(&rel), restored.join(&rel));
        let names = |d: &Path| -> Result<BTreeSet<_>> {
            fs::read_dir(d)
                .with_context(|| format!("read {}", d.display()))?
                .map(|e| Ok(e?.file_name()))
                .collect()
        };
        let (na, nb) = (names(&a)?, names(&b)?);
        if na != nb {
            let missing: Vec<_> = na.difference(&nb).take(5).collect();
            let extra: Vec<_> = nb.difference(&na).take(5).collect();
            bail!(
                "{}: entries differ; missing {missing:?}, extra {extra:?}",
                b.display()
            );
        }
        for name in na {
            let r = rel.join(&name);
            let (pa, pb) = (source.join(&r), restored.join(&r));
            let (ma, mb) = (fs::symlink_metadata(&pa)?, fs::symlink_metadata(&pb)?);
            if ma.file_type() != mb.file_type() {
                bail!("{}: type differs", pb.display());
            }
            checked += 1;
            if ma.file_type().is_symlink() {
                if fs::read_link(&pa)? != fs::read_link(&pb)? {
                    bail!("{}: symlink target differs", pb.display());
                }
                continue;
            }
            if ma.permissions().mode() & 0o7777 != mb.permissions().mode() & 0o7777 {
                bail!("{}: mode differs", pb.display());
            }
            if ma.is_dir() {
                stack.push(r);
            } else if ma.is_file() {
                if ma.len() != mb.len() || ma.mtime() != mb.mtime() {
                    bail!("{}: size or mtime differs", pb.display());
                }
                if !same_contents(&pa, &pb)? {
                    bail!("{}: contents differ", pb.display());
                }
            }
        }
    }
    Ok(checked)
}

fn same_contents(a: &Path, b: &Path) -> Result<bool> {
    let (mut fa, mut fb) = (File::open(a)?, File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = read_full(&mut fa, &mut ba)?;
        let m = read_full(&mut fb, &mut bb)?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(root: &Path) {
        for d in 0..5 {
            let dir = root.join(format!("d{d}"));
            fs::create_dir_all(&dir).unwrap();
            for f in 0..300 {
                fs::write(
                    dir.join(format!("f{f}")),
                    format!("file {d}/{f}\n").repeat(f + 1),
                )
                .unwrap();
            }
        }
        std::os::unix::fs::symlink("d0/f1", root.join("link")).unwrap();
    }

    #[test]
    fn mutation_is_reproducible_and_sized() {
        let t = std::env::temp_dir().join(format!("coffer-bench-mut-{}", std::process::id()));
        let (a, b) = (t.join("a"), t.join("b"));
        tree(&a);
        tree(&b);
        let ma = mutate(&a, 7).unwrap();
        let mb = mutate(&b, 7).unwrap();
        assert_eq!(ma, mb);
        assert_eq!(
            ma,
            Mutation {
                modified: 15,
                added: 2,
                deleted: 2
            }
        );
        // Same seed, same result; and the result differs from the original.
        compare_trees(&a, &b).unwrap_or_else(|e| {
            // mtimes of modified files may differ by the second they were written
            assert!(e.to_string().contains("mtime"), "{e}");
            0
        });
        let c = t.join("c");
        tree(&c);
        assert!(compare_trees(&c, &a).is_err());
        assert_eq!(files_of(&a).unwrap().len(), 1500);
        fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn comparison_finds_every_kind_of_difference() {
        let t = std::env::temp_dir().join(format!("coffer-bench-cmp-{}", std::process::id()));
        let (a, b) = (t.join("a"), t.join("b"));
        tree(&a);
        copy_tree(&a, &b).unwrap();
        assert_eq!(compare_trees(&a, &b).unwrap(), 1506);
        // same size, same mtime, one byte different
        let p = b.join("d3/f9");
        let mt = fs::metadata(&p).unwrap().modified().unwrap();
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(b"X", 3).unwrap();
        f.set_modified(mt).unwrap();
        drop(f);
        let e = compare_trees(&a, &b).unwrap_err().to_string();
        assert!(e.contains("contents differ"), "{e}");
        copy_tree(&a, &b).unwrap();
        fs::set_permissions(b.join("d1/f1"), fs::Permissions::from_mode(0o600)).unwrap();
        assert!(
            compare_trees(&a, &b)
                .unwrap_err()
                .to_string()
                .contains("mode differs")
        );
        copy_tree(&a, &b).unwrap();
        fs::remove_file(b.join("d4/f4")).unwrap();
        assert!(
            compare_trees(&a, &b)
                .unwrap_err()
                .to_string()
                .contains("missing")
        );
        fs::remove_dir_all(&t).unwrap();
    }
}
