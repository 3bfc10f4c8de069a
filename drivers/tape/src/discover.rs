//! Finds tape drives and media changers from sysfs.
//!
//! Every SCSI device the `sg` driver binds appears as
//! `/sys/class/scsi_generic/sgN`, a symlink into the device tree whose
//! `device` link leads to the SCSI device directory (`H:C:T:L`) with its
//! `type` (1 sequential access, 8 medium changer), `vendor`, `model`, `rev`
//! and, on recent kernels, `vpd_pg80` (the unit serial number VPD page).
//! Tape drives bound by `st` also appear as `/sys/class/scsi_tape/stN`
//! (and `nstN`, `stNl`, ...), whose `device` link leads to the same SCSI
//! device directory.
//!
//! The sysfs root is a parameter, so tests build a tree of their own.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::scsi::ssc;
use crate::{Error, Result};

/// What a discovered device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceKind {
    /// A tape drive (peripheral device type 1).
    Drive,
    /// A media changer (peripheral device type 8).
    Changer,
}

/// A tape drive or changer found in sysfs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScsiDevice {
    /// Its SCSI generic device (`/dev/sgN`), what the Linux backend opens.
    pub sg: PathBuf,
    /// Drive or changer.
    pub kind: DeviceKind,
    /// SCSI address `host:channel:target:lun`.
    pub address: String,
    /// Vendor identification.
    pub vendor: String,
    /// Product identification.
    pub model: String,
    /// Product revision.
    pub revision: String,
    /// Unit serial number, where the kernel exposes it.
    pub serial: Option<String>,
    /// For a drive bound by `st`: its non-rewinding tape device
    /// (`/dev/nstN`).
    pub tape: Option<PathBuf>,
}

/// Finds tape drives and changers under the sysfs root `sysfs` (normally
/// `/sys`), ordered by SCSI generic number. A system without the `sg`
/// driver has none.
pub fn discover(sysfs: &Path) -> Result<Vec<ScsiDevice>> {
    let class = sysfs.join("class/scsi_generic");
    let entries = match fs::read_dir(&class) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read directory", class.display(), e)),
    };
    let tapes = st_names(sysfs)?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read directory", class.display(), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(number) = name.strip_prefix("sg").and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let device = entry.path().join("device");
        let Some(kind) = read_trimmed(&device.join("type"))?
            .and_then(|t| t.parse::<u8>().ok())
            .and_then(|t| match t {
                ssc::TYPE_TAPE => Some(DeviceKind::Drive),
                ssc::TYPE_CHANGER => Some(DeviceKind::Changer),
                _ => None,
            })
        else {
            continue;
        };
        let real =
            fs::canonicalize(&device).map_err(|e| Error::io("resolve", device.display(), e))?;
        let serial = match fs::read(device.join("vpd_pg80")) {
            Ok(page) => ssc::parse_unit_serial(&page).ok().filter(|s| !s.is_empty()),
            Err(_) => None,
        };
        found.push((
            number,
            ScsiDevice {
                sg: PathBuf::from("/dev").join(&name),
                kind,
                address: real
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                vendor: read_trimmed(&device.join("vendor"))?.unwrap_or_default(),
                model: read_trimmed(&device.join("model"))?.unwrap_or_default(),
                revision: read_trimmed(&device.join("rev"))?.unwrap_or_default(),
                serial,
                tape: tapes
                    .get(&real)
                    .map(|st| PathBuf::from(format!("/dev/n{st}"))),
            },
        ));
    }
    found.sort_by_key(|(n, _)| *n);
    Ok(found.into_iter().map(|(_, d)| d).collect())
}

/// `stN` names by the SCSI device directory they belong to.
fn st_names(sysfs: &Path) -> Result<HashMap<PathBuf, String>> {
    let class = sysfs.join("class/scsi_tape");
    let mut map = HashMap::new();
    let entries = match fs::read_dir(&class) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(map),
        Err(e) => return Err(Error::io("read directory", class.display(), e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read directory", class.display(), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Only the plain rewinding name, stN: nstN, stNl, stNm, stNa are
        // the same drive.
        let plain = name
            .strip_prefix("st")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()));
        if !plain {
            continue;
        }
        if let Ok(real) = fs::canonicalize(entry.path().join("device")) {
            map.insert(real, name);
        }
    }
    Ok(map)
}

/// A sysfs attribute, trimmed; `None` when absent.
fn read_trimmed(path: &Path) -> Result<Option<String>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path.display(), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// Builds one SCSI device the way sysfs lays it out: the device
    /// directory under `devices/`, its `scsi_generic/sgN` (and
    /// `scsi_tape/*`) class directories with `device` links back, and
    /// `class/` symlinks into the tree.
    fn scsi_device(
        sys: &Path,
        hctl: &str,
        sg: &str,
        ty: u8,
        attrs: &[(&str, &[u8])],
        st: Option<&str>,
    ) {
        let host = hctl.split(':').next().unwrap();
        let target = hctl.rsplit_once(':').unwrap().0;
        let rel = format!("devices/pci0000:00/0000:00:1f.2/host{host}/target{target}/{hctl}");
        let dev = sys.join(&rel);
        fs::create_dir_all(&dev).unwrap();
        fs::write(dev.join("type"), format!("{ty}\n")).unwrap();
        for (name, value) in attrs {
            fs::write(dev.join(name), value).unwrap();
        }
        let sgdir = dev.join("scsi_generic").join(sg);
        fs::create_dir_all(&sgdir).unwrap();
        symlink(format!("../../../{hctl}"), sgdir.join("device")).unwrap();
        fs::create_dir_all(sys.join("class/scsi_generic")).unwrap();
        symlink(
            format!("../../{rel}/scsi_generic/{sg}"),
            sys.join("class/scsi_generic").join(sg),
        )
        .unwrap();
        if let Some(st) = st {
            fs::create_dir_all(sys.join("class/scsi_tape")).unwrap();
            for name in [st.to_string(), format!("n{st}"), format!("{st}l")] {
                let d = dev.join("scsi_tape").join(&name);
                fs::create_dir_all(&d).unwrap();
                symlink(format!("../../../{hctl}"), d.join("device")).unwrap();
                symlink(
                    format!("../../{rel}/scsi_tape/{name}"),
                    sys.join("class/scsi_tape").join(&name),
                )
                .unwrap();
            }
        }
    }

    #[test]
    fn finds_drives_and_changers() {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path();
        // A disk: ignored.
        scsi_device(sys, "0:0:0:0", "sg0", 0, &[("vendor", b"ATA     \n")], None);
        // Drive with serial page and an st binding.
        let mut pg80 = vec![0x01, 0x80, 0x00, 0x0A];
        pg80.extend_from_slice(b"10WT012345");
        scsi_device(
            sys,
            "2:0:1:0",
            "sg11",
            1,
            &[
                ("vendor", b"IBM     \n"),
                ("model", b"ULTRIUM-HH8     \n"),
                ("rev", b"J4D1\n"),
                ("vpd_pg80", &pg80),
            ],
            Some("st0"),
        );
        // Changer without vpd_pg80.
        scsi_device(
            sys,
            "2:0:1:1",
            "sg2",
            8,
            &[
                ("vendor", b"QUANTUM \n"),
                ("model", b"Scalar i3-i6    \n"),
                ("rev", b"200G\n"),
            ],
            None,
        );
        // A second drive not bound by st.
        scsi_device(sys, "3:0:0:0", "sg3", 1, &[("vendor", b"HPE\n")], None);

        let found = discover(sys).unwrap();
        assert_eq!(
            found,
            vec![
                ScsiDevice {
                    sg: "/dev/sg2".into(),
                    kind: DeviceKind::Changer,
                    address: "2:0:1:1".into(),
                    vendor: "QUANTUM".into(),
                    model: "Scalar i3-i6".into(),
                    revision: "200G".into(),
                    serial: None,
                    tape: None,
                },
                ScsiDevice {
                    sg: "/dev/sg3".into(),
                    kind: DeviceKind::Drive,
                    address: "3:0:0:0".into(),
                    vendor: "HPE".into(),
                    model: String::new(),
                    revision: String::new(),
                    serial: None,
                    tape: None,
                },
                ScsiDevice {
                    sg: "/dev/sg11".into(),
                    kind: DeviceKind::Drive,
                    address: "2:0:1:0".into(),
                    vendor: "IBM".into(),
                    model: "ULTRIUM-HH8".into(),
                    revision: "J4D1".into(),
                    serial: Some("10WT012345".into()),
                    tape: Some("/dev/nst0".into()),
                },
            ]
        );
    }

    #[test]
    fn no_sg_driver_means_no_devices() {
        let dir = tempfile::tempdir().unwrap();
        assert!(discover(dir.path()).unwrap().is_empty());
    }
}
