//! Responses of the primary and stream commands a tape drive answers:
//! INQUIRY, READ POSITION, MODE SENSE/SELECT, LOG SENSE (TapeAlert) and
//! READ ATTRIBUTE (cartridge memory).

use super::{Bytes, ParseError, ParseResult, ascii};
use crate::{MediumAttributes, Position, TapeAlert};

/// Peripheral device type of a tape drive (sequential-access device).
pub const TYPE_TAPE: u8 = 0x01;
/// Peripheral device type of a media changer.
pub const TYPE_CHANGER: u8 = 0x08;

/// Standard INQUIRY data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inquiry {
    /// Peripheral qualifier (0: a device is connected).
    pub qualifier: u8,
    /// Peripheral device type (1 tape, 8 changer).
    pub device_type: u8,
    /// Removable medium.
    pub removable: bool,
    /// T10 vendor identification.
    pub vendor: String,
    /// Product identification.
    pub product: String,
    /// Product revision level.
    pub revision: String,
}

/// Parses standard INQUIRY data (SPC-4, table "Standard INQUIRY data
/// format"): byte 0 PERIPHERAL QUALIFIER(7..5) DEVICE TYPE(4..0), byte 1
/// RMB(7), byte 4 ADDITIONAL LENGTH (n - 4), bytes 8-15 vendor, 16-31
/// product, 32-35 revision.
pub fn parse_inquiry(data: &[u8]) -> ParseResult<Inquiry> {
    let b = Bytes::new("INQUIRY data", data);
    let b = b.declared(5 + u64::from(b.u8(4)?));
    if b.len() < 36 {
        return Err(b.err(format!(
            "{} bytes, standard INQUIRY data has at least 36",
            b.len()
        )));
    }
    let b0 = b.u8(0)?;
    Ok(Inquiry {
        qualifier: b0 >> 5,
        device_type: b0 & 0x1f,
        removable: b.u8(1)? & 0x80 != 0,
        vendor: ascii(b.slice(8, 8)?),
        product: ascii(b.slice(16, 16)?),
        revision: ascii(b.slice(32, 4)?),
    })
}

/// Parses the Unit Serial Number VPD page (80h; SPC-4, table "Unit Serial
/// Number VPD page"): byte 1 page code, bytes 2-3 PAGE LENGTH, then the
/// serial number in ASCII.
pub fn parse_unit_serial(data: &[u8]) -> ParseResult<String> {
    let b = Bytes::new("unit serial number VPD page", data);
    let page = b.u8(1)?;
    if page != 0x80 {
        return Err(b.err(format!("page code {page:#04x}, expected 0x80")));
    }
    let len = usize::from(b.u16(2)?);
    let avail = len.min(b.len().saturating_sub(4));
    Ok(ascii(b.slice(4, avail)?))
}

/// Parses READ POSITION long form data (SSC-4, table "READ POSITION data
/// format, long form"), 32 bytes:
///
/// ```text
/// byte 0      BOP(7) EOP(6) reserved(5,4) MPU(3) LONU(2) reserved(1) BPEW(0)
/// bytes 1-3   reserved
/// bytes 4-7   PARTITION NUMBER
/// bytes 8-15  LOGICAL OBJECT NUMBER
/// bytes 16-23 LOGICAL FILE IDENTIFIER
/// bytes 24-31 obsolete
/// ```
pub fn parse_read_position_long(data: &[u8]) -> ParseResult<Position> {
    let b = Bytes::new("READ POSITION long form data", data);
    if b.len() < 24 {
        return Err(b.err(format!("{} bytes, expected 32", b.len())));
    }
    let flags = b.u8(0)?;
    if flags & 0x04 != 0 {
        return Err(b.err("logical object number unknown (LONU set)"));
    }
    if flags & 0x08 != 0 {
        return Err(b.err("mark position unknown (MPU set)"));
    }
    Ok(Position {
        bop: flags & 0x80 != 0,
        eop: flags & 0x40 != 0 || flags & 0x01 != 0,
        partition: b.u32(4)?,
        block: b.u64(8)?,
        file: b.u64(16)?,
    })
}

/// The Device Configuration mode page.
pub const PAGE_DEVICE_CONFIGURATION: u8 = 0x10;
/// The Medium Configuration mode page (tape) and the Element Address
/// Assignment mode page (changer) share this code.
pub const PAGE_1D: u8 = 0x1D;

/// One mode page as returned, header included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModePage {
    /// Page code.
    pub code: u8,
    /// Subpage code (0 for page_0 format).
    pub subpage: u8,
    /// The page's bytes, from its first byte.
    pub bytes: Vec<u8>,
}

/// MODE SENSE(10) data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeSense {
    /// Medium type.
    pub medium_type: u8,
    /// The medium is write protected (WP, device-specific parameter bit 7).
    pub write_protected: bool,
    /// Buffered mode (device-specific parameter bits 6-4).
    pub buffered_mode: u8,
    /// Speed (device-specific parameter bits 3-0).
    pub speed: u8,
    /// Density code of the first block descriptor.
    pub density: Option<u8>,
    /// Block length of the first block descriptor (0 = variable).
    pub block_length: Option<u32>,
    /// The mode pages.
    pub pages: Vec<ModePage>,
}

/// Parses MODE SENSE(10) data (SPC-4, tables "Mode parameter header(10)",
/// "Mode parameter list"; SSC-4 "Device-specific parameter" and "Mode
/// parameter block descriptor"):
///
/// ```text
/// bytes 0-1  MODE DATA LENGTH (n - 1)
/// byte 2     MEDIUM TYPE
/// byte 3     DEVICE-SPECIFIC PARAMETER: WP(7) BUFFERED MODE(6..4) SPEED(3..0)
/// byte 4     LONGLBA(0)
/// bytes 6-7  BLOCK DESCRIPTOR LENGTH
/// block descriptors (8 bytes: DENSITY CODE, NUMBER OF BLOCKS(3),
///   reserved, BLOCK LENGTH(3))
/// mode pages: PS(7) SPF(6) PAGE CODE(5..0), then PAGE LENGTH (1 byte;
///   with SPF: SUBPAGE CODE and a 2-byte PAGE LENGTH)
/// ```
pub fn parse_mode_sense10(data: &[u8]) -> ParseResult<ModeSense> {
    let b = Bytes::new("MODE SENSE(10) data", data);
    let b = b.declared(2 + u64::from(b.u16(0)?));
    let dsp = b.u8(3)?;
    let bd_len = usize::from(b.u16(6)?);
    if b.u8(4)? & 0x01 != 0 {
        return Err(b.err("long LBA block descriptors are not used by tape"));
    }
    let (density, block_length) = if bd_len >= 8 {
        (Some(b.u8(8)?), Some(b.be(13, 3)? as u32))
    } else {
        (None, None)
    };
    let mut pages = Vec::new();
    let mut at = 8 + bd_len;
    if at > b.len() {
        return Err(b.err(format!(
            "block descriptors of {bd_len} bytes run past the {} bytes returned",
            b.len()
        )));
    }
    while at + 2 <= b.len() {
        let b0 = b.u8(at)?;
        let (subpage, header, len) = if b0 & 0x40 != 0 {
            (b.u8(at + 1)?, 4, usize::from(b.u16(at + 2)?))
        } else {
            (0, 2, usize::from(b.u8(at + 1)?))
        };
        let bytes = b.slice(at, header + len)?.to_vec();
        pages.push(ModePage {
            code: b0 & 0x3f,
            subpage,
            bytes,
        });
        at += header + len;
    }
    Ok(ModeSense {
        medium_type: b.u8(2)?,
        write_protected: dsp & 0x80 != 0,
        buffered_mode: (dsp >> 4) & 0x07,
        speed: dsp & 0x0f,
        density,
        block_length,
        pages,
    })
}

impl ModeSense {
    /// The page with this code (subpage 0).
    pub fn page(&self, code: u8) -> Option<&ModePage> {
        self.pages.iter().find(|p| p.code == code && p.subpage == 0)
    }

    /// The Device Configuration page's SELECT DATA COMPRESSION ALGORITHM
    /// (SSC-4, table "Device Configuration mode page", byte 14): 0 off,
    /// 1 the default algorithm.
    pub fn compression(&self) -> ParseResult<Option<bool>> {
        let Some(p) = self.page(PAGE_DEVICE_CONFIGURATION) else {
            return Ok(None);
        };
        let b = Bytes::new("device configuration mode page", &p.bytes);
        Ok(Some(b.u8(14)? != 0))
    }

    /// The Medium Configuration page's WORMM bit (SSC-4, table "Medium
    /// Configuration mode page", byte 2 bit 0): the loaded medium is WORM.
    pub fn worm(&self) -> ParseResult<Option<bool>> {
        let Some(p) = self.page(PAGE_1D) else {
            return Ok(None);
        };
        let b = Bytes::new("medium configuration mode page", &p.bytes);
        Ok(Some(b.u8(2)? & 0x01 != 0))
    }
}

/// Builds the MODE SELECT(10) parameter list that sets the block length
/// (0: variable-block mode) and, when `compression` is given, the Device
/// Configuration page's SELECT DATA COMPRESSION ALGORITHM.
///
/// `current` is the MODE SENSE(10) data of page 10h: the density, buffered
/// mode and speed are kept, and the Device Configuration page is sent back
/// as the drive returned it (PS cleared, as MODE SELECT requires) with only
/// byte 14 changed. The MODE DATA LENGTH field is reserved (0) in MODE
/// SELECT.
pub fn mode_select_block_size(
    current: &ModeSense,
    block_length: u32,
    compression: Option<bool>,
) -> ParseResult<Vec<u8>> {
    let mut p = vec![0u8; 16];
    p[3] = (current.buffered_mode << 4) | current.speed;
    p[7] = 8; // one block descriptor
    p[8] = current.density.unwrap_or(0);
    p[13..16].copy_from_slice(&block_length.min(0x00FF_FFFF).to_be_bytes()[1..]);
    if let Some(on) = compression {
        let page = current.page(PAGE_DEVICE_CONFIGURATION).ok_or_else(|| {
            ParseError::new(
                "MODE SENSE(10) data",
                "no device configuration page to set compression in",
            )
        })?;
        let mut page = page.bytes.clone();
        if page.len() < 15 {
            return Err(ParseError::new(
                "device configuration mode page",
                format!("{} bytes, expected 16", page.len()),
            ));
        }
        page[0] &= 0x7f;
        page[14] = u8::from(on);
        p.extend_from_slice(&page);
    }
    Ok(p)
}

/// How urgent a TapeAlert flag is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Information.
    Information,
    /// Warning: act soon.
    Warning,
    /// Critical: act now.
    Critical,
}

impl Severity {
    /// The word in [`TapeAlert::severity`].
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Information => "information",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// The 64 TapeAlert flags of a tape drive, 01h..40h (SSC-4 Annex, table
/// "TapeAlert flags"; the TapeAlert specification for severities).
const TAPE_ALERTS: [(&str, Severity); 64] = {
    use Severity::{Critical as C, Information as I, Warning as W};
    [
        ("Read warning", W),                               // 01h
        ("Write warning", W),                              // 02h
        ("Hard error", W),                                 // 03h
        ("Media", C),                                      // 04h
        ("Read failure", C),                               // 05h
        ("Write failure", C),                              // 06h
        ("Media life", W),                                 // 07h
        ("Not data grade", W),                             // 08h
        ("Write protect", C),                              // 09h
        ("No removal", I),                                 // 0Ah
        ("Cleaning media", I),                             // 0Bh
        ("Unsupported format", I),                         // 0Ch
        ("Recoverable mechanical cartridge failure", C),   // 0Dh
        ("Unrecoverable mechanical cartridge failure", C), // 0Eh
        ("Memory chip in cartridge failure", W),           // 0Fh
        ("Forced eject", C),                               // 10h
        ("Read only format", W),                           // 11h
        ("Tape directory corrupted on load", W),           // 12h
        ("Nearing media life", I),                         // 13h
        ("Clean now", C),                                  // 14h
        ("Clean periodic", W),                             // 15h
        ("Expired cleaning media", C),                     // 16h
        ("Invalid cleaning tape", C),                      // 17h
        ("Retension requested", W),                        // 18h
        ("Dual-port interface error", W),                  // 19h
        ("Cooling fan failure", W),                        // 1Ah
        ("Power supply failure", W),                       // 1Bh
        ("Power consumption", W),                          // 1Ch
        ("Drive maintenance", W),                          // 1Dh
        ("Hardware A", C),                                 // 1Eh
        ("Hardware B", C),                                 // 1Fh
        ("Interface", W),                                  // 20h
        ("Eject media", C),                                // 21h
        ("Download fail", W),                              // 22h
        ("Drive humidity", W),                             // 23h
        ("Drive temperature", W),                          // 24h
        ("Drive voltage", W),                              // 25h
        ("Predictive failure", C),                         // 26h
        ("Diagnostics required", W),                       // 27h
        ("Loader hardware A (obsolete)", C),               // 28h
        ("Loader stray tape (obsolete)", C),               // 29h
        ("Loader hardware B (obsolete)", W),               // 2Ah
        ("Loader door (obsolete)", C),                     // 2Bh
        ("Loader hardware C (obsolete)", C),               // 2Ch
        ("Loader magazine (obsolete)", C),                 // 2Dh
        ("Loader predictive failure (obsolete)", W),       // 2Eh
        ("Reserved (2Fh)", I),                             // 2Fh
        ("Reserved (30h)", I),                             // 30h
        ("Diminished native capacity", I),                 // 31h
        ("Lost statistics", W),                            // 32h
        ("Tape directory invalid at unload", W),           // 33h
        ("Tape system area write failure", C),             // 34h
        ("Tape system area read failure", C),              // 35h
        ("No start of data", C),                           // 36h
        ("Loading failure", C),                            // 37h
        ("Unrecoverable unload failure", C),               // 38h
        ("Automation interface failure", C),               // 39h
        ("Firmware failure", W),                           // 3Ah
        ("WORM medium, integrity check failed", W),        // 3Bh
        ("WORM medium, overwrite attempted", W),           // 3Ch
        ("Encryption policy violation", C),                // 3Dh
        ("Reserved (3Eh)", I),                             // 3Eh
        ("Reserved (3Fh)", I),                             // 3Fh
        ("Reserved (40h)", I),                             // 40h
    ]
};

/// A TapeAlert flag's standard name and severity (`None` outside 1..=64).
pub fn tape_alert_info(flag: u8) -> Option<(&'static str, Severity)> {
    TAPE_ALERTS.get(usize::from(flag).checked_sub(1)?).copied()
}

/// The alert for `flag`, when it is one of the 64.
pub fn tape_alert(flag: u8) -> Option<TapeAlert> {
    tape_alert_info(flag).map(|(name, sev)| TapeAlert {
        flag,
        name: name.to_string(),
        severity: sev.as_str().to_string(),
    })
}

/// Parses the TapeAlert log page (2Eh; SPC-4 table "Log page format", SSC-4
/// table "TapeAlert log page"): a 4-byte page header (PAGE CODE in byte 0
/// bits 5-0, PAGE LENGTH in bytes 2-3), then log parameters of PARAMETER
/// CODE (2 bytes, the flag number 0001h-0040h), control byte, PARAMETER
/// LENGTH (1), value (bit 0: flag set). Returns the flags set, in order.
pub fn parse_tape_alerts(data: &[u8]) -> ParseResult<Vec<TapeAlert>> {
    let b = Bytes::new("TapeAlert log page", data);
    let page = b.u8(0)? & 0x3f;
    if page != super::cdb::LOG_PAGE_TAPE_ALERT {
        return Err(b.err(format!("page code {page:#04x}, expected 0x2e")));
    }
    let b = b.declared(4 + u64::from(b.u16(2)?));
    let mut alerts = Vec::new();
    let mut at = 4;
    while at + 4 <= b.len() {
        let code = b.u16(at)?;
        let len = usize::from(b.u8(at + 3)?);
        let value = b.slice(at + 4, len)?;
        if let (Ok(flag), Some(v)) = (u8::try_from(code), value.last())
            && v & 0x01 != 0
            && let Some(alert) = tape_alert(flag)
        {
            alerts.push(alert);
        }
        at += 4 + len;
    }
    Ok(alerts)
}

/// One cartridge memory attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Attribute identifier.
    pub id: u16,
    /// Read only.
    pub read_only: bool,
    /// FORMAT: 0 binary, 1 ASCII, 2 text.
    pub format: u8,
    /// The value's bytes.
    pub value: Vec<u8>,
}

/// Parses READ ATTRIBUTE service action 00h data (SPC-4, tables "READ
/// ATTRIBUTE parameter data for ATTRIBUTE VALUES" and "MAM attribute
/// format"): bytes 0-3 AVAILABLE DATA (n - 3), then attributes of
/// IDENTIFIER (2), READ ONLY(7)/FORMAT(1..0) (1), LENGTH (2), value.
pub fn parse_attribute_values(data: &[u8]) -> ParseResult<(u32, Vec<Attribute>)> {
    let b = Bytes::new("READ ATTRIBUTE data", data);
    let available = b.u32(0)?;
    let b = b.declared(4 + u64::from(available));
    let mut attrs = Vec::new();
    let mut at = 4;
    while at + 5 <= b.len() {
        let id = b.u16(at)?;
        let f = b.u8(at + 2)?;
        let len = usize::from(b.u16(at + 3)?);
        let value = b.slice(at + 5, len)?.to_vec();
        attrs.push(Attribute {
            id,
            read_only: f & 0x80 != 0,
            format: f & 0x03,
            value,
        });
        at += 5 + len;
    }
    Ok((available, attrs))
}

/// The cartridge memory attributes Coffer reports (SPC-4, table "MAM
/// attribute identifiers"): 0000h remaining capacity and 0001h maximum
/// capacity in the partition (MiB), 0003h load count, 0400h medium
/// manufacturer, 0401h medium serial number, 0806h barcode.
pub fn medium_attributes(attrs: &[Attribute]) -> MediumAttributes {
    let mut m = MediumAttributes::default();
    for a in attrs {
        let num = || (a.format == 0 && a.value.len() <= 8).then(|| super::be_uint(&a.value));
        let text = || Some(ascii(&a.value)).filter(|s| !s.is_empty());
        match a.id {
            0x0000 => m.remaining_mib = num(),
            0x0001 => m.capacity_mib = num(),
            0x0003 => m.load_count = num(),
            0x0400 => m.manufacturer = text(),
            0x0401 => m.serial = text(),
            0x0806 => m.barcode = text(),
            _ => {}
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::fixtures::fixture;

    // SPC-4 table "Standard INQUIRY data format": an LTO-8 drive.
    #[test]
    fn inquiry_tape() {
        let i = parse_inquiry(&fixture("inquiry_tape")).unwrap();
        assert_eq!(i.device_type, TYPE_TAPE);
        assert_eq!(i.qualifier, 0);
        assert!(i.removable);
        assert_eq!(i.vendor, "IBM");
        assert_eq!(i.product, "ULTRIUM-HH8");
        assert_eq!(i.revision, "J4D1");
    }

    // SPC-4 table "Standard INQUIRY data format": a media changer.
    #[test]
    fn inquiry_changer() {
        let i = parse_inquiry(&fixture("inquiry_changer")).unwrap();
        assert_eq!(i.device_type, TYPE_CHANGER);
        assert_eq!(i.vendor, "QUANTUM");
        assert_eq!(i.product, "Scalar i3-i6");
    }

    #[test]
    fn inquiry_too_short() {
        let mut d = fixture("inquiry_tape");
        d[4] = 20; // additional length says 25 bytes in all
        assert!(parse_inquiry(&d).is_err());
    }

    // SPC-4 table "Unit Serial Number VPD page".
    #[test]
    fn unit_serial() {
        let s = parse_unit_serial(&fixture("vpd_unit_serial")).unwrap();
        assert_eq!(s, "10WT012345");
        let mut d = fixture("vpd_unit_serial");
        d[1] = 0x83;
        assert!(parse_unit_serial(&d).is_err());
    }

    // SSC-4 table "READ POSITION data format, long form": at BOP.
    #[test]
    fn read_position_bop() {
        let p = parse_read_position_long(&fixture("read_position_long_bop")).unwrap();
        assert_eq!(
            p,
            Position {
                block: 0,
                file: 0,
                partition: 0,
                bop: true,
                eop: false
            }
        );
    }

    // SSC-4 table "READ POSITION data format, long form": mid-tape past
    // early warning (EOP), partition 1, object 0x12345, file 7.
    #[test]
    fn read_position_mid_tape() {
        let p = parse_read_position_long(&fixture("read_position_long_eop")).unwrap();
        assert_eq!(
            p,
            Position {
                block: 0x12345,
                file: 7,
                partition: 1,
                bop: false,
                eop: true
            }
        );
        let mut d = fixture("read_position_long_eop");
        d[0] = 0x04; // LONU
        assert!(parse_read_position_long(&d).is_err());
        d[0] = 0x01; // BPEW alone also means past early warning
        assert!(parse_read_position_long(&d).unwrap().eop);
    }

    // SPC-4 "Mode parameter header(10)", SSC-4 "Mode parameter block
    // descriptor" and "Device Configuration mode page".
    #[test]
    fn mode_sense_device_configuration() {
        let m = parse_mode_sense10(&fixture("mode_sense10_device_config")).unwrap();
        assert!(!m.write_protected);
        assert_eq!(m.buffered_mode, 1);
        assert_eq!(m.density, Some(0x5A));
        assert_eq!(m.block_length, Some(0x10000));
        assert_eq!(m.pages.len(), 1);
        assert_eq!(m.pages[0].code, 0x10);
        assert_eq!(m.pages[0].bytes.len(), 16);
        assert_eq!(m.compression().unwrap(), Some(true));
        assert_eq!(m.worm().unwrap(), None);
    }

    // SPC-4 "Mode parameter header(10)", SSC-4 "Medium Configuration mode
    // page": a write-protected WORM cartridge, block descriptors disabled.
    #[test]
    fn mode_sense_medium_configuration() {
        let m = parse_mode_sense10(&fixture("mode_sense10_medium_config_worm")).unwrap();
        assert!(m.write_protected);
        assert_eq!(m.block_length, None);
        assert_eq!(m.worm().unwrap(), Some(true));
        assert_eq!(m.compression().unwrap(), None);
    }

    // SPC-4 "Mode parameter list" for MODE SELECT(10): header with reserved
    // mode data length, one block descriptor of length 0 (variable).
    #[test]
    fn mode_select_variable_block() {
        let m = parse_mode_sense10(&fixture("mode_sense10_device_config")).unwrap();
        let p = mode_select_block_size(&m, 0, None).unwrap();
        assert_eq!(
            p,
            [
                0, 0, 0, 0x10, 0, 0, 0, 8, // header: buffered mode 1, BD length 8
                0x5A, 0, 0, 0, 0, 0, 0, 0 // density kept, block length 0
            ]
        );
        let p = mode_select_block_size(&m, 0, Some(false)).unwrap();
        assert_eq!(p.len(), 32);
        assert_eq!(p[16], 0x10, "PS cleared, page code 10h");
        assert_eq!(p[16 + 14], 0, "compression off");
        assert_eq!(&p[17..30], &m.pages[0].bytes[1..14]);
        let p = mode_select_block_size(&m, 0, Some(true)).unwrap();
        assert_eq!(p[16 + 14], 1);
        let worm = parse_mode_sense10(&fixture("mode_sense10_medium_config_worm")).unwrap();
        assert!(mode_select_block_size(&worm, 0, Some(true)).is_err());
    }

    // SPC-4 "Log page format", SSC-4 "TapeAlert log page": flags 04h
    // (Media), 14h (Clean now) and 1Eh (Hardware A) set, 01h clear.
    #[test]
    fn tape_alerts() {
        let a = parse_tape_alerts(&fixture("log_sense_tape_alert")).unwrap();
        let got: Vec<(u8, &str, &str)> = a
            .iter()
            .map(|a| (a.flag, a.name.as_str(), a.severity.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (0x04, "Media", "critical"),
                (0x14, "Clean now", "critical"),
                (0x1E, "Hardware A", "critical"),
            ]
        );
    }

    #[test]
    fn tape_alert_table() {
        let check = [
            (0x01, "Read warning", Severity::Warning),
            (0x03, "Hard error", Severity::Warning),
            (0x04, "Media", Severity::Critical),
            (0x05, "Read failure", Severity::Critical),
            (0x06, "Write failure", Severity::Critical),
            (0x14, "Clean now", Severity::Critical),
            (0x15, "Clean periodic", Severity::Warning),
            (0x16, "Expired cleaning media", Severity::Critical),
            (0x1E, "Hardware A", Severity::Critical),
            (0x3C, "WORM medium, overwrite attempted", Severity::Warning),
        ];
        for (flag, name, sev) in check {
            assert_eq!(tape_alert_info(flag), Some((name, sev)), "flag {flag:#x}");
        }
        assert_eq!(tape_alert_info(0), None);
        assert_eq!(tape_alert_info(65), None);
        assert!((1..=64).all(|f| tape_alert_info(f).is_some()));
    }

    #[test]
    fn tape_alert_wrong_page() {
        let mut d = fixture("log_sense_tape_alert");
        d[0] = 0x12;
        assert!(parse_tape_alerts(&d).is_err());
    }

    // SPC-4 "READ ATTRIBUTE parameter data for ATTRIBUTE VALUES", "MAM
    // attribute format" and "MAM attribute identifiers".
    #[test]
    fn attributes() {
        let (avail, attrs) = parse_attribute_values(&fixture("read_attribute_values")).unwrap();
        assert_eq!(attrs.len(), 6);
        assert_eq!(avail as usize + 4, fixture("read_attribute_values").len());
        assert!(attrs[0].read_only);
        let m = medium_attributes(&attrs);
        assert_eq!(
            m,
            MediumAttributes {
                manufacturer: Some("FUJIFILM".into()),
                serial: Some("A1B2C3D4E5".into()),
                remaining_mib: Some(11_444_224),
                capacity_mib: Some(11_444_224 + 1024),
                load_count: Some(42),
                barcode: Some("CF0001L8".into()),
            }
        );
    }
}
