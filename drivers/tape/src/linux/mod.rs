//! The Linux backend: tape drives and changers through the SCSI generic
//! driver (`/dev/sgN`) and its `SG_IO` ioctl.
//!
//! The drive and changer logic ([`LinuxDrive`], [`LinuxChanger`]) is
//! generic over a [`ScsiTransport`], which executes one CDB and reports the
//! SCSI status, sense data and residual. [`SgDevice`] is the real transport;
//! the tests drive the same logic with a scripted fake, so everything but
//! the ioctl itself runs without hardware.
//!
//! Commands go through one runner ([`Scsi`]) that retries UNIT ATTENTION
//! (the command was not executed: a cartridge was changed or the bus was
//! reset), turns BUSY and RESERVATION CONFLICT into [`Error::Busy`], and
//! classifies CHECK CONDITION sense data ([`crate::scsi::classify`]).

mod changer;
mod drive;
mod sg;

#[cfg(test)]
mod fake;

use std::path::PathBuf;
use std::time::Duration;

pub use changer::LinuxChanger;
pub use drive::LinuxDrive;
pub use sg::SgDevice;

use crate::scsi::{Classified, Sense, cdb, classify, sense};
use crate::{Error, Library, MediaChanger, Result, TapeDrive};

/// The direction and buffer of a command's data transfer.
#[derive(Debug)]
pub enum DataDir<'a> {
    /// No data.
    None,
    /// Data from the device into this buffer.
    FromDevice(&'a mut [u8]),
    /// Data from this buffer to the device.
    ToDevice(&'a [u8]),
}

impl DataDir<'_> {
    /// The same transfer, borrowed again (for a retry).
    pub fn reborrow(&mut self) -> DataDir<'_> {
        match self {
            DataDir::None => DataDir::None,
            DataDir::FromDevice(b) => DataDir::FromDevice(b),
            DataDir::ToDevice(b) => DataDir::ToDevice(b),
        }
    }

    /// The buffer's length.
    pub fn len(&self) -> usize {
        match self {
            DataDir::None => 0,
            DataDir::FromDevice(b) => b.len(),
            DataDir::ToDevice(b) => b.len(),
        }
    }

    /// No data is transferred.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// SCSI status GOOD.
pub const STATUS_GOOD: u8 = 0x00;
/// SCSI status CHECK CONDITION (sense data follows).
pub const STATUS_CHECK_CONDITION: u8 = 0x02;
/// SCSI status CONDITION MET.
pub const STATUS_CONDITION_MET: u8 = 0x04;
/// SCSI status BUSY.
pub const STATUS_BUSY: u8 = 0x08;
/// SCSI status RESERVATION CONFLICT.
pub const STATUS_RESERVATION_CONFLICT: u8 = 0x18;
/// SCSI status TASK SET FULL.
pub const STATUS_TASK_SET_FULL: u8 = 0x28;

/// What a device answered to one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiResult {
    /// SCSI status byte.
    pub status: u8,
    /// Sense data, with CHECK CONDITION.
    pub sense: Vec<u8>,
    /// Bytes of the data buffer not transferred.
    pub residual: usize,
}

/// Executes SCSI commands on one device.
pub trait ScsiTransport: Send {
    /// The device, for messages (`/dev/sg3`).
    fn device(&self) -> &str;

    /// Executes `cdb`, moving data per `data`, waiting at most `timeout`.
    /// Returns the SCSI status, sense data and residual of a command the
    /// device completed (GOOD or not); transport failures (host adapter,
    /// driver, timeout, the ioctl itself) are errors.
    fn execute(&mut self, cdb: &[u8], data: DataDir<'_>, timeout: Duration) -> Result<ScsiResult>;
}

/// Command timeouts.
pub mod timeouts {
    use std::time::Duration;

    /// Status and inquiry commands.
    pub const SHORT: Duration = Duration::from_secs(60);
    /// READ and WRITE of one block.
    pub const READ_WRITE: Duration = Duration::from_secs(60);
    /// WRITE FILEMARKS without IMMED flushes the buffer to tape.
    pub const WRITE_FILEMARKS: Duration = Duration::from_secs(5 * 60);
    /// LOCATE, SPACE, REWIND and LOAD UNLOAD can cross the whole tape.
    pub const POSITIONING: Duration = Duration::from_secs(15 * 60);
    /// MOVE MEDIUM.
    pub const MOVE_MEDIUM: Duration = Duration::from_secs(5 * 60);
    /// INITIALIZE ELEMENT STATUS scans every barcode in the library.
    pub const INITIALIZE_ELEMENT_STATUS: Duration = Duration::from_secs(30 * 60);
}

/// How often a command that met UNIT ATTENTION is tried again.
const UNIT_ATTENTION_RETRIES: usize = 3;

/// What a command came back with, once transport errors and retries are
/// dealt with.
#[derive(Debug)]
pub(crate) struct Reply {
    /// Bytes transferred.
    pub transferred: usize,
    /// With CHECK CONDITION: the sense data and its meaning.
    pub check: Option<(Sense, Classified)>,
}

/// The command runner over a transport.
pub(crate) struct Scsi<T: ScsiTransport> {
    pub t: T,
}

impl<T: ScsiTransport> Scsi<T> {
    pub(crate) fn device(&self) -> &str {
        self.t.device()
    }

    /// INQUIRY, refusing a device whose peripheral type is not `expect`
    /// (`what` names that type in the error).
    pub(crate) fn inquire_expecting(
        &mut self,
        expect: u8,
        op: &'static str,
        what: &str,
    ) -> Result<crate::scsi::ssc::Inquiry> {
        const INQUIRY_LEN: u16 = 96;
        let dev = self.device().to_string();
        let data = self.read_data(
            &cdb::inquiry(None, INQUIRY_LEN),
            usize::from(INQUIRY_LEN),
            timeouts::SHORT,
        )?;
        let inquiry = crate::scsi::ssc::parse_inquiry(&data).map_err(|e| e.on(&dev))?;
        if inquiry.device_type != expect {
            return Err(Error::Unsupported {
                device: dev,
                op,
                reason: format!(
                    "peripheral device type {} ({} {}) is not {what}",
                    inquiry.device_type, inquiry.vendor, inquiry.product
                ),
            });
        }
        Ok(inquiry)
    }

    /// Runs a command; CHECK CONDITION is returned classified.
    pub(crate) fn run(
        &mut self,
        cdb: &[u8],
        mut data: DataDir<'_>,
        timeout: Duration,
    ) -> Result<Reply> {
        let op = cdb::op_name(cdb);
        let len = data.len();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let r = self.t.execute(cdb, data.reborrow(), timeout)?;
            let transferred = len.saturating_sub(r.residual);
            match r.status {
                STATUS_GOOD | STATUS_CONDITION_MET => {
                    return Ok(Reply {
                        transferred,
                        check: None,
                    });
                }
                STATUS_CHECK_CONDITION => {
                    let sense = Sense::parse(&r.sense).map_err(|e| e.on(self.t.device()))?;
                    if sense.key == sense::UNIT_ATTENTION && attempt <= UNIT_ATTENTION_RETRIES {
                        tracing::debug!(device = self.t.device(), op, %sense, "unit attention, retrying");
                        continue;
                    }
                    let class = classify(self.t.device(), op, &sense);
                    return Ok(Reply {
                        transferred,
                        check: Some((sense, class)),
                    });
                }
                STATUS_BUSY | STATUS_RESERVATION_CONFLICT | STATUS_TASK_SET_FULL => {
                    return Err(Error::Busy {
                        device: self.t.device().to_string(),
                    });
                }
                other => {
                    return Err(Error::io(
                        op,
                        self.t.device(),
                        std::io::Error::other(format!("unexpected SCSI status {other:#04x}")),
                    ));
                }
            }
        }
    }

    /// Runs a command that must simply succeed: NO SENSE or RECOVERED ERROR
    /// without a condition, or early warning (positioning past it is not an
    /// error), count as success; anything else is the error. Returns the
    /// bytes transferred.
    pub(crate) fn run_ok(
        &mut self,
        cdb: &[u8],
        data: DataDir<'_>,
        timeout: Duration,
    ) -> Result<usize> {
        let r = self.run(cdb, data, timeout)?;
        match r.check {
            None | Some((_, Classified::Completed)) | Some((_, Classified::EarlyWarning)) => {
                Ok(r.transferred)
            }
            Some((_, Classified::Failed(e))) => Err(e),
            Some((sense, Classified::Filemark | Classified::IncorrectLength { .. })) => {
                Err(Error::Sense {
                    device: self.t.device().to_string(),
                    op: cdb::op_name(cdb),
                    sense,
                })
            }
        }
    }

    /// Runs a command that reads data; returns what was transferred.
    pub(crate) fn read_data(
        &mut self,
        cdb: &[u8],
        allocation: usize,
        timeout: Duration,
    ) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; allocation];
        let n = self.run_ok(cdb, DataDir::FromDevice(&mut buf), timeout)?;
        buf.truncate(n);
        Ok(buf)
    }
}

/// ILLEGAL REQUEST: the device does not support the command or page asked
/// for. Optional queries treat it as "not known".
pub(crate) fn unsupported<V>(r: Result<V>) -> Result<Option<V>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(Error::Sense { sense, .. }) if sense.key == sense::ILLEGAL_REQUEST => Ok(None),
        Err(e) => Err(e),
    }
}

/// A SCSI tape library: a changer and its drives, each a SCSI generic
/// device.
pub struct LinuxLibrary {
    changer: PathBuf,
    drives: Vec<PathBuf>,
}

impl LinuxLibrary {
    /// A library from its changer's and drives' SCSI generic devices, the
    /// drives in the changer's drive order. Nothing is opened until asked
    /// for.
    pub fn new(changer: PathBuf, drives: Vec<PathBuf>) -> LinuxLibrary {
        LinuxLibrary { changer, drives }
    }
}

impl Library for LinuxLibrary {
    fn changer(&mut self) -> Result<Box<dyn MediaChanger>> {
        Ok(Box::new(LinuxChanger::open(&self.changer)?))
    }

    fn drive(&mut self, index: u16) -> Result<Box<dyn TapeDrive>> {
        let path = self
            .drives
            .get(usize::from(index))
            .ok_or_else(|| Error::Changer {
                device: self.changer.display().to_string(),
                reason: format!(
                    "no drive {index}: the library is configured with {}",
                    self.drives.len()
                ),
            })?;
        Ok(Box::new(LinuxDrive::open(path)?))
    }

    fn drive_count(&self) -> u16 {
        u16::try_from(self.drives.len()).unwrap_or(u16::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_counts_and_rejects_missing_drive() {
        let mut lib = LinuxLibrary::new(
            PathBuf::from("/nonexistent/sg9"),
            vec![PathBuf::from("/nonexistent/sg10")],
        );
        assert_eq!(lib.drive_count(), 1);
        match lib.drive(3) {
            Err(Error::Changer { reason, .. }) => assert!(reason.contains("no drive 3")),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened a drive that is not configured"),
        }
        match lib.drive(0) {
            Err(e @ Error::Io { .. }) => {
                assert!(e.to_string().contains("/nonexistent/sg10"), "{e}")
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened a missing device"),
        }
        assert!(matches!(lib.changer(), Err(Error::Io { .. })));
    }
}
