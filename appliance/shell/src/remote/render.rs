//! Results for people: aligned tables for lists, `key: value` details for
//! single objects, a sentence for calls that return nothing. (`--json`
//! skips all of this and prints the result as the daemon sent it.)

use coffer_types::api::{
    Alert, AssetView, AuditEntry, AuditVerify, Call, DaemonStatus, Enrollment, HealthReport,
    HealthState, ImportReport, JobView, NewToken, NextRun, Pairing, PanelView, Profile,
    RemoteListing, RemoteView, ReplicationStats, ReplicationStatus, Role, TokenInfo, UserInfo,
    Whoami,
};
use coffer_types::api::{ClockStatus, Disposal, KeyStatus, LegalHold, SnapshotLock};
use coffer_types::{JobStatus, SnapshotInfo};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::cli::{EXIT_DAMAGED, EXIT_FAILED, EXIT_OK, EXIT_WARNINGS};
use crate::output::size;

/// A table with a header row; columns are as wide as their widest cell,
/// two spaces apart, and lines carry no trailing spaces.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers, all left-aligned.
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            right: vec![false; headers.len()],
            rows: Vec::new(),
        }
    }

    /// Right-aligns column `col` (numbers).
    pub fn right(mut self, col: usize) -> Table {
        if let Some(r) = self.right.get_mut(col) {
            *r = true;
        }
        self
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The text, one line per row after the header.
    pub fn render(&self) -> String {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        for cells in std::iter::once(&header).chain(self.rows.iter()) {
            let mut line = String::new();
            for (i, (width, right)) in widths.iter().zip(&self.right).enumerate() {
                let cell = cells.get(i).map(String::as_str).unwrap_or("");
                let pad = width.saturating_sub(cell.chars().count());
                if i > 0 {
                    line.push_str("  ");
                }
                if *right {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `key: value` lines with the values aligned.
pub fn details(rows: &[(&str, String)]) -> String {
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0)
        + 1;
    let mut out = String::new();
    for (k, v) in rows {
        let key = format!("{k}:");
        out.push_str(format!("{key:<width$} {v}").trim_end());
        out.push('\n');
    }
    out
}

/// An RFC 3339 time as `2026-11-26 03:06:28Z` (seconds, UTC).
pub fn time(s: &str) -> String {
    let b = s.as_bytes();
    if b.len() >= 19 && b[10] == b'T' && s.is_char_boundary(19) {
        let zulu = if s.ends_with('Z') { "Z" } else { "" };
        format!("{} {}{zulu}", &s[..10], &s[11..19])
    } else {
        s.to_string()
    }
}

fn opt_time(s: &Option<String>, none: &str) -> String {
    s.as_deref().map_or_else(|| none.to_string(), time)
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "-".into())
}

/// `administrator, auditor`.
pub fn roles(r: &[Role]) -> String {
    if r.is_empty() {
        return "-".into();
    }
    r.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
}

/// What a result rendered to: the text and the exit code it implies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The text for standard output.
    pub text: String,
    /// 0, or 3 (warnings) or 4 (damage) when the result says so.
    pub code: u8,
}

fn ok(text: String) -> Rendered {
    Rendered {
        text,
        code: EXIT_OK,
    }
}

fn typed<T: DeserializeOwned>(v: &Value) -> Result<T, String> {
    serde_json::from_value(v.clone()).map_err(|e| format!("unexpected result from cofferd: {e}"))
}

/// Renders `call`'s result `v` for people. `color` allows terminal colors
/// (the enrollment's QR code). Fails when the result has another shape
/// than the API says.
pub fn render(call: &Call, v: &Value, color: bool) -> Result<Rendered, String> {
    Ok(match call {
        Call::Status => ok(status(&typed(v)?)),
        Call::Whoami => ok(whoami(&typed(v)?)),
        Call::UserList => ok(users(&typed::<Vec<UserInfo>>(v)?)),
        Call::Bootstrap { .. } | Call::UserAdd { .. } | Call::UserResetMfa { .. } => {
            ok(enrollment(&typed(v)?, color))
        }
        Call::TokenCreate { .. } => ok(new_token(&typed(v)?)),
        Call::TokenList => ok(tokens(&typed::<Vec<TokenInfo>>(v)?)),
        Call::AssetList => ok(assets(&typed::<Vec<AssetView>>(v)?)),
        Call::AssetGet { .. } => ok(asset(&typed(v)?)),
        Call::AssetImport { .. } => ok(import_report(&typed(v)?)),
        Call::ProfileList => ok(profiles(&typed::<Vec<Profile>>(v)?)),
        Call::ProfileGet { .. } => ok(profile(&typed(v)?)),
        Call::ScheduleNext { .. } => ok(next_runs(&typed::<Vec<NextRun>>(v)?)),
        Call::ScheduleCheck { .. } => ok(schedule_check(v)?),
        Call::JobRun { asset, level } => {
            let id = v
                .get("job")
                .and_then(Value::as_i64)
                .ok_or("unexpected result from cofferd: no job id")?;
            ok(format!(
                "job {id} queued: {} backup of '{asset}' ('job watch {id}' follows it)\n",
                level.as_str()
            ))
        }
        Call::JobList { .. } => ok(jobs(&typed::<Vec<JobView>>(v)?)),
        Call::DrillRun { asset, from, .. } => {
            let id = v
                .get("job")
                .and_then(Value::as_i64)
                .ok_or("unexpected result from cofferd: no job id")?;
            ok(format!(
                "job {id} queued: restore drill of '{asset}' from {} ('job watch {id}' follows it; 'drill list' shows the evidence)\n",
                from.as_str()
            ))
        }
        Call::VerifyRun { .. } => ok(format!(
            "queued: job(s) {} ('job watch ID' follows one; 'job list --kind verify' shows the results)\n",
            v.get("jobs")
                .and_then(Value::as_array)
                .map(|a| a
                    .iter()
                    .map(|j| j.to_string())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        )),
        Call::ReportIso27001 { from, to, out } => {
            let dir = std::path::PathBuf::from(out.as_deref().unwrap_or("."));
            let base = dir.join(format!("iso27001-{from}-{to}"));
            let html = base.with_extension("html");
            let json_path = base.with_extension("json");
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create '{}': {e}", dir.display()))?;
            let page = v["html"]
                .as_str()
                .ok_or("unexpected result from cofferd: the report has no HTML")?;
            std::fs::write(&html, page)
                .map_err(|e| format!("cannot write '{}': {e}", html.display()))?;
            let pretty = serde_json::to_string_pretty(&v["report"]).map_err(|e| e.to_string())?;
            std::fs::write(&json_path, pretty)
                .map_err(|e| format!("cannot write '{}': {e}", json_path.display()))?;
            let r = &v["report"];
            let n = |k: &str| r[k].as_array().map_or(0, Vec::len);
            ok(format!(
                "ISO 27001 evidence report, {from} to {to}: audit chain {}; {} assets, {} gaps, {} backups, {} drills, {} failed jobs\nwrote {} and {}\n",
                if r["audit_chain"]["ok"].as_bool() == Some(true) {
                    "verifies"
                } else {
                    "DOES NOT VERIFY"
                },
                n("assets"),
                n("gaps"),
                n("backups"),
                n("drills"),
                n("failed_jobs"),
                html.display(),
                json_path.display()
            ))
        }
        Call::UpdateStatus => ok(update_status(&typed(v)?)),
        Call::UpdateInstall { .. } => {
            let i: coffer_image::slots::Installed = typed(v)?;
            ok(format!(
                "version {} installed into slot {} (signed by key {}); it boots at the next restart ('system reboot') and has {} to reach a healthy cofferd, or slot {} boots again\n",
                i.version,
                i.slot.name(),
                i.manifest.key,
                boots(i.tries),
                i.slot.other().name()
            ))
        }
        Call::Compliance => ok(compliance(
            &typed::<Vec<coffer_types::api::AssetCompliance>>(v)?,
        )),
        Call::DrillList { .. } => ok(drills(&typed::<Vec<coffer_types::api::DrillRecord>>(v)?)),
        Call::JobGet { .. } => ok(job(&typed(v)?)),
        Call::JobLog { .. } => {
            let lines: Vec<String> = typed(v.get("lines").unwrap_or(&Value::Null))?;
            ok(if lines.is_empty() {
                "(the job's log is empty)\n".into()
            } else {
                lines.iter().map(|l| format!("{l}\n")).collect()
            })
        }
        Call::JobCancel { id } => ok(match v.get("message").and_then(Value::as_str) {
            Some(m) => format!("{m}\n"),
            None => format!("job {id} cancelled\n"),
        }),
        Call::SnapshotList { .. } => ok(snapshots(&typed::<Vec<SnapshotInfo>>(v)?)),
        Call::AlertList { all } => ok(alerts(&typed::<Vec<Alert>>(v)?, *all)),
        Call::AuditList { .. } => ok(audit(&typed::<Vec<AuditEntry>>(v)?)),
        Call::AuditVerify => audit_verify(&typed(v)?),
        Call::PanelShow => ok(panel(&typed(v)?, color)),
        Call::RemoteList => ok(remote_list(&typed(v)?)),
        Call::RemoteAdd { .. } | Call::RemotePair { .. } => {
            let p: Pairing = typed(v)?;
            ok(format!("{}\n", p.message))
        }
        Call::ReplicateStatus => ok(replicate_status(&typed(v)?)),
        Call::ReplicateRun { remote } => ok(match v.get("job").and_then(Value::as_i64) {
            Some(id) => format!(
                "job {id} queued: replication to '{remote}' ('job watch {id}' follows it)\n"
            ),
            None => format!("a replication to '{remote}' is already queued\n"),
        }),
        Call::RemoteRestore { remote, .. } => {
            let id = v
                .get("job")
                .and_then(Value::as_i64)
                .ok_or("unexpected result from cofferd: no job id")?;
            ok(format!(
                "job {id} queued: restore from '{remote}' ('job watch {id}' follows it)\n"
            ))
        }
        Call::RetentionShow { .. } => ok(retention_plan(v)),
        Call::Prune { .. } | Call::Gc { .. } | Call::SnapshotDelete { .. } => {
            let id = v
                .get("job")
                .and_then(Value::as_i64)
                .ok_or("unexpected result from cofferd: no job id")?;
            let what = match call {
                Call::Prune { .. } => "prune by retention",
                Call::Gc { .. } => "garbage collection",
                _ => "deletion of the snapshot",
            };
            ok(format!(
                "job {id} queued: {what} ('job watch {id}' follows it)\n"
            ))
        }
        Call::LockSet { .. } => ok(format!(
            "locked until {}; {} store objects carry the immutable attribute{}\n",
            v.get("until").and_then(Value::as_str).unwrap_or("?"),
            v.get("immutable_objects")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            v.get("warnings")
                .and_then(Value::as_array)
                .filter(|w| !w.is_empty())
                .map(|w| format!(" (warning: {})", w[0].as_str().unwrap_or("")))
                .unwrap_or_default()
        )),
        Call::LockList { .. } => ok(locks(&typed::<Vec<SnapshotLock>>(v)?)),
        Call::HoldSet { reason, .. } => ok(format!(
            "legal hold {} placed: {reason}\n",
            v.get("hold").and_then(Value::as_i64).unwrap_or(0)
        )),
        Call::HoldRelease { id } => ok(format!("legal hold {id} released\n")),
        Call::HoldList { .. } => ok(holds(&typed::<Vec<LegalHold>>(v)?)),
        Call::ClockShow | Call::ClockAccept => ok(clock(&typed(v)?)),
        Call::DisposalList => ok(disposals(&typed::<Vec<Disposal>>(v)?)),
        Call::KeyStatus => ok(key_status(&typed(v)?)),
        Call::MediaToday { .. } => ok(v
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n")),
        Call::MediaPools => ok(media_pools(v)),
        Call::MediaStep { .. } => ok(media_step(v)),
        Call::MediaManifest { id: Some(_) } => {
            let m: coffer_catalog::TransferManifest = typed(&v["manifest"])?;
            let sets: Vec<Option<String>> = typed(&v["sets"])?;
            ok(coffer_media::rotation::manifest_text(&m, &sets))
        }
        Call::MediaManifest { id: None } => {
            ok(coffer_media::rotation::manifests_table(&typed::<
                Vec<coffer_catalog::TransferManifest>,
            >(v)?))
        }
        Call::MediaCustody { .. } => ok(coffer_media::rotation::custody_text(&typed::<
            Vec<coffer_catalog::CustodyEvent>,
        >(v)?)),
        Call::KeyRotate => ok(format!(
            "data key generation {} ({}) seals new data from now on\n",
            v.get("generation").and_then(Value::as_u64).unwrap_or(0),
            v.get("key_id").and_then(Value::as_str).unwrap_or("?")
        )),
        _ => ok(done(call)),
    })
}

/// Restore drills, newest first, as evidence.
pub fn drills(v: &[coffer_types::api::DrillRecord]) -> String {
    if v.is_empty() {
        return "(no restore drills yet: 'drill run ASSET')\n".into();
    }
    let secs = |ms: Option<i64>| ms.map_or("-".into(), |m| format!("{:.1} s", m as f64 / 1000.0));
    let mut out = String::new();
    for d in v {
        out.push_str(&details(&[
            ("drill", d.id.to_string()),
            ("result", d.result.to_uppercase()),
            ("asset", d.asset.clone()),
            ("snapshot", d.snapshot.clone()),
            ("from", format!("{}: {}", d.source, d.copy)),
            ("by", d.identity.clone()),
            ("started", d.started.clone()),
            ("took", secs(d.duration_ms)),
            ("RTO", secs(d.rto_ms)),
            ("verified", format!("{} files, {}", d.files, size(d.bytes))),
            ("sandbox", d.isolation.clone()),
            ("why", d.reason.clone()),
        ]));
    }
    out
}

/// Media pools (as `media_pools` gives them): each pool's cartridges.
pub fn media_pools(v: &Value) -> String {
    let mut out = String::new();
    let pools = v.as_array().map(Vec::as_slice).unwrap_or_default();
    if pools.is_empty() {
        out.push_str("(no media pools: `coffer media pool add NAME …` creates one)\n");
    }
    for p in pools {
        let carts = p["cartridges"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        out.push_str(&format!(
            "pool {}: {} cartridge(s); its scheme needs {}\n",
            p["pool"]["name"].as_str().unwrap_or("?"),
            carts.len(),
            p["required_cartridges"]
        ));
        for c in carts {
            out.push_str(&format!(
                "  {:<9} {:<40} {}\n",
                c["barcode"].as_str().unwrap_or("?"),
                c["state"].as_str().unwrap_or("?"),
                c["set"].as_str().unwrap_or("")
            ));
        }
    }
    out
}

/// What a media rotation step recorded.
pub fn media_step(v: &Value) -> String {
    let mut out = String::new();
    let recorded = |out: &mut String, r: &Value| {
        for c in r["cartridges"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "{}: now {}\n",
                c[0].as_str().unwrap_or("?"),
                c[1].as_str().unwrap_or("?")
            ));
        }
        if let Some(m) = r["manifest"].as_i64() {
            out.push_str(&format!(
                "transfer manifest {m} ('media manifest {m}' prints it)\n"
            ));
        }
    };
    if let Some(pools) = v.as_array() {
        // settle: per pool.
        for p in pools {
            recorded(&mut out, &p["recorded"]);
            for s in p["shredded"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "media set {}: expired; its key was destroyed (crypto-shredding), disposal certificate {}\n",
                    s["set"].as_str().unwrap_or("?"),
                    s["certificate"]
                ));
            }
        }
    } else if v.get("recorded").is_some() {
        recorded(&mut out, &v["recorded"]);
        for c in v["certificates"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "disposal certificate {c} filed ('disposal list')\n"
            ));
        }
    } else if let Some(pool) = v["pool"].as_str() {
        out.push_str(&format!(
            "drive cleaning recorded for pool {pool} on {}\n",
            v["cleaned"].as_str().unwrap_or("?")
        ));
    } else {
        recorded(&mut out, v);
    }
    if out.is_empty() {
        out.push_str("nothing changed\n");
    }
    out
}

/// A retention plan (as `plans_json` gives it): per asset, each snapshot
/// kept or removed, why, until when.
pub fn retention_plan(v: &Value) -> String {
    let mut out = String::new();
    for a in v.as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{}: {}\n",
            a.get("asset").and_then(Value::as_str).unwrap_or("?"),
            a.get("policy")
                .filter(|p| !p.is_null())
                .map(|p| p.to_string())
                .unwrap_or_else(|| "no policy: everything is kept".into())
        ));
        let mut t = Table::new(&["SNAPSHOT", "TIME", "VERDICT", "WHY", "UNTIL"]);
        for s in a
            .get("snapshots")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let txt = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let reasons: Vec<String> = s
                .get("reasons")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect();
            t.row(vec![
                txt("id").chars().take(12).collect(),
                txt("time"),
                if s.get("keep").and_then(Value::as_bool).unwrap_or(true) {
                    "keep".into()
                } else {
                    "remove".into()
                },
                reasons.join("; "),
                txt("expires"),
            ]);
        }
        out.push_str(&t.render());
    }
    if out.is_empty() {
        out.push_str("(no snapshots)\n");
    }
    out
}

/// Retention locks.
pub fn locks(v: &[SnapshotLock]) -> String {
    if v.is_empty() {
        return "(no retention locks)\n".into();
    }
    let mut t = Table::new(&["SNAPSHOT", "ASSET", "UNTIL", "STATE", "SET BY", "REASON"]);
    for l in v {
        t.row(vec![
            l.snapshot.chars().take(12).collect(),
            l.asset.clone(),
            l.until.clone(),
            if l.active { "locked" } else { "ended" }.into(),
            l.set_by.clone(),
            l.reason.clone(),
        ]);
    }
    t.render()
}

/// Legal holds.
pub fn holds(v: &[LegalHold]) -> String {
    if v.is_empty() {
        return "(no legal holds)\n".into();
    }
    let mut t = Table::new(&["ID", "ON", "REASON", "SET BY", "SET", "RELEASED"]).right(0);
    for h in v {
        t.row(vec![
            h.id.to_string(),
            match (&h.snapshot, &h.asset) {
                (Some(s), _) => format!("snapshot {}", s.chars().take(12).collect::<String>()),
                (_, Some(a)) => format!("asset {a}"),
                _ => "?".into(),
            },
            h.reason.clone(),
            h.set_by.clone(),
            h.set_at.clone(),
            match (&h.released_by, &h.released_at) {
                (Some(by), Some(at)) => format!("{at} by {by}"),
                _ => "active".into(),
            },
        ]);
    }
    t.render()
}

/// The trusted clock.
pub fn clock(s: &ClockStatus) -> String {
    details(&[
        ("wall clock", s.wall.clone()),
        ("trusted clock", s.trusted.clone()),
        ("ahead by", format!("{} s", s.ahead_ms / 1000)),
        ("state", s.jump.clone().unwrap_or_else(|| "agree".into())),
    ])
}

/// Disposal certificates.
pub fn disposals(v: &[Disposal]) -> String {
    if v.is_empty() {
        return "(no disposal certificates)\n".into();
    }
    let mut out = String::new();
    for d in v {
        out.push_str(&details(&[
            ("certificate", d.id.to_string()),
            ("at", d.at.clone()),
            ("what", d.what.clone()),
            (
                "keys destroyed",
                if d.keys.is_empty() {
                    "none".into()
                } else {
                    d.keys.join(", ")
                },
            ),
            ("objects", d.objects.to_string()),
            ("bytes", size(d.bytes)),
            (
                "policy",
                d.policy.clone().unwrap_or_else(|| "by hand".into()),
            ),
            ("by", d.identity.clone()),
            ("how", d.detail.clone()),
            ("digest", d.digest.clone()),
        ]));
        out.push('\n');
    }
    out
}

/// `key status`.
pub fn key_status(s: &KeyStatus) -> String {
    let mut out = details(&[
        ("algorithm", s.algorithm.clone()),
        ("store", s.store.clone()),
        ("master key id", s.master_key_id.clone()),
        ("key files", s.key_files.to_string()),
        (
            "last rotated",
            s.rotated.clone().unwrap_or_else(|| "never".into()),
        ),
    ]);
    let mut t = Table::new(&["GENERATION", "KEY ID", "STATE", "CONTAINERS", "CREATED"])
        .right(0)
        .right(3);
    for k in &s.data_keys {
        t.row(vec![
            k.generation.to_string(),
            k.key_id.clone(),
            k.state.clone(),
            k.containers.to_string(),
            k.created.clone().unwrap_or_default(),
        ]);
    }
    out.push_str(&t.render());
    if !s.events.is_empty() {
        let mut t = Table::new(&["AT", "EVENT", "BY", "DETAIL"]);
        for e in &s.events {
            t.row(vec![
                e.at.clone(),
                e.event.clone(),
                e.identity.clone(),
                e.detail.clone(),
            ]);
        }
        out.push_str(&t.render());
    }
    out
}

/// `1 boot`, `3 boots`.
fn boots(n: u32) -> String {
    if n == 1 {
        "1 boot".into()
    } else {
        format!("{n} boots")
    }
}

fn update_status(s: &coffer_image::slots::Status) -> String {
    use coffer_image::slots::Counter;
    let mut out = format!(
        "running: slot {}, version {}\n",
        s.running.name(),
        s.running_version
    );
    let mut t = Table::new(&["SLOT", "VERSION", "BOOT STATE", "NEXT BOOT"]);
    for (i, e) in s.entries.iter().enumerate() {
        t.row(vec![
            e.slot.name().to_string(),
            e.version.clone(),
            match e.counter {
                Counter::Good => "good".to_string(),
                Counter::Trying { left, done } => {
                    format!("being tried: {} left, {done} used", boots(left))
                }
                Counter::Failed { done } => {
                    format!("FAILED after {}: rolled back", boots(done))
                }
            },
            if i == 0 { "yes".into() } else { String::new() },
        ]);
    }
    out.push_str(&t.render());
    out
}

/// The sentence for a call that returns nothing.
pub fn done(call: &Call) -> String {
    let s = match call {
        Call::Logout => "logged out".to_string(),
        Call::MfaVerify { .. } => "fresh MFA confirmed".into(),
        Call::Passwd { .. } => "password changed".into(),
        Call::UserRoles { name, roles: r } => format!("user '{name}' now has roles {}", roles(r)),
        Call::UserRemove { name } => {
            format!("user '{name}' removed, with their tokens and sessions")
        }
        Call::UserUnlock { name } => format!("user '{name}' unlocked"),
        Call::TokenRevoke { id } => format!("token {id} revoked"),
        Call::AssetAdd { asset } => {
            if asset.profile.is_none() {
                format!(
                    "asset '{}' added; it has no profile, so it is UNPROTECTED",
                    asset.name
                )
            } else {
                format!("asset '{}' added", asset.name)
            }
        }
        Call::AssetUpdate { asset } => format!("asset '{}' updated", asset.name),
        Call::AssetRemove { name } => format!("asset '{name}' removed (its snapshots stay)"),
        Call::ProfileAdd { profile } => format!("profile '{}' added", profile.name),
        Call::ProfileUpdate { profile } => format!("profile '{}' updated", profile.name),
        Call::ProfileRemove { name } => format!("profile '{name}' removed"),
        Call::AlertAck { id } => format!("alert {id} acknowledged"),
        Call::Reload => "configuration reloaded".into(),
        Call::SystemReboot => "the appliance is restarting".into(),
        Call::PanelPress { button } => format!("pressed {button}"),
        Call::RemoteRemove { name } => {
            format!("remote '{name}' removed (its copies stay where they are)")
        }
        _ => "done".into(),
    };
    s + "\n"
}

fn status(s: &DaemonStatus) -> String {
    let mut rows = vec![("daemon", format!("cofferd {} (API {})", s.version, s.api))];
    if let Some(i) = &s.image {
        rows.push(("image", format!("Coffer {i}")));
    }
    rows.extend([
        ("host", s.host.clone()),
        ("clock", time(&s.now)),
        ("active jobs", s.active_jobs.to_string()),
        ("open alerts", s.open_alerts.to_string()),
    ]);
    if s.development {
        rows.push((
            "mode",
            "DEVELOPMENT (simulated hardware, development defaults)".into(),
        ));
    }
    if !s.codec.is_empty() {
        rows.push(("codec", s.codec.clone()));
    }
    if s.needs_bootstrap {
        rows.push((
            "setup",
            "no administrator yet: run 'coffer shell' on the console to create one".into(),
        ));
    }
    match &s.health {
        Some(h) => health_rows(h, &mut rows),
        None => rows.push(("health", "not read yet".into())),
    }
    if let Some(c) = &s.compliance {
        let met = c.iter().filter(|a| a.met).count();
        rows.push((
            "3-2-1-1-0",
            format!(
                "{met} of {} asset(s) meet it ('compliance' for each)",
                c.len()
            ),
        ));
        for a in c.iter().filter(|a| !a.met) {
            rows.push((
                "  not met",
                format!("{}: {}", a.asset, a.missing.join("; ")),
            ));
        }
    }
    details(&rows)
}

/// Each asset against 3-2-1-1-0: its copies and what it misses.
pub fn compliance(v: &[coffer_types::api::AssetCompliance]) -> String {
    if v.is_empty() {
        return "(no assets in the register)\n".into();
    }
    let mut out = String::new();
    for a in v {
        out.push_str(&format!(
            "{}: {}\n",
            a.asset,
            if a.met {
                "3-2-1-1-0 MET"
            } else {
                "3-2-1-1-0 NOT MET"
            }
        ));
        for c in &a.copies {
            out.push_str(&format!(
                "  copy   {:<6} {:<7} {}{}{}\n",
                c.kind,
                c.medium,
                c.name,
                if c.offsite { ", offsite" } else { "" },
                if c.immutable_or_offline {
                    ", immutable or offline"
                } else {
                    ""
                }
            ));
        }
        if let Some(age) = a.offsite_age_s {
            out.push_str(&format!("  newest offsite copy: {} old\n", age_words(age)));
        }
        for m in &a.missing {
            out.push_str(&format!("  missing {m}\n"));
        }
    }
    out
}

fn age_words(s: i64) -> String {
    match s {
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{:.1} h", s as f64 / 3600.0),
        s => format!("{:.1} days", s as f64 / 86_400.0),
    }
}

/// The health monitor's figures as status rows.
fn health_rows(report: &HealthReport, rows: &mut Vec<(&'static str, String)>) {
    rows.push(("health", report.state.as_str().to_string()));
    for r in &report.reasons {
        rows.push(("  because", r.clone()));
    }
    if report.reasons.is_empty() && report.state != HealthState::Ok {
        rows.push((
            "  because",
            "(shown to a logged-in user who may read alerts)".into(),
        ));
    }
    let h = &report.figures;
    if !h.addresses.is_empty() {
        rows.push(("addresses", h.addresses.join(", ")));
    }
    rows.push((
        "cpu",
        format!(
            "{:.0}% busy on {} cores; load {:.2} {:.2} {:.2}",
            h.cpu_percent, h.cores, h.load[0], h.load[1], h.load[2]
        ),
    ));
    let mem = if h.memory_total > 0 {
        h.memory_used as f64 * 100.0 / h.memory_total as f64
    } else {
        0.0
    };
    rows.push((
        "memory",
        format!(
            "{} of {} used ({mem:.0}%)",
            size(h.memory_used),
            size(h.memory_total)
        ),
    ));
    for f in &h.filesystems {
        rows.push((
            "disk",
            format!(
                "{} ({}): {} of {} used ({:.0}%)",
                f.role,
                f.path,
                size(f.used),
                size(f.total),
                f.percent()
            ),
        ));
    }
    if h.temperatures.is_empty() {
        rows.push(("temperature", "no sensors".into()));
    }
    for t in &h.temperatures {
        rows.push((
            "temperature",
            format!(
                "{}: {:.1} °C{}",
                t.label,
                t.celsius,
                t.critical
                    .map(|c| format!(" (critical {c:.0} °C)"))
                    .unwrap_or_default()
            ),
        ));
    }
    let (d, hr, m) = (
        h.uptime_secs / 86_400,
        h.uptime_secs / 3600 % 24,
        h.uptime_secs / 60 % 60,
    );
    rows.push((
        "uptime",
        format!("{d}d {hr}h {m}m (read {})", time(&report.sampled)),
    ));
}

/// The front panel as a box of its four lines, then its LEDs.
fn panel(p: &PanelView, color: bool) -> String {
    let width = p
        .lines
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(20);
    let mut out = format!("+{}+\n", "-".repeat(width));
    for l in &p.lines {
        out.push_str(&format!("|{l:<width$}|\n"));
    }
    out.push_str(&format!("+{}+\n", "-".repeat(width)));
    let led = |name: &str, on: bool, code: &str| {
        let mark = if on { "(*)" } else { "( )" };
        if color && on {
            format!("\x1b[{code}m{mark}\x1b[0m {name}")
        } else {
            format!("{mark} {name}")
        }
    };
    out.push_str(&format!(
        "{}  {}  {}  {}\n",
        led("power", p.leds.power, "32"),
        led("activity", p.leds.activity, "33"),
        led("fault", p.leds.fault, "31"),
        led("tape", p.leds.tape, "34"),
    ));
    let mut facts = vec![format!("page {}", p.screen), format!("{} panel", p.backend)];
    if let Some(t) = p.temperature {
        facts.push(format!("panel sensor {t:.1} °C"));
    }
    if !p.backlight {
        facts.push("backlight off".into());
    }
    out.push_str(&facts.join(", "));
    out.push('\n');
    for f in &p.faults {
        out.push_str(&format!("fault: {f}\n"));
    }
    out
}

fn whoami(w: &Whoami) -> String {
    let via = match &w.token {
        Some(t) => format!("API token {t}"),
        None => format!("{} session", w.source.as_str()),
    };
    details(&[
        ("user", w.user.clone()),
        ("roles", roles(&w.roles)),
        ("via", via),
    ])
}

fn users(list: &[UserInfo]) -> String {
    if list.is_empty() {
        return "no users\n".into();
    }
    let mut t = Table::new(&[
        "NAME",
        "ROLES",
        "MFA",
        "LOCKED UNTIL",
        "FAILED",
        "LAST LOGIN",
        "CODES LEFT",
        "CREATED",
    ])
    .right(4)
    .right(6);
    for u in list {
        t.row(vec![
            u.name.clone(),
            roles(&u.roles),
            if u.mfa_enrolled {
                "enrolled".into()
            } else {
                "pending".into()
            },
            opt_time(&u.locked_until, "-"),
            u.failed_logins.to_string(),
            opt_time(&u.last_login, "never"),
            u.recovery_codes_left.to_string(),
            time(&u.created),
        ]);
    }
    t.render()
}

/// The TOTP enrollment, shown once: QR code, URI, secret, recovery codes.
pub fn enrollment(e: &Enrollment, color: bool) -> String {
    let mut s = format!(
        "TOTP enrollment for '{}' — shown only now; the secret is never shown again.\n\n\
         Scan this QR code with an authenticator app:\n\n",
        e.user
    );
    match crate::remote::qr::render(&e.otpauth_uri, color) {
        Some(q) => s.push_str(&q),
        None => s.push_str("(the URI is too long for a QR code; use the secret below)\n"),
    }
    let grouped: Vec<String> = e
        .secret_base32
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    s.push_str(&format!(
        "\notpauth URI:   {}\nsecret:        {}   (for typing into the app by hand)\n",
        e.otpauth_uri,
        grouped.join(" ")
    ));
    s.push_str(
        "\nRecovery codes — each works once in place of a TOTP code. Store them offline\n\
         (printed, in a safe), not on this appliance:\n",
    );
    for c in &e.recovery_codes {
        s.push_str(&format!("    {c}\n"));
    }
    s
}

fn new_token(t: &NewToken) -> String {
    format!(
        "token '{}' created for {} with roles {} (id {}, expires {})\n\n    {}\n\n\
         This is the only time the token is shown: keep it in your secret store.\n\
         Scripts use it as COFFER_TOKEN=… with 'coffer remote …'.\n",
        t.info.name,
        t.info.user,
        roles(&t.info.roles),
        t.info.id,
        opt_time(&t.info.expires, "never"),
        t.token
    )
}

fn tokens(list: &[TokenInfo]) -> String {
    if list.is_empty() {
        return "no API tokens\n".into();
    }
    let mut t = Table::new(&[
        "ID",
        "NAME",
        "USER",
        "ROLES",
        "CREATED",
        "EXPIRES",
        "LAST USED",
    ]);
    for k in list {
        t.row(vec![
            k.id.clone(),
            k.name.clone(),
            k.user.clone(),
            roles(&k.roles),
            time(&k.created),
            opt_time(&k.expires, "never"),
            opt_time(&k.last_used, "never"),
        ]);
    }
    t.render()
}

/// `UNPROTECTED`, `RPO BREACHED`, both, or nothing.
pub fn asset_flags(a: &AssetView) -> String {
    let mut f = Vec::new();
    if a.unprotected {
        f.push("UNPROTECTED");
    }
    if a.rpo_breached {
        f.push("RPO BREACHED");
    }
    f.join(", ")
}

fn assets(list: &[AssetView]) -> String {
    if list.is_empty() {
        return "the asset register is empty ('asset add' or 'asset import' fills it)\n".into();
    }
    let mut t = Table::new(&[
        "NAME",
        "OWNER",
        "CRITICALITY",
        "RPO",
        "RTO",
        "PROFILE",
        "LAST GOOD BACKUP",
        "FLAGS",
    ]);
    for a in list {
        t.row(vec![
            a.asset.name.clone(),
            a.asset.owner.clone(),
            a.asset.criticality.as_str().into(),
            a.asset.rpo.to_string(),
            a.asset.rto.to_string(),
            opt(&a.asset.profile),
            opt_time(&a.last_good_backup, "never"),
            asset_flags(a),
        ]);
    }
    let mut s = t.render();
    let unprotected = list.iter().filter(|a| a.unprotected).count();
    let breached = list.iter().filter(|a| a.rpo_breached).count();
    if unprotected + breached > 0 {
        s.push_str(&format!(
            "\n{} asset(s): {unprotected} unprotected, {breached} with the RPO breached\n",
            list.len()
        ));
    }
    s
}

fn asset(a: &AssetView) -> String {
    let x = &a.asset;
    let flags = asset_flags(a);
    details(&[
        ("name", x.name.clone()),
        ("owner", x.owner.clone()),
        ("criticality", x.criticality.as_str().into()),
        ("sources", x.sources.join(", ")),
        (
            "excludes",
            if x.excludes.is_empty() {
                "-".into()
            } else {
                x.excludes.join(", ")
            },
        ),
        ("RPO", x.rpo.to_string()),
        ("RTO", x.rto.to_string()),
        ("profile", opt(&x.profile)),
        ("last good backup", opt_time(&a.last_good_backup, "never")),
        (
            "protection",
            if flags.is_empty() { "ok".into() } else { flags },
        ),
    ])
}

fn import_report(r: &ImportReport) -> String {
    let mut s = String::new();
    for (what, list) in [
        ("added", &r.added),
        ("replaced", &r.replaced),
        (
            "skipped (exist already; --replace replaces them)",
            &r.skipped,
        ),
    ] {
        if !list.is_empty() {
            s.push_str(&format!("{what} {}: {}\n", list.len(), list.join(", ")));
        }
    }
    if s.is_empty() {
        s.push_str("nothing imported\n");
    }
    if !r.unprotected.is_empty() {
        s.push_str(&format!(
            "warning: {} asset(s) have no profile and are UNPROTECTED: {}\n",
            r.unprotected.len(),
            r.unprotected.join(", ")
        ));
    }
    s
}

/// `last 7, daily 7, weekly 4, within 2d`.
fn retention(p: &Profile) -> String {
    let r = &p.retention;
    let mut parts = Vec::new();
    for (name, v) in [
        ("last", r.keep_last),
        ("daily", r.keep_daily),
        ("weekly", r.keep_weekly),
        ("monthly", r.keep_monthly),
        ("yearly", r.keep_yearly),
    ] {
        if let Some(n) = v {
            parts.push(format!("{name} {n}"));
        }
    }
    if let Some(d) = r.keep_within {
        parts.push(format!("within {d}"));
    }
    if let Some(n) = r.keep_hourly {
        parts.push(format!("hourly {n}"));
    }
    if let Some(d) = r.lock_for {
        parts.push(format!("locked {d}"));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

fn profiles(list: &[Profile]) -> String {
    if list.is_empty() {
        return "no profiles ('profile add' makes one)\n".into();
    }
    let mut t = Table::new(&[
        "NAME",
        "FULL",
        "DIFFERENTIAL",
        "INCREMENTAL",
        "RETENTION",
        "TARGET",
        "RETRIES",
    ])
    .right(6);
    for p in list {
        t.row(vec![
            p.name.clone(),
            opt(&p.schedules.full),
            opt(&p.schedules.differential),
            opt(&p.schedules.incremental),
            retention(p),
            p.target.clone(),
            format!("{} / {}", p.retries, p.retry_backoff),
        ]);
    }
    t.render()
}

fn profile(p: &Profile) -> String {
    let mut rows = vec![
        ("name", p.name.clone()),
        ("full", opt(&p.schedules.full)),
        ("differential", opt(&p.schedules.differential)),
        ("incremental", opt(&p.schedules.incremental)),
        ("retention", retention(p)),
        ("target", p.target.clone()),
        ("tape pool", opt(&p.tape_pool)),
    ];
    if !p.replicate_to.is_empty() {
        rows.push(("replicate to", p.replicate_to.join(", ")));
        rows.push((
            "replicate",
            p.replicate_schedule
                .clone()
                .unwrap_or_else(|| "after each good backup".into()),
        ));
    }
    rows.push((
        "retries",
        format!(
            "{} (first after {}, then doubling)",
            p.retries, p.retry_backoff
        ),
    ));
    details(&rows)
}

fn next_runs(list: &[NextRun]) -> String {
    if list.is_empty() {
        return "nothing scheduled (no asset has a profile with a schedule)\n".into();
    }
    let mut t = Table::new(&["AT", "ASSET", "PROFILE", "LEVEL"]);
    for r in list {
        t.row(vec![
            time(&r.at),
            r.asset.clone(),
            r.profile.clone(),
            r.level.as_str().into(),
        ]);
    }
    t.render()
}

fn schedule_check(v: &Value) -> Result<String, String> {
    let normalized = v
        .get("normalized")
        .and_then(Value::as_str)
        .ok_or("unexpected result from cofferd: no normalized expression")?;
    let next: Vec<String> = typed(v.get("next").unwrap_or(&Value::Null))?;
    let mut s = format!("normalized: {normalized}\nnext runs:\n");
    if next.is_empty() {
        s.push_str("    (none)\n");
    }
    for n in next {
        s.push_str(&format!("    {}\n", time(&n)));
    }
    Ok(s)
}

fn source(j: &JobView) -> String {
    j.source.map_or("-", |s| s.as_str()).to_string()
}

fn jobs(list: &[JobView]) -> String {
    if list.is_empty() {
        return "no jobs\n".into();
    }
    let mut t = Table::new(&[
        "ID", "KIND", "ASSET", "LEVEL", "STATUS", "STARTED", "ENDED", "IDENTITY", "SOURCE",
        "ATTEMPT",
    ])
    .right(0)
    .right(9);
    for j in list {
        let r = &j.record;
        t.row(vec![
            r.id.to_string(),
            r.kind.as_str().into(),
            opt(&r.asset),
            r.level.map_or("-", |l| l.as_str()).into(),
            r.status.as_str().into(),
            time(&r.started),
            opt_time(&r.ended, "-"),
            r.identity.clone(),
            source(j),
            j.attempt.to_string(),
        ]);
    }
    t.render()
}

/// One job in full.
pub fn job(j: &JobView) -> String {
    let r = &j.record;
    let mut rows = vec![
        ("job", r.id.to_string()),
        ("kind", r.kind.as_str().into()),
        ("asset", opt(&r.asset)),
        ("level", r.level.map_or("-", |l| l.as_str()).into()),
        ("status", r.status.as_str().into()),
        ("started", time(&r.started)),
        ("ended", opt_time(&r.ended, "-")),
        ("identity", format!("{}@{}", r.identity, r.host)),
        ("source", source(j)),
        ("profile", opt(&j.profile)),
        ("attempt", j.attempt.to_string()),
    ];
    if !r.scope.paths.is_empty() {
        rows.push(("paths", r.scope.paths.join(", ")));
    }
    if !r.scope.excludes.is_empty() {
        rows.push(("excludes", r.scope.excludes.join(", ")));
    }
    if let Some(p) = &j.progress {
        rows.push((
            "progress",
            format!(
                "{} entries, {} files, {}",
                p.entries,
                p.files,
                size(p.bytes)
            ),
        ));
    }
    let s = &r.stats;
    if s.entries > 0 || s.files_read > 0 {
        rows.push((
            "read",
            format!(
                "{} entries; {} files read ({}), {} unchanged ({})",
                s.entries,
                s.files_read,
                size(s.bytes_read),
                s.files_unchanged,
                size(s.bytes_unchanged)
            ),
        ));
        rows.push((
            "stored",
            format!(
                "{} new in {} chunks, {} after compression and encryption",
                size(s.bytes_new),
                s.chunks_new,
                size(s.bytes_stored)
            ),
        ));
    }
    if let Some(id) = &r.snapshot {
        rows.push(("snapshot", id.to_hex()));
    }
    if let Some(remote) = &j.remote {
        rows.push(("remote", remote.clone()));
    }
    if let Some(x) = &j.replication {
        rows.push(("replicated", replication(x)));
    }
    let mut out = details(&rows);
    if !r.messages.is_empty() {
        out.push_str("messages:\n");
        for m in &r.messages {
            out.push_str(&format!("    {m}\n"));
        }
    }
    out
}

fn replication(x: &ReplicationStats) -> String {
    format!(
        "{} of {} object(s) sent ({}, {} resumed), {} already there, {} verified, {} mismatched{}; {}/s over {:.1} s",
        x.sent,
        x.objects,
        size(x.bytes_sent),
        size(x.bytes_resumed),
        x.skipped,
        x.verified,
        x.mismatched,
        if x.locked > 0 {
            format!(", {} locked", x.locked)
        } else {
            String::new()
        },
        size(x.throughput() as u64),
        x.duration_ms as f64 / 1000.0
    )
}

fn remotes_table(list: &[RemoteView]) -> String {
    if list.is_empty() {
        return "no remotes\n".into();
    }
    let mut t = Table::new(&[
        "NAME",
        "KIND",
        "WHERE",
        "PAIRED",
        "LAST GOOD",
        "COVERS",
        "LAST ERROR",
    ]);
    for r in list {
        let place = match (&r.spec.address, &r.spec.s3) {
            (_, Some(s3)) => format!(
                "s3://{}/{} ({}, {})",
                s3.bucket,
                s3.prefix,
                s3.endpoint.as_deref().unwrap_or("AWS"),
                s3.lock.as_str()
            ),
            (Some(a), None) => a.clone(),
            (None, None) => "(inbound only)".into(),
        };
        t.row(vec![
            r.spec.name.clone(),
            r.spec.kind.as_str().into(),
            place,
            if r.paired { "yes" } else { "NO" }.into(),
            opt_time(&r.last_success, "never"),
            opt_time(&r.covers_until, "-"),
            r.last_error.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    t.render()
}

fn remote_list(l: &RemoteListing) -> String {
    let mut s = format!(
        "this appliance: {}\nreplication endpoint: {}\n\n",
        l.identity.fingerprint,
        l.identity.listen.as_deref().unwrap_or("not listening")
    );
    s.push_str(&remotes_table(&l.remotes));
    for r in &l.remotes {
        if let Some(f) = &r.spec.fingerprint {
            s.push_str(&format!("'{}' is pinned to {f}\n", r.spec.name));
        }
        if !r.paired
            && let Some(f) = &r.seen_fingerprint
        {
            s.push_str(&format!(
                "'{}' is not paired; it presents {f} (confirm with: remote pair {})\n",
                r.spec.name, r.spec.name
            ));
        }
    }
    if !l.replicas.is_empty() {
        let mut t = Table::new(&["STORE KEPT HERE", "OWNER", "LAST PUSH", "OBJECTS", "BYTES"])
            .right(3)
            .right(4);
        for r in &l.replicas {
            t.row(vec![
                r.store.clone(),
                r.owner.clone(),
                time(&r.last_received),
                r.objects.to_string(),
                size(r.bytes),
            ]);
        }
        s.push('\n');
        s.push_str(&t.render());
    }
    s
}

fn replicate_status(st: &ReplicationStatus) -> String {
    let mut s = remotes_table(&st.remotes);
    if !st.next.is_empty() {
        let mut t = Table::new(&["PROFILE", "REMOTES", "SCHEDULE", "NEXT RUN"]);
        for n in &st.next {
            t.row(vec![
                n.profile.clone(),
                n.remotes.join(", "),
                n.schedule.clone(),
                time(&n.at),
            ]);
        }
        s.push('\n');
        s.push_str(&t.render());
    }
    if st.lag.is_empty() {
        s.push_str("\nno asset's profile replicates\n");
        return s;
    }
    let mut t = Table::new(&["ASSET", "REMOTE", "RPO", "NEWEST COPY", "STATE"]);
    for l in &st.lag {
        t.row(vec![
            l.asset.clone(),
            l.remote.clone(),
            l.rpo.to_string(),
            opt_time(&l.newest_copy, "none"),
            if l.breached { "LAGGING" } else { "ok" }.into(),
        ]);
    }
    s.push('\n');
    s.push_str(&t.render());
    s
}

/// The exit code a finished job's status implies.
pub fn job_exit_code(s: JobStatus) -> u8 {
    match s {
        JobStatus::Success | JobStatus::Queued | JobStatus::Running => EXIT_OK,
        JobStatus::Warning => EXIT_WARNINGS,
        JobStatus::Failed | JobStatus::Interrupted | JobStatus::Cancelled => EXIT_FAILED,
    }
}

fn snapshots(list: &[SnapshotInfo]) -> String {
    if list.is_empty() {
        return "no snapshots\n".into();
    }
    let mut t = Table::new(&["ID", "TIME", "LEVEL", "ASSET", "ENTRIES", "READ", "BY"])
        .right(4)
        .right(5);
    for s in list {
        t.row(vec![
            s.id.short(),
            time(&s.time),
            s.level.as_str().into(),
            s.asset.clone(),
            s.stats.entries.to_string(),
            size(s.stats.bytes_read),
            format!("{}@{}", s.identity, s.host),
        ]);
    }
    t.render()
}

fn alerts(list: &[Alert], all: bool) -> String {
    if list.is_empty() {
        return if all {
            "no alerts\n".into()
        } else {
            "no open alerts\n".into()
        };
    }
    let mut t = Table::new(&["ID", "KIND", "SUBJECT", "RAISED", "STATE", "MESSAGE"]).right(0);
    for a in list {
        let state = match (&a.cleared, &a.acked_by) {
            (Some(c), _) => format!("cleared {}", time(c)),
            (None, Some(by)) => format!("acked by {by}"),
            (None, None) => "OPEN".into(),
        };
        t.row(vec![
            a.id.to_string(),
            a.kind.clone(),
            a.subject.clone(),
            time(&a.raised),
            state,
            a.message.clone(),
        ]);
    }
    t.render()
}

fn audit(list: &[AuditEntry]) -> String {
    if list.is_empty() {
        return "no audit entries match\n".into();
    }
    let mut t = Table::new(&[
        "SEQ", "TIME", "IDENTITY", "SOURCE", "ACTION", "TARGET", "RESULT", "DETAIL",
    ])
    .right(0);
    for e in list {
        t.row(vec![
            e.seq.to_string(),
            time(&e.time),
            e.identity.clone(),
            e.source.as_str().into(),
            e.action.clone(),
            e.target.clone(),
            e.result.clone(),
            e.detail.clone(),
        ]);
    }
    t.render()
}

fn audit_verify(v: &AuditVerify) -> Rendered {
    let head = v.head.as_deref().unwrap_or("-");
    if v.ok {
        ok(format!(
            "audit log intact: {} entries, every hash and link checked; head {head}\n",
            v.entries
        ))
    } else {
        let mut s = format!(
            "AUDIT LOG DAMAGED: {} entries checked; head {head}\n",
            v.entries
        );
        for p in &v.problems {
            s.push_str(&format!("    {p}\n"));
        }
        Rendered {
            text: s,
            code: EXIT_DAMAGED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_and_trim() {
        let mut t = Table::new(&["ID", "NAME", "NOTE"]).right(0);
        t.row(vec!["7".into(), "web-01".into(), "".into()]);
        t.row(vec!["123".into(), "db".into(), "größer".into()]);
        assert_eq!(
            t.render(),
            " ID  NAME    NOTE\n  7  web-01\n123  db      größer\n"
        );
    }

    #[test]
    fn details_align() {
        assert_eq!(
            details(&[
                ("a", "1".into()),
                ("long key", "2".into()),
                ("e", "".into())
            ]),
            "a:        1\nlong key: 2\ne:\n"
        );
    }

    #[test]
    fn times_are_shortened() {
        assert_eq!(time("2026-11-26T03:06:28.123Z"), "2026-11-26 03:06:28Z");
        assert_eq!(time("2026-11-26T03:06:28Z"), "2026-11-26 03:06:28Z");
        assert_eq!(time("soon"), "soon");
    }

    #[test]
    fn replicate_status_shows_lag_and_the_calendars_next_runs() {
        let v = json!({
            "remotes": [],
            "lag": [{"asset": "web-01", "remote": "offsite", "rpo": "1d",
                     "newest_copy": "2026-11-26T02:00:04.5Z", "breached": false},
                    {"asset": "db-01", "remote": "vault", "rpo": "4h",
                     "newest_copy": null, "breached": true}],
            "next": [{"profile": "standard", "remotes": ["offsite", "vault"],
                      "schedule": "*-*-* 02:00:00", "at": "2026-11-27T02:00:00Z"}],
        });
        let r = render(&Call::ReplicateStatus, &v, false).unwrap();
        assert!(
            r.text.contains(
                "PROFILE   REMOTES         SCHEDULE        NEXT RUN\n\
                 standard  offsite, vault  *-*-* 02:00:00  2026-11-27 02:00:00Z\n"
            ),
            "{}",
            r.text
        );
        assert!(r.text.contains("web-01  offsite"), "{}", r.text);
        assert!(r.text.contains("LAGGING"), "{}", r.text);
    }

    #[test]
    fn the_panel_is_drawn_as_a_box_with_its_leds() {
        let v = json!({
            "backend": "simulated",
            "lines": ["COFFER vm           ", "IP 192.0.2.2        ",
                      "HEALTH DEGRADED     ", "v0.1.0     14:05 UTC"],
            "screen": "identity",
            "leds": {"power": true, "activity": false, "fault": true, "tape": false},
            "backlight": true,
            "temperature": 31.5,
            "faults": ["sensor: bus transfer failed: NoAcknowledge"],
        });
        let r = render(&Call::PanelShow, &v, false).unwrap();
        assert_eq!(
            r.text,
            "+--------------------+\n\
             |COFFER vm           |\n\
             |IP 192.0.2.2        |\n\
             |HEALTH DEGRADED     |\n\
             |v0.1.0     14:05 UTC|\n\
             +--------------------+\n\
             (*) power  ( ) activity  (*) fault  ( ) tape\n\
             page identity, simulated panel, panel sensor 31.5 °C\n\
             fault: sensor: bus transfer failed: NoAcknowledge\n"
        );
        let colored = render(&Call::PanelShow, &v, true).unwrap().text;
        assert!(colored.contains("\x1b[31m(*)\x1b[0m fault"), "{colored}");
    }

    #[test]
    fn status_shows_the_health_figures_and_why_it_is_not_ok() {
        let v = json!({
            "version": "0.1.0", "api": 1, "host": "vm", "needs_bootstrap": false,
            "now": "2026-11-26T03:06:28.000Z", "active_jobs": 0, "open_alerts": 1,
            "development": false,
            "codec": "zstd 3 (the store's), no throughput target",
            "health": {
                "state": "fault",
                "reasons": ["the store filesystem (/srv) is 96% full (limit 95%): 1.0 GiB free"],
                "findings": [], "sampled": "2026-11-26T03:06:00.000Z",
                "cpu_percent": 12.4, "cores": 2, "load": [0.5, 0.25, 0.1],
                "memory_used": 1073741824u64, "memory_total": 4294967296u64,
                "uptime_secs": 90061,
                "temperatures": [{"label": "coretemp Core 0", "celsius": 48.0, "critical": 100.0}],
                "filesystems": [{"role": "store", "path": "/srv", "used": 96, "total": 100}],
                "addresses": ["192.0.2.2", "2001:db8::2"],
            },
        });
        let text = render(&Call::Status, &v, false).unwrap().text;
        for want in [
            "codec:       zstd 3 (the store's), no throughput target",
            "health:      FAULT",
            "  because:   the store filesystem (/srv) is 96% full",
            "addresses:   192.0.2.2, 2001:db8::2",
            "cpu:         12% busy on 2 cores; load 0.50 0.25 0.10",
            "memory:      1.0 GiB of 4.0 GiB used (25%)",
            "disk:        store (/srv): 96 B of 100 B used (96%)",
            "temperature: coretemp Core 0: 48.0 °C (critical 100 °C)",
            "uptime:      1d 1h 1m (read 2026-11-26 03:06:00Z)",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        let mut before = v.clone();
        before.as_object_mut().unwrap().remove("health");
        let text = render(&Call::Status, &before, false).unwrap().text;
        assert!(text.contains("health:      not read yet"), "{text}");
    }

    fn asset_json(name: &str, profile: Option<&str>, unprotected: bool, breached: bool) -> Value {
        json!({
            "name": name, "owner": "ops", "criticality": "high", "sources": ["/srv"],
            "excludes": [], "rpo": "1d", "rto": "4h", "profile": profile,
            "unprotected": unprotected, "rpo_breached": breached,
            "last_good_backup": if breached { Value::Null } else { json!("2026-11-26T03:06:28.000Z") },
        })
    }

    #[test]
    fn asset_table_with_flags() {
        let v = json!([
            asset_json("web-01", Some("standard"), false, false),
            asset_json("legacy-fileserver", None, true, true),
            asset_json("db", Some("standard"), false, true),
        ]);
        let r = render(&Call::AssetList, &v, false).unwrap();
        assert_eq!(r.code, 0);
        let lines: Vec<&str> = r.text.lines().collect();
        assert_eq!(
            lines[0],
            "NAME               OWNER  CRITICALITY  RPO  RTO  PROFILE   LAST GOOD BACKUP      FLAGS"
        );
        assert_eq!(
            lines[1],
            "web-01             ops    high         1d   4h   standard  2026-11-26 03:06:28Z"
        );
        assert_eq!(
            lines[2],
            "legacy-fileserver  ops    high         1d   4h   -         never                 UNPROTECTED, RPO BREACHED"
        );
        assert!(
            lines[3].ends_with("never                 RPO BREACHED"),
            "{}",
            lines[3]
        );
        assert!(
            r.text
                .contains("3 asset(s): 1 unprotected, 2 with the RPO breached")
        );
        let one = render(
            &Call::AssetGet { name: "x".into() },
            &asset_json("x", None, true, false),
            false,
        )
        .unwrap();
        assert!(
            one.text.contains("protection:       UNPROTECTED"),
            "{}",
            one.text
        );
    }

    fn job_json(id: i64, status: &str, progress: Value) -> Value {
        json!({
            "id": id, "kind": "backup", "asset": "web-01", "level": "incremental",
            "scope": {"paths": ["/srv"], "excludes": [], "one_file_system": false},
            "started": "2026-11-26T03:00:00.000Z", "ended": null, "status": status,
            "stats": {"files_read": 3, "bytes_read": 2048, "files_unchanged": 0, "bytes_unchanged": 0,
                      "entries": 5, "chunks_new": 1, "bytes_new": 2048, "bytes_stored": 1000, "warnings": 0},
            "messages": ["warning: /srv/x vanished"], "identity": "alice", "host": "coffer1",
            "snapshot": null, "source": "console", "profile": "standard", "attempt": 2,
            "progress": progress,
        })
    }

    #[test]
    fn job_table_and_details() {
        let v = json!([
            job_json(12, "running", Value::Null),
            job_json(9, "failed", Value::Null)
        ]);
        let r = render(
            &Call::JobList {
                asset: None,
                status: None,
                kind: None,
                limit: None,
            },
            &v,
            false,
        )
        .unwrap();
        let lines: Vec<&str> = r.text.lines().collect();
        assert_eq!(
            lines[0],
            "ID  KIND    ASSET   LEVEL        STATUS   STARTED               ENDED  IDENTITY  SOURCE   ATTEMPT"
        );
        assert_eq!(
            lines[1],
            "12  backup  web-01  incremental  running  2026-11-26 03:00:00Z  -      alice     console        2"
        );
        assert!(lines[2].starts_with(" 9  backup"), "{}", lines[2]);
        let one = render(
            &Call::JobGet { id: 12 },
            &job_json(
                12,
                "running",
                json!({"entries": 10, "files": 4, "bytes": 4096}),
            ),
            false,
        )
        .unwrap();
        assert!(
            one.text.contains("progress: 10 entries, 4 files, 4.0 KiB"),
            "{}",
            one.text
        );
        assert!(one.text.contains("identity: alice@coffer1"));
        assert!(one.text.contains("messages:\n    warning: /srv/x vanished"));
        assert_eq!(job_exit_code(JobStatus::Warning), 3);
        assert_eq!(job_exit_code(JobStatus::Failed), 1);
    }

    #[test]
    fn audit_table_and_verify_codes() {
        let v = json!([{
            "seq": 41, "time": "2026-11-26T03:00:00.000Z", "time_ms": 0, "identity": "alice",
            "source": "console", "action": "asset.add", "target": "web-01", "result": "ok",
            "detail": "", "hash": "ab"
        }]);
        let r = render(
            &Call::AuditList {
                filter: Default::default(),
            },
            &v,
            false,
        )
        .unwrap();
        assert_eq!(
            r.text,
            "SEQ  TIME                  IDENTITY  SOURCE   ACTION     TARGET  RESULT  DETAIL\n \
             41  2026-11-26 03:00:00Z  alice     console  asset.add  web-01  ok\n"
        );
        let good = render(
            &Call::AuditVerify,
            &json!({"entries": 41, "ok": true, "problems": [], "head": "ab"}),
            false,
        )
        .unwrap();
        assert_eq!(good.code, 0);
        let bad = render(
            &Call::AuditVerify,
            &json!({"entries": 41, "ok": false, "problems": ["entry 7: hash mismatch"], "head": "ab"}),
            false,
        )
        .unwrap();
        assert_eq!(bad.code, EXIT_DAMAGED);
        assert!(bad.text.contains("AUDIT LOG DAMAGED") && bad.text.contains("entry 7"));
    }

    #[test]
    fn enrollment_shows_qr_secret_and_codes() {
        let e = json!({
            "user": "alice", "secret_base32": "JBSWY3DPEHPK3PXP",
            "otpauth_uri": "otpauth://totp/Coffer:alice?secret=JBSWY3DPEHPK3PXP&issuer=Coffer",
            "recovery_codes": ["aaaa-bbbb", "cccc-dddd"]
        });
        let r = render(
            &Call::UserResetMfa {
                name: "alice".into(),
            },
            &e,
            false,
        )
        .unwrap();
        assert!(r.text.contains("█"));
        assert!(r.text.contains("JBSW Y3DP EHPK 3PXP"));
        assert!(r.text.contains("otpauth://totp/Coffer:alice"));
        assert!(r.text.contains("    aaaa-bbbb\n    cccc-dddd\n"));
        assert!(r.text.contains("offline"));
    }

    #[test]
    fn other_results() {
        let r = render(
            &Call::ScheduleCheck {
                expr: "daily".into(),
                count: None,
            },
            &json!({"normalized": "*-*-* 00:00:00", "next": ["2026-11-27T00:00:00Z"]}),
            false,
        )
        .unwrap();
        assert_eq!(
            r.text,
            "normalized: *-*-* 00:00:00\nnext runs:\n    2026-11-27 00:00:00Z\n"
        );
        let r = render(
            &Call::JobRun {
                asset: "db".into(),
                level: coffer_types::Level::Full,
            },
            &json!({"job": 5}),
            false,
        )
        .unwrap();
        assert!(r.text.starts_with("job 5 queued: full backup of 'db'"));
        let r = render(
            &Call::JobLog { id: 5 },
            &json!({"lines": ["a", "b"]}),
            false,
        )
        .unwrap();
        assert_eq!(r.text, "a\nb\n");
        let r = render(
            &Call::AssetRemove { name: "db".into() },
            &Value::Null,
            false,
        )
        .unwrap();
        assert_eq!(r.text, "asset 'db' removed (its snapshots stay)\n");
        let r = render(
            &Call::AssetImport {
                csv: String::new(),
                replace: false,
            },
            &json!({"added": ["a", "b"], "replaced": [], "skipped": ["c"], "unprotected": ["b"]}),
            false,
        )
        .unwrap();
        assert!(r.text.contains("added 2: a, b\n"));
        assert!(
            r.text
                .contains("skipped (exist already; --replace replaces them) 1: c")
        );
        assert!(r.text.contains("UNPROTECTED: b"));
        let e = render(&Call::AssetList, &json!({"not": "a list"}), false).unwrap_err();
        assert!(e.contains("unexpected result from cofferd"), "{e}");
    }
}
