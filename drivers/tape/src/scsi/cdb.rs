//! Command descriptor block (CDB) builders.
//!
//! One function per command, returning the CDB bytes; the CONTROL byte (the
//! last) is always 0. Transfer lengths that do not fit their field are
//! clamped by the caller's choice of buffer: builders take the already
//! bounded value.

/// Largest transfer length of the 6-byte READ/WRITE/WRITE FILEMARKS
/// commands (a 24-bit field).
pub const MAX_TRANSFER_6: u32 = 0x00FF_FFFF;

fn be24(v: u32) -> [u8; 3] {
    let b = v.min(MAX_TRANSFER_6).to_be_bytes();
    [b[1], b[2], b[3]]
}

/// TEST UNIT READY (00h; SPC-4).
pub fn test_unit_ready() -> [u8; 6] {
    [0x00, 0, 0, 0, 0, 0]
}

/// INQUIRY (12h; SPC-4): standard data (`vpd_page` `None`) or a vital
/// product data page (EVPD set).
pub fn inquiry(vpd_page: Option<u8>, allocation: u16) -> [u8; 6] {
    let [hi, lo] = allocation.to_be_bytes();
    match vpd_page {
        None => [0x12, 0, 0, hi, lo, 0],
        Some(page) => [0x12, 0x01, page, hi, lo, 0],
    }
}

/// REWIND (01h; SSC-4).
pub fn rewind(immediate: bool) -> [u8; 6] {
    [0x01, u8::from(immediate), 0, 0, 0, 0]
}

/// READ(6) (08h; SSC-4) in variable-block mode (FIXED = 0): the transfer
/// length is the byte count. With `sili`, a block shorter than asked is
/// not reported as an incorrect length.
pub fn read6(len: u32, sili: bool) -> [u8; 6] {
    let [a, b, c] = be24(len);
    [0x08, if sili { 0x02 } else { 0 }, a, b, c, 0]
}

/// WRITE(6) (0Ah; SSC-4) in variable-block mode (FIXED = 0).
pub fn write6(len: u32) -> [u8; 6] {
    let [a, b, c] = be24(len);
    [0x0A, 0, a, b, c, 0]
}

/// WRITE FILEMARKS(6) (10h; SSC-4). Without IMMED the drive flushes its
/// buffer to the medium before it reports.
pub fn write_filemarks6(count: u32, immediate: bool) -> [u8; 6] {
    let [a, b, c] = be24(count);
    [0x10, u8::from(immediate), a, b, c, 0]
}

/// What SPACE moves over (SSC-4, SPACE CODE field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpaceCode {
    /// Logical blocks (000b).
    Blocks = 0,
    /// Filemarks (001b).
    Filemarks = 1,
    /// Sequential filemarks (010b).
    SequentialFilemarks = 2,
    /// End of data (011b).
    EndOfData = 3,
}

/// SPACE(16) (91h; SSC-4): CODE in byte 1, a signed 8-byte COUNT in bytes
/// 4-11 (negative: towards the beginning), PARAMETER LENGTH 0.
pub fn space16(code: SpaceCode, count: i64) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x91;
    c[1] = code as u8;
    c[4..12].copy_from_slice(&count.to_be_bytes());
    c
}

/// LOCATE(16) (92h; SSC-4) to a logical object identifier (DEST_TYPE 000b),
/// in the current partition (CP = 0), explicit address mode (BAM = 0).
pub fn locate16(logical_object: u64, immediate: bool) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x92;
    c[1] = u8::from(immediate);
    c[4..12].copy_from_slice(&logical_object.to_be_bytes());
    c
}

/// READ POSITION (34h; SSC-4), long form (service action 06h). The
/// ALLOCATION LENGTH field is zero for the short and long forms; the
/// response is always 32 bytes.
pub fn read_position_long() -> [u8; 10] {
    [0x34, 0x06, 0, 0, 0, 0, 0, 0, 0, 0]
}

/// What LOAD UNLOAD does (SSC-4, LOAD and HOLD bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadAction {
    /// Load and position at the beginning of partition 0 (LOAD = 1).
    Load,
    /// Rewind and unthread, keeping the cartridge in the drive (HOLD = 1).
    Unload,
    /// Rewind, unthread and eject the cartridge for the changer or the
    /// operator (LOAD = 0, HOLD = 0).
    Eject,
}

/// LOAD UNLOAD (1Bh; SSC-4): byte 4 HOLD(3) EOT(2) RETEN(1) LOAD(0).
pub fn load_unload(action: LoadAction, immediate: bool) -> [u8; 6] {
    let b4 = match action {
        LoadAction::Load => 0x01,
        LoadAction::Unload => 0x08,
        LoadAction::Eject => 0x00,
    };
    [0x1B, u8::from(immediate), 0, 0, b4, 0]
}

/// Which values MODE SENSE returns (PC field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageControl {
    /// Current values (00b).
    Current = 0,
    /// Changeable values (01b).
    Changeable = 1,
    /// Default values (10b).
    Default = 2,
    /// Saved values (11b).
    Saved = 3,
}

/// MODE SENSE(10) (5Ah; SPC-4): DBD in byte 1 bit 3, PC and PAGE CODE in
/// byte 2, SUBPAGE CODE in byte 3, ALLOCATION LENGTH in bytes 7-8.
pub fn mode_sense10(
    page: u8,
    subpage: u8,
    pc: PageControl,
    disable_block_descriptors: bool,
    allocation: u16,
) -> [u8; 10] {
    let [hi, lo] = allocation.to_be_bytes();
    [
        0x5A,
        if disable_block_descriptors { 0x08 } else { 0 },
        ((pc as u8) << 6) | (page & 0x3f),
        subpage,
        0,
        0,
        0,
        hi,
        lo,
        0,
    ]
}

/// MODE SELECT(10) (55h; SPC-4) with PF set (the pages follow the standard
/// page format), SP clear (not saved), PARAMETER LIST LENGTH in bytes 7-8.
pub fn mode_select10(parameter_list_length: u16) -> [u8; 10] {
    let [hi, lo] = parameter_list_length.to_be_bytes();
    [0x55, 0x10, 0, 0, 0, 0, 0, hi, lo, 0]
}

/// LOG SENSE (4Dh; SPC-4) of the cumulative current values (PC = 01b) of
/// a log page, from parameter 0.
pub fn log_sense(page: u8, subpage: u8, allocation: u16) -> [u8; 10] {
    let [hi, lo] = allocation.to_be_bytes();
    [0x4D, 0, 0x40 | (page & 0x3f), subpage, 0, 0, 0, hi, lo, 0]
}

/// The TapeAlert log page (SSC-4).
pub const LOG_PAGE_TAPE_ALERT: u8 = 0x2E;

/// READ ATTRIBUTE (8Ch; SPC-4), service action 00h ATTRIBUTE VALUES, from
/// `first_attribute` on, in `partition`.
pub fn read_attribute(partition: u8, first_attribute: u16, allocation: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x8C;
    c[1] = 0x00;
    c[7] = partition;
    c[8..10].copy_from_slice(&first_attribute.to_be_bytes());
    c[10..14].copy_from_slice(&allocation.to_be_bytes());
    c
}

/// The tape data encryption security protocol (SSC-4, SPC-4 table
/// "SECURITY PROTOCOL field").
pub const PROTOCOL_TAPE_ENCRYPTION: u8 = 0x20;

/// SECURITY PROTOCOL IN (A2h; SPC-4): protocol in byte 1, protocol-specific
/// page code in bytes 2-3, INC_512 clear, ALLOCATION LENGTH in bytes 6-9.
pub fn security_protocol_in(protocol: u8, page: u16, allocation: u32) -> [u8; 12] {
    let mut c = [0u8; 12];
    c[0] = 0xA2;
    c[1] = protocol;
    c[2..4].copy_from_slice(&page.to_be_bytes());
    c[6..10].copy_from_slice(&allocation.to_be_bytes());
    c
}

/// SECURITY PROTOCOL OUT (B5h; SPC-4): TRANSFER LENGTH in bytes 6-9.
pub fn security_protocol_out(protocol: u8, page: u16, length: u32) -> [u8; 12] {
    let mut c = [0u8; 12];
    c[0] = 0xB5;
    c[1] = protocol;
    c[2..4].copy_from_slice(&page.to_be_bytes());
    c[6..10].copy_from_slice(&length.to_be_bytes());
    c
}

/// INITIALIZE ELEMENT STATUS (07h; SMC-3): the changer re-scans every
/// element (barcodes included).
pub fn initialize_element_status() -> [u8; 6] {
    [0x07, 0, 0, 0, 0, 0]
}

/// SMC-3 element type codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementType {
    /// All element types (0h).
    All = 0,
    /// Medium transport (picker) (1h).
    Transport = 1,
    /// Storage (2h).
    Storage = 2,
    /// Import/export (3h).
    ImportExport = 3,
    /// Data transfer (drive) (4h).
    Drive = 4,
}

impl ElementType {
    /// The crate's kind for this type (`None` for [`ElementType::All`]).
    pub fn kind(self) -> Option<crate::ElementKind> {
        use crate::ElementKind as K;
        match self {
            ElementType::All => None,
            ElementType::Transport => Some(K::Transport),
            ElementType::Storage => Some(K::Storage),
            ElementType::ImportExport => Some(K::ImportExport),
            ElementType::Drive => Some(K::Drive),
        }
    }

    /// The SMC-3 type for a crate kind.
    pub fn of(kind: crate::ElementKind) -> ElementType {
        use crate::ElementKind as K;
        match kind {
            K::Transport => ElementType::Transport,
            K::Storage => ElementType::Storage,
            K::ImportExport => ElementType::ImportExport,
            K::Drive => ElementType::Drive,
        }
    }
}

/// READ ELEMENT STATUS (B8h; SMC-3): VOLTAG (byte 1 bit 4) asks for volume
/// tags (barcodes), ELEMENT TYPE CODE in byte 1 bits 3-0, STARTING ELEMENT
/// ADDRESS in bytes 2-3, NUMBER OF ELEMENTS in 4-5, ALLOCATION LENGTH
/// (24 bits) in 7-9. CURDATA and DVCID clear.
pub fn read_element_status(
    kind: ElementType,
    voltag: bool,
    start: u16,
    count: u16,
    allocation: u32,
) -> [u8; 12] {
    let mut c = [0u8; 12];
    c[0] = 0xB8;
    c[1] = (if voltag { 0x10 } else { 0 }) | (kind as u8 & 0x0f);
    c[2..4].copy_from_slice(&start.to_be_bytes());
    c[4..6].copy_from_slice(&count.to_be_bytes());
    c[7..10].copy_from_slice(&be24(allocation));
    c
}

/// MOVE MEDIUM (A5h; SMC-3): TRANSPORT ELEMENT ADDRESS in bytes 2-3, SOURCE
/// in 4-5, DESTINATION in 6-7, INVERT clear.
pub fn move_medium(transport: u16, source: u16, destination: u16) -> [u8; 12] {
    let mut c = [0u8; 12];
    c[0] = 0xA5;
    c[2..4].copy_from_slice(&transport.to_be_bytes());
    c[4..6].copy_from_slice(&source.to_be_bytes());
    c[6..8].copy_from_slice(&destination.to_be_bytes());
    c
}

/// A human name for a CDB's operation code, for messages.
pub fn op_name(cdb: &[u8]) -> &'static str {
    match cdb.first() {
        Some(0x00) => "TEST UNIT READY",
        Some(0x01) => "REWIND",
        Some(0x07) => "INITIALIZE ELEMENT STATUS",
        Some(0x08) => "READ(6)",
        Some(0x0A) => "WRITE(6)",
        Some(0x10) => "WRITE FILEMARKS(6)",
        Some(0x12) => "INQUIRY",
        Some(0x1B) => "LOAD UNLOAD",
        Some(0x34) => "READ POSITION",
        Some(0x4D) => "LOG SENSE",
        Some(0x55) => "MODE SELECT(10)",
        Some(0x5A) => "MODE SENSE(10)",
        Some(0x8C) => "READ ATTRIBUTE",
        Some(0x91) => "SPACE(16)",
        Some(0x92) => "LOCATE(16)",
        Some(0xA2) => "SECURITY PROTOCOL IN",
        Some(0xA5) => "MOVE MEDIUM",
        Some(0xB5) => "SECURITY PROTOCOL OUT",
        Some(0xB8) => "READ ELEMENT STATUS",
        _ => "SCSI command",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // SPC-4 table "INQUIRY command".
    #[test]
    fn inquiry_cdb() {
        assert_eq!(inquiry(None, 96), [0x12, 0, 0, 0, 96, 0]);
        assert_eq!(inquiry(Some(0x80), 0x104), [0x12, 1, 0x80, 1, 4, 0]);
        assert_eq!(test_unit_ready(), [0; 6]);
    }

    // SSC-4 tables "READ(6) command" and "WRITE(6) command".
    #[test]
    fn read_write_cdb() {
        assert_eq!(read6(0x010000, false), [0x08, 0, 0x01, 0x00, 0x00, 0]);
        assert_eq!(read6(512, true), [0x08, 0x02, 0, 0x02, 0x00, 0]);
        assert_eq!(write6(0x123456), [0x0A, 0, 0x12, 0x34, 0x56, 0]);
        // Clamped to the 24-bit field, never wrapped.
        assert_eq!(write6(u32::MAX), [0x0A, 0, 0xFF, 0xFF, 0xFF, 0]);
    }

    // SSC-4 table "WRITE FILEMARKS(6) command".
    #[test]
    fn write_filemarks_cdb() {
        assert_eq!(write_filemarks6(2, false), [0x10, 0, 0, 0, 2, 0]);
        assert_eq!(write_filemarks6(0, true), [0x10, 1, 0, 0, 0, 0]);
    }

    // SSC-4 table "SPACE(16) command".
    #[test]
    fn space16_cdb() {
        assert_eq!(
            space16(SpaceCode::Filemarks, -1),
            [
                0x91, 0x01, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0
            ]
        );
        assert_eq!(
            space16(SpaceCode::Blocks, 0x0102),
            [0x91, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0]
        );
        assert_eq!(space16(SpaceCode::EndOfData, 0)[1], 0x03);
    }

    // SSC-4 table "LOCATE(16) command".
    #[test]
    fn locate16_cdb() {
        assert_eq!(
            locate16(0x0000_0001_0000_0002, false),
            [0x92, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0]
        );
        assert_eq!(locate16(5, true)[1], 0x01);
    }

    // SSC-4 table "READ POSITION command", service action 06h.
    #[test]
    fn read_position_cdb() {
        assert_eq!(read_position_long(), [0x34, 0x06, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    // SSC-4 tables "REWIND command" and "LOAD UNLOAD command".
    #[test]
    fn rewind_and_load_unload_cdb() {
        assert_eq!(rewind(false), [0x01, 0, 0, 0, 0, 0]);
        assert_eq!(rewind(true), [0x01, 1, 0, 0, 0, 0]);
        assert_eq!(load_unload(LoadAction::Load, false), [0x1B, 0, 0, 0, 1, 0]);
        assert_eq!(
            load_unload(LoadAction::Unload, false),
            [0x1B, 0, 0, 0, 8, 0]
        );
        assert_eq!(load_unload(LoadAction::Eject, true), [0x1B, 1, 0, 0, 0, 0]);
    }

    // SPC-4 tables "MODE SENSE(10) command" and
    // "MODE SELECT(10) command".
    #[test]
    fn mode_cdbs() {
        assert_eq!(
            mode_sense10(0x10, 0, PageControl::Current, false, 0x40),
            [0x5A, 0, 0x10, 0, 0, 0, 0, 0, 0x40, 0]
        );
        assert_eq!(
            mode_sense10(0x1D, 0, PageControl::Changeable, true, 0x100),
            [0x5A, 0x08, 0x5D, 0, 0, 0, 0, 1, 0, 0]
        );
        assert_eq!(mode_select10(16), [0x55, 0x10, 0, 0, 0, 0, 0, 0, 16, 0]);
    }

    // SPC-4 table "LOG SENSE command".
    #[test]
    fn log_sense_cdb() {
        assert_eq!(
            log_sense(LOG_PAGE_TAPE_ALERT, 0, 0x0148),
            [0x4D, 0, 0x6E, 0, 0, 0, 0, 0x01, 0x48, 0]
        );
    }

    // SPC-4 table "READ ATTRIBUTE command".
    #[test]
    fn read_attribute_cdb() {
        assert_eq!(
            read_attribute(0, 0x0400, 0x1000),
            [0x8C, 0, 0, 0, 0, 0, 0, 0, 0x04, 0, 0, 0, 0x10, 0, 0, 0]
        );
    }

    // SPC-4 tables "SECURITY PROTOCOL IN command" and
    // "SECURITY PROTOCOL OUT command".
    #[test]
    fn security_protocol_cdbs() {
        assert_eq!(
            security_protocol_in(PROTOCOL_TAPE_ENCRYPTION, 0x0010, 0x2000),
            [0xA2, 0x20, 0x00, 0x10, 0, 0, 0, 0, 0x20, 0x00, 0, 0]
        );
        assert_eq!(
            security_protocol_out(PROTOCOL_TAPE_ENCRYPTION, 0x0010, 52),
            [0xB5, 0x20, 0x00, 0x10, 0, 0, 0, 0, 0, 52, 0, 0]
        );
    }

    // SMC-3 tables "INITIALIZE ELEMENT STATUS command", "MOVE MEDIUM
    // command" and "READ ELEMENT STATUS command".
    #[test]
    fn changer_cdbs() {
        assert_eq!(initialize_element_status(), [0x07, 0, 0, 0, 0, 0]);
        assert_eq!(
            read_element_status(ElementType::Storage, true, 0x1000, 24, 0x012345),
            [0xB8, 0x12, 0x10, 0x00, 0, 24, 0, 0x01, 0x23, 0x45, 0, 0]
        );
        assert_eq!(
            read_element_status(ElementType::All, false, 0, 0xFFFF, 8),
            [0xB8, 0x00, 0, 0, 0xFF, 0xFF, 0, 0, 0, 8, 0, 0]
        );
        assert_eq!(
            move_medium(0x0001, 0x1003, 0x0100),
            [0xA5, 0, 0x00, 0x01, 0x10, 0x03, 0x01, 0x00, 0, 0, 0, 0]
        );
    }

    #[test]
    fn op_names() {
        assert_eq!(op_name(&read_position_long()), "READ POSITION");
        assert_eq!(op_name(&[]), "SCSI command");
    }
}
