//! Prune: removes the snapshots their asset's retention policy no longer
//! keeps. Planning ([`plan_prune`]) is pure over the catalog's snapshots;
//! [`prune`] carries a plan out, recording a `prune` job.
//!
//! Removing a snapshot deletes its record (the commit point of its backup)
//! and then its catalog row; the data it alone referenced is garbage for
//! [`crate::gc`]. A run killed between the two leaves a row without a
//! record, which the next prune (the same policy removes the same
//! snapshot) or `catalog rebuild` removes.

use std::time::Instant;

use coffer_catalog::{Catalog, JobEnd, NewJob};
use coffer_store::Repo;
use coffer_types::api::{MaintenanceStats, Retention};
use coffer_types::{BackupStats, JobKind, JobStatus, Scope, SnapshotId, SnapshotInfo};

use crate::lock::StoreLock;
use crate::retention::{self, Candidate, Verdict};
use crate::{Actor, Error, Progress, Result, now_ms};

/// The plan for one asset's snapshots.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetPlan {
    /// The asset.
    pub asset: String,
    /// Its policy; `None`: no profile applies, and everything is kept.
    pub policy: Option<Retention>,
    /// A verdict per snapshot, newest first.
    pub verdicts: Vec<Verdict>,
}

impl AssetPlan {
    /// The snapshots the plan removes.
    pub fn removed(&self) -> impl Iterator<Item = &Verdict> {
        self.verdicts.iter().filter(|v| !v.keep())
    }
}

/// How a snapshot is protected: its retention lock's end and whether it is
/// under legal hold.
pub type Protection = (Option<i64>, bool);

/// Plans retention for every asset with snapshots in the catalog (or only
/// `only`): `policy_of` names each asset's policy (its profile's), and
/// `protection_of` each snapshot's lock and hold.
pub fn plan_prune(
    snapshots: &[SnapshotInfo],
    now_ms: i64,
    only: Option<&str>,
    policy_of: impl Fn(&str) -> Option<Retention>,
    protection_of: impl Fn(&SnapshotId) -> Protection,
) -> Vec<AssetPlan> {
    let mut by_asset: std::collections::BTreeMap<&str, Vec<Candidate>> = Default::default();
    for s in snapshots {
        if only.is_some_and(|a| a != s.asset) {
            continue;
        }
        let (locked_until_ms, hold) = protection_of(&s.id);
        by_asset.entry(&s.asset).or_default().push(Candidate {
            id: s.id,
            time_ms: s.started_ms,
            locked_until_ms,
            hold,
        });
    }
    by_asset
        .into_iter()
        .map(|(asset, cands)| {
            let policy = policy_of(asset);
            let verdicts = retention::plan(now_ms, &policy.clone().unwrap_or_default(), &cands);
            AssetPlan {
                asset: asset.to_string(),
                policy,
                verdicts,
            }
        })
        .collect()
}

/// What a prune did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct PruneReport {
    /// The figures, as recorded in the catalog.
    pub stats: MaintenanceStats,
    /// The snapshots removed.
    pub removed: Vec<SnapshotId>,
    /// Problems that did not stop the run.
    pub warnings: Vec<String>,
}

/// Removes the snapshots `plans` do not keep, recording a `prune` job (`job`:
/// a queued row to run as, or `None` to start one). Protected snapshots are
/// never removed: their verdicts always keep them.
pub fn prune(
    repo: &Repo,
    catalog: &Catalog,
    plans: &[AssetPlan],
    actor: &Actor,
    progress: &Progress,
    job: Option<i64>,
) -> Result<PruneReport> {
    let started = Instant::now();
    let _lock = StoreLock::shared(catalog)?;
    let new = NewJob {
        kind: JobKind::Prune,
        asset: (plans.len() == 1).then(|| plans[0].asset.clone()),
        level: None,
        scope: Scope {
            paths: plans.iter().map(|p| p.asset.clone()).collect(),
            excludes: Vec::new(),
            one_file_system: false,
        },
        started_ms: now_ms(),
        identity: actor.identity.clone(),
        host: actor.host.clone(),
        pid: std::process::id(),
    };
    let id = match job {
        Some(id) => {
            catalog.start_queued_job(id, &new)?;
            id
        }
        None => catalog.begin_job(&new)?,
    };
    let mut report = PruneReport::default();
    let mut result = Ok(());
    'plans: for plan in plans {
        for v in &plan.verdicts {
            if v.keep() {
                report.stats.snapshots_kept += 1;
                continue;
            }
            if let Some(s) = progress.stop_requested() {
                result = Err(Error::Stopped(s));
                break 'plans;
            }
            if let Err(e) = repo
                .delete_snapshot(&v.id)
                .map_err(Error::from)
                .and_then(|()| catalog.delete_snapshot(&v.id).map_err(Error::from))
            {
                report.warnings.push(format!(
                    "snapshot {} of {} could not be removed: {e}",
                    v.id, plan.asset
                ));
                continue;
            }
            tracing::info!(snapshot = %v.id, asset = %plan.asset, "snapshot removed by retention");
            Progress::add(&progress.entries, 1);
            report.removed.push(v.id);
            report.stats.snapshots_removed += 1;
        }
    }
    report.stats.duration_ms = started.elapsed().as_millis() as u64;
    let (status, messages) = match &result {
        Err(e) => (
            if matches!(e, Error::Stopped(crate::Stop::Cancel)) {
                JobStatus::Cancelled
            } else {
                JobStatus::Interrupted
            },
            vec![e.to_string()],
        ),
        Ok(()) if report.warnings.is_empty() => (JobStatus::Success, Vec::new()),
        Ok(()) => (JobStatus::Warning, report.warnings.clone()),
    };
    catalog.finish_job(
        id,
        &JobEnd {
            status,
            stats: BackupStats {
                entries: report.stats.snapshots_removed,
                ..BackupStats::default()
            },
            messages: &messages,
            snapshot: None,
            ended_ms: now_ms(),
        },
    )?;
    catalog.record_maintenance(id, &report.stats)?;
    result.map(|()| report)
}

/// Each registered asset's retention: its profile's. Assets without a
/// profile (and snapshots of unregistered assets) have none: everything of
/// theirs is kept.
pub fn register_policies(
    catalog: &Catalog,
) -> Result<std::collections::HashMap<String, Retention>> {
    let profiles: std::collections::HashMap<String, Retention> = catalog
        .profiles()?
        .into_iter()
        .map(|p| (p.name, p.retention))
        .collect();
    Ok(catalog
        .register()?
        .into_iter()
        .filter_map(|a| {
            let r = profiles.get(a.asset.profile.as_deref()?)?.clone();
            Some((a.asset.name, r))
        })
        .collect())
}

/// A plan as JSON for scripts and the API: per asset, its policy and each
/// snapshot's verdict with the reasons and, for kept ones, the expiry.
pub fn plans_json(plans: &[AssetPlan]) -> serde_json::Value {
    use serde_json::json;
    json!(
        plans
            .iter()
            .map(|p| json!({
                "asset": p.asset,
                "policy": p.policy,
                "snapshots": p.verdicts.iter().map(|v| json!({
                    "id": v.id.to_string(),
                    "time": coffer_types::rfc3339_ms(v.time_ms),
                    "keep": v.keep(),
                    "protected": v.protected(),
                    "reasons": v.reasons.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "expires": v.expiry.as_ref().map(ToString::to_string),
                })).collect::<Vec<_>>(),
            }))
            .collect::<Vec<_>>()
    )
}

/// A plan as the dry run prints it: per asset, one line per snapshot with
/// `keep` or `remove` and why.
pub fn plans_text(plans: &[AssetPlan]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for p in plans {
        let removed = p.removed().count();
        let _ = writeln!(
            out,
            "{}: keep {}, remove {}{}",
            p.asset,
            p.verdicts.len() - removed,
            removed,
            if p.policy.is_none() {
                " (no profile: everything is kept)"
            } else {
                ""
            }
        );
        // The oldest snapshot kept by rules alone goes first.
        if let Some(v) = p
            .verdicts
            .iter()
            .rev()
            .find(|v| v.keep() && !v.protected() && p.policy.is_some())
        {
            let _ = writeln!(
                out,
                "  next to expire: {} ({}), {}",
                &v.id.to_string()[..12],
                &coffer_types::rfc3339_ms(v.time_ms)[..19],
                v.expiry
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            );
        }
        for v in &p.verdicts {
            let id = v.id.to_string();
            let when = coffer_types::rfc3339_ms(v.time_ms);
            if v.keep() {
                let why: Vec<String> = v.reasons.iter().map(ToString::to_string).collect();
                let _ = writeln!(
                    out,
                    "  keep    {} {}  {}; expires {}",
                    &id[..12],
                    &when[..19],
                    why.join(", "),
                    v.expiry
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default()
                );
            } else {
                let _ = writeln!(
                    out,
                    "  remove  {} {}  no rule keeps it",
                    &id[..12],
                    &when[..19]
                );
            }
        }
    }
    out
}
