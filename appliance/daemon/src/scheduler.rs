//! The scheduler's loop: at every tick (a second of real time, or at once
//! when the register changes or a manual clock jumps) it asks the pure
//! planner (`plan`) which backups are due by the injected clock, queues
//! them as the `scheduler` identity, persists the schedule state (so a
//! restart catches up once, not once per missed run), and runs the RPO
//! monitor and the unprotected-asset check.

use std::sync::Arc;

use anyhow::Result;
use coffer_catalog::Catalog;
use coffer_types::api::{NextRun, Source};
use tokio::sync::watch;

use crate::{Inner, jobs, plan};

/// The identity scheduled jobs run as.
pub const SCHEDULER: &str = "scheduler";

pub(crate) async fn run(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let mut last_monitor = i64::MIN;
    loop {
        if *stop.borrow() {
            break;
        }
        let i = inner.clone();
        match tokio::task::spawn_blocking(move || {
            tick(&i, &mut last_monitor).map(|()| last_monitor)
        })
        .await
        {
            Ok(Ok(t)) => last_monitor = t,
            Ok(Err(e)) => tracing::error!(error = %format!("{e:#}"), "scheduler pass failed"),
            Err(e) => tracing::error!(error = %e, "scheduler pass panicked"),
        }
        let jumped = async {
            match inner.clock.jumped() {
                Some(n) => n.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.changed() => {}
            () = inner.reschedule.notified() => {}
            () = jumped => {}
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}

/// One pass: queue what is due, then the monitors when their time comes.
pub(crate) fn tick(inner: &Inner, last_monitor: &mut i64) -> Result<()> {
    if inner.stopping.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(());
    }
    let now = inner.now_ms();
    let config = inner.config();
    let tz = config.time_zone();
    let cat = inner.catalog()?;
    if config.scheduler.enabled {
        let assets: Vec<_> = cat.register()?.into_iter().map(|r| r.asset).collect();
        let profiles = cat.profiles()?;
        let state = cat.schedule_state()?;
        let (register, _problems) = plan::schedules(&assets, &profiles);
        let pass = plan::plan(now, &register, &state, &tz);
        for d in &pass.due {
            let Some(asset) = assets.iter().find(|a| a.name == d.asset) else {
                continue;
            };
            let id = jobs::enqueue(
                inner,
                &cat,
                asset,
                d.level,
                SCHEDULER,
                Source::Scheduler,
                Some(d.profile.clone()),
                1,
                None,
                None,
            )?;
            let mut detail = format!(
                "job {id}: {} backup due at {}",
                d.level.as_str(),
                coffer_types::rfc3339_ms(d.due_ms)
            );
            if now - d.due_ms > 60_000 {
                detail
                    .push_str(" (catch-up of a run missed while the appliance was off; run once)");
            }
            inner.audit(
                &cat,
                SCHEDULER,
                Source::Scheduler,
                "job.queue",
                &d.asset,
                "ok",
                &detail,
            );
        }
        if !pass.set.is_empty() || !pass.forget.is_empty() {
            cat.set_schedule_state(&pass.set, &pass.forget)?;
        }
        replications(inner, &cat, now, &profiles, &tz)?;
        crate::tape::schedule(inner, &cat, now, &config.tape.jobs, &tz)?;
        crate::drill::schedule(inner, &cat, now, &profiles, &tz)?;
        crate::verify::schedule(inner, &cat, now, &tz)?;
    }
    let every = config.scheduler.rpo_check_every.ms().max(1000);
    if *last_monitor == i64::MIN || now - *last_monitor >= every || now < *last_monitor {
        monitor(inner, &cat, now)?;
        crate::replication::monitor(inner, &cat, now)?;
        *last_monitor = now;
    }
    Ok(())
}

/// Queues the replications of profiles with a calendar of their own that
/// are due (one job per remote; a remote with one queued already is left
/// alone). The monitor raises the alert about an unusable calendar.
fn replications(
    inner: &Inner,
    cat: &Catalog,
    now: i64,
    profiles: &[coffer_types::api::Profile],
    tz: &jiff::tz::TimeZone,
) -> Result<()> {
    let (scheds, _problems) = plan::replication_schedules(profiles);
    let state = cat.replication_schedule_state()?;
    let pass = plan::plan_replication(now, &scheds, &state, tz);
    for d in &pass.due {
        for remote in &d.remotes {
            let detail = |id: i64| {
                let mut s = format!(
                    "job {id}: replication of profile {} due at {}",
                    d.profile,
                    coffer_types::rfc3339_ms(d.due_ms)
                );
                if now - d.due_ms > 60_000 {
                    s.push_str(" (catch-up of a run missed while the appliance was off; run once)");
                }
                s
            };
            match crate::replication::enqueue(
                inner,
                cat,
                remote,
                SCHEDULER,
                Source::Scheduler,
                Some(d.profile.clone()),
                crate::replication::RetryOf::default(),
            ) {
                Ok(Some(id)) => inner.audit(
                    cat,
                    SCHEDULER,
                    Source::Scheduler,
                    "job.queue",
                    remote,
                    "ok",
                    &detail(id),
                ),
                Ok(None) => {}
                Err(e) => {
                    let msg = format!("profile {} replicates to '{remote}': {e:#}", d.profile);
                    tracing::error!("{msg}");
                    cat.raise_alert(crate::replication::FAILED_ALERT, remote, &msg, now)?;
                }
            }
        }
    }
    if !pass.set.is_empty() || !pass.forget.is_empty() {
        cat.set_replication_schedule_state(&pass.set, &pass.forget)?;
    }
    Ok(())
}

/// The RPO monitor and the unprotected check: raises an alert per asset
/// whose last good backup is older than its RPO (or that has no profile),
/// and clears it once that is no longer so; then the profiles' replication
/// calendars are checked.
fn monitor(inner: &Inner, cat: &Catalog, now: i64) -> Result<()> {
    // Neither may stop the monitors below (alerts, replication).
    if let Err(e) = inner.observe_clock(cat) {
        tracing::error!(error = %format!("{e:#}"), "could not observe the clocks");
    }
    if let Err(e) = rotate_keys(inner, cat, now) {
        let msg = format!("the scheduled data key rotation failed: {e:#}");
        tracing::error!("{msg}");
        inner.system_alert(cat, "key-rotation", "store", &msg, now)?;
    }
    let register = cat.register()?;
    let assets: Vec<_> = register.iter().map(|r| r.asset.clone()).collect();
    let profiles = cat.profiles()?;
    let last_good = cat.last_good_backups()?;
    let breaches = plan::rpo_breaches(now, &register, &last_good);
    let (_, problems) = plan::schedules(&assets, &profiles);
    for a in &assets {
        match breaches.iter().find(|b| b.asset == a.name) {
            Some(b) => inner.system_alert(cat, "rpo", &a.name, &b.message, now)?,
            None => {
                if cat.clear_alert("rpo", &a.name, now)? {
                    inner.audit(
                        cat,
                        "system",
                        Source::System,
                        "alert.clear",
                        &a.name,
                        "rpo",
                        "a good backup is within the RPO again",
                    );
                }
            }
        }
        for kind in ["unprotected", CONFIG] {
            match problems
                .iter()
                .find(|p| p.asset == a.name && p.kind == kind)
            {
                Some(p) => {
                    if cat.raise_alert(kind, &a.name, &p.message, now)?.new {
                        tracing::warn!(asset = %a.name, "{}", p.message);
                    }
                }
                None => {
                    cat.clear_alert(kind, &a.name, now)?;
                }
            }
        }
    }
    replication_problems(inner, cat, now, &profiles)
}

/// The alert kind of a schedule that cannot run as configured.
const CONFIG: &str = "config";

/// A `config` alert per profile whose replication calendar cannot run
/// (subject `profile:NAME`, apart from the assets' own).
fn replication_problems(
    inner: &Inner,
    cat: &Catalog,
    now: i64,
    profiles: &[coffer_types::api::Profile],
) -> Result<()> {
    let (_, problems) = plan::replication_schedules(profiles);
    for p in profiles {
        let subject = format!("profile:{}", p.name);
        match problems.iter().find(|(name, _)| *name == p.name) {
            Some((_, message)) => inner.system_alert(cat, CONFIG, &subject, message, now)?,
            None => {
                cat.clear_alert(CONFIG, &subject, now)?;
            }
        }
    }
    Ok(())
}

/// The next `count` scheduled runs over all assets.
pub(crate) fn next_runs(
    cat: &Catalog,
    now: i64,
    tz: &jiff::tz::TimeZone,
    count: usize,
) -> Result<Vec<NextRun>> {
    let assets: Vec<_> = cat.register()?.into_iter().map(|r| r.asset).collect();
    let profiles = cat.profiles()?;
    let state = cat.schedule_state()?;
    let (register, _) = plan::schedules(&assets, &profiles);
    Ok(plan::next_runs(now, &register, &state, count, tz))
}

/// Starts a new data key generation when the current one is older than
/// `store.rotate_data_key_every` (audited, in the key history).
fn rotate_keys(inner: &Inner, cat: &Catalog, now: i64) -> Result<()> {
    let every = inner.config().store.rotate_data_key_every.ms();
    if every == 0 {
        return Ok(());
    }
    let since = coffer_engine::keys::current_key_since(&inner.repo, cat, now)?;
    if now - since < every {
        return Ok(());
    }
    let k = coffer_engine::keys::rotate_data_key(&inner.repo, cat, SCHEDULER, now)?;
    inner.audit(
        cat,
        SCHEDULER,
        Source::Scheduler,
        "key.rotate",
        &format!("generation {}", k.generation),
        "ok",
        &format!(
            "data key generation {} ({}) seals new data from now on (every {})",
            k.generation,
            k.key_id,
            inner.config().store.rotate_data_key_every
        ),
    );
    Ok(())
}
