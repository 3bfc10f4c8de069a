//! Offsite replication in the daemon: this appliance's TLS identity (made at
//! first start, its key sealed under a key derived from the store's master
//! key), the endpoint other appliances push to and pull from, pairing, the
//! replication jobs, and the replica lag monitor.
//!
//! The protocol itself is `coffer-replicate` (`docs/formats/replication.md`);
//! this module decides who may talk (the remotes table's pinned
//! certificates), where replicas go (`replication.replicas_dir`), how fast
//! (`replication.*bandwidth*`), and records everything in the job log, the
//! audit log and alerts.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use coffer_catalog::{Catalog, Pending, RemoteRow};
use coffer_engine::{Progress, Stop};
use coffer_replicate::TokenBucket;
use coffer_replicate::tls::{self, Fingerprint, Identity, Pins};
use coffer_replicate::wire::{self, Msg};
use coffer_store::{BlobStore, DirStore};
use coffer_types::api::{
    Pairing, RemoteKind, RemoteSpec, ReplicaLag, ReplicationIdentity, ReplicationStats, Source,
};
use coffer_types::{JobKind, JobStatus, Scope};

use crate::Inner;
use crate::joblog::JobLog;

/// Alert kind: an asset's newest copy at a remote is older than its RPO.
pub(crate) const LAG_ALERT: &str = "replica-lag";
/// Alert kind: a replication job failed.
pub(crate) const FAILED_ALERT: &str = "replication-failed";

const IDENTITY_FILE: &str = "replication-identity.sealed";
const IDENTITY_PURPOSE: &str = "replication identity";

/// This appliance's identity: read from the state directory (sealed), or
/// made and sealed there at first start.
pub(crate) fn load_identity(
    state: &Path,
    master: &coffer_keys::MasterKey,
    host: &str,
) -> Result<Identity> {
    let path = state.join(IDENTITY_FILE);
    let wrap = master.sealing_key(IDENTITY_PURPOSE);
    match std::fs::read(&path) {
        Ok(bytes) => Identity::open(&bytes, &wrap).with_context(|| {
            format!(
                "opening the replication identity {} (sealed under this store's key)",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = Identity::generate(&format!("coffer-{host}"))?;
            crate::write_private(&path, &id.seal(&wrap)?)?;
            tracing::info!(fingerprint = %id.fingerprint(), "made this appliance's replication identity");
            Ok(id)
        }
        Err(e) => Err(anyhow!("reading {}: {e}", path.display())),
    }
}

/// The answer to `remote_list`'s identity part.
pub(crate) fn identity_view(inner: &Inner) -> ReplicationIdentity {
    ReplicationIdentity {
        fingerprint: inner.replication.identity.fingerprint().to_string(),
        listen: inner.replication.listening.get().map(ToString::to_string),
    }
}

/// The daemon's replication state.
pub(crate) struct Replication {
    pub(crate) identity: Identity,
    /// The endpoint's bound address, once listening.
    pub(crate) listening: std::sync::OnceLock<std::net::SocketAddr>,
}

fn timeout(inner: &Inner) -> Duration {
    Duration::from_secs(inner.config().replication.timeout.secs().max(1))
}

/// A probe runs inside an API request (which holds the catalog): short.
fn probe_timeout(inner: &Inner) -> Duration {
    timeout(inner).min(Duration::from_secs(5))
}

fn pins(remotes: &[RemoteRow]) -> Result<Pins> {
    let mut list = Vec::new();
    for r in remotes {
        if let Some(p) = &r.pinned {
            list.push(p.parse::<Fingerprint>()?);
        }
    }
    Ok(Pins::new(list))
}

/// The endpoint: a thread accepting TLS connections, one thread per
/// session. Stops when `stop` is set.
pub(crate) fn start_endpoint(
    inner: Arc<Inner>,
    stop: Arc<AtomicBool>,
) -> Result<Option<std::thread::JoinHandle<()>>> {
    let Some(listen) = inner.config().replication.listen.clone() else {
        return Ok(None);
    };
    let listener = TcpListener::bind(&listen)
        .with_context(|| format!("binding the replication endpoint to {listen}"))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let _ = inner.replication.listening.set(addr);
    tracing::info!(address = %addr, fingerprint = %inner.replication.identity.fingerprint(), "replication endpoint listening");
    let h = std::thread::Builder::new()
        .name("replication".into())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((tcp, peer)) => {
                        let inner = inner.clone();
                        let _ = std::thread::Builder::new()
                            .name("replication-session".into())
                            .spawn(move || {
                                if let Err(e) = session(&inner, tcp, peer) {
                                    tracing::warn!(peer = %peer, error = %format!("{e:#}"), "replication session failed");
                                }
                            });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the replication endpoint cannot accept");
                        std::thread::sleep(Duration::from_millis(500));
                    }
                }
            }
        })?;
    Ok(Some(h))
}

/// One inbound session: handshake with pinned certificates, then a push
/// to us (Hello) or a pull from us (Pull).
fn session(inner: &Inner, tcp: TcpStream, peer: std::net::SocketAddr) -> Result<()> {
    tcp.set_nonblocking(false)?;
    let remotes = inner.catalog()?.remotes()?;
    let config = tls::server_config(&inner.replication.identity, pins(&remotes)?)?;
    let (mut link, fp) = match tls::accept(tcp, config, timeout(inner)) {
        Ok(x) => x,
        Err(e) => {
            let cat = inner.catalog()?;
            inner.audit(
                &cat,
                "system",
                Source::System,
                "replication.connect",
                &peer.to_string(),
                "refused",
                &format!("{e}"),
            );
            return Err(e.into());
        }
    };
    let hex = fp.to_string();
    let Some(remote) = remotes
        .into_iter()
        .find(|r| r.pinned.as_deref() == Some(hex.as_str()))
    else {
        bail!("a pinned certificate {fp} that no remote holds");
    };
    let name = remote.spec.name.clone();
    let first = wire::recv(&mut link)?;
    let replicas = inner.config().replication.replicas_dir;
    match first {
        Msg::Hello { .. } => {
            crate::create_private_dir(&replicas)?;
            let own = inner.repo.config().store_id.0;
            let accept = |store: &[u8; 16], _source: &str| -> Result<(), String> {
                accept_push(inner, own, store, &name, &hex)
            };
            let outcome = coffer_replicate::serve_from(&mut link, first, &replicas, &accept);
            let cat = inner.catalog()?;
            match outcome {
                Ok(r) => {
                    tracing::info!(remote = %name, stored = r.stored, bytes = r.bytes, "replica received");
                    cat.replica_received(&hex::encode(r.store), r.stored, r.bytes, inner.now_ms())?;
                    inner.audit(
                        &cat,
                        &name,
                        Source::System,
                        "replication.receive",
                        &hex::encode(r.store),
                        if r.discarded.is_empty() { "ok" } else { "warning" },
                        &format!(
                            "from {name} ({peer}): {} object(s), {} byte(s) stored; {} discarded as damaged",
                            r.stored,
                            r.bytes,
                            r.discarded.len()
                        ),
                    );
                    Ok(())
                }
                Err(e) => {
                    inner.audit(
                        &cat,
                        &name,
                        Source::System,
                        "replication.receive",
                        "",
                        "failed",
                        &format!("from {name} ({peer}): {e}"),
                    );
                    Err(e.into())
                }
            }
        }
        Msg::Pull { store, source } => {
            let own = inner.repo.config().store_id.0;
            let dir = replicas.join(hex::encode(store));
            let blobs: Arc<dyn BlobStore> = if store == own {
                inner.repo.blobs().clone()
            } else if dir.join("config").exists() {
                Arc::new(DirStore::new(&dir))
            } else {
                let why = format!(
                    "this appliance holds no copy of store {}",
                    hex::encode(store)
                );
                let _ = wire::send(
                    &mut link,
                    &Msg::Refused {
                        message: why.clone(),
                    },
                );
                bail!("{name} asked for {}: {why}", hex::encode(store));
            };
            let mut bucket = TokenBucket::new(0);
            let outcome = coffer_replicate::push(
                &mut link,
                blobs.as_ref(),
                store,
                &inner.host,
                &mut bucket,
                &mut |_| {},
            );
            let cat = inner.catalog()?;
            let (result, detail) = match &outcome {
                Ok(r) => (
                    "ok",
                    format!(
                        "to {name} ({source}, {peer}): {} object(s) sent, {} verified",
                        r.sent, r.verified
                    ),
                ),
                Err(e) => ("failed", format!("to {name} ({peer}): {e}")),
            };
            inner.audit(
                &cat,
                &name,
                Source::System,
                "replication.send",
                &hex::encode(store),
                result,
                &detail,
            );
            outcome.map(|_| ()).map_err(Into::into)
        }
        m => bail!("{name} opened with {m:?}"),
    }
}

/// Whether `remote` (presenting certificate `fingerprint`) may push into
/// the copy of `store` kept here: never into this appliance's own store id,
/// and only into a copy bound to it (the first push binds it). A paired
/// peer so cannot add to, or fill up, another appliance's offsite copy.
fn accept_push(
    inner: &Inner,
    own: [u8; 16],
    store: &[u8; 16],
    remote: &str,
    fingerprint: &str,
) -> Result<(), String> {
    let id = hex::encode(store);
    if *store == own {
        return Err(format!(
            "store {id} is this appliance's own store, not a copy it keeps"
        ));
    }
    let cat = inner.catalog().map_err(|e| format!("{e:#}"))?;
    let owner = cat
        .claim_replica(&id, remote, fingerprint, inner.now_ms())
        .map_err(|e| e.to_string())?;
    if owner != remote {
        return Err(format!(
            "the copy of store {id} kept here belongs to remote '{owner}'; no other appliance may write to it"
        ));
    }
    Ok(())
}

/// Checks a remote's name and shape before it is stored.
fn check_spec(spec: &RemoteSpec) -> Result<()> {
    let ok = !spec.name.is_empty()
        && spec.name.len() <= 64
        && spec
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !ok {
        bail!(
            "remote name '{}' must be 1 to 64 letters, digits, '-', '_' or '.'",
            spec.name
        );
    }
    match spec.kind {
        RemoteKind::Appliance => {
            if spec.s3.is_some() {
                bail!("an appliance remote takes no S3 settings");
            }
            if spec.address.is_none() && spec.fingerprint.is_none() {
                bail!(
                    "an appliance remote needs its address (to replicate to it) or its fingerprint (to let it replicate here)"
                );
            }
            if let Some(f) = &spec.fingerprint {
                f.parse::<Fingerprint>()?;
            }
        }
        RemoteKind::S3 => {
            let Some(s3) = &spec.s3 else {
                bail!("an S3 remote needs its bucket (s3 settings)");
            };
            if s3.bucket.is_empty() {
                bail!("an S3 remote needs its bucket");
            }
            if spec.address.is_some() || spec.fingerprint.is_some() {
                bail!("an S3 remote takes no address or fingerprint; give its endpoint");
            }
            if s3.access_key_id.is_some() != s3.secret_access_key.is_some() {
                bail!(
                    "give both the access key id and the secret access key, or neither (the daemon's environment then provides them)"
                );
            }
        }
    }
    Ok(())
}

/// Adds a remote. An appliance remote with an address is probed for the
/// fingerprint it presents; one given with `fingerprint` is pinned at once
/// (if it is reachable, only when it presents that fingerprint). An S3
/// remote's secret is sealed under the store's key.
pub(crate) fn add_remote(inner: &Inner, cat: &Catalog, spec: &RemoteSpec) -> Result<Pairing> {
    check_spec(spec)?;
    let ours = inner.replication.identity.fingerprint().to_string();
    let mut sealed = None;
    let (mut seen, mut pinned) = (None, None);
    match spec.kind {
        RemoteKind::Appliance => {
            if let Some(addr) = &spec.address {
                match tls::probe(addr, probe_timeout(inner)) {
                    Ok(f) => seen = Some(f.to_string()),
                    Err(e) if spec.fingerprint.is_none() => {
                        bail!("cannot reach {addr} to learn its fingerprint: {e}")
                    }
                    Err(e) => {
                        tracing::warn!(address = %addr, error = %e, "remote not reachable now; pinning the fingerprint given")
                    }
                }
            }
            if let Some(f) = &spec.fingerprint {
                let f = f.parse::<Fingerprint>()?.to_string();
                if let Some(s) = &seen
                    && *s != f
                {
                    bail!(
                        "{} presents fingerprint {s}, not the {f} given: do not pair (check the address, and the fingerprint on its console)",
                        spec.address.as_deref().unwrap_or("the remote")
                    );
                }
                pinned = Some(f);
            }
        }
        RemoteKind::S3 => {
            if let Some(s3) = &spec.s3
                && let Some(secret) = &s3.secret_access_key
            {
                sealed = Some(crate::s3::seal_secret(inner, &spec.name, secret)?);
            }
        }
    }
    let mut stored = spec.clone();
    stored.fingerprint = None;
    cat.add_remote(
        &stored,
        pinned.as_deref(),
        seen.as_deref(),
        sealed.as_deref(),
        inner.now_ms(),
    )?;
    let paired = pinned.is_some() || spec.kind == RemoteKind::S3;
    let message = match (spec.kind, paired, &seen) {
        (RemoteKind::S3, _, _) => format!("remote '{}' added", spec.name),
        (_, true, _) => format!(
            "remote '{}' paired; on it, pair this appliance too: coffer remote add <name> --appliance <this address> --fingerprint {ours}",
            spec.name
        ),
        (_, false, Some(s)) => format!(
            "remote '{}' presents fingerprint {s}. Compare it with `coffer remote list` on that appliance, then: coffer remote pair {} --fingerprint {s}",
            spec.name, spec.name
        ),
        (_, false, None) => format!("remote '{}' added, not paired", spec.name),
    };
    Ok(Pairing {
        remote: spec.name.clone(),
        ours,
        theirs: seen,
        paired,
        message,
    })
}

/// Probes an appliance remote again; with `fingerprint` (what the operator
/// read on the remote's console) pins it if that is what it presents.
pub(crate) fn pair(
    inner: &Inner,
    cat: &Catalog,
    name: &str,
    fingerprint: Option<&str>,
) -> Result<Pairing> {
    let row = cat.remote(name)?;
    if row.spec.kind != RemoteKind::Appliance {
        bail!("remote '{name}' is an S3 bucket; only appliances are paired");
    }
    let ours = inner.replication.identity.fingerprint().to_string();
    let seen = match &row.spec.address {
        Some(addr) => Some(tls::probe(addr, probe_timeout(inner))?.to_string()),
        None => None,
    };
    let want = fingerprint.map(str::parse::<Fingerprint>).transpose()?;
    let pin = match (&want, &seen) {
        (Some(w), Some(s)) if w.to_string() != *s => bail!(
            "remote '{name}' presents fingerprint {s}, not the {w} confirmed: not paired (someone may be in the middle; check the address)"
        ),
        (Some(w), _) => Some(w.to_string()),
        (None, _) => None,
    };
    cat.set_remote_fingerprint(name, seen.as_deref(), pin.as_deref(), inner.now_ms())?;
    let paired = pin.is_some() || row.pinned.is_some();
    let message = match (&pin, &seen) {
        (Some(p), _) => format!("remote '{name}' paired: certificate {p} pinned"),
        (None, Some(s)) => format!(
            "remote '{name}' presents {s}; this appliance is {ours}. If {s} is what its console shows, run: coffer remote pair {name} --fingerprint {s}"
        ),
        (None, None) => format!("remote '{name}' has no address to probe"),
    };
    Ok(Pairing {
        remote: name.to_string(),
        ours,
        theirs: seen,
        paired,
        message,
    })
}

/// Which earlier job a queued replication retries (an interrupted one).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RetryOf {
    pub(crate) job: Option<i64>,
    pub(crate) attempt: u32,
}

/// Queues a replication to `remote` unless one is already queued.
pub(crate) fn enqueue(
    inner: &Inner,
    cat: &Catalog,
    remote: &str,
    identity: &str,
    source: Source,
    profile: Option<String>,
    retry: RetryOf,
) -> Result<Option<i64>> {
    let row = cat.remote(remote)?;
    if row.spec.kind == RemoteKind::Appliance && row.spec.address.is_none() {
        bail!("remote '{remote}' has no address; it replicates here, not the other way");
    }
    let already = cat.queued_jobs()?.into_iter().any(|p| {
        p.view.record.kind == JobKind::Replicate && p.view.remote.as_deref() == Some(remote)
    });
    if already {
        return Ok(None);
    }
    let id = cat.queue_job(&coffer_catalog::QueuedJob {
        profile,
        attempt: retry.attempt.max(1),
        retry_of: retry.job,
        remote: Some(remote.to_string()),
        ..inner.job(JobKind::Replicate, identity, source)
    })?;
    tracing::info!(job_id = id, remote, identity, "replication queued");
    inner.jobs.wake.notify_one();
    Ok(Some(id))
}

/// After a good backup of an asset: a replication to each of its
/// profile's remotes.
pub(crate) fn after_backup(inner: &Inner, cat: &Catalog, profile: Option<&str>) {
    if !inner.config().replication.after_backup {
        return;
    }
    let Some(profile) = profile.and_then(|p| cat.profile(p).ok()) else {
        return;
    };
    if profile.replicate_schedule.is_some() {
        // Its replications run on their own calendar (the scheduler's).
        return;
    }
    for remote in &profile.replicate_to {
        match enqueue(
            inner,
            cat,
            remote,
            crate::scheduler::SCHEDULER,
            Source::Scheduler,
            Some(profile.name.clone()),
            RetryOf::default(),
        ) {
            Ok(Some(id)) => inner.audit(
                cat,
                crate::scheduler::SCHEDULER,
                Source::Scheduler,
                "job.queue",
                remote,
                "ok",
                &format!(
                    "job {id}: replication after a backup (profile {})",
                    profile.name
                ),
            ),
            Ok(None) => {}
            Err(e) => {
                let msg = format!("profile {} replicates to '{remote}': {e:#}", profile.name);
                tracing::error!("{msg}");
                let _ = cat.raise_alert(FAILED_ALERT, remote, &msg, inner.now_ms());
            }
        }
    }
}

/// Shuts a link's socket when the job is asked to stop, so a session
/// blocked on the network ends at once.
struct StopWatch {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StopWatch {
    fn new(progress: &Arc<Progress>, sock: TcpStream) -> StopWatch {
        let done = Arc::new(AtomicBool::new(false));
        let (d, p) = (done.clone(), progress.clone());
        let thread = std::thread::spawn(move || {
            while !d.load(Ordering::SeqCst) {
                if p.stop_requested().is_some() {
                    let _ = sock.shutdown(std::net::Shutdown::Both);
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        StopWatch {
            done,
            thread: Some(thread),
        }
    }
}

impl Drop for StopWatch {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The bandwidth limit of a job to a remote limited to `remote_mb_s`: the
/// configured limits and windows at the clock's time, asked again every
/// 30 seconds while the job runs (a window opening mid-transfer applies).
fn limiter(inner: &Inner, remote_mb_s: u32) -> TokenBucket {
    let config = inner.config();
    let tz = config.time_zone();
    let replication = config.replication;
    let clock = inner.clock.clone();
    TokenBucket::scheduled(
        move || {
            let minute = jiff::Timestamp::from_millisecond(clock.now_ms())
                .map(|t| {
                    let z = t.to_zoned(tz.clone());
                    u32::try_from(i32::from(z.hour()) * 60 + i32::from(z.minute())).unwrap_or(0)
                })
                .unwrap_or(0);
            replication.rate_at(minute, remote_mb_s)
        },
        Duration::from_secs(30),
    )
}

/// The remote job `p` works with, by name and as stored.
fn job_remote(inner: &Inner, p: &Pending) -> Result<(String, RemoteRow)> {
    let name = p
        .view
        .remote
        .clone()
        .ok_or_else(|| anyhow!("job {} names no remote", p.view.record.id))?;
    let remote = inner.catalog()?.remote(&name)?;
    Ok((name, remote))
}

/// Runs replication job `p` to its end.
pub(crate) fn execute(
    inner: &Inner,
    p: &Pending,
    progress: &Arc<Progress>,
    log: &JobLog,
) -> Result<()> {
    let r = &p.view.record;
    let (name, remote) = job_remote(inner, p)?;
    let cat = start(inner, p)?;
    // Every snapshot the store holds now is what this run can cover (its
    // record is written last, so a snapshot in the catalog is whole).
    let covers = cat.snapshots(None)?.iter().map(|s| s.finished_ms).max();
    let started = Instant::now();
    let mut bucket = limiter(inner, remote.spec.bandwidth_mb_s);
    let rate = bucket.rate();
    log.info(&format!(
        "replication to '{name}' ({}) started by {}; bandwidth {}",
        remote.spec.kind.as_str(),
        r.identity,
        if rate == 0 {
            "unlimited".to_string()
        } else {
            format!("{} MB/s", rate / 1_000_000)
        }
    ));
    let outcome: Result<ReplicationStats> = match remote.spec.kind {
        RemoteKind::Appliance => push_to_appliance(inner, &remote, progress, &mut bucket),
        RemoteKind::S3 => crate::s3::mirror_to(inner, &remote, progress, &mut bucket, log),
    };
    // A run that failed midway still says how far it got.
    let mut stats = match &outcome {
        Ok(s) => s.clone(),
        Err(_) => ReplicationStats {
            sent: progress.files.load(Ordering::Relaxed),
            bytes_sent: progress.bytes.load(Ordering::Relaxed),
            ..ReplicationStats::default()
        },
    };
    stats.remote = name.clone();
    stats.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let now = inner.now_ms();
    let shared = inner.catalog()?;
    let source = p.view.source.unwrap_or(Source::System);
    match outcome {
        Ok(_) if stats.mismatched == 0 => {
            let msg = format!(
                "replicated to '{name}': {} object(s) of {} sent ({} bytes, {} resumed), {} already there, {} verified by the remote; {:.1} MB/s over {:.1} s",
                stats.sent,
                stats.objects,
                stats.bytes_sent,
                stats.bytes_resumed,
                stats.skipped,
                stats.verified,
                stats.throughput() / 1e6,
                stats.duration_ms as f64 / 1000.0
            );
            log.info(&msg);
            cat.finish_replication(
                r.id,
                JobStatus::Success,
                std::slice::from_ref(&msg),
                &stats,
                covers,
                now,
            )?;
            shared.clear_alert(FAILED_ALERT, &name, now)?;
            inner.audit(
                &shared,
                &r.identity,
                source,
                "job.finish",
                &name,
                "ok",
                &format!("job {}: {msg}", r.id),
            );
        }
        other => {
            let stopped = progress.stop_requested();
            let (status, msg) = match (&other, stopped) {
                (_, Some(Stop::Cancel)) => {
                    (JobStatus::Cancelled, "replication cancelled".to_string())
                }
                (_, Some(Stop::Shutdown)) => (
                    JobStatus::Interrupted,
                    "replication interrupted by shutdown; it resumes where it stopped next time"
                        .to_string(),
                ),
                (Ok(_), None) => (
                    JobStatus::Failed,
                    format!(
                        "replication to '{name}' failed verification: {} object(s) arrived damaged (the remote discarded them; they are sent again next time)",
                        stats.mismatched
                    ),
                ),
                (Err(e), None) => (
                    JobStatus::Failed,
                    format!(
                        "replication to '{name}' failed after {} object(s), {} bytes (what arrived whole stays; the rest resumes next time): {e:#}",
                        stats.sent, stats.bytes_sent
                    ),
                ),
            };
            log.error(&msg);
            cat.finish_replication(r.id, status, std::slice::from_ref(&msg), &stats, None, now)?;
            let result = match status {
                JobStatus::Cancelled => "cancelled",
                JobStatus::Interrupted => "interrupted",
                _ => "failed",
            };
            inner.audit(
                &shared,
                &r.identity,
                source,
                "job.finish",
                &name,
                result,
                &format!("job {}: {msg}", r.id),
            );
            if status == JobStatus::Failed {
                shared.raise_alert(FAILED_ALERT, &name, &msg, now)?;
            }
        }
    }
    Ok(())
}

/// A TLS link to a paired appliance remote, pinned to its certificate
/// alone, shut when the job is asked to stop.
fn connect(
    inner: &Inner,
    remote: &RemoteRow,
    progress: &Arc<Progress>,
) -> Result<(tls::ClientLink, StopWatch)> {
    let name = &remote.spec.name;
    let addr = remote
        .spec
        .address
        .as_deref()
        .ok_or_else(|| anyhow!("remote '{name}' has no address"))?;
    let pin = remote.pinned.as_deref().ok_or_else(|| {
        anyhow!("remote '{name}' is not paired: confirm its fingerprint with `coffer remote pair {name}`")
    })?;
    let pins = Pins::new(vec![pin.parse::<Fingerprint>()?]);
    let config = tls::client_config(&inner.replication.identity, pins)?;
    let (link, _) = tls::connect(addr, config, timeout(inner))
        .with_context(|| format!("connecting to '{name}' at {addr}"))?;
    let watch = StopWatch::new(progress, link.get_ref().try_clone()?);
    Ok((link, watch))
}

/// The job's catalog connection, with queued job `p` marked running.
fn start(inner: &Inner, p: &Pending) -> Result<Catalog> {
    inner.start_job(&p.view.record)
}

fn push_to_appliance(
    inner: &Inner,
    remote: &RemoteRow,
    progress: &Arc<Progress>,
    bucket: &mut TokenBucket,
) -> Result<ReplicationStats> {
    let name = &remote.spec.name;
    let (mut link, _watch) = connect(inner, remote, progress)?;
    let store = inner.repo.config().store_id.0;
    let report = coffer_replicate::push(
        &mut link,
        inner.repo.blobs().as_ref(),
        store,
        &inner.host,
        bucket,
        &mut |p| {
            progress.bytes.store(p.bytes, Ordering::Relaxed);
            progress.files.store(p.sent, Ordering::Relaxed);
        },
    )
    .map_err(|e| match progress.stop_requested() {
        Some(_) => anyhow!("stopped"),
        None => anyhow::Error::from(e),
    })?;
    Ok(ReplicationStats {
        remote: name.clone(),
        objects: report.objects,
        skipped: report.skipped,
        sent: report.sent,
        bytes_sent: report.bytes_sent,
        bytes_resumed: report.bytes_resumed,
        verified: report.verified,
        mismatched: report.mismatched.len() as u64,
        locked: 0,
        duration_ms: 0,
    })
}

/// Pulls `store`'s copy from an appliance remote into directory `into`
/// (resuming what an earlier pull left there), returning where it is.
pub(crate) fn pull_from_appliance(
    inner: &Inner,
    remote: &RemoteRow,
    store: &[u8; 16],
    into: &Path,
    progress: &Arc<Progress>,
    log: &JobLog,
) -> Result<PathBuf> {
    let name = &remote.spec.name;
    let (mut link, _watch) = connect(inner, remote, progress)?;
    crate::create_private_dir(into)?;
    let r = coffer_replicate::pull(&mut link, store, &inner.host, into)
        .with_context(|| format!("pulling store {} from '{name}'", hex::encode(store)))?;
    log.info(&format!(
        "pulled store {} from '{name}': {} object(s), {} bytes; {} discarded as damaged",
        hex::encode(store),
        r.stored,
        r.bytes,
        r.discarded.len()
    ));
    if !r.discarded.is_empty() {
        bail!(
            "{} object(s) arrived damaged from '{name}' and were discarded; pull again",
            r.discarded.len()
        );
    }
    Ok(into.join(hex::encode(store)))
}

/// Every asset whose profile replicates, per remote: how old its newest
/// copy there is, against its RPO.
pub(crate) fn lag(cat: &Catalog, now: i64) -> Result<Vec<ReplicaLag>> {
    let remotes = cat.remotes()?;
    let profiles = cat.profiles()?;
    let mut out = Vec::new();
    for reg in cat.register()? {
        let a = reg.asset;
        let Some(profile) = profiles
            .iter()
            .find(|p| a.profile.as_ref() == Some(&p.name))
        else {
            continue;
        };
        if profile.replicate_to.is_empty() {
            continue;
        }
        let snaps = cat.snapshots(Some(&a.name))?;
        for rname in &profile.replicate_to {
            let covers = remotes
                .iter()
                .find(|r| &r.spec.name == rname)
                .and_then(|r| r.covers_until_ms);
            // A snapshot is on the copy if it had finished when the last
            // good run began; its age is from when it started.
            let newest = covers.and_then(|c| {
                snaps
                    .iter()
                    .filter(|s| s.finished_ms <= c)
                    .map(|s| s.started_ms)
                    .max()
            });
            // An asset with no backup at all is the RPO monitor's business.
            let breached = !snaps.is_empty() && newest.is_none_or(|t| now - t > a.rpo.ms());
            out.push(ReplicaLag {
                asset: a.name.clone(),
                remote: rname.clone(),
                rpo: a.rpo,
                newest_copy: newest.map(coffer_types::rfc3339_ms),
                breached,
            });
        }
    }
    Ok(out)
}

/// Raises `replica-lag` for every asset whose copy at a remote is older
/// than its RPO, and clears the ones that caught up.
pub(crate) fn monitor(inner: &Inner, cat: &Catalog, now: i64) -> Result<()> {
    let lags = lag(cat, now)?;
    for l in &lags {
        let subject = format!("{}@{}", l.asset, l.remote);
        if l.breached {
            let message = match &l.newest_copy {
                Some(t) => format!(
                    "{}: the newest copy at '{}' is from {t}, older than its RPO of {}",
                    l.asset, l.remote, l.rpo
                ),
                None => format!(
                    "{}: no backup of it has reached '{}' yet",
                    l.asset, l.remote
                ),
            };
            inner.system_alert(cat, LAG_ALERT, &subject, &message, now)?;
        } else if cat.clear_alert(LAG_ALERT, &subject, now)? {
            inner.audit(
                cat,
                "system",
                Source::System,
                "alert.clear",
                &subject,
                LAG_ALERT,
                "the remote's copy is within the RPO again",
            );
        }
    }
    // Alerts of pairs that no longer replicate.
    for a in cat.alerts(false)? {
        if a.kind == LAG_ALERT
            && !lags
                .iter()
                .any(|l| format!("{}@{}", l.asset, l.remote) == a.subject)
        {
            cat.clear_alert(LAG_ALERT, &a.subject, now)?;
        }
    }
    Ok(())
}

/// What a queued remote restore needs that the job log must not hold (the
/// passphrase): kept in memory until the job runs. A restart forgets it,
/// and the job then fails saying so.
pub(crate) struct RestoreOrder {
    pub(crate) store: Option<String>,
    pub(crate) snapshot: String,
    pub(crate) target: PathBuf,
    pub(crate) passphrase: coffer_keys::Passphrase,
}

/// Queues a restore from `remote`'s copy.
pub(crate) fn enqueue_restore(
    inner: &Inner,
    cat: &Catalog,
    remote: &str,
    order: RestoreOrder,
    identity: &str,
    source: Source,
) -> Result<i64> {
    cat.remote(remote)?;
    if !order.target.is_absolute() {
        bail!(
            "the target must be an absolute path, not {}",
            order.target.display()
        );
    }
    if order.target.exists()
        && std::fs::read_dir(&order.target)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "the target {} exists and is not empty",
            order.target.display()
        );
    }
    let id = cat.queue_job(&coffer_catalog::QueuedJob {
        scope: Scope {
            paths: vec![order.target.display().to_string()],
            ..Scope::default()
        },
        remote: Some(remote.to_string()),
        ..inner.job(JobKind::RemoteRestore, identity, source)
    })?;
    if let Ok(mut g) = inner.restore_orders.lock() {
        g.insert(id, order);
    }
    inner.jobs.wake.notify_one();
    Ok(id)
}

fn parse_store(s: &str) -> Result<[u8; 16]> {
    let v = hex::decode(s).map_err(|_| anyhow!("'{s}' is not a store id (32 hex digits)"))?;
    v.try_into()
        .map_err(|_| anyhow!("'{s}' is not a store id (32 hex digits)"))
}

/// Runs remote restore job `p`: opens the remote's copy (an appliance's is
/// pulled here first), unlocks it with the passphrase given, restores.
pub(crate) fn execute_restore(
    inner: &Inner,
    p: &Pending,
    progress: &Arc<Progress>,
    log: &JobLog,
) -> Result<()> {
    let r = &p.view.record;
    let order = inner
        .restore_orders
        .lock()
        .ok()
        .and_then(|mut g| g.remove(&r.id))
        .ok_or_else(|| {
            anyhow!("the passphrase of this restore is not kept across a restart of the daemon; ask again")
        })?;
    let (name, remote) = job_remote(inner, p)?;
    let cat = start(inner, p)?;
    let store = match &order.store {
        Some(s) => parse_store(s)?,
        None => inner.repo.config().store_id.0,
    };
    log.info(&format!(
        "restore of {} from '{name}' (store {}) into {} started by {}",
        order.snapshot,
        hex::encode(store),
        order.target.display(),
        r.identity
    ));
    let blobs: Arc<dyn BlobStore> = match remote.spec.kind {
        RemoteKind::Appliance => {
            let replicas = inner.config().replication.replicas_dir;
            let dir = pull_from_appliance(inner, &remote, &store, &replicas, progress, log)?;
            Arc::new(DirStore::new(dir))
        }
        RemoteKind::S3 => Arc::new(crate::s3::open(inner, &remote, &store)?),
    };
    let repo = coffer_store::Repo::open(blobs, &order.passphrase)
        .with_context(|| format!("opening the copy at '{name}' with the passphrase given"))?;
    let ids = repo.snapshot_ids()?;
    let mut snaps = Vec::new();
    for id in ids {
        snaps.push(repo.load_snapshot(&id)?.info);
    }
    let pick = if order.snapshot == "latest" {
        snaps.iter().max_by_key(|s| s.started_ms)
    } else {
        let m: Vec<_> = snaps
            .iter()
            .filter(|s| s.id.to_hex().starts_with(&order.snapshot))
            .collect();
        if m.len() > 1 {
            bail!(
                "'{}' names {} snapshots at '{name}'; give more of the id",
                order.snapshot,
                m.len()
            );
        }
        m.into_iter().next()
    };
    let snap = pick
        .ok_or_else(|| {
            anyhow!(
                "'{name}' holds no snapshot '{}' of that store",
                order.snapshot
            )
        })?
        .clone();
    let scratch = tempfile::tempdir_in(&inner.config().daemon.state_dir)?;
    let scratch_cat = Catalog::open(&scratch.path().join("catalog.db"))?;
    let req = coffer_engine::RestoreRequest {
        snapshot: snap.id,
        target: order.target.clone(),
        paths: Vec::new(),
        overwrite: false,
        threads: 0,
    };
    let actor = coffer_engine::Actor {
        identity: r.identity.clone(),
        host: inner.host.clone(),
    };
    let out = coffer_engine::restore(&repo, &scratch_cat, &req, &actor, progress)?;
    let mut messages: Vec<String> = out.warnings.clone();
    messages.extend(out.errors.iter().cloned());
    let status = if !out.errors.is_empty() {
        JobStatus::Failed
    } else if !out.warnings.is_empty() {
        JobStatus::Warning
    } else {
        JobStatus::Success
    };
    let summary = format!(
        "restored snapshot {} of '{}' from '{name}': {} entries, {} files, {} bytes, {} warning(s), {} error(s)",
        snap.id.to_hex(),
        snap.asset,
        out.entries,
        out.files,
        out.bytes,
        out.warnings.len(),
        out.errors.len()
    );
    log.info(&summary);
    messages.push(summary.clone());
    let stats = coffer_types::BackupStats {
        entries: out.entries,
        files_read: out.files,
        bytes_read: out.bytes,
        warnings: out.warnings.len() as u64,
        ..coffer_types::BackupStats::default()
    };
    cat.finish_job(
        r.id,
        &coffer_catalog::JobEnd {
            status,
            stats,
            messages: &messages,
            snapshot: Some(snap.id),
            ended_ms: inner.now_ms(),
        },
    )?;
    let shared = inner.catalog()?;
    inner.audit(
        &shared,
        &r.identity,
        p.view.source.unwrap_or(Source::System),
        "job.finish",
        &name,
        if status == JobStatus::Failed {
            "failed"
        } else {
            "ok"
        },
        &format!("job {}: {summary}", r.id),
    );
    Ok(())
}
