//! A scripted SCSI transport: each step is the CDB (and data) the drive
//! logic must send next and the answer the device gives. Any deviation
//! fails the test; so does a step left unused.

use std::collections::VecDeque;
use std::time::Duration;

use super::{DataDir, STATUS_CHECK_CONDITION, STATUS_GOOD, ScsiResult, ScsiTransport};
use crate::Result;

/// A device's answer.
pub(crate) enum Answer {
    /// GOOD, with this data in (or nothing).
    Good(Vec<u8>),
    /// CHECK CONDITION with this sense data.
    Check(Vec<u8>),
    /// CHECK CONDITION after transferring some data.
    CheckWithData(Vec<u8>, Vec<u8>),
    /// Another status.
    Status(u8),
}

struct Step {
    cdb: Vec<u8>,
    sent: Option<Vec<u8>>,
    answer: Answer,
    timeout: Option<Duration>,
}

/// The scripted device.
pub(crate) struct Fake {
    name: String,
    steps: VecDeque<Step>,
}

impl Fake {
    pub(crate) fn new(name: &str) -> Fake {
        Fake {
            name: name.to_string(),
            steps: VecDeque::new(),
        }
    }

    /// Expects `cdb` next, answers `answer`.
    pub(crate) fn expect(mut self, cdb: &[u8], answer: Answer) -> Fake {
        self.steps.push_back(Step {
            cdb: cdb.to_vec(),
            sent: None,
            answer,
            timeout: None,
        });
        self
    }

    /// Expects `cdb` with data `sent` to the device.
    pub(crate) fn expect_out(mut self, cdb: &[u8], sent: &[u8], answer: Answer) -> Fake {
        self.steps.push_back(Step {
            cdb: cdb.to_vec(),
            sent: Some(sent.to_vec()),
            answer,
            timeout: None,
        });
        self
    }

    /// The last step also checks the timeout.
    pub(crate) fn with_timeout(mut self, t: Duration) -> Fake {
        if let Some(s) = self.steps.back_mut() {
            s.timeout = Some(t);
        }
        self
    }

    /// Steps not yet used.
    pub(crate) fn remaining(&self) -> usize {
        self.steps.len()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        if !std::thread::panicking() && !self.steps.is_empty() {
            let next: Vec<String> = self
                .steps
                .iter()
                .map(|s| super::cdb::op_name(&s.cdb).to_string())
                .collect();
            panic!(
                "{}: script not finished, still expected {next:?}",
                self.name
            );
        }
    }
}

impl ScsiTransport for Fake {
    fn device(&self) -> &str {
        &self.name
    }

    fn execute(&mut self, cdb: &[u8], data: DataDir<'_>, timeout: Duration) -> Result<ScsiResult> {
        let step = self.steps.pop_front().unwrap_or_else(|| {
            panic!(
                "{}: unexpected {} {cdb:02X?}",
                self.name,
                super::cdb::op_name(cdb)
            )
        });
        assert_eq!(
            cdb,
            &step.cdb[..],
            "{}: expected {}, got {}",
            self.name,
            super::cdb::op_name(&step.cdb),
            super::cdb::op_name(cdb)
        );
        if let Some(t) = step.timeout {
            assert_eq!(timeout, t, "timeout of {}", super::cdb::op_name(cdb));
        }
        let len = data.len();
        match (&step.sent, &data) {
            (Some(want), DataDir::ToDevice(got)) => {
                assert_eq!(
                    &want[..],
                    &got[..],
                    "data sent with {}",
                    super::cdb::op_name(cdb)
                )
            }
            (Some(_), _) => panic!("{}: expected data out", super::cdb::op_name(cdb)),
            (None, DataDir::ToDevice(_)) => {
                panic!("{}: unexpected data out", super::cdb::op_name(cdb))
            }
            _ => {}
        }
        let fill = |data: DataDir<'_>, bytes: &[u8]| -> usize {
            match data {
                DataDir::FromDevice(buf) => {
                    let n = bytes.len().min(buf.len());
                    buf[..n].copy_from_slice(&bytes[..n]);
                    n
                }
                DataDir::ToDevice(b) => b.len(),
                DataDir::None => 0,
            }
        };
        Ok(match step.answer {
            Answer::Good(bytes) => {
                let n = fill(data, &bytes);
                ScsiResult {
                    status: STATUS_GOOD,
                    sense: vec![],
                    residual: len - n,
                }
            }
            Answer::Check(sense) => ScsiResult {
                status: STATUS_CHECK_CONDITION,
                sense,
                residual: len,
            },
            Answer::CheckWithData(bytes, sense) => {
                let n = fill(data, &bytes);
                ScsiResult {
                    status: STATUS_CHECK_CONDITION,
                    sense,
                    residual: len - n,
                }
            }
            Answer::Status(status) => ScsiResult {
                status,
                sense: vec![],
                residual: len,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{LinuxChanger, LinuxDrive, timeouts};
    use super::*;
    use crate::scsi::cdb::{self, ElementType, LoadAction, PageControl, SpaceCode};
    use crate::scsi::encryption;
    use crate::scsi::fixtures::fixture;
    use crate::{
        DriveKey, ElementKind, Error, MediaChanger, Position, ReadOutcome, SpaceOver, TapeDrive,
        Written,
    };

    const DEV: &str = "/dev/sg3";

    fn sense_fixed(key: u8, asc: u8, ascq: u8) -> Vec<u8> {
        let mut s = vec![0u8; 18];
        s[0] = 0x70;
        s[2] = key;
        s[7] = 10;
        s[12] = asc;
        s[13] = ascq;
        s
    }

    fn drive_script() -> Fake {
        Fake::new(DEV)
            .expect(
                &cdb::inquiry(None, 96),
                Answer::Good(fixture("inquiry_tape")),
            )
            .expect(
                &cdb::inquiry(Some(0x80), 255),
                Answer::Good(fixture("vpd_unit_serial")),
            )
    }

    fn mode_sense_config() -> [u8; 10] {
        cdb::mode_sense10(0x10, 0, PageControl::Current, false, 256)
    }

    /// Device configuration data already in variable-block mode.
    fn variable_mode_data() -> Vec<u8> {
        let mut d = fixture("mode_sense10_device_config");
        d[13..16].copy_from_slice(&[0, 0, 0]);
        d
    }

    fn finish(d: LinuxDrive<Fake>) {
        let fake = d.into_transport();
        assert_eq!(fake.remaining(), 0);
    }

    #[test]
    fn open_checks_device_type() {
        let fake = Fake::new(DEV).expect(
            &cdb::inquiry(None, 96),
            Answer::Good(fixture("inquiry_changer")),
        );
        match LinuxDrive::new(fake) {
            Err(e @ Error::Unsupported { .. }) => {
                assert!(e.to_string().contains("is not a tape drive"), "{e}")
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a changer opened as a drive"),
        }
    }

    #[test]
    fn write_sets_variable_mode_then_reports_early_warning_and_end() {
        let fake = drive_script()
            .expect(
                &mode_sense_config(),
                Answer::Good(fixture("mode_sense10_device_config")),
            )
            .expect_out(
                &cdb::mode_select10(16),
                &[0, 0, 0, 0x10, 0, 0, 0, 8, 0x5A, 0, 0, 0, 0, 0, 0, 0],
                Answer::Good(vec![]),
            )
            .expect_out(&cdb::write6(5), b"hello", Answer::Good(vec![]))
            .with_timeout(timeouts::READ_WRITE)
            .expect_out(
                &cdb::write6(5),
                b"world",
                Answer::Check(fixture("sense_early_warning_write")),
            )
            .expect(
                &cdb::write_filemarks6(1, false),
                Answer::Check(fixture("sense_descriptor_early_warning")),
            )
            .expect_out(
                &cdb::write6(3),
                b"end",
                Answer::Check(fixture("sense_volume_overflow")),
            )
            .expect_out(
                &cdb::write6(3),
                b"wor",
                Answer::Check(fixture("sense_worm_overwrite")),
            );
        let mut d = LinuxDrive::new(fake).unwrap();
        assert_eq!(d.write_block(b"hello").unwrap(), Written::Ok);
        assert_eq!(d.write_block(b"world").unwrap(), Written::EarlyWarning);
        assert_eq!(d.write_filemarks(1).unwrap(), Written::EarlyWarning);
        assert!(matches!(
            d.write_block(b"end"),
            Err(Error::EndOfMedium { .. })
        ));
        match d.write_block(b"wor") {
            Err(e @ Error::WriteProtected { .. }) => assert_eq!(
                e.to_string(),
                "/dev/sg3: write protected: WORM medium, overwrite attempted"
            ),
            other => panic!("{other:?}"),
        }
        finish(d);
    }

    #[test]
    fn early_warning_with_residual_is_end_of_medium() {
        let mut ew = fixture("sense_early_warning_write");
        ew[3..7].copy_from_slice(&5u32.to_be_bytes());
        let fake = drive_script()
            .expect(&mode_sense_config(), Answer::Good(variable_mode_data()))
            .expect_out(&cdb::write6(5), b"hello", Answer::Check(ew));
        let mut d = LinuxDrive::new(fake).unwrap();
        assert!(matches!(
            d.write_block(b"hello"),
            Err(Error::EndOfMedium { .. })
        ));
        finish(d);
    }

    #[test]
    fn read_outcomes() {
        let block: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let fake = drive_script()
            // Already variable: no MODE SELECT.
            .expect(&mode_sense_config(), Answer::Good(variable_mode_data()))
            .expect(&cdb::read6(4096, false), Answer::Good(vec![7u8; 4096]))
            .expect(
                &cdb::read6(4096, false),
                Answer::CheckWithData(block.clone(), fixture("sense_ili_short_read")),
            )
            .expect(
                &cdb::read6(4096, false),
                Answer::CheckWithData(block.clone(), fixture("sense_descriptor_ili_short_read")),
            )
            .expect(
                &cdb::read6(4096, false),
                Answer::Check(fixture("sense_filemark_read")),
            )
            .expect(
                &cdb::read6(4096, false),
                Answer::Check(fixture("sense_ili_overlength_read")),
            )
            .expect(
                &cdb::read6(4096, false),
                Answer::Check(fixture("sense_blank_check_eod")),
            )
            .expect(
                &cdb::read6(4096, false),
                Answer::Check(fixture("sense_medium_error_read")),
            );
        let mut d = LinuxDrive::new(fake).unwrap();
        let mut buf = vec![0u8; 4096];
        assert_eq!(d.read_block(&mut buf).unwrap(), ReadOutcome::Block(4096));
        assert_eq!(buf[4095], 7);
        assert_eq!(d.read_block(&mut buf).unwrap(), ReadOutcome::Block(1000));
        assert_eq!(&buf[..1000], &block[..]);
        assert_eq!(d.read_block(&mut buf).unwrap(), ReadOutcome::Block(1000));
        assert_eq!(d.read_block(&mut buf).unwrap(), ReadOutcome::Filemark);
        match d.read_block(&mut buf) {
            Err(Error::BlockTooLarge { len, buf, .. }) => assert_eq!((len, buf), (8192, 4096)),
            other => panic!("{other:?}"),
        }
        assert_eq!(d.read_block(&mut buf).unwrap(), ReadOutcome::EndOfData);
        match d.read_block(&mut buf) {
            Err(e @ Error::Sense { .. }) => assert_eq!(
                e.to_string(),
                "/dev/sg3: READ(6) failed: MEDIUM ERROR (sense key 0x3), ASC/ASCQ 11/00 unrecovered read error"
            ),
            other => panic!("{other:?}"),
        }
        finish(d);
    }

    #[test]
    fn status_of_a_loaded_drive() {
        let fake = drive_script()
            // A cartridge was just loaded: the first command meets UNIT
            // ATTENTION and is repeated.
            .expect(
                &cdb::test_unit_ready(),
                Answer::Check(sense_fixed(6, 0x28, 0)),
            )
            .expect(&cdb::test_unit_ready(), Answer::Good(vec![]))
            .expect(
                &mode_sense_config(),
                Answer::Good(fixture("mode_sense10_device_config")),
            )
            .expect(
                &cdb::mode_sense10(0x1D, 0, PageControl::Current, true, 256),
                Answer::Good(fixture("mode_sense10_medium_config_worm")),
            )
            .expect(
                &cdb::read_position_long(),
                Answer::Good(fixture("read_position_long_eop")),
            )
            .expect(
                &cdb::read_attribute(0, 0, 4096),
                Answer::Good(fixture("read_attribute_values")),
            )
            .expect(
                &cdb::security_protocol_in(0x20, 0x0020, 8192),
                Answer::Good(fixture("spin_encryption_status_on")),
            )
            .expect(
                &cdb::log_sense(0x2E, 0, 1024),
                Answer::Good(fixture("log_sense_tape_alert")),
            );
        let mut d = LinuxDrive::new(fake).unwrap();
        let st = d.status().unwrap();
        assert_eq!(st.name, DEV);
        assert_eq!(st.product, "IBM ULTRIUM-HH8");
        assert_eq!(st.serial.as_deref(), Some("10WT012345"));
        assert!(st.ready);
        assert!(!st.cleaning);
        // WP from page 10h's header (clear); WORM from page 1Dh.
        assert!(!st.write_protected);
        assert!(st.worm);
        assert_eq!(st.block_size, 65536);
        assert!(st.compression);
        assert!(st.encryption);
        assert_eq!(
            st.position,
            Some(Position {
                block: 0x12345,
                file: 7,
                partition: 1,
                bop: false,
                eop: true
            })
        );
        assert_eq!(st.capacity, Some(11_445_248 << 20));
        assert_eq!(st.remaining, Some(11_444_224 << 20));
        assert_eq!(st.barcode.as_deref(), Some("CF0001L8"));
        let flags: Vec<u8> = st.alerts.iter().map(|a| a.flag).collect();
        assert_eq!(flags, [0x04, 0x14, 0x1E]);
        finish(d);
    }

    #[test]
    fn status_without_cartridge_and_optional_pages_refused() {
        let refused = sense_fixed(5, 0x24, 0);
        let fake = drive_script()
            .expect(
                &cdb::test_unit_ready(),
                Answer::Check(fixture("sense_not_ready_no_medium")),
            )
            .expect(
                &cdb::log_sense(0x2E, 0, 1024),
                Answer::Check(refused.clone()),
            )
            // Cleaning cartridge: not ready with 30/03.
            .expect(
                &cdb::test_unit_ready(),
                Answer::Check(sense_fixed(2, 0x30, 0x03)),
            )
            .expect(
                &cdb::log_sense(0x2E, 0, 1024),
                Answer::Good(fixture("log_sense_tape_alert")),
            );
        let mut d = LinuxDrive::new(fake).unwrap();
        let st = d.status().unwrap();
        assert!(!st.ready && !st.cleaning);
        assert_eq!(st.position, None);
        assert!(st.alerts.is_empty());
        let st = d.status().unwrap();
        assert!(!st.ready && st.cleaning);
        assert_eq!(st.alerts.len(), 3);
        finish(d);
    }

    #[test]
    fn load_unload_and_positioning() {
        let fake = drive_script()
            .expect(
                &cdb::load_unload(LoadAction::Load, false),
                Answer::Good(vec![]),
            )
            .with_timeout(timeouts::POSITIONING)
            .expect(
                &mode_sense_config(),
                Answer::Good(fixture("mode_sense10_device_config")),
            )
            .expect_out(
                &cdb::mode_select10(16),
                &[0, 0, 0, 0x10, 0, 0, 0, 8, 0x5A, 0, 0, 0, 0, 0, 0, 0],
                Answer::Good(vec![]),
            )
            .expect(
                &cdb::space16(SpaceCode::Filemarks, -2),
                Answer::Good(vec![]),
            )
            .with_timeout(timeouts::POSITIONING)
            .expect(&cdb::space16(SpaceCode::EndOfData, 0), Answer::Good(vec![]))
            .expect(
                &cdb::space16(SpaceCode::Blocks, 3),
                Answer::Check(fixture("sense_filemark_read")),
            )
            .expect(&cdb::locate16(1234, false), Answer::Good(vec![]))
            .expect(
                &cdb::read_position_long(),
                Answer::Good(fixture("read_position_long_bop")),
            )
            .expect(&cdb::rewind(false), Answer::Good(vec![]))
            .expect(
                &cdb::load_unload(LoadAction::Eject, false),
                Answer::Check(sense_fixed(5, 0x53, 0x02)),
            )
            .expect(
                &cdb::load_unload(LoadAction::Eject, false),
                Answer::Good(vec![]),
            )
            .expect(&cdb::test_unit_ready(), Answer::Status(0x18));
        let mut d = LinuxDrive::new(fake).unwrap();
        d.load().unwrap();
        d.space(SpaceOver::Filemarks(-2)).unwrap();
        d.space(SpaceOver::EndOfData).unwrap();
        match d.space(SpaceOver::Blocks(3)) {
            Err(Error::Sense { op, sense, .. }) => {
                assert_eq!(op, "SPACE(16)");
                assert!(sense.filemark);
            }
            other => panic!("{other:?}"),
        }
        d.locate(1234).unwrap();
        assert!(d.position().unwrap().bop);
        d.rewind().unwrap();
        match d.unload() {
            Err(e @ Error::Sense { .. }) => {
                assert!(e.to_string().contains("medium removal prevented"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        d.unload().unwrap();
        assert!(matches!(d.status(), Err(Error::Busy { .. })));
        finish(d);
    }

    #[test]
    fn encryption_on_and_off() {
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let key = DriveKey::new(key, b"coffer-k1".to_vec());
        let debug = format!("{key:?}");
        assert!(!debug.contains("0, 1, 2"), "key leaked in Debug: {debug}");
        let mut off = fixture("spin_encryption_status_on");
        off[5] = 0;
        off[6] = 0;
        let caps = cdb::security_protocol_in(0x20, 0x0010, 8192);
        let fake = drive_script()
            .expect(&caps, Answer::Good(fixture("spin_encryption_capabilities")))
            .expect_out(
                &cdb::security_protocol_out(0x20, 0x0010, 65),
                &fixture("spout_set_data_encryption"),
                Answer::Good(vec![]),
            )
            .expect(
                &cdb::security_protocol_in(0x20, 0x0020, 8192),
                Answer::Good(fixture("spin_encryption_status_on")),
            )
            .expect(&caps, Answer::Good(fixture("spin_encryption_capabilities")))
            .expect_out(
                &cdb::security_protocol_out(0x20, 0x0010, 20),
                &fixture("spout_disable_encryption"),
                Answer::Good(vec![]),
            )
            .expect(
                &cdb::security_protocol_in(0x20, 0x0020, 8192),
                Answer::Good(off),
            )
            // A drive that kept encrypting is an error, not silence.
            .expect(&caps, Answer::Good(fixture("spin_encryption_capabilities")))
            .expect_out(
                &cdb::security_protocol_out(0x20, 0x0010, 20),
                &fixture("spout_disable_encryption"),
                Answer::Good(vec![]),
            )
            .expect(
                &cdb::security_protocol_in(0x20, 0x0020, 8192),
                Answer::Good(fixture("spin_encryption_status_on")),
            );
        let mut d = LinuxDrive::new(fake).unwrap();
        d.set_encryption(Some(&key)).unwrap();
        d.set_encryption(None).unwrap();
        assert!(matches!(
            d.set_encryption(None),
            Err(Error::Unsupported { .. })
        ));
        finish(d);
    }

    #[test]
    fn encryption_unsupported() {
        let caps = cdb::security_protocol_in(0x20, 0x0010, 8192);
        let refused = sense_fixed(5, 0x24, 0);
        let key = DriveKey::new([9; 32], vec![]);
        let fake = drive_script()
            .expect(&caps, Answer::Check(refused.clone()))
            .expect(&caps, Answer::Check(refused));
        let mut d = LinuxDrive::new(fake).unwrap();
        d.set_encryption(None).unwrap();
        assert!(matches!(
            d.set_encryption(Some(&key)),
            Err(Error::Unsupported { .. })
        ));
        finish(d);
    }

    #[test]
    fn medium_attributes() {
        let fake = drive_script().expect(
            &cdb::read_attribute(0, 0, 4096),
            Answer::Good(fixture("read_attribute_values")),
        );
        let mut d = LinuxDrive::new(fake).unwrap();
        let m = d.medium_attributes().unwrap();
        assert_eq!(m.load_count, Some(42));
        assert_eq!(m.serial.as_deref(), Some("A1B2C3D4E5"));
        finish(d);
    }

    #[test]
    fn malformed_response_names_device_and_command() {
        let fake = drive_script().expect(&cdb::read_position_long(), Answer::Good(vec![0x80; 10]));
        let mut d = LinuxDrive::new(fake).unwrap();
        match d.position() {
            Err(e @ Error::Malformed { .. }) => {
                let m = e.to_string();
                assert!(m.starts_with("/dev/sg3: READ POSITION"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        finish(d);
    }

    // ---- changer ----

    const CHG: &str = "/dev/sg5";

    fn empty_report() -> Vec<u8> {
        vec![0u8; 8]
    }

    fn changer_script() -> Fake {
        Fake::new(CHG)
            .expect(
                &cdb::inquiry(None, 96),
                Answer::Good(fixture("inquiry_changer")),
            )
            .expect(
                &cdb::mode_sense10(0x1D, 0, PageControl::Current, true, 64),
                Answer::Good(fixture("mode_sense10_element_address")),
            )
    }

    fn inventory_steps(f: Fake) -> Fake {
        f.expect(
            &cdb::read_element_status(ElementType::Transport, true, 1, 1, 144),
            Answer::Good(empty_report()),
        )
        .expect(
            &cdb::read_element_status(ElementType::Storage, true, 0x1000, 24, 24 * 128 + 16),
            Answer::Good(fixture("read_element_status_storage")),
        )
        .expect(
            &cdb::read_element_status(ElementType::ImportExport, true, 0x10, 2, 272),
            Answer::Good(empty_report()),
        )
        .expect(
            &cdb::read_element_status(ElementType::Drive, true, 0x100, 2, 272),
            Answer::Good(fixture("read_element_status_drives")),
        )
    }

    #[test]
    fn changer_inventory_and_moves() {
        let f = inventory_steps(changer_script());
        // load_barcode: inventory, then one move from slot 1000h to drive 1.
        let f = inventory_steps(f)
            .expect(&cdb::move_medium(1, 0x1000, 0x101), Answer::Good(vec![]))
            .with_timeout(timeouts::MOVE_MEDIUM)
            .expect(
                &cdb::move_medium(1, 0x1001, 0x1000),
                Answer::Check(sense_fixed(5, 0x3B, 0x0D)),
            )
            .expect(&cdb::initialize_element_status(), Answer::Good(vec![]))
            .with_timeout(timeouts::INITIALIZE_ELEMENT_STATUS);
        let mut c = LinuxChanger::new(f).unwrap();
        let inv = c.inventory().unwrap();
        assert_eq!(inv.drives.len(), 2);
        assert_eq!(inv.slots.len(), 3);
        assert!(inv.ie_slots.is_empty() && inv.transports.is_empty());
        let d0 = &inv.drives[0];
        assert_eq!(
            (d0.full, d0.barcode.as_deref(), d0.source),
            (true, Some("CF0002L8"), Some(0x1001))
        );
        assert_eq!(inv.find("CF0001L8").unwrap().kind, ElementKind::Storage);
        c.load_barcode("CF0001L8", 1).unwrap();
        match c.move_medium(0x1001, 0x1000) {
            Err(e @ Error::Changer { .. }) => assert_eq!(
                e.to_string(),
                "/dev/sg5: MOVE MEDIUM refused: medium destination element full"
            ),
            other => panic!("{other:?}"),
        }
        c.rescan().unwrap();
        assert_eq!(c.into_transport().remaining(), 0);
    }

    #[test]
    fn changer_rereads_a_report_cut_short() {
        // One storage element in the layout: 144 bytes asked for, but the
        // changer has 52-byte descriptors and reports more than fits.
        let mut layout = fixture("mode_sense10_element_address");
        // storage count (page byte 8-9, after the 8-byte header) = 1;
        // no transport, import/export or drives.
        layout[8 + 4..8 + 6].copy_from_slice(&[0, 0]);
        layout[8 + 8..8 + 10].copy_from_slice(&[0, 1]);
        layout[8 + 12..8 + 14].copy_from_slice(&[0, 0]);
        layout[8 + 16..8 + 18].copy_from_slice(&[0, 0]);
        let mut big = fixture("read_element_status_storage");
        // Pad the report to 200 bytes after the header.
        big[5..8].copy_from_slice(&[0, 0, 200]);
        big[8 + 5..8 + 8].copy_from_slice(&[0, 0, 192]);
        big.resize(208, 0);
        let f = Fake::new(CHG)
            .expect(
                &cdb::inquiry(None, 96),
                Answer::Good(fixture("inquiry_changer")),
            )
            .expect(
                &cdb::mode_sense10(0x1D, 0, PageControl::Current, true, 64),
                Answer::Good(layout),
            )
            .expect(
                &cdb::read_element_status(ElementType::Storage, true, 0x1000, 1, 144),
                Answer::Good(big.clone()),
            )
            .expect(
                &cdb::read_element_status(ElementType::Storage, true, 0x1000, 1, 208),
                Answer::Good(big),
            )
            // No picker reported: MOVE MEDIUM names address 0.
            .expect(&cdb::move_medium(0, 0x1000, 0x1002), Answer::Good(vec![]));
        let mut c = LinuxChanger::new(f).unwrap();
        let inv = c.inventory().unwrap();
        assert_eq!(inv.slots.len(), 3);
        c.move_medium(0x1000, 0x1002).unwrap();
        assert_eq!(c.into_transport().remaining(), 0);
    }

    #[test]
    fn changer_open_checks_device_type() {
        let f = Fake::new(CHG).expect(
            &cdb::inquiry(None, 96),
            Answer::Good(fixture("inquiry_tape")),
        );
        assert!(matches!(
            LinuxChanger::new(f),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn sense_that_does_not_parse_is_malformed() {
        let fake = drive_script().expect(&cdb::rewind(false), Answer::Check(vec![0x00, 0x01]));
        let mut d = LinuxDrive::new(fake).unwrap();
        assert!(matches!(d.rewind(), Err(Error::Malformed { .. })));
        finish(d);
        let _ = encryption::AES256_GCM;
    }
}
