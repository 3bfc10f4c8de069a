//! The replication benchmark: a store pushed to a second appliance's
//! replica over TLS 1.3 on loopback, with both certificates pinned, by the
//! same `coffer_replicate::push` / `serve` the daemons run.
//!
//! Two figures, each against its own yardstick measured in the same run:
//! - **Throughput** of a full push (the old tree's store into an empty
//!   replica) against a plain TLS stream of the same byte count over the
//!   same kind of link (same identities, same cipher suite, the receiver
//!   only counting bytes). Target: at least 80 % of the plain stream.
//! - **Bytes on the link** of the upgrade step (the new tree backed up into
//!   the same store, then pushed to the replica holding the old one)
//!   against the bytes of the objects that backup added. Target: at most
//!   1.05×. Bytes are counted at the TLS plaintext, both ways, so every
//!   message (inventory, hashes, framing) counts, not only object bytes.
//!
//! The replica lives on tmpfs (`/dev/shm`), as the tape benchmark's library
//! does, so the figure is Coffer's side of the link rather than this
//! machine's disk.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use coffer_replicate::tls::{self, Identity, Pins};
use coffer_replicate::{TokenBucket, push, serve};
use coffer_store::{BlobStore, DirStore, StoreConfig};
use serde::Serialize;

use crate::data;
use crate::measure::{Cmd, Runner};
use crate::report::median;

const TIMEOUT: Duration = Duration::from_secs(120);

/// A stream that counts the bytes read from and written to it.
struct Counting<S> {
    inner: S,
    read: u64,
    written: u64,
}

impl<S: Read> Read for Counting<S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

impl<S: Write> Write for Counting<S> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Object key → size, of what a replication copies.
fn objects(store: &Path) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for top in ["config", "keys", "data", "index", "snapshots"] {
        let mut stack = vec![store.join(top)];
        while let Some(p) = stack.pop() {
            let md = match std::fs::metadata(&p) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            if md.is_dir() {
                for e in std::fs::read_dir(&p)? {
                    stack.push(e?.path());
                }
            } else {
                let key = p.strip_prefix(store)?.to_string_lossy().into_owned();
                out.insert(key, md.len());
            }
        }
    }
    Ok(out)
}

/// The two sides' TLS configurations, each pinning the other.
struct Link {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

impl Link {
    fn new() -> Result<Link> {
        let a = Identity::generate("bench-primary")?;
        let b = Identity::generate("bench-offsite")?;
        Ok(Link {
            server: tls::server_config(&b, Pins::new(vec![a.fingerprint()]))?,
            client: tls::client_config(&a, Pins::new(vec![b.fingerprint()]))?,
        })
    }

    /// Runs `serve_one` on one accepted connection in a thread while
    /// `client` runs on a connection to it; returns both results and each
    /// side's CPU seconds (user and system, of its own thread).
    fn session<S, C, T, U>(&self, serve_one: S, client: C) -> Result<(T, U, f64, f64)>
    where
        S: FnOnce(&mut tls::ServerLink) -> Result<T> + Send + 'static,
        C: FnOnce(&mut tls::ClientLink) -> Result<U>,
        T: Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        let config = self.server.clone();
        let server = std::thread::spawn(move || -> Result<(T, f64)> {
            let (tcp, _) = listener.accept()?;
            let cpu = thread_cpu_s()?;
            let (mut link, _) = tls::accept(tcp, config, TIMEOUT)?;
            let t = serve_one(&mut link)?;
            Ok((t, thread_cpu_s()? - cpu))
        });
        let cpu = thread_cpu_s()?;
        let (mut link, _) = tls::connect(&addr, self.client.clone(), TIMEOUT)?;
        let u = client(&mut link);
        drop(link);
        let client_cpu = thread_cpu_s()? - cpu;
        let (t, server_cpu) = server
            .join()
            .map_err(|_| anyhow::anyhow!("the receiving thread panicked"))??;
        Ok((t, u?, server_cpu, client_cpu))
    }
}

/// This thread's CPU seconds so far, user and system.
fn thread_cpu_s() -> Result<f64> {
    use nix::sys::resource::{UsageWho, getrusage};
    let u = getrusage(UsageWho::RUSAGE_THREAD)?;
    let s = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Ok(s(u.user_time()) + s(u.system_time()))
}

/// One push of `store` into the replica root `root`: wall seconds, the
/// report, and the plaintext bytes on the link (sent, received).
fn push_once(link: &Link, store: &Path, root: &Path) -> Result<Pushed> {
    let blobs = DirStore::new(store);
    let id = StoreConfig::read(&blobs)?.store_id.0;
    let root = root.to_path_buf();
    let started = Instant::now();
    let (served, (report, counted), receiver_cpu_s, sender_cpu_s) = link.session(
        move |l| Ok(serve(l, &root, &|_, _| Ok(()))?),
        |l| {
            let mut c = Counting {
                inner: l,
                read: 0,
                written: 0,
            };
            let r = push(
                &mut c,
                &blobs as &dyn BlobStore,
                id,
                "bench",
                &mut TokenBucket::new(0),
                &mut |_| {},
            )?;
            Ok((r, (c.written, c.read)))
        },
    )?;
    let wall_s = started.elapsed().as_secs_f64();
    if !report.mismatched.is_empty() || report.verified != report.sent {
        bail!(
            "the replica did not verify: {} sent, {} verified, {} mismatched",
            report.sent,
            report.verified,
            report.mismatched.len()
        );
    }
    Ok(Pushed {
        wall_s,
        objects: report.objects,
        sent: report.sent,
        object_bytes: report.bytes_sent,
        link_sent: counted.0,
        link_received: counted.1,
        stored: served.stored,
        sender_cpu_s,
        receiver_cpu_s,
    })
}

#[derive(Debug, Clone, Serialize)]
struct Pushed {
    wall_s: f64,
    objects: u64,
    sent: u64,
    object_bytes: u64,
    link_sent: u64,
    link_received: u64,
    stored: u64,
    sender_cpu_s: f64,
    receiver_cpu_s: f64,
}

/// A plain stream's figures.
#[derive(Debug, Clone, Serialize)]
struct Plain {
    wall_s: f64,
    sender_cpu_s: f64,
    receiver_cpu_s: f64,
}

/// A plain TLS stream of `bytes` over the same kind of link.
fn plain_once(link: &Link, bytes: u64) -> Result<Plain> {
    let mut buf = vec![0u8; 1 << 20];
    data::Rng::new(11).fill(&mut buf);
    let started = Instant::now();
    let (got, (), receiver_cpu_s, sender_cpu_s) = link.session(
        |l| {
            let mut sink = vec![0u8; 1 << 20];
            let mut n = 0u64;
            loop {
                match l.read(&mut sink) {
                    Ok(0) => break,
                    Ok(k) => n += k as u64,
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(e.into()),
                }
            }
            // The sender waits for this: the figure includes delivery.
            l.write_all(&n.to_le_bytes())?;
            l.flush()?;
            Ok(n)
        },
        |l| {
            let mut left = bytes;
            while left > 0 {
                let k = left.min(buf.len() as u64) as usize;
                l.write_all(&buf[..k])?;
                left -= k as u64;
            }
            l.flush()?;
            l.conn.send_close_notify();
            l.flush()?;
            let mut ack = [0u8; 8];
            l.read_exact(&mut ack)?;
            Ok(())
        },
    )?;
    let wall = started.elapsed().as_secs_f64();
    if got != bytes {
        bail!("the plain stream delivered {got} of {bytes} bytes");
    }
    Ok(Plain {
        wall_s: wall,
        sender_cpu_s,
        receiver_cpu_s,
    })
}

#[derive(Debug, Serialize)]
struct Results {
    old_tree: PathBuf,
    new_tree: PathBuf,
    runs: u32,
    full: Vec<Pushed>,
    plain: Vec<Plain>,
    /// Both ends on this machine: link bytes over wall time.
    full_median_mb_s: f64,
    plain_median_mb_s: f64,
    wall_ratio: f64,
    /// One core per end (two appliances are two machines): link bytes over
    /// the busier end's CPU time.
    full_per_core_mb_s: f64,
    plain_per_core_mb_s: f64,
    per_core_ratio: f64,
    upgrade_new_objects: usize,
    upgrade_new_bytes: u64,
    upgrade: Pushed,
    upgrade_link_ratio: f64,
}

pub fn run(workdir: &Path, bin: &Path, old: &Path, new: &Path, runs: u32) -> Result<()> {
    let base = workdir.join("replicate");
    let runner = Runner::new(&base.join("logs"))?;
    let store = base.join("store");
    data::remove_tree(&store)?;
    runner.run("init", &Cmd::coffer(bin, &store).arg("init"))?;
    runner.run(
        "backup (old tree)",
        &Cmd::coffer_backup(bin, &store, "full", old),
    )?;
    let before = objects(&store)?;
    let replica = data::shm_scratch("coffer-bench-replica")?;
    let link = Link::new()?;

    // Warm-up (not counted): the store into the page cache, both paths.
    data::remove_tree(&replica)?;
    std::fs::create_dir_all(&replica)?;
    let warm = push_once(&link, &store, &replica).context("warm-up push")?;
    plain_once(&link, warm.link_sent).context("warm-up plain stream")?;
    let mut full = Vec::new();
    let mut plain = Vec::new();
    // Alternating, so a slow moment of the machine hits both.
    for r in 0..runs {
        data::remove_tree(&replica)?;
        std::fs::create_dir_all(&replica)?;
        let p = push_once(&link, &store, &replica)?;
        let w = plain_once(&link, p.link_sent)?;
        let mb = p.link_sent as f64 / 1e6;
        eprintln!(
            "run {}: full push {} objects, {mb:.0} MB in {:.2} s ({:.0} MB/s; CPU s sender {:.2}, receiver {:.2}); \
             plain TLS {:.2} s ({:.0} MB/s; CPU s {:.2}, {:.2})",
            r + 1,
            p.sent,
            p.wall_s,
            mb / p.wall_s,
            p.sender_cpu_s,
            p.receiver_cpu_s,
            w.wall_s,
            mb / w.wall_s,
            w.sender_cpu_s,
            w.receiver_cpu_s
        );
        full.push(p);
        plain.push(w);
    }
    let mb = |p: &Pushed| p.link_sent as f64 / 1e6;
    let full_mb_s = median(full.iter().map(|p| mb(p) / p.wall_s).collect());
    let plain_mb_s = median(
        full.iter()
            .zip(&plain)
            .map(|(p, w)| mb(p) / w.wall_s)
            .collect(),
    );
    let full_core = median(
        full.iter()
            .map(|p| mb(p) / p.sender_cpu_s.max(p.receiver_cpu_s))
            .collect(),
    );
    let plain_core = median(
        full.iter()
            .zip(&plain)
            .map(|(p, w)| mb(p) / w.sender_cpu_s.max(w.receiver_cpu_s))
            .collect(),
    );

    // The upgrade step: the new tree into the same store, then a push to
    // the replica that holds the old one.
    runner.run(
        "backup (new tree)",
        &Cmd::coffer_backup(bin, &store, "incremental", new),
    )?;
    let after = objects(&store)?;
    let added: Vec<(&String, &u64)> = after
        .iter()
        .filter(|(k, _)| !before.contains_key(*k))
        .collect();
    let new_bytes: u64 = added.iter().map(|(_, n)| **n).sum();
    let up = push_once(&link, &store, &replica)?;
    data::remove_tree(&replica)?;
    if up.sent != added.len() as u64 {
        bail!(
            "the upgrade push sent {} objects; the backup added {}",
            up.sent,
            added.len()
        );
    }
    let link_bytes = up.link_sent + up.link_received;
    let res = Results {
        old_tree: old.to_path_buf(),
        new_tree: new.to_path_buf(),
        runs,
        full_median_mb_s: full_mb_s,
        plain_median_mb_s: plain_mb_s,
        wall_ratio: full_mb_s / plain_mb_s,
        full_per_core_mb_s: full_core,
        plain_per_core_mb_s: plain_core,
        per_core_ratio: full_core / plain_core,
        upgrade_new_objects: added.len(),
        upgrade_new_bytes: new_bytes,
        upgrade_link_ratio: link_bytes as f64 / new_bytes as f64,
        upgrade: up.clone(),
        full,
        plain,
    };
    let mut md = String::new();
    writeln!(
        md,
        "| replication over TLS 1.3 on loopback, replica on tmpfs | Coffer | yardstick | ratio | target |"
    )?;
    writeln!(md, "|---|---:|---:|---:|---|")?;
    writeln!(
        md,
        "| full push of {} objects, {:.0} MB, one core per end (busier end's CPU), median of {runs} | {:.0} MB/s | plain TLS stream {:.0} MB/s | **{:.2}** | ≥ 0.80 |",
        res.full[0].sent,
        mb(&res.full[0]),
        full_core,
        plain_core,
        res.per_core_ratio
    )?;
    writeln!(
        md,
        "| the same, both ends sharing this machine's {} cores (wall) | {:.0} MB/s | plain TLS stream {:.0} MB/s | {:.2} | — |",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        full_mb_s,
        plain_mb_s,
        res.wall_ratio
    )?;
    writeln!(
        md,
        "| upgrade push, {} new objects: bytes on the link ({:.2} MB sent, {:.3} MB received) | {:.2} MB | {:.2} MB of new objects | **{:.3}** | ≤ 1.05 |",
        added.len(),
        up.link_sent as f64 / 1e6,
        up.link_received as f64 / 1e6,
        link_bytes as f64 / 1e6,
        new_bytes as f64 / 1e6,
        res.upgrade_link_ratio
    )?;
    println!("{md}");
    std::fs::write(base.join("results.md"), &md)?;
    std::fs::write(base.join("results.json"), serde_json::to_vec_pretty(&res)?)?;
    eprintln!("results: {}", base.join("results.json").display());
    Ok(())
}
