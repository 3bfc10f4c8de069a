//! Sense data (SPC-4 §4.5) and what it means for the caller.
//!
//! Fixed format (response codes 70h current, 71h deferred; SPC-4 §4.5.3,
//! table "Fixed format sense data"):
//!
//! ```text
//! byte 0     VALID(7) | RESPONSE CODE(6..0)
//! byte 1     obsolete
//! byte 2     FILEMARK(7) | EOM(6) | ILI(5) | reserved(4) | SENSE KEY(3..0)
//! bytes 3-6  INFORMATION (big-endian; for tape: the residual)
//! byte 7     ADDITIONAL SENSE LENGTH (n - 7)
//! bytes 8-11 COMMAND-SPECIFIC INFORMATION
//! byte 12    ADDITIONAL SENSE CODE (ASC)
//! byte 13    ADDITIONAL SENSE CODE QUALIFIER (ASCQ)
//! byte 14    FIELD REPLACEABLE UNIT CODE
//! bytes 15-17 SKSV | SENSE KEY SPECIFIC
//! ```
//!
//! Descriptor format (72h current, 73h deferred; SPC-4 §4.5.2, table
//! "Descriptor format sense data"):
//!
//! ```text
//! byte 0     RESPONSE CODE
//! byte 1     SENSE KEY(3..0)
//! byte 2     ASC
//! byte 3     ASCQ
//! bytes 4-6  reserved
//! byte 7     ADDITIONAL SENSE LENGTH (n - 7)
//! bytes 8-n  sense data descriptors: TYPE, ADDITIONAL LENGTH, data
//!            00h information: VALID(7) in byte 2, INFORMATION in 4-11
//!            04h stream commands: FILEMARK(7) EOM(6) ILI(5) in byte 3
//!            05h block commands: ILI(5) in byte 3
//! ```

use std::fmt;

use super::{Bytes, ParseError, ParseResult};
use crate::Error;

/// Sense key NO SENSE.
pub const NO_SENSE: u8 = 0x0;
/// Sense key RECOVERED ERROR.
pub const RECOVERED_ERROR: u8 = 0x1;
/// Sense key NOT READY.
pub const NOT_READY: u8 = 0x2;
/// Sense key MEDIUM ERROR.
pub const MEDIUM_ERROR: u8 = 0x3;
/// Sense key HARDWARE ERROR.
pub const HARDWARE_ERROR: u8 = 0x4;
/// Sense key ILLEGAL REQUEST.
pub const ILLEGAL_REQUEST: u8 = 0x5;
/// Sense key UNIT ATTENTION.
pub const UNIT_ATTENTION: u8 = 0x6;
/// Sense key DATA PROTECT.
pub const DATA_PROTECT: u8 = 0x7;
/// Sense key BLANK CHECK.
pub const BLANK_CHECK: u8 = 0x8;
/// Sense key ABORTED COMMAND.
pub const ABORTED_COMMAND: u8 = 0xB;
/// Sense key VOLUME OVERFLOW.
pub const VOLUME_OVERFLOW: u8 = 0xD;

/// Decoded sense data, from either format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sense {
    /// Response code: 70h/72h current, 71h/73h deferred (an error of an
    /// earlier, buffered command).
    pub response_code: u8,
    /// Sense key.
    pub key: u8,
    /// Additional sense code.
    pub asc: u8,
    /// Additional sense code qualifier.
    pub ascq: u8,
    /// A filemark was read (stream commands).
    pub filemark: bool,
    /// End of medium or partition: early warning, or the physical end.
    pub eom: bool,
    /// Incorrect length: the block read was not the length asked for.
    pub ili: bool,
    /// The INFORMATION field, when marked valid, sign-extended from its
    /// width. For READ/WRITE/SPACE this is the residual: requested minus
    /// actual (negative when a block was longer than the request).
    pub information: Option<i64>,
}

impl Sense {
    /// Parses sense data in fixed (70h/71h) or descriptor (72h/73h) format.
    pub fn parse(data: &[u8]) -> ParseResult<Sense> {
        let b = Bytes::new("sense data", data);
        let code = b.u8(0)? & 0x7f;
        match code {
            0x70 | 0x71 => Self::parse_fixed(b),
            0x72 | 0x73 => Self::parse_descriptor(b),
            other => Err(ParseError::new(
                "sense data",
                format!("unknown response code {other:#04x}"),
            )),
        }
    }

    fn parse_fixed(b: Bytes<'_>) -> ParseResult<Sense> {
        let b0 = b.u8(0)?;
        let b2 = b.u8(2)?;
        // Bytes 0-7 are always there; the additional length says how much
        // follows, and devices may return less than 18 bytes in all.
        let info = b.u32(3)?;
        let extra = b.u8(7)?;
        let b = b.declared(8 + u64::from(extra));
        let asc = if b.len() > 12 { b.u8(12)? } else { 0 };
        let ascq = if b.len() > 13 { b.u8(13)? } else { 0 };
        Ok(Sense {
            response_code: b0 & 0x7f,
            key: b2 & 0x0f,
            asc,
            ascq,
            filemark: b2 & 0x80 != 0,
            eom: b2 & 0x40 != 0,
            ili: b2 & 0x20 != 0,
            // The 4-byte INFORMATION field is signed for tape residuals.
            information: (b0 & 0x80 != 0).then_some(i64::from(info as i32)),
        })
    }

    fn parse_descriptor(b: Bytes<'_>) -> ParseResult<Sense> {
        let mut s = Sense {
            response_code: b.u8(0)? & 0x7f,
            key: b.u8(1)? & 0x0f,
            asc: b.u8(2)?,
            ascq: b.u8(3)?,
            filemark: false,
            eom: false,
            ili: false,
            information: None,
        };
        if b.len() < 8 {
            return Ok(s);
        }
        let b = b.declared(8 + u64::from(b.u8(7)?));
        let mut at = 8;
        while at + 2 <= b.len() {
            let kind = b.u8(at)?;
            let len = usize::from(b.u8(at + 1)?);
            let d = Bytes::new("sense data descriptor", b.slice(at, 2 + len)?);
            match kind {
                // Information: VALID in byte 2, 8-byte INFORMATION in 4-11.
                0x00 if len >= 0x0a && d.u8(2)? & 0x80 != 0 => {
                    s.information = Some(d.u64(4)? as i64);
                }
                // Stream commands: FILEMARK, EOM, ILI in byte 3.
                0x04 if len >= 2 => {
                    let f = d.u8(3)?;
                    s.filemark = f & 0x80 != 0;
                    s.eom = f & 0x40 != 0;
                    s.ili = f & 0x20 != 0;
                }
                // Block commands: ILI in byte 3.
                0x05 if len >= 2 => s.ili |= d.u8(3)? & 0x20 != 0,
                _ => {}
            }
            at += 2 + len;
        }
        Ok(s)
    }

    /// Sense data for a key and ASC/ASCQ with no flags, for messages about
    /// conditions reported another way.
    pub fn new(key: u8, asc: u8, ascq: u8) -> Sense {
        Sense {
            response_code: 0x70,
            key,
            asc,
            ascq,
            filemark: false,
            eom: false,
            ili: false,
            information: None,
        }
    }

    /// The error reported belongs to an earlier command (buffered write).
    pub fn deferred(&self) -> bool {
        matches!(self.response_code, 0x71 | 0x73)
    }

    /// The sense key's name.
    pub fn key_name(&self) -> &'static str {
        key_name(self.key)
    }

    /// A description of the ASC/ASCQ, where it is one of the common ones.
    pub fn description(&self) -> Option<&'static str> {
        asc_description(self.asc, self.ascq)
    }

    /// The cartridge in the drive is a cleaning cartridge (30/03).
    pub fn cleaning_cartridge(&self) -> bool {
        self.asc == 0x30 && self.ascq == 0x03
    }
}

impl fmt::Display for Sense {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (sense key {:#x}), ASC/ASCQ {:02X}/{:02X}",
            self.key_name(),
            self.key,
            self.asc,
            self.ascq
        )?;
        if let Some(d) = self.description() {
            write!(f, " {d}")?;
        }
        for (set, name) in [
            (self.filemark, "FILEMARK"),
            (self.eom, "EOM"),
            (self.ili, "ILI"),
        ] {
            if set {
                write!(f, " {name}")?;
            }
        }
        if let Some(i) = self.information {
            write!(f, ", information {i}")?;
        }
        if self.deferred() {
            write!(f, " (deferred error)")?;
        }
        Ok(())
    }
}

/// The name of a sense key (SPC-4, table "Sense key descriptions").
pub fn key_name(key: u8) -> &'static str {
    match key & 0x0f {
        0x0 => "NO SENSE",
        0x1 => "RECOVERED ERROR",
        0x2 => "NOT READY",
        0x3 => "MEDIUM ERROR",
        0x4 => "HARDWARE ERROR",
        0x5 => "ILLEGAL REQUEST",
        0x6 => "UNIT ATTENTION",
        0x7 => "DATA PROTECT",
        0x8 => "BLANK CHECK",
        0x9 => "VENDOR SPECIFIC",
        0xA => "COPY ABORTED",
        0xB => "ABORTED COMMAND",
        0xD => "VOLUME OVERFLOW",
        0xE => "MISCOMPARE",
        0xF => "COMPLETED",
        _ => "RESERVED",
    }
}

/// Descriptions of the ASC/ASCQ pairs tape drives and changers report
/// most (SPC-4 Annex D, "ASC and ASCQ assignments"; 82/82 is the
/// vendor-specific code LTO drives use for "drive needs cleaning").
pub fn asc_description(asc: u8, ascq: u8) -> Option<&'static str> {
    Some(match (asc, ascq) {
        (0x00, 0x00) => "no additional sense information",
        (0x00, 0x01) => "filemark detected",
        (0x00, 0x02) => "end-of-partition/medium detected (early warning)",
        (0x00, 0x03) => "setmark detected",
        (0x00, 0x04) => "beginning-of-partition/medium detected",
        (0x00, 0x05) => "end-of-data detected",
        (0x00, 0x16) => "operation in progress",
        (0x00, 0x17) => "cleaning requested",
        (0x04, 0x00) => "logical unit not ready, cause not reportable",
        (0x04, 0x01) => "logical unit is in process of becoming ready",
        (0x04, 0x02) => "logical unit not ready, initializing command required",
        (0x04, 0x03) => "logical unit not ready, manual intervention required",
        (0x04, 0x12) => "logical unit not ready, offline",
        (0x0C, 0x00) => "write error",
        (0x11, 0x00) => "unrecovered read error",
        (0x11, 0x01) => "read retries exhausted",
        (0x14, 0x00) => "recorded entity not found",
        (0x14, 0x01) => "record not found",
        (0x14, 0x02) => "filemark or setmark not found",
        (0x14, 0x03) => "end-of-data not found",
        (0x1A, 0x00) => "parameter list length error",
        (0x20, 0x00) => "invalid command operation code",
        (0x21, 0x01) => "invalid element address",
        (0x24, 0x00) => "invalid field in CDB",
        (0x25, 0x00) => "logical unit not supported",
        (0x26, 0x00) => "invalid field in parameter list",
        (0x27, 0x00) => "write protected",
        (0x28, 0x00) => "not ready to ready change, medium may have changed",
        (0x28, 0x01) => "import or export element accessed",
        (0x29, 0x00) => "power on, reset, or bus device reset occurred",
        (0x2A, 0x01) => "mode parameters changed",
        (0x30, 0x00) => "incompatible medium installed",
        (0x30, 0x01) => "cannot read medium, unknown format",
        (0x30, 0x02) => "cannot read medium, incompatible format",
        (0x30, 0x03) => "cleaning cartridge installed",
        (0x30, 0x0C) => "WORM medium, overwrite attempted",
        (0x30, 0x0D) => "WORM medium, integrity check failed",
        (0x31, 0x00) => "medium format corrupted",
        (0x3A, 0x00) => "medium not present",
        (0x3B, 0x00) => "sequential positioning error",
        (0x3B, 0x01) => "tape position error at beginning-of-medium",
        (0x3B, 0x02) => "tape position error at end-of-medium",
        (0x3B, 0x08) => "reposition error",
        (0x3B, 0x0D) => "medium destination element full",
        (0x3B, 0x0E) => "medium source element empty",
        (0x3B, 0x11) => "medium magazine not accessible",
        (0x3B, 0x12) => "medium magazine removed",
        (0x3B, 0x13) => "medium magazine inserted",
        (0x3B, 0x14) => "medium magazine locked",
        (0x3B, 0x15) => "medium magazine unlocked",
        (0x3F, 0x01) => "microcode has been changed",
        (0x44, 0x00) => "internal target failure",
        (0x50, 0x00) => "write append error",
        (0x51, 0x00) => "erase failure",
        (0x52, 0x00) => "cartridge fault",
        (0x53, 0x00) => "media load or eject failed",
        (0x53, 0x01) => "unload tape failure",
        (0x53, 0x02) => "medium removal prevented",
        (0x5D, 0x00) => "failure prediction threshold exceeded",
        (0x74, 0x00) => "security error",
        (0x82, 0x82) => "drive needs cleaning",
        _ => return None,
    })
}

/// What a CHECK CONDITION means for the command that got it.
#[derive(Debug)]
pub enum Classified {
    /// The command completed (NO SENSE or RECOVERED ERROR without any
    /// condition the caller acts on).
    Completed,
    /// The command completed past the early-warning point (NO SENSE or
    /// RECOVERED ERROR with EOM; typically 00/02 on a write).
    EarlyWarning,
    /// A read stopped at a filemark (NO SENSE with FILEMARK; 00/01).
    Filemark,
    /// A read returned a block of another length than asked for (ILI): the
    /// residual (requested minus actual; negative when the block was
    /// longer), when the device reported one.
    IncorrectLength {
        /// Requested minus actual length.
        residual: Option<i64>,
    },
    /// The command failed.
    Failed(Error),
}

/// Maps sense data to the condition the caller acts on.
///
/// `device` and `op` name the device and command in the error.
pub fn classify(device: &str, op: &'static str, sense: &Sense) -> Classified {
    let device_s = || device.to_string();
    let reason = || {
        sense
            .description()
            .map(str::to_string)
            .unwrap_or_else(|| format!("ASC/ASCQ {:02X}/{:02X}", sense.asc, sense.ascq))
    };
    match sense.key {
        NO_SENSE | RECOVERED_ERROR => {
            if sense.filemark {
                Classified::Filemark
            } else if sense.ili {
                Classified::IncorrectLength {
                    residual: sense.information,
                }
            } else if sense.eom {
                Classified::EarlyWarning
            } else {
                Classified::Completed
            }
        }
        NOT_READY => Classified::Failed(Error::NotReady {
            device: device_s(),
            reason: reason(),
        }),
        MEDIUM_ERROR if sense.eom => Classified::Failed(Error::EndOfMedium { device: device_s() }),
        VOLUME_OVERFLOW => Classified::Failed(Error::EndOfMedium { device: device_s() }),
        DATA_PROTECT => Classified::Failed(Error::WriteProtected {
            device: device_s(),
            reason: match (sense.asc, sense.ascq) {
                (0x27, _) => "write-protect tab set".to_string(),
                (0x30, 0x0C) => "WORM medium, overwrite attempted".to_string(),
                (0x30, 0x0D) => "WORM medium, integrity check failed".to_string(),
                _ => reason(),
            },
        }),
        BLANK_CHECK => Classified::Failed(Error::BlankCheck { device: device_s() }),
        ILLEGAL_REQUEST if sense.asc == 0x3B && matches!(sense.ascq, 0x0D | 0x0E) => {
            Classified::Failed(Error::Changer {
                device: device_s(),
                reason: format!("{op} refused: {}", reason()),
            })
        }
        _ => Classified::Failed(Error::Sense {
            device: device_s(),
            op,
            sense: sense.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::fixtures::fixture;

    fn parse(name: &str) -> Sense {
        Sense::parse(&fixture(name)).unwrap()
    }

    // SPC-4 §4.5.3, table "Fixed format sense data": MEDIUM ERROR 03/11/00 on READ.
    #[test]
    fn medium_error_on_read() {
        let s = parse("sense_medium_error_read");
        assert_eq!((s.key, s.asc, s.ascq), (3, 0x11, 0x00));
        assert!(!s.eom && !s.filemark && !s.ili);
        assert_eq!(s.information, None);
        assert_eq!(
            s.to_string(),
            "MEDIUM ERROR (sense key 0x3), ASC/ASCQ 11/00 unrecovered read error"
        );
        match classify("/dev/sg3", "READ(6)", &s) {
            Classified::Failed(e @ Error::Sense { .. }) => assert_eq!(
                e.to_string(),
                "/dev/sg3: READ(6) failed: MEDIUM ERROR (sense key 0x3), ASC/ASCQ 11/00 unrecovered read error"
            ),
            other => panic!("{other:?}"),
        }
    }

    // SPC-4 §4.5.3 fixed format; SSC-4 early-warning behaviour: NO SENSE,
    // EOM set, 00/02, all data transferred (information 0).
    #[test]
    fn early_warning_on_write() {
        let s = parse("sense_early_warning_write");
        assert_eq!((s.key, s.asc, s.ascq), (0, 0x00, 0x02));
        assert!(s.eom && !s.filemark && !s.ili);
        assert_eq!(s.information, Some(0));
        assert!(matches!(
            classify("/dev/sg3", "WRITE(6)", &s),
            Classified::EarlyWarning
        ));
    }

    // SPC-4 §4.5.3; SSC-4: VOLUME OVERFLOW with EOM and 00/02, the block
    // (65536 bytes) not written: information = residual = whole request.
    #[test]
    fn volume_overflow() {
        let s = parse("sense_volume_overflow");
        assert_eq!((s.key, s.asc, s.ascq), (0xD, 0x00, 0x02));
        assert!(s.eom);
        assert_eq!(s.information, Some(65536));
        assert!(matches!(
            classify("/dev/sg3", "WRITE(6)", &s),
            Classified::Failed(Error::EndOfMedium { .. })
        ));
    }

    // SPC-4 §4.5.3: MEDIUM ERROR with EOM at the physical end of medium.
    #[test]
    fn medium_error_with_eom_is_end_of_medium() {
        let mut s = parse("sense_medium_error_read");
        s.eom = true;
        assert!(matches!(
            classify("d", "WRITE(6)", &s),
            Classified::Failed(Error::EndOfMedium { .. })
        ));
    }

    // SPC-4 §4.5.3: BLANK CHECK 08/00/05 end-of-data on READ.
    #[test]
    fn blank_check_on_read() {
        let s = parse("sense_blank_check_eod");
        assert_eq!((s.key, s.asc, s.ascq), (8, 0x00, 0x05));
        assert_eq!(s.description(), Some("end-of-data detected"));
        assert!(matches!(
            classify("d", "READ(6)", &s),
            Classified::Failed(Error::BlankCheck { .. })
        ));
    }

    // SPC-4 §4.5.3: NOT READY 02/3A/00 and 02/04/01.
    #[test]
    fn not_ready() {
        let s = parse("sense_not_ready_no_medium");
        assert_eq!((s.key, s.asc, s.ascq), (2, 0x3A, 0x00));
        match classify("/dev/sg3", "TEST UNIT READY", &s) {
            Classified::Failed(e @ Error::NotReady { .. }) => {
                assert_eq!(e.to_string(), "/dev/sg3: not ready: medium not present")
            }
            other => panic!("{other:?}"),
        }
        let s = parse("sense_not_ready_becoming_ready");
        assert_eq!((s.key, s.asc, s.ascq), (2, 0x04, 0x01));
        match classify("d", "TEST UNIT READY", &s) {
            Classified::Failed(Error::NotReady { reason, .. }) => {
                assert_eq!(reason, "logical unit is in process of becoming ready")
            }
            other => panic!("{other:?}"),
        }
    }

    // SPC-4 §4.5.3: DATA PROTECT 07/27/00 (tab) and 07/30/0C (WORM).
    #[test]
    fn data_protect() {
        let s = parse("sense_write_protected");
        assert_eq!((s.key, s.asc, s.ascq), (7, 0x27, 0x00));
        match classify("d", "WRITE(6)", &s) {
            Classified::Failed(Error::WriteProtected { reason, .. }) => {
                assert_eq!(reason, "write-protect tab set")
            }
            other => panic!("{other:?}"),
        }
        let s = parse("sense_worm_overwrite");
        assert_eq!((s.key, s.asc, s.ascq), (7, 0x30, 0x0C));
        match classify("d", "WRITE(6)", &s) {
            Classified::Failed(Error::WriteProtected { reason, .. }) => {
                assert!(reason.contains("WORM"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    // SPC-4 §4.5.3; SSC-4 READ(6): a filemark read in variable-block mode,
    // NO SENSE, FILEMARK set, 00/01, residual = the whole request (32768).
    #[test]
    fn filemark_read() {
        let s = parse("sense_filemark_read");
        assert_eq!((s.key, s.asc, s.ascq), (0, 0x00, 0x01));
        assert!(s.filemark && !s.eom && !s.ili);
        assert_eq!(s.information, Some(32768));
        assert!(matches!(classify("d", "READ(6)", &s), Classified::Filemark));
    }

    // SPC-4 §4.5.3; SSC-4 READ(6): ILI set, a 1000-byte block read with a
    // 4096-byte request: residual 3096 in INFORMATION.
    #[test]
    fn ili_short_read() {
        let s = parse("sense_ili_short_read");
        assert!(s.ili && !s.filemark);
        assert_eq!(s.information, Some(3096));
        assert!(matches!(
            classify("d", "READ(6)", &s),
            Classified::IncorrectLength {
                residual: Some(3096)
            }
        ));
    }

    // SPC-4 §4.5.3: ILI with a negative residual (block of 8192 bytes, 4096
    // requested: information = -4096, two's complement FFFFF000h).
    #[test]
    fn ili_overlength_read() {
        let s = parse("sense_ili_overlength_read");
        assert_eq!(s.information, Some(-4096));
    }

    // SPC-4 §4.5.2 "Descriptor format sense data" with an information
    // descriptor (table "Information sense data descriptor format") and a
    // stream commands descriptor (table "Stream commands sense data
    // descriptor format"): the same ILI short read.
    #[test]
    fn descriptor_format_ili() {
        let s = parse("sense_descriptor_ili_short_read");
        assert_eq!(s.response_code, 0x72);
        assert_eq!((s.key, s.asc, s.ascq), (0, 0, 0));
        assert!(s.ili && !s.filemark && !s.eom);
        assert_eq!(s.information, Some(3096));
        assert!(matches!(
            classify("d", "READ(6)", &s),
            Classified::IncorrectLength {
                residual: Some(3096)
            }
        ));
    }

    // SPC-4 §4.5.2: descriptor-format early warning on WRITE FILEMARKS,
    // stream commands descriptor with EOM.
    #[test]
    fn descriptor_format_early_warning() {
        let s = parse("sense_descriptor_early_warning");
        assert_eq!((s.key, s.asc, s.ascq), (0, 0x00, 0x02));
        assert!(s.eom);
        assert_eq!(s.information, None);
        assert!(matches!(
            classify("d", "WRITE FILEMARKS(6)", &s),
            Classified::EarlyWarning
        ));
    }

    // SPC-4 §4.5.3 with a short additional length: 8 bytes only.
    #[test]
    fn fixed_format_without_asc() {
        let s = Sense::parse(&[0xF0, 0, 0x02, 0, 0, 0, 5, 0]).unwrap();
        assert_eq!((s.key, s.asc, s.ascq), (2, 0, 0));
        assert_eq!(s.information, Some(5));
    }

    #[test]
    fn deferred_error_is_marked() {
        let mut b = fixture("sense_medium_error_read");
        b[0] = 0x71;
        let s = Sense::parse(&b).unwrap();
        assert!(s.deferred());
        assert!(s.to_string().ends_with("(deferred error)"));
    }

    #[test]
    fn changer_element_errors() {
        let s = Sense::new(ILLEGAL_REQUEST, 0x3B, 0x0E);
        match classify("/dev/sg5", "MOVE MEDIUM", &s) {
            Classified::Failed(e @ Error::Changer { .. }) => assert_eq!(
                e.to_string(),
                "/dev/sg5: MOVE MEDIUM refused: medium source element empty"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cleaning_and_vendor_codes() {
        let s = Sense::new(NOT_READY, 0x30, 0x03);
        assert!(s.cleaning_cartridge());
        assert!(s.to_string().contains("cleaning cartridge installed"));
        assert_eq!(asc_description(0x82, 0x82), Some("drive needs cleaning"));
        assert_eq!(
            asc_description(0x53, 0x02),
            Some("medium removal prevented")
        );
        assert!(asc_description(0x29, 0x00).is_some());
    }

    #[test]
    fn unknown_response_code() {
        assert!(Sense::parse(&[0x00; 18]).is_err());
        assert!(Sense::parse(&[]).is_err());
    }
}
