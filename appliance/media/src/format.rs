//! The tape format's constants and byte layouts. Specification:
//! `docs/formats/tape.md`.
//!
//! **Do not modify the constants in [`magic`]**: they are part of the
//! on-tape format. Each is the first bytes of blake3 of a versioned string,
//! which a test checks; a new format version gets a new string.
//!
//! ```text
//! tape file 0   media label         1 block, plaintext          filemark
//! tape file 1   media-set label     1+ blocks, plaintext        filemark
//! tape file 2…  archive             blocks of entries, sealed   filemark
//!               …more archives…
//! last file     tape catalog        blocks, sealed              filemark
//! ```
//!
//! Block (fixed size, 256 KiB by default), 64-byte header then payload:
//!
//! ```text
//!  0      8  magic                    blake3("coffer tape block v1")[..8]
//!  8      2  version (1)
//! 10      1  content: 1 media label, 2 media-set label, 3 archive, 4 catalog
//! 11      1  flags: bit 0 = payload sealed (AES-256-CTR + keyed BLAKE3)
//! 12      4  block size, bytes (header included)
//! 16     16  tape file id (random per tape file)
//! 32      8  block index within the tape file
//! 40      4  payload length, bytes (tag included when sealed)
//! 44      4  offset in this block's plaintext where the first entry
//!            starting in it begins; 0xFFFF_FFFF when none starts here
//! 48     12  reserved, zero
//! 60      4  CRC-32C of bytes 0..60 and the payload
//! ```

/// Magic numbers (see module docs).
pub mod magic {
    /// `blake3("coffer tape block v1")[..8]`
    pub const BLOCK_V1: [u8; 8] = [0xac, 0xb0, 0xb3, 0xd3, 0x38, 0xbc, 0xc2, 0x07];
    /// `blake3("coffer tape archive v1")[..4]`: starts every archive entry.
    pub const ENTRY_V1: [u8; 4] = [0x17, 0xb0, 0x83, 0x34];
}

/// Bytes of a block header.
pub const HEADER_LEN: usize = 64;
/// Bytes of the authentication tag at the end of a sealed payload.
pub const TAG_LEN: usize = 16;
/// Default block size: 256 KiB, a size LTO drives stream well.
pub const DEFAULT_BLOCK_SIZE: u32 = 256 * 1024;
/// Block size of label files: labels are small, and a reader accepts any
/// size in range, so they do not take a whole data block each.
pub const LABEL_BLOCK_SIZE: u32 = 4096;
/// Smallest block size a reader accepts.
pub const MIN_BLOCK_SIZE: u32 = 4096;
/// Largest block size a reader accepts (an LTO drive's limit).
pub const MAX_BLOCK_SIZE: u32 = 8 << 20;
/// The block format version this code writes and reads.
pub const BLOCK_VERSION: u16 = 1;
/// "No entry starts in this block".
pub const NO_ENTRY: u32 = u32::MAX;
/// Bytes of an entry header before its key.
pub const ENTRY_HEADER_LEN: usize = 16;
/// Longest object key on tape.
pub const MAX_KEY_LEN: usize = 1024;
/// Entry kind: a store object follows.
pub const ENTRY_OBJECT: u8 = 1;
/// Entry kind: the archive ends here (object count in the length field).
pub const ENTRY_END: u8 = 2;
/// Flag bit: payload sealed.
pub const FLAG_SEALED: u8 = 1;

/// What a tape file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// The media label (file 0).
    MediaLabel = 1,
    /// The media-set label (file 1).
    SetLabel = 2,
    /// An archive of store objects.
    Archive = 3,
    /// The tape catalog.
    Catalog = 4,
}

impl Content {
    fn from_u8(v: u8) -> Option<Content> {
        Some(match v {
            1 => Content::MediaLabel,
            2 => Content::SetLabel,
            3 => Content::Archive,
            4 => Content::Catalog,
            _ => return None,
        })
    }

    /// Name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Content::MediaLabel => "media label",
            Content::SetLabel => "media-set label",
            Content::Archive => "archive",
            Content::Catalog => "tape catalog",
        }
    }
}

/// A parsed block header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    /// What the tape file holds.
    pub content: Content,
    /// Payload sealed (AES-256-CTR + keyed BLAKE3).
    pub sealed: bool,
    /// Block size, bytes.
    pub block_size: u32,
    /// The tape file's id.
    pub file_id: [u8; 16],
    /// Index of this block in its tape file.
    pub index: u64,
    /// Payload bytes (tag included when sealed).
    pub payload_len: u32,
    /// Plaintext offset of the first entry starting here, or [`NO_ENTRY`].
    pub first_entry: u32,
}

/// Why a block was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockFault {
    /// Not a Coffer tape block at all.
    #[error("not a coffer tape block (bad magic)")]
    NotABlock,
    /// Written by a newer Coffer.
    #[error("tape block format version {0} is newer than this coffer reads (1); upgrade coffer")]
    NewerVersion(u16),
    /// The checksum does not match: the block is damaged.
    #[error("block checksum mismatch (damaged block)")]
    Checksum,
    /// Fields that contradict each other.
    #[error("inconsistent block header: {0}")]
    Inconsistent(String),
}

impl BlockHeader {
    /// Plaintext capacity of a block of `block_size` bytes (the tag's room is
    /// kept even in plaintext blocks so both carry the same amount).
    pub fn capacity(block_size: u32) -> usize {
        block_size as usize - HEADER_LEN - TAG_LEN
    }

    /// Writes the header (without the CRC) into `out[..60]`.
    pub fn encode(&self, out: &mut [u8]) {
        out[..HEADER_LEN].fill(0);
        out[0..8].copy_from_slice(&magic::BLOCK_V1);
        out[8..10].copy_from_slice(&BLOCK_VERSION.to_le_bytes());
        out[10] = self.content as u8;
        out[11] = if self.sealed { FLAG_SEALED } else { 0 };
        out[12..16].copy_from_slice(&self.block_size.to_le_bytes());
        out[16..32].copy_from_slice(&self.file_id);
        out[32..40].copy_from_slice(&self.index.to_le_bytes());
        out[40..44].copy_from_slice(&self.payload_len.to_le_bytes());
        out[44..48].copy_from_slice(&self.first_entry.to_le_bytes());
    }

    /// Parses and checks a block as read from tape (`block` is exactly what
    /// the drive returned).
    pub fn parse(block: &[u8]) -> Result<BlockHeader, BlockFault> {
        if block.len() < HEADER_LEN || block[0..8] != magic::BLOCK_V1 {
            return Err(BlockFault::NotABlock);
        }
        let u32_at =
            |o: usize| u32::from_le_bytes([block[o], block[o + 1], block[o + 2], block[o + 3]]);
        let version = u16::from_le_bytes([block[8], block[9]]);
        if version > BLOCK_VERSION {
            return Err(BlockFault::NewerVersion(version));
        }
        let block_size = u32_at(12);
        let payload_len = u32_at(40);
        let bad = |s: String| Err(BlockFault::Inconsistent(s));
        if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size) {
            return bad(format!("block size {block_size}"));
        }
        if block.len() != block_size as usize {
            return bad(format!(
                "{} bytes read, header says {block_size}",
                block.len()
            ));
        }
        if payload_len as usize > block_size as usize - HEADER_LEN {
            return bad(format!(
                "payload length {payload_len} in a {block_size}-byte block"
            ));
        }
        let mut crc = crc32c::crc32c(&block[..60]);
        crc = crc32c::crc32c_append(crc, &block[HEADER_LEN..HEADER_LEN + payload_len as usize]);
        if crc != u32_at(60) {
            return Err(BlockFault::Checksum);
        }
        if version == 0 || block[48..60].iter().any(|b| *b != 0) || block[11] & !FLAG_SEALED != 0 {
            return bad("reserved bits set or version 0".into());
        }
        let content = match Content::from_u8(block[10]) {
            Some(c) => c,
            None => return bad(format!("content type {}", block[10])),
        };
        let sealed = block[11] & FLAG_SEALED != 0;
        if sealed && (payload_len as usize) < TAG_LEN {
            return bad("sealed payload shorter than its tag".into());
        }
        let plain = payload_len as usize - if sealed { TAG_LEN } else { 0 };
        let first_entry = u32_at(44);
        if first_entry != NO_ENTRY && first_entry as usize >= plain.max(1) {
            return bad(format!(
                "first entry at {first_entry} beyond {plain} plaintext bytes"
            ));
        }
        let mut file_id = [0u8; 16];
        file_id.copy_from_slice(&block[16..32]);
        let mut idx = [0u8; 8];
        idx.copy_from_slice(&block[32..40]);
        Ok(BlockHeader {
            content,
            sealed,
            block_size,
            file_id,
            index: u64::from_le_bytes(idx),
            payload_len,
            first_entry,
        })
    }
}

/// Seals the CRC over a block whose header and payload are in place.
pub fn finish_crc(block: &mut [u8], payload_len: usize) {
    let mut crc = crc32c::crc32c(&block[..60]);
    crc = crc32c::crc32c_append(crc, &block[HEADER_LEN..HEADER_LEN + payload_len]);
    block[60..64].copy_from_slice(&crc.to_le_bytes());
}

/// An entry header in an archive's plaintext stream.
///
/// ```text
///  0  4  magic ENTRY_V1
///  4  1  kind: 1 object, 2 end of archive
///  5  1  reserved, zero
///  6  2  key length (object: 1..=1024; end: 0)
///  8  8  object length (end: number of objects in the archive)
/// 16  …  key (UTF-8)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryHeader {
    /// [`ENTRY_OBJECT`] or [`ENTRY_END`].
    pub kind: u8,
    /// The object's key (empty for the end entry).
    pub key: String,
    /// Object length, or the object count for the end entry.
    pub len: u64,
}

impl EntryHeader {
    /// Encodes the header followed by the key.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENTRY_HEADER_LEN + self.key.len());
        out.extend_from_slice(&magic::ENTRY_V1);
        out.push(self.kind);
        out.push(0);
        out.extend_from_slice(&(self.key.len() as u16).to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(self.key.as_bytes());
        out
    }

    /// Parses the fixed part; returns (kind, key length, object length).
    pub fn parse_fixed(b: &[u8; ENTRY_HEADER_LEN]) -> Result<(u8, usize, u64), String> {
        if b[0..4] != magic::ENTRY_V1 {
            return Err("no entry header where one should start".into());
        }
        let kind = b[4];
        let key_len = usize::from(u16::from_le_bytes([b[6], b[7]]));
        let mut l = [0u8; 8];
        l.copy_from_slice(&b[8..16]);
        let len = u64::from_le_bytes(l);
        match kind {
            ENTRY_OBJECT if (1..=MAX_KEY_LEN).contains(&key_len) && b[5] == 0 => {
                Ok((kind, key_len, len))
            }
            ENTRY_END if key_len == 0 && b[5] == 0 => Ok((kind, 0, len)),
            _ => Err(format!(
                "bad entry header (kind {kind}, key length {key_len})"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics_are_derived_from_their_versioned_strings() {
        assert_eq!(
            blake3::hash(b"coffer tape block v1").as_bytes()[..8],
            magic::BLOCK_V1
        );
        assert_eq!(
            blake3::hash(b"coffer tape archive v1").as_bytes()[..4],
            magic::ENTRY_V1
        );
        assert_eq!(
            blake3::hash(b"coffer virtual cartridge v1").as_bytes()[..8],
            coffer_tape::virtual_lib::CARTRIDGE_MAGIC
        );
    }

    fn block(h: &BlockHeader, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; h.block_size as usize];
        h.encode(&mut b);
        b[HEADER_LEN..HEADER_LEN + payload.len()].copy_from_slice(payload);
        finish_crc(&mut b, payload.len());
        b
    }

    #[test]
    fn header_round_trips_and_every_bit_flip_is_caught() {
        let h = BlockHeader {
            content: Content::Archive,
            sealed: false,
            block_size: MIN_BLOCK_SIZE,
            file_id: [7; 16],
            index: 42,
            payload_len: 100,
            first_entry: 3,
        };
        let b = block(&h, &[5u8; 100]);
        assert_eq!(BlockHeader::parse(&b).unwrap(), h);
        for i in 0..(HEADER_LEN + 100) * 8 {
            let mut c = b.clone();
            c[i / 8] ^= 1 << (i % 8);
            assert!(
                BlockHeader::parse(&c).is_err(),
                "flip of bit {i} went unnoticed"
            );
        }
        // Truncated reads and a size that disagrees with the header.
        assert!(BlockHeader::parse(&b[..100]).is_err());
        assert!(BlockHeader::parse(&b[..HEADER_LEN]).is_err());
    }

    #[test]
    fn entry_header_round_trips_and_rejects_nonsense() {
        let e = EntryHeader {
            kind: ENTRY_OBJECT,
            key: "data/ab/cd".into(),
            len: 99,
        };
        let b = e.encode();
        let mut f = [0u8; ENTRY_HEADER_LEN];
        f.copy_from_slice(&b[..ENTRY_HEADER_LEN]);
        assert_eq!(
            EntryHeader::parse_fixed(&f).unwrap(),
            (ENTRY_OBJECT, 10, 99)
        );
        f[4] = 9;
        assert!(EntryHeader::parse_fixed(&f).is_err());
        f[4] = ENTRY_OBJECT;
        f[6] = 0;
        f[7] = 0;
        assert!(EntryHeader::parse_fixed(&f).is_err(), "empty key");
    }
}
