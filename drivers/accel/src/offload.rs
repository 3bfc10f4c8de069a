//! The offloadable codec work, and its implementation on the host's CPU.
//!
//! [`Offload`] is the per-chunk and per-container work of the write and
//! restore paths that a device could take over: zstd, AES-256-GCM, the
//! keyed blake3 chunk id and Reed-Solomon parity. [`Cpu`] does it all on
//! the calling thread with the workspace's codec crates, and is the
//! reference: a device implementation must produce the same bytes (standard
//! zstd frames, standard AES-256-GCM with a 96-bit nonce and a 16-byte tag,
//! blake3 keyed hashes, reed-solomon-simd's recovery shards), because data
//! written through a device is read back wherever it is restored, often by
//! the CPU.

use std::cell::Cell;
use std::io::Read;
use std::thread::LocalKey;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use reed_solomon_simd::ReedSolomonEncoder;
use zstd::bulk::{Compressor, Decompressor};

use crate::Error;

/// The codec work a device can take.
///
/// Every method works on the calling thread and may be called from many
/// threads at once (`Send + Sync`); a device with queues hides them behind
/// these blocking calls. The contract, which [`Cpu`] implements and
/// [`crate::bench::run`] checks once per test before timing anything:
///
/// - [`compress`](Offload::compress) replaces `dst`'s contents with one zstd
///   frame of `src` at `level` (any level the linked zstd accepts, else
///   [`Error::Level`]); the frame records the content size. A device may
///   produce different bytes than the CPU at the same level, but they must
///   be a valid zstd frame any decoder reads back to `src`.
/// - [`decompress`](Offload::decompress) replaces `dst`'s contents with the
///   data of the zstd frame(s) in `src`, and fails with [`Error::TooLarge`]
///   rather than produce more than `max` bytes.
/// - [`seal`](Offload::seal) encrypts `buf` in place with AES-256-GCM and
///   appends the 16-byte tag; [`open`](Offload::open) checks and removes
///   the tag and decrypts in place, or fails with [`Error::Authentication`]
///   and leaves no unauthenticated plaintext in `buf`. The caller owns
///   nonce uniqueness per key.
/// - [`keyed_hash`](Offload::keyed_hash) is blake3's keyed hash, bit exact
///   (it names chunks; a different hash is a different chunk). It cannot
///   fail: a device that cannot take it computes it on the CPU.
/// - [`parity`](Offload::parity) takes `data_shards` equal, even-sized
///   shards and returns `parity_shards` recovery shards, byte-identical to
///   reed-solomon-simd's (pools decode them with it).
pub trait Offload: Send + Sync {
    /// A short name for logs and reports ("cpu", "qat0" …).
    fn name(&self) -> &str;

    /// Compresses `src` into one zstd frame at `level`, replacing `dst`.
    fn compress(&self, level: i32, src: &[u8], dst: &mut Vec<u8>) -> Result<(), Error>;

    /// Decompresses the zstd frame(s) in `src`, replacing `dst`; fails with
    /// [`Error::TooLarge`] if that would be more than `max` bytes.
    fn decompress(&self, src: &[u8], max: usize, dst: &mut Vec<u8>) -> Result<(), Error>;

    /// AES-256-GCM in place: `buf` holds the plaintext and on success the
    /// ciphertext followed by the 16-byte tag.
    fn seal(
        &self,
        key: &[u8; 32],
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<(), Error>;

    /// AES-256-GCM in place: `buf` holds the ciphertext and tag, and on
    /// success the plaintext. Fails with [`Error::Authentication`].
    fn open(
        &self,
        key: &[u8; 32],
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<(), Error>;

    /// blake3 keyed hash of `data`.
    fn keyed_hash(&self, key: &[u8; 32], data: &[u8]) -> [u8; 32];

    /// Reed-Solomon recovery shards for `data_shards` equal shards of even
    /// length, as reed-solomon-simd computes them.
    fn parity(
        &self,
        data_shards: usize,
        parity_shards: usize,
        shards: &[&[u8]],
    ) -> Result<Vec<Vec<u8>>, Error>;
}

/// The codec work on the host's CPU, with the workspace's codec crates
/// (which pick AES-NI, PCLMULQDQ, AVX2 … at run time; see
/// [`crate::features`]).
///
/// Each thread keeps one zstd compression context, one decompression
/// context and one Reed-Solomon encoder and reuses them from call to call;
/// AES-256-GCM expands its key on each call (negligible next to a chunk).
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu;

thread_local! {
    static COMPRESSOR: Cell<Option<Compressor<'static>>> = const { Cell::new(None) };
    static DECOMPRESSOR: Cell<Option<Decompressor<'static>>> = const { Cell::new(None) };
    static ENCODER: Cell<Option<ReedSolomonEncoder>> = const { Cell::new(None) };
}

/// Runs `f` on this thread's cached `T`, made by `make` if there is none
/// (first use, or a nested call holding it). The value is taken out of the
/// slot while `f` runs, so nothing is borrowed across the call.
fn with_local<T: 'static, R, E>(
    slot: &'static LocalKey<Cell<Option<T>>>,
    make: impl FnOnce() -> Result<T, E>,
    f: impl FnOnce(&mut T) -> R,
) -> Result<R, E> {
    let mut value = match slot.try_with(Cell::take) {
        Ok(Some(value)) => value,
        _ => make()?,
    };
    let out = f(&mut value);
    // If the thread is being torn down the slot is gone: drop the value.
    let _ = slot.try_with(|cell| cell.set(Some(value)));
    Ok(out)
}

fn check_level(level: i32) -> Result<(), Error> {
    let range = zstd::compression_level_range();
    if range.contains(&level) {
        Ok(())
    } else {
        Err(Error::Level {
            level,
            min: *range.start(),
            max: *range.end(),
        })
    }
}

impl Offload for Cpu {
    fn name(&self) -> &str {
        "cpu"
    }

    fn compress(&self, level: i32, src: &[u8], dst: &mut Vec<u8>) -> Result<(), Error> {
        check_level(level)?;
        dst.clear();
        dst.try_reserve(zstd::zstd_safe::compress_bound(src.len()))
            .map_err(|e| Error::Compress(format!("cannot allocate the output buffer: {e}")))?;
        with_local(
            &COMPRESSOR,
            || Compressor::new(level),
            |c| {
                c.set_compression_level(level)?;
                c.compress_to_buffer(src, dst)
            },
        )
        .and_then(|written| written)
        .map_err(|e| Error::Compress(e.to_string()))?;
        Ok(())
    }

    fn decompress(&self, src: &[u8], max: usize, dst: &mut Vec<u8>) -> Result<(), Error> {
        dst.clear();
        let single_frame = zstd::zstd_safe::find_frame_compressed_size(src) == Ok(src.len());
        match zstd::zstd_safe::get_frame_content_size(src) {
            Err(_) => Err(Error::Decompress(
                "not a zstd frame, or a damaged frame header".into(),
            )),
            // One frame that records its size (as `compress` writes them):
            // decode straight into a buffer of exactly that size.
            Ok(Some(size)) if single_frame => {
                let size = usize::try_from(size)
                    .ok()
                    .filter(|&size| size <= max)
                    .ok_or(Error::TooLarge { max })?;
                dst.try_reserve_exact(size)
                    .map_err(|e| Error::Decompress(format!("cannot allocate {size} bytes: {e}")))?;
                let written = with_local(&DECOMPRESSOR, Decompressor::new, |d| {
                    d.decompress_to_buffer(src, dst)
                })
                .and_then(|written| written)
                .map_err(|e| Error::Decompress(e.to_string()))?;
                if written != size {
                    dst.clear();
                    return Err(Error::Decompress(format!(
                        "the frame declares {size} bytes but holds {written}"
                    )));
                }
                Ok(())
            }
            // A frame that does not record its size (written by a streaming
            // encoder), or several frames: decode as a stream, stopping one
            // byte past max.
            Ok(_) => {
                let decoder = zstd::stream::read::Decoder::with_buffer(src)
                    .map_err(|e| Error::Decompress(e.to_string()))?;
                let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
                decoder.take(limit).read_to_end(dst).map_err(|e| {
                    dst.clear();
                    Error::Decompress(e.to_string())
                })?;
                if dst.len() > max {
                    dst.clear();
                    return Err(Error::TooLarge { max });
                }
                Ok(())
            }
        }
    }

    fn seal(
        &self,
        key: &[u8; 32],
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<(), Error> {
        Aes256Gcm::new(key.into())
            .encrypt_in_place(nonce.into(), aad, buf)
            .map_err(|_| Error::Seal(format!("{} bytes is more than GCM allows", buf.len())))
    }

    fn open(
        &self,
        key: &[u8; 32],
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<(), Error> {
        // aes-gcm 0.10.3 checks the tag before decrypting: on failure `buf`
        // still holds the ciphertext, never unauthenticated plaintext.
        Aes256Gcm::new(key.into())
            .decrypt_in_place(nonce.into(), aad, buf)
            .map_err(|_| Error::Authentication)
    }

    fn keyed_hash(&self, key: &[u8; 32], data: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(key, data).as_bytes()
    }

    fn parity(
        &self,
        data_shards: usize,
        parity_shards: usize,
        shards: &[&[u8]],
    ) -> Result<Vec<Vec<u8>>, Error> {
        if shards.len() != data_shards {
            return Err(Error::Parity(format!(
                "{data_shards} data shards expected, {} given",
                shards.len()
            )));
        }
        if parity_shards == 0 {
            return Ok(Vec::new());
        }
        let shard_bytes = shards.first().map_or(0, |shard| shard.len());
        with_local(
            &ENCODER,
            || ReedSolomonEncoder::new(data_shards, parity_shards, shard_bytes),
            |encoder| {
                encoder.reset(data_shards, parity_shards, shard_bytes)?;
                for shard in shards {
                    encoder.add_original_shard(shard)?;
                }
                let result = encoder.encode()?;
                Ok(result.recovery_iter().map(<[u8]>::to_vec).collect())
            },
        )
        .and_then(|recovery| recovery)
        .map_err(|e: reed_solomon_simd::Error| Error::Parity(e.to_string()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];
    const NONCE: [u8; 12] = [9; 12];

    fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| {
                if i % 7 < 4 {
                    b"coffer "[i % 7]
                } else {
                    (i * 31 % 251) as u8
                }
            })
            .collect()
    }

    #[test]
    fn compress_round_trips_at_every_benchmarked_level() {
        let cpu = Cpu;
        let data = sample(300_000);
        let mut frame = Vec::new();
        let mut back = Vec::new();
        for level in [1, 3, 9, 19, 0, -5] {
            cpu.compress(level, &data, &mut frame).unwrap();
            assert!(frame.len() < data.len(), "level {level}");
            cpu.decompress(&frame, data.len(), &mut back).unwrap();
            assert_eq!(back, data, "level {level}");
        }
        // dst is replaced, not appended to.
        let mut dst = vec![1, 2, 3];
        cpu.compress(3, b"", &mut dst).unwrap();
        cpu.decompress(&dst.clone(), 0, &mut dst).unwrap();
        assert!(dst.is_empty());
    }

    #[test]
    fn frames_are_standard_zstd() {
        let data = sample(100_000);
        let mut frame = Vec::new();
        Cpu.compress(3, &data, &mut frame).unwrap();
        assert_eq!(zstd::decode_all(&frame[..]).unwrap(), data);
        let other = zstd::encode_all(&data[..], 5).unwrap();
        let mut back = Vec::new();
        Cpu.decompress(&other, data.len(), &mut back).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn decompress_enforces_max() {
        let data = sample(50_000);
        let mut frame = Vec::new();
        Cpu.compress(3, &data, &mut frame).unwrap();
        let mut back = Vec::new();
        let err = Cpu
            .decompress(&frame, data.len() - 1, &mut back)
            .unwrap_err();
        assert!(matches!(err, Error::TooLarge { max } if max == data.len() - 1));

        // A streamed frame does not record its size: the limit still holds.
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        std::io::Write::write_all(&mut encoder, &data).unwrap();
        let streamed = encoder.finish().unwrap();
        assert!(matches!(
            zstd::zstd_safe::get_frame_content_size(&streamed),
            Ok(None)
        ));
        Cpu.decompress(&streamed, data.len(), &mut back).unwrap();
        assert_eq!(back, data);
        let err = Cpu.decompress(&streamed, 1000, &mut back).unwrap_err();
        assert!(matches!(err, Error::TooLarge { max: 1000 }));
        assert!(back.is_empty());
    }

    #[test]
    fn decompress_reads_concatenated_frames() {
        let a = sample(30_000);
        let b = sample(20_000);
        let mut frames = zstd::bulk::compress(&a, 3).unwrap();
        frames.extend(zstd::bulk::compress(&b, 1).unwrap());
        let mut back = Vec::new();
        Cpu.decompress(&frames, 50_000, &mut back).unwrap();
        assert_eq!(back, [a, b].concat());
        let err = Cpu.decompress(&frames, 40_000, &mut back).unwrap_err();
        assert!(matches!(err, Error::TooLarge { max: 40_000 }));
    }

    #[test]
    fn decompress_rejects_garbage_and_bad_levels() {
        let mut out = Vec::new();
        let err = Cpu
            .decompress(b"definitely not zstd", 100, &mut out)
            .unwrap_err();
        assert!(matches!(err, Error::Decompress(_)), "{err}");
        let mut frame = Vec::new();
        Cpu.compress(3, &sample(10_000), &mut frame).unwrap();
        let last = frame.len() - 5;
        frame[last] ^= 0xff;
        assert!(Cpu.decompress(&frame, 10_000, &mut out).is_err());
        let err = Cpu.compress(99, b"x", &mut out).unwrap_err();
        assert!(matches!(err, Error::Level { level: 99, .. }), "{err}");
    }

    #[test]
    fn seal_and_open_round_trip() {
        let data = sample(70_000);
        let mut buf = data.clone();
        Cpu.seal(&KEY, &NONCE, b"chunk 1", &mut buf).unwrap();
        assert_eq!(buf.len(), data.len() + 16);
        assert_ne!(&buf[..data.len()], &data[..]);
        Cpu.open(&KEY, &NONCE, b"chunk 1", &mut buf).unwrap();
        assert_eq!(buf, data);
    }

    #[test]
    fn seal_is_standard_aes_256_gcm() {
        // NIST GCM test case 14 (AES-256, zero key, zero IV, one zero block).
        let mut buf = vec![0u8; 16];
        Cpu.seal(&[0; 32], &[0; 12], b"", &mut buf).unwrap();
        let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"
        );
    }

    #[test]
    fn open_fails_on_wrong_key_nonce_aad_or_tampering() {
        let data = sample(4096);
        let mut sealed = data.clone();
        Cpu.seal(&KEY, &NONCE, b"aad", &mut sealed).unwrap();

        let mut buf = sealed.clone();
        let err = Cpu.open(&[8; 32], &NONCE, b"aad", &mut buf).unwrap_err();
        assert!(matches!(err, Error::Authentication), "{err}");
        assert_eq!(buf, sealed, "no plaintext is released");

        let mut buf = sealed.clone();
        let err = Cpu.open(&KEY, &[0; 12], b"aad", &mut buf).unwrap_err();
        assert!(matches!(err, Error::Authentication));

        let mut buf = sealed.clone();
        let err = Cpu.open(&KEY, &NONCE, b"other", &mut buf).unwrap_err();
        assert!(matches!(err, Error::Authentication));

        for at in [0, 100, sealed.len() - 1] {
            let mut buf = sealed.clone();
            buf[at] ^= 0x01;
            let err = Cpu.open(&KEY, &NONCE, b"aad", &mut buf).unwrap_err();
            assert!(matches!(err, Error::Authentication), "byte {at}");
        }

        let mut short = vec![0u8; 10];
        assert!(matches!(
            Cpu.open(&KEY, &NONCE, b"", &mut short),
            Err(Error::Authentication)
        ));
    }

    #[test]
    fn keyed_hash_is_blake3_keyed() {
        let data = sample(10_000);
        assert_eq!(
            Cpu.keyed_hash(&KEY, &data),
            *blake3::keyed_hash(&KEY, &data).as_bytes()
        );
        assert_ne!(Cpu.keyed_hash(&KEY, &data), Cpu.keyed_hash(&[8; 32], &data));
    }

    #[test]
    fn parity_recovers_lost_data_shards() {
        let data = sample(4 * 4096);
        let shards: Vec<&[u8]> = data.chunks(4096).collect();
        let parity = Cpu.parity(4, 2, &shards).unwrap();
        assert_eq!(parity.len(), 2);
        assert!(parity.iter().all(|p| p.len() == 4096));
        assert_eq!(
            parity,
            reed_solomon_simd::encode(4, 2, shards.iter()).unwrap(),
            "byte-identical to reed-solomon-simd"
        );

        // Lose data shards 1 and 3; recover them from the rest.
        let survivors = [(0, shards[0]), (2, shards[2])];
        let recovery = [(0, &parity[0][..]), (1, &parity[1][..])];
        let restored = reed_solomon_simd::decode(4, 2, survivors, recovery).unwrap();
        assert_eq!(restored[&1], shards[1]);
        assert_eq!(restored[&3], shards[3]);

        // The cached encoder serves other shapes next.
        let small: Vec<&[u8]> = data[..600].chunks(200).collect();
        let parity = Cpu.parity(3, 1, &small).unwrap();
        let restored =
            reed_solomon_simd::decode(3, 1, [(0, small[0]), (2, small[2])], [(0, &parity[0])])
                .unwrap();
        assert_eq!(restored[&1], small[1]);
    }

    #[test]
    fn parity_rejects_bad_shapes() {
        let data = sample(1000);
        let odd: Vec<&[u8]> = data[..999].chunks(333).collect();
        assert!(matches!(Cpu.parity(3, 2, &odd), Err(Error::Parity(_))));
        let shards: Vec<&[u8]> = data.chunks(250).collect();
        let err = Cpu.parity(3, 2, &shards).unwrap_err();
        assert!(
            err.to_string().contains("3 data shards expected, 4 given"),
            "{err}"
        );
        let uneven = [&data[..200], &data[..100]];
        assert!(matches!(Cpu.parity(2, 1, &uneven), Err(Error::Parity(_))));
        assert!(Cpu.parity(4, 0, &shards).unwrap().is_empty());
    }

    #[test]
    fn contexts_are_per_thread_and_shareable() {
        let cpu: &dyn Offload = &Cpu;
        let data = sample(200_000);
        std::thread::scope(|s| {
            for level in [1, 3, 7] {
                let data = &data;
                s.spawn(move || {
                    let mut frame = Vec::new();
                    let mut back = Vec::new();
                    for _ in 0..3 {
                        cpu.compress(level, data, &mut frame).unwrap();
                        cpu.decompress(&frame, data.len(), &mut back).unwrap();
                        assert_eq!(&back, data);
                    }
                });
            }
        });
    }
}
