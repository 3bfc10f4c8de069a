//! Retention: which snapshots of one asset a profile's policy keeps, and
//! why, as a pure plan from `(now, policy, snapshots)`.
//!
//! The rules are the GFS ones the anchors use (restic's `forget`, Proxmox
//! Backup Server's prune): `keep_last` keeps the N newest snapshots; each
//! period rule (hourly, daily, weekly, monthly, yearly) walks the snapshots
//! newest first and keeps the newest one of each period until it has kept N
//! periods; `keep_within` keeps everything younger than a duration. A
//! snapshot is kept when any rule keeps it, and always when it is
//! protected: a retention lock that has not expired, a legal hold, or a
//! start time later than the clock (a clock set back must not make the
//! newest backups look old). A policy without any rule keeps everything:
//! forgetting to write one never deletes data.
//!
//! Periods are UTC: hours, days, ISO weeks (Monday to Sunday), months and
//! years, of the snapshot's start time. Every snapshot is a complete restore
//! point in a disk store (incrementals reference chunks, never other
//! snapshots), so no kept snapshot depends on a removed one.

use std::fmt;

use coffer_types::api::Retention;
use coffer_types::{SnapshotId, civil_from_days, rfc3339_ms};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// One snapshot as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The snapshot.
    pub id: SnapshotId,
    /// When its backup started, ms since the epoch, UTC.
    pub time_ms: i64,
    /// Its retention lock, if any: protected until then.
    pub locked_until_ms: Option<i64>,
    /// Under legal hold: protected until the hold is released.
    pub hold: bool,
}

/// A period rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Period {
    /// UTC hours.
    Hourly,
    /// UTC days.
    Daily,
    /// ISO weeks, Monday to Sunday, UTC.
    Weekly,
    /// Calendar months, UTC.
    Monthly,
    /// Calendar years, UTC.
    Yearly,
}

impl Period {
    /// Every period, shortest first.
    pub const ALL: [Period; 5] = [
        Period::Hourly,
        Period::Daily,
        Period::Weekly,
        Period::Monthly,
        Period::Yearly,
    ];

    /// The rule's name in policies and messages.
    pub fn name(self) -> &'static str {
        match self {
            Period::Hourly => "hourly",
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
            Period::Yearly => "yearly",
        }
    }

    /// How many periods the policy keeps.
    pub fn count(self, p: &Retention) -> Option<u32> {
        match self {
            Period::Hourly => p.keep_hourly,
            Period::Daily => p.keep_daily,
            Period::Weekly => p.keep_weekly,
            Period::Monthly => p.keep_monthly,
            Period::Yearly => p.keep_yearly,
        }
    }

    /// The period `ms` falls in, as a number that grows with time.
    pub fn bucket(self, ms: i64) -> i64 {
        let days = ms.div_euclid(DAY_MS);
        match self {
            Period::Hourly => ms.div_euclid(HOUR_MS),
            Period::Daily => days,
            // 1970-01-01 was a Thursday: day 4 of the ISO week that began
            // on Monday 1969-12-29, day -3.
            Period::Weekly => (days + 3).div_euclid(7),
            Period::Monthly => {
                let (y, m, _) = civil_from_days(days);
                y * 12 + i64::from(m) - 1
            }
            Period::Yearly => civil_from_days(days).0,
        }
    }

    /// The period of `ms`, as people write it (`2026-11-23`, `2026-W48`).
    pub fn label(self, ms: i64) -> String {
        let days = ms.div_euclid(DAY_MS);
        let (y, m, d) = civil_from_days(days);
        match self {
            Period::Hourly => format!(
                "{y:04}-{m:02}-{d:02} {:02}h",
                ms.rem_euclid(DAY_MS) / HOUR_MS
            ),
            Period::Daily => format!("{y:04}-{m:02}-{d:02}"),
            Period::Weekly => {
                // The ISO year is the year of the week's Thursday.
                let monday = (days + 3).div_euclid(7) * 7 - 3;
                let (iy, _, _) = civil_from_days(monday + 3);
                let jan4 = days_from_civil(iy, 1, 4);
                let week1 = (jan4 + 3).div_euclid(7);
                let w = (days + 3).div_euclid(7) - week1 + 1;
                format!("{iy:04}-W{w:02}")
            }
            Period::Monthly => format!("{y:04}-{m:02}"),
            Period::Yearly => format!("{y:04}"),
        }
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Why a snapshot is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The policy has no rule: everything is kept.
    NoPolicy,
    /// Among the `of` newest (`keep_last`); `rank` counts from 1.
    Last {
        /// Its rank, newest first.
        rank: u32,
        /// The rule's count.
        of: u32,
    },
    /// The newest snapshot of a period the rule keeps.
    Period {
        /// The rule.
        period: Period,
        /// The period, e.g. `2026-W48`.
        label: String,
        /// The period's rank, newest first, from 1.
        rank: u32,
        /// The rule's count.
        of: u32,
    },
    /// Younger than `keep_within`: kept until then.
    Within {
        /// When it leaves the window.
        until_ms: i64,
    },
    /// A retention lock that has not expired.
    Locked {
        /// The lock's end.
        until_ms: i64,
    },
    /// Under legal hold.
    Hold,
    /// Started after the clock's now: the clock may have been set back.
    Future,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NoPolicy => write!(f, "the profile has no retention rule (keeps everything)"),
            Reason::Last { rank, of } => write!(f, "last {rank} of {of}"),
            Reason::Period {
                period,
                label,
                rank,
                of,
            } => write!(f, "{} {label} ({rank} of {of})", period.name()),
            Reason::Within { until_ms } => {
                write!(
                    f,
                    "within the keep-within window until {}",
                    rfc3339_ms(*until_ms)
                )
            }
            Reason::Locked { until_ms } => write!(f, "locked until {}", rfc3339_ms(*until_ms)),
            Reason::Hold => write!(f, "legal hold"),
            Reason::Future => write!(f, "started after the clock's now (clock set back?)"),
        }
    }
}

/// When a kept snapshot would stop being kept, if no rule changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expiry {
    /// Never, as things stand: a hold, a snapshot from the future or a
    /// policy without rules.
    pub never: bool,
    /// Not before this time (the keep-within window's or the lock's end).
    pub not_before_ms: Option<i64>,
    /// Not before this many newer snapshots (or newer periods, per rule)
    /// exist: `(rule, count)`, e.g. `("daily", 3)`.
    pub after_newer: Vec<(&'static str, u32)>,
}

impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.never {
            return write!(f, "not while protected");
        }
        let mut parts = Vec::new();
        if let Some(t) = self.not_before_ms {
            parts.push(format!("after {}", rfc3339_ms(t)));
        }
        for (rule, n) in &self.after_newer {
            parts.push(if *rule == "last" {
                format!("after {n} newer snapshot{}", if *n == 1 { "" } else { "s" })
            } else {
                format!(
                    "after {n} newer {rule} period{} with a backup",
                    if *n == 1 { "" } else { "s" }
                )
            });
        }
        write!(f, "{}", parts.join(" and "))
    }
}

/// The plan's verdict on one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The snapshot.
    pub id: SnapshotId,
    /// Its start time.
    pub time_ms: i64,
    /// Why it is kept; empty: it is removed.
    pub reasons: Vec<Reason>,
    /// For kept snapshots: when that would end.
    pub expiry: Option<Expiry>,
}

impl Verdict {
    /// Whether the plan keeps it.
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }

    /// Whether it is protected (lock, hold, from the future): no policy
    /// may remove it.
    pub fn protected(&self) -> bool {
        self.reasons
            .iter()
            .any(|r| matches!(r, Reason::Locked { .. } | Reason::Hold | Reason::Future))
    }
}

/// Whether a policy has any rule (without one, everything is kept).
pub fn has_rules(p: &Retention) -> bool {
    p.keep_last.is_some()
        || p.keep_within.is_some()
        || Period::ALL.iter().any(|r| r.count(p).is_some())
}

/// Plans retention for the snapshots of one asset: a verdict for each,
/// newest first.
pub fn plan(now_ms: i64, policy: &Retention, snapshots: &[Candidate]) -> Vec<Verdict> {
    let mut order: Vec<&Candidate> = snapshots.iter().collect();
    order.sort_by(|a, b| b.time_ms.cmp(&a.time_ms).then(b.id.0.cmp(&a.id.0)));
    let rules = has_rules(policy);
    let mut out: Vec<Verdict> = order
        .iter()
        .map(|c| Verdict {
            id: c.id,
            time_ms: c.time_ms,
            reasons: Vec::new(),
            expiry: None,
        })
        .collect();
    for (v, c) in out.iter_mut().zip(&order) {
        if c.hold {
            v.reasons.push(Reason::Hold);
        }
        if let Some(until_ms) = c.locked_until_ms.filter(|&u| u > now_ms) {
            v.reasons.push(Reason::Locked { until_ms });
        }
        if c.time_ms > now_ms {
            v.reasons.push(Reason::Future);
        }
        if !rules {
            v.reasons.push(Reason::NoPolicy);
        }
    }
    if let Some(n) = policy.keep_last {
        for (i, v) in out.iter_mut().take(n as usize).enumerate() {
            v.reasons.push(Reason::Last {
                rank: i as u32 + 1,
                of: n,
            });
        }
    }
    for period in Period::ALL {
        let Some(n) = period.count(policy) else {
            continue;
        };
        let mut last = None;
        let mut rank = 0;
        for v in out.iter_mut() {
            if rank >= n {
                break;
            }
            let b = period.bucket(v.time_ms);
            if last == Some(b) {
                continue;
            }
            last = Some(b);
            rank += 1;
            v.reasons.push(Reason::Period {
                period,
                label: period.label(v.time_ms),
                rank,
                of: n,
            });
        }
    }
    if let Some(d) = policy.keep_within {
        let window = i64::try_from(d.0)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000);
        for v in out.iter_mut() {
            let until_ms = v.time_ms.saturating_add(window);
            if until_ms > now_ms {
                v.reasons.push(Reason::Within { until_ms });
            }
        }
    }
    for v in out.iter_mut().filter(|v| v.keep()) {
        v.expiry = Some(expiry(&v.reasons));
    }
    out
}

fn expiry(reasons: &[Reason]) -> Expiry {
    let mut e = Expiry::default();
    for r in reasons {
        match r {
            Reason::NoPolicy | Reason::Hold | Reason::Future => e.never = true,
            Reason::Within { until_ms } | Reason::Locked { until_ms } => {
                e.not_before_ms = Some(e.not_before_ms.map_or(*until_ms, |t| t.max(*until_ms)));
            }
            Reason::Last { rank, of } => e.after_newer.push(("last", of - rank + 1)),
            Reason::Period {
                period, rank, of, ..
            } => e.after_newer.push((period.name(), of - rank + 1)),
        }
    }
    e
}

#[cfg(test)]
mod tests;
