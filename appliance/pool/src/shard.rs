//! The shard file: one of an object's k + m erasure-coded pieces, on one
//! member. Byte map: `docs/formats/pool.md`.
//!
//! ```text
//! offset 0    header, 128 bytes (written last, at commit)
//! offset 128  stripe 0: blake3 (32) | block (B bytes)
//!             stripe 1: blake3 (32) | block (B bytes)
//!             …
//!             last stripe: blake3 (32) | block (b_last bytes)
//! ```
//!
//! An object of `len` bytes is cut into stripes of `k × B` bytes; stripe s
//! gives data block j (bytes `[s·k·B + j·b, s·k·B + (j+1)·b)`, zero padded)
//! to shard j, and Reed-Solomon over the k data blocks gives parity blocks
//! to shards k … k+m−1. The last stripe's blocks are `b_last` bytes: its
//! length over k, rounded up to even (the codec works on 16-bit words).
//! Every block carries the blake3 of (stripe number, shard index, bytes),
//! so a range read verifies only the blocks it touches and a block moved to
//! another place or shard fails its check; the header carries the blake3 of
//! all of a shard's block hashes: the shard's own hash.
//!
//! **Do not modify [`MAGIC`]**: it is `blake3("coffer pool shard v1")[..8]`.

use std::fs::File;
use std::os::unix::fs::FileExt;

use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

/// `blake3("coffer pool shard v1")[..8]`. Never edited.
pub const MAGIC: [u8; 8] = [0xf2, 0x84, 0x3b, 0xd3, 0x09, 0x00, 0x29, 0x87];
/// Shard format version.
pub const VERSION: u16 = 1;
/// Header size in bytes.
pub const HEADER_LEN: u64 = 128;
/// Per-block hash size.
pub const HASH_LEN: u64 = 32;
/// Default bytes per shard block (one stripe holds k of them).
pub const DEFAULT_BLOCK: u32 = 64 * 1024;
/// Most data or parity shards per object.
pub const MAX_SHARDS: usize = 64;

/// How an object is laid out in stripes and blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Object length.
    pub len: u64,
    /// Data shards.
    pub k: usize,
    /// Parity shards.
    pub m: usize,
    /// Block size of full stripes.
    pub block: u64,
}

impl Layout {
    /// Data bytes per full stripe.
    pub fn stripe_data(&self) -> u64 {
        self.block * self.k as u64
    }
    /// Number of stripes (0 for an empty object).
    pub fn stripes(&self) -> u64 {
        self.len.div_ceil(self.stripe_data())
    }
    /// Data bytes in stripe `s`.
    pub fn stripe_len(&self, s: u64) -> u64 {
        let d = self.stripe_data();
        (self.len - s * d).min(d)
    }
    /// Block length in stripe `s`.
    pub fn block_len(&self, s: u64) -> u64 {
        if s + 1 < self.stripes() {
            self.block
        } else {
            even_block(self.stripe_len(s), self.k)
        }
    }
    /// File offset of stripe `s`'s hash in every shard.
    pub fn offset(&self, s: u64) -> u64 {
        HEADER_LEN + s * (HASH_LEN + self.block)
    }
    /// Size every shard file of the object must have.
    pub fn shard_file_len(&self) -> u64 {
        match self.stripes() {
            0 => HEADER_LEN,
            n => self.offset(n - 1) + HASH_LEN + self.block_len(n - 1),
        }
    }
}

/// The block length for a stripe of `len` data bytes over `k` shards.
pub fn even_block(len: u64, k: usize) -> u64 {
    let b = len.div_ceil(k as u64).max(2);
    b + (b & 1)
}

/// The blake3 that guards a block: bound to its stripe and shard.
pub fn block_hash(stripe: u64, shard: u8, data: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&stripe.to_le_bytes());
    h.update(&[shard]);
    h.update(data);
    *h.finalize().as_bytes()
}

/// The blake3 that names an object's key inside its shards.
pub fn key_hash(key: &str) -> [u8; 32] {
    *blake3::hash(key.as_bytes()).as_bytes()
}

/// A shard file's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Data shards of the object.
    pub k: u8,
    /// Parity shards of the object.
    pub m: u8,
    /// This shard's index: `0..k` data, `k..k+m` parity.
    pub index: u8,
    /// Block size of full stripes.
    pub block: u32,
    /// Object length.
    pub len: u64,
    /// The pool.
    pub pool: [u8; 16],
    /// blake3 of the object's key.
    pub key: [u8; 32],
    /// blake3 of the concatenated block hashes.
    pub shard_hash: [u8; 32],
}

impl Header {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let mut b = [0u8; HEADER_LEN as usize];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&VERSION.to_le_bytes());
        b[10] = self.k;
        b[11] = self.m;
        b[12] = self.index;
        b[16..20].copy_from_slice(&self.block.to_le_bytes());
        b[24..32].copy_from_slice(&self.len.to_le_bytes());
        b[32..48].copy_from_slice(&self.pool);
        b[48..80].copy_from_slice(&self.key);
        b[80..112].copy_from_slice(&self.shard_hash);
        let sum = blake3::hash(&b[..112]);
        b[112..128].copy_from_slice(&sum.as_bytes()[..16]);
        b
    }

    /// Decodes and checks a header.
    pub fn decode(b: &[u8]) -> Result<Header, String> {
        if b.len() < HEADER_LEN as usize {
            return Err(format!("header is {} bytes, not {HEADER_LEN}", b.len()));
        }
        if b[0..8] != MAGIC {
            return Err("bad magic: not a coffer pool shard".into());
        }
        let sum = blake3::hash(&b[..112]);
        if b[112..128] != sum.as_bytes()[..16] {
            return Err("header checksum mismatch".into());
        }
        let version = u16::from_le_bytes([b[8], b[9]]);
        if version != VERSION {
            return Err(format!(
                "shard format version {version}; this coffer reads {VERSION}"
            ));
        }
        let arr = |r: std::ops::Range<usize>| -> Vec<u8> { b[r].to_vec() };
        let mut h = Header {
            k: b[10],
            m: b[11],
            index: b[12],
            block: u32::from_le_bytes([b[16], b[17], b[18], b[19]]),
            len: u64::from_le_bytes([b[24], b[25], b[26], b[27], b[28], b[29], b[30], b[31]]),
            pool: [0; 16],
            key: [0; 32],
            shard_hash: [0; 32],
        };
        h.pool.copy_from_slice(&arr(32..48));
        h.key.copy_from_slice(&arr(48..80));
        h.shard_hash.copy_from_slice(&arr(80..112));
        if h.k == 0 || h.m == 0 || (h.k as usize + h.m as usize) > MAX_SHARDS {
            return Err(format!("impossible geometry {}+{}", h.k, h.m));
        }
        if h.index >= h.k + h.m {
            return Err(format!("shard index {} outside {}+{}", h.index, h.k, h.m));
        }
        if h.block == 0 || !h.block.is_multiple_of(2) {
            return Err(format!("impossible block size {}", h.block));
        }
        Ok(h)
    }

    /// The object's layout.
    pub fn layout(&self) -> Layout {
        Layout {
            len: self.len,
            k: self.k as usize,
            m: self.m as usize,
            block: self.block as u64,
        }
    }
}

/// Why a block could not be used.
#[derive(Debug)]
pub enum BlockError {
    /// The member did not give the bytes: an I/O error or a short file.
    Read(std::io::Error),
    /// The bytes are not what was written: bit rot, or a block moved.
    Hash,
}

impl std::fmt::Display for BlockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlockError::Read(e) => write!(f, "read failed: {e}"),
            BlockError::Hash => write!(f, "fails its blake3"),
        }
    }
}

/// Reads and verifies block `stripe` of a shard file into `buf` (hash,
/// then block).
pub fn read_block(
    file: &File,
    layout: &Layout,
    stripe: u64,
    shard: u8,
    buf: &mut Vec<u8>,
) -> Result<(), BlockError> {
    let blen = layout.block_len(stripe) as usize;
    buf.resize(HASH_LEN as usize + blen, 0);
    file.read_exact_at(buf, layout.offset(stripe))
        .map_err(BlockError::Read)?;
    let (hash, data) = buf.split_at(HASH_LEN as usize);
    if block_hash(stripe, shard, data) != hash {
        return Err(BlockError::Hash);
    }
    Ok(())
}

/// Reed-Solomon over one stripe's blocks, with reusable work space.
pub struct Coder {
    k: usize,
    m: usize,
    enc: Option<ReedSolomonEncoder>,
    dec: Option<ReedSolomonDecoder>,
}

impl std::fmt::Debug for Coder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Coder({}+{})", self.k, self.m)
    }
}

impl Coder {
    /// A coder for k data and m parity shards.
    pub fn new(k: usize, m: usize) -> Coder {
        Coder {
            k,
            m,
            enc: None,
            dec: None,
        }
    }

    /// Computes the m parity blocks of k data blocks of equal, even length.
    pub fn encode(&mut self, data: &[&[u8]], parity: &mut [Vec<u8>]) -> Result<(), String> {
        let b = data.first().map_or(0, |d| d.len());
        let enc = match &mut self.enc {
            Some(e) => {
                e.reset(self.k, self.m, b).map_err(|e| e.to_string())?;
                e
            }
            None => self
                .enc
                .insert(ReedSolomonEncoder::new(self.k, self.m, b).map_err(|e| e.to_string())?),
        };
        for d in data {
            enc.add_original_shard(d).map_err(|e| e.to_string())?;
        }
        let out = enc.encode().map_err(|e| e.to_string())?;
        for (p, r) in parity.iter_mut().zip(out.recovery_iter()) {
            p.clear();
            p.extend_from_slice(r);
        }
        Ok(())
    }

    /// Fills in missing blocks (`None`) of a stripe from any k present ones,
    /// data and parity alike. `blocks` has k + m entries of length `b`.
    pub fn repair(&mut self, blocks: &mut [Option<Vec<u8>>], b: usize) -> Result<(), String> {
        let (k, m) = (self.k, self.m);
        let present = blocks.iter().filter(|x| x.is_some()).count();
        if present < k {
            return Err(format!("{present} of {k} needed blocks readable"));
        }
        if blocks[..k].iter().any(Option::is_none) {
            let dec = match &mut self.dec {
                Some(d) => {
                    d.reset(k, m, b).map_err(|e| e.to_string())?;
                    d
                }
                None => self
                    .dec
                    .insert(ReedSolomonDecoder::new(k, m, b).map_err(|e| e.to_string())?),
            };
            for (i, blk) in blocks.iter().enumerate() {
                if let Some(d) = blk {
                    if i < k {
                        dec.add_original_shard(i, d).map_err(|e| e.to_string())?;
                    } else {
                        dec.add_recovery_shard(i - k, d)
                            .map_err(|e| e.to_string())?;
                    }
                }
            }
            let out = dec.decode().map_err(|e| e.to_string())?;
            let restored: Vec<(usize, Vec<u8>)> = out
                .restored_original_iter()
                .map(|(i, d)| (i, d.to_vec()))
                .collect();
            for (i, d) in restored {
                blocks[i] = Some(d);
            }
        }
        if blocks[k..].iter().any(Option::is_none) {
            let mut parity = vec![Vec::new(); m];
            {
                let data: Vec<&[u8]> = blocks[..k].iter().flatten().map(Vec::as_slice).collect();
                self.encode(&data, &mut parity)?;
            }
            for (i, p) in parity.into_iter().enumerate() {
                if blocks[k + i].is_none() {
                    blocks[k + i] = Some(p);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn magic_is_derived_from_its_versioned_string() {
        assert_eq!(MAGIC, blake3::hash(b"coffer pool shard v1").as_bytes()[..8]);
    }

    #[test]
    fn layout_of_small_and_large_objects() {
        let l = |len| Layout {
            len,
            k: 4,
            m: 2,
            block: 65536,
        };
        assert_eq!(l(0).stripes(), 0);
        assert_eq!(l(0).shard_file_len(), HEADER_LEN);
        assert_eq!(l(1).stripes(), 1);
        assert_eq!(l(1).block_len(0), 2);
        assert_eq!(l(4 * 65536).stripes(), 1);
        assert_eq!(l(4 * 65536).block_len(0), 65536);
        let x = l(4 * 65536 + 9);
        assert_eq!(x.stripes(), 2);
        assert_eq!(x.block_len(0), 65536);
        assert_eq!(x.stripe_len(1), 9);
        assert_eq!(x.block_len(1), 4);
        assert_eq!(x.shard_file_len(), 128 + 32 + 65536 + 32 + 4);
    }

    #[test]
    fn header_round_trip_and_damage() {
        let h = Header {
            k: 4,
            m: 2,
            index: 5,
            block: 65536,
            len: 123_456_789,
            pool: [7; 16],
            key: key_hash("data/ab/abcd"),
            shard_hash: [9; 32],
        };
        let b = h.encode();
        assert_eq!(Header::decode(&b).unwrap(), h);
        for i in [0, 10, 30, 100, 127] {
            let mut bad = b;
            bad[i] ^= 1;
            assert!(Header::decode(&bad).is_err(), "byte {i}");
        }
        assert!(Header::decode(&b[..100]).is_err());
        let mut wrong = h;
        wrong.index = 6;
        assert!(Header::decode(&wrong.encode()).is_err());
    }

    proptest! {
        /// Any m lost blocks of a stripe come back bit for bit.
        #[test]
        fn any_m_losses_are_repaired(
            data in proptest::collection::vec(any::<u8>(), 1..5000),
            k in 1usize..7, m in 1usize..4, lost in proptest::collection::vec(0usize..16, 0..4),
        ) {
            let b = even_block(data.len() as u64, k) as usize;
            let mut blocks: Vec<Vec<u8>> = (0..k).map(|j| {
                let mut v = data.get(j * b..((j + 1) * b).min(data.len())).unwrap_or(&[]).to_vec();
                v.resize(b, 0);
                v
            }).collect();
            let mut parity = vec![Vec::new(); m];
            let mut c = Coder::new(k, m);
            {
                let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
                c.encode(&refs, &mut parity).unwrap();
            }
            blocks.extend(parity);
            let mut damaged: Vec<Option<Vec<u8>>> = blocks.iter().cloned().map(Some).collect();
            let mut gone = 0;
            for l in lost {
                let i = l % (k + m);
                if damaged[i].is_some() && gone < m {
                    damaged[i] = None;
                    gone += 1;
                }
            }
            c.repair(&mut damaged, b).unwrap();
            let got: Vec<Vec<u8>> = damaged.into_iter().map(Option::unwrap).collect();
            prop_assert_eq!(got, blocks);
        }
    }

    #[test]
    fn too_many_losses_is_an_error() {
        let mut c = Coder::new(2, 1);
        let mut blocks = vec![Some(vec![1u8, 2]), None, None];
        assert!(c.repair(&mut blocks, 2).unwrap_err().contains("1 of 2"));
    }
}
