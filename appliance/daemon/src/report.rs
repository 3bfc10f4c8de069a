//! The ISO/IEC 27001 A.8.13 evidence report for a period, as JSON and as
//! a self-contained, printable HTML page built from the same data. Every
//! section comes from the catalog and the audit log:
//! - the asset register with each asset's profile, RPO and RTO;
//! - coverage gaps;
//! - the backup log;
//! - restore drills against their RTO;
//! - 3-2-1-1-0 per asset;
//! - retention locks, legal holds and WORM media;
//! - key status and rotations;
//! - disposal certificates;
//! - the access review: users, roles, MFA, privileged actions, failed
//!   logins and refusals;
//! - failed jobs and missed RPOs, with what followed.
//!
//! The report states whether the audit chain it was built from verifies.

use std::fmt::Write as _;

use anyhow::{Result, anyhow};
use coffer_auth::Principal;
use coffer_catalog::{Catalog, JobViewFilter};
use coffer_types::api::{AuditEntry, AuditFilter, JobView};
use coffer_types::{JobKind, JobStatus, rfc3339_ms};
use serde_json::{Value, json};

use crate::Inner;

/// Milliseconds at 00:00 UTC of `day` (`YYYY-MM-DD`).
fn day_ms(day: &str) -> Result<i64> {
    let d: jiff::civil::Date = day
        .parse()
        .map_err(|_| anyhow!("'{day}' is not a date (YYYY-MM-DD)"))?;
    Ok(d.to_zoned(jiff::tz::TimeZone::UTC)?
        .timestamp()
        .as_millisecond())
}

fn in_period(t: &str, from: &str, to: &str) -> bool {
    t >= from && t < to
}

/// The report of `from` to `to` (whole UTC days, both included), built
/// for `p`.
pub(crate) fn build(
    inner: &Inner,
    cat: &Catalog,
    p: &Principal,
    from: &str,
    to: &str,
    now: i64,
) -> Result<Value> {
    let from_ms = day_ms(from)?;
    let to_ms = day_ms(to)? + 86_400_000;
    if to_ms <= from_ms {
        return Err(anyhow!("the period ends ({to}) before it begins ({from})"));
    }
    let (f, t) = (rfc3339_ms(from_ms), rfc3339_ms(to_ms));
    let chain = inner.auditor.verify(cat)?;
    let register = cat.register()?;
    let profiles = cat.profiles()?;
    let last_good = cat.last_good_backups()?;

    let assets: Vec<Value> = register
        .iter()
        .map(|r| {
            let a = &r.asset;
            json!({
                "name": a.name, "owner": a.owner, "criticality": a.criticality,
                "sources": a.sources, "profile": a.profile,
                "rpo": a.rpo.to_string(), "rto": a.rto.to_string(),
                "last_good_backup": last_good.get(&a.name).map(|t| rfc3339_ms(*t)),
            })
        })
        .collect();
    let mut gaps = Vec::new();
    for r in &register {
        let a = &r.asset;
        match &a.profile {
            None => gaps.push(format!(
                "{}: no profile, so it is never backed up on a schedule",
                a.name
            )),
            Some(p) if !profiles.iter().any(|x| &x.name == p) => {
                gaps.push(format!("{}: its profile '{p}' does not exist", a.name))
            }
            _ => {}
        }
        match last_good.get(&a.name) {
            None => gaps.push(format!("{}: never backed up", a.name)),
            Some(t) if now - t > a.rpo.ms() => gaps.push(format!(
                "{}: last good backup {} ago, RPO {}",
                a.name,
                coffer_types::api::Duration(u64::try_from((now - t) / 1000).unwrap_or(0)),
                a.rpo
            )),
            _ => {}
        }
    }

    let jobs = cat.job_views(&JobViewFilter::default())?;
    let period: Vec<&JobView> = jobs
        .iter()
        .filter(|j| in_period(&j.record.started, &f, &t))
        .collect();
    let row = |j: &JobView| {
        let r = &j.record;
        json!({
            "id": r.id, "kind": r.kind.as_str(), "asset": r.asset,
            "level": r.level.map(|l| l.as_str()), "scope": r.scope.paths,
            "started": r.started, "ended": r.ended, "status": r.status.as_str(),
            "identity": r.identity, "source": j.source.map(|s| s.as_str()),
            "files": r.stats.files_read, "bytes_read": r.stats.bytes_read,
            "bytes_stored": r.stats.bytes_stored,
            "snapshot": r.snapshot.map(|s| s.to_hex()),
            "messages": r.messages,
        })
    };
    let backups: Vec<Value> = period
        .iter()
        .filter(|j| j.record.kind == JobKind::Backup)
        .map(|j| row(j))
        .collect();
    let failed: Vec<Value> = period
        .iter()
        .filter(|j| matches!(j.record.status, JobStatus::Failed | JobStatus::Interrupted))
        .map(|j| {
            // What followed: the next job of the same kind and asset.
            let next = jobs
                .iter()
                .filter(|n| {
                    n.record.kind == j.record.kind
                        && n.record.asset == j.record.asset
                        && n.record.id > j.record.id
                })
                .min_by_key(|n| n.record.id);
            let mut v = row(j);
            v["followed_by"] = match next {
                Some(n) => json!(format!(
                    "job {} ({}, {}{})",
                    n.record.id,
                    n.record.status.as_str(),
                    n.record.identity,
                    if n.attempt > 1 { ", a retry" } else { "" }
                )),
                None => json!("nothing yet"),
            };
            v
        })
        .collect();
    let alerts = cat.alerts(true)?;
    let missed: Vec<Value> = alerts
        .iter()
        .filter(|a| a.kind == "rpo" && in_period(&a.raised, &f, &t))
        .map(|a| {
            json!({"asset": a.subject, "raised": a.raised, "message": a.message,
                        "cleared": a.cleared, "acknowledged_by": a.acked_by})
        })
        .collect();

    let drills: Vec<Value> = cat
        .drills(None)?
        .into_iter()
        .filter(|d| in_period(&d.started, &f, &t))
        .map(|d| serde_json::to_value(d).unwrap_or(Value::Null))
        .collect();
    let compliance = crate::compliance::all(inner, cat, now)?;
    let locks = cat.locks(None, now)?;
    let holds = cat.holds(true)?;
    let worm: Vec<Value> = cat
        .cartridges()?
        .into_iter()
        .filter(|c| c.worm)
        .map(|c| json!({"barcode": c.barcode, "pool": c.pool, "set": c.set.map(|s| s.0.to_hex())}))
        .collect();
    let keys = coffer_engine::keys::status(&inner.repo, cat)?;
    let disposals: Vec<Value> = cat
        .disposals()?
        .into_iter()
        .filter(|d| in_period(&d.at, &f, &t))
        .map(|d| serde_json::to_value(d).unwrap_or(Value::Null))
        .collect();
    let users = inner.auth.list_users(cat, p, now)?;
    let audit: Vec<AuditEntry> = inner.auditor.list(
        cat,
        &AuditFilter {
            since_ms: Some(from_ms),
            until_ms: Some(to_ms),
            limit: Some(u32::MAX),
            ..AuditFilter::default()
        },
    )?;
    let read_only = |a: &str| {
        a.ends_with(".list")
            || a.ends_with(".show")
            || a.ends_with(".get")
            || a.ends_with(".read")
            || a == "audit.verify"
            || a == "login"
            || a == "logout"
    };
    let privileged: Vec<&AuditEntry> = audit
        .iter()
        .filter(|e| e.identity != "system" && !read_only(&e.action) && e.result != "denied")
        .collect();
    let failed_logins: Vec<&AuditEntry> = audit
        .iter()
        .filter(|e| e.action == "login" && e.result != "ok")
        .collect();
    let denied: Vec<&AuditEntry> = audit.iter().filter(|e| e.result == "denied").collect();

    Ok(json!({
        "title": "ISO/IEC 27001:2022 Annex A 8.13 information backup: evidence",
        "appliance": inner.host,
        "store": inner.repo.config().store_id.to_string(),
        "period": {"from": from, "to": to, "from_utc": f, "until_utc": t},
        "generated": rfc3339_ms(now),
        "audit_chain": chain,
        "assets": assets,
        "profiles": profiles,
        "gaps": gaps,
        "backups": backups,
        "drills": drills,
        "compliance": compliance,
        "retention": {"locks": locks, "holds": holds, "worm_cartridges": worm},
        "keys": keys,
        "disposals": disposals,
        "access": {
            "users": users,
            "privileged_actions": privileged,
            "failed_logins": failed_logins,
            "refused": denied,
        },
        "failed_jobs": failed,
        "missed_rpo": missed,
    }))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => esc(s),
        Value::Array(a) => esc(&a
            .iter()
            .map(|x| match x {
                Value::String(s) => s.clone(),
                o => o.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")),
        o => esc(&o.to_string()),
    }
}

/// A table of `rows` with the `cols` (key, heading); "none" when empty.
fn table(h: &mut String, rows: &[Value], cols: &[(&str, &str)]) {
    if rows.is_empty() {
        h.push_str("<p class=\"none\">None in this period.</p>\n");
        return;
    }
    h.push_str("<table><thead><tr>");
    for (_, head) in cols {
        let _ = write!(h, "<th>{}</th>", esc(head));
    }
    h.push_str("</tr></thead><tbody>\n");
    for r in rows {
        h.push_str("<tr>");
        for (key, _) in cols {
            let v = key.split('.').fold(r, |v, k| &v[k]);
            let _ = write!(h, "<td>{}</td>", cell(v));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table>\n");
}

fn list(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

/// The report as one printable HTML page.
pub(crate) fn html(r: &Value) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{title} — {app}, {from} to {to}</title>\n<style>\
         body{{font-family:sans-serif;margin:2em;color:#111}}\
         h1{{font-size:1.4em}}h2{{font-size:1.15em;border-bottom:1px solid #999;margin-top:1.6em}}\
         table{{border-collapse:collapse;width:100%;font-size:.85em;margin:.5em 0}}\
         th,td{{border:1px solid #bbb;padding:.25em .4em;text-align:left;vertical-align:top}}\
         th{{background:#eee}}.ok{{color:#060;font-weight:bold}}.bad{{color:#a00;font-weight:bold}}\
         .none{{color:#555;font-style:italic}}\
         @media print{{body{{margin:0}}h2{{page-break-after:avoid}}tr{{page-break-inside:avoid}}}}\
         </style></head><body>\n",
        title = esc(r["title"].as_str().unwrap_or("")),
        app = esc(r["appliance"].as_str().unwrap_or("")),
        from = esc(r["period"]["from"].as_str().unwrap_or("")),
        to = esc(r["period"]["to"].as_str().unwrap_or("")),
    );
    let _ = write!(
        h,
        "<h1 id=\"title\">{}</h1>\n<p>Appliance <b>{}</b>, store {}. Period {} to {} (UTC, both days included). Generated {}.</p>\n",
        esc(r["title"].as_str().unwrap_or("")),
        cell(&r["appliance"]),
        cell(&r["store"]),
        cell(&r["period"]["from"]),
        cell(&r["period"]["to"]),
        cell(&r["generated"]),
    );
    let c = &r["audit_chain"];
    let ok = c["ok"].as_bool() == Some(true);
    let _ = write!(
        h,
        "<h2 id=\"audit-chain\">Integrity of the audit log</h2>\n<p class=\"{}\">{}</p>\n",
        if ok { "ok" } else { "bad" },
        if ok {
            format!(
                "The audit chain verifies: {} entries, each hash-chained to the one before and anchored. This report was built from it.",
                c["entries"]
            )
        } else {
            format!(
                "THE AUDIT CHAIN DOES NOT VERIFY: {}. The sections built from it cannot be relied on.",
                cell(&c["problems"])
            )
        }
    );
    h.push_str("<h2 id=\"assets\">Asset register</h2>\n");
    table(
        &mut h,
        &list(&r["assets"]),
        &[
            ("name", "asset"),
            ("owner", "owner"),
            ("criticality", "criticality"),
            ("profile", "profile"),
            ("rpo", "RPO"),
            ("rto", "RTO"),
            ("last_good_backup", "last good backup"),
        ],
    );
    h.push_str("<h2 id=\"profiles\">Backup profiles</h2>\n");
    table(
        &mut h,
        &list(&r["profiles"]),
        &[
            ("name", "profile"),
            ("schedules.full", "full"),
            ("schedules.differential", "differential"),
            ("schedules.incremental", "incremental"),
            ("replicate_to", "replicated to"),
            ("drill.schedule", "restore drills"),
        ],
    );
    h.push_str("<h2 id=\"gaps\">Coverage gaps</h2>\n");
    let gaps: Vec<Value> = list(&r["gaps"])
        .into_iter()
        .map(|g| json!({"gap": g}))
        .collect();
    table(&mut h, &gaps, &[("gap", "gap")]);
    h.push_str("<h2 id=\"backups\">Backup log</h2>\n");
    table(
        &mut h,
        &list(&r["backups"]),
        &[
            ("id", "job"),
            ("started", "start (UTC)"),
            ("ended", "end (UTC)"),
            ("asset", "asset"),
            ("scope", "scope"),
            ("level", "level"),
            ("status", "status"),
            ("identity", "by"),
            ("bytes_read", "bytes read"),
            ("bytes_stored", "bytes stored"),
        ],
    );
    h.push_str("<h2 id=\"drills\">Restore drills</h2>\n");
    let drills: Vec<Value> = list(&r["drills"])
        .into_iter()
        .map(|mut d| {
            d["took"] = json!(
                d["duration_ms"]
                    .as_i64()
                    .map(|m| format!("{:.1} s", m as f64 / 1000.0))
            );
            d["target"] = json!(
                d["rto_ms"]
                    .as_i64()
                    .map(|m| format!("{:.0} s", m as f64 / 1000.0))
            );
            d
        })
        .collect();
    table(
        &mut h,
        &drills,
        &[
            ("id", "drill"),
            ("started", "start (UTC)"),
            ("asset", "asset"),
            ("source", "from"),
            ("copy", "copy"),
            ("identity", "by"),
            ("took", "took"),
            ("target", "RTO"),
            ("files", "files verified"),
            ("isolation", "sandbox"),
            ("result", "result"),
            ("reason", "why"),
        ],
    );
    h.push_str("<h2 id=\"compliance\">3-2-1-1-0</h2>\n");
    let comp: Vec<Value> = list(&r["compliance"])
        .into_iter()
        .map(|mut a| {
            a["status"] = json!(if a["met"].as_bool() == Some(true) {
                "met"
            } else {
                "NOT met"
            });
            a["copy_list"] = json!(
                list(&a["copies"])
                    .iter()
                    .map(|c| format!(
                        "{} ({}{}{})",
                        c["name"].as_str().unwrap_or(""),
                        c["medium"].as_str().unwrap_or(""),
                        if c["offsite"].as_bool() == Some(true) {
                            ", offsite"
                        } else {
                            ""
                        },
                        if c["immutable_or_offline"].as_bool() == Some(true) {
                            ", immutable/offline"
                        } else {
                            ""
                        }
                    ))
                    .collect::<Vec<_>>()
            );
            a["offsite_age"] = json!(
                a["offsite_age_s"]
                    .as_i64()
                    .map(|s| format!("{:.1} h", s as f64 / 3600.0))
            );
            a
        })
        .collect();
    table(
        &mut h,
        &comp,
        &[
            ("asset", "asset"),
            ("status", "3-2-1-1-0"),
            ("copy_list", "copies"),
            ("offsite_age", "offsite copy age"),
            ("missing", "missing"),
        ],
    );
    h.push_str("<h2 id=\"retention\">Retention locks, legal holds and WORM media</h2>\n");
    table(
        &mut h,
        &list(&r["retention"]["locks"]),
        &[
            ("snapshot", "snapshot"),
            ("asset", "asset"),
            ("until", "locked until"),
            ("active", "running"),
            ("reason", "reason"),
        ],
    );
    table(
        &mut h,
        &list(&r["retention"]["holds"]),
        &[
            ("id", "hold"),
            ("snapshot", "snapshot"),
            ("asset", "asset"),
            ("reason", "matter"),
            ("set_by", "placed by"),
            ("released_at", "released"),
        ],
    );
    table(
        &mut h,
        &list(&r["retention"]["worm_cartridges"]),
        &[
            ("barcode", "WORM cartridge"),
            ("pool", "pool"),
            ("set", "media set"),
        ],
    );
    h.push_str("<h2 id=\"keys\">Keys</h2>\n");
    let k = &r["keys"];
    let _ = writeln!(
        h,
        "<p>Encryption: {}. Master key {}. Last data key rotation: {}.</p>",
        cell(&k["algorithm"]),
        cell(&k["master_key_id"]),
        cell(&k["rotated"])
    );
    table(
        &mut h,
        &list(&k["events"]),
        &[
            ("at", "when (UTC)"),
            ("event", "event"),
            ("generation", "generation"),
            ("identity", "by"),
            ("detail", "detail"),
        ],
    );
    h.push_str("<h2 id=\"disposals\">Disposal certificates</h2>\n");
    table(
        &mut h,
        &list(&r["disposals"]),
        &[
            ("id", "certificate"),
            ("at", "when (UTC)"),
            ("what", "what"),
            ("keys", "keys destroyed"),
            ("identity", "by"),
            ("policy", "policy"),
            ("digest", "digest"),
        ],
    );
    h.push_str("<h2 id=\"access\">Access review</h2>\n");
    table(
        &mut h,
        &list(&r["access"]["users"]),
        &[
            ("name", "user"),
            ("roles", "roles"),
            ("mfa_enrolled", "MFA"),
            ("last_login", "last login"),
            ("failed_logins", "failed logins"),
            ("locked_until", "locked until"),
        ],
    );
    let audit_cols = [
        ("time", "when (UTC)"),
        ("identity", "who"),
        ("source", "from"),
        ("action", "action"),
        ("target", "on"),
        ("result", "result"),
        ("detail", "detail"),
    ];
    h.push_str("<h3>Privileged actions</h3>\n");
    table(
        &mut h,
        &list(&r["access"]["privileged_actions"]),
        &audit_cols,
    );
    h.push_str("<h3>Failed logins</h3>\n");
    table(&mut h, &list(&r["access"]["failed_logins"]), &audit_cols);
    h.push_str("<h3>Refused requests</h3>\n");
    table(&mut h, &list(&r["access"]["refused"]), &audit_cols);
    h.push_str("<h2 id=\"failures\">Failed jobs and missed RPOs</h2>\n");
    table(
        &mut h,
        &list(&r["failed_jobs"]),
        &[
            ("id", "job"),
            ("kind", "kind"),
            ("asset", "asset"),
            ("started", "start (UTC)"),
            ("status", "status"),
            ("messages", "why"),
            ("followed_by", "what followed"),
        ],
    );
    table(
        &mut h,
        &list(&r["missed_rpo"]),
        &[
            ("asset", "asset"),
            ("raised", "raised (UTC)"),
            ("message", "breach"),
            ("cleared", "cleared"),
            ("acknowledged_by", "acknowledged by"),
        ],
    );
    h.push_str("</body></html>\n");
    h
}
