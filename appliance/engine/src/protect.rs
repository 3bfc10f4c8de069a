//! Retention locks, legal holds, the trusted clock, and the immutable
//! attribute on what protected snapshots reference.
//!
//! **The trusted clock.** Locks expire by a clock an administrator cannot
//! move forward: the catalog keeps a record (trusted time, boot id,
//! boot-time clock, wall clock) that every observation advances by the
//! kernel's boot-time clock, which nobody sets. A wall clock that runs
//! ahead of that (set forward, or the appliance was off for more than
//! [`REBOOT_GRACE_MS`]) is a [`ClockJump::Forward`]: the trusted time does
//! not follow it, so no lock expires early, and the daemon raises an
//! alert until a security officer accepts the new time
//! ([`accept_wall_clock`], fresh MFA, audited). A wall clock set back is a
//! [`ClockJump::Back`]: the trusted time never goes back.
//!
//! **The immutable attribute.** [`apply_immutability`] gives every object a
//! protected snapshot needs (its record, the data and index objects of the
//! containers holding its chunks and its manifest) the backend's retention
//! lock (`chattr +i` on a pool's or a directory store's files, object lock
//! on S3), and takes it off objects no protected snapshot needs any more.
//! The catalog records which objects carry it.

use std::collections::HashSet;
use std::fmt;

use coffer_catalog::{Catalog, ClockRecord};
use coffer_store::Repo;
use coffer_store::container::{data_key, index_key};
use coffer_store::snapshot::record_key;
use coffer_types::api::{ClockStatus, Retention};
use coffer_types::{ContainerId, SnapshotId, rfc3339_ms};

use crate::{Progress, Result};

/// How far the wall clock may run from the trusted clock before it counts
/// as a jump (NTP corrections stay well inside).
pub const CLOCK_TOLERANCE_MS: i64 = 120_000;

/// After a reboot the boot-time clock starts again; the wall clock may
/// have moved this much while the appliance was off without counting as a
/// jump (a longer power-off raises the alert, and a security officer
/// accepts the time).
pub const REBOOT_GRACE_MS: i64 = 15 * 60_000;

/// A wall clock that disagrees with the trusted clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockJump {
    /// The wall clock is this far ahead of the trusted clock.
    Forward {
        /// By how much, ms.
        by_ms: i64,
    },
    /// The wall clock is this far behind the trusted clock.
    Back {
        /// By how much, ms.
        by_ms: i64,
    },
}

fn span(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        s if s >= 2 * 86_400 => format!("{} days", s / 86_400),
        s if s >= 2 * 3600 => format!("{} hours", s / 3600),
        s if s >= 120 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

impl fmt::Display for ClockJump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClockJump::Forward { by_ms } => write!(
                f,
                "the wall clock is {} ahead of the appliance's trusted clock (set forward, or the appliance was off); retention locks expire by the trusted clock, so none expires early; a security officer accepts the new time with `clock accept`",
                span(*by_ms)
            ),
            ClockJump::Back { by_ms } => write!(
                f,
                "the wall clock was set back {} behind the appliance's trusted clock; the trusted clock keeps running, and retention locks expire by it",
                span(*by_ms)
            ),
        }
    }
}

/// This boot of the machine: the kernel's boot id and its boot-time clock
/// (which counts suspend and is set by nobody).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    /// `/proc/sys/kernel/random/boot_id`.
    pub id: String,
    /// `CLOCK_BOOTTIME`, ms.
    pub mono_ms: i64,
}

/// The running system's boot.
pub fn system_boot() -> Boot {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let mono_ms = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() * 1000 + t.tv_nsec() / 1_000_000)
        .unwrap_or(0);
    Boot { id, mono_ms }
}

/// One observation of the clocks: the new record, and the jump found.
/// Pure: `prev` is the last record (none: the first observation trusts the
/// wall clock).
pub fn observe(
    prev: Option<&ClockRecord>,
    wall_ms: i64,
    boot: &Boot,
) -> (ClockRecord, Option<ClockJump>) {
    let record = |trusted_ms| ClockRecord {
        trusted_ms,
        boot_id: boot.id.clone(),
        mono_ms: boot.mono_ms,
        wall_ms,
    };
    let Some(p) = prev else {
        return (record(wall_ms), None);
    };
    let same_boot = p.boot_id == boot.id && boot.mono_ms >= p.mono_ms;
    // Time known to have passed, and how far the wall clock may have moved.
    let (known, allowed) = if same_boot {
        let d = boot.mono_ms - p.mono_ms;
        (d, d)
    } else {
        (0, REBOOT_GRACE_MS)
    };
    let bound = p.trusted_ms.saturating_add(allowed);
    // Within a boot the trusted clock runs by the boot-time clock alone:
    // a wall clock a little ahead at every observation must not add up.
    // Across a reboot it takes the wall clock's time once, within the grace.
    let settled = if same_boot {
        p.trusted_ms.saturating_add(known)
    } else {
        p.trusted_ms.max(wall_ms.min(bound))
    };
    if wall_ms > bound.saturating_add(CLOCK_TOLERANCE_MS) {
        let trusted = p.trusted_ms.saturating_add(known);
        return (
            record(trusted),
            Some(ClockJump::Forward {
                by_ms: wall_ms - trusted,
            }),
        );
    }
    if wall_ms < p.trusted_ms.saturating_sub(CLOCK_TOLERANCE_MS) {
        let trusted = p.trusted_ms.saturating_add(known);
        return (
            record(trusted),
            Some(ClockJump::Back {
                by_ms: trusted - wall_ms,
            }),
        );
    }
    (record(settled), None)
}

/// What an observation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The trusted time: what locks expire by.
    pub trusted_ms: i64,
    /// The wall clock.
    pub wall_ms: i64,
    /// A jump, if the clocks disagree.
    pub jump: Option<ClockJump>,
}

impl Observation {
    /// As the API shows it.
    pub fn status(&self) -> ClockStatus {
        ClockStatus {
            wall: rfc3339_ms(self.wall_ms),
            trusted: rfc3339_ms(self.trusted_ms),
            ahead_ms: self.wall_ms - self.trusted_ms,
            jump: self.jump.map(|j| j.to_string()),
        }
    }
}

/// Observes the clocks and persists the new record.
pub fn trusted_now(catalog: &Catalog, wall_ms: i64, boot: &Boot) -> Result<Observation> {
    let prev = catalog.clock_record()?;
    let (rec, jump) = observe(prev.as_ref(), wall_ms, boot);
    catalog.set_clock_record(&rec)?;
    if let Some(j) = jump {
        tracing::warn!(jump = %j, "clock disagreement");
    }
    Ok(Observation {
        trusted_ms: rec.trusted_ms,
        wall_ms,
        jump,
    })
}

/// Accepts the wall clock as the trusted time (a security officer's
/// decision after a forward jump). The trusted clock never goes back: a
/// wall clock behind it is refused.
pub fn accept_wall_clock(catalog: &Catalog, wall_ms: i64, boot: &Boot) -> Result<Observation> {
    let prev = catalog.clock_record()?;
    if let Some(p) = &prev
        && wall_ms < p.trusted_ms
    {
        return Err(crate::Error::Invalid(format!(
            "the wall clock ({}) is behind the trusted clock ({}); the trusted clock never goes back — correct the wall clock instead",
            rfc3339_ms(wall_ms),
            rfc3339_ms(p.trusted_ms)
        )));
    }
    let rec = ClockRecord {
        trusted_ms: wall_ms,
        boot_id: boot.id.clone(),
        mono_ms: boot.mono_ms,
        wall_ms,
    };
    catalog.set_clock_record(&rec)?;
    Ok(Observation {
        trusted_ms: wall_ms,
        wall_ms,
        jump: None,
    })
}

/// The locks by policy that snapshots lack: every snapshot of an asset
/// whose retention has `lock_for` is locked from its start for that long.
/// With `write` they are set in the catalog. Returns them (snapshot, end).
pub fn locks_by_policy(
    catalog: &Catalog,
    policies: &std::collections::HashMap<String, Retention>,
    trusted_ms: i64,
    write: bool,
) -> Result<Vec<(SnapshotId, i64)>> {
    let mut out = Vec::new();
    for s in catalog.snapshots(None)? {
        let Some(lock_for) = policies.get(&s.asset).and_then(|r| r.lock_for) else {
            continue;
        };
        let secs = i64::try_from(lock_for.0).unwrap_or(i64::MAX);
        let until = s.started_ms.saturating_add(secs.saturating_mul(1000));
        if until <= trusted_ms || catalog.lock_of(&s.id)?.is_some() {
            continue;
        }
        if write {
            catalog.set_lock(
                &s.id,
                until,
                "policy",
                trusted_ms,
                &format!("the asset's retention locks each snapshot for {lock_for}"),
            )?;
        }
        out.push((s.id, until));
    }
    Ok(out)
}

/// Locks a snapshot just made, when its asset's retention has `lock_for`:
/// from the trusted time now (not the snapshot's wall-clock stamp, which a
/// clock set back makes old). Returns the lock's end.
pub fn lock_new_snapshot(
    catalog: &Catalog,
    policies: &std::collections::HashMap<String, Retention>,
    id: &SnapshotId,
    asset: &str,
    trusted_ms: i64,
) -> Result<Option<i64>> {
    let Some(lock_for) = policies.get(asset).and_then(|r| r.lock_for) else {
        return Ok(None);
    };
    if catalog.lock_of(id)?.is_some() {
        return Ok(None);
    }
    let secs = i64::try_from(lock_for.0).unwrap_or(i64::MAX);
    let until = trusted_ms.saturating_add(secs.saturating_mul(1000));
    catalog.set_lock(
        id,
        until,
        "policy",
        trusted_ms,
        &format!("the asset's retention locks each snapshot for {lock_for}"),
    )?;
    Ok(Some(until))
}

/// Refuses to prune while the wall clock is behind the trusted clock:
/// snapshots stamped by a clock set back look older than they are, and
/// `keep_within` or a period rule could remove them.
pub fn check_prune_clock(o: &Observation) -> Result<()> {
    match o.jump {
        Some(j @ ClockJump::Back { .. }) => Err(crate::Error::Invalid(format!(
            "prune waits until the clock is corrected: {j}"
        ))),
        _ => Ok(()),
    }
}

/// What [`apply_immutability`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImmutabilityReport {
    /// Protected snapshots.
    pub snapshots: u64,
    /// Objects that carry the immutable attribute now.
    pub objects: u64,
    /// Objects given it by this run.
    pub locked: u64,
    /// Objects released by this run (their locks ended, holds released).
    pub released: u64,
    /// What did not work (a backend without the attribute).
    pub warnings: Vec<String>,
}

/// Brings the immutable attribute in line with the protections at
/// `trusted_ms`: on for every object a protected snapshot needs, off for
/// the rest that had it. The caller holds the store lock.
pub fn apply_immutability(
    repo: &Repo,
    catalog: &Catalog,
    trusted_ms: i64,
    progress: &Progress,
) -> Result<ImmutabilityReport> {
    let prot = catalog.protections(trusted_ms)?;
    let current = catalog.immutable_objects()?;
    if prot.locks.is_empty()
        && prot.held_snapshots.is_empty()
        && prot.held_assets.is_empty()
        && current.is_empty()
    {
        // Nothing protected and nothing carrying the attribute: the common
        // case costs one catalog read, not a pass over the index.
        return Ok(ImmutabilityReport::default());
    }
    let stored: HashSet<SnapshotId> = repo.snapshot_ids()?.into_iter().collect();
    let protected: Vec<SnapshotId> = catalog
        .snapshots(None)?
        .into_iter()
        .filter(|s| stored.contains(&s.id) && prot.protects(&s.id, &s.asset))
        .map(|s| s.id)
        .collect();
    let live = crate::gc::mark_snapshots(repo, &protected, progress)?;
    let mut containers: HashSet<ContainerId> = HashSet::new();
    repo.for_each_chunk(|c, id, _| {
        if live.contains(id) {
            containers.insert(*c);
        }
    })?;
    let mut desired: HashSet<String> = protected.iter().map(record_key).collect();
    for c in &containers {
        desired.insert(data_key(c));
        desired.insert(index_key(c));
        // The data key its data is sealed under, too.
        let g = repo.container_generation(c)?;
        if g >= 2 && g != u32::MAX {
            desired.insert(coffer_store::data_key_object(g));
        }
    }
    // A container whose table cannot be read is never released: what
    // needs it is unknown.
    let unreadable = repo.bad_containers()?;
    let unknown = |key: &str| {
        key.rsplit('/')
            .next()
            .and_then(|id| id.parse::<ContainerId>().ok())
            .is_some_and(|c| unreadable.contains_key(&c))
    };
    let mut report = ImmutabilityReport {
        snapshots: protected.len() as u64,
        ..Default::default()
    };
    let mut add: Vec<&String> = desired.difference(&current).collect();
    add.sort();
    for key in add {
        match repo.blobs().retention_lock(key, true) {
            Ok(()) => {
                catalog.set_immutable_object(key, true, trusted_ms)?;
                report.locked += 1;
            }
            Err(coffer_store::Error::NotFound { .. }) => {}
            Err(e) => {
                report.warnings.push(format!(
                    "the store cannot make '{key}' immutable ({e}); protected snapshots are guarded by Coffer's own checks only"
                ));
                break;
            }
        }
    }
    let mut drop: Vec<&String> = current
        .difference(&desired)
        .filter(|k| !unknown(k))
        .collect();
    drop.sort();
    for key in drop {
        match repo.blobs().retention_lock(key, false) {
            Ok(()) | Err(coffer_store::Error::NotFound { .. }) => {
                catalog.set_immutable_object(key, false, trusted_ms)?;
                report.released += 1;
            }
            Err(e) => report
                .warnings
                .push(format!("could not release the lock on '{key}': {e}")),
        }
    }
    report.objects = catalog.immutable_objects()?.len() as u64;
    Ok(report)
}

/// The containers that carry the immutable attribute, as the catalog
/// records (compaction leaves them alone).
pub fn immutable_containers(catalog: &Catalog) -> Result<HashSet<ContainerId>> {
    Ok(catalog
        .immutable_objects()?
        .iter()
        .filter_map(|k| k.strip_prefix("index/")?.parse().ok())
        .collect())
}

#[cfg(test)]
mod tests;
