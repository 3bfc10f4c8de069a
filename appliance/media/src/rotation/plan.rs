//! The day's procedure, planned from `(day, pool, inventory)` alone.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{
    Allocation, Cart, Content, Day, Inventory, Level, MediaKind, MediaSet, Place, PoolPolicy,
    Scheme, Tier, Weekday, matches_rule,
};

/// Which set tonight's job writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "set")]
pub enum SetChoice {
    /// Continue this open set.
    Continue {
        /// Set id.
        id: String,
    },
    /// Start a new set.
    New,
}

/// Tonight's tape job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobPlan {
    /// Tier of the set it writes.
    pub tier: Tier,
    /// Backup level.
    pub level: Level,
    /// The set.
    pub set: SetChoice,
    /// The set is kept at least until then (its own retention after this
    /// job).
    pub expires: Day,
    /// The set the new set's backups build on (restore chain).
    pub base: Option<String>,
    /// Cartridges to write, in order: the open set's current cartridge
    /// (if any), then scratch ones. They must be in the library tonight.
    pub cartridges: Vec<String>,
    /// The set is closed after the job.
    pub close_after: bool,
}

/// A cartridge to move to an export slot for the vault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    /// Barcode.
    pub barcode: String,
    /// Its set.
    pub set: String,
    /// Where it goes.
    pub vault: String,
}

/// A cartridge to ask back from the vault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recall {
    /// Barcode.
    pub barcode: String,
    /// The vault holding it.
    pub vault: String,
    /// The day it is needed onsite (as scratch).
    pub needed_by: Day,
}

/// The day's procedure for one pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The day.
    pub day: Day,
    /// The pool.
    pub pool: String,
    /// Sets whose retention (restore chain included) ended: their
    /// cartridges become recyclable (WORM ones are disposed of instead).
    pub expire: Vec<String>,
    /// Open sets tonight's job does not continue: closed.
    pub close: Vec<String>,
    /// Tonight's job.
    pub job: Option<JobPlan>,
    /// Cartridges onsite to put into the library for tonight.
    pub load: Vec<String>,
    /// Scratch cartridges tonight's job needs that are not onsite: it will
    /// wait for them and ask.
    pub scratch_short: u32,
    /// Cartridges to move to the export slots for the vault.
    pub export: Vec<Export>,
    /// Cartridges to hand to the courier today (a pickup day).
    pub send: Vec<String>,
    /// Cartridges to ask back from the vault.
    pub recall: Vec<Recall>,
    /// Sent to the vault and due there by today: to confirm received.
    pub due_at_vault: Vec<String>,
    /// Coming back and due onsite by today: to receive and load.
    pub due_onsite: Vec<String>,
    /// A drive cleaning is due.
    pub cleaning_due: bool,
    /// What is wrong with the pool or the procedure.
    pub warnings: Vec<String>,
}

/// Until when each set is kept: its own retention, or longer while a kept
/// set builds on it (restore chain). Expired sets are left out.
pub fn retained_until(inv: &Inventory) -> HashMap<String, Day> {
    let mut sets: Vec<&MediaSet> = inv.sets.iter().filter(|s| !s.expired).collect();
    // Newest first: a set's dependents are newer than it.
    sets.sort_by(|a, b| b.first.cmp(&a.first).then(b.id.cmp(&a.id)));
    let mut out: HashMap<String, Day> = HashMap::new();
    for s in sets {
        let mine = out.get(&s.id).copied().unwrap_or(s.expires).max(s.expires);
        out.insert(s.id.clone(), mine);
        if let Some(b) = &s.base {
            let e = out.entry(b.clone()).or_insert(mine);
            *e = (*e).max(mine);
        }
    }
    out
}

/// What the scheme does on night `d`, given the open set of its stream.
pub(crate) struct Tonight {
    pub tier: Tier,
    pub level: Level,
    pub new: bool,
    pub close_after: bool,
    pub expires: Day,
}

fn is_backup_day(pool: &PoolPolicy, d: Day) -> bool {
    pool.scheme.backup_days().contains(&d.weekday())
}

fn next_backup_day(pool: &PoolPolicy, d: Day) -> Day {
    (1..=7)
        .map(|k| d.plus(k))
        .find(|e| is_backup_day(pool, *e))
        .unwrap_or(d.plus(7))
}

/// How many backup days `[pool.start, d]` holds (in O(1): whole weeks,
/// then the rest).
fn backup_days_through(pool: &PoolPolicy, d: Day) -> u32 {
    if d < pool.start {
        return 0;
    }
    let span = d.0 - pool.start.0 + 1;
    let per_week = Weekday::ALL
        .iter()
        .filter(|w| pool.scheme.backup_days().contains(w))
        .count() as i32;
    let weeks = span / 7;
    let rest = (0..span % 7)
        .filter(|k| is_backup_day(pool, pool.start.plus(weeks * 7 + k)))
        .count() as i32;
    (weeks * per_week + rest) as u32
}

/// The `n`-th backup day from the start (`n` from 1).
fn nth_backup_day(pool: &PoolPolicy, n: u32) -> Day {
    let per_week = Weekday::ALL
        .iter()
        .filter(|w| pool.scheme.backup_days().contains(w))
        .count()
        .max(1) as u32;
    let weeks = (n - 1) / per_week;
    let mut left = n - weeks * per_week;
    let mut d = pool.start.plus(7 * weeks as i32);
    loop {
        if is_backup_day(pool, d) {
            left -= 1;
            if left == 0 {
                return d;
            }
        }
        d = d.plus(1);
    }
}

/// The Tower of Hanoi set of the `n`-th backup day.
fn hanoi_set_of(sets: u8, n: u32) -> u8 {
    (n.max(1).trailing_zeros() as u8).min(sets - 1)
}

/// The Hanoi set of backup day `d` (counting backup days from the start).
fn hanoi_set(pool: &PoolPolicy, sets: u8, d: Day) -> u8 {
    hanoi_set_of(sets, backup_days_through(pool, d))
}

/// The backup day after `d` on which set `s` has its next turn.
fn hanoi_next_turn(pool: &PoolPolicy, sets: u8, d: Day) -> Day {
    let n = backup_days_through(pool, d).max(1);
    let s = hanoi_set_of(sets, n);
    // n has s trailing zeros (or at least sets - 1): the next number with
    // exactly as many is 2^(s+1) on; the last set comes every 2^(sets-1).
    let step = if s + 1 < sets { 2u32 << s } else { 1u32 << s };
    nth_backup_day(pool, n + step)
}

/// `filled`: the open set has filled the cartridges it was given (a
/// continuous set then makes way for a new one).
pub(crate) fn tonight(
    pool: &PoolPolicy,
    d: Day,
    open: Option<&MediaSet>,
    filled: bool,
) -> Option<Tonight> {
    if d < pool.start || !is_backup_day(pool, d) {
        return None;
    }
    let starts = |open: Option<&MediaSet>, d: Day| match pool.allocation {
        Allocation::Continue => open.is_none() || (filled && pool_is_continuous(pool)),
        Allocation::AlwaysNew => true,
        Allocation::Every { days } => open.is_none_or(|o| d.0 - o.first.0 >= days as i32),
    };
    match &pool.scheme {
        Scheme::Gfs(g) => {
            if d.weekday() == g.full_day {
                let monthly = d.last_of_its_weekday_in_month();
                let yearly = monthly && g.keep_yearly_years > 0 && d.to_ymd().1 == g.yearly_month;
                let (tier, expires) = if yearly {
                    (Tier::Yearly, d.plus_months(12 * g.keep_yearly_years as i32))
                } else if monthly {
                    (Tier::Monthly, d.plus_months(g.keep_monthly_months as i32))
                } else {
                    (Tier::Weekly, d.plus(7 * g.keep_weekly_weeks as i32))
                };
                return Some(Tonight {
                    tier,
                    level: Level::Full,
                    new: true,
                    close_after: true,
                    expires,
                });
            }
            let open = open.filter(|o| o.tier == Tier::Daily);
            let new = starts(open, d);
            let next = next_backup_day(pool, d);
            let first = if new { d } else { open.map_or(d, |o| o.first) };
            let close_after = match pool.allocation {
                Allocation::AlwaysNew => true,
                Allocation::Continue => next.weekday() == g.full_day,
                Allocation::Every { days } => {
                    next.weekday() == g.full_day || next.0 - first.0 >= days as i32
                }
            };
            let own = d.plus(7 * g.keep_daily_weeks as i32);
            Some(Tonight {
                tier: Tier::Daily,
                level: g.daily_level,
                new,
                close_after,
                expires: open.filter(|_| !new).map_or(own, |o| o.expires.max(own)),
            })
        }
        Scheme::Hanoi(h) => {
            let s = hanoi_set(pool, h.sets, d);
            // Kept until the set's next turn.
            let e = hanoi_next_turn(pool, h.sets, d);
            Some(Tonight {
                tier: Tier::Hanoi(s),
                level: Level::Full,
                new: true,
                close_after: true,
                expires: e,
            })
        }
        Scheme::Continuous(c) => {
            let open = open.filter(|o| o.tier == Tier::Continuous);
            let new = starts(open, d);
            let next = next_backup_day(pool, d);
            let first = if new { d } else { open.map_or(d, |o| o.first) };
            let close_after = match pool.allocation {
                Allocation::AlwaysNew => true,
                // Closed when its cartridges are full (by the writer).
                Allocation::Continue => false,
                Allocation::Every { days } => next.0 - first.0 >= days as i32,
            };
            Some(Tonight {
                tier: Tier::Continuous,
                level: if new { Level::Full } else { Level::Incremental },
                new,
                close_after,
                expires: d.plus(c.keep_days as i32),
            })
        }
    }
}

fn pool_is_continuous(pool: &PoolPolicy) -> bool {
    matches!(pool.scheme, Scheme::Continuous(_))
}

/// Whether `c` may carry this pool's data at all (and why not).
pub(crate) fn refusal(pool: &PoolPolicy, c: &Cart) -> Option<String> {
    match c.kind {
        MediaKind::Cleaning => Some(format!("{} is a cleaning cartridge", c.barcode)),
        MediaKind::Worm { .. } if !pool.worm => Some(format!(
            "{} is a WORM cartridge in pool {}, whose cartridges are recycled: refused (move it to a WORM pool)",
            c.barcode, pool.name
        )),
        MediaKind::Data { .. } if pool.worm => Some(format!(
            "{} is rewritable, and pool {} writes WORM cartridges only: refused",
            c.barcode, pool.name
        )),
        _ if !matches_rule(&pool.barcode_rule, &c.barcode) => Some(format!(
            "{} does not follow pool {}'s barcode rule '{}': refused",
            c.barcode, pool.name, pool.barcode_rule
        )),
        _ => None,
    }
}

/// Whether cartridge `c` can take new data on day `d` (`expiring`: sets
/// that expire today).
fn writable(pool: &PoolPolicy, c: &Cart, expiring: &HashSet<&str>) -> bool {
    if refusal(pool, c).is_some() {
        return false;
    }
    match c.content {
        Content::Scratch => true,
        Content::Expired => !c.kind.is_worm(),
        Content::Full | Content::Writing => {
            !c.kind.is_worm() && c.set.as_deref().is_some_and(|s| expiring.contains(s))
        }
        _ => false,
    }
}

/// The day's procedure for `pool` on day `d`. `required` is the number of
/// cartridges the pool's scheme needs ([`super::required_cartridges`]),
/// for the sizing warning.
pub fn plan(d: Day, pool: &PoolPolicy, inv: &Inventory, required: Option<u32>) -> Plan {
    let mut p = Plan {
        day: d,
        pool: pool.name.clone(),
        ..Plan::default()
    };
    if let Err(e) = pool.validate() {
        p.warnings.push(e);
        return p;
    }
    let retained = retained_until(inv);

    // 1. Expiry: closed sets whose retention and restore chain ended.
    let mut sets: Vec<&MediaSet> = inv.sets.iter().collect();
    sets.sort_by(|a, b| a.first.cmp(&b.first).then(a.id.cmp(&b.id)));
    for s in &sets {
        if !s.expired && s.closed && retained.get(&s.id).is_some_and(|r| *r <= d) {
            p.expire.push(s.id.clone());
        }
    }
    let expire_ids = p.expire.clone();
    let expiring: HashSet<&str> = expire_ids.iter().map(String::as_str).collect();

    // 2. Tonight's job.
    let open: Vec<&MediaSet> = sets.iter().filter(|s| !s.closed).copied().collect();
    let stream_open = |tier: Tier| {
        open.iter()
            .filter(|s| match tier {
                Tier::Daily => s.tier == Tier::Daily,
                Tier::Continuous => s.tier == Tier::Continuous,
                _ => false,
            })
            .max_by_key(|s| s.first)
            .copied()
    };
    let any_open = open
        .iter()
        .filter(|s| matches!(s.tier, Tier::Daily | Tier::Continuous))
        .max_by_key(|s| s.first)
        .copied();
    let mut taken: HashSet<String> = HashSet::new();
    // A continuous set has filled its cartridges once it holds its share
    // and one of them is full.
    let filled = any_open.is_some_and(|s| {
        s.cartridges.len() >= pool.cartridges_per_set as usize
            && s.cartridges
                .iter()
                .any(|b| inv.cart(b).is_some_and(|c| c.content == Content::Full))
    });
    if let Some(t) = tonight(pool, d, any_open, filled) {
        let continuing = if t.new { None } else { stream_open(t.tier) };
        for s in &open {
            if continuing.is_none_or(|c| c.id != s.id) {
                p.close.push(s.id.clone());
            }
        }
        let base = match (&continuing, t.level) {
            (Some(c), _) => c.base.clone(),
            (None, Level::Full) => None,
            (None, Level::Differential) => sets
                .iter()
                .rev()
                .find(|s| s.level == Level::Full && !s.expired && !expiring.contains(s.id.as_str()))
                .map(|s| s.id.clone()),
            (None, Level::Incremental) => sets
                .iter()
                .rev()
                .find(|s| !s.expired && !expiring.contains(s.id.as_str()))
                .map(|s| s.id.clone()),
        };
        let mut carts = Vec::new();
        let mut need = pool.cartridges_per_set;
        if let Some(c) = continuing {
            if let Some(cur) = c
                .cartridges
                .last()
                .and_then(|b| inv.cart(b))
                .filter(|k| k.content == Content::Writing)
            {
                match cur.place {
                    Place::Library => {}
                    Place::Onsite => p.load.push(cur.barcode.clone()),
                    other => p.warnings.push(format!(
                        "set {}'s cartridge {} is being written but is not onsite ({other:?}): tonight's job starts a new cartridge",
                        c.id, cur.barcode
                    )),
                }
                if cur.place == Place::Library || cur.place == Place::Onsite {
                    carts.push(cur.barcode.clone());
                    taken.insert(cur.barcode.clone());
                    need = 0;
                } else {
                    need = 1;
                }
            } else {
                need = 1;
            }
        }
        // Scratch: recycled expired cartridges first, in the library, then
        // onsite (to load); oldest barcodes first.
        let mut pool_carts: Vec<&Cart> = inv
            .carts
            .iter()
            .filter(|c| writable(pool, c, &expiring) && !taken.contains(&c.barcode))
            .collect();
        // Cartridges due back today are received today: they count.
        let here = |c: &Cart| match c.place {
            Place::Library => Some(0),
            Place::Onsite => Some(1),
            Place::ToSite { arrives } if arrives <= d => Some(2),
            _ => None,
        };
        pool_carts.retain(|c| here(c).is_some());
        pool_carts.sort_by_key(|c| {
            (
                here(c),
                u8::from(c.content == Content::Scratch),
                c.barcode.clone(),
            )
        });
        let mut found = 0;
        for c in pool_carts {
            if found >= need {
                break;
            }
            if c.place != Place::Library {
                p.load.push(c.barcode.clone());
            }
            carts.push(c.barcode.clone());
            taken.insert(c.barcode.clone());
            found += 1;
        }
        p.scratch_short = need.saturating_sub(found);
        // One more, in case the job fills a cartridge.
        if let Some(c) = inv
            .carts
            .iter()
            .filter(|c| {
                here(c).is_some() && writable(pool, c, &expiring) && !taken.contains(&c.barcode)
            })
            .min_by_key(|c| {
                (
                    here(c),
                    u8::from(c.content == Content::Scratch),
                    c.barcode.clone(),
                )
            })
        {
            if c.place != Place::Library {
                p.load.push(c.barcode.clone());
            }
            carts.push(c.barcode.clone());
            taken.insert(c.barcode.clone());
        }
        if p.scratch_short > 0 {
            p.warnings.push(format!(
                "tonight's {} job needs {} more scratch cartridge(s) than are onsite: it will wait for them and ask",
                t.tier, p.scratch_short
            ));
        }
        p.job = Some(JobPlan {
            tier: t.tier,
            level: t.level,
            set: continuing.map_or(SetChoice::New, |c| SetChoice::Continue { id: c.id.clone() }),
            expires: t.expires,
            base,
            cartridges: carts,
            close_after: t.close_after,
        });
    }

    // 3. Vaulting: closed sets that go offsite leave the library, unless
    // they would be due back (for reuse) before a recall could return
    // them: those stay (a recalled set is not sent out again).
    if let Some(vault) = &pool.vault {
        let back_by = d.plus(recall_horizon(pool));
        // The newest full always goes, whatever its retention.
        let newest_full = sets
            .iter()
            .filter(|s| s.level == Level::Full && s.closed && !s.expired)
            .max_by_key(|s| (s.last, s.id.clone()))
            .map(|s| s.id.clone());
        for s in &sets {
            let offsite = s.tier != Tier::Daily || pool.offsite_dailies;
            let due_back = retained.get(&s.id).is_none_or(|r| *r <= back_by)
                && newest_full.as_deref() != Some(s.id.as_str());
            if !s.closed || s.expired || !offsite || expiring.contains(s.id.as_str()) || due_back {
                continue;
            }
            for b in &s.cartridges {
                if let Some(c) = inv.cart(b)
                    && c.set.as_deref() == Some(s.id.as_str())
                    && matches!(c.place, Place::Library | Place::Onsite)
                    && matches!(c.content, Content::Full | Content::Writing)
                {
                    p.export.push(Export {
                        barcode: b.clone(),
                        set: s.id.clone(),
                        vault: vault.clone(),
                    });
                }
            }
        }
        // Waiting in the export slots: sent at the courier's call, unless
        // the set expired meanwhile (then back into the library as scratch).
        let mut waiting = Vec::new();
        for c in inv.carts.iter().filter(|c| c.place == Place::ExportSlot) {
            let gone = c.content == Content::Expired
                || c.set.as_deref().is_none_or(|s| expiring.contains(s));
            if gone {
                p.load.push(c.barcode.clone());
            } else {
                waiting.push(c.barcode.clone());
            }
        }
        if pool.pickup_days.contains(&d.weekday()) {
            p.send = waiting
                .into_iter()
                .chain(p.export.iter().map(|e| e.barcode.clone()))
                .collect();
        }
    }

    // 4. What is due, and what is late.
    for c in &inv.carts {
        match c.place {
            Place::ToVault { arrives } if arrives <= d => {
                p.due_at_vault.push(c.barcode.clone());
                if arrives.0 + 2 < d.0 {
                    p.warnings.push(format!(
                        "{} was due at the vault on {arrives} and its receipt is not recorded: ask the vault (`coffer media received {}`)",
                        c.barcode, c.barcode
                    ));
                }
            }
            Place::ToSite { arrives } if arrives <= d => {
                p.due_onsite.push(c.barcode.clone());
                if arrives.0 + 2 < d.0 {
                    p.warnings.push(format!(
                        "{} was due back onsite on {arrives} and has not arrived: chase the recall",
                        c.barcode
                    ));
                }
            }
            Place::RecallRequested { needed_by } if needed_by < d => {
                p.warnings.push(format!(
                    "the recall of {} (needed by {needed_by}) has not arrived: escalate to the vault",
                    c.barcode
                ));
            }
            _ => {}
        }
    }

    // 5. Recalls: scratch the coming nights need, that is not onsite.
    recall(d, pool, inv, &retained, &taken, &expiring, &mut p);

    // 6. Cleaning.
    if pool.clean_every_days > 0
        && inv
            .last_cleaning
            .is_none_or(|l| d.0 - l.0 >= pool.clean_every_days as i32)
    {
        p.cleaning_due = true;
        let cleaning = inv
            .carts
            .iter()
            .filter(|c| c.kind == MediaKind::Cleaning && c.place == Place::Library)
            .count();
        if cleaning == 0 {
            p.warnings
                .push("a drive cleaning is due and no cleaning cartridge is in the library".into());
        }
    }

    // 7. The pool itself.
    let mut usable = 0u32;
    for c in &inv.carts {
        if c.kind == MediaKind::Cleaning
            || matches!(c.content, Content::Disposed | Content::Damaged)
            || (c.kind.is_worm() && c.content == Content::Expired)
        {
            continue;
        }
        match refusal(pool, c) {
            Some(why) => p.warnings.push(why),
            None => usable += 1,
        }
    }
    if let Some(req) = required
        && usable < req
    {
        p.warnings.push(format!(
            "pool {} has {usable} usable cartridge(s); its scheme needs {req}: a set still under retention would have to be overwritten, so jobs will wait instead — add {} cartridge(s)",
            pool.name,
            req - usable
        ));
    }
    p
}

/// How far ahead recalls are planned: a recall asked today ships tomorrow
/// and takes the courier's days, and the courier may not call for a while.
pub(crate) fn recall_horizon(pool: &PoolPolicy) -> i32 {
    1 + pool.courier_days as i32 + pool.pickup_wait() + 2
}

/// Plans the recalls: walks the coming nights (as far as a recall asked
/// today can reach), counting the scratch cartridges new sets need against
/// those onsite or due back by then, and asks for vaulted cartridges whose
/// sets will have expired by the night they are needed.
fn recall(
    d: Day,
    pool: &PoolPolicy,
    inv: &Inventory,
    retained: &HashMap<String, Day>,
    taken: &HashSet<String>,
    expiring: &HashSet<&str>,
    p: &mut Plan,
) {
    let Some(vault) = &pool.vault else {
        return;
    };
    // A recall asked today ships tomorrow and takes the courier's days.
    let lead = 1 + pool.courier_days as i32;
    let horizon = recall_horizon(pool);
    // When each cartridge can take data: now, or once its set expires, or
    // once it is back.
    let free_from = |c: &Cart| -> Option<Day> {
        if taken.contains(&c.barcode) || refusal(pool, c).is_some() || c.kind.is_worm() {
            return None;
        }
        let when = match c.content {
            Content::Scratch | Content::Expired => d,
            Content::Full | Content::Writing => {
                let set = c.set.as_deref()?;
                if expiring.contains(set) {
                    d
                } else {
                    *retained.get(set)?
                }
            }
            _ => return None,
        };
        let back = match c.place {
            Place::Library | Place::Onsite | Place::ExportSlot => d,
            Place::ToSite { arrives } => arrives,
            Place::RecallRequested { needed_by } => needed_by,
            Place::Vault | Place::ToVault { .. } => return None,
        };
        Some(when.max(back))
    };
    let mut supply: Vec<Day> = inv.carts.iter().filter_map(free_from).collect();
    supply.sort();
    // The newest full wholly in the vault stays there until a newer one
    // arrives: the site always has an offsite full.
    let newest_offsite = inv
        .sets
        .iter()
        .filter(|s| s.level == Level::Full && s.closed && !s.expired && inv.in_vault(s))
        .max_by_key(|s| (s.last, s.id.clone()))
        .map(|s| s.id.clone());
    // Vaulted cartridges that could come back, by when their sets expire.
    let mut vaulted: Vec<(Day, &Cart)> = inv
        .carts
        .iter()
        .filter(|c| c.place == Place::Vault && !c.kind.is_worm() && refusal(pool, c).is_none())
        .filter(|c| newest_offsite.is_none() || c.set != newest_offsite)
        .filter_map(|c| {
            let when = match c.content {
                Content::Scratch | Content::Expired => d,
                Content::Full | Content::Writing => *retained.get(c.set.as_deref()?)?,
                _ => return None,
            };
            Some((when, c))
        })
        .collect();
    vaulted.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.barcode.cmp(&b.1.barcode)));
    // The coming nights' new sets.
    let mut open = inv
        .sets
        .iter()
        .filter(|s| !s.closed && matches!(s.tier, Tier::Daily | Tier::Continuous))
        .max_by_key(|s| s.first)
        .cloned();
    if let Some(job) = &p.job {
        open = match (&job.set, job.close_after) {
            (_, true) => None,
            (SetChoice::Continue { .. }, false) => open,
            (SetChoice::New, false) => Some(MediaSet::begun(
                String::new(),
                job.tier,
                job.level,
                d,
                job.expires,
                None,
            )),
        };
    }
    let mut needed = 0usize;
    for k in 1..=horizon {
        let e = d.plus(k);
        let Some(t) = tonight(pool, e, open.as_ref(), false) else {
            continue;
        };
        if t.new {
            needed += pool.cartridges_per_set as usize;
            open = (!t.close_after)
                .then(|| MediaSet::begun(String::new(), t.tier, t.level, e, t.expires, None));
        } else if t.close_after {
            open = None;
        }
        let have = supply.iter().filter(|s| **s <= e).count();
        if have >= needed {
            continue;
        }
        let mut short = needed - have;
        while short > 0 {
            let Some(i) = vaulted.iter().position(|(when, _)| *when <= e) else {
                break;
            };
            let (_, c) = vaulted.remove(i);
            let needed_by = e;
            if d.plus(lead) > e {
                p.warnings.push(format!(
                    "{} is recalled for {e} but cannot be back before {}: order the courier sooner or add scratch cartridges",
                    c.barcode,
                    d.plus(lead)
                ));
            }
            p.recall.push(Recall {
                barcode: c.barcode.clone(),
                vault: vault.clone(),
                needed_by,
            });
            supply.push(needed_by.max(d.plus(lead)));
            short -= 1;
        }
        if short > 0 && !p.warnings.iter().any(|w| w.contains("will lack")) {
            p.warnings.push(format!(
                "pool {} will lack {short} scratch cartridge(s) on {e}: nothing onsite or in the vault will be free by then",
                pool.name
            ));
        }
    }
}
