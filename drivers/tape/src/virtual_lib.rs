//! Virtual tape library (being written).

use std::path::Path;

use crate::{Error, Library, MediaChanger, Result, TapeDrive};

/// Options for a new virtual library.
#[derive(Debug, Clone)]
pub struct VtlOptions;

/// A virtual tape library.
pub struct VirtualLibrary;

impl VirtualLibrary {
    /// Opens a library directory.
    pub fn open(path: &Path) -> Result<VirtualLibrary> {
        Err(Error::Invalid {
            what: path.display().to_string(),
            reason: "not built yet".into(),
        })
    }
}

impl Library for VirtualLibrary {
    fn changer(&mut self) -> Result<Box<dyn MediaChanger>> {
        Err(Error::Invalid {
            what: "vtl".into(),
            reason: "not built yet".into(),
        })
    }
    fn drive(&mut self, _index: u16) -> Result<Box<dyn TapeDrive>> {
        Err(Error::Invalid {
            what: "vtl".into(),
            reason: "not built yet".into(),
        })
    }
    fn drive_count(&self) -> u16 {
        0
    }
}
