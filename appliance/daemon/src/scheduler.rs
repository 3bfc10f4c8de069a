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
        match tokio::task::spawn_blocking(move || tick(&i, &mut last_monitor).map(|()| last_monitor))
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
        let assets = cat.register_assets()?;
        let profiles = cat.profiles()?;
        let state = cat.schedule_state()?;
        let pass = plan::due(now, &assets, &profiles, &state, &tz);
        for problem in &pass.problems {
            tracing::warn!("{problem}");
        }
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
            if d.missed > 1 {
                detail.push_str(&format!(
                    " (catch-up: {} runs were missed while the appliance was off; run once)",
                    d.missed
                ));
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
        cat.set_schedule_state(&pass.state)?;
    }
    let every = config.scheduler.rpo_check_every.ms().max(1000);
    if *last_monitor == i64::MIN || now - *last_monitor >= every || now < *last_monitor {
        monitor(inner, &cat, now)?;
        *last_monitor = now;
    }
    Ok(())
}

/// The RPO monitor and the unprotected check: raises an alert per asset
/// whose last good backup is older than its RPO (or that has no profile),
/// and clears it once that is no longer so.
fn monitor(inner: &Inner, cat: &Catalog, now: i64) -> Result<()> {
    let assets = cat.register_assets_with_time()?;
    let profiles: std::collections::HashSet<String> =
        cat.profiles()?.into_iter().map(|p| p.name).collect();
    let last_good = cat.last_good_backups()?;
    let breaches = plan::rpo_breaches(now, &assets, &last_good);
    for (a, _) in &assets {
        match breaches.iter().find(|(name, _)| *name == a.name) {
            Some((_, message)) => {
                if cat.raise_alert("rpo", &a.name, message, now)? {
                    tracing::warn!(asset = %a.name, "{message}");
                    inner.audit(cat, "system", Source::System, "alert.raise", &a.name, "rpo", message);
                }
            }
            None => {
                if cat.clear_alert("rpo", &a.name, now)? {
                    inner.audit(cat, "system", Source::System, "alert.clear", &a.name, "rpo", "a good backup is within the RPO again");
                }
            }
        }
        let unprotected = a.profile.as_ref().is_none_or(|p| !profiles.contains(p));
        if unprotected {
            let message = match &a.profile {
                None => format!("{}: no backup profile; it is not backed up", a.name),
                Some(p) => format!("{}: its profile '{p}' does not exist; it is not backed up", a.name),
            };
            if cat.raise_alert("unprotected", &a.name, &message, now)? {
                tracing::warn!(asset = %a.name, "{message}");
            }
        } else {
            cat.clear_alert("unprotected", &a.name, now)?;
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
    let assets = cat.register_assets()?;
    let profiles = cat.profiles()?;
    let state = cat.schedule_state()?;
    Ok(plan::next_runs(now, &assets, &profiles, &state, tz, count))
}
