//! Content-defined chunking (FastCDC 2020, normalisation level 1).
//!
//! Boundaries depend only on the bytes since the previous boundary, so an
//! insertion early in a file moves only the chunks around it and the rest
//! deduplicate. The gear table is perturbed by a seed derived from the store's
//! master key (`fastcdc`'s seeded gear), so boundaries differ between stores
//! and chunk sizes fingerprint less. This is a mitigation, not a proof: the
//! seed is 64 bits XORed into the table.

use std::io::Read;

use fastcdc::v2020::{self, Normalization};

use crate::{Error, Result};

/// Chunk size bounds, recorded in the store config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkerParams {
    /// Smallest chunk (except a file's last).
    pub min: u32,
    /// Target average.
    pub avg: u32,
    /// Largest chunk.
    pub max: u32,
}

impl ChunkerParams {
    /// File data: 256 KiB / 1 MiB / 4 MiB.
    pub const DATA: ChunkerParams = ChunkerParams {
        min: 256 * 1024,
        avg: 1024 * 1024,
        max: 4 * 1024 * 1024,
    };
    /// Manifests: 16 KiB / 64 KiB / 256 KiB, so a small change in a large
    /// tree rewrites little metadata.
    pub const MANIFEST: ChunkerParams = ChunkerParams {
        min: 16 * 1024,
        avg: 64 * 1024,
        max: 256 * 1024,
    };

    /// Checks the bounds `fastcdc` accepts (it panics otherwise), so a hostile
    /// or damaged config is an error, not a crash.
    pub fn validate(self) -> Result<ChunkerParams> {
        let ok = (v2020::MINIMUM_MIN..=v2020::MINIMUM_MAX).contains(&self.min)
            && (v2020::AVERAGE_MIN..=v2020::AVERAGE_MAX).contains(&self.avg)
            && (v2020::MAXIMUM_MIN..=v2020::MAXIMUM_MAX).contains(&self.max)
            && self.min <= self.avg
            && self.avg <= self.max
            && self.max <= crate::format::MAX_CHUNK;
        if ok {
            Ok(self)
        } else {
            Err(Error::Corrupt {
                what: "chunker parameters".into(),
                reason: format!("{self:?} out of range"),
            })
        }
    }
}

/// A seeded chunker configuration.
#[derive(Debug, Clone, Copy)]
pub struct Chunker {
    params: ChunkerParams,
    seed: u64,
}

impl Chunker {
    /// A chunker; `params` must have passed [`ChunkerParams::validate`].
    pub fn new(params: ChunkerParams, seed: u64) -> Result<Chunker> {
        Ok(Chunker {
            params: params.validate()?,
            seed,
        })
    }

    /// `fastcdc`'s own streaming chunker: the reference the tests hold
    /// [`Chunker::for_each_chunk`] to (the engine chunks through a reused
    /// window instead of a new buffer per chunk).
    #[cfg(test)]
    pub fn stream<R: Read>(&self, source: R) -> impl Iterator<Item = std::io::Result<Vec<u8>>> {
        fastcdc::v2020::StreamCDC::with_level_and_seed(
            source,
            self.params.min,
            self.params.avg,
            self.params.max,
            Normalization::Level1,
            self.seed,
        )
        .map(|r| r.map(|c| c.data).map_err(std::io::Error::from))
    }

    /// Chunks `source` through `window` (a buffer the caller keeps and
    /// reuses; it grows to max + min bytes), calling `f` with each chunk in
    /// order. The cuts are the same as [`Chunker::stream`]'s: the window
    /// always holds a whole chunk and the start of the next, so every cut
    /// but the last is final. Stops at the first error of the reader or `f`.
    pub fn for_each_chunk<R: Read, E: From<std::io::Error>>(
        &self,
        mut source: R,
        window: &mut Vec<u8>,
        mut f: impl FnMut(&[u8]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let cap = (self.params.max + self.params.min) as usize;
        if window.len() < cap {
            window.resize(cap, 0);
        }
        let (mut filled, mut eof) = (0usize, false);
        loop {
            while !eof && filled < cap {
                match source.read(&mut window[filled..cap]) {
                    Ok(0) => eof = true,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if filled == 0 {
                return Ok(());
            }
            let mut at = 0;
            for len in self.cut(&window[..filled], eof) {
                f(&window[at..at + len])?;
                at += len;
            }
            if at == 0 {
                // Cannot happen with validated parameters (a full window
                // always yields a cut); never loop forever if it did.
                return Err(std::io::Error::other("the chunker made no progress").into());
            }
            window.copy_within(at..filled, 0);
            filled -= at;
        }
    }

    /// Cut points of an in-memory buffer: the lengths of its chunks. When
    /// `last` is false the final piece is left out (its boundary may depend
    /// on data that follows).
    pub fn cut(&self, data: &[u8], last: bool) -> Vec<usize> {
        let mut out: Vec<usize> = v2020::FastCDC::with_level_and_seed(
            data,
            self.params.min,
            self.params.avg,
            self.params.max,
            Normalization::Level1,
            self.seed,
        )
        .map(|c| c.length)
        .collect();
        if !last {
            out.pop();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn data(len: usize, seed: u64) -> Vec<u8> {
        // xorshift: incompressible, reproducible
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn windowed_chunking_cuts_where_the_stream_does() {
        let c = Chunker::new(SMALL, 99).unwrap();
        for (len, seed) in [(0usize, 1u64), (100, 2), (300_000, 3), (1_000_003, 4)] {
            let d = data(len, seed);
            let streamed: Vec<Vec<u8>> = c.stream(&d[..]).map(|r| r.unwrap()).collect();
            let mut window = Vec::new();
            let mut windowed = Vec::new();
            c.for_each_chunk(&d[..], &mut window, |ch| -> std::io::Result<()> {
                windowed.push(ch.to_vec());
                Ok(())
            })
            .unwrap();
            assert_eq!(windowed, streamed, "len {len}");
            assert!(window.len() <= (SMALL.max + SMALL.min) as usize);
        }
    }

    const SMALL: ChunkerParams = ChunkerParams {
        min: 1024,
        avg: 4096,
        max: 16384,
    };

    #[test]
    fn chunks_reassemble_and_respect_bounds() {
        let c = Chunker::new(SMALL, 42).unwrap();
        let d = data(300_000, 7);
        let chunks: Vec<Vec<u8>> = c.stream(&d[..]).map(|r| r.unwrap()).collect();
        assert_eq!(chunks.concat(), d);
        for ch in &chunks[..chunks.len() - 1] {
            assert!(ch.len() >= 1024 && ch.len() <= 16384, "{}", ch.len());
        }
        let avg = d.len() / chunks.len();
        assert!((2048..=8192).contains(&avg), "average {avg}");
    }

    #[test]
    fn seed_changes_boundaries() {
        let d = data(200_000, 9);
        let a = Chunker::new(SMALL, 1).unwrap().cut(&d, true);
        let b = Chunker::new(SMALL, 2).unwrap().cut(&d, true);
        assert_ne!(a, b);
    }

    #[test]
    fn bad_params_are_an_error_not_a_panic() {
        for p in [
            ChunkerParams {
                min: 0,
                avg: 4096,
                max: 16384,
            },
            ChunkerParams {
                min: 8192,
                avg: 4096,
                max: 16384,
            },
            ChunkerParams {
                min: 1024,
                avg: 4096,
                max: u32::MAX,
            },
        ] {
            assert!(Chunker::new(p, 0).is_err(), "{p:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Boundary stability: inserting bytes near the start leaves the
        /// chunks after the insertion point (past one or two boundaries) unchanged.
        #[test]
        fn insertion_only_disturbs_nearby_chunks(seed in 1u64..1000, at in 0usize..20_000, ins in 1usize..500) {
            let c = Chunker::new(SMALL, seed).unwrap();
            let d = data(200_000, seed);
            let mut e = d[..at].to_vec();
            e.extend(data(ins, seed + 1));
            e.extend_from_slice(&d[at..]);
            let split = |v: &[u8]| -> Vec<Vec<u8>> {
                let mut out = Vec::new();
                let mut off = 0;
                for l in c.cut(v, true) { out.push(v[off..off + l].to_vec()); off += l; }
                out
            };
            let a = split(&d);
            let b = split(&e);
            let tail_a: std::collections::HashSet<_> = a.iter().skip(8).collect();
            let shared = b.iter().filter(|ch| tail_a.contains(ch)).count();
            // all but a handful of chunks after the edit are shared
            prop_assert!(shared + 10 >= tail_a.len(), "shared {} of {}", shared, tail_a.len());
            // and stream chunking agrees with in-memory cutting
            let streamed: Vec<Vec<u8>> = c.stream(&e[..]).map(|r| r.unwrap()).collect();
            prop_assert_eq!(streamed, b);
        }
    }
}
