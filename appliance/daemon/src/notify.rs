//! Notifications: every alert the appliance raises (failed jobs, warnings,
//! RPO breaches, failed drills, degraded health, media requests, …) sent
//! to the `[notify]` targets. An email goes by SMTP over TLS, with STARTTLS
//! or implicit TLS and optional AUTH PLAIN inside TLS. A webhook is a JSON
//! POST over HTTPS, signed with HMAC-SHA256. The server's certificate must
//! chain to `ca_file`; there is no plaintext mode.
//!
//! Each target keeps its own position in the alert table (`notify_state`),
//! so a restart neither repeats nor loses a notification. Every round
//! sends each target the alerts raised since its last delivery, in one
//! message. A target that fails is tried again every `retry_every`. Once
//! it has failed for `alert_after`, a `notify-failed` alert is raised on
//! the console (and sent to the other targets); a later success clears it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::{Context, Result, anyhow, bail};
use coffer_catalog::NotifyState;
use coffer_types::api::Alert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::Inner;
use crate::config::{EmailTarget, NotifyConfig, WebhookTarget};

/// The alert a target failing for `alert_after` raises.
pub(crate) const NOTIFY_FAILED: &str = "notify-failed";

/// How long a connection, a read or a write may take.
const TIMEOUT: StdDuration = StdDuration::from_secs(15);

/// The loop: a round every second (or at once when woken).
pub(crate) async fn run(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            break;
        }
        let i = inner.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || round(&i)).await {
            tracing::error!(error = %e, "the notifier panicked");
        }
        tokio::select! {
            _ = stop.changed() => {}
            () = tokio::time::sleep(StdDuration::from_secs(1)) => {}
        }
    }
}

enum Target<'a> {
    Email(&'a EmailTarget),
    Webhook(&'a WebhookTarget),
}

impl Target<'_> {
    fn name(&self) -> &str {
        match self {
            Target::Email(e) => &e.name,
            Target::Webhook(w) => &w.name,
        }
    }
}

/// One round over every target.
fn round(inner: &Inner) {
    let config = inner.config();
    let n = &config.notify;
    let targets: Vec<Target<'_>> = n
        .email
        .iter()
        .map(Target::Email)
        .chain(n.webhook.iter().map(Target::Webhook))
        .collect();
    for t in &targets {
        if let Err(e) = deliver(inner, n, t) {
            tracing::error!(target = t.name(), error = %format!("{e:#}"), "notification round failed");
        }
    }
}

/// Sends target `t` what it has not had yet, when it is due.
fn deliver(inner: &Inner, n: &NotifyConfig, t: &Target<'_>) -> Result<()> {
    let now = inner.now_ms();
    let (state, pending) = {
        let cat = inner.catalog()?;
        let state = match cat.notify_state(t.name())? {
            Some(s) => s,
            // A new target starts from now: it is not sent the history.
            None => {
                let s = NotifyState {
                    last_alert: cat.newest_alert_id()?,
                    ..NotifyState::default()
                };
                cat.set_notify_state(t.name(), &s)?;
                return Ok(());
            }
        };
        if state.next_try_ms.is_some_and(|at| at > now) {
            return Ok(());
        }
        let pending = cat.alerts_after(state.last_alert)?;
        (state, pending)
    };
    let Some(last) = pending.iter().map(|a| a.id).max() else {
        return Ok(());
    };
    let wanted: Vec<&Alert> = pending
        .iter()
        .filter(|a| n.kinds.is_empty() || n.kinds.contains(&a.kind))
        // A target is not told that it itself is failing.
        .filter(|a| !(a.kind == NOTIFY_FAILED && a.subject == t.name()))
        .collect();
    let sent = if wanted.is_empty() {
        Ok(())
    } else {
        let host = inner.host.clone();
        match t {
            Target::Email(e) => send_email(e, &host, &wanted),
            Target::Webhook(w) => send_webhook(w, &host, &wanted),
        }
    };
    let cat = inner.catalog()?;
    match sent {
        Ok(()) => {
            cat.set_notify_state(
                t.name(),
                &NotifyState {
                    last_alert: last,
                    ..NotifyState::default()
                },
            )?;
            if !wanted.is_empty() {
                tracing::info!(
                    target = t.name(),
                    alerts = wanted.len(),
                    "notification sent"
                );
            }
            cat.clear_alert(NOTIFY_FAILED, t.name(), now)?;
        }
        Err(e) => {
            let why = format!("{e:#}");
            tracing::warn!(target = t.name(), error = %why, "notification failed; will retry");
            let since = state.failing_since.unwrap_or(now);
            cat.set_notify_state(
                t.name(),
                &NotifyState {
                    last_alert: state.last_alert,
                    failing_since: Some(since),
                    next_try_ms: Some(now + n.retry_every.ms()),
                    last_error: Some(why.clone()),
                },
            )?;
            if now - since >= n.alert_after.ms() {
                inner.system_alert(
                    &cat,
                    NOTIFY_FAILED,
                    t.name(),
                    &format!(
                        "notifications to '{}' have failed since {}: {why}",
                        t.name(),
                        coffer_types::rfc3339_ms(since)
                    ),
                    now,
                )?;
            }
        }
    }
    Ok(())
}

/// The message: one line per alert.
fn summary(host: &str, alerts: &[&Alert]) -> (String, String) {
    let subject = if alerts.len() == 1 {
        format!("[coffer {host}] {}: {}", alerts[0].kind, alerts[0].subject)
    } else {
        format!("[coffer {host}] {} alerts", alerts.len())
    };
    let mut body = format!("The Coffer appliance {host} raised:\r\n\r\n");
    for a in alerts {
        body.push_str(&format!(
            "{}  {}  {}: {}\r\n",
            a.raised, a.kind, a.subject, a.message
        ));
    }
    body.push_str("\r\nSee `alert list` on the appliance's console.\r\n");
    (subject, body)
}

/// A TLS client configuration trusting the CAs in `ca_file`.
fn tls_config(ca_file: &std::path::Path) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_file)
        .with_context(|| format!("read the CA file '{}'", ca_file.display()))?;
    for c in certs {
        let c = c.with_context(|| format!("parse the CA file '{}'", ca_file.display()))?;
        roots
            .add(c)
            .with_context(|| format!("a certificate in '{}'", ca_file.display()))?;
    }
    if roots.is_empty() {
        bail!("the CA file '{}' holds no certificate", ca_file.display());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

fn connect(hostport: &str) -> Result<TcpStream> {
    let addr = hostport
        .to_socket_addrs()
        .with_context(|| format!("resolve '{hostport}'"))?
        .next()
        .ok_or_else(|| anyhow!("'{hostport}' resolves to no address"))?;
    let s = TcpStream::connect_timeout(&addr, TIMEOUT)
        .with_context(|| format!("connect to {hostport}"))?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    Ok(s)
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn tls(host: &str, ca_file: &std::path::Path, tcp: TcpStream) -> Result<Tls> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| anyhow!("'{host}' is not a valid server name"))?;
    let conn = rustls::ClientConnection::new(tls_config(ca_file)?, name)?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    // Handshake now, so a certificate problem is reported as such.
    while s.conn.is_handshaking() {
        s.conn
            .complete_io(&mut s.sock)
            .with_context(|| format!("TLS handshake with {host}"))?;
    }
    Ok(s)
}

fn host_of(hostport: &str) -> &str {
    hostport
        .rsplit_once(':')
        .map_or(hostport, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']')
}

/// Reads one SMTP reply (all its lines); returns its code and text.
fn reply(r: &mut impl BufRead) -> Result<(u16, String)> {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            bail!("the mail server closed the connection");
        }
        let code: u16 = line
            .get(..3)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| anyhow!("not an SMTP reply: {line:?}"))?;
        text.push_str(line.get(4..).unwrap_or("").trim_end());
        text.push(' ');
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok((code, text.trim_end().to_string()));
        }
    }
}

/// Sends `cmd` (unless empty) and checks the reply's code.
fn exchange<S: Read + Write>(s: &mut BufReader<S>, cmd: &str, want: &[u16]) -> Result<String> {
    if !cmd.is_empty() {
        s.get_mut().write_all(cmd.as_bytes())?;
        s.get_mut().write_all(b"\r\n")?;
        s.get_mut().flush()?;
    }
    let (code, text) = reply(s)?;
    if !want.contains(&code) {
        let shown = if cmd.starts_with("AUTH") {
            "AUTH PLAIN …"
        } else {
            cmd
        };
        bail!("the mail server answered '{shown}' with {code} {text}");
    }
    Ok(text)
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A secret from a file only its owner may read.
fn secret(path: &std::path::Path) -> Result<Zeroizing<Vec<u8>>> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("read the secret file '{}'", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "the secret file '{}' may be read by others (mode {:o}); chmod 600 it",
            path.display(),
            mode & 0o777
        );
    }
    let b = Zeroizing::new(
        std::fs::read(path)
            .with_context(|| format!("read the secret file '{}'", path.display()))?,
    );
    let trimmed = Zeroizing::new(b.trim_ascii_end().to_vec());
    if trimmed.is_empty() {
        bail!("the secret file '{}' is empty", path.display());
    }
    Ok(trimmed)
}

/// The SMTP conversation after the greeting (and, for STARTTLS, after the
/// upgrade).
fn smtp_session<S: Read + Write>(
    s: &mut BufReader<S>,
    e: &EmailTarget,
    host: &str,
    subject: &str,
    body: &str,
) -> Result<()> {
    exchange(s, &format!("EHLO {host}"), &[250])?;
    if let (Some(user), Some(pf)) = (&e.username, &e.password_file) {
        let pass = secret(pf)?;
        let mut token = Zeroizing::new(Vec::new());
        token.push(0);
        token.extend_from_slice(user.as_bytes());
        token.push(0);
        token.extend_from_slice(&pass);
        let line = Zeroizing::new(format!("AUTH PLAIN {}", base64(&token)));
        exchange(s, &line, &[235])?;
    }
    exchange(s, &format!("MAIL FROM:<{}>", e.from), &[250])?;
    for to in &e.to {
        exchange(s, &format!("RCPT TO:<{to}>"), &[250, 251])?;
    }
    exchange(s, "DATA", &[354])?;
    let mut msg = format!(
        "From: {}\r\nTo: {}\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
        e.from,
        e.to.join(", ")
    );
    for line in body.split("\r\n") {
        // Dot-stuffing: a line starting with '.' gets another.
        if line.starts_with('.') {
            msg.push('.');
        }
        msg.push_str(line);
        msg.push_str("\r\n");
    }
    msg.push('.');
    exchange(s, &msg, &[250])?;
    let _ = exchange(s, "QUIT", &[221]);
    Ok(())
}

/// Sends the alerts by email.
fn send_email(e: &EmailTarget, host: &str, alerts: &[&Alert]) -> Result<()> {
    let (subject, body) = summary(host, alerts);
    let server = host_of(&e.server);
    let tcp = connect(&e.server)?;
    if e.tls == "implicit" {
        let mut s = BufReader::new(tls(server, &e.ca_file, tcp)?);
        exchange(&mut s, "", &[220])?;
        return smtp_session(&mut s, e, host, &subject, &body);
    }
    let mut plain = BufReader::new(tcp);
    exchange(&mut plain, "", &[220])?;
    let ehlo = exchange(&mut plain, &format!("EHLO {host}"), &[250])?;
    if !ehlo.to_ascii_uppercase().contains("STARTTLS") {
        bail!(
            "the mail server {} does not offer STARTTLS; nothing was sent",
            e.server
        );
    }
    exchange(&mut plain, "STARTTLS", &[220])?;
    let tcp = plain.into_inner();
    let mut s = BufReader::new(tls(server, &e.ca_file, tcp)?);
    smtp_session(&mut s, e, host, &subject, &body)
}

/// The JSON a webhook receives.
fn webhook_body(host: &str, alerts: &[&Alert]) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(&serde_json::json!({
        "appliance": host,
        "alerts": alerts,
    }))?)
}

/// HMAC-SHA256 of `body` under `key`, hex.
pub(crate) fn signature(key: &[u8], body: &[u8]) -> String {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    hex::encode(ring::hmac::sign(&k, body).as_ref())
}

/// Posts the alerts to a webhook.
fn send_webhook(w: &WebhookTarget, host: &str, alerts: &[&Alert]) -> Result<()> {
    let rest = w
        .url
        .strip_prefix("https://")
        .ok_or_else(|| anyhow!("the webhook URL is not https"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let hostport = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:443")
    };
    let body = webhook_body(host, alerts)?;
    let key = secret(&w.secret_file)?;
    let sig = signature(&key, &body);
    let mut s = tls(host_of(&hostport), &w.ca_file, connect(&hostport)?)?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: cofferd\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Coffer-Signature: sha256={sig}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(&body)?;
    s.flush()?;
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status)?;
    let code: u16 = status
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("not an HTTP response: {status:?}"))?;
    if !(200..300).contains(&code) {
        bail!("the webhook answered {}", status.trim_end());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_others_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s");
        std::fs::write(&f, "pw\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = secret(&f).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(secret(&f).unwrap().as_slice(), b"pw");
    }

    #[test]
    fn base64_and_the_signature_match_known_values() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"\0user\0pass"), "AHVzZXIAcGFzcw==");
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
