//! A tape drive over a [`ScsiTransport`].

use std::path::Path;

use super::{DataDir, Scsi, ScsiTransport, SgDevice, timeouts, unsupported};
use crate::scsi::Classified;
use crate::scsi::cdb::{self, LoadAction, PageControl, SpaceCode};
use crate::scsi::encryption::{self, KadKind};
use crate::scsi::ssc::{self, Inquiry, ModeSense};
use crate::{
    DriveKey, DriveStatus, Error, MediumAttributes, Position, ReadOutcome, Result, SpaceOver,
    TapeAlert, TapeDrive, Written,
};

const VPD_LEN: u16 = 255;
const MODE_SENSE_LEN: u16 = 256;
const LOG_SENSE_LEN: u16 = 1024;
const ATTRIBUTE_LEN: u32 = 4096;
const SPIN_LEN: u32 = 8192;

/// A tape drive through SCSI.
pub struct LinuxDrive<T: ScsiTransport = SgDevice> {
    scsi: Scsi<T>,
    inquiry: Inquiry,
    serial: Option<String>,
    /// Variable-block mode has been set since the cartridge was loaded.
    configured: bool,
}

impl LinuxDrive<SgDevice> {
    /// Opens (and locks) the drive's SCSI generic device.
    pub fn open(path: &Path) -> Result<LinuxDrive<SgDevice>> {
        LinuxDrive::new(SgDevice::open(path)?)
    }
}

impl<T: ScsiTransport> LinuxDrive<T> {
    /// A drive on `transport`: checks with INQUIRY that it is a tape drive
    /// and reads its serial number.
    pub fn new(transport: T) -> Result<LinuxDrive<T>> {
        let mut scsi = Scsi { t: transport };
        let dev = scsi.device().to_string();
        let inquiry = scsi.inquire_expecting(ssc::TYPE_TAPE, "open tape drive", "a tape drive")?;
        let serial = unsupported(scsi.read_data(
            &cdb::inquiry(Some(0x80), VPD_LEN),
            usize::from(VPD_LEN),
            timeouts::SHORT,
        ))?
        .map(|d| ssc::parse_unit_serial(&d).map_err(|e| e.on(&dev)))
        .transpose()?
        .filter(|s| !s.is_empty());
        tracing::debug!(device = %dev, vendor = %inquiry.vendor, product = %inquiry.product, serial = ?serial, "tape drive opened");
        Ok(LinuxDrive {
            scsi,
            inquiry,
            serial,
            configured: false,
        })
    }

    /// The transport, handed back.
    pub fn into_transport(self) -> T {
        self.scsi.t
    }

    fn dev(&self) -> String {
        self.scsi.device().to_string()
    }

    fn mode_sense(&mut self, page: u8, dbd: bool) -> Result<ModeSense> {
        let data = self.scsi.read_data(
            &cdb::mode_sense10(page, 0, PageControl::Current, dbd, MODE_SENSE_LEN),
            usize::from(MODE_SENSE_LEN),
            timeouts::SHORT,
        )?;
        ssc::parse_mode_sense10(&data).map_err(|e| e.on(self.scsi.device()))
    }

    /// Sets variable-block mode (block length 0) unless already set.
    fn configure(&mut self) -> Result<()> {
        if self.configured {
            return Ok(());
        }
        let current = self.mode_sense(ssc::PAGE_DEVICE_CONFIGURATION, false)?;
        if current.block_length != Some(0) {
            let params = ssc::mode_select_block_size(&current, 0, None)
                .map_err(|e| e.on(self.scsi.device()))?;
            let len = u16::try_from(params.len()).unwrap_or(u16::MAX);
            self.scsi.run_ok(
                &cdb::mode_select10(len),
                DataDir::ToDevice(&params),
                timeouts::SHORT,
            )?;
            tracing::debug!(device = %self.dev(), "variable-block mode set");
        }
        self.configured = true;
        Ok(())
    }

    /// TapeAlert flags from LOG SENSE page 2Eh. Per the TapeAlert
    /// specification a drive clears the flags once this page is read, so
    /// each alert is reported by one `status()` call only; callers keep it.
    fn tape_alerts(&mut self) -> Result<Option<Vec<TapeAlert>>> {
        let data = unsupported(self.scsi.read_data(
            &cdb::log_sense(cdb::LOG_PAGE_TAPE_ALERT, 0, LOG_SENSE_LEN),
            usize::from(LOG_SENSE_LEN),
            timeouts::SHORT,
        ))?;
        data.map(|d| ssc::parse_tape_alerts(&d).map_err(|e| e.on(self.scsi.device())))
            .transpose()
    }

    fn attributes(&mut self) -> Result<MediumAttributes> {
        let mut alloc = ATTRIBUTE_LEN;
        loop {
            let data = self.scsi.read_data(
                &cdb::read_attribute(0, 0, alloc),
                alloc as usize,
                timeouts::SHORT,
            )?;
            let (available, attrs) =
                ssc::parse_attribute_values(&data).map_err(|e| e.on(self.scsi.device()))?;
            let needed = available.saturating_add(4);
            if needed > alloc && alloc == ATTRIBUTE_LEN {
                alloc = needed.min(0x10_0000);
                continue;
            }
            return Ok(ssc::medium_attributes(&attrs));
        }
    }

    fn encryption_status(&mut self) -> Result<encryption::EncryptionStatus> {
        let data = self.scsi.read_data(
            &cdb::security_protocol_in(
                cdb::PROTOCOL_TAPE_ENCRYPTION,
                encryption::PAGE_STATUS,
                SPIN_LEN,
            ),
            SPIN_LEN as usize,
            timeouts::SHORT,
        )?;
        encryption::parse_status(&data).map_err(|e| e.on(self.scsi.device()))
    }

    /// The outcome of a WRITE or WRITE FILEMARKS.
    fn written(&mut self, op: &'static str, cdb: &[u8], data: DataDir<'_>) -> Result<Written> {
        let timeout = if op == "WRITE(6)" {
            timeouts::READ_WRITE
        } else {
            timeouts::WRITE_FILEMARKS
        };
        let r = self.scsi.run(cdb, data, timeout)?;
        match r.check {
            None | Some((_, Classified::Completed)) => Ok(Written::Ok),
            // Early warning: written, unless the residual says some of it
            // was not (then the medium is full).
            Some((sense, Classified::EarlyWarning)) => match sense.information {
                Some(residual) if residual != 0 => Err(Error::EndOfMedium { device: self.dev() }),
                _ => {
                    tracing::info!(device = %self.dev(), op, "early warning: end of medium is near");
                    Ok(Written::EarlyWarning)
                }
            },
            Some((_, Classified::Failed(e))) => Err(e),
            Some((sense, _)) => Err(Error::Sense {
                device: self.dev(),
                op,
                sense,
            }),
        }
    }
}

impl<T: ScsiTransport> TapeDrive for LinuxDrive<T> {
    fn name(&self) -> &str {
        self.scsi.device()
    }

    fn status(&mut self) -> Result<DriveStatus> {
        let mut st = DriveStatus {
            name: self.dev(),
            product: format!("{} {}", self.inquiry.vendor, self.inquiry.product),
            serial: self.serial.clone(),
            ..DriveStatus::default()
        };
        let tur = self
            .scsi
            .run(&cdb::test_unit_ready(), DataDir::None, timeouts::SHORT)?;
        match tur.check {
            None | Some((_, Classified::Completed | Classified::EarlyWarning)) => st.ready = true,
            Some((sense, Classified::Failed(Error::NotReady { .. }))) => {
                st.cleaning = sense.cleaning_cartridge();
            }
            Some((_, Classified::Failed(e))) => return Err(e),
            Some((sense, _)) => {
                return Err(Error::Sense {
                    device: self.dev(),
                    op: "TEST UNIT READY",
                    sense,
                });
            }
        }
        if st.ready {
            let mode = self.mode_sense(ssc::PAGE_DEVICE_CONFIGURATION, false)?;
            st.write_protected = mode.write_protected;
            st.block_size = mode.block_length.unwrap_or(0);
            st.compression = mode
                .compression()
                .map_err(|e| e.on(self.scsi.device()))?
                .unwrap_or(false);
            // Medium Configuration page: LTO-3 and later.
            st.worm = match unsupported(self.mode_sense(ssc::PAGE_1D, true))? {
                Some(m) => m
                    .worm()
                    .map_err(|e| e.on(self.scsi.device()))?
                    .unwrap_or(false),
                None => false,
            };
            st.position = Some(self.position()?);
            if let Some(m) = unsupported(self.attributes())? {
                const MIB: u64 = 1 << 20;
                st.capacity = m.capacity_mib.map(|c| c.saturating_mul(MIB));
                st.remaining = m.remaining_mib.map(|c| c.saturating_mul(MIB));
                st.barcode = m.barcode;
            }
            st.encryption = unsupported(self.encryption_status())?
                .map(|s| s.encrypting())
                .unwrap_or(false);
        }
        st.alerts = self.tape_alerts()?.unwrap_or_default();
        Ok(st)
    }

    fn load(&mut self) -> Result<()> {
        self.configured = false;
        self.scsi.run_ok(
            &cdb::load_unload(LoadAction::Load, false),
            DataDir::None,
            timeouts::POSITIONING,
        )?;
        self.configure()
    }

    fn unload(&mut self) -> Result<()> {
        self.configured = false;
        self.scsi.run_ok(
            &cdb::load_unload(LoadAction::Eject, false),
            DataDir::None,
            timeouts::POSITIONING,
        )?;
        Ok(())
    }

    fn rewind(&mut self) -> Result<()> {
        self.scsi
            .run_ok(&cdb::rewind(false), DataDir::None, timeouts::POSITIONING)?;
        Ok(())
    }

    fn read_block(&mut self, buf: &mut [u8]) -> Result<ReadOutcome> {
        self.configure()?;
        let len = buf.len().min(cdb::MAX_TRANSFER_6 as usize);
        let buf = &mut buf[..len];
        let r = self.scsi.run(
            &cdb::read6(len as u32, false),
            DataDir::FromDevice(buf),
            timeouts::READ_WRITE,
        )?;
        match r.check {
            None | Some((_, Classified::Completed | Classified::EarlyWarning)) => {
                Ok(ReadOutcome::Block(r.transferred))
            }
            Some((_, Classified::Filemark)) => Ok(ReadOutcome::Filemark),
            Some((_, Classified::Failed(Error::BlankCheck { .. }))) => Ok(ReadOutcome::EndOfData),
            Some((
                _,
                Classified::IncorrectLength {
                    residual: Some(residual),
                },
            )) => {
                if residual < 0 {
                    Err(Error::BlockTooLarge {
                        device: self.dev(),
                        len: len.saturating_add(residual.unsigned_abs() as usize),
                        buf: len,
                    })
                } else {
                    match usize::try_from(residual) {
                        Ok(res) if res <= len => Ok(ReadOutcome::Block(len - res)),
                        _ => Err(Error::Malformed {
                            device: self.dev(),
                            what: "READ(6) sense data",
                            reason: format!("residual {residual} exceeds the {len}-byte request"),
                        }),
                    }
                }
            }
            Some((sense, Classified::IncorrectLength { residual: None })) => {
                Err(Error::Malformed {
                    device: self.dev(),
                    what: "READ(6) sense data",
                    reason: format!("incorrect length without a residual: {sense}"),
                })
            }
            Some((_, Classified::Failed(e))) => Err(e),
        }
    }

    fn write_block(&mut self, data: &[u8]) -> Result<Written> {
        self.configure()?;
        if data.len() > cdb::MAX_TRANSFER_6 as usize {
            return Err(Error::Unsupported {
                device: self.dev(),
                op: "WRITE(6)",
                reason: format!(
                    "a block of {} bytes is larger than the {}-byte maximum",
                    data.len(),
                    cdb::MAX_TRANSFER_6
                ),
            });
        }
        self.written(
            "WRITE(6)",
            &cdb::write6(data.len() as u32),
            DataDir::ToDevice(data),
        )
    }

    fn write_filemarks(&mut self, count: u32) -> Result<Written> {
        if count > cdb::MAX_TRANSFER_6 {
            return Err(Error::Unsupported {
                device: self.dev(),
                op: "WRITE FILEMARKS(6)",
                reason: format!("{count} filemarks at once"),
            });
        }
        self.written(
            "WRITE FILEMARKS(6)",
            &cdb::write_filemarks6(count, false),
            DataDir::None,
        )
    }

    fn space(&mut self, over: SpaceOver) -> Result<()> {
        let c = match over {
            SpaceOver::Blocks(n) => cdb::space16(SpaceCode::Blocks, n),
            SpaceOver::Filemarks(n) => cdb::space16(SpaceCode::Filemarks, n),
            SpaceOver::EndOfData => cdb::space16(SpaceCode::EndOfData, 0),
        };
        self.scsi.run_ok(&c, DataDir::None, timeouts::POSITIONING)?;
        Ok(())
    }

    fn locate(&mut self, block: u64) -> Result<()> {
        self.scsi.run_ok(
            &cdb::locate16(block, false),
            DataDir::None,
            timeouts::POSITIONING,
        )?;
        Ok(())
    }

    fn position(&mut self) -> Result<Position> {
        let data = self
            .scsi
            .read_data(&cdb::read_position_long(), 32, timeouts::SHORT)?;
        ssc::parse_read_position_long(&data).map_err(|e| e.on(self.scsi.device()))
    }

    fn set_encryption(&mut self, key: Option<&DriveKey>) -> Result<()> {
        let caps = unsupported(self.scsi.read_data(
            &cdb::security_protocol_in(
                cdb::PROTOCOL_TAPE_ENCRYPTION,
                encryption::PAGE_CAPABILITIES,
                SPIN_LEN,
            ),
            SPIN_LEN as usize,
            timeouts::SHORT,
        ))?;
        let Some(caps) = caps else {
            // No encryption support: nothing to turn off.
            return match key {
                None => Ok(()),
                Some(_) => Err(Error::Unsupported {
                    device: self.dev(),
                    op: "set encryption",
                    reason:
                        "the drive has no tape data encryption (SECURITY PROTOCOL IN 20h refused)"
                            .into(),
                }),
            };
        };
        let page = match key {
            Some(key) => {
                let algs =
                    encryption::parse_capabilities(&caps).map_err(|e| e.on(self.scsi.device()))?;
                let alg = encryption::pick_aes256_gcm(&algs).ok_or_else(|| Error::Unsupported {
                    device: self.dev(),
                    op: "set encryption",
                    reason: "the drive offers no AES-256-GCM algorithm it runs itself".into(),
                })?;
                let kad = if key.kad.is_empty() {
                    None
                } else if key.kad.len() > usize::from(alg.max_ukad) {
                    return Err(Error::Unsupported {
                        device: self.dev(),
                        op: "set encryption",
                        reason: format!(
                            "key descriptor of {} bytes, the drive records at most {}",
                            key.kad.len(),
                            alg.max_ukad
                        ),
                    });
                } else {
                    Some((KadKind::Unauthenticated, key.kad.as_slice()))
                };
                tracing::info!(device = %self.dev(), algorithm_index = alg.index, kad_len = key.kad.len(), "drive encryption on");
                encryption::set_data_encryption_page(alg.index, key.bytes(), kad)
            }
            None => {
                tracing::info!(device = %self.dev(), "drive encryption off");
                zeroize::Zeroizing::new(encryption::disable_encryption_page())
            }
        };
        let len = u32::try_from(page.len()).unwrap_or(u32::MAX);
        self.scsi.run_ok(
            &cdb::security_protocol_out(
                cdb::PROTOCOL_TAPE_ENCRYPTION,
                encryption::PAGE_SET_DATA_ENCRYPTION,
                len,
            ),
            DataDir::ToDevice(&page),
            timeouts::SHORT,
        )?;
        drop(page);
        let status = self.encryption_status()?;
        if status.encrypting() != key.is_some() {
            return Err(Error::Unsupported {
                device: self.dev(),
                op: "set encryption",
                reason: format!(
                    "the drive reports encryption mode {} and decryption mode {} after the change",
                    status.encryption_mode, status.decryption_mode
                ),
            });
        }
        Ok(())
    }

    fn medium_attributes(&mut self) -> Result<MediumAttributes> {
        self.attributes()
    }
}
