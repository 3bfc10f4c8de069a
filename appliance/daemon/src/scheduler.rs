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
    }
    let every = config.scheduler.rpo_check_every.ms().max(1000);
    if *last_monitor == i64::MIN || now - *last_monitor >= every || now < *last_monitor {
        monitor(inner, &cat, now)?;
        crate::replication::monitor(inner, &cat, now)?;
        *last_monitor = now;
    }
    Ok(())
}

/// The RPO monitor and the unprotected check: raises an alert per asset
/// whose last good backup is older than its RPO (or that has no profile),
/// and clears it once that is no longer so.
fn monitor(inner: &Inner, cat: &Catalog, now: i64) -> Result<()> {
    let register = cat.register()?;
    let assets: Vec<_> = register.iter().map(|r| r.asset.clone()).collect();
    let profiles = cat.profiles()?;
    let last_good = cat.last_good_backups()?;
    let breaches = plan::rpo_breaches(now, &register, &last_good);
    let (_, problems) = plan::schedules(&assets, &profiles);
    for a in &assets {
        match breaches.iter().find(|b| b.asset == a.name) {
            Some(b) => {
                if cat.raise_alert("rpo", &a.name, &b.message, now)?.new {
                    tracing::warn!(asset = %a.name, "{}", b.message);
                    inner.audit(
                        cat,
                        "system",
                        Source::System,
                        "alert.raise",
                        &a.name,
                        "rpo",
                        &b.message,
                    );
                }
            }
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
        for kind in ["unprotected", "config"] {
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
