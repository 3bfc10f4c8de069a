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

impl Sense {
    /// NO SENSE with ASC/ASCQ 00/04, beginning of partition detected.
    pub fn beginning_of_partition() -> Sense {
        Sense {
            key: 0,
            asc: 0,
            ascq: 4,
        }
    }
    /// NO SENSE with ASC/ASCQ 00/01, filemark detected.
    pub fn filemark_detected() -> Sense {
        Sense {
            key: 0,
            asc: 0,
            ascq: 1,
        }
    }
}
