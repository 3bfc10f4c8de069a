//! Disk health from `smartctl --json`.
//!
//! smartctl (smartmontools ≥ 7) prints one JSON document per device for
//! ATA/SATA, SCSI/SAS and NVMe drives. [`parse`] reads the fields that
//! predict failure and [`Health::verdict`] turns them into what a pool does
//! with the member:
//!
//! - **Failing** (leave placement, replace the disk): the drive's own
//!   overall assessment failed, or an NVMe critical-warning bit is set.
//! - **Warning** (keep using, watch, plan a replacement): reallocated,
//!   pending or offline-uncorrectable sectors, reported uncorrectable
//!   errors, NVMe media errors or spare below threshold, SCSI uncorrected
//!   errors or grown defects. These are the counters that large-fleet
//!   studies (Backblaze's drive stats) tie to failure.
//! - **Ok** otherwise.

use std::path::Path;
use std::process::Command;

use serde::Serialize;
use serde_json::Value;

use crate::{Error, Result};

/// What the pool should do with a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Healthy.
    Ok,
    /// Degrading: keep using, plan a replacement.
    Warning,
    /// Failing: stop placing data, replace.
    Failing,
}

impl Verdict {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warning => "warning",
            Verdict::Failing => "failing",
        }
    }
}

/// The health facts of one drive.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    /// `ATA`, `SCSI` or `NVMe`.
    pub protocol: String,
    /// Model name.
    pub model: Option<String>,
    /// Serial number.
    pub serial: Option<String>,
    /// The drive's own overall assessment.
    pub passed: bool,
    /// Current temperature, °C.
    pub temperature_c: Option<i64>,
    /// Powered-on hours.
    pub power_on_hours: Option<u64>,
    /// ATA 5: reallocated sectors.
    pub reallocated_sectors: Option<u64>,
    /// ATA 197: sectors waiting to be reallocated (unreadable now).
    pub pending_sectors: Option<u64>,
    /// ATA 198: sectors found unreadable by offline scans.
    pub offline_uncorrectable: Option<u64>,
    /// ATA 187: uncorrectable errors reported to the host.
    pub reported_uncorrectable: Option<u64>,
    /// NVMe media and data integrity errors.
    pub media_errors: Option<u64>,
    /// NVMe critical warning bits.
    pub critical_warning: Option<u64>,
    /// NVMe available spare is below its threshold.
    pub spare_below_threshold: bool,
    /// SCSI uncorrected read plus write errors.
    pub uncorrected_errors: Option<u64>,
    /// SCSI grown defect list length.
    pub grown_defects: Option<u64>,
    /// Why the verdict is what it is (empty when healthy).
    pub reasons: Vec<String>,
    /// The verdict.
    pub verdict: Verdict,
}

fn u(v: &Value) -> Option<u64> {
    v.as_u64()
}

/// The raw value of an ATA attribute. Some attributes pack more than the
/// count into the 48-bit raw value; the count is the low 16 or 32 bits for
/// these, and `raw.string` starts with it, so the string's leading number
/// is used.
fn ata_raw(doc: &Value, id: u64) -> Option<u64> {
    let table = doc.pointer("/ata_smart_attributes/table")?.as_array()?;
    let row = table.iter().find(|r| r.get("id").and_then(u) == Some(id))?;
    let raw = row.get("raw")?;
    if let Some(s) = raw.get("string").and_then(Value::as_str)
        && let Some(n) = s.split_whitespace().next().and_then(|n| n.parse().ok())
    {
        return Some(n);
    }
    raw.get("value").and_then(u)
}

/// Parses one `smartctl --json` document.
pub fn parse(device: &str, text: &str) -> Result<Health> {
    let bad = |reason: String| Error::Smart {
        device: device.to_string(),
        reason,
    };
    let doc: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let protocol = doc
        .pointer("/device/protocol")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            let msgs: Vec<String> = doc
                .pointer("/smartctl/messages")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|m| m.get("string").and_then(Value::as_str).map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            if msgs.is_empty() {
                bad("no device protocol".into())
            } else {
                bad(msgs.join("; "))
            }
        })?
        .to_string();
    let passed = doc
        .pointer("/smart_status/passed")
        .and_then(Value::as_bool)
        .ok_or_else(|| bad("no overall SMART status (smart_status.passed)".into()))?;
    let nvme = doc.get("nvme_smart_health_information_log");
    let scsi_unc = ["read", "write", "verify"]
        .iter()
        .filter_map(|k| {
            doc.pointer(&format!(
                "/scsi_error_counter_log/{k}/total_uncorrected_errors"
            ))
            .and_then(u)
        })
        .reduce(|a, b| a + b);
    let spare_below = match nvme {
        Some(n) => match (
            n.get("available_spare").and_then(u),
            n.get("available_spare_threshold").and_then(u),
        ) {
            (Some(s), Some(t)) => s < t,
            _ => false,
        },
        None => false,
    };
    let mut h = Health {
        model: doc
            .get("model_name")
            .or_else(|| doc.get("scsi_model_name"))
            .and_then(Value::as_str)
            .map(String::from),
        serial: doc
            .get("serial_number")
            .and_then(Value::as_str)
            .map(String::from),
        passed,
        temperature_c: doc.pointer("/temperature/current").and_then(Value::as_i64),
        power_on_hours: doc.pointer("/power_on_time/hours").and_then(u),
        reallocated_sectors: ata_raw(&doc, 5),
        pending_sectors: ata_raw(&doc, 197),
        offline_uncorrectable: ata_raw(&doc, 198),
        reported_uncorrectable: ata_raw(&doc, 187),
        media_errors: nvme.and_then(|n| n.get("media_errors")).and_then(u),
        critical_warning: nvme.and_then(|n| n.get("critical_warning")).and_then(u),
        spare_below_threshold: spare_below,
        uncorrected_errors: scsi_unc,
        grown_defects: doc.get("scsi_grown_defect_list").and_then(u),
        reasons: Vec::new(),
        verdict: Verdict::Ok,
        protocol,
    };
    judge(&mut h);
    Ok(h)
}

fn judge(h: &mut Health) {
    let mut failing = Vec::new();
    let mut warn = Vec::new();
    if !h.passed {
        failing.push("SMART overall assessment FAILED".to_string());
    }
    if let Some(c) = h.critical_warning.filter(|c| *c != 0) {
        failing.push(format!("NVMe critical warning 0x{c:02x}"));
    }
    let counters = [
        (h.reallocated_sectors, "reallocated sectors"),
        (h.pending_sectors, "pending sectors"),
        (h.offline_uncorrectable, "offline uncorrectable sectors"),
        (h.reported_uncorrectable, "reported uncorrectable errors"),
        (h.media_errors, "media errors"),
        (h.uncorrected_errors, "uncorrected errors"),
        (h.grown_defects, "grown defects"),
    ];
    for (v, what) in counters {
        if let Some(n) = v.filter(|n| *n > 0) {
            warn.push(format!("{n} {what}"));
        }
    }
    if h.spare_below_threshold {
        warn.push("available spare below threshold".into());
    }
    h.verdict = if !failing.is_empty() {
        Verdict::Failing
    } else if !warn.is_empty() {
        Verdict::Warning
    } else {
        Verdict::Ok
    };
    failing.extend(warn);
    h.reasons = failing;
}

/// Whether `smartctl` is installed.
pub fn smartctl_available() -> bool {
    Command::new("smartctl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `smartctl --json -a DEVICE` and parses it. `Ok(None)` when smartctl
/// is not installed. smartctl's exit status is a bit mask in which bits 3
/// and up report disk problems the JSON also carries, so only bits 0–1
/// (command line or device open failed) make this an error.
pub fn query(device: &Path) -> Result<Option<Health>> {
    let out = match Command::new("smartctl")
        .arg("--json")
        .arg("-a")
        .arg(device)
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("run smartctl on", device, e)),
    };
    let name = device.display().to_string();
    let code = out.status.code().unwrap_or(-1);
    if code < 0 || code & 0b11 != 0 {
        // Still prefer smartctl's own message when it printed one.
        return Err(match parse(&name, &String::from_utf8_lossy(&out.stdout)) {
            Err(e) => e,
            Ok(_) => Error::Smart {
                device: name,
                reason: format!("smartctl exited with status {code}"),
            },
        });
    }
    parse(&name, &String::from_utf8_lossy(&out.stdout)).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Health {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/smartctl")
            .join(name);
        parse(name, &std::fs::read_to_string(p).unwrap()).unwrap()
    }

    #[test]
    fn healthy_sata_disk() {
        let h = fixture("WDC_WD20EFRX-68EUZN0_17.json");
        assert_eq!(h.protocol, "ATA");
        assert_eq!(h.model.as_deref(), Some("WDC WD20EFRX-68EUZN0"));
        assert!(h.passed);
        assert_eq!(h.reallocated_sectors, Some(0));
        assert_eq!(h.pending_sectors, Some(0));
        assert_eq!(h.power_on_hours, Some(47657));
        assert_eq!(h.temperature_c, Some(34));
        assert_eq!(h.verdict, Verdict::Ok, "{:?}", h.reasons);
    }

    #[test]
    fn sata_disk_with_reallocated_sectors_warns() {
        let h = fixture("ST3500418AS_12.json");
        assert!(h.passed);
        assert_eq!(h.reallocated_sectors, Some(304));
        assert_eq!(h.verdict, Verdict::Warning);
        assert_eq!(h.reasons, ["304 reallocated sectors"]);
        let ssd = fixture("sat-Intel_S3520_Series_SSDs-INTEL_SSDSC2BB016T7-sdc.json");
        assert_eq!(ssd.reallocated_sectors, Some(1));
        assert_eq!(ssd.verdict, Verdict::Warning);
    }

    #[test]
    fn sata_disk_with_pending_sectors_warns() {
        let h = fixture("derived-ST3500418AS-pending.json");
        assert_eq!(h.pending_sectors, Some(16));
        assert_eq!(h.offline_uncorrectable, Some(16));
        assert_eq!(h.verdict, Verdict::Warning);
        assert!(h.reasons.iter().any(|r| r == "16 pending sectors"));
    }

    #[test]
    fn temperature_packed_in_raw_value_is_not_a_counter() {
        // Attribute 194's raw value packs min/max into high bits
        // (81604378657); the parser reads counters from raw.string.
        let h = fixture("ST3500418AS_12.json");
        assert_eq!(h.temperature_c, Some(33));
    }

    #[test]
    fn nvme_drives() {
        let ok = fixture("nvme-null-Samsung_SSD_970_EVO_Plus_250GB-nvme0.json");
        assert_eq!(ok.protocol, "NVMe");
        assert_eq!(ok.media_errors, Some(0));
        assert_eq!(ok.critical_warning, Some(0));
        assert_eq!(ok.verdict, Verdict::Ok, "{:?}", ok.reasons);
        let media = fixture("derived-nvme-970-media-errors.json");
        assert_eq!(media.verdict, Verdict::Warning);
        assert_eq!(media.reasons, ["7 media errors"]);
        let failed = fixture("nvme-null-SAMSUNG_MZWLL3T2HAJQ-00005-nvme0.json");
        assert!(!failed.passed);
        assert_eq!(failed.critical_warning, Some(16));
        assert_eq!(failed.verdict, Verdict::Failing);
        assert_eq!(
            failed.reasons,
            [
                "SMART overall assessment FAILED",
                "NVMe critical warning 0x10"
            ]
        );
    }

    #[test]
    fn sas_drive_counters() {
        let h = fixture("SEAGATE_ST373453LC_26.json");
        assert_eq!(h.protocol, "SCSI");
        assert_eq!(h.model.as_deref(), Some("SEAGATE ST373453LC"));
        assert_eq!(h.uncorrected_errors, Some(536));
        assert_eq!(h.grown_defects, Some(260));
        assert_eq!(h.reallocated_sectors, None);
        assert_eq!(h.verdict, Verdict::Warning);
    }

    #[test]
    fn unusable_output_is_a_clear_error() {
        let e = parse("/dev/sdz", "not json").unwrap_err().to_string();
        assert!(e.contains("/dev/sdz") && e.contains("not JSON"), "{e}");
        let open_failed = r#"{"smartctl":{"messages":[{"string":"Smartctl open device: /dev/sdz failed: No such device","severity":"error"}],"exit_status":2}}"#;
        let e = parse("/dev/sdz", open_failed).unwrap_err().to_string();
        assert!(e.contains("No such device"), "{e}");
        let e = parse("/dev/sdz", r#"{"device":{"protocol":"ATA"}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("smart_status"), "{e}");
    }
}
