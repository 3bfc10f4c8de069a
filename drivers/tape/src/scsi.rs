//! SCSI command builders and response parsers (placeholder, replaced by the SSC/SMC layer).

use std::fmt;

/// Decoded sense data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sense {
    /// Sense key.
    pub key: u8,
    /// Additional sense code.
    pub asc: u8,
    /// Additional sense code qualifier.
    pub ascq: u8,
}

impl fmt::Display for Sense {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sense key {:#x}, ASC/ASCQ {:02x}/{:02x}",
            self.key, self.asc, self.ascq
        )
    }
}
