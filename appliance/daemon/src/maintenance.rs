//! Prune and garbage collection as daemon jobs.
//!
//! A prune job's order rides in its queued row: the asset in `asset`, and
//! in the scope's paths either `retention` (each asset's profile) or
//! `snapshot:<id>` entries (a deletion by hand). A gc job's threshold is
//! the scope path `compact-below:<percent>`. After every good backup whose
//! asset's profile has retention rules, a prune of that asset is queued:
//! retention is enforced, not only planned.

use std::sync::Arc;

use anyhow::{Result, anyhow};
use coffer_catalog::{Catalog, Pending, QueuedJob};
use coffer_engine::gc::GcOptions;
use coffer_engine::prune::PruneOrder;
use coffer_engine::{Actor, Progress, Stop};
use coffer_types::api::Source;
use coffer_types::{JobKind, Scope, SnapshotId};

use crate::Inner;
use crate::joblog::JobLog;

const BY_RETENTION: &str = "retention";
const SNAPSHOT: &str = "snapshot:";
const COMPACT_BELOW: &str = "compact-below:";
const RETIRE_OLD_KEYS: &str = "retire-old-keys";

fn queue(
    inner: &Inner,
    cat: &Catalog,
    kind: JobKind,
    asset: Option<String>,
    paths: Vec<String>,
    identity: &str,
    source: Source,
) -> Result<i64> {
    let id = cat.queue_job(&QueuedJob {
        asset,
        scope: Scope {
            paths,
            ..Scope::default()
        },
        ..inner.job(kind, identity, source)
    })?;
    tracing::info!(job_id = id, kind = kind.as_str(), identity, "job queued");
    inner.jobs.wake.notify_one();
    Ok(id)
}

/// Queues a prune by retention (of `asset`, or of every asset).
pub(crate) fn enqueue_prune(
    inner: &Inner,
    cat: &Catalog,
    asset: Option<String>,
    identity: &str,
    source: Source,
) -> Result<i64> {
    queue(
        inner,
        cat,
        JobKind::Prune,
        asset,
        vec![BY_RETENTION.into()],
        identity,
        source,
    )
}

/// Queues the deletion of one snapshot by hand (refused now, with the
/// reason, if a lock or hold protects it).
pub(crate) fn enqueue_delete(
    inner: &Inner,
    cat: &Catalog,
    snapshot: &str,
    identity: &str,
    source: Source,
) -> Result<(i64, SnapshotId)> {
    let s = cat.resolve_snapshot(snapshot)?;
    let trusted = inner.observe_clock(cat)?.trusted_ms;
    if let Some(why) = cat.protections(trusted)?.refusal(&s.id, &s.asset) {
        return Err(coffer_catalog::Error::Refused(why).into());
    }
    let id = queue(
        inner,
        cat,
        JobKind::Prune,
        Some(s.asset.clone()),
        vec![format!("{SNAPSHOT}{}", s.id.to_hex())],
        identity,
        source,
    )?;
    Ok((id, s.id))
}

/// Queues a garbage collection.
pub(crate) fn enqueue_gc(
    inner: &Inner,
    cat: &Catalog,
    compact_below_pct: u8,
    retire_old_keys: bool,
    identity: &str,
    source: Source,
) -> Result<i64> {
    if compact_below_pct > 100 {
        return Err(anyhow!(
            "compact-below is a percentage from 0 to 100, not {compact_below_pct}"
        ));
    }
    queue(
        inner,
        cat,
        JobKind::Gc,
        None,
        std::iter::once(format!("{COMPACT_BELOW}{compact_below_pct}"))
            .chain(retire_old_keys.then(|| RETIRE_OLD_KEYS.to_string()))
            .collect(),
        identity,
        source,
    )
}

/// After a good backup of `asset` (snapshot `snapshot`): its lock by
/// policy, from the trusted time, and a prune when its profile has
/// retention rules.
pub(crate) fn after_backup(
    inner: &Inner,
    cat: &Catalog,
    asset: &str,
    snapshot: &SnapshotId,
) -> Result<()> {
    let policies = coffer_engine::prune::register_policies(cat)?;
    let Some(r) = policies.get(asset) else {
        return Ok(());
    };
    let trusted = inner.observe_clock(cat)?.trusted_ms;
    coffer_engine::protect::lock_new_snapshot(cat, &policies, snapshot, asset, trusted)?;
    coffer_engine::protect::locks_by_policy(cat, &policies, trusted, true)?;
    if coffer_engine::retention::has_rules(r) || r.lock_for.is_some() {
        enqueue_prune(
            inner,
            cat,
            Some(asset.to_string()),
            "scheduler",
            Source::System,
        )?;
    }
    Ok(())
}

/// Runs a queued prune or gc job.
pub(crate) fn execute(
    inner: &Inner,
    p: &Pending,
    progress: &Arc<Progress>,
    log: &JobLog,
) -> Result<()> {
    let r = &p.view.record;
    let actor = Actor {
        identity: r.identity.clone(),
        host: inner.host.clone(),
    };
    // Its own connection: the work must not hold the API's lock.
    let cat = Catalog::open(&inner.catalog_path)?;
    let observed = inner.observe_clock(&cat)?;
    let trusted = observed.trusted_ms;
    let source = p.view.source.unwrap_or(Source::System);
    let target = r.asset.clone().unwrap_or_else(|| "store".into());
    let (result, detail) = match r.kind {
        JobKind::Prune => {
            let snapshots: Vec<SnapshotId> = r
                .scope
                .paths
                .iter()
                .filter_map(|p| p.strip_prefix(SNAPSHOT)?.parse().ok())
                .collect();
            let order = PruneOrder {
                asset: r.asset.clone(),
                policy: None,
                snapshots,
            };
            log.info(&format!(
                "prune started by {}: {}",
                r.identity,
                if order.snapshots.is_empty() {
                    format!(
                        "by retention, {}",
                        order.asset.as_deref().unwrap_or("every asset")
                    )
                } else {
                    "snapshots named by hand".to_string()
                }
            ));
            coffer_engine::protect::check_prune_clock(&observed)?;
            let plans = coffer_engine::prune::plan_order(&cat, &order, trusted, true)?;
            match coffer_engine::prune::prune(
                &inner.repo,
                &cat,
                &plans,
                trusted,
                &actor,
                progress,
                Some(r.id),
            ) {
                Ok(rep) => {
                    for w in rep.warnings.iter().chain(&rep.refused) {
                        log.warn(w);
                    }
                    let d = format!(
                        "job {}: {} snapshot(s) removed, {} kept, {} refused",
                        r.id,
                        rep.stats.snapshots_removed,
                        rep.stats.snapshots_kept,
                        rep.refused.len()
                    );
                    log.info(&d);
                    let ok = rep.warnings.is_empty() && rep.refused.is_empty();
                    (if ok { "ok" } else { "warning" }, d)
                }
                Err(e) => stopped_or_failed(log, r.id, e)?,
            }
        }
        JobKind::Gc => {
            let pct: f64 = r
                .scope
                .paths
                .iter()
                .find_map(|p| p.strip_prefix(COMPACT_BELOW)?.parse().ok())
                .unwrap_or(50.0);
            log.info(&format!(
                "garbage collection started by {}, compacting below {pct}% live",
                r.identity
            ));
            let retire = r.scope.paths.iter().any(|p| p == RETIRE_OLD_KEYS);
            let opts = GcOptions {
                compact_below: pct / 100.0,
                dry_run: false,
                retire_before: if retire {
                    inner.repo.data_generation()?
                } else {
                    0
                },
                full: false,
            };
            match coffer_engine::gc::gc(
                &inner.repo,
                &cat,
                &opts,
                trusted,
                &actor,
                progress,
                Some(r.id),
            ) {
                Ok(rep) => {
                    for w in &rep.warnings {
                        log.warn(w);
                    }
                    let mut d = format!(
                        "job {}: {} container(s) deleted, {} compacted, {} bytes freed",
                        r.id,
                        rep.stats.containers_deleted,
                        rep.stats.containers_compacted,
                        rep.stats.bytes_freed
                    );
                    for (g, id) in &rep.shredded {
                        d.push_str(&format!(
                            "; data key generation {g} ({id}) destroyed (crypto-shredding)"
                        ));
                    }
                    log.info(&d);
                    (
                        if rep.warnings.is_empty() {
                            "ok"
                        } else {
                            "warning"
                        },
                        d,
                    )
                }
                Err(e) => stopped_or_failed(log, r.id, e)?,
            }
        }
        k => {
            return Err(anyhow!(
                "job {} is a {} job, not maintenance",
                r.id,
                k.as_str()
            ));
        }
    };
    let shared = inner.catalog()?;
    inner.audit(
        &shared,
        &r.identity,
        source,
        "job.finish",
        &target,
        result,
        &detail,
    );
    Ok(())
}

/// A stopped job (cancel, shutdown) is recorded by the engine; anything
/// else is a failure the caller records.
fn stopped_or_failed(
    log: &JobLog,
    id: i64,
    e: coffer_engine::Error,
) -> Result<(&'static str, String)> {
    match e {
        coffer_engine::Error::Stopped(why) => {
            log.warn(&format!("stopped: {}", coffer_engine::Error::Stopped(why)));
            Ok((
                match why {
                    Stop::Cancel => "cancelled",
                    Stop::Shutdown => "interrupted",
                },
                format!("job {id}"),
            ))
        }
        e => Err(anyhow!("{e}")),
    }
}
