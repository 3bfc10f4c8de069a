//! The self-benchmark: how fast each codec stage runs here, on one core and
//! on all threads, through `&dyn Offload` so a device is measured exactly
//! like the CPU.
//!
//! Method (see `docs/accel.md`):
//!
//! - **Data**: [`test_data`], [`BLOCKS`] deterministic blocks of
//!   [`BLOCK_SIZE`] (1 MiB, the chunker's average chunk), mixing text-like
//!   runs with pseudo-random runs (xorshift), which zstd level 3 compresses
//!   about 2:1: neither the best case (text) nor the worst (media).
//! - **Preparation**, untimed, on the calling thread: every block goes
//!   through every stage once. That warms the thread's contexts, gives the
//!   compression ratio per level, the frames the decompress test reads, the
//!   sealed blocks the open test opens, and checks the offload's results:
//!   frames decompress to the block, sealed blocks open to it, parity
//!   recovers a lost shard with reed-solomon-simd's decoder. An offload that
//!   returns wrong bytes fails the run with [`Error::Bench`].
//! - **Timing**: each test runs its operation over the blocks in turn until
//!   `seconds_per_test` has passed (at least one block), first on the
//!   calling thread (MB/s per core), then on `threads` threads at once, each
//!   warmed up by one untimed block and started together (aggregate MB/s,
//!   the sum of the threads' rates). Only the operation itself is timed, not
//!   resetting its buffer in between.
//! - **Units**: MB/s is 10^6 bytes per second of the operation's
//!   uncompressed data: the input of compress, seal, hash and parity (data
//!   shards); the output of decompress (what a restore delivers), and the
//!   plaintext of open (its input less the 16-byte tag).

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::features::{self, CpuFeatures};
use crate::offload::Offload;

/// Size of one test block: 1 MiB.
pub const BLOCK_SIZE: usize = 1 << 20;
/// Number of distinct test blocks the tests cycle through.
pub const BLOCKS: usize = 4;
/// The zstd level whose frames the decompress test reads (Coffer's default).
pub const DECOMPRESS_LEVEL: i32 = 3;
/// Data shards of the parity test.
pub const PARITY_DATA: usize = 4;
/// Parity shards of the parity test.
pub const PARITY_RECOVERY: usize = 2;
/// Shard block of the parity test: a pool's default stripe block (64 KiB),
/// so one test block is 4 stripes of 4 × 64 KiB.
pub const PARITY_SHARD: usize = 64 * 1024;

const KEY: [u8; 32] = *b"coffer accel benchmark key 2026!";
const AAD: &[u8] = b"coffer accel benchmark";

/// What to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchOptions {
    /// How long each test runs, single-threaded and again in parallel
    /// (at least one block each). Default 0.5.
    pub seconds_per_test: f64,
    /// Threads of the parallel runs; 0 = `available_parallelism`.
    pub threads: usize,
    /// zstd levels to measure, in display order. Default 1, 3, 9, 19.
    pub zstd_levels: Vec<i32>,
    /// Also measure Reed-Solomon 4+2 parity (disk pools). Default true.
    pub include_parity: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            seconds_per_test: 0.5,
            threads: 0,
            zstd_levels: vec![1, 3, 9, 19],
            include_parity: true,
        }
    }
}

/// Which stage a result measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Stage {
    /// zstd compression at a level.
    Compress(i32),
    /// zstd decompression (of level-3 frames).
    Decompress,
    /// AES-256-GCM encryption.
    Seal,
    /// AES-256-GCM decryption.
    Open,
    /// blake3 keyed hash.
    Hash,
    /// Reed-Solomon 4+2 parity.
    Parity,
}

/// One test's throughput.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// Display name ("zstd-3 compress", "AES-256-GCM seal" …).
    pub name: String,
    /// The stage measured.
    pub kind: Stage,
    /// MB/s on one thread.
    pub single_mb_s: f64,
    /// Aggregate MB/s of [`BenchReport::threads`] threads at once.
    pub parallel_mb_s: f64,
}

/// A benchmark run: the machine, the offload and what each stage did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BenchReport {
    /// The host CPU.
    pub features: CpuFeatures,
    /// [`Offload::name`] of what was measured.
    pub offload: String,
    /// Threads of the parallel runs.
    pub threads: usize,
    /// Uncompressed over compressed size of the test data, per zstd level.
    pub zstd_ratio: Vec<(i32, f64)>,
    /// The tests, in run order.
    pub results: Vec<BenchResult>,
}

impl BenchReport {
    /// The first result of a stage.
    pub fn result(&self, kind: Stage) -> Option<&BenchResult> {
        self.results.iter().find(|r| r.kind == kind)
    }

    /// The compression ratio measured at a zstd level.
    pub fn ratio(&self, level: i32) -> Option<f64> {
        self.zstd_ratio
            .iter()
            .find(|(l, _)| *l == level)
            .map(|(_, ratio)| *ratio)
    }
}

/// The benchmark's test data: [`BLOCKS`] blocks of [`BLOCK_SIZE`] bytes,
/// the same on every machine and every run.
///
/// Each block is a sequence of runs of 0.5–4 KiB: about a fifth are
/// pseudo-random bytes (incompressible, like media or already compressed
/// files), the rest text-like (log lines built from a small vocabulary and
/// pseudo-random numbers). zstd level 3 compresses it about 2:1.
pub fn test_data() -> Vec<Vec<u8>> {
    let mut rng = XorShift(0x5eed_c0ff_ee00_2026);
    (0..BLOCKS).map(|_| test_block(&mut rng)).collect()
}

/// xorshift64* (Vigna): fast, deterministic, good enough for test data.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() >> 33) as usize % n
    }
}

const WORDS: [&str; 48] = [
    "backup",
    "chunk",
    "container",
    "sealed",
    "snapshot",
    "restore",
    "verify",
    "pool",
    "member",
    "shard",
    "tape",
    "volume",
    "barcode",
    "filemark",
    "retention",
    "lock",
    "catalog",
    "asset",
    "profile",
    "job",
    "started",
    "finished",
    "wrote",
    "read",
    "bytes",
    "files",
    "skipped",
    "unchanged",
    "deduplicated",
    "compressed",
    "encrypted",
    "INFO",
    "WARN",
    "DEBUG",
    "the",
    "of",
    "to",
    "in",
    "for",
    "with",
    "/var/lib/coffer",
    "/srv/data",
    "/home/alice",
    "report.pdf",
    "index.db",
    "mail",
    "photos",
    "2026-03-14",
];

/// Out of 32 runs, how many are pseudo-random bytes.
const RANDOM_RUNS_PER_32: u64 = 7;

fn test_block(rng: &mut XorShift) -> Vec<u8> {
    let mut block = Vec::with_capacity(BLOCK_SIZE + 4096);
    while block.len() < BLOCK_SIZE {
        let run = 512 + rng.below(3584);
        let end = block.len() + run;
        if rng.next() % 32 < RANDOM_RUNS_PER_32 {
            while block.len() < end {
                block.extend_from_slice(&rng.next().to_le_bytes());
            }
        } else {
            while block.len() < end {
                let line = format!(
                    "{:02}:{:02}:{:02}.{:03} {} {} {} {} {} {}\n",
                    rng.below(24),
                    rng.below(60),
                    rng.below(60),
                    rng.below(1000),
                    WORDS[rng.below(WORDS.len())],
                    WORDS[rng.below(WORDS.len())],
                    rng.below(100_000),
                    WORDS[rng.below(WORDS.len())],
                    WORDS[rng.below(WORDS.len())],
                    WORDS[rng.below(WORDS.len())],
                );
                block.extend_from_slice(line.as_bytes());
            }
        }
    }
    block.truncate(BLOCK_SIZE);
    block
}

/// The 12-byte nonce for a counter: unique per operation of a run.
fn nonce(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&counter.to_le_bytes());
    n
}

/// One timed operation: data bytes it counts and the time it took.
type Sample = Result<(u64, Duration), Error>;
/// A thread's test loop body; its argument is the iteration number.
type Worker<'a> = Box<dyn FnMut(u64) -> Sample + 'a>;
/// Makes a worker for thread `t`.
type MakeWorker<'a> = dyn Fn(u64) -> Worker<'a> + Sync + 'a;

/// Runs `worker` until `limit` has passed (at least once): MB/s.
fn time_loop(worker: &mut Worker<'_>, first: u64, limit: Duration) -> Result<f64, Error> {
    let start = Instant::now();
    let (mut bytes, mut busy) = (0u64, Duration::ZERO);
    let mut i = first;
    loop {
        let (n, took) = worker(i)?;
        bytes += n;
        busy += took;
        i += 1;
        if start.elapsed() >= limit {
            break;
        }
    }
    Ok(bytes as f64 / 1e6 / busy.as_secs_f64().max(1e-9))
}

/// Aggregate MB/s of `threads` threads running a worker each.
fn parallel(
    test: &str,
    threads: usize,
    limit: Duration,
    make: &MakeWorker<'_>,
) -> Result<f64, Error> {
    let barrier = Barrier::new(threads);
    let failed = |message: &str| Error::Bench {
        test: test.to_string(),
        message: message.to_string(),
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads as u64)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    // Warm up (contexts, buffers) before the common start; a
                    // panic here must not leave the others at the barrier.
                    let warm = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let mut worker = make(t);
                        worker(t * 1000).map(|_| worker)
                    }));
                    barrier.wait();
                    match warm {
                        Ok(Ok(mut worker)) => time_loop(&mut worker, t * 1000 + 1, limit),
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err(failed("a worker thread panicked")),
                    }
                })
            })
            .collect();
        let mut total = 0.0;
        for handle in handles {
            total += handle
                .join()
                .map_err(|_| failed("a worker thread panicked"))??;
        }
        Ok(total)
    })
}

/// Runs the tests and collects their results.
struct Runner<'p> {
    threads: usize,
    limit: Duration,
    progress: &'p mut dyn FnMut(&str),
    results: Vec<BenchResult>,
}

impl Runner<'_> {
    fn progress(&mut self, line: &str) {
        (self.progress)(line);
    }

    /// Times a test on one thread, then on `threads` threads.
    fn measure(&mut self, name: String, kind: Stage, make: &MakeWorker<'_>) -> Result<(), Error> {
        self.progress(&format!("{name}: running"));
        let single_mb_s = time_loop(&mut make(0), 0, self.limit)?;
        let parallel_mb_s = if self.threads > 1 {
            parallel(&name, self.threads, self.limit, make)?
        } else {
            single_mb_s
        };
        self.progress(&format!(
            "{name}: {single_mb_s:.1} MB/s on 1 core, {parallel_mb_s:.1} MB/s on {}",
            crate::tune::count(self.threads, "thread")
        ));
        self.results.push(BenchResult {
            name,
            kind,
            single_mb_s,
            parallel_mb_s,
        });
        Ok(())
    }
}

/// Runs the benchmark on `offload`. `progress` gets a line before and after
/// each test.
pub fn run(
    offload: &dyn Offload,
    opts: &BenchOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<BenchReport, Error> {
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let limit = Duration::try_from_secs_f64(opts.seconds_per_test).unwrap_or(Duration::ZERO);
    let mut levels: Vec<i32> = Vec::new();
    for &level in &opts.zstd_levels {
        if !levels.contains(&level) {
            levels.push(level);
        }
    }

    progress("preparing the test data");
    let blocks = test_data();
    let blocks = &blocks;
    let mut runner = Runner {
        threads,
        limit,
        progress,
        results: Vec::new(),
    };
    let check = |test: &str, ok: bool, message: &str| {
        if ok {
            Ok(())
        } else {
            Err(Error::Bench {
                test: test.to_string(),
                message: message.to_string(),
            })
        }
    };

    // Compression, one test per level; level 3's frames feed decompress.
    let mut ratios = Vec::new();
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut compress_levels = levels.clone();
    if !compress_levels.contains(&DECOMPRESS_LEVEL) {
        compress_levels.push(DECOMPRESS_LEVEL);
    }
    for &level in &compress_levels {
        let name = format!("zstd-{level} compress");
        runner.progress(&format!("{name}: preparing"));
        let mut level_frames = Vec::with_capacity(BLOCKS);
        let mut back = Vec::new();
        for block in blocks {
            let mut frame = Vec::new();
            offload.compress(level, block, &mut frame)?;
            offload.decompress(&frame, BLOCK_SIZE, &mut back)?;
            check(
                &name,
                back == *block,
                "the frame does not decompress to its block",
            )?;
            level_frames.push(frame);
        }
        let packed: usize = level_frames.iter().map(Vec::len).sum();
        if level == DECOMPRESS_LEVEL {
            frames = level_frames;
        }
        if !levels.contains(&level) {
            continue;
        }
        ratios.push((level, (BLOCKS * BLOCK_SIZE) as f64 / packed.max(1) as f64));
        runner.measure(name, Stage::Compress(level), &|t| {
            let mut dst = Vec::new();
            Box::new(move |i| {
                let src = &blocks[((t + i) % BLOCKS as u64) as usize];
                let start = Instant::now();
                offload.compress(level, src, &mut dst)?;
                Ok((src.len() as u64, start.elapsed()))
            })
        })?;
    }
    let frames = &frames;
    runner.measure("zstd decompress".into(), Stage::Decompress, &|t| {
        let mut dst = Vec::new();
        Box::new(move |i| {
            let src = &frames[((t + i) % BLOCKS as u64) as usize];
            let start = Instant::now();
            offload.decompress(src, BLOCK_SIZE, &mut dst)?;
            Ok((dst.len() as u64, start.elapsed()))
        })
    })?;

    // AES-256-GCM: check, keep sealed blocks for the open test.
    runner.progress("AES-256-GCM: preparing");
    let mut sealed = Vec::with_capacity(BLOCKS);
    for (i, block) in blocks.iter().enumerate() {
        let mut buf = block.clone();
        offload.seal(&KEY, &nonce(i as u64), AAD, &mut buf)?;
        check(
            "AES-256-GCM seal",
            buf.len() == block.len() + 16,
            "no 16-byte tag",
        )?;
        let mut opened = buf.clone();
        offload.open(&KEY, &nonce(i as u64), AAD, &mut opened)?;
        check(
            "AES-256-GCM open",
            opened == *block,
            "the sealed block does not open to itself",
        )?;
        sealed.push(buf);
    }
    let sealed = &sealed;
    runner.measure("AES-256-GCM seal".into(), Stage::Seal, &|t| {
        let mut buf = blocks[(t % BLOCKS as u64) as usize].clone();
        Box::new(move |i| {
            // Reseal the previous ciphertext: no copy between operations.
            buf.truncate(BLOCK_SIZE);
            let start = Instant::now();
            offload.seal(&KEY, &nonce((t << 32) + i), AAD, &mut buf)?;
            Ok((BLOCK_SIZE as u64, start.elapsed()))
        })
    })?;
    runner.measure("AES-256-GCM open".into(), Stage::Open, &|t| {
        let mut buf = Vec::with_capacity(BLOCK_SIZE + 16);
        Box::new(move |i| {
            let j = ((t + i) % BLOCKS as u64) as usize;
            buf.clear();
            buf.extend_from_slice(&sealed[j]);
            let start = Instant::now();
            offload.open(&KEY, &nonce(j as u64), AAD, &mut buf)?;
            Ok((buf.len() as u64, start.elapsed()))
        })
    })?;

    runner.progress("blake3 keyed: preparing");
    check(
        "blake3 keyed",
        offload.keyed_hash(&KEY, &blocks[0]) == *blake3::keyed_hash(&KEY, &blocks[0]).as_bytes(),
        "the hash is not blake3's keyed hash",
    )?;
    runner.measure("blake3 keyed".into(), Stage::Hash, &|t| {
        Box::new(move |i| {
            let src = &blocks[((t + i) % BLOCKS as u64) as usize];
            let start = Instant::now();
            black_box(offload.keyed_hash(&KEY, black_box(src)));
            Ok((src.len() as u64, start.elapsed()))
        })
    })?;

    if opts.include_parity {
        let name = format!("Reed-Solomon {PARITY_DATA}+{PARITY_RECOVERY} parity");
        runner.progress(&format!("{name}: preparing"));
        for block in blocks {
            let stripe: Vec<&[u8]> = block[..PARITY_DATA * PARITY_SHARD]
                .chunks(PARITY_SHARD)
                .collect();
            let parity = offload.parity(PARITY_DATA, PARITY_RECOVERY, &stripe)?;
            check(
                &name,
                parity.len() == PARITY_RECOVERY,
                "wrong number of parity shards",
            )?;
            // Lose data shard 0, rebuild it from the others and the parity.
            let survivors = (1..PARITY_DATA).map(|j| (j, stripe[j]));
            let recovery = parity.iter().enumerate().take(1);
            let restored =
                reed_solomon_simd::decode(PARITY_DATA, PARITY_RECOVERY, survivors, recovery)
                    .map_err(|e| Error::Parity(e.to_string()))?;
            check(
                &name,
                restored.get(&0).map(Vec::as_slice) == Some(stripe[0]),
                "the parity does not recover a lost data shard",
            )?;
        }
        runner.measure(name, Stage::Parity, &|t| {
            Box::new(move |i| {
                let block = &blocks[((t + i) % BLOCKS as u64) as usize];
                let mut took = Duration::ZERO;
                for stripe in block.chunks(PARITY_DATA * PARITY_SHARD) {
                    let shards: Vec<&[u8]> = stripe.chunks(PARITY_SHARD).collect();
                    let start = Instant::now();
                    black_box(offload.parity(PARITY_DATA, PARITY_RECOVERY, &shards)?);
                    took += start.elapsed();
                }
                Ok((block.len() as u64, took))
            })
        })?;
    }

    runner.progress("done");
    Ok(BenchReport {
        features: features::detect(),
        offload: offload.name().to_string(),
        threads,
        zstd_ratio: ratios,
        results: runner.results,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::offload::Cpu;

    fn tiny() -> BenchOptions {
        BenchOptions {
            seconds_per_test: 0.01,
            threads: 2,
            zstd_levels: vec![1, 3],
            include_parity: true,
        }
    }

    #[test]
    fn test_data_is_deterministic_and_semi_compressible() {
        let a = test_data();
        assert_eq!(a.len(), BLOCKS);
        assert!(a.iter().all(|b| b.len() == BLOCK_SIZE));
        assert_eq!(a, test_data());
        assert_ne!(a[0], a[1]);
        let packed: usize = a
            .iter()
            .map(|b| zstd::bulk::compress(b, 3).unwrap().len())
            .sum();
        let ratio = (BLOCKS * BLOCK_SIZE) as f64 / packed as f64;
        assert!((1.8..2.2).contains(&ratio), "zstd-3 ratio {ratio}");
    }

    #[test]
    fn tiny_run_reports_every_test() {
        let mut lines = Vec::new();
        let report = run(&Cpu, &tiny(), &mut |line| lines.push(line.to_string())).unwrap();
        assert_eq!(report.offload, "cpu");
        assert_eq!(report.threads, 2);
        assert_eq!(report.features, features::detect());
        let names: Vec<&str> = report.results.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "zstd-1 compress",
                "zstd-3 compress",
                "zstd decompress",
                "AES-256-GCM seal",
                "AES-256-GCM open",
                "blake3 keyed",
                "Reed-Solomon 4+2 parity",
            ]
        );
        let kinds: Vec<Stage> = report.results.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                Stage::Compress(1),
                Stage::Compress(3),
                Stage::Decompress,
                Stage::Seal,
                Stage::Open,
                Stage::Hash,
                Stage::Parity,
            ]
        );
        for r in &report.results {
            assert!(r.single_mb_s.is_finite() && r.single_mb_s > 0.0, "{r:?}");
            assert!(
                r.parallel_mb_s.is_finite() && r.parallel_mb_s > 0.0,
                "{r:?}"
            );
        }
        assert_eq!(
            report
                .zstd_ratio
                .iter()
                .map(|(l, _)| *l)
                .collect::<Vec<_>>(),
            [1, 3]
        );
        assert!(report.zstd_ratio.iter().all(|(_, ratio)| *ratio > 1.0));
        assert!(lines.iter().any(|l| l.starts_with("zstd-3 compress: ")));
        assert_eq!(lines.last().map(String::as_str), Some("done"));

        // serde_json may round the last bit of a float: compare the rest
        // exactly and the numbers closely.
        let json = serde_json::to_string(&report).unwrap();
        let back: BenchReport = serde_json::from_str(&json).unwrap();
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(b.abs());
        assert_eq!(back.features, report.features);
        assert_eq!(back.threads, report.threads);
        for (b, r) in back.zstd_ratio.iter().zip(&report.zstd_ratio) {
            assert!(b.0 == r.0 && close(b.1, r.1));
        }
        assert_eq!(back.results.len(), report.results.len());
        for (b, r) in back.results.iter().zip(&report.results) {
            assert_eq!((&b.name, b.kind), (&r.name, r.kind));
            assert!(close(b.single_mb_s, r.single_mb_s) && close(b.parallel_mb_s, r.parallel_mb_s));
        }
    }

    #[test]
    fn one_thread_without_parity_or_level_3() {
        let opts = BenchOptions {
            seconds_per_test: 0.0,
            threads: 1,
            zstd_levels: vec![2, 2],
            include_parity: false,
        };
        let report = run(&Cpu, &opts, &mut |_| {}).unwrap();
        assert_eq!(report.threads, 1);
        let kinds: Vec<Stage> = report.results.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                Stage::Compress(2),
                Stage::Decompress,
                Stage::Seal,
                Stage::Open,
                Stage::Hash,
            ]
        );
        assert!(
            report
                .results
                .iter()
                .all(|r| r.parallel_mb_s == r.single_mb_s)
        );
        assert_eq!(report.zstd_ratio.len(), 1);
    }

    /// A device that gets decompression wrong.
    struct Broken;

    impl Offload for Broken {
        fn name(&self) -> &str {
            "broken"
        }
        fn compress(&self, level: i32, src: &[u8], dst: &mut Vec<u8>) -> Result<(), Error> {
            Cpu.compress(level, src, dst)
        }
        fn decompress(&self, src: &[u8], max: usize, dst: &mut Vec<u8>) -> Result<(), Error> {
            Cpu.decompress(src, max, dst)?;
            if let Some(b) = dst.get_mut(12345) {
                *b ^= 1;
            }
            Ok(())
        }
        fn seal(&self, k: &[u8; 32], n: &[u8; 12], a: &[u8], b: &mut Vec<u8>) -> Result<(), Error> {
            Cpu.seal(k, n, a, b)
        }
        fn open(&self, k: &[u8; 32], n: &[u8; 12], a: &[u8], b: &mut Vec<u8>) -> Result<(), Error> {
            Cpu.open(k, n, a, b)
        }
        fn keyed_hash(&self, key: &[u8; 32], data: &[u8]) -> [u8; 32] {
            Cpu.keyed_hash(key, data)
        }
        fn parity(&self, d: usize, p: usize, s: &[&[u8]]) -> Result<Vec<Vec<u8>>, Error> {
            Cpu.parity(d, p, s)
        }
    }

    #[test]
    fn wrong_results_fail_the_run() {
        let err = run(&Broken, &tiny(), &mut |_| {}).unwrap_err();
        assert!(
            matches!(&err, Error::Bench { test, .. } if test == "zstd-1 compress"),
            "{err}"
        );
    }

    #[test]
    fn bad_levels_fail_the_run() {
        let opts = BenchOptions {
            zstd_levels: vec![1, 99],
            ..tiny()
        };
        let err = run(&Cpu, &opts, &mut |_| {}).unwrap_err();
        assert!(matches!(err, Error::Level { level: 99, .. }), "{err}");
    }
}
