//! Linux SG_IO backend (placeholder).

use std::path::PathBuf;

use crate::{Error, Library, MediaChanger, Result, TapeDrive};

/// A SCSI tape library.
pub struct LinuxLibrary {
    changer: PathBuf,
    drives: Vec<PathBuf>,
}

impl LinuxLibrary {
    /// A library from its changer's and drives' SCSI generic devices.
    pub fn new(changer: PathBuf, drives: Vec<PathBuf>) -> LinuxLibrary {
        LinuxLibrary { changer, drives }
    }
}

impl Library for LinuxLibrary {
    fn changer(&mut self) -> Result<Box<dyn MediaChanger>> {
        Err(Error::Unsupported {
            device: self.changer.display().to_string(),
            op: "changer",
            reason: "not built yet".into(),
        })
    }
    fn drive(&mut self, index: u16) -> Result<Box<dyn TapeDrive>> {
        Err(Error::Unsupported {
            device: format!("{:?}", self.drives.get(usize::from(index))),
            op: "drive",
            reason: "not built yet".into(),
        })
    }
    fn drive_count(&self) -> u16 {
        u16::try_from(self.drives.len()).unwrap_or(u16::MAX)
    }
}
