//! The Prometheus endpoint on the loopback: refused without an API token
//! (and audited), the job log, RPO, drill and health figures with one, in
//! the text exposition format; other paths and methods refused.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{Read, Write};

use common::*;
use serde_json::json;

fn get(addr: std::net::SocketAddr, request: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").unwrap().1.to_string();
    (code, body)
}

/// The value of the sample line starting with `prefix` (name and labels).
fn value(body: &str, prefix: &str) -> f64 {
    body.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{body}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn metrics_need_a_token_and_report_jobs_rpo_drills_and_health() {
    // The clock jumps from the tests' Monday to the real date, which may be
    // weeks later: sessions outlast that.
    let d = TestDaemon::start_with(|c| {
        c.auth.session_idle = coffer_types::api::Duration(10 * 365 * 86_400);
        c.metrics.listen = Some("127.0.0.1:0".into());
    });
    let addr = d.running.as_ref().unwrap().metrics_address().unwrap();
    assert!(addr.ip().is_loopback());
    let (mut admin, secret) = d.admin();
    let src = sample_tree(d.dir.path());
    admin.ok("asset_add", json!({"asset": asset("web", &src, None)}));
    d.clock.set(MONDAY + HOUR);
    let j = admin.ok("job_run", json!({"asset": "web", "level": "full"}));
    assert_eq!(wait_job(&mut admin, &j["job"])["status"], json!("success"));
    let j = admin.ok("drill_run", json!({"asset": "web"}));
    assert_eq!(wait_job(&mut admin, &j["job"])["status"], json!("success"));
    d.next_step();
    admin.mfa = Some(d.code(&secret));
    let t = admin.ok(
        "token_create",
        json!({"name": "prometheus", "roles": ["administrator"]}),
    );
    let token = t["token"].as_str().unwrap().to_string();

    // No token, a wrong one: refused, and the refusal audited.
    let (code, body) = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("API token"), "{body}");
    let (code, _) = get(
        addr,
        "GET /metrics HTTP/1.1\r\nAuthorization: Bearer ct_nope_nope\r\n\r\n",
    );
    assert_eq!(code, 401);
    let audit = admin.ok("audit_list", json!({"filter": {"action": "metrics.read"}}));
    assert_eq!(audit.as_array().unwrap().len(), 2, "{audit}");

    // With the token. (Snapshots carry the real time they finished; the
    // daemon's clock is moved an hour past it.)
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    d.clock.set(real + HOUR);
    let (code, body) = get(
        addr,
        &format!("GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"),
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("# TYPE coffer_jobs_total counter"), "{body}");
    assert_eq!(
        value(
            &body,
            "coffer_jobs_total{kind=\"backup\",status=\"success\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &body,
            "coffer_jobs_total{kind=\"drill\",status=\"success\"}"
        ),
        1.0
    );
    assert!(
        value(
            &body,
            "coffer_job_bytes_total{kind=\"backup\",status=\"success\"}"
        ) >= 300_000.0,
        "{body}"
    );
    let age = value(
        &body,
        "coffer_asset_last_good_backup_age_seconds{asset=\"web\"}",
    );
    assert!((3590.0..=3700.0).contains(&age), "{age}");
    assert_eq!(
        value(&body, "coffer_asset_rpo_seconds{asset=\"web\"}"),
        86_400.0
    );
    assert_eq!(value(&body, "coffer_asset_rpo_met{asset=\"web\"}"), 1.0);
    assert_eq!(
        value(&body, "coffer_asset_rto_seconds{asset=\"web\"}"),
        14_400.0
    );
    assert_eq!(
        value(
            &body,
            "coffer_drill_last_passed{asset=\"web\",source=\"disk\"}"
        ),
        1.0
    );
    // The drill's own recorded duration.
    let drilled = admin.ok("drill_list", json!({}))[0]["duration_ms"]
        .as_i64()
        .unwrap();
    assert_eq!(
        value(
            &body,
            "coffer_drill_last_duration_seconds{asset=\"web\",source=\"disk\"}"
        ),
        drilled as f64 / 1000.0
    );
    // Two days on, the RPO (1d) is missed.
    d.clock.set(real + 2 * DAY);
    let (_, body) = get(
        addr,
        &format!("GET /metrics HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\r\n"),
    );
    assert_eq!(value(&body, "coffer_asset_rpo_met{asset=\"web\"}"), 0.0);

    // Other paths and methods.
    let (code, _) = get(
        addr,
        &format!("GET /other HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\r\n"),
    );
    assert_eq!(code, 404);
    let (code, _) = get(addr, "POST /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(code, 405);
    let (code, _) = get(addr, "nonsense\r\n\r\n");
    assert_eq!(code, 400);
}
