//! The SCSI generic device and its `SG_IO` ioctl (Linux `<scsi/sg.h>`).

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::{DataDir, ScsiResult, ScsiTransport};
use crate::scsi::cdb;
use crate::{Error, Result};

/// `SG_IO` request number.
const SG_IO: libc::c_ulong = 0x2285;
/// `interface_id` of the sg v3 interface.
const SG_INTERFACE_ID: libc::c_int = b'S' as libc::c_int;
const SG_DXFER_NONE: libc::c_int = -1;
const SG_DXFER_TO_DEV: libc::c_int = -2;
const SG_DXFER_FROM_DEV: libc::c_int = -3;
/// Sense buffer size.
const SENSE_LEN: usize = 64;
/// `driver_status` low nibble: sense data is valid.
const DRIVER_SENSE: u16 = 0x08;

/// `struct sg_io_hdr` (sg v3 interface), field for field.
#[repr(C)]
struct SgIoHdr {
    interface_id: libc::c_int,
    dxfer_direction: libc::c_int,
    cmd_len: libc::c_uchar,
    mx_sb_len: libc::c_uchar,
    iovec_count: libc::c_ushort,
    dxfer_len: libc::c_uint,
    dxferp: *mut libc::c_void,
    cmdp: *const libc::c_uchar,
    sbp: *mut libc::c_uchar,
    timeout: libc::c_uint,
    flags: libc::c_uint,
    pack_id: libc::c_int,
    usr_ptr: *mut libc::c_void,
    status: libc::c_uchar,
    masked_status: libc::c_uchar,
    msg_status: libc::c_uchar,
    sb_len_wr: libc::c_uchar,
    host_status: libc::c_ushort,
    driver_status: libc::c_ushort,
    resid: libc::c_int,
    duration: libc::c_uint,
    info: libc::c_uint,
}

/// A SCSI generic device (`/dev/sgN`), opened read-write and locked
/// exclusively with `flock`, so that two processes never drive the same
/// device; the lock goes with the file when it is dropped.
pub struct SgDevice {
    file: Flock<File>,
    name: String,
}

impl std::fmt::Debug for SgDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SgDevice")
            .field("name", &self.name)
            .finish()
    }
}

impl SgDevice {
    /// Opens and locks `path`. [`Error::Busy`] when another process holds
    /// the lock.
    pub fn open(path: &Path) -> Result<SgDevice> {
        let name = path.display().to_string();
        // O_NONBLOCK: do not wait in open() for a device another process
        // opened exclusively; SG_IO itself always blocks until the command
        // completes.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| Error::io("open", &name, e))?;
        let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(f) => f,
            Err((_, Errno::EWOULDBLOCK)) => return Err(Error::Busy { device: name }),
            Err((_, e)) => return Err(Error::io("flock", &name, std::io::Error::from(e))),
        };
        Ok(SgDevice { file, name })
    }

    /// Issues `SG_IO`. The only unsafe code of the crate.
    #[allow(unsafe_code)]
    fn sg_io(&mut self, cdb: &[u8], data: DataDir<'_>, timeout: Duration) -> Result<ScsiResult> {
        let op = cdb::op_name(cdb);
        let io_err = |msg: String| Error::io(op, &self.name, std::io::Error::other(msg));
        let cmd_len = u8::try_from(cdb.len())
            .ok()
            .filter(|&n| (6..=16).contains(&n))
            .ok_or_else(|| io_err(format!("CDB of {} bytes", cdb.len())))?;
        let (direction, ptr, len): (libc::c_int, *mut libc::c_void, usize) = match data {
            DataDir::None => (SG_DXFER_NONE, std::ptr::null_mut(), 0),
            DataDir::FromDevice(b) => (SG_DXFER_FROM_DEV, b.as_mut_ptr().cast(), b.len()),
            // The kernel only reads a TO_DEV buffer; the pointer is mutable
            // in the C struct only.
            DataDir::ToDevice(b) => (SG_DXFER_TO_DEV, b.as_ptr().cast_mut().cast(), b.len()),
        };
        let dxfer_len = libc::c_uint::try_from(len)
            .map_err(|_| io_err(format!("transfer of {len} bytes is too large")))?;
        let mut sense = [0u8; SENSE_LEN];
        let mut hdr = SgIoHdr {
            interface_id: SG_INTERFACE_ID,
            dxfer_direction: direction,
            cmd_len,
            mx_sb_len: SENSE_LEN as libc::c_uchar,
            iovec_count: 0,
            dxfer_len,
            dxferp: ptr,
            cmdp: cdb.as_ptr(),
            sbp: sense.as_mut_ptr(),
            timeout: libc::c_uint::try_from(timeout.as_millis()).unwrap_or(libc::c_uint::MAX),
            flags: 0,
            pack_id: 0,
            usr_ptr: std::ptr::null_mut(),
            status: 0,
            masked_status: 0,
            msg_status: 0,
            sb_len_wr: 0,
            host_status: 0,
            driver_status: 0,
            resid: 0,
            duration: 0,
            info: 0,
        };
        // SAFETY: `hdr` is a live, properly initialised `struct sg_io_hdr`
        // (repr(C), same field order and types as <scsi/sg.h>). Its pointers
        // are valid for the whole synchronous call: `cmdp` points at `cdb`
        // (`cmd_len` = its length, checked to be 6..=16 bytes), `sbp` at
        // `sense` (`mx_sb_len` = its 64 bytes), and `dxferp` at the caller's
        // buffer of exactly `dxfer_len` bytes (or null with length 0 and
        // SG_DXFER_NONE), borrowed mutably for FROM_DEV and only read by
        // the kernel for TO_DEV. The fd is open for the lifetime of `self`.
        let rc = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                SG_IO as libc::Ioctl,
                &mut hdr as *mut SgIoHdr,
            )
        };
        if rc < 0 {
            return Err(Error::io(op, &self.name, std::io::Error::last_os_error()));
        }
        if hdr.host_status != 0 {
            return Err(io_err(format!(
                "host adapter status {:#06x} ({})",
                hdr.host_status,
                host_status_name(hdr.host_status)
            )));
        }
        let driver = hdr.driver_status & 0x0f;
        if driver != 0 && driver != DRIVER_SENSE {
            return Err(io_err(format!(
                "driver status {:#06x} ({})",
                hdr.driver_status,
                driver_status_name(driver)
            )));
        }
        let sense_len = usize::from(hdr.sb_len_wr).min(SENSE_LEN);
        Ok(ScsiResult {
            status: hdr.status,
            sense: sense[..sense_len].to_vec(),
            residual: usize::try_from(hdr.resid).unwrap_or(0).min(len),
        })
    }
}

impl ScsiTransport for SgDevice {
    fn device(&self) -> &str {
        &self.name
    }

    fn execute(&mut self, cdb: &[u8], data: DataDir<'_>, timeout: Duration) -> Result<ScsiResult> {
        self.sg_io(cdb, data, timeout)
    }
}

/// Linux SCSI midlayer host byte names (`DID_*`).
fn host_status_name(s: u16) -> &'static str {
    match s {
        0x01 => "no connection",
        0x02 => "bus busy",
        0x03 => "command timed out",
        0x04 => "bad target",
        0x05 => "aborted",
        0x06 => "parity error",
        0x07 => "internal host adapter error",
        0x08 => "bus reset",
        0x09 => "bad interrupt",
        0x0a => "passthrough",
        0x0b => "soft error, retry",
        0x0c => "imminent retry",
        0x0d => "requeue",
        0x0e => "transport disrupted",
        0x0f => "transport failfast",
        _ => "unknown",
    }
}

/// Linux SCSI driver byte names (`DRIVER_*`).
fn driver_status_name(s: u16) -> &'static str {
    match s {
        0x01 => "busy",
        0x02 => "soft error",
        0x03 => "media error",
        0x04 => "error",
        0x05 => "invalid",
        0x06 => "command timed out",
        0x07 => "hard error",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_matches_the_kernel() {
        // struct sg_io_hdr is 88 bytes on LP64 targets.
        #[cfg(target_pointer_width = "64")]
        assert_eq!(std::mem::size_of::<SgIoHdr>(), 88);
    }

    #[test]
    fn open_missing_device_names_it() {
        let e = SgDevice::open(Path::new("/nonexistent/sg42")).unwrap_err();
        assert!(
            e.to_string().contains("open '/nonexistent/sg42' failed"),
            "{e}"
        );
    }

    #[test]
    fn second_open_of_a_locked_device_is_busy() {
        // flock works on any file: a regular file stands in for /dev/sgN.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sg0");
        std::fs::write(&path, b"").unwrap();
        let mut first = SgDevice::open(&path).unwrap();
        assert!(matches!(SgDevice::open(&path), Err(Error::Busy { .. })));
        // SG_IO on a regular file fails cleanly with the device named.
        let e = first
            .execute(
                &cdb::test_unit_ready(),
                DataDir::None,
                Duration::from_secs(1),
            )
            .unwrap_err();
        assert!(e.to_string().contains("TEST UNIT READY"), "{e}");
        drop(first);
        SgDevice::open(&path).unwrap();
    }
}
