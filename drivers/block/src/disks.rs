//! Block devices from sysfs.
//!
//! Reads `/sys/block/*` the way `lsblk` does: size (512-byte sectors),
//! `queue/rotational`, `removable`, model, serial and WWN from the device
//! directory, partitions as subdirectories with a `partition` file. The
//! stable name is the `/dev/disk/by-id` link udev made for the disk (absent
//! on machines without udev). Mounts come from `/proc/self/mountinfo`,
//! matched by device number.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::smart::Health;
use crate::{Error, Result};

/// A whole disk.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Disk {
    /// Kernel name (`sda`, `nvme0n1`, `vda`, `loop3`).
    pub name: String,
    /// Device node.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Spinning disk (`queue/rotational`).
    pub rotational: bool,
    /// Removable medium.
    pub removable: bool,
    /// Read-only device.
    pub read_only: bool,
    /// Vendor and model, as the device reports them.
    pub model: Option<String>,
    /// Serial number.
    pub serial: Option<String>,
    /// World Wide Name.
    pub wwn: Option<String>,
    /// The stable `/dev/disk/by-id` name, if udev made one.
    pub by_id: Option<PathBuf>,
    /// `MAJOR:MINOR`.
    pub dev: String,
    /// Partitions.
    pub partitions: Vec<Partition>,
    /// Where the whole disk itself is mounted.
    pub mounts: Vec<PathBuf>,
    /// SMART health, when it was asked for and smartctl could tell.
    pub health: Option<Health>,
}

/// A partition of a disk.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Partition {
    /// Kernel name (`sda1`).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// `MAJOR:MINOR`.
    pub dev: String,
    /// Where it is mounted.
    pub mounts: Vec<PathBuf>,
}

fn read_trim(p: &Path) -> Option<String> {
    let s = fs::read_to_string(p).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn read_num(p: &Path) -> Option<u64> {
    read_trim(p)?.parse().ok()
}

/// Mount points by device number, from a `/proc/self/mountinfo` text.
/// Octal escapes in mount points (`\040` for a space) are decoded.
pub fn parse_mountinfo(text: &str) -> BTreeMap<String, Vec<PathBuf>> {
    let mut out: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for line in text.lines() {
        let mut f = line.split(' ');
        let (Some(_id), Some(_parent), Some(dev), Some(_root), Some(mp)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        out.entry(dev.to_string())
            .or_default()
            .push(PathBuf::from(unescape_octal(mp)));
    }
    out
}

fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `/dev/disk/by-id` names by the kernel name they point at. Where udev
/// made several, the first in sort order that is not a `wwn-` alias wins
/// (`ata-MODEL_SERIAL`, `nvme-MODEL_SERIAL`, `scsi-…`).
fn by_id_links(dir: &Path) -> BTreeMap<String, PathBuf> {
    let mut links: Vec<(String, PathBuf)> = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for ent in rd.flatten() {
            let p = ent.path();
            if let Ok(target) = fs::read_link(&p)
                && let Some(name) = target.file_name()
            {
                links.push((name.to_string_lossy().into_owned(), p));
            }
        }
    }
    links.sort_by(|a, b| {
        let wa =
            a.1.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("wwn-"));
        let wb =
            b.1.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("wwn-"));
        (wa, &a.1).cmp(&(wb, &b.1))
    });
    let mut out = BTreeMap::new();
    for (name, p) in links {
        out.entry(name).or_insert(p);
    }
    out
}

/// Every disk under `sys/block` with a non-zero size (unattached loop
/// devices and empty drives are left out), sorted by name. `dev` is the
/// `/dev` directory (for device nodes and `disk/by-id`), `mountinfo` the
/// text of `/proc/self/mountinfo`.
pub fn discover(sys: &Path, dev: &Path, mountinfo: &str) -> Result<Vec<Disk>> {
    let block = sys.join("block");
    let rd = fs::read_dir(&block).map_err(|e| Error::io("list", &block, e))?;
    let mounts = parse_mountinfo(mountinfo);
    let by_id = by_id_links(&dev.join("disk/by-id"));
    let mut disks = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| Error::io("list", &block, e))?;
        let name = ent.file_name().to_string_lossy().into_owned();
        let d = block.join(&name);
        let size = read_num(&d.join("size")).unwrap_or(0) * 512;
        if size == 0 {
            continue;
        }
        let devno = read_trim(&d.join("dev")).unwrap_or_default();
        // virtio and NVMe put a PCI vendor id (0x1af4) in `vendor`: not a name.
        let vendor = read_trim(&d.join("device/vendor")).filter(|v| !v.starts_with("0x"));
        let model = match (vendor, read_trim(&d.join("device/model"))) {
            (Some(v), Some(m)) if !m.starts_with(&v) => Some(format!("{v} {m}")),
            (_, Some(m)) => Some(m),
            (v, None) => v,
        };
        let serial = read_trim(&d.join("device/serial")).or_else(|| read_trim(&d.join("serial")));
        let wwn = read_trim(&d.join("device/wwid"))
            .or_else(|| read_trim(&d.join("wwid")))
            .or_else(|| read_trim(&d.join("device/wwn")));
        let mut partitions = Vec::new();
        if let Ok(parts) = fs::read_dir(&d) {
            for p in parts.flatten() {
                let pd = p.path();
                if !pd.join("partition").exists() {
                    continue;
                }
                let pdev = read_trim(&pd.join("dev")).unwrap_or_default();
                partitions.push(Partition {
                    name: p.file_name().to_string_lossy().into_owned(),
                    size: read_num(&pd.join("size")).unwrap_or(0) * 512,
                    mounts: mounts.get(&pdev).cloned().unwrap_or_default(),
                    dev: pdev,
                });
            }
        }
        partitions.sort_by(|a, b| a.name.cmp(&b.name));
        disks.push(Disk {
            path: dev.join(&name),
            size,
            rotational: read_num(&d.join("queue/rotational")) == Some(1),
            removable: read_num(&d.join("removable")) == Some(1),
            read_only: read_num(&d.join("ro")) == Some(1),
            model,
            serial,
            wwn,
            by_id: by_id.get(&name).cloned(),
            mounts: mounts.get(&devno).cloned().unwrap_or_default(),
            dev: devno,
            partitions,
            health: None,
            name,
        });
    }
    disks.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(disks)
}

/// [`discover`] on this machine: `/sys`, `/dev`, `/proc/self/mountinfo`.
pub fn discover_system() -> Result<Vec<Disk>> {
    let mi = Path::new("/proc/self/mountinfo");
    let text = fs::read_to_string(mi).map_err(|e| Error::io("read", mi, e))?;
    discover(Path::new("/sys"), Path::new("/dev"), &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(p: &Path, s: &str) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, s).unwrap();
    }

    /// A recorded shape of sysfs: a SATA disk with two partitions (one
    /// mounted), an NVMe drive, a virtio disk with its serial at the top,
    /// and an unattached loop device.
    #[test]
    fn discovers_disks_partitions_and_mounts_from_a_sysfs_tree() {
        let t = tempfile::tempdir().unwrap();
        let sys = t.path().join("sys");
        let dev = t.path().join("dev");
        let sda = sys.join("block/sda");
        w(&sda.join("size"), "3907029168\n");
        w(&sda.join("dev"), "8:0\n");
        w(&sda.join("queue/rotational"), "1\n");
        w(&sda.join("removable"), "0\n");
        w(&sda.join("ro"), "0\n");
        w(&sda.join("device/vendor"), "ATA     \n");
        w(&sda.join("device/model"), "WDC WD20EFRX-68E\n");
        w(&sda.join("device/wwid"), "naa.50014ee2b5e1c3a1\n");
        w(&sda.join("sda1/partition"), "1\n");
        w(&sda.join("sda1/size"), "2048\n");
        w(&sda.join("sda1/dev"), "8:1\n");
        w(&sda.join("sda2/partition"), "2\n");
        w(&sda.join("sda2/size"), "3907025072\n");
        w(&sda.join("sda2/dev"), "8:2\n");
        let nv = sys.join("block/nvme0n1");
        w(&nv.join("size"), "488397168\n");
        w(&nv.join("dev"), "259:0\n");
        w(&nv.join("queue/rotational"), "0\n");
        w(&nv.join("device/model"), "Samsung SSD 970 EVO Plus 250GB\n");
        w(&nv.join("device/serial"), "S4EUNX0N123456\n");
        w(&nv.join("wwid"), "eui.0025385b71b07e2f\n");
        let vda = sys.join("block/vda");
        w(&vda.join("size"), "536870912\n");
        w(&vda.join("dev"), "254:0\n");
        w(&vda.join("serial"), "coffer-vm-1\n");
        w(&sys.join("block/loop0/size"), "0\n");
        fs::create_dir_all(dev.join("disk/by-id")).unwrap();
        std::os::unix::fs::symlink("../../sda", dev.join("disk/by-id/wwn-0x50014ee2b5e1c3a1"))
            .unwrap();
        std::os::unix::fs::symlink(
            "../../sda",
            dev.join("disk/by-id/ata-WDC_WD20EFRX-68EUZN0_WD-WCC4M0000000"),
        )
        .unwrap();
        let mountinfo = "29 1 8:2 / /srv/pool\\040a rw,relatime shared:1 - ext4 /dev/sda2 rw\n\
                         30 1 0:25 / /tmp rw - tmpfs tmpfs rw\n\
                         31 1 254:0 / / rw - ext4 /dev/vda rw\n";
        let disks = discover(&sys, &dev, mountinfo).unwrap();
        let names: Vec<_> = disks.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["nvme0n1", "sda", "vda"]);
        let sda = &disks[1];
        assert_eq!(sda.size, 3907029168 * 512);
        assert!(sda.rotational);
        assert_eq!(sda.model.as_deref(), Some("ATA WDC WD20EFRX-68E"));
        assert_eq!(sda.wwn.as_deref(), Some("naa.50014ee2b5e1c3a1"));
        assert_eq!(
            sda.by_id.as_ref().unwrap().file_name().unwrap(),
            "ata-WDC_WD20EFRX-68EUZN0_WD-WCC4M0000000"
        );
        assert_eq!(sda.partitions.len(), 2);
        assert!(sda.partitions[0].mounts.is_empty());
        assert_eq!(sda.partitions[1].mounts, [PathBuf::from("/srv/pool a")]);
        let nv = &disks[0];
        assert!(!nv.rotational);
        assert_eq!(nv.serial.as_deref(), Some("S4EUNX0N123456"));
        assert_eq!(nv.wwn.as_deref(), Some("eui.0025385b71b07e2f"));
        assert_eq!(nv.by_id, None);
        assert_eq!(disks[2].serial.as_deref(), Some("coffer-vm-1"));
        assert_eq!(disks[2].mounts, [PathBuf::from("/")]);
        assert!(discover(&t.path().join("none"), &dev, "").is_err());
    }

    #[test]
    fn the_disk_under_the_root_filesystem_is_found_with_its_mount() {
        // On a machine whose `/` sits on a block device, discovery lists
        // that disk, non-empty, with `/` among its (or a partition's)
        // mounts. Containers and overlay roots have no such disk.
        let Some(name) = crate::disk_of_path(Path::new("/"), Path::new("/sys")) else {
            eprintln!("SKIP: '/' is not on a block device here");
            return;
        };
        let disks = discover_system().unwrap();
        let d = disks
            .iter()
            .find(|d| d.name == name)
            .unwrap_or_else(|| panic!("{name} not discovered: {disks:?}"));
        assert!(d.size > 0);
        let root = PathBuf::from("/");
        assert!(
            d.mounts.contains(&root) || d.partitions.iter().any(|p| p.mounts.contains(&root)),
            "{d:?}"
        );
    }
}
