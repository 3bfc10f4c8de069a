//! System health: the appliance's own machine — CPU, memory, load,
//! temperatures from the kernel's sensors (and the front panel's), and how
//! full the filesystems holding the store and the state are.
//!
//! Reading is impure ([`Sampler`], over `sysinfo` and `statvfs`); judging
//! is pure: [`evaluate`] turns figures and the `[health]` thresholds into
//! findings, and [`overall`] turns findings and the open alerts into the
//! state the panel and `coffer status` show (OK / DEGRADED / FAULT, with
//! the reasons, worst first). The monitor ([`run`]) raises every finding
//! as an alert through the same path as the RPO monitor, and clears it
//! when the condition ends.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use coffer_catalog::Catalog;
use coffer_types::api::{
    Alert, FilesystemUsage, HealthFinding, HealthReport, HealthState, Source, SystemFigures,
    TemperatureReading,
};
use tokio::sync::watch;

use crate::Inner;
use crate::config::HealthConfig;

/// Alert kinds the health monitor owns (raised and cleared only by it).
pub const KINDS: [&str; 5] = [
    "health-temperature",
    "health-disk",
    "health-memory",
    "health-load",
    POOL_KIND,
];

/// The alert a degraded or unavailable disk pool raises.
pub const POOL_KIND: &str = "pool-degraded";

/// What the disk pool's state says (pure): nothing while every member is
/// online (or merely full); DEGRADED while a member is out but k shards
/// can still be read; FAULT when fewer than k members can be read.
pub fn pool_findings(p: &coffer_pool::PoolStatus) -> Vec<HealthFinding> {
    let out: Vec<String> = p
        .members
        .iter()
        .filter(|m| m.state != "online" && m.state != "full")
        .map(|m| {
            format!(
                "member {} ({}) is {}{}",
                m.id,
                m.path.display(),
                m.state,
                m.reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    let (severity, what) = match p.health {
        coffer_pool::PoolHealth::Online => return Vec::new(),
        coffer_pool::PoolHealth::Degraded => (
            HealthState::Degraded,
            "is degraded: its data is readable but no longer fully redundant; replace the member ('coffer pool replace') and scrub",
        ),
        coffer_pool::PoolHealth::Unavailable => (
            HealthState::Fault,
            "is unavailable: fewer members than its data shards can be read; backups and restores fail until members return",
        ),
    };
    vec![HealthFinding {
        kind: POOL_KIND.into(),
        subject: p.name.clone(),
        severity,
        message: format!(
            "disk pool '{}' ({}+{}) {what} ({})",
            p.name,
            p.data_shards,
            p.parity_shards,
            out.join("; ")
        ),
    }]
}

/// The label of the front panel's own sensor among the temperatures.
pub const PANEL_SENSOR: &str = "front panel";

/// Reads the figures. Keeps `sysinfo`'s state between readings (the CPU
/// figure is the busy share since the previous one).
pub struct Sampler {
    system: Option<sysinfo::System>,
    components: Option<sysinfo::Components>,
    networks: Option<sysinfo::Networks>,
}

impl Default for Sampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Sampler {
    /// A sampler; parts `sysinfo` cannot open are left out (and logged).
    pub fn new() -> Sampler {
        let system = sysinfo::System::new()
            .map_err(|e| tracing::warn!(error = %e, "cannot read CPU and memory figures"))
            .ok();
        let components = sysinfo::Components::new_with_refreshed_list()
            .map_err(|e| tracing::warn!(error = %e, "cannot read temperature sensors"))
            .ok();
        let networks = sysinfo::Networks::new_with_refreshed_list()
            .map_err(|e| tracing::warn!(error = %e, "cannot read network interfaces"))
            .ok();
        Sampler {
            system,
            components,
            networks,
        }
    }

    /// One reading: `paths` are (role, directory) pairs whose filesystems
    /// are measured; `panel` is the front panel sensor's reading (and
    /// whether that panel is the simulated one, never judged). Returns
    /// the figures and, as findings, what could not be read (a filesystem
    /// gone).
    pub fn sample(
        &mut self,
        paths: &[(&str, &Path)],
        panel: Option<(f32, bool)>,
    ) -> (SystemFigures, Vec<HealthFinding>) {
        let mut f = SystemFigures::default();
        let mut unreadable = Vec::new();
        if let Some(sys) = &mut self.system {
            sys.refresh_cpu_usage();
            sys.refresh_memory();
            f.cpu_percent = sys.global_cpu_usage();
            f.cores = u32::try_from(sys.cpus().len()).unwrap_or(u32::MAX);
            f.memory_used = sys.used_memory();
            f.memory_total = sys.total_memory();
        }
        if f.cores == 0 {
            f.cores = std::thread::available_parallelism()
                .map(|n| u32::try_from(n.get()).unwrap_or(1))
                .unwrap_or(1);
        }
        if let Ok(l) = sysinfo::System::load_average() {
            f.load = [l.one, l.five, l.fifteen];
        }
        f.uptime_secs = sysinfo::System::uptime().unwrap_or(0);
        if let Some(c) = &mut self.components {
            c.refresh(true);
            for comp in c.iter() {
                if let Some(t) = comp.temperature().filter(|t| t.is_finite()) {
                    f.temperatures.push(TemperatureReading {
                        label: comp.label().to_string(),
                        celsius: t,
                        critical: comp.critical().filter(|c| c.is_finite() && *c > 0.0),
                        simulated: false,
                    });
                }
            }
        }
        if let Some((t, simulated)) = panel {
            f.temperatures.push(TemperatureReading {
                label: PANEL_SENSOR.into(),
                celsius: t,
                critical: None,
                simulated,
            });
        }
        f.filesystems = filesystems(paths, &mut unreadable);
        if let Some(n) = &mut self.networks {
            n.refresh(true);
            let mut v4 = BTreeSet::new();
            let mut v6 = BTreeSet::new();
            for (_, data) in n.iter() {
                for ip in data.ip_networks() {
                    match ip.addr {
                        std::net::IpAddr::V4(a) if !a.is_loopback() && !a.is_link_local() => {
                            v4.insert(a.to_string());
                        }
                        std::net::IpAddr::V6(a)
                            if !a.is_loopback() && (a.segments()[0] & 0xffc0) != 0xfe80 =>
                        {
                            v6.insert(a.to_string());
                        }
                        _ => {}
                    }
                }
            }
            f.addresses = v4.into_iter().chain(v6).collect();
        }
        (f, unreadable)
    }
}

/// The capacity of each directory's filesystem (`coffer_block::fs`); two
/// roles on one filesystem (one device) are reported once (`store+state`). Used counts the root reserve, and the total is
/// what `df` divides by (used + available to unprivileged writers).
fn filesystems(
    paths: &[(&str, &Path)],
    unreadable: &mut Vec<HealthFinding>,
) -> Vec<FilesystemUsage> {
    use std::os::unix::fs::MetadataExt;
    let mut out: Vec<(u64, FilesystemUsage)> = Vec::new();
    for (role, path) in paths {
        let measured = std::fs::metadata(path)
            .map_err(|e| e.to_string())
            .and_then(|md| {
                coffer_block::fs::capacity(path)
                    .map(|c| (md.dev(), c))
                    .map_err(|e| e.to_string())
            });
        match measured {
            Ok((dev, c)) => {
                let used = c.total.saturating_sub(c.free);
                let total = used.saturating_add(c.available);
                if let Some((_, u)) = out.iter_mut().find(|(d, _)| *d == dev) {
                    u.role = format!("{}+{role}", u.role);
                    continue;
                }
                out.push((
                    dev,
                    FilesystemUsage {
                        role: (*role).to_string(),
                        path: path.display().to_string(),
                        used,
                        total,
                    },
                ));
            }
            Err(e) => unreadable.push(HealthFinding {
                kind: "health-disk".into(),
                subject: (*role).to_string(),
                severity: HealthState::Fault,
                message: format!(
                    "the {role} directory '{}' cannot be measured: {e}",
                    path.display()
                ),
            }),
        }
    }
    out.into_iter().map(|(_, u)| u).collect()
}

/// How far below its threshold a reading must fall before a finding the
/// previous reading had ends: without it, a figure hovering at a threshold
/// would raise and clear an alert at every reading.
pub const MARGIN_C: f32 = 3.0;
/// … for filesystem and memory percentages (percentage points).
pub const MARGIN_PERCENT: f64 = 2.0;
/// … for the load per core, as a share of its threshold.
pub const MARGIN_LOAD: f64 = 0.1;

/// The severity of a reading `v` against `warn` and `crit` (`crit` may be
/// infinite: no FAULT level), given the severity the previous reading had:
/// a level once reached holds until `v` falls `margin` below it.
fn judge(
    v: f64,
    warn: f64,
    crit: f64,
    margin: f64,
    prev: Option<HealthState>,
) -> Option<HealthState> {
    if v >= crit || (prev == Some(HealthState::Fault) && v >= crit - margin) {
        Some(HealthState::Fault)
    } else if v >= warn || (prev.is_some() && v >= warn - margin) {
        Some(HealthState::Degraded)
    } else {
        None
    }
}

/// Judges the figures against the thresholds (pure). `previous` are the
/// findings of the previous reading (for the margins); what could not be
/// read comes along as findings.
pub fn evaluate(
    f: &SystemFigures,
    unreadable: &[HealthFinding],
    previous: &[HealthFinding],
    t: &HealthConfig,
) -> Vec<HealthFinding> {
    let prev = |kind: &str, subject: &str| {
        previous
            .iter()
            .find(|p| p.kind == kind && p.subject == subject)
            .map(|p| p.severity)
    };
    let mark = |sev: HealthState, warn: f64, crit: f64| {
        if sev == HealthState::Fault {
            crit
        } else {
            warn
        }
    };
    let mut out = unreadable.to_vec();
    for s in f.temperatures.iter().filter(|s| !s.simulated) {
        let crit = s
            .critical
            .map_or(t.temperature_crit_c, |c| c.min(t.temperature_crit_c));
        let (warn, crit) = (f64::from(t.temperature_warn_c), f64::from(crit));
        let kind = "health-temperature";
        let Some(severity) = judge(
            f64::from(s.celsius),
            warn,
            crit,
            f64::from(MARGIN_C),
            prev(kind, &s.label),
        ) else {
            continue;
        };
        out.push(HealthFinding {
            kind: kind.into(),
            subject: s.label.clone(),
            severity,
            message: format!(
                "{} is at {:.1} °C (limit {:.0} °C): check the fans and the room",
                s.label,
                s.celsius,
                mark(severity, warn, crit)
            ),
        });
    }
    for u in &f.filesystems {
        let p = u.percent();
        let kind = "health-disk";
        let Some(severity) = judge(
            p,
            t.disk_warn_percent,
            t.disk_crit_percent,
            MARGIN_PERCENT,
            prev(kind, &u.role),
        ) else {
            continue;
        };
        out.push(HealthFinding {
            kind: kind.into(),
            subject: u.role.clone(),
            severity,
            message: format!(
                "the {} filesystem ({}) is {p:.0}% full (limit {:.0}%): {} free",
                u.role,
                u.path,
                mark(severity, t.disk_warn_percent, t.disk_crit_percent),
                coffer_types::size(u.total.saturating_sub(u.used))
            ),
        });
    }
    if f.memory_total > 0 {
        let p = f.memory_used as f64 * 100.0 / f.memory_total as f64;
        let kind = "health-memory";
        if let Some(severity) = judge(
            p,
            t.memory_warn_percent,
            f64::INFINITY,
            MARGIN_PERCENT,
            prev(kind, "memory"),
        ) {
            out.push(HealthFinding {
                kind: kind.into(),
                subject: "memory".into(),
                severity,
                message: format!(
                    "memory is {p:.0}% used (limit {:.0}%): {} of {}",
                    t.memory_warn_percent,
                    coffer_types::size(f.memory_used),
                    coffer_types::size(f.memory_total)
                ),
            });
        }
    }
    let per_core = f.load[0] / f64::from(f.cores.max(1));
    let kind = "health-load";
    if let Some(severity) = judge(
        per_core,
        t.load_warn_per_core,
        f64::INFINITY,
        t.load_warn_per_core * MARGIN_LOAD,
        prev(kind, "load"),
    ) {
        out.push(HealthFinding {
            kind: kind.into(),
            subject: "load".into(),
            severity,
            message: format!(
                "the load average is {:.2} on {} cores ({per_core:.1} per core, limit {:.1})",
                f.load[0], f.cores, t.load_warn_per_core
            ),
        });
    }
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.kind.cmp(&b.kind))
            .then_with(|| a.subject.cmp(&b.subject))
    });
    out
}

/// The appliance's state from the monitor's findings and the open alerts
/// (pure): the worst finding; any other open alert (a missed RPO, a failed
/// job, a panel fault, …) makes it at least DEGRADED. The reasons come
/// worst first; the monitor's own alerts are not counted twice.
pub fn overall(findings: &[HealthFinding], alerts: &[Alert]) -> (HealthState, Vec<String>) {
    let mut state = HealthState::Ok;
    let mut reasons = Vec::new();
    for f in findings {
        state = state.max(f.severity);
        reasons.push(f.message.clone());
    }
    for a in alerts
        .iter()
        .filter(|a| a.cleared.is_none() && !KINDS.contains(&a.kind.as_str()))
    {
        state = state.max(HealthState::Degraded);
        reasons.push(format!("{}: {}", a.kind, a.message));
    }
    (state, reasons)
}

/// The report `coffer status` shows.
pub fn report(
    f: &SystemFigures,
    findings: Vec<HealthFinding>,
    alerts: &[Alert],
    now_ms: i64,
) -> HealthReport {
    let (state, reasons) = overall(&findings, alerts);
    HealthReport {
        state,
        reasons,
        findings,
        sampled: coffer_types::rfc3339_ms(now_ms),
        figures: f.clone(),
    }
}

/// Raises the findings as alerts and clears the monitor's alerts whose
/// condition ended. New, escalated and cleared alerts are logged and
/// audited.
pub(crate) fn apply_alerts(
    inner: &Inner,
    cat: &Catalog,
    findings: &[HealthFinding],
    previous: &[HealthFinding],
    now: i64,
) -> Result<()> {
    for f in findings {
        // A warning that became a fault is a new alert (logged, audited and
        // not acknowledged), not a quiet change of the old one's message.
        let escalated = previous
            .iter()
            .any(|p| p.kind == f.kind && p.subject == f.subject && p.severity < f.severity);
        if escalated && cat.clear_alert(&f.kind, &f.subject, now)? {
            inner.audit(
                cat,
                "system",
                Source::System,
                "alert.clear",
                &f.subject,
                &f.kind,
                "escalated: replaced by a new alert",
            );
        }
        if cat.raise_alert(&f.kind, &f.subject, &f.message, now)?.new {
            tracing::warn!(kind = %f.kind, subject = %f.subject, "{}", f.message);
            inner.audit(
                cat,
                "system",
                Source::System,
                "alert.raise",
                &f.subject,
                &f.kind,
                &f.message,
            );
        }
    }
    for a in cat.alerts(false)? {
        if !KINDS.contains(&a.kind.as_str())
            || findings
                .iter()
                .any(|f| f.kind == a.kind && f.subject == a.subject)
        {
            continue;
        }
        if cat.clear_alert(&a.kind, &a.subject, now)? {
            tracing::info!(kind = %a.kind, subject = %a.subject, "health condition ended");
            inner.audit(
                cat,
                "system",
                Source::System,
                "alert.clear",
                &a.subject,
                &a.kind,
                "the condition ended",
            );
        }
    }
    Ok(())
}

/// The monitor: reads the figures every `health.check_every` (real time:
/// CPU busy is measured over the interval), raises and clears alerts, and
/// keeps the latest report for `status` and the panel.
pub(crate) async fn run(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let mut sampler = Some(Sampler::new());
    // The first CPU figure needs a previous reading: take one shortly after
    // start, then at the configured interval.
    let mut wait = std::time::Duration::from_millis(500);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            () = tokio::time::sleep(wait) => {}
        }
        if *stop.borrow() {
            break;
        }
        let Some(s) = sampler.take() else { break };
        let i = inner.clone();
        match tokio::task::spawn_blocking(move || {
            let mut s = s;
            let r = pass(&i, &mut s);
            (s, r)
        })
        .await
        {
            Ok((s, r)) => {
                sampler = Some(s);
                if let Err(e) = r {
                    tracing::error!(error = %format!("{e:#}"), "health check failed");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "health check panicked; the monitor starts over");
                sampler = Some(Sampler::new());
            }
        }
        wait = std::time::Duration::from_secs(inner.config().health.check_every.secs().max(1));
    }
}

/// One reading: sample, judge, alert, keep.
pub(crate) fn pass(inner: &Inner, sampler: &mut Sampler) -> Result<()> {
    let config = inner.config();
    let store: PathBuf = config.store.path.clone();
    let state: PathBuf = config.daemon.state_dir.clone();
    let panel_temp = inner.panel_temperature();
    // The pool's members are filesystems of their own: each is watched
    // for space, and the pool for its members' state.
    let pool = inner.pool.as_ref().map(|p| {
        p.check_members();
        p.status()
    });
    let mut roles: Vec<(String, PathBuf)> = vec![("store".into(), store), ("state".into(), state)];
    if let Some(p) = &pool {
        for m in &p.members {
            roles.push((format!("pool {} member {}", p.name, m.id), m.path.clone()));
        }
    }
    let paths: Vec<(&str, &Path)> = roles
        .iter()
        .map(|(r, p)| (r.as_str(), p.as_path()))
        .collect();
    let (figures, mut unreadable) = sampler.sample(&paths, panel_temp);
    if let Some(p) = &pool {
        unreadable.extend(pool_findings(p));
    }
    let previous = match inner.health.read() {
        Ok(h) => h.as_ref().map(|r| r.findings.clone()),
        Err(p) => p.into_inner().as_ref().map(|r| r.findings.clone()),
    }
    .unwrap_or_default();
    let findings = evaluate(&figures, &unreadable, &previous, &config.health);
    let now = inner.now_ms();
    let cat = inner.catalog()?;
    apply_alerts(inner, &cat, &findings, &previous, now)?;
    let alerts = cat.alerts(false)?;
    drop(cat);
    let report = report(&figures, findings, &alerts, now);
    match inner.health.write() {
        Ok(mut h) => *h = Some(report),
        Err(p) => *p.into_inner() = Some(report),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures() -> SystemFigures {
        SystemFigures {
            cpu_percent: 12.5,
            cores: 2,
            load: [0.5, 0.4, 0.3],
            memory_used: 4 << 30,
            memory_total: 24 << 30,
            uptime_secs: 3600,
            temperatures: vec![TemperatureReading {
                label: "coretemp Package id 0".into(),
                celsius: 48.0,
                critical: Some(100.0),
                simulated: false,
            }],
            filesystems: vec![FilesystemUsage {
                role: "store".into(),
                path: "/srv/coffer".into(),
                used: 40,
                total: 100,
            }],
            addresses: vec!["10.0.0.12".into()],
        }
    }

    fn alert(kind: &str, subject: &str, message: &str) -> Alert {
        Alert {
            id: 1,
            kind: kind.into(),
            subject: subject.into(),
            message: message.into(),
            raised: "2026-11-23T00:00:00Z".into(),
            cleared: None,
            acked_by: None,
        }
    }

    #[test]
    fn healthy_figures_find_nothing() {
        let t = HealthConfig::default();
        assert!(evaluate(&figures(), &[], &[], &t).is_empty());
        assert_eq!(overall(&[], &[]), (HealthState::Ok, vec![]));
    }

    #[test]
    fn each_threshold_raises_its_finding_at_its_severity() {
        let t = HealthConfig::default();
        let mut f = figures();
        f.temperatures[0].celsius = 80.0;
        f.filesystems[0].used = 96;
        f.memory_used = 23 << 30;
        f.load[0] = 4.5;
        let found = evaluate(&f, &[], &[], &t);
        let kinds: Vec<(&str, HealthState)> = found
            .iter()
            .map(|x| (x.kind.as_str(), x.severity))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("health-disk", HealthState::Fault),
                ("health-load", HealthState::Degraded),
                ("health-memory", HealthState::Degraded),
                ("health-temperature", HealthState::Degraded),
            ]
        );
        assert!(
            found[0].message.contains("96% full"),
            "{}",
            found[0].message
        );
        assert!(found[3].message.contains("80.0 °C"), "{}", found[3].message);
        let (state, reasons) = overall(&found, &[]);
        assert_eq!(state, HealthState::Fault);
        assert_eq!(reasons.len(), 4);
        assert!(reasons[0].contains("store filesystem"));
    }

    #[test]
    fn the_lower_of_the_sensor_and_configured_critical_marks_counts() {
        let t = HealthConfig::default();
        let mut f = figures();
        f.temperatures[0].critical = Some(70.0);
        f.temperatures[0].celsius = 71.0;
        let found = evaluate(&f, &[], &[], &t);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].severity, HealthState::Fault);
        assert!(
            found[0].message.contains("limit 70"),
            "{}",
            found[0].message
        );
        f.temperatures[0].critical = None;
        f.temperatures[0].celsius = 90.0;
        assert_eq!(evaluate(&f, &[], &[], &t)[0].severity, HealthState::Fault);
        f.temperatures[0].celsius = 89.9;
        assert_eq!(
            evaluate(&f, &[], &[], &t)[0].severity,
            HealthState::Degraded
        );
    }

    #[test]
    fn a_finding_holds_until_the_figure_falls_a_margin_below_its_threshold() {
        let t = HealthConfig::default();
        let mut f = figures();
        f.filesystems[0].used = 86;
        let first = evaluate(&f, &[], &[], &t);
        assert_eq!(first[0].severity, HealthState::Degraded);
        // 84% is below the 85% threshold but within the 2-point margin.
        f.filesystems[0].used = 84;
        assert!(
            evaluate(&f, &[], &[], &t).is_empty(),
            "no finding without one before"
        );
        let held = evaluate(&f, &[], &first, &t);
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].severity, HealthState::Degraded);
        f.filesystems[0].used = 82;
        assert!(evaluate(&f, &[], &held, &t).is_empty());
        // A fault holds the same way above crit - margin, then steps down.
        f.filesystems[0].used = 95;
        let fault = evaluate(&f, &[], &[], &t);
        assert_eq!(fault[0].severity, HealthState::Fault);
        f.filesystems[0].used = 94;
        assert_eq!(
            evaluate(&f, &[], &fault, &t)[0].severity,
            HealthState::Fault
        );
        f.filesystems[0].used = 92;
        assert_eq!(
            evaluate(&f, &[], &fault, &t)[0].severity,
            HealthState::Degraded
        );
    }

    #[test]
    fn the_simulated_panel_sensor_is_shown_but_never_judged() {
        let t = HealthConfig::default();
        let mut f = figures();
        f.temperatures.push(TemperatureReading {
            label: PANEL_SENSOR.into(),
            celsius: 120.0,
            critical: None,
            simulated: true,
        });
        assert!(evaluate(&f, &[], &[], &t).is_empty());
        f.temperatures[1].simulated = false;
        assert_eq!(evaluate(&f, &[], &[], &t)[0].severity, HealthState::Fault);
    }

    #[test]
    fn thresholds_are_inclusive_and_configurable() {
        let t = HealthConfig {
            disk_warn_percent: 50.0,
            disk_crit_percent: 60.0,
            ..HealthConfig::default()
        };
        let mut f = figures();
        f.filesystems[0].used = 49;
        assert!(evaluate(&f, &[], &[], &t).is_empty());
        f.filesystems[0].used = 50;
        assert_eq!(
            evaluate(&f, &[], &[], &t)[0].severity,
            HealthState::Degraded
        );
        f.filesystems[0].used = 60;
        assert_eq!(evaluate(&f, &[], &[], &t)[0].severity, HealthState::Fault);
    }

    #[test]
    fn open_alerts_degrade_and_the_monitors_own_are_not_counted_twice() {
        let rpo = alert("rpo", "mail", "no good backup for 2d");
        let disk = alert("health-disk", "store", "the store filesystem is 90% full");
        let (state, reasons) = overall(&[], &[rpo.clone(), disk.clone()]);
        assert_eq!(state, HealthState::Degraded);
        assert_eq!(reasons, vec!["rpo: no good backup for 2d".to_string()]);
        let mut cleared = rpo;
        cleared.cleared = Some("2026-11-24T00:00:00Z".into());
        assert_eq!(overall(&[], &[cleared]).0, HealthState::Ok);
    }

    #[test]
    fn an_unreadable_filesystem_is_a_fault_not_a_crash() {
        let mut unreadable = Vec::new();
        let fs = filesystems(
            &[("store", Path::new("/nonexistent/coffer/store"))],
            &mut unreadable,
        );
        assert!(fs.is_empty());
        assert_eq!(unreadable.len(), 1);
        assert_eq!(unreadable[0].severity, HealthState::Fault);
        assert!(unreadable[0].message.contains("/nonexistent/coffer/store"));
    }

    #[test]
    fn one_filesystem_holding_two_roles_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        let mut unreadable = Vec::new();
        let fs = filesystems(&[("store", &a), ("state", &b)], &mut unreadable);
        assert!(unreadable.is_empty());
        assert_eq!(fs.len(), 1);
        assert_eq!(fs[0].role, "store+state");
        assert!(fs[0].total >= fs[0].used && fs[0].total > 0);
    }

    #[test]
    fn a_real_reading_of_this_machine_has_its_figures() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sampler::new();
        let (f, unreadable) = s.sample(&[("store", dir.path())], Some((31.5, true)));
        assert!(unreadable.is_empty());
        assert!(f.cores >= 1);
        assert!(f.memory_total > 0 && f.memory_used <= f.memory_total);
        assert_eq!(f.filesystems.len(), 1);
        assert!(
            f.temperatures
                .iter()
                .any(|t| t.label == PANEL_SENSOR && t.celsius == 31.5 && t.simulated)
        );
    }
}
