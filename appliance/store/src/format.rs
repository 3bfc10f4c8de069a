//! Format constants and the little-endian encoding helpers every structure
//! of the store uses. Byte maps: `docs/formats/store.md`.
//!
//! **Do not modify the constants in [`magic`]**: they are part of the on-disk
//! format. Each magic is the first 8 bytes of blake3 of a versioned string,
//! which a test checks; a new format version gets a new string.

use crate::{Error, Result};

/// Magic numbers (see module docs).
pub mod magic {
    /// `blake3("coffer store config v1")[..8]`
    pub const CONFIG_V1: [u8; 8] = [0xcf, 0xa8, 0x2a, 0x18, 0x5d, 0xd2, 0xce, 0x97];
    /// `blake3("coffer container v1")[..8]`
    pub const CONTAINER_V1: [u8; 8] = [0x57, 0x38, 0x52, 0x25, 0xa9, 0x12, 0xcd, 0xc3];
    /// `blake3("coffer container end v1")[..8]`
    pub const CONTAINER_END_V1: [u8; 8] = [0x02, 0xc4, 0x9c, 0x8f, 0xc8, 0x58, 0x37, 0x54];
    /// `blake3("coffer container index v1")[..8]`
    pub const INDEX_V1: [u8; 8] = [0x9e, 0x67, 0x3d, 0xcd, 0x42, 0x36, 0x16, 0x5c];
    /// `blake3("coffer snapshot record v1")[..8]`
    pub const SNAPSHOT_V1: [u8; 8] = [0x76, 0x10, 0x02, 0xa6, 0x1d, 0x9c, 0xda, 0x76];
    /// `blake3("coffer manifest v1")[..8]`
    pub const MANIFEST_V1: [u8; 8] = [0xd3, 0x00, 0x83, 0x02, 0x48, 0x69, 0xc6, 0x88];
}

/// The store format version this code writes and the newest it reads.
pub const FORMAT_VERSION: u16 = 1;

/// Largest chunk the codec accepts (plaintext), whatever a config says.
pub const MAX_CHUNK: u32 = 16 * 1024 * 1024;

/// Appends little-endian fields to a buffer.
#[derive(Debug, Default)]
pub struct Writer {
    /// The bytes written so far.
    pub buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Writer {
        Writer::default()
    }
    /// `u8`.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    /// `u16` LE.
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// `u32` LE.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// `u64` LE.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// `i64` LE.
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// Raw bytes, no length.
    pub fn raw(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    /// A `u32` length, then the bytes.
    pub fn bytes(&mut self, v: &[u8]) {
        // Lengths above 4 GiB cannot occur: names, xattrs and lists are bounded
        // far below by the kernel and by MAX_* checks in the readers.
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.raw(v);
    }
}

/// Reads little-endian fields from a slice; every read is bounds-checked and
/// a short input is a [`Error::Corrupt`] naming `what`.
#[derive(Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'a str,
}

impl<'a> Reader<'a> {
    /// Reads `data`, naming it `what` in errors.
    pub fn new(data: &'a [u8], what: &'a str) -> Reader<'a> {
        Reader { data, pos: 0, what }
    }
    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }
    /// Position from the start.
    pub fn pos(&self) -> usize {
        self.pos
    }
    /// An error about this input.
    pub fn corrupt(&self, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            what: self.what.to_string(),
            reason: reason.into(),
        }
    }
    /// `n` raw bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(self.corrupt(format!(
                "truncated: wanted {n} bytes at offset {}, {} left",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    /// A fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    /// `u8`.
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    /// `u16` LE.
    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    /// `u32` LE.
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    /// `u64` LE.
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// `i64` LE.
    pub fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    /// A `u32` length (at most `max`), then that many bytes.
    pub fn bytes(&mut self, max: usize) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(self.corrupt(format!("field of {n} bytes exceeds the limit of {max}")));
        }
        self.take(n)
    }
    /// A length-prefixed UTF-8 string.
    pub fn string(&mut self, max: usize) -> Result<String> {
        let b = self.bytes(max)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.corrupt("string is not UTF-8"))
    }
    /// A count of items that each take at least `min_item` bytes, checked
    /// against the bytes left so a hostile count cannot force a huge allocation.
    pub fn count(&mut self, min_item: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item.max(1)) > self.remaining() {
            return Err(self.corrupt(format!("count {n} exceeds the data left")));
        }
        Ok(n)
    }
    /// Reads a structure's magic and version: a wrong magic says the input
    /// is not a `what`, a version above `supported` is [`Error::NewerFormat`].
    pub fn expect_header(&mut self, magic: [u8; 8], supported: u16, what: &str) -> Result<u16> {
        if self.array::<8>()? != magic {
            return Err(self.corrupt(format!("bad magic: not a coffer {what}")));
        }
        let version = self.u16()?;
        if version > supported {
            return Err(Error::NewerFormat {
                what: what.to_string(),
                found: version,
                supported,
            });
        }
        Ok(version)
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<()> {
        if self.remaining() != 0 {
            return Err(self.corrupt(format!("{} unexpected trailing bytes", self.remaining())));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::magic::*;

    #[test]
    fn magics_are_derived_from_their_versioned_strings() {
        for (m, s) in [
            (CONFIG_V1, "coffer store config v1"),
            (CONTAINER_V1, "coffer container v1"),
            (CONTAINER_END_V1, "coffer container end v1"),
            (INDEX_V1, "coffer container index v1"),
            (SNAPSHOT_V1, "coffer snapshot record v1"),
            (MANIFEST_V1, "coffer manifest v1"),
        ] {
            assert_eq!(m, blake3::hash(s.as_bytes()).as_bytes()[..8], "{s}");
        }
    }

    #[test]
    fn reader_rejects_short_and_hostile_input() {
        let mut w = super::Writer::new();
        w.u32(1_000_000);
        let mut r = super::Reader::new(&w.buf, "test");
        assert!(r.count(8).is_err());
        let mut r = super::Reader::new(&w.buf, "test");
        assert!(r.bytes(10).is_err());
        let mut r = super::Reader::new(&[1, 2], "test");
        assert!(r.u32().is_err());
    }
}
