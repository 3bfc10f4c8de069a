//! The codec limit: what the per-chunk work of a backup costs on one core,
//! measured on the bench's own data. A full backup must chunk every byte,
//! hash every chunk (keyed blake3), compress it (zstd level 3) and encrypt
//! what compression left (AES-256-GCM); nothing can back the tree up faster
//! than those four on the machine's cores, even with free I/O.

use std::path::Path;
use std::time::Instant;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::{Context, Result};
use coffer_store::{Chunker, ChunkerParams};
use serde::Serialize;

/// Per-core throughput of each stage, MB/s of its own input.
#[derive(Serialize, Clone, Copy, Debug, Default)]
pub struct Codec {
    /// Bytes of source data in the sample.
    pub sample_bytes: u64,
    /// Files the sample was read from.
    pub sample_files: u64,
    pub chunk_mbps: f64,
    pub blake3_mbps: f64,
    pub zstd3_mbps: f64,
    /// Compressed size / raw size over the sample.
    pub zstd3_ratio: f64,
    /// Over the compressed bytes.
    pub aes_gcm_mbps: f64,
    /// All four stages, per core, in MB/s of source data.
    pub pipeline_mbps_per_core: f64,
}

impl Codec {
    /// Seconds the four stages need for `bytes` of source data on `cores`.
    pub fn limit_s(&self, bytes: u64, cores: usize) -> f64 {
        bytes as f64 / 1e6 / self.pipeline_mbps_per_core / cores.max(1) as f64
    }
}

fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs.max(1e-9)
}

/// Measures the stages over up to `max_bytes` of `root`'s files (sorted order),
/// each file chunked on its own, as a backup does. Each stage is timed three
/// times and the fastest counts: this is a limit, and anything else running
/// on the machine (writeback after unpacking, say) only slows a pass down.
pub fn measure(root: &Path, max_bytes: u64) -> Result<Codec> {
    let mut files = Vec::new();
    let mut total = 0u64;
    for rel in crate::data::files_of(root)? {
        if total >= max_bytes {
            break;
        }
        let data =
            std::fs::read(root.join(&rel)).with_context(|| format!("read {}", rel.display()))?;
        total += data.len() as u64;
        files.push(data);
    }
    let chunker = Chunker::new(ChunkerParams::DATA, 0x5eed_c0ff_ee00_2026)?;
    nix::unistd::sync();
    let best = |f: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t = Instant::now();
            f()?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        Ok(best)
    };

    let mut chunks: Vec<&[u8]> = Vec::new();
    let chunk_s = best(&mut || {
        chunks.clear();
        for f in &files {
            let mut at = 0;
            for len in chunker.cut(f, true) {
                chunks.push(&f[at..at + len]);
                at += len;
            }
        }
        Ok(())
    })?;

    let key = [7u8; 32];
    let hash_s = best(&mut || {
        let mut acc = 0u8;
        for c in &chunks {
            acc ^= blake3::keyed_hash(&key, c).as_bytes()[0];
        }
        std::hint::black_box(acc);
        Ok(())
    })?;

    // As the store does: one reused context and output buffer, and the
    // frame kept only when it shrinks the chunk.
    let mut zc = zstd::bulk::Compressor::new(3)?;
    let mut zbuf = Vec::new();
    let mut compress = |c: &[u8], zbuf: &mut Vec<u8>| -> Result<bool> {
        zbuf.clear();
        zbuf.reserve(zstd::zstd_safe::compress_bound(c.len()));
        zc.compress_to_buffer(c, zbuf)?;
        Ok(zbuf.len() < c.len())
    };
    let zstd_s = best(&mut || {
        for c in &chunks {
            std::hint::black_box(compress(c, &mut zbuf)?);
        }
        Ok(())
    })?;
    // The frames the encryption stage works on, kept outside the timing.
    let mut compressed: Vec<Vec<u8>> = Vec::with_capacity(chunks.len());
    for c in &chunks {
        let shrank = compress(c, &mut zbuf)?;
        compressed.push(if shrank { zbuf.clone() } else { c.to_vec() });
    }
    let zbytes: u64 = compressed.iter().map(|z| z.len() as u64).sum();

    let gcm = Aes256Gcm::new_from_slice(&key).map_err(|_| anyhow::anyhow!("aes key"))?;
    let mut rec = Vec::new();
    let aes_s = best(&mut || {
        for (i, z) in compressed.iter().enumerate() {
            let mut nonce = [0u8; 12];
            nonce[..8].copy_from_slice(&(i as u64).to_le_bytes());
            rec.clear();
            rec.extend_from_slice(z);
            let tag = gcm
                .encrypt_in_place_detached(Nonce::from_slice(&nonce), b"", &mut rec)
                .map_err(|_| anyhow::anyhow!("aes-gcm encrypt"))?;
            std::hint::black_box(tag);
        }
        Ok(())
    })?;

    Ok(Codec {
        sample_bytes: total,
        sample_files: files.len() as u64,
        chunk_mbps: mbps(total, chunk_s),
        blake3_mbps: mbps(total, hash_s),
        zstd3_mbps: mbps(total, zstd_s),
        zstd3_ratio: zbytes as f64 / total.max(1) as f64,
        aes_gcm_mbps: mbps(zbytes, aes_s),
        pipeline_mbps_per_core: mbps(total, chunk_s + hash_s + zstd_s + aes_s),
    })
}
