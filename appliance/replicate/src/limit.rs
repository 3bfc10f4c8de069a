//! Bandwidth limiting: a token bucket over bytes. A transfer takes tokens
//! before each write; with none left it sleeps until enough have accrued.
//! The rate can change mid-transfer (a time window that starts).

use std::time::{Duration, Instant};

/// A token bucket of `rate` bytes a second holding at most `burst` bytes.
pub struct TokenBucket {
    rate: u64,
    burst: u64,
    tokens: f64,
    last: Instant,
    schedule: Option<Schedule>,
}

/// Where a scheduled bucket's rate comes from, and how often it is asked.
struct Schedule {
    rate_now: Box<dyn FnMut() -> u64 + Send>,
    every: Duration,
    checked: Instant,
}

impl std::fmt::Debug for TokenBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenBucket")
            .field("rate", &self.rate)
            .field("burst", &self.burst)
            .field("scheduled", &self.schedule.is_some())
            .finish_non_exhaustive()
    }
}

impl TokenBucket {
    /// `rate` bytes a second (0 = unlimited), bursts of up to a second's
    /// worth (at least 64 KiB).
    pub fn new(rate: u64) -> TokenBucket {
        let burst = rate.max(64 * 1024);
        TokenBucket {
            rate,
            burst,
            tokens: burst as f64,
            last: Instant::now(),
            schedule: None,
        }
    }

    /// A bucket whose rate follows `rate_now` (e.g. bandwidth windows by
    /// time of day), asked now and then at most every `every` while the
    /// transfer runs: a window that opens or closes mid-transfer applies
    /// from then on.
    pub fn scheduled(
        mut rate_now: impl FnMut() -> u64 + Send + 'static,
        every: Duration,
    ) -> TokenBucket {
        let mut b = TokenBucket::new(rate_now());
        b.schedule = Some(Schedule {
            rate_now: Box::new(rate_now),
            every,
            checked: Instant::now(),
        });
        b
    }

    /// Asks the schedule for the rate when it is due.
    fn follow(&mut self, now: Instant) {
        let Some(s) = self.schedule.as_mut() else {
            return;
        };
        if now.saturating_duration_since(s.checked) < s.every {
            return;
        }
        s.checked = now;
        let rate = (s.rate_now)();
        if rate != self.rate {
            tracing::info!(from = self.rate, to = rate, "bandwidth limit changed");
            self.set_rate(rate);
        }
    }

    /// The rate in bytes a second (0 = unlimited).
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Changes the rate (tokens held are kept, up to the new burst).
    pub fn set_rate(&mut self, rate: u64) {
        self.refill(Instant::now());
        self.rate = rate;
        self.burst = rate.max(64 * 1024);
        self.tokens = self.tokens.min(self.burst as f64);
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate as f64).min(self.burst as f64);
    }

    /// How long to wait before `n` bytes may go, taking them (pure in the
    /// clock: `now` is given).
    pub fn reserve(&mut self, n: u64, now: Instant) -> Duration {
        self.follow(now);
        if self.rate == 0 {
            return Duration::ZERO;
        }
        self.refill(now);
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate as f64)
        }
    }

    /// Waits until `n` bytes may go.
    pub fn take(&mut self, n: u64) {
        let wait = self.reserve(n, Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_goes_at_once_then_the_rate_holds() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1_000_000);
        b.last = t0;
        assert_eq!(b.reserve(1_000_000, t0), Duration::ZERO);
        // The bucket is empty: the next 500 kB wait half a second.
        let w = b.reserve(500_000, t0);
        assert!((w.as_secs_f64() - 0.5).abs() < 1e-9, "{w:?}");
        // After that half second the debt is paid; a second later a
        // second's worth is back, never more than the burst.
        let t2 = t0 + Duration::from_millis(1500);
        assert_eq!(b.reserve(1_000_000, t2), Duration::ZERO);
        let t3 = t2 + Duration::from_secs(10);
        assert_eq!(b.reserve(1_000_000, t3), Duration::ZERO);
        assert!(b.reserve(1, t3) > Duration::ZERO);
    }

    #[test]
    fn a_scheduled_rate_is_followed_when_it_is_asked_again() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};
        let window = Arc::new(AtomicU64::new(0));
        let w = window.clone();
        let mut b =
            TokenBucket::scheduled(move || w.load(Ordering::SeqCst), Duration::from_secs(10));
        let t0 = b.schedule.as_ref().unwrap().checked;
        assert_eq!(b.reserve(u64::MAX / 2, t0), Duration::ZERO, "unlimited");
        // A window of 100 kB/s opens: not asked again before 10 s.
        window.store(100_000, Ordering::SeqCst);
        assert_eq!(
            b.reserve(1 << 30, t0 + Duration::from_secs(9)),
            Duration::ZERO
        );
        assert_eq!(b.rate(), 0);
        let t1 = t0 + Duration::from_secs(10);
        b.reserve(0, t1);
        assert_eq!(b.rate(), 100_000);
        b.tokens = 0.0;
        let w = b.reserve(50_000, t1);
        assert!((w.as_secs_f64() - 0.5).abs() < 1e-6, "{w:?}");
        // It closes again: unlimited from the next check on.
        window.store(0, Ordering::SeqCst);
        assert_eq!(
            b.reserve(1 << 30, t1 + Duration::from_secs(20)),
            Duration::ZERO
        );
        assert_eq!(b.rate(), 0);
    }

    #[test]
    fn zero_is_unlimited_and_the_rate_can_change() {
        let now = Instant::now();
        let mut b = TokenBucket::new(0);
        assert_eq!(b.reserve(u64::MAX / 2, now), Duration::ZERO);
        b.set_rate(100_000);
        b.last = now;
        b.tokens = 0.0;
        let w = b.reserve(100_000, now);
        assert!((w.as_secs_f64() - 1.0).abs() < 1e-9, "{w:?}");
        assert_eq!(b.rate(), 100_000);
    }
}
