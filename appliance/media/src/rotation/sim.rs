//! The procedure followed exactly: what the day's plan does to the
//! inventory. The service records the same steps from the operator's
//! commands; this is how a pool is sized and how years of rotation are
//! tested.

use super::plan::{Plan, SetChoice, plan};
use super::{Cart, Content, Inventory, MediaKind, MediaSet, Place, PoolPolicy};

/// What applying a day did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// The set tonight's job wrote.
    pub set: Option<String>,
    /// Cartridges it wrote, in order.
    pub wrote_on: Vec<String>,
    /// It ran out of cartridges and waited.
    pub waited: bool,
    /// Broken invariants (a cartridge holding a set still under retention
    /// was about to be written): the write did not happen.
    pub violations: Vec<String>,
}

fn cart_mut<'a>(inv: &'a mut Inventory, barcode: &str) -> Option<&'a mut Cart> {
    inv.carts.iter_mut().find(|c| c.barcode == barcode)
}

/// Applies day `plan.day`'s procedure to `inv`, as an operator following it
/// exactly: receipts and shipments of the courier and the vault, expiry,
/// loading, tonight's job (which fills `fills` cartridges of its set
/// completely before its last one), exports, pickups, recalls, cleaning.
pub fn apply(pool: &PoolPolicy, inv: &mut Inventory, plan: &Plan, fills: u32) -> Outcome {
    let d = plan.day;
    let mut out = Outcome::default();
    // Arrivals, and the vault ships yesterday's recall requests.
    for c in &mut inv.carts {
        c.place = match c.place {
            Place::ToVault { arrives } if arrives <= d => Place::Vault,
            Place::ToSite { arrives } if arrives <= d => Place::Onsite,
            Place::RecallRequested { .. } => Place::ToSite {
                arrives: d.plus(pool.courier_days as i32),
            },
            other => other,
        };
    }
    for id in &plan.expire {
        if let Some(s) = inv.sets.iter_mut().find(|s| &s.id == id) {
            s.expired = true;
        }
        for c in &mut inv.carts {
            if c.set.as_deref() == Some(id.as_str())
                && matches!(c.content, Content::Full | Content::Writing)
            {
                c.content = Content::Expired;
            }
        }
    }
    for id in &plan.close {
        close(inv, id);
    }
    for b in &plan.load {
        if let Some(c) = cart_mut(inv, b)
            && matches!(c.place, Place::Onsite | Place::ExportSlot)
        {
            c.place = Place::Library;
        }
    }
    if let Some(job) = &plan.job {
        write_job(pool, inv, d, job, fills, &mut out);
    }
    for e in &plan.export {
        if let Some(c) = cart_mut(inv, &e.barcode) {
            c.place = Place::ExportSlot;
        }
    }
    for b in &plan.send {
        if let Some(c) = cart_mut(inv, b)
            && c.place == Place::ExportSlot
        {
            c.place = Place::ToVault {
                arrives: d.plus(pool.courier_days as i32),
            };
        }
    }
    for r in &plan.recall {
        if let Some(c) = cart_mut(inv, &r.barcode)
            && c.place == Place::Vault
        {
            c.place = Place::RecallRequested {
                needed_by: r.needed_by,
            };
        }
    }
    if plan.cleaning_due {
        inv.last_cleaning = Some(d);
    }
    out
}

/// Tonight's job `job` on day `d`: its set (new or continued) written onto
/// its cartridges, `fills` of them filled before the last.
pub(crate) fn write_job(
    pool: &PoolPolicy,
    inv: &mut Inventory,
    d: super::Day,
    job: &super::JobPlan,
    fills: u32,
    out: &mut Outcome,
) {
    let id = match &job.set {
        SetChoice::Continue { id } => {
            if let Some(s) = inv.sets.iter_mut().find(|s| &s.id == id) {
                s.last = d;
                s.expires = s.expires.max(job.expires);
            }
            id.clone()
        }
        SetChoice::New => {
            let id = format!("{}-{d}-{}", pool.name, job.tier);
            inv.sets.push(MediaSet::begun(
                id.clone(),
                job.tier,
                job.level,
                d,
                job.expires,
                job.base.clone(),
            ));
            id
        }
    };
    let mut queue = job.cartridges.iter();
    let mut current: Option<String> = inv
        .set(&id)
        .and_then(|s| s.cartridges.last().cloned())
        .filter(|b| {
            inv.cart(b)
                .is_some_and(|c| c.content == Content::Writing && c.place == Place::Library)
        });
    for k in 0..=fills {
        if current.is_none() {
            current = loop {
                let Some(b) = queue.next() else { break None };
                if Some(b) == inv.set(&id).and_then(|s| s.cartridges.last()) {
                    continue;
                }
                match take(inv, b, &id) {
                    Ok(()) => break Some(b.clone()),
                    Err(v) => out.violations.push(v),
                }
            };
        }
        let Some(b) = current.clone() else {
            out.waited = true;
            break;
        };
        if !out.wrote_on.contains(&b) {
            out.wrote_on.push(b.clone());
        }
        if k < fills {
            if let Some(c) = cart_mut(inv, &b) {
                c.content = Content::Full;
            }
            current = None;
        }
    }
    if out.wrote_on.is_empty() {
        // Nothing was written: the job waits, and no set began.
        if job.set == SetChoice::New {
            inv.sets.retain(|s| s.id != id);
        }
    } else {
        // A continuous set that filled its cartridges tonight is done.
        let filled = matches!(pool.scheme, super::Scheme::Continuous(_))
            && inv.set(&id).is_some_and(|s| {
                s.cartridges.len() >= pool.cartridges_per_set as usize
                    && s.cartridges
                        .iter()
                        .any(|b| inv.cart(b).is_some_and(|c| c.content == Content::Full))
            });
        if job.close_after || filled {
            close(inv, &id);
        }
        out.set = Some(id);
    }
}

fn close(inv: &mut Inventory, id: &str) {
    if let Some(s) = inv.sets.iter_mut().find(|s| s.id == id) {
        s.closed = true;
    }
    for c in &mut inv.carts {
        if c.set.as_deref() == Some(id) && c.content == Content::Writing {
            c.content = Content::Full;
        }
    }
}

/// Puts cartridge `b` into set `id` for writing, refusing one whose set is
/// still kept (the invariant the whole rotation exists for).
fn take(inv: &mut Inventory, b: &str, id: &str) -> Result<(), String> {
    let kept: Option<String> = inv.cart(b).and_then(|c| {
        let old = c.set.as_deref()?;
        let s = inv.set(old)?;
        (!s.expired && old != id).then(|| old.to_string())
    });
    if let Some(old) = kept {
        return Err(format!(
            "{b} holds set {old}, still under retention: not overwritten"
        ));
    }
    let Some(c) = cart_mut(inv, b) else {
        return Err(format!("{b} is not in the inventory"));
    };
    if c.place != Place::Library {
        return Err(format!("{b} is not in the library"));
    }
    if !matches!(c.content, Content::Scratch | Content::Expired) {
        return Err(format!("{b} is {:?}, not scratch", c.content));
    }
    c.content = Content::Writing;
    c.set = Some(id.to_string());
    if let Some(s) = inv.sets.iter_mut().find(|s| s.id == id) {
        s.cartridges.push(b.to_string());
    }
    Ok(())
}

/// How many cartridges `pool`'s scheme needs: the procedure followed for
/// `days` days from the pool's start (long enough for every retention to
/// come round), a new scratch cartridge added whenever a night would
/// otherwise wait. Each job fills `cartridges_per_set - 1` cartridges
/// before its last.
pub fn required_cartridges(pool: &PoolPolicy, days: u32) -> u32 {
    let mut inv = Inventory::default();
    let mut added = 0u32;
    for k in 0..days as i32 {
        let d = pool.start.plus(k);
        let mut p = plan(d, pool, &inv, None);
        if p.scratch_short > 0 {
            for _ in 0..p.scratch_short {
                added += 1;
                inv.carts.push(Cart {
                    barcode: format!("S{added:05}L9"),
                    kind: if pool.worm {
                        MediaKind::Worm { generation: 9 }
                    } else {
                        MediaKind::Data { generation: 9 }
                    },
                    content: Content::Scratch,
                    place: Place::Library,
                    set: None,
                });
            }
            p = plan(d, pool, &inv, None);
        }
        let fills = p.job.as_ref().map_or(0, |j| match j.set {
            SetChoice::New => pool.cartridges_per_set.saturating_sub(1),
            SetChoice::Continue { .. } => 0,
        });
        apply(pool, &mut inv, &p, fills);
    }
    added
}

/// Days to simulate to size `pool`: its longest retention, and some.
pub fn sizing_days(pool: &PoolPolicy) -> u32 {
    use super::Scheme;
    let longest = match &pool.scheme {
        Scheme::Gfs(g) => (7 * g.keep_daily_weeks)
            .max(7 * g.keep_weekly_weeks)
            .max(31 * g.keep_monthly_months)
            .max(366 * g.keep_yearly_years),
        Scheme::Hanoi(h) => 7 << h.sets,
        Scheme::Continuous(c) => c.keep_days,
    };
    longest + 120
}
