//! The daemon's clock, injected so tests run weeks of schedules in seconds
//! (STYLE.md, convention 4). Everything that decides by time — the
//! scheduler, sessions, lockouts, TOTP, the RPO monitor, retries — reads
//! this clock; only the engine's own job timestamps use the wall clock.

use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::Notify;

/// A source of "now", in milliseconds since the Unix epoch (UTC).
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now_ms(&self) -> i64;
    /// Notified when the clock jumps (a manual clock advanced), so waiting
    /// loops re-read it at once instead of at their next tick.
    fn jumped(&self) -> Option<&Notify> {
        None
    }
    /// This boot and its boot-time clock, which nobody sets: the trusted
    /// clock that retention locks expire by advances with it.
    fn boot(&self) -> coffer_engine::protect::Boot {
        coffer_engine::protect::system_boot()
    }
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to: for tests and simulations. Its
/// boot-time clock moves with it, except when [`ManualClock::set_wall`]
/// moves the wall clock alone (someone setting the time).
#[derive(Debug, Default)]
pub struct ManualClock {
    ms: AtomicI64,
    /// Wall clock minus boot-time clock.
    wall_offset: AtomicI64,
    jumped: Notify,
}

impl ManualClock {
    /// A clock standing at `ms`.
    pub fn new(ms: i64) -> ManualClock {
        ManualClock {
            ms: AtomicI64::new(ms),
            wall_offset: AtomicI64::new(0),
            jumped: Notify::new(),
        }
    }

    /// Sets the wall clock to `ms` without time passing (as `date -s`
    /// does): the boot-time clock stays where it is.
    pub fn set_wall(&self, ms: i64) {
        let old = self.ms.swap(ms, Ordering::SeqCst);
        self.wall_offset.fetch_add(ms - old, Ordering::SeqCst);
        self.jumped.notify_waiters();
    }

    /// Moves the clock to `ms` and wakes whoever waits on it.
    pub fn set(&self, ms: i64) {
        self.ms.store(ms, Ordering::SeqCst);
        self.jumped.notify_waiters();
    }

    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.ms.fetch_add(ms, Ordering::SeqCst);
        self.jumped.notify_waiters();
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.ms.load(Ordering::SeqCst)
    }
    fn jumped(&self) -> Option<&Notify> {
        Some(&self.jumped)
    }
    fn boot(&self) -> coffer_engine::protect::Boot {
        coffer_engine::protect::Boot {
            id: "manual".into(),
            mono_ms: self.ms.load(Ordering::SeqCst) - self.wall_offset.load(Ordering::SeqCst),
        }
    }
}
