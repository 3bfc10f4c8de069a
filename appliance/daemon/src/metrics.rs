//! The Prometheus endpoint: `GET /metrics` in the text exposition format
//! (0.0.4). It reports job counts, durations and bytes by kind and status,
//! each asset's last good backup age against its RPO, each asset's last
//! restore drill against its RTO, open alerts, the health state, and the
//! capacity of the filesystems holding the store and the state, and the
//! disk pool's health, capacity, members and errors when the store is on
//! one.
//!
//! It listens only on a loopback address (`[metrics] listen`; a
//! configuration naming another address is refused): the link is not
//! encrypted, so it never leaves the appliance. Every request must carry
//! an API token (`Authorization: Bearer ct_…`) whose roles hold
//! `status.read`. A refused request is audited.

use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::Result;
use coffer_auth::roles::Permission;
use coffer_catalog::Catalog;
use coffer_types::api::{Credential, HealthState, Source};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::Inner;

/// The longest request head read.
const MAX_HEAD: usize = 8192;

/// Escapes a label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        let _ = write!(self.0, "{name}");
        if !labels.is_empty() {
            let l: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", l.join(","));
        }
        let _ = writeln!(self.0, " {v}");
    }
}

/// The metrics page at `now`.
pub(crate) fn render(inner: &Inner, cat: &Catalog, now: i64) -> Result<String> {
    let mut o = Out(String::new());
    let tally = cat.job_tally()?;
    o.family(
        "coffer_jobs_total",
        "counter",
        "Jobs in the job log, by kind and status.",
    );
    for t in &tally {
        o.sample(
            "coffer_jobs_total",
            &[("kind", &t.kind), ("status", &t.status)],
            t.count as f64,
        );
    }
    o.family(
        "coffer_job_duration_seconds_total",
        "counter",
        "Time the ended jobs took, by kind and status.",
    );
    for t in &tally {
        o.sample(
            "coffer_job_duration_seconds_total",
            &[("kind", &t.kind), ("status", &t.status)],
            t.seconds,
        );
    }
    o.family(
        "coffer_job_bytes_total",
        "counter",
        "Bytes the jobs read (backups: source bytes; tape and verify jobs: bytes moved).",
    );
    for t in &tally {
        o.sample(
            "coffer_job_bytes_total",
            &[("kind", &t.kind), ("status", &t.status)],
            t.bytes as f64,
        );
    }

    let register = cat.register()?;
    let last_good = cat.last_good_backups()?;
    o.family(
        "coffer_asset_rpo_seconds",
        "gauge",
        "Each asset's recovery point objective.",
    );
    for r in &register {
        o.sample(
            "coffer_asset_rpo_seconds",
            &[("asset", &r.asset.name)],
            r.asset.rpo.secs() as f64,
        );
    }
    o.family(
        "coffer_asset_last_good_backup_age_seconds",
        "gauge",
        "Time since each asset's newest good backup finished (absent: never backed up).",
    );
    for r in &register {
        if let Some(t) = last_good.get(&r.asset.name) {
            o.sample(
                "coffer_asset_last_good_backup_age_seconds",
                &[("asset", &r.asset.name)],
                ((now - t).max(0) / 1000) as f64,
            );
        }
    }
    o.family(
        "coffer_asset_rpo_met",
        "gauge",
        "1 when the asset's newest good backup is within its RPO.",
    );
    for r in &register {
        let met = last_good
            .get(&r.asset.name)
            .is_some_and(|t| now - t <= r.asset.rpo.ms());
        o.sample(
            "coffer_asset_rpo_met",
            &[("asset", &r.asset.name)],
            f64::from(u8::from(met)),
        );
    }

    let drills = cat.drills(None)?;
    o.family(
        "coffer_asset_rto_seconds",
        "gauge",
        "Each asset's recovery time objective.",
    );
    for r in &register {
        o.sample(
            "coffer_asset_rto_seconds",
            &[("asset", &r.asset.name)],
            r.asset.rto.secs() as f64,
        );
    }
    o.family(
        "coffer_drill_last_passed",
        "gauge",
        "1 when the asset's newest finished restore drill passed (absent: never drilled).",
    );
    let newest = |asset: &str| {
        drills
            .iter()
            .find(|d| d.asset == asset && d.result != "running")
    };
    for r in &register {
        if let Some(d) = newest(&r.asset.name) {
            o.sample(
                "coffer_drill_last_passed",
                &[("asset", &r.asset.name), ("source", &d.source)],
                f64::from(u8::from(d.result == "pass")),
            );
        }
    }
    o.family(
        "coffer_drill_last_duration_seconds",
        "gauge",
        "How long the asset's newest finished restore drill took, start to every file verified.",
    );
    for r in &register {
        if let Some(d) = newest(&r.asset.name)
            && let Some(ms) = d.duration_ms
        {
            o.sample(
                "coffer_drill_last_duration_seconds",
                &[("asset", &r.asset.name), ("source", &d.source)],
                ms as f64 / 1000.0,
            );
        }
    }

    o.family("coffer_alerts_open", "gauge", "Open alerts, by kind.");
    let mut kinds: std::collections::BTreeMap<String, u64> = Default::default();
    for a in cat.alerts(false)? {
        *kinds.entry(a.kind).or_default() += 1;
    }
    for (k, n) in &kinds {
        o.sample("coffer_alerts_open", &[("kind", k)], *n as f64);
    }

    let health = match inner.health.read() {
        Ok(h) => h.clone(),
        Err(p) => p.into_inner().clone(),
    };
    if let Some(h) = health {
        o.family(
            "coffer_health_state",
            "gauge",
            "The appliance's health: 0 ok, 1 degraded, 2 fault.",
        );
        o.sample(
            "coffer_health_state",
            &[],
            match h.state {
                HealthState::Ok => 0.0,
                HealthState::Degraded => 1.0,
                HealthState::Fault => 2.0,
            },
        );
        o.family(
            "coffer_filesystem_size_bytes",
            "gauge",
            "Size of the filesystems holding the store and the state.",
        );
        for f in &h.figures.filesystems {
            o.sample(
                "coffer_filesystem_size_bytes",
                &[("role", &f.role), ("path", &f.path)],
                f.total as f64,
            );
        }
        o.family(
            "coffer_filesystem_used_bytes",
            "gauge",
            "Bytes used on the filesystems holding the store and the state.",
        );
        for f in &h.figures.filesystems {
            o.sample(
                "coffer_filesystem_used_bytes",
                &[("role", &f.role), ("path", &f.path)],
                f.used as f64,
            );
        }
    }
    if let Some(pool) = &inner.pool {
        let st = pool.status();
        let name = st.name.as_str();
        o.family(
            "coffer_pool_health",
            "gauge",
            "The disk pool's health: 0 online, 1 degraded, 2 unavailable.",
        );
        o.sample(
            "coffer_pool_health",
            &[("pool", name)],
            match st.health {
                coffer_pool::PoolHealth::Online => 0.0,
                coffer_pool::PoolHealth::Degraded => 1.0,
                coffer_pool::PoolHealth::Unavailable => 2.0,
            },
        );
        o.family(
            "coffer_pool_raw_bytes",
            "gauge",
            "The disk pool's raw capacity over its readable members, and what is free on its writable ones.",
        );
        o.sample(
            "coffer_pool_raw_bytes",
            &[("pool", name), ("what", "total")],
            st.raw_total as f64,
        );
        o.sample(
            "coffer_pool_raw_bytes",
            &[("pool", name), ("what", "available")],
            st.raw_available as f64,
        );
        o.family(
            "coffer_pool_usable_available_bytes",
            "gauge",
            "Data bytes the disk pool can still take (free space less parity).",
        );
        o.sample(
            "coffer_pool_usable_available_bytes",
            &[("pool", name)],
            st.usable_available as f64,
        );
        o.family(
            "coffer_pool_member_online",
            "gauge",
            "Whether each member of the disk pool is in use (1) or out (0), by its state.",
        );
        for m in &st.members {
            let up = m.state == "online" || m.state == "full";
            o.sample(
                "coffer_pool_member_online",
                &[("pool", name), ("member", &m.id), ("state", &m.state)],
                if up { 1.0 } else { 0.0 },
            );
        }
        o.family(
            "coffer_pool_member_errors",
            "gauge",
            "I/O and checksum errors seen on each member since the service started.",
        );
        for m in &st.members {
            for (kind, n) in [
                ("read", m.read_errors),
                ("write", m.write_errors),
                ("checksum", m.checksum_errors),
            ] {
                o.sample(
                    "coffer_pool_member_errors",
                    &[("pool", name), ("member", &m.id), ("kind", kind)],
                    n as f64,
                );
            }
        }
    }
    Ok(o.0)
}

/// What one request asked for.
enum Ask {
    Metrics { token: Option<String> },
    NotFound,
    Method,
    Bad,
}

fn parse(head: &str) -> Ask {
    let mut lines = head.split("\r\n");
    let Some(first) = lines.next() else {
        return Ask::Bad;
    };
    let mut parts = first.split(' ');
    let (Some(method), Some(path), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Ask::Bad;
    };
    if !version.starts_with("HTTP/1.") {
        return Ask::Bad;
    }
    if method != "GET" {
        return Ask::Method;
    }
    if path.split('?').next() != Some("/metrics") {
        return Ask::NotFound;
    }
    let token = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("authorization"))
        .and_then(|(_, v)| {
            v.trim()
                .strip_prefix("Bearer ")
                .map(|t| t.trim().to_string())
        });
    Ask::Metrics { token }
}

fn response(status: &str, kind: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Answers one request on `stream`.
async fn answer(inner: Arc<Inner>, mut stream: tokio::net::TcpStream) {
    let mut head = Vec::new();
    let read = async {
        let mut buf = [0u8; 1024];
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") || head.len() > MAX_HEAD {
                break;
            }
        }
        std::io::Result::Ok(())
    };
    if tokio::time::timeout(std::time::Duration::from_secs(5), read)
        .await
        .map_or(true, |r| r.is_err())
    {
        return;
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let ask = if head.len() > MAX_HEAD {
        Ask::Bad
    } else {
        parse(&text)
    };
    let reply = match ask {
        Ask::Bad => response("400 Bad Request", "text/plain", "bad request\n"),
        Ask::Method => response("405 Method Not Allowed", "text/plain", "GET only\n"),
        Ask::NotFound => response("404 Not Found", "text/plain", "only /metrics\n"),
        Ask::Metrics { token } => {
            let i = inner.clone();
            let page = tokio::task::spawn_blocking(move || serve(&i, token.as_deref())).await;
            match page {
                Ok(Ok(body)) => {
                    response("200 OK", "text/plain; version=0.0.4; charset=utf-8", &body)
                }
                Ok(Err(Failure::Refused(why))) => {
                    response("401 Unauthorized", "text/plain", &format!("{why}\n"))
                }
                Ok(Err(Failure::Internal(why))) => {
                    tracing::error!(error = %why, "the metrics page could not be built");
                    response(
                        "500 Internal Server Error",
                        "text/plain",
                        "internal error\n",
                    )
                }
                Err(_) => response(
                    "500 Internal Server Error",
                    "text/plain",
                    "internal error\n",
                ),
            }
        }
    };
    let _ = stream.write_all(&reply).await;
    let _ = stream.shutdown().await;
}

/// Why a request got no page.
enum Failure {
    /// Not authenticated or not allowed: 401.
    Refused(String),
    /// The appliance could not build the page: 500.
    Internal(String),
}

/// Authenticates the token and renders the page.
fn serve(inner: &Inner, token: Option<&str>) -> std::result::Result<String, Failure> {
    let now = inner.now_ms();
    let cat = inner
        .catalog()
        .map_err(|e| Failure::Internal(format!("{e:#}")))?;
    let allowed = token
        .ok_or_else(|| "an API token is required: Authorization: Bearer ct_…".to_string())
        .and_then(|t| {
            inner
                .auth
                .authenticate(&cat, &Credential::Token(t.to_string()), now)
                .map_err(|e| e.to_string())
        })
        .and_then(|p| {
            if p.holds(Permission::StatusRead) {
                Ok(())
            } else {
                Err("the token's roles do not hold status.read".into())
            }
        });
    match allowed {
        Ok(()) => {}
        Err(why) => {
            inner.audit(
                &cat,
                "metrics",
                Source::Api,
                "metrics.read",
                "/metrics",
                "denied",
                &why,
            );
            return Err(Failure::Refused(why));
        }
    }
    render(inner, &cat, now).map_err(|e| Failure::Internal(format!("{e:#}")))
}

/// Binds `[metrics] listen` (a loopback address) and serves until `stop`.
pub(crate) async fn bind(inner: &Arc<Inner>) -> Result<Option<tokio::net::TcpListener>> {
    let Some(addr) = inner.config().metrics.listen.clone() else {
        return Ok(None);
    };
    let l = tokio::net::TcpListener::bind(&addr).await?;
    if let Ok(a) = l.local_addr() {
        let _ = inner.metrics_addr.set(a);
        tracing::info!(address = %a, "metrics endpoint listening");
    }
    Ok(Some(l))
}

/// Accepts connections until `stop`.
pub(crate) async fn serve_on(
    listener: tokio::net::TcpListener,
    inner: Arc<Inner>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            r = listener.accept() => match r {
                Ok((s, _)) => {
                    tokio::spawn(answer(inner.clone(), s));
                }
                Err(e) => tracing::warn!(error = %e, "metrics endpoint: accept failed"),
            }
        }
    }
}
