//! Restore drills as daemon jobs: on demand (`drill_run`) and on each
//! profile's drill calendar (every asset of the profile), from the store,
//! from a tape media set through the configured library, or from an
//! offsite copy (a paired appliance's replica pulled into the sandbox, or
//! an S3 bucket read in place). The drill itself
//! (sandbox, restore, verification of every file, timing against the RTO,
//! evidence row, clean-up) is `coffer_engine::drill`. A failed drill ends
//! its job `failed` with the reason and raises a `drill-failed` alert on
//! the asset; a drill that passes clears it.

use anyhow::{Result, anyhow};
use coffer_catalog::{Catalog, Pending, QueuedJob};
use coffer_engine::drill::{self, DrillRequest, Restored};
use coffer_engine::{Actor, RestoreRequest};
use coffer_types::api::{DrillSource, Source};
use coffer_types::{JobKind, JobStatus, Scope, SnapshotId};

use crate::Inner;
use crate::joblog::JobLog;

/// The alert a failed drill raises on its asset.
pub(crate) const DRILL_FAILED: &str = "drill-failed";

const FROM: &str = "from:";
const SNAPSHOT: &str = "snapshot:";
const RANDOM: &str = "random";

/// Whether a queued drill reads a tape copy (it then needs the drive).
pub(crate) fn uses_tape(scope: &Scope) -> bool {
    scope
        .paths
        .iter()
        .any(|p| p.strip_prefix(FROM) == Some(DrillSource::Tape.as_str()))
}

/// Where drill sandboxes are made.
pub(crate) fn sandbox_root(inner: &Inner) -> std::path::PathBuf {
    inner.config().daemon.state_dir.join("drills")
}

/// Queues a drill of `asset` (from `remote` when `from` is a remote).
#[allow(clippy::too_many_arguments)]
pub(crate) fn enqueue(
    inner: &Inner,
    cat: &Catalog,
    asset: &str,
    from: DrillSource,
    remote: Option<&str>,
    snapshot: Option<&str>,
    random: bool,
    identity: &str,
    source: Source,
    profile: Option<String>,
) -> Result<i64> {
    cat.asset(asset)?;
    let remote = match (from, remote) {
        (DrillSource::Remote, Some(r)) => Some(cat.remote(r)?.spec.name),
        (DrillSource::Remote, None) => {
            return Err(anyhow!(
                "a drill from a remote names the remote (--remote NAME)"
            ));
        }
        (_, Some(r)) => {
            return Err(anyhow!(
                "--remote {r} is for a drill from a remote (--from remote)"
            ));
        }
        (_, None) => None,
    };
    let snapshot = snapshot
        .map(|s| cat.resolve_snapshot(s).map(|i| i.id))
        .transpose()?;
    let mut paths = vec![format!("{FROM}{}", from.as_str())];
    if let Some(s) = snapshot {
        paths.push(format!("{SNAPSHOT}{}", s.to_hex()));
    }
    if random {
        paths.push(RANDOM.into());
    }
    let id = cat.queue_job(&QueuedJob {
        asset: Some(asset.to_string()),
        scope: Scope {
            paths,
            ..Scope::default()
        },
        profile,
        remote,
        ..inner.job(JobKind::Drill, identity, source)
    })?;
    tracing::info!(
        job_id = id,
        asset,
        from = from.as_str(),
        identity,
        "drill queued"
    );
    inner.jobs.wake.notify_one();
    Ok(id)
}

/// Queues the drills of the profiles whose drill calendar is due: one per
/// asset of the profile.
pub(crate) fn schedule(
    inner: &Inner,
    cat: &Catalog,
    now: i64,
    profiles: &[coffer_types::api::Profile],
    tz: &jiff::tz::TimeZone,
) -> Result<()> {
    let (scheds, _problems) = crate::plan::drill_schedules(profiles);
    if scheds.is_empty() && cat.drill_schedule_state()?.is_empty() {
        return Ok(());
    }
    let state = cat.drill_schedule_state()?;
    let pass = crate::plan::plan_drills(now, &scheds, &state, tz);
    for (profile, due_ms) in &pass.due {
        let Some(s) = scheds.iter().find(|s| &s.profile == profile) else {
            continue;
        };
        for a in cat.register()? {
            if a.asset.profile.as_deref() != Some(profile.as_str()) {
                continue;
            }
            let id = enqueue(
                inner,
                cat,
                &a.asset.name,
                s.policy.from,
                s.policy.remote.as_deref(),
                None,
                s.policy.random,
                crate::scheduler::SCHEDULER,
                Source::Scheduler,
                Some(profile.clone()),
            )?;
            inner.audit(
                cat,
                crate::scheduler::SCHEDULER,
                Source::Scheduler,
                "job.queue",
                &a.asset.name,
                "ok",
                &format!(
                    "job {id}: restore drill from {} due at {}",
                    s.policy.from.as_str(),
                    coffer_types::rfc3339_ms(*due_ms)
                ),
            );
        }
    }
    if !pass.set.is_empty() || !pass.forget.is_empty() {
        cat.set_drill_schedule_state(&pass.set, &pass.forget)?;
    }
    Ok(())
}

/// Fails the drills a killed daemon left running and removes their
/// sandboxes (at start).
pub(crate) fn reap(inner: &Inner) -> Result<()> {
    let cat = inner.catalog()?;
    for id in drill::reap(&cat, &sandbox_root(inner), inner.now_ms())? {
        inner.audit(
            &cat,
            "system",
            Source::System,
            "drill.finish",
            &format!("drill {id}"),
            "failed",
            "interrupted: the appliance stopped during the drill; its sandbox was removed",
        );
    }
    Ok(())
}

/// Runs a queued drill job.
pub(crate) fn execute(inner: &Inner, p: &Pending, log: &JobLog) -> Result<()> {
    let r = &p.view.record;
    let asset_name = r
        .asset
        .clone()
        .ok_or_else(|| anyhow!("job {} names no asset", r.id))?;
    let from = r
        .scope
        .paths
        .iter()
        .find_map(|p| p.strip_prefix(FROM)?.parse::<DrillSource>().ok())
        .unwrap_or_default();
    let snapshot: Option<SnapshotId> = r
        .scope
        .paths
        .iter()
        .find_map(|p| p.strip_prefix(SNAPSHOT)?.parse().ok());
    let random = r.scope.paths.iter().any(|p| p == RANDOM);
    let source = p.view.source.unwrap_or(Source::System);
    let cat = inner.start_job(r)?;
    let asset = cat.asset(&asset_name)?.asset;
    let actor = Actor {
        identity: r.identity.clone(),
        host: inner.host.clone(),
    };
    log.info(&format!(
        "restore drill of '{asset_name}' from {} started by {} (RTO {})",
        from.as_str(),
        r.identity,
        asset.rto
    ));
    let remote = match from {
        DrillSource::Remote => {
            let name = p
                .view
                .remote
                .clone()
                .ok_or_else(|| anyhow!("job {} names no remote to drill from", r.id))?;
            Some(cat.remote(&name)?)
        }
        _ => None,
    };
    // The drill cannot change the store it tests: its objects, and the
    // disk pool's members, are read-only in the drill's namespace.
    let members: Vec<std::path::PathBuf> = inner
        .pool
        .as_ref()
        .map(|p| p.status().members.into_iter().map(|m| m.path).collect())
        .unwrap_or_default();
    let req = DrillRequest {
        asset: asset_name.clone(),
        snapshot,
        random,
        source: from,
        sandbox_root: sandbox_root(inner),
        rto_ms: Some(asset.rto.ms()),
        job: Some(r.id),
        protect: coffer_engine::sandbox::store_paths(&inner.config().store.path, &members),
        staging: drill::Staging::Nothing,
    };
    let now = || inner.now_ms();
    let outcome = match (from, &remote) {
        (DrillSource::Disk, _) => {
            let mut step = drill::from_store(&inner.repo, &actor);
            drill::run(&inner.repo, &cat, &req, &actor, &now, &mut step)
        }
        (DrillSource::Tape, _) => {
            let req = DrillRequest {
                // The set's containers are staged in the sandbox.
                staging: drill::Staging::AsTree,
                ..req
            };
            let mut step = from_tape(inner, &cat, &actor);
            drill::run(&inner.repo, &cat, &req, &actor, &now, &mut step)
        }
        (DrillSource::Remote, Some(row)) => {
            let req = DrillRequest {
                staging: drill::Staging::Bytes(crate::offsite::staging_bytes(inner, row)),
                ..req
            };
            let mut step = from_remote(inner, row, &actor, log);
            drill::run(&inner.repo, &cat, &req, &actor, &now, &mut step)
        }
        (DrillSource::Remote, None) => Err(coffer_engine::Error::Invalid(
            "no remote to drill from".into(),
        )),
    };
    let shared = inner.catalog()?;
    let (status, result, msg) = match outcome {
        Ok(d) => {
            let pass = d.result == "pass";
            let msg = format!(
                "drill {}: {} of snapshot {} from {}: {}",
                d.id,
                if pass { "PASS" } else { "FAIL" },
                &d.snapshot[..12.min(d.snapshot.len())],
                if d.copy.is_empty() {
                    from.as_str().to_string()
                } else {
                    d.copy.clone()
                },
                d.reason
            );
            if pass {
                log.info(&msg);
                shared.clear_alert(DRILL_FAILED, &asset_name, inner.now_ms())?;
                (JobStatus::Success, "ok", msg)
            } else {
                log.error(&msg);
                inner.system_alert(&shared, DRILL_FAILED, &asset_name, &msg, inner.now_ms())?;
                (JobStatus::Failed, "failed", msg)
            }
        }
        Err(e) => {
            let msg = format!("the drill could not start: {e}");
            log.error(&msg);
            inner.system_alert(&shared, DRILL_FAILED, &asset_name, &msg, inner.now_ms())?;
            (JobStatus::Failed, "failed", msg)
        }
    };
    shared.end_job_early(r.id, &[JobStatus::Running], status, &msg, inner.now_ms())?;
    inner.audit(
        &shared,
        &r.identity,
        source,
        "job.finish",
        &asset_name,
        result,
        &format!("job {}: {msg}", r.id),
    );
    Ok(())
}

/// The restore step for an offsite copy: an appliance's replica is pulled
/// into the sandbox, a bucket read in place; the snapshot is restored from
/// it with the store's keys, its restore job kept in a catalog of the
/// sandbox's own.
fn from_remote<'a>(
    inner: &'a Inner,
    remote: &'a coffer_catalog::RemoteRow,
    actor: &'a Actor,
    log: &'a JobLog,
) -> impl FnMut(&SnapshotId, &std::path::Path, &std::path::Path) -> std::result::Result<Restored, String>
+ 'a {
    move |snapshot, target, scratch| {
        let progress = std::sync::Arc::new(coffer_engine::Progress::default());
        let copy = crate::offsite::open(inner, remote, &scratch.join("pulled"), &progress, log)
            .map_err(|e| format!("the copy at '{}' cannot be read: {e:#}", remote.spec.name))?;
        copy.repo.load_snapshot(snapshot).map_err(|e| {
            format!(
                "the copy at '{}' does not hold snapshot {}: {e}",
                remote.spec.name,
                snapshot.short()
            )
        })?;
        let errors = drill::restore_into(&copy.repo, actor, snapshot, target, scratch, &progress)
            .map_err(|e| format!("restore from '{}' failed: {e}", remote.spec.name))?;
        Ok(Restored {
            copy: copy.what,
            errors,
        })
    }
}

/// The restore step for a tape media set: the set's objects are staged in
/// the sandbox and the snapshot restored from them.
fn from_tape<'a>(
    inner: &'a Inner,
    cat: &'a Catalog,
    actor: &'a Actor,
) -> impl FnMut(&SnapshotId, &std::path::Path, &std::path::Path) -> std::result::Result<Restored, String>
+ 'a {
    move |snapshot, target, scratch| {
        let config = inner.config();
        let lib_config = config
            .tape
            .library
            .clone()
            .ok_or("no tape library is configured (tape.library)")?;
        let pf = config
            .store
            .passphrase_file
            .clone()
            .ok_or("store.passphrase_file is not set")?;
        let pass =
            crate::read_passphrase(&pf, config.daemon.development).map_err(|e| format!("{e:#}"))?;
        let mut lib = coffer_tape::open_library(&lib_config)
            .map_err(|e| format!("the tape library (tape.library) cannot be opened: {e}"))?;
        let req = coffer_media::restore::TapeRestoreRequest {
            set: None,
            restore: RestoreRequest {
                snapshot: *snapshot,
                target: target.to_path_buf(),
                paths: Vec::new(),
                overwrite: false,
                threads: 0,
            },
            drive: config.tape.drive,
            staging: scratch.join("store"),
        };
        let out = coffer_media::restore::restore(
            &inner.repo,
            cat,
            lib.as_mut(),
            &pass,
            &req,
            actor,
            &|_, _, _| {},
            &coffer_engine::Progress::default(),
        )
        .map_err(|e| format!("restore from tape failed: {e}"))?;
        let mut errors = out.restore.errors.clone();
        errors.extend(
            out.fetched
                .lost
                .iter()
                .map(|(k, why)| format!("{k} lost on tape: {why}")),
        );
        Ok(Restored {
            copy: format!(
                "media set {} (cartridges {})",
                out.set,
                out.fetched.cartridges.join(", ")
            ),
            errors,
        })
    }
}
