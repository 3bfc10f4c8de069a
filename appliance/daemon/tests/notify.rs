//! Notifications against real local receivers: an SMTP server that
//! demands STARTTLS and AUTH PLAIN, and an HTTPS webhook receiver, both
//! with a certificate the appliance trusts through `ca_file`. An alert is
//! delivered to both (the webhook's HMAC-SHA256 signature checked), a
//! target that cannot be reached is retried and then raises a
//! `notify-failed` alert on the console, which the working targets are
//! sent in turn.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::mpsc;

use common::*;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;

fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            out.push(if i <= c.len() {
                T[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

/// A certificate for `localhost`, its PEM (for `ca_file`) and a server
/// TLS configuration presenting it.
fn server_tls() -> (String, Arc<rustls::ServerConfig>) {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&kp)
        .unwrap();
    let der = cert.der().to_vec();
    let body = b64(&der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(der)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(kp.serialize_der())),
        )
        .unwrap();
    (pem, Arc::new(cfg))
}

/// What the SMTP sink saw of one message.
#[derive(Debug, Default, Clone)]
struct Mail {
    auth: String,
    from: String,
    to: Vec<String>,
    data: String,
}

fn line<R: BufRead>(r: &mut R) -> String {
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    l.trim_end().to_string()
}

/// An SMTP server on the loopback that offers STARTTLS, requires it, and
/// requires AUTH PLAIN; sends each message it accepts to `tx`.
fn smtp_sink(cfg: Arc<rustls::ServerConfig>, tx: mpsc::Sender<Mail>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let cfg = cfg.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                s.write_all(b"220 sink ESMTP\r\n").unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                assert!(line(&mut r).starts_with("EHLO "));
                s.write_all(b"250-sink\r\n250 STARTTLS\r\n").unwrap();
                let cmd = line(&mut r);
                if cmd != "STARTTLS" {
                    // Refuses anything in plaintext.
                    s.write_all(b"530 Must issue a STARTTLS command first\r\n")
                        .unwrap();
                    return;
                }
                s.write_all(b"220 go ahead\r\n").unwrap();
                let conn = rustls::ServerConnection::new(cfg).unwrap();
                let tls = rustls::StreamOwned::new(conn, s);
                let mut t = BufReader::new(tls);
                let mut mail = Mail::default();
                loop {
                    let cmd = line(&mut t);
                    let reply: &[u8] = if cmd.starts_with("EHLO ") {
                        b"250-sink\r\n250 AUTH PLAIN\r\n"
                    } else if let Some(a) = cmd.strip_prefix("AUTH PLAIN ") {
                        mail.auth = a.to_string();
                        b"235 ok\r\n"
                    } else if let Some(f) = cmd.strip_prefix("MAIL FROM:") {
                        mail.from = f.to_string();
                        b"250 ok\r\n"
                    } else if let Some(to) = cmd.strip_prefix("RCPT TO:") {
                        mail.to.push(to.to_string());
                        b"250 ok\r\n"
                    } else if cmd == "DATA" {
                        t.get_mut().write_all(b"354 end with .\r\n").unwrap();
                        t.get_mut().flush().unwrap();
                        loop {
                            let l = line(&mut t);
                            if l == "." {
                                break;
                            }
                            mail.data.push_str(&l);
                            mail.data.push('\n');
                        }
                        tx.send(mail.clone()).unwrap();
                        b"250 queued\r\n"
                    } else if cmd == "QUIT" {
                        let _ = t.get_mut().write_all(b"221 bye\r\n");
                        return;
                    } else {
                        b"500 what\r\n"
                    };
                    t.get_mut().write_all(reply).unwrap();
                    t.get_mut().flush().unwrap();
                }
            });
        }
    });
    port
}

/// An HTTPS receiver on the loopback; sends each request's signature
/// header and body to `tx` and answers 200.
fn webhook_receiver(cfg: Arc<rustls::ServerConfig>, tx: mpsc::Sender<(String, Vec<u8>)>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
            let tls = rustls::StreamOwned::new(conn, s);
            let mut r = BufReader::new(tls);
            let first = line(&mut r);
            assert!(first.starts_with("POST /hook "), "{first}");
            let (mut len, mut sig) = (0usize, String::new());
            loop {
                let h = line(&mut r);
                if h.is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap();
                match k.to_ascii_lowercase().as_str() {
                    "content-length" => len = v.trim().parse().unwrap(),
                    "x-coffer-signature" => sig = v.trim().to_string(),
                    _ => {}
                }
            }
            let mut body = vec![0u8; len];
            r.read_exact(&mut body).unwrap();
            tx.send((sig, body)).unwrap();
            let _ = r
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = r.get_mut().flush();
        }
    });
    port
}

#[test]
fn alerts_reach_email_and_webhook_over_tls_and_a_dead_target_is_escalated() {
    let (pem, cfg) = server_tls();
    let (mail_tx, mail_rx) = mpsc::channel();
    let (hook_tx, hook_rx) = mpsc::channel();
    let smtp = smtp_sink(cfg.clone(), mail_tx);
    let https = webhook_receiver(cfg, hook_tx);
    let files = tempfile::tempdir().unwrap();
    let ca = files.path().join("ca.pem");
    std::fs::write(&ca, &pem).unwrap();
    let pw = files.path().join("smtp.pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let key = files.path().join("hook.key");
    std::fs::write(&key, "hook-secret").unwrap();
    for f in [&pw, &key] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let d = TestDaemon::start_with(|c| {
        c.auth.session_idle = coffer_types::api::Duration(7 * 86_400);
        c.notify.retry_every = coffer_types::api::Duration(1);
        c.notify.alert_after = coffer_types::api::Duration(60);
        c.notify.email = vec![
            cofferd::config::EmailTarget {
                name: "ops".into(),
                server: format!("localhost:{smtp}"),
                tls: "starttls".into(),
                from: "coffer@example.org".into(),
                to: vec!["ops@example.org".into(), "oncall@example.org".into()],
                username: Some("coffer".into()),
                password_file: Some(pw.clone()),
                ca_file: ca.clone(),
            },
            cofferd::config::EmailTarget {
                name: "dead".into(),
                server: format!("localhost:{dead_port}"),
                tls: "starttls".into(),
                from: "coffer@example.org".into(),
                to: vec!["nobody@example.org".into()],
                username: None,
                password_file: None,
                ca_file: ca.clone(),
            },
        ];
        c.notify.webhook = vec![cofferd::config::WebhookTarget {
            name: "chat".into(),
            url: format!("https://localhost:{https}/hook"),
            secret_file: key.clone(),
            ca_file: ca.clone(),
        }];
    });
    let (mut admin, _) = d.admin();
    // The targets take their starting point, then a job fails.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let gone = d.dir.path().join("no-such-dir");
    admin.ok("asset_add", json!({"asset": asset("ghost", &gone, None)}));
    let j = admin.ok("job_run", json!({"asset": "ghost", "level": "full"}));
    assert_eq!(wait_job(&mut admin, &j["job"])["status"], json!("failed"));

    let wait = std::time::Duration::from_secs(30);
    let mail = loop {
        let m = mail_rx.recv_timeout(wait).expect("no mail arrived");
        if m.data.contains("job-failed") {
            break m;
        }
    };
    assert_eq!(mail.from, "<coffer@example.org>");
    assert_eq!(mail.to, vec!["<ops@example.org>", "<oncall@example.org>"]);
    assert_eq!(mail.auth, b64(b"\0coffer\0s3cret"));
    assert!(mail.data.contains("Subject: [coffer"), "{}", mail.data);
    assert!(mail.data.contains("ghost"), "{}", mail.data);
    let (sig, body) = loop {
        let (s, b) = hook_rx.recv_timeout(wait).expect("no webhook arrived");
        if String::from_utf8_lossy(&b).contains("job-failed") {
            break (s, b);
        }
    };
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"hook-secret");
    let expected = hex::encode(ring::hmac::sign(&k, &body).as_ref());
    assert_eq!(sig, format!("sha256={expected}"));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        v["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == json!("job-failed") && a["subject"] == json!("ghost")),
        "{v}"
    );

    // The dead target keeps failing; past alert_after (60 s on the
    // daemon's clock) it raises notify-failed, which the others are sent.
    assert!(
        !admin
            .ok("alert_list", json!({}))
            .to_string()
            .contains("notify-failed")
    );
    for _ in 0..3 {
        d.clock.advance(40_000);
        std::thread::sleep(std::time::Duration::from_millis(1200));
    }
    d.wait_for("the notify-failed alert", || {
        admin
            .ok("alert_list", json!({}))
            .to_string()
            .contains("notify-failed")
    });
    let alerts = admin.ok("alert_list", json!({}));
    let nf = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == json!("notify-failed"))
        .unwrap();
    assert_eq!(nf["subject"], json!("dead"));
    assert!(nf["message"].as_str().unwrap().contains("connect"), "{nf}");
    let escalated = loop {
        let m = mail_rx
            .recv_timeout(wait)
            .expect("the escalation was not mailed");
        if m.data.contains("notify-failed") {
            break m;
        }
    };
    assert!(escalated.data.contains("dead"), "{}", escalated.data);
}
