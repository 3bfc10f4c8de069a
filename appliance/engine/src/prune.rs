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

use coffer_catalog::{Catalog, JobEnd};
use coffer_store::Repo;
use coffer_types::api::{MaintenanceStats, Retention};
use coffer_types::{BackupStats, JobKind, JobStatus, SnapshotId, SnapshotInfo};

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
    protection_of: impl Fn(&SnapshotInfo) -> Protection,
) -> Vec<AssetPlan> {
    let mut by_asset: std::collections::BTreeMap<&str, Vec<Candidate>> = Default::default();
    for s in snapshots {
        if only.is_some_and(|a| a != s.asset) {
            continue;
        }
        let (locked_until_ms, hold) = protection_of(s);
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

/// What to prune.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PruneOrder {
    /// Only this asset's snapshots.
    pub asset: Option<String>,
    /// This policy instead of each asset's profile's.
    pub policy: Option<Retention>,
    /// These snapshots, by hand, whatever the policy says (`snapshot
    /// delete`); locks and holds still protect them.
    pub snapshots: Vec<SnapshotId>,
}

/// Plans `order` at trusted time `trusted_ms`. Snapshots of assets whose
/// retention has `lock_for` get their lock first (`write`: recorded in the
/// catalog; a dry run only counts it), so a lock by policy protects a
/// snapshot from its first prune on.
pub fn plan_order(
    catalog: &Catalog,
    order: &PruneOrder,
    trusted_ms: i64,
    write: bool,
) -> Result<Vec<AssetPlan>> {
    let register = register_policies(catalog)?;
    let mut prot = catalog.protections(trusted_ms)?;
    for (id, until) in crate::protect::locks_by_policy(catalog, &register, trusted_ms, write)? {
        prot.locks.entry(id).or_insert(until);
    }
    let snapshots = catalog.snapshots(None)?;
    if order.snapshots.is_empty() {
        return Ok(plan_prune(
            &snapshots,
            trusted_ms,
            order.asset.as_deref(),
            |a| order.policy.clone().or_else(|| register.get(a).cloned()),
            |s| prot.of(&s.id, &s.asset),
        ));
    }
    let mut plans: Vec<AssetPlan> = Vec::new();
    for id in &order.snapshots {
        let s = snapshots
            .iter()
            .find(|s| s.id == *id)
            .ok_or_else(|| Error::Invalid(format!("no snapshot {id} in the catalog")))?;
        // Asked for by hand: planned for removal; [`prune`] refuses it
        // (with the reason) if a lock or hold protects it.
        let v = Verdict {
            id: s.id,
            time_ms: s.started_ms,
            reasons: Vec::new(),
            expiry: None,
        };
        match plans.iter_mut().find(|p| p.asset == s.asset) {
            Some(p) => p.verdicts.push(v),
            None => plans.push(AssetPlan {
                asset: s.asset.clone(),
                policy: None,
                verdicts: vec![v],
            }),
        }
    }
    Ok(plans)
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
    /// Removals refused because a lock or hold protects the snapshot.
    pub refused: Vec<String>,
    /// The immutable attribute after the run.
    pub immutability: crate::protect::ImmutabilityReport,
}

/// Removes the snapshots `plans` do not keep, recording a `prune` job (`job`:
/// a queued row to run as, or `None` to start one). A snapshot a lock or
/// hold protects at the moment of its removal is never removed: the
/// refusal is reported in [`PruneReport::refused`], whatever the plan said.
pub fn prune(
    repo: &Repo,
    catalog: &Catalog,
    plans: &[AssetPlan],
    trusted_ms: i64,
    actor: &Actor,
    progress: &Progress,
    job: Option<i64>,
) -> Result<PruneReport> {
    let started = Instant::now();
    let _lock = StoreLock::shared(catalog)?;
    let new = crate::maintenance_job(
        JobKind::Prune,
        (plans.len() == 1).then(|| plans[0].asset.clone()),
        plans.iter().map(|p| p.asset.clone()).collect(),
        actor,
    );
    let id = crate::start_job(catalog, &new, job)?;
    let mut report = PruneReport::default();
    let mut result = Ok(());
    // Protection is checked again right before each removal, whatever the
    // plan says: a lock or hold set since the plan was made (or while this
    // prune runs), or a plan made by hand (`snapshot delete`).
    // First the immutable attribute: off where locks ended (so those
    // snapshots can go now, and gc can take what they alone needed), on
    // for new locks (by policy, by hand).
    match crate::protect::apply_immutability(repo, catalog, trusted_ms, progress) {
        Ok(imm) => {
            report.warnings.extend(imm.warnings.iter().cloned());
            report.immutability = imm;
        }
        Err(e) => report.warnings.push(format!(
            "the immutable attribute was not brought up to date: {e}"
        )),
    }
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
            if let Some(why) = catalog.protections(trusted_ms)?.refusal(&v.id, &plan.asset) {
                report.refused.push(why);
                continue;
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
        Ok(()) if report.warnings.is_empty() && report.refused.is_empty() => {
            (JobStatus::Success, Vec::new())
        }
        Ok(()) => (
            JobStatus::Warning,
            report
                .warnings
                .iter()
                .chain(&report.refused)
                .cloned()
                .collect(),
        ),
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
