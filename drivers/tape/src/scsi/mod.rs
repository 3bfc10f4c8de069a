//! SCSI for tape: command (CDB) builders, response parsers and sense data.
//!
//! Everything here is pure: bytes in, values out, no I/O. The layouts come
//! from the T10 standards: SPC-4 (primary commands: INQUIRY, MODE SENSE,
//! LOG SENSE, READ ATTRIBUTE, SECURITY PROTOCOL IN/OUT, sense data), SSC-4
//! (stream commands: READ, WRITE, SPACE, LOCATE, READ POSITION, the device
//! configuration and medium configuration mode pages, TapeAlert, tape data
//! encryption) and SMC-3 (media changers: READ ELEMENT STATUS, MOVE MEDIUM,
//! the element address assignment mode page).
//!
//! - [`sense`]: [`Sense`] decoded from fixed or descriptor format, and
//!   [`classify`] mapping it to the conditions callers act on;
//! - [`cdb`]: one builder per command;
//! - [`ssc`]: INQUIRY, READ POSITION, MODE SENSE/SELECT, TapeAlert, cartridge
//!   memory attributes;
//! - [`encryption`]: the tape data encryption security protocol pages;
//! - [`smc`]: element status and element address assignment.
//!
//! Parsers never panic, whatever the bytes: a response that is truncated, or
//! whose length fields claim more than was returned, is a [`ParseError`],
//! which the drive layer turns into [`crate::Error::Malformed`] naming the
//! device.

pub mod cdb;
pub mod encryption;
pub mod sense;
pub mod smc;
pub mod ssc;

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod robustness;

use std::fmt;

pub use sense::{Classified, Sense, classify};

/// A response that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What was parsed (the command's response or page).
    pub what: &'static str,
    /// Why it was rejected.
    pub reason: String,
}

impl ParseError {
    pub(crate) fn new(what: &'static str, reason: impl Into<String>) -> ParseError {
        ParseError {
            what,
            reason: reason.into(),
        }
    }

    /// The crate error for this failure on `device`.
    pub fn on(self, device: &str) -> crate::Error {
        crate::Error::Malformed {
            device: device.to_string(),
            what: self.what,
            reason: self.reason,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.reason)
    }
}

impl std::error::Error for ParseError {}

/// Result of a parser.
pub type ParseResult<T> = std::result::Result<T, ParseError>;

/// Bounds-checked big-endian reads over a response, each failure naming
/// what was being parsed.
#[derive(Clone, Copy)]
pub(crate) struct Bytes<'a> {
    data: &'a [u8],
    what: &'static str,
}

impl<'a> Bytes<'a> {
    pub(crate) fn new(what: &'static str, data: &'a [u8]) -> Bytes<'a> {
        Bytes { data, what }
    }

    pub(crate) fn len(&self) -> usize {
        self.data.len()
    }

    pub(crate) fn err(&self, reason: impl Into<String>) -> ParseError {
        ParseError::new(self.what, reason)
    }

    /// `len` bytes at `at`.
    pub(crate) fn slice(&self, at: usize, len: usize) -> ParseResult<&'a [u8]> {
        at.checked_add(len)
            .and_then(|end| self.data.get(at..end))
            .ok_or_else(|| {
                self.err(format!(
                    "{len} bytes at offset {at} run past the {} bytes returned",
                    self.data.len()
                ))
            })
    }

    pub(crate) fn u8(&self, at: usize) -> ParseResult<u8> {
        Ok(self.slice(at, 1)?[0])
    }

    /// An unsigned big-endian integer of `len` (at most 8) bytes.
    pub(crate) fn be(&self, at: usize, len: usize) -> ParseResult<u64> {
        Ok(be_uint(self.slice(at, len.min(8))?))
    }

    pub(crate) fn u16(&self, at: usize) -> ParseResult<u16> {
        let b = self.slice(at, 2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&self, at: usize) -> ParseResult<u32> {
        let b = self.slice(at, 4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&self, at: usize) -> ParseResult<u64> {
        self.be(at, 8)
    }

    /// The response cut to what a length field says it holds (`declared`
    /// bytes from the start), or to what was returned if that is less: a
    /// response cut short by the allocation length is still parsed as far
    /// as it goes.
    pub(crate) fn declared(&self, declared: u64) -> Bytes<'a> {
        let n = usize::try_from(declared)
            .unwrap_or(usize::MAX)
            .min(self.data.len());
        Bytes {
            data: &self.data[..n],
            what: self.what,
        }
    }
}

/// An unsigned big-endian integer from up to 8 bytes.
pub(crate) fn be_uint(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
}

/// An ASCII field as text: trailing spaces and NULs removed, anything
/// non-printable replaced, so device strings are safe to log.
pub(crate) fn ascii(b: &[u8]) -> String {
    let s: String = b
        .iter()
        .map(|&c| {
            if (0x20..0x7f).contains(&c) {
                char::from(c)
            } else if c == 0 {
                ' '
            } else {
                '?'
            }
        })
        .collect();
    s.trim().to_string()
}
