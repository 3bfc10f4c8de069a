//! `coffer-image build`: the appliance's boot disk image, from Debian
//! packages and this workspace's binaries.
//!
//! 1. **Base**: `mmdebstrap` (root mode) makes a minimal Debian root
//!    filesystem from the packages in [`PACKAGES`], from the Debian
//!    mirror only. Downloaded `.deb`s are kept in the cache directory and
//!    handed back to apt on the next build (apt checks them against the
//!    signed indices), and the finished base is kept as a tarball keyed
//!    by everything that went into it, so a second build of the same
//!    base costs an extraction. Kernel modules no appliance loads (sound,
//!    graphics, wireless, media, bluetooth, …) are removed.
//! 2. **Overlay**: the tree in `image/rootfs/` (service units, fstab),
//!    the binaries (`cofferd`, `coffer`, `coffer-image`, debug symbols
//!    stripped), the version, the slot layout, the trusted update key and
//!    the package manifest (`/usr/lib/coffer/packages.txt`, every
//!    package and version). Getty on tty1 and ttyS0 is replaced by the
//!    Coffer console. Every timestamp is set to `SOURCE_DATE_EPOCH`.
//! 3. **Filesystems** without mounting: the root as an ext4 image made
//!    by `mkfs.ext4 -d` with a fixed UUID, hash seed and time; the EFI
//!    system partition as FAT32 filled with mtools (systemd-boot, slot
//!    a's kernel, initrd and boot entry); an empty ext4 data partition.
//! 4. **Disk**: a GPT written by `sfdisk` with fixed disk and partition
//!    UUIDs, the partitions copied in at their offsets. Slot b is empty
//!    and has no entry until the first update.
//! 5. **Bundle**: the same root filesystem, kernel and initrd as a signed
//!    update bundle, for appliances already in the field.
//!
//! Everything is made under `OUT/.work` and moved into `OUT` only when
//! the whole image is done: a failed build (no Debian mirror reachable, a
//! missing tool or binary, a full disk) leaves no image behind.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;

use crate::bundle::{self, Version};
use crate::slots::{Layout, Partition, Slot};

/// The Debian release the image is built from.
pub const SUITE: &str = "bookworm";
/// The packages the appliance needs (with their dependencies), and
/// nothing else: kernel, init, boot loader (systemd-boot also gives
/// systemd-bless-boot for boot counting), networking and time (systemd's
/// own), filesystem tools for the pool's disks, SMART, CA certificates
/// for the notification and replication links' chains.
pub const PACKAGES: &[&str] = &[
    "linux-image-amd64",
    "systemd",
    "systemd-sysv",
    "systemd-boot",
    "systemd-resolved",
    "systemd-timesyncd",
    "udev",
    "kmod",
    "e2fsprogs",
    "smartmontools",
    "ca-certificates",
    "iproute2",
    "tzdata",
];

/// Module directories an appliance never loads (relative to
/// `lib/modules/VERSION/kernel`).
const PRUNE_MODULES: &[&str] = &[
    "sound",
    "drivers/gpu",
    "drivers/media",
    "drivers/net/wireless",
    "drivers/bluetooth",
    "net/bluetooth",
    "net/wireless",
    "net/mac80211",
    "drivers/infiniband",
    "drivers/staging",
    "drivers/iio",
    "drivers/isdn",
    "drivers/input/joystick",
    "drivers/input/tablet",
    "drivers/input/touchscreen",
    "drivers/hid",
    "drivers/video/fbdev",
    "drivers/net/can",
    "drivers/net/usb",
    "drivers/platform/chrome",
    "drivers/thunderbolt",
    "fs/ocfs2",
    "fs/gfs2",
    "fs/nfs",
    "fs/nfsd",
    "fs/ceph",
    "fs/smb",
];

/// Partition layout in MiB: ESP, slot a, slot b, data (GPT, 1 MiB aligned).
pub const ESP_MIB: u64 = 256;
/// Each root slot.
pub const SLOT_MIB: u64 = 1024;
/// The data partition of the image (state; the store goes on the pool's
/// own disks).
pub const DATA_MIB: u64 = 1024;

/// Fixed identifiers: the same inputs give the same disk.
const DISK_GUID: &str = "6b1c3f36-58a4-4b8e-9f5e-000000000000";
const ESP_PARTUUID: &str = "6b1c3f36-58a4-4b8e-9f5e-000000000001";
/// Slot a's partition UUID.
pub const A_PARTUUID: &str = "6b1c3f36-58a4-4b8e-9f5e-00000000000a";
/// Slot b's partition UUID.
pub const B_PARTUUID: &str = "6b1c3f36-58a4-4b8e-9f5e-00000000000b";
const DATA_PARTUUID: &str = "6b1c3f36-58a4-4b8e-9f5e-00000000000d";
const ROOT_FSUUID: &str = "0b3e4a1c-1111-4a2b-8c3d-00000000000a";
const DATA_FSUUID: &str = "0b3e4a1c-1111-4a2b-8c3d-00000000000d";
const ESP_VOLID: &str = "1ABC2DEF";
const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const ROOT_X86_64_TYPE: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
const LINUX_TYPE: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

/// The kernel command line every slot boots with (besides root and slot).
pub const KERNEL_OPTIONS: &str = "console=tty1 console=ttyS0,115200 panic=10";

/// The binaries the image carries.
pub const BINARIES: &[&str] = &["cofferd", "coffer", "coffer-image"];

/// The tools the build uses from the build machine.
const TOOLS: &[(&str, &str)] = &[
    ("mmdebstrap", "mmdebstrap"),
    ("sfdisk", "fdisk"),
    ("mkfs.ext4", "e2fsprogs"),
    ("mkfs.vfat", "dosfstools"),
    ("mcopy", "mtools"),
    ("mmd", "mtools"),
    ("tar", "tar"),
    ("objcopy", "binutils"),
];

/// What `coffer-image build` is told.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the image and the bundle go.
    pub out: PathBuf,
    /// The `.deb` and base cache (kept between builds).
    pub cache: PathBuf,
    /// Where `cofferd`, `coffer` and `coffer-image` are.
    pub binaries: PathBuf,
    /// The version the image is (its bundle installs it).
    pub version: Version,
    /// The Debian mirror.
    pub mirror: String,
    /// The security mirror (`None`: none, e.g. for a local mirror).
    pub security_mirror: Option<String>,
    /// The update signing key (PKCS#8) to sign the bundle with; its
    /// public half is trusted by the image.
    pub key: PathBuf,
    /// More trusted public keys (hex files), e.g. a second signer.
    pub trust: Vec<PathBuf>,
    /// Fixed time of every file (seconds since 1970).
    pub source_date_epoch: i64,
    /// Only the root filesystem, kernel, initrd and bundle (no disk image).
    pub bundle_only: bool,
}

/// What a build made (also written as `OUT/build-VERSION.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Built {
    /// The version.
    pub version: String,
    /// The disk image (absent for a bundle-only build).
    pub image: Option<PathBuf>,
    /// The signed update bundle.
    pub bundle: PathBuf,
    /// The root filesystem image.
    pub rootfs: PathBuf,
    /// BLAKE3 over the root tree (every path, type, mode, owner, target
    /// and content, in order): two builds from the same inputs agree.
    pub rootfs_tree_blake3: String,
    /// Packages and versions in the image.
    pub packages: usize,
    /// The kernel's version.
    pub kernel: String,
    /// Seconds spent.
    pub seconds: f64,
    /// Whether the base came from the cache.
    pub base_cached: bool,
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("{what}: cannot run {:?}", cmd.get_program()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(12).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("{what} failed ({}):\n{}", out.status, tail.join("\n"));
    }
    Ok(())
}

fn output(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("{what}: cannot run {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn which(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .any(|d| d.join(tool).is_file())
    })
}

/// Checks the build machine before anything is made.
pub fn preflight(o: &Options) -> Result<()> {
    let missing: Vec<String> = TOOLS
        .iter()
        .filter(|(t, _)| !which(t))
        .map(|(t, p)| format!("{t} (Debian package {p})"))
        .collect();
    if !missing.is_empty() {
        bail!(
            "the build needs tools this machine lacks: {}",
            missing.join(", ")
        );
    }
    if !nix::unistd::Uid::effective().is_root() {
        bail!("the build runs mmdebstrap in root mode: run it as root");
    }
    for b in BINARIES {
        let p = o.binaries.join(b);
        let head = std::fs::read(&p)
            .ok()
            .and_then(|v| v.get(..4).map(<[u8]>::to_vec));
        if head.as_deref() != Some(b"\x7fELF") {
            bail!(
                "'{}' is not a built binary: build the workspace first (cargo build --release) or name its directory with --binaries",
                p.display()
            );
        }
    }
    std::fs::read(&o.key).with_context(|| {
        format!(
            "the update signing key '{}' (make one with coffer-image keygen)",
            o.key.display()
        )
    })?;
    Ok(())
}

/// The base's cache key: everything that decides its contents.
fn base_key(o: &Options) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"coffer image base v1\0");
    h.update(SUITE.as_bytes());
    for p in PACKAGES {
        h.update(b"\0");
        h.update(p.as_bytes());
    }
    for p in PRUNE_MODULES {
        h.update(b"\0-");
        h.update(p.as_bytes());
    }
    h.update(o.mirror.as_bytes());
    h.update(o.security_mirror.as_deref().unwrap_or("").as_bytes());
    h.update(&o.source_date_epoch.to_le_bytes());
    h.finalize().to_hex()[..16].to_string()
}

/// The base root filesystem, made by mmdebstrap or taken from the cache,
/// extracted into `root`. Returns whether it was cached.
fn base(o: &Options, root: &Path) -> Result<bool> {
    let debs = o.cache.join("debs");
    std::fs::create_dir_all(&debs).with_context(|| format!("create '{}'", debs.display()))?;
    let tarball = o.cache.join(format!("base-{}.tar", base_key(o)));
    let cached = tarball.is_file();
    if !cached {
        let partial = tarball.with_extension("tar.partial");
        let _ = std::fs::remove_file(&partial);
        let prune: Vec<String> = PRUNE_MODULES
            .iter()
            .map(|m| format!("\"$1\"/usr/lib/modules/*/kernel/{m}"))
            .collect();
        let mut sources = vec![
            format!("deb {} {SUITE} main", o.mirror),
            format!("deb {} {SUITE}-updates main", o.mirror),
        ];
        if let Some(s) = &o.security_mirror {
            sources.push(format!("deb {s} {SUITE}-security main"));
        }
        let mut cmd = Command::new("mmdebstrap");
        cmd.env("SOURCE_DATE_EPOCH", o.source_date_epoch.to_string())
            .env("LC_ALL", "C.UTF-8")
            .args(["--mode=root", "--variant=essential", "--format=tar"])
            .arg(format!("--include={}", PACKAGES.join(",")))
            .arg("--skip=essential/unlink")
            .arg("--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr")
            .arg("--aptopt=Acquire::Languages \"none\"")
            .arg("--aptopt=Acquire::Retries \"2\"")
            .arg("--dpkgopt=path-exclude=/usr/share/doc/*")
            .arg("--dpkgopt=path-include=/usr/share/doc/*/copyright")
            .arg("--dpkgopt=path-exclude=/usr/share/man/*")
            .arg("--dpkgopt=path-exclude=/usr/share/locale/*")
            .arg("--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/partial")
            .arg(format!(
                "--setup-hook=sync-in {} /var/cache/apt/archives/",
                debs.display()
            ))
            .arg(format!(
                "--customize-hook=sync-out /var/cache/apt/archives {}",
                debs.display()
            ))
            .arg(format!(
                "--customize-hook=rm -rf {} && for k in \"$1\"/usr/lib/modules/*; do chroot \"$1\" depmod -a \"${{k##*/}}\"; done",
                prune.join(" ")
            ))
            .arg(SUITE)
            .arg(&partial);
        for s in &sources {
            cmd.arg(s);
        }
        if let Err(e) = run(&mut cmd, "mmdebstrap (the Debian packages)") {
            let _ = std::fs::remove_file(&partial);
            return Err(e.context(format!(
                "could not make the base system from the Debian mirror {}; nothing was written to the output",
                o.mirror
            )));
        }
        std::fs::rename(&partial, &tarball)?;
    }
    std::fs::create_dir_all(root)?;
    run(
        Command::new("tar")
            .args([
                "--extract",
                "--numeric-owner",
                "--xattrs",
                "--xattrs-include=*",
            ])
            .arg("--file")
            .arg(&tarball)
            .arg("--directory")
            .arg(root),
        "extracting the base",
    )?;
    Ok(cached)
}

fn write(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(path, text).with_context(|| format!("write '{}'", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn symlink(target: &str, link: &Path) -> Result<()> {
    if let Some(d) = link.parent() {
        std::fs::create_dir_all(d)?;
    }
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("symlink '{}'", link.display()))
}

/// The layout every slot records.
pub fn layout() -> Layout {
    Layout {
        esp: PathBuf::from("/efi"),
        slots: [
            Partition {
                device: PathBuf::from("/dev/disk/by-partlabel/root-a"),
                partuuid: A_PARTUUID.into(),
            },
            Partition {
                device: PathBuf::from("/dev/disk/by-partlabel/root-b"),
                partuuid: B_PARTUUID.into(),
            },
        ],
        options: KERNEL_OPTIONS.into(),
    }
}

/// Puts Coffer onto the base.
fn overlay(o: &Options, root: &Path, overlay_src: &Path) -> Result<String> {
    run(
        Command::new("cp")
            .args(["-a", "--no-preserve=ownership"])
            .arg(format!("{}/.", overlay_src.display()))
            .arg(root),
        "copying image/rootfs",
    )?;
    for b in BINARIES {
        let to = root.join("usr/bin").join(b);
        run(
            Command::new("objcopy")
                .arg("--strip-all")
                .arg(o.binaries.join(b))
                .arg(&to),
            &format!("installing {b}"),
        )?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755))?;
    }
    for d in ["efi", "var/lib/coffer"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    let lib = root.join("usr/lib/coffer");
    write(&lib.join("version"), &format!("{}\n", o.version), 0o644)?;
    write(
        &lib.join("slots.json"),
        &format!("{}\n", serde_json::to_string_pretty(&layout())?),
        0o644,
    )?;
    let keys = lib.join("update-keys");
    std::fs::create_dir_all(&keys)?;
    let doc = zeroize::Zeroizing::new(std::fs::read(&o.key)?);
    let signer = bundle::SigningKey::from_pkcs8(&doc)?;
    write(
        &keys.join(format!("{}.pub", bundle::key_id(signer.public()))),
        &format!("{}\n", hex::encode(signer.public())),
        0o644,
    )?;
    for t in &o.trust {
        let text = std::fs::read_to_string(t).with_context(|| format!("read '{}'", t.display()))?;
        let k = bundle::parse_public(&text)?;
        write(
            &keys.join(format!("{}.pub", bundle::key_id(&k))),
            &format!("{}\n", hex::encode(k)),
            0o644,
        )?;
    }
    // The console instead of a login getty; networkd, resolved, timesyncd on.
    let sys = root.join("etc/systemd/system");
    for masked in [
        "getty@tty1.service",
        "serial-getty@ttyS0.service",
        "apt-daily.timer",
        "apt-daily-upgrade.timer",
    ] {
        symlink("/dev/null", &sys.join(masked))?;
    }
    let wants = |target: &str, unit: &str, file: &str| -> Result<()> {
        symlink(
            &format!("/usr/lib/systemd/system/{unit}"),
            &sys.join(format!("{target}.wants")).join(file),
        )
    };
    wants(
        "getty.target",
        "coffer-console@.service",
        "coffer-console@tty1.service",
    )?;
    wants(
        "getty.target",
        "coffer-console@.service",
        "coffer-console@ttyS0.service",
    )?;
    wants(
        "sysinit.target",
        "coffer-apply.service",
        "coffer-apply.service",
    )?;
    wants("multi-user.target", "cofferd.service", "cofferd.service")?;
    wants(
        "multi-user.target",
        "coffer-boot-check.service",
        "coffer-boot-check.service",
    )?;
    symlink(
        "/usr/lib/systemd/system/coffer-boot-check.service",
        &sys.join("boot-complete.target.requires/coffer-boot-check.service"),
    )?;
    wants(
        "multi-user.target",
        "systemd-networkd.service",
        "systemd-networkd.service",
    )?;
    wants(
        "multi-user.target",
        "systemd-resolved.service",
        "systemd-resolved.service",
    )?;
    wants(
        "sysinit.target",
        "systemd-timesyncd.service",
        "systemd-timesyncd.service",
    )?;
    symlink(
        "/run/systemd/resolve/stub-resolv.conf",
        &root.join("etc/resolv.conf"),
    )?;
    // machine-id: made at first boot (an empty file means "not yet").
    write(&root.join("etc/machine-id"), "", 0o444)?;
    let _ = std::fs::remove_file(root.join("var/lib/dbus/machine-id"));
    // The package manifest.
    let packages = output(
        Command::new("chroot").arg(root).args([
            "dpkg-query",
            "-W",
            "-f",
            "${Package}\t${Version}\t${Architecture}\n",
        ]),
        "listing the packages",
    )?;
    let mut lines: Vec<&str> = packages.lines().collect();
    lines.sort_unstable();
    write(
        &lib.join("packages.txt"),
        &format!("{}\n", lines.join("\n")),
        0o644,
    )?;
    // Nothing in the image changes with the day it was built.
    run(
        Command::new("find")
            .arg(root)
            .args(["-exec", "touch", "--no-dereference"])
            .arg(format!("--date=@{}", o.source_date_epoch))
            .args(["{}", "+"]),
        "fixing timestamps",
    )?;
    Ok(packages)
}

fn kernel_version(root: &Path) -> Result<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("usr/lib/modules"))?
        .flatten()
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v.pop()
        .ok_or_else(|| anyhow!("the base has no kernel in /usr/lib/modules"))
}

/// BLAKE3 over the tree: path, type, mode, owner, link target, content.
pub fn tree_digest(root: &Path) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    let mut h = blake3::Hasher::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let p = root.join(&rel);
        let m = std::fs::symlink_metadata(&p)?;
        h.update(rel.as_os_str().as_encoded_bytes());
        h.update(&[0]);
        h.update(&m.mode().to_le_bytes());
        h.update(&m.uid().to_le_bytes());
        h.update(&m.gid().to_le_bytes());
        if m.file_type().is_symlink() {
            h.update(std::fs::read_link(&p)?.as_os_str().as_encoded_bytes());
        } else if m.is_file() {
            let mut f = std::fs::File::open(&p)?;
            let mut fh = blake3::Hasher::new();
            std::io::copy(&mut f, &mut fh)?;
            h.update(fh.finalize().as_bytes());
        } else if m.is_dir() {
            let mut names: Vec<_> = std::fs::read_dir(&p)?
                .flatten()
                .map(|d| d.file_name())
                .collect();
            names.sort();
            for n in names.into_iter().rev() {
                stack.push(rel.join(n));
            }
        } else {
            h.update(&m.rdev().to_le_bytes());
        }
    }
    Ok(h.finalize().to_hex().to_string())
}

fn dir_bytes(root: &Path) -> Result<u64> {
    let out = output(
        Command::new("du").args(["-s", "--block-size=1"]).arg(root),
        "measuring the root",
    )?;
    out.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow!("du printed '{out}'"))
}

fn mkfs_ext4(
    img: &Path,
    mib: u64,
    label: &str,
    uuid: &str,
    from: Option<&Path>,
    epoch: i64,
) -> Result<()> {
    let f = std::fs::File::create(img)?;
    f.set_len(mib << 20)?;
    drop(f);
    let mut cmd = Command::new("mkfs.ext4");
    cmd.env("E2FSPROGS_FAKE_TIME", epoch.to_string())
        .args(["-q", "-F", "-L", label, "-U", uuid])
        .arg("-E")
        .arg(format!(
            "root_owner=0:0,hash_seed={uuid},lazy_itable_init=0,nodiscard"
        ))
        .args(["-m", "1"]);
    if let Some(d) = from {
        cmd.arg("-d").arg(d);
    }
    cmd.arg(img);
    run(&mut cmd, &format!("making the {label} filesystem"))
}

fn mtools(args: &[&str], img: &Path, what: &str) -> Result<()> {
    let (cmd, rest) = args
        .split_first()
        .ok_or_else(|| anyhow!("no mtools command"))?;
    run(
        Command::new(cmd)
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(img)
            .args(rest),
        what,
    )
}

fn esp(work: &Path, root: &Path, o: &Options) -> Result<PathBuf> {
    let img = work.join("esp.img");
    let _ = std::fs::remove_file(&img);
    run(
        Command::new("mkfs.vfat")
            .args(["-C", "-F", "32", "-n", "ESP", "-i", ESP_VOLID])
            .arg(&img)
            .arg((ESP_MIB * 1024).to_string()),
        "making the EFI system partition",
    )?;
    let efi = root.join("usr/lib/systemd/boot/efi/systemd-bootx64.efi");
    if !efi.is_file() {
        bail!("the base has no systemd-boot ({})", efi.display());
    }
    let kver = kernel_version(root)?;
    let entry = crate::slots::entry_text(&layout(), Slot::A, o.version);
    let loader = "timeout 0\neditor no\nconsole-mode keep\n";
    let e = work.join("esp-files");
    std::fs::create_dir_all(&e)?;
    write(&e.join("loader.conf"), loader, 0o644)?;
    write(&e.join("coffer-a.conf"), &entry, 0o644)?;
    for d in [
        "::/EFI",
        "::/EFI/BOOT",
        "::/EFI/systemd",
        "::/loader",
        "::/loader/entries",
        "::/coffer",
        "::/coffer/a",
        "::/coffer/b",
    ] {
        mtools(&["mmd", d], &img, "filling the ESP")?;
    }
    let copies: [(PathBuf, &str); 6] = [
        (efi.clone(), "::/EFI/BOOT/BOOTX64.EFI"),
        (efi, "::/EFI/systemd/systemd-bootx64.efi"),
        (e.join("loader.conf"), "::/loader/loader.conf"),
        (e.join("coffer-a.conf"), "::/loader/entries/coffer-a.conf"),
        (
            root.join(format!("boot/vmlinuz-{kver}")),
            "::/coffer/a/vmlinuz",
        ),
        (
            root.join(format!("boot/initrd.img-{kver}")),
            "::/coffer/a/initrd.img",
        ),
    ];
    for (from, to) in copies {
        let from_s = from.to_string_lossy().into_owned();
        mtools(&["mcopy", "-o", &from_s, to], &img, "filling the ESP")?;
    }
    Ok(img)
}

fn disk(work: &Path, esp_img: &Path, root_img: &Path, data_img: &Path) -> Result<PathBuf> {
    let img = work.join("disk.img");
    let start_esp = 1;
    let start_a = start_esp + ESP_MIB;
    let start_b = start_a + SLOT_MIB;
    let start_d = start_b + SLOT_MIB;
    let total = start_d + DATA_MIB + 1;
    let f = std::fs::File::create(&img)?;
    f.set_len(total << 20)?;
    drop(f);
    let sector = |mib: u64| mib * 2048;
    let script = format!(
        "label: gpt\nlabel-id: {DISK_GUID}\nunit: sectors\nfirst-lba: 2048\n\n\
         start={}, size={}, type={ESP_TYPE}, uuid={ESP_PARTUUID}, name=esp\n\
         start={}, size={}, type={ROOT_X86_64_TYPE}, uuid={A_PARTUUID}, name=root-a\n\
         start={}, size={}, type={ROOT_X86_64_TYPE}, uuid={B_PARTUUID}, name=root-b\n\
         start={}, size={}, type={LINUX_TYPE}, uuid={DATA_PARTUUID}, name=data\n",
        sector(start_esp),
        sector(ESP_MIB),
        sector(start_a),
        sector(SLOT_MIB),
        sector(start_b),
        sector(SLOT_MIB),
        sector(start_d),
        sector(DATA_MIB),
    );
    let mut child = Command::new("sfdisk")
        .args(["--quiet", "--no-reread", "--no-tell-kernel"])
        .arg(&img)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running sfdisk")?;
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .ok_or_else(|| anyhow!("sfdisk has no stdin"))?
            .write_all(script.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "sfdisk failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    for (part, start) in [
        (esp_img, start_esp),
        (root_img, start_a),
        (data_img, start_d),
    ] {
        run(
            Command::new("dd")
                .arg(format!("if={}", part.display()))
                .arg(format!("of={}", img.display()))
                .args(["bs=1M", "conv=notrunc,sparse", "status=none"])
                .arg(format!("seek={start}")),
            "writing a partition into the disk image",
        )?;
    }
    Ok(img)
}

/// Builds the image (and its bundle) as `o` says, with the overlay tree
/// at `overlay_src` (the workspace's `image/rootfs`).
pub fn build(o: &Options, overlay_src: &Path) -> Result<Built> {
    let t0 = std::time::Instant::now();
    preflight(o)?;
    std::fs::create_dir_all(&o.out).with_context(|| format!("create '{}'", o.out.display()))?;
    std::fs::create_dir_all(&o.cache).with_context(|| format!("create '{}'", o.cache.display()))?;
    let work = o.out.join(".work");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    let result = build_in(o, overlay_src, &work, t0);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

fn build_in(o: &Options, overlay_src: &Path, work: &Path, t0: std::time::Instant) -> Result<Built> {
    let root = work.join("rootfs");
    let base_cached = base(o, &root)?;
    let packages = overlay(o, &root, overlay_src)?;
    let kver = kernel_version(&root)?;
    let digest = tree_digest(&root)?;
    // The root filesystem: its content plus a tenth and 48 MiB (the
    // journal is in memory; state is on the data partition).
    let used = dir_bytes(&root)?;
    let mib = ((used + used / 10) >> 20) + 48;
    if mib > SLOT_MIB {
        bail!("the root filesystem needs {mib} MiB and a slot holds {SLOT_MIB}");
    }
    let root_img = work.join("rootfs.ext4");
    mkfs_ext4(
        &root_img,
        mib,
        "root",
        ROOT_FSUUID,
        Some(&root),
        o.source_date_epoch,
    )?;
    let vmlinuz = work.join("vmlinuz");
    let initrd = work.join("initrd.img");
    std::fs::copy(root.join(format!("boot/vmlinuz-{kver}")), &vmlinuz)?;
    std::fs::copy(root.join(format!("boot/initrd.img-{kver}")), &initrd)?;
    let image = if o.bundle_only {
        None
    } else {
        let esp_img = esp(work, &root, o)?;
        let data_img = work.join("data.ext4");
        mkfs_ext4(
            &data_img,
            DATA_MIB,
            "data",
            DATA_FSUUID,
            None,
            o.source_date_epoch,
        )?;
        let d = disk(work, &esp_img, &root_img, &data_img)?;
        std::fs::remove_file(&esp_img)?;
        std::fs::remove_file(&data_img)?;
        Some(d)
    };
    // The bundle.
    let bundle_path = work.join(format!("coffer-{}.cub", o.version));
    {
        let doc = zeroize::Zeroizing::new(std::fs::read(&o.key)?);
        let signer = bundle::SigningKey::from_pkcs8(&doc)?;
        let f = std::fs::File::create(&bundle_path)?;
        let mut w = std::io::BufWriter::new(f);
        let items = [
            ("rootfs".to_string(), root_img.clone()),
            ("vmlinuz".to_string(), vmlinuz.clone()),
            ("initrd.img".to_string(), initrd.clone()),
        ];
        bundle::write_files(
            &mut w,
            o.version,
            &coffer_types::rfc3339_ms(o.source_date_epoch.saturating_mul(1000)),
            &signer,
            &items,
        )?;
        let f = w
            .into_inner()
            .map_err(|e| anyhow!("write the bundle: {e}"))?;
        f.sync_all()?;
    }
    std::fs::copy(
        root.join("usr/lib/coffer/packages.txt"),
        work.join("packages.txt"),
    )?;
    std::fs::remove_dir_all(&root)?;
    // Done: move everything into OUT.
    let out = &o.out;
    let mv = |name: &str, to: &str| -> Result<PathBuf> {
        let dest = out.join(to);
        std::fs::rename(work.join(name), &dest)
            .with_context(|| format!("move '{}' into place", dest.display()))?;
        Ok(dest)
    };
    let image = match image {
        Some(_) => Some(mv("disk.img", &format!("coffer-{}.img", o.version))?),
        None => None,
    };
    let built = Built {
        version: o.version.to_string(),
        image,
        bundle: mv(
            &format!("coffer-{}.cub", o.version),
            &format!("coffer-{}.cub", o.version),
        )?,
        rootfs: mv("rootfs.ext4", &format!("rootfs-{}.ext4", o.version))?,
        rootfs_tree_blake3: digest,
        packages: packages.lines().count(),
        kernel: kver,
        seconds: t0.elapsed().as_secs_f64(),
        base_cached,
    };
    mv("vmlinuz", &format!("vmlinuz-{}", o.version))?;
    mv("initrd.img", &format!("initrd-{}.img", o.version))?;
    mv("packages.txt", &format!("packages-{}.txt", o.version))?;
    std::fs::write(
        out.join(format!("build-{}.json", o.version)),
        format!("{}\n", serde_json::to_string_pretty(&built)?),
    )?;
    std::fs::remove_dir_all(work)?;
    Ok(built)
}
