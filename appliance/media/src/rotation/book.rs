//! The rotation as recorded: pools, cartridges and sets in the catalog, and
//! every operator step (export, hand to the courier, vault receipt, recall,
//! receipt onsite, import, the night's write, cleaning) checked against
//! the cartridge's state and written with its chain-of-custody lines (who,
//! when, from which state and place to which, on which transfer manifest)
//! in one catalog transaction.

use coffer_catalog::{Catalog, CustodyEvent, RotationWrite, TransferManifest};
use coffer_tape::MediaChanger;

use super::{
    Cart, Content, Day, Inventory, MediaKind, MediaSet, Place, Plan, PoolPolicy, classify,
    required_cartridges, sizing_days,
};
use crate::{Error, Result};

/// The operator-facing name of a cartridge's state and place (the names
/// the procedure uses: scratch, writing, full, export pending, in transit,
/// vaulted, recall requested, onsite, expired, disposed, damaged,
/// cleaning).
pub fn state_label(c: &Cart) -> String {
    let content = match c.content {
        Content::Scratch => "scratch",
        Content::Writing => "writing",
        Content::Full => "full",
        Content::Expired => "expired",
        Content::Disposed => "disposed",
        Content::Damaged => "damaged",
        Content::Cleaning => "cleaning",
    };
    let place = match c.place {
        Place::Library => "in the library".to_string(),
        Place::ExportSlot => "export pending".to_string(),
        Place::ToVault { arrives } => format!("in transit to the vault (due {arrives})"),
        Place::Vault => "vaulted".to_string(),
        Place::RecallRequested { needed_by } => format!("recall requested (needed {needed_by})"),
        Place::ToSite { arrives } => format!("in transit to the site (due {arrives})"),
        Place::Onsite => "onsite".to_string(),
    };
    format!("{content}, {place}")
}

fn invalid(msg: String) -> Error {
    Error::Invalid(msg)
}

fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Format(format!("encoding rotation state: {e}")))
}

/// The recorded rotation, and who is recording.
pub struct Book<'a> {
    cat: &'a Catalog,
    identity: String,
    now_ms: i64,
}

/// What one recorded step changed.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Recorded {
    /// The cartridges, with their new state.
    pub cartridges: Vec<(String, String)>,
    /// The transfer manifest the step created.
    pub manifest: Option<i64>,
}

impl<'a> Book<'a> {
    /// The rotation in `cat`, recorded by `identity` at `now_ms`.
    pub fn new(cat: &'a Catalog, identity: &str, now_ms: i64) -> Book<'a> {
        Book {
            cat,
            identity: identity.to_string(),
            now_ms,
        }
    }

    /// Adds or replaces a pool, after checking that its scheme can work.
    pub fn put_pool(&self, policy: &PoolPolicy) -> Result<()> {
        policy.validate().map_err(invalid)?;
        if policy.name.is_empty() {
            return Err(invalid("a media pool needs a name".into()));
        }
        self.cat
            .put_media_pool(&policy.name, &json(policy)?, self.now_ms)?;
        Ok(())
    }

    /// Who records.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// When, ms since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// Every pool.
    pub fn pools(&self) -> Result<Vec<PoolPolicy>> {
        self.cat
            .media_pools()?
            .into_iter()
            .map(|(name, j)| {
                serde_json::from_str(&j)
                    .map_err(|e| Error::Format(format!("media pool {name}: {e}")))
            })
            .collect()
    }

    /// Pool `name`.
    pub fn pool(&self, name: &str) -> Result<PoolPolicy> {
        let j = self.cat.media_pool(name)?.ok_or_else(|| {
            invalid(format!(
                "no media pool '{name}': create it with `coffer media pool add {name} …`"
            ))
        })?;
        serde_json::from_str(&j).map_err(|e| Error::Format(format!("media pool {name}: {e}")))
    }

    /// Pool `name`'s cartridges and sets.
    pub fn inventory(&self, pool: &str) -> Result<Inventory> {
        let rows = self.cat.rotation_rows(pool)?;
        let mut inv = Inventory {
            last_cleaning: rows.last_cleaning.map(Day),
            ..Inventory::default()
        };
        for (b, j) in rows.carts {
            inv.carts.push(
                serde_json::from_str(&j)
                    .map_err(|e| Error::Format(format!("cartridge {b}: {e}")))?,
            );
        }
        for (id, j) in rows.sets {
            inv.sets.push(
                serde_json::from_str(&j).map_err(|e| Error::Format(format!("set {id}: {e}")))?,
            );
        }
        Ok(inv)
    }

    /// The day's procedure for pool `name`, with the pool's sizing.
    pub fn today(&self, name: &str, day: Day) -> Result<Plan> {
        let required = self.required(name)?;
        self.today_sized(name, day, required)
    }

    /// How many cartridges pool `name`'s scheme needs.
    pub fn required(&self, name: &str) -> Result<u32> {
        let pool = self.pool(name)?;
        Ok(required_cartridges(&pool, sizing_days(&pool)))
    }

    /// The day's procedure, with the sizing already known.
    pub fn today_sized(&self, name: &str, day: Day, required: u32) -> Result<Plan> {
        let pool = self.pool(name)?;
        let inv = self.inventory(name)?;
        Ok(super::plan(day, &pool, &inv, Some(required)))
    }

    fn event(&self, day: Day, pool: &str, before: &Cart, after: &Cart, what: &str) -> CustodyEvent {
        CustodyEvent {
            at_ms: self.now_ms,
            day: day.to_string(),
            barcode: after.barcode.clone(),
            pool: pool.to_string(),
            event: what.to_string(),
            from_state: state_label(before),
            to_state: state_label(after),
            identity: self.identity.clone(),
            manifest: None,
        }
    }

    /// A new transfer manifest, filed by this book's operator now.
    fn manifest(
        &self,
        pool: &str,
        direction: &str,
        vault: String,
        barcodes: Vec<String>,
    ) -> TransferManifest {
        TransferManifest {
            id: 0,
            pool: pool.to_string(),
            direction: direction.into(),
            vault,
            created_ms: self.now_ms,
            created_by: self.identity.clone(),
            barcodes,
            sent_ms: None,
            received_ms: None,
        }
    }

    /// Writes changed cartridges (and sets) with a custody line each.
    fn commit(
        &self,
        day: Day,
        pool: &str,
        changes: Vec<(Cart, Cart, &str)>,
        sets: &[&MediaSet],
        extra: RotationWrite,
    ) -> Result<Recorded> {
        let mut w = extra;
        w.pool = pool.to_string();
        let mut out = Recorded::default();
        for (before, after, what) in &changes {
            w.custody.push(self.event(day, pool, before, after, what));
            w.carts.push((after.barcode.clone(), json(after)?));
            out.cartridges
                .push((after.barcode.clone(), state_label(after)));
        }
        for s in sets {
            w.sets.push((s.id.clone(), json(s)?));
        }
        out.manifest = self.cat.write_rotation(&w)?;
        Ok(out)
    }

    /// Registers cartridges in pool `name` (scratch, in the library or on
    /// the shelf). A barcode that is not LTO data, WORM or cleaning, one
    /// already in a pool, a WORM cartridge in a pool that recycles, or one
    /// against the pool's naming rule is refused, and nothing is recorded.
    pub fn add_cartridges(
        &self,
        name: &str,
        barcodes: &[String],
        in_library: bool,
        day: Day,
    ) -> Result<Recorded> {
        let pool = self.pool(name)?;
        let mut changes = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for b in barcodes {
            let kind = classify(b).map_err(|e| invalid(e.to_string()))?;
            if !seen.insert(b.as_str()) {
                return Err(invalid(format!("barcode {b} is given twice")));
            }
            if let Some(other) = self.cat.rotation_pool_of(b)? {
                return Err(invalid(format!(
                    "cartridge {b} is already in pool {other}: a barcode names one cartridge"
                )));
            }
            let cart = Cart {
                barcode: b.clone(),
                kind,
                content: if kind == MediaKind::Cleaning {
                    Content::Cleaning
                } else {
                    Content::Scratch
                },
                place: if in_library {
                    Place::Library
                } else {
                    Place::Onsite
                },
                set: None,
            };
            if kind != MediaKind::Cleaning
                && let Some(why) = super::plan::refusal(&pool, &cart)
            {
                return Err(invalid(why));
            }
            changes.push((cart.clone(), cart, "registered"));
        }
        self.commit(day, name, changes, &[], RotationWrite::default())
    }

    /// Finds each barcode in pool `pool`'s inventory `inv`, checks it with
    /// `ok` (an error message when the step does not apply), and changes it
    /// with `change`: (before, after) for each, or the first refusal.
    fn each(
        &self,
        inv: &Inventory,
        pool: &str,
        barcodes: &[String],
        ok: impl Fn(&Cart) -> Option<String>,
        mut change: impl FnMut(&mut Cart),
    ) -> Result<Vec<(Cart, Cart)>> {
        let mut out = Vec::new();
        for b in barcodes {
            let Some(c) = inv.cart(b) else {
                return Err(invalid(match self.cat.rotation_pool_of(b)? {
                    Some(other) => format!("cartridge {b} is in pool {other}, not {pool}"),
                    None => format!("cartridge {b} is not in any pool"),
                }));
            };
            if let Some(why) = ok(c) {
                return Err(invalid(format!(
                    "cartridge {b}: {why} ({})",
                    state_label(c)
                )));
            }
            let mut after = c.clone();
            change(&mut after);
            out.push((c.clone(), after));
        }
        Ok(out)
    }

    /// Moves cartridges to the library's export (mail) slots for vault
    /// `pool.vault`, and files the transfer manifest for the courier.
    pub fn export(
        &self,
        pool: &str,
        barcodes: &[String],
        day: Day,
        changer: Option<&mut dyn MediaChanger>,
    ) -> Result<Recorded> {
        let policy = self.pool(pool)?;
        let vault = policy
            .vault
            .clone()
            .ok_or_else(|| invalid(format!("pool {pool} has no vault: its sets stay onsite")))?;
        let inv = self.inventory(pool)?;
        let changes = self.each(
            &inv,
            pool,
            barcodes,
            |c| {
                let set = c.set.as_deref().and_then(|s| inv.set(s));
                if !matches!(c.place, Place::Library | Place::Onsite) {
                    Some("only a cartridge onsite can be exported".into())
                } else if c.content != Content::Full || set.is_none_or(|s| !s.closed || s.expired) {
                    Some(
                        "only a cartridge of a closed set under retention goes to the vault".into(),
                    )
                } else {
                    None
                }
            },
            |c| c.place = Place::ExportSlot,
        )?;
        if let Some(ch) = changer {
            let inv = ch.inventory()?;
            let free = inv.ie_slots.iter().filter(|e| !e.full).count();
            let moving = changes
                .iter()
                .filter(|(b, _)| b.place == Place::Library)
                .count();
            if moving > free {
                return Err(invalid(format!(
                    "{moving} cartridge(s) to export and {free} free mail slot(s): export fewer at a time"
                )));
            }
            for (before, _) in &changes {
                if before.place == Place::Library {
                    ch.export(&before.barcode)?;
                }
            }
        }
        let manifest = self.manifest(pool, "to-vault", vault, barcodes.to_vec());
        self.commit(
            day,
            pool,
            changes
                .into_iter()
                .map(|(a, b)| (a, b, "exported"))
                .collect(),
            &[],
            RotationWrite {
                manifest: Some(manifest),
                ..RotationWrite::default()
            },
        )
    }

    /// The courier took transfer manifest `id`: its cartridges are in
    /// transit (to the vault, or back to the site).
    pub fn sent(&self, id: i64, day: Day) -> Result<Recorded> {
        let m = self
            .cat
            .transfer_manifest(id)?
            .ok_or_else(|| invalid(format!("no transfer manifest {id}")))?;
        if m.sent_ms.is_some() {
            return Err(invalid(format!("transfer manifest {id} was already sent")));
        }
        let policy = self.pool(&m.pool)?;
        let arrives = day.plus(policy.courier_days as i32);
        let to_vault = m.direction == "to-vault";
        // A cartridge taken back out of the export slots (its set expired
        // while it waited) stays behind.
        let inv = self.inventory(&m.pool)?;
        let going: Vec<String> = m
            .barcodes
            .iter()
            .filter(|b| !to_vault || inv.cart(b).is_some_and(|c| c.place == Place::ExportSlot))
            .cloned()
            .collect();
        if going.is_empty() {
            return Err(invalid(format!(
                "transfer manifest {id}: none of its cartridges is waiting in the export slots"
            )));
        }
        let changes = self.each(
            &inv,
            &m.pool,
            &going,
            |c| match (to_vault, c.place) {
                (true, Place::ExportSlot) | (false, Place::RecallRequested { .. }) => None,
                (true, _) => Some("is not in an export slot".into()),
                (false, _) => Some("was not recalled".into()),
            },
            |c| {
                c.place = if to_vault {
                    Place::ToVault { arrives }
                } else {
                    Place::ToSite { arrives }
                }
            },
        )?;
        self.commit(
            day,
            &m.pool,
            changes
                .into_iter()
                .map(|(a, b)| (a, b, if to_vault { "sent" } else { "shipped-back" }))
                .collect(),
            &[],
            RotationWrite {
                manifests_done: vec![(id, Some(self.now_ms), None)],
                link_manifest: Some(id),
                ..RotationWrite::default()
            },
        )
        .map(|mut r| {
            r.manifest = Some(id);
            r
        })
    }

    /// Cartridges arrived: at the vault (its receipt) or back onsite.
    pub fn received(&self, pool: &str, barcodes: &[String], day: Day) -> Result<Recorded> {
        let inv = self.inventory(pool)?;
        let changes = self.each(
            &inv,
            pool,
            barcodes,
            |c| match c.place {
                Place::ToVault { .. } | Place::ToSite { .. } => None,
                _ => Some("is not in transit".into()),
            },
            |c| {
                c.place = match c.place {
                    Place::ToVault { .. } => Place::Vault,
                    _ => Place::Onsite,
                }
            },
        )?;
        // Manifests whose every cartridge has arrived are received.
        let mut done = Vec::new();
        for m in self.cat.transfer_manifests()? {
            if m.pool != pool || m.sent_ms.is_none() || m.received_ms.is_some() {
                continue;
            }
            if m.barcodes.iter().any(|b| barcodes.contains(b)) {
                let to_vault = m.direction == "to-vault";
                let arrived = m.barcodes.iter().all(|b| {
                    barcodes.contains(b)
                        || inv.cart(b).is_some_and(|c| {
                            if to_vault {
                                c.place == Place::Vault
                            } else {
                                matches!(c.place, Place::Onsite | Place::Library)
                            }
                        })
                });
                if arrived {
                    done.push((m.id, None, Some(self.now_ms)));
                }
            }
        }
        self.commit(
            day,
            pool,
            changes
                .into_iter()
                .map(|(a, b)| {
                    let what = if b.place == Place::Vault {
                        "received-at-vault"
                    } else {
                        "received-onsite"
                    };
                    (a, b, what)
                })
                .collect(),
            &[],
            RotationWrite {
                manifests_done: done,
                ..RotationWrite::default()
            },
        )
    }

    /// Asks the vault for cartridges back, each needed by a day; files the
    /// manifest the vault ships them on.
    pub fn recall(&self, pool: &str, wanted: &[(String, Day)], day: Day) -> Result<Recorded> {
        let policy = self.pool(pool)?;
        let barcodes: Vec<String> = wanted.iter().map(|(b, _)| b.clone()).collect();
        let inv = self.inventory(pool)?;
        let changes = self.each(
            &inv,
            pool,
            &barcodes,
            |c| (c.place != Place::Vault).then(|| "is not in the vault".to_string()),
            |c| {
                if let Some((_, needed_by)) = wanted.iter().find(|(b, _)| *b == c.barcode) {
                    c.place = Place::RecallRequested {
                        needed_by: *needed_by,
                    };
                }
            },
        )?;
        let manifest = self.manifest(pool, "to-site", policy.vault.unwrap_or_default(), barcodes);
        self.commit(
            day,
            pool,
            changes
                .into_iter()
                .map(|(a, b)| (a, b, "recall-requested"))
                .collect(),
            &[],
            RotationWrite {
                manifest: Some(manifest),
                ..RotationWrite::default()
            },
        )
    }

    /// Puts cartridges that are onsite (on the shelf, back from the vault,
    /// or in an export slot whose set expired) into the library.
    pub fn import(
        &self,
        pool: &str,
        barcodes: &[String],
        day: Day,
        changer: Option<&mut dyn MediaChanger>,
    ) -> Result<Recorded> {
        let inv = self.inventory(pool)?;
        let changes = self.each(
            &inv,
            pool,
            barcodes,
            |c| match c.place {
                Place::Onsite | Place::ExportSlot => None,
                Place::Library => Some("is already in the library".into()),
                _ => Some("is not onsite".into()),
            },
            |c| c.place = Place::Library,
        )?;
        if let Some(ch) = changer {
            let inv = ch.inventory()?;
            let slot_of = |b: &str| {
                inv.ie_slots
                    .iter()
                    .find(|e| e.barcode.as_deref() == Some(b))
                    .map(|e| e.index)
            };
            for (before, _) in &changes {
                let inside = inv
                    .slots
                    .iter()
                    .chain(&inv.drives)
                    .any(|e| e.barcode.as_deref() == Some(before.barcode.as_str()));
                if !inside && slot_of(&before.barcode).is_none() {
                    return Err(invalid(format!(
                        "cartridge {} is in no mail slot of the library: put it in one first",
                        before.barcode
                    )));
                }
            }
            for (before, _) in &changes {
                if let Some(slot) = slot_of(&before.barcode) {
                    ch.import(slot)?;
                }
            }
        }
        self.commit(
            day,
            pool,
            changes
                .into_iter()
                .map(|(a, b)| (a, b, "imported"))
                .collect(),
            &[],
            RotationWrite::default(),
        )
    }

    /// Records the morning's bookkeeping of the day's plan: sets that
    /// expired (their cartridges become recyclable; WORM ones are kept for
    /// disposal) and sets closed.
    pub fn settle(&self, pool: &str, plan: &Plan) -> Result<Recorded> {
        let mut inv = self.inventory(pool)?;
        let mut changes = Vec::new();
        for id in &plan.expire {
            if let Some(s) = inv.sets.iter_mut().find(|s| &s.id == id) {
                s.expired = true;
            }
            for c in inv.carts.iter_mut() {
                if c.set.as_deref() == Some(id.as_str())
                    && matches!(c.content, Content::Full | Content::Writing)
                {
                    let before = c.clone();
                    c.content = Content::Expired;
                    changes.push((before, c.clone(), "expired"));
                }
            }
        }
        for id in &plan.close {
            if let Some(s) = inv.sets.iter_mut().find(|s| &s.id == id) {
                s.closed = true;
            }
            for c in inv.carts.iter_mut() {
                if c.set.as_deref() == Some(id.as_str()) && c.content == Content::Writing {
                    let before = c.clone();
                    c.content = Content::Full;
                    changes.push((before, c.clone(), "set-closed"));
                }
            }
        }
        let touched: Vec<&MediaSet> = inv
            .sets
            .iter()
            .filter(|s| plan.expire.contains(&s.id) || plan.close.contains(&s.id))
            .collect();
        self.commit(plan.day, pool, changes, &touched, RotationWrite::default())
    }

    /// Records the night's tape job of `plan`: set `set` (new or
    /// continued) written onto `wrote_on` (the last one still open unless
    /// the set closed), refusing a cartridge whose set is still kept.
    pub fn written(
        &self,
        pool: &str,
        plan: &Plan,
        set_id: &str,
        wrote_on: &[String],
    ) -> Result<Recorded> {
        let policy = self.pool(pool)?;
        let Some(job) = &plan.job else {
            return Err(invalid(format!(
                "no tape job for pool {pool} on {}",
                plan.day
            )));
        };
        let mut inv = self.inventory(pool)?;
        match &job.set {
            super::SetChoice::New if inv.set(set_id).is_some() => {
                return Err(invalid(format!(
                    "set {set_id} already exists: tonight's plan starts a new set"
                )));
            }
            super::SetChoice::Continue { id } if id != set_id => {
                return Err(invalid(format!(
                    "tonight's plan continues set {id}, not {set_id}"
                )));
            }
            _ => {}
        }
        let before = inv.clone();
        // The writer moved past the set's current cartridge (it filled at
        // the end of the last job): that one is full, and tonight's data
        // went onto the cartridges it names.
        if let super::SetChoice::Continue { id } = &job.set
            && let Some(cur) = inv.set(id).and_then(|s| s.cartridges.last().cloned())
            && wrote_on.first() != Some(&cur)
            && let Some(c) = inv
                .carts
                .iter_mut()
                .find(|c| c.barcode == cur && c.content == Content::Writing)
        {
            c.content = Content::Full;
        }
        let fills = wrote_on.len().saturating_sub(1) as u32;
        let job = super::JobPlan {
            cartridges: wrote_on.to_vec(),
            ..job.clone()
        };
        let mut out = super::Outcome::default();
        super::sim::write_job(&policy, &mut inv, plan.day, &job, fills, &mut out);
        if let Some(v) = out.violations.first() {
            return Err(invalid(v.clone()));
        }
        if out.waited || out.wrote_on.is_empty() {
            return Err(invalid(format!(
                "the job's cartridges {wrote_on:?} are not all writable scratch in the library"
            )));
        }
        // The rotation's set takes the media set's id.
        let made = out.set.clone().unwrap_or_default();
        for s in inv.sets.iter_mut().filter(|s| s.id == made) {
            s.id = set_id.to_string();
        }
        for c in inv.carts.iter_mut() {
            if c.set.as_deref() == Some(made.as_str()) {
                c.set = Some(set_id.to_string());
            }
        }
        let mut changes = Vec::new();
        for c in &inv.carts {
            if let Some(b) = before.cart(&c.barcode)
                && b != c
            {
                changes.push((b.clone(), c.clone(), "written"));
            }
        }
        let touched: Vec<&MediaSet> = inv.sets.iter().filter(|s| s.id == set_id).collect();
        self.commit(plan.day, pool, changes, &touched, RotationWrite::default())
    }

    /// An expired cartridge was relabelled for reuse: it is scratch again.
    /// One whose set is still kept (or a WORM one) is refused.
    pub fn recycled(&self, pool: &str, barcode: &str, day: Day) -> Result<Recorded> {
        let inv = self.inventory(pool)?;
        let changes = self.each(
            &inv,
            pool,
            &[barcode.to_string()],
            |c| {
                if c.kind.is_worm() {
                    Some("is WORM: it is never rewritten".into())
                } else if c.content != Content::Expired {
                    Some("only an expired cartridge is recycled".into())
                } else {
                    None
                }
            },
            |c| {
                c.content = Content::Scratch;
                c.set = None;
            },
        )?;
        self.commit(
            day,
            pool,
            changes
                .into_iter()
                .map(|(a, b)| (a, b, "recycled"))
                .collect(),
            &[],
            RotationWrite::default(),
        )
    }

    /// A cartridge was found damaged (a drive reported it, or it was
    /// dropped): it is never written again, and the open set it belongs to
    /// is closed, so the next job starts a new set on sound cartridges.
    /// Its set's retention still applies to it.
    pub fn damaged(&self, pool: &str, barcode: &str, day: Day) -> Result<Recorded> {
        let inv = self.inventory(pool)?;
        let changes = self.each(
            &inv,
            pool,
            &[barcode.to_string()],
            |c| match c.content {
                Content::Disposed => Some("it was disposed of".into()),
                Content::Damaged => Some("it is recorded damaged already".into()),
                _ => None,
            },
            |c| c.content = Content::Damaged,
        )?;
        let mut closed = None;
        if let Some(id) = changes.first().and_then(|(c, _)| c.set.clone())
            && let Some(s) = inv.set(&id)
            && !s.closed
        {
            let mut s = s.clone();
            s.closed = true;
            closed = Some(s);
        }
        self.commit(
            day,
            pool,
            changes
                .into_iter()
                .map(|(a, b)| (a, b, "damaged"))
                .collect(),
            &closed.iter().collect::<Vec<_>>(),
            RotationWrite::default(),
        )
    }

    /// Cartridges were destroyed (degaussed, shredded) by `method`: they
    /// leave the rotation for good and a disposal certificate is filed for
    /// each. Only a cartridge whose data no kept set needs may be destroyed:
    /// an expired one (WORM cartridges are disposed of, never recycled), or
    /// a damaged one whose set expired or that holds none.
    pub fn disposed(
        &self,
        pool: &str,
        barcodes: &[String],
        day: Day,
        method: &str,
    ) -> Result<(Recorded, Vec<i64>)> {
        if method.trim().is_empty() {
            return Err(invalid(
                "say how the cartridges were destroyed (--method, for example \"degaussed and shredded by Vendor, certificate 123\")".into(),
            ));
        }
        let inv = self.inventory(pool)?;
        let changes = self.each(
            &inv,
            pool,
            barcodes,
            |c| {
                let kept = c
                    .set
                    .as_deref()
                    .and_then(|s| inv.set(s))
                    .filter(|s| !s.expired);
                match (c.content, kept) {
                    (Content::Expired, _) | (Content::Damaged, None) => {
                        if matches!(
                            c.place,
                            Place::ToVault { .. } | Place::ToSite { .. } | Place::RecallRequested { .. }
                        ) {
                            Some("it is in transit: record its arrival first".into())
                        } else {
                            None
                        }
                    }
                    (Content::Damaged, Some(s)) => Some(format!(
                        "it holds set {} that is still kept (until {}): destroy it once the set expires",
                        s.id, s.expires
                    )),
                    _ => Some(
                        "only an expired cartridge, or a damaged one no kept set needs, is destroyed"
                            .into(),
                    ),
                }
            },
            |c| c.content = Content::Disposed,
        )?;
        let mut disposals = Vec::new();
        for (before, _) in &changes {
            let set = before
                .set
                .as_deref()
                .and_then(|s| self.cat.media_set(s).ok());
            let keys = set
                .iter()
                .filter_map(|s| {
                    s.key_fingerprint
                        .as_ref()
                        .map(|f| format!("media set {} key {f}", s.id))
                })
                .collect();
            disposals.push(coffer_catalog::NewDisposal {
                at_ms: self.now_ms,
                what: format!(
                    "cartridge {} of media pool {pool}{}",
                    before.barcode,
                    before
                        .set
                        .as_ref()
                        .map(|s| format!(" (media set {s})"))
                        .unwrap_or_default()
                ),
                keys,
                objects: 0,
                bytes: 0,
                policy: Some(format!("media pool {pool}")),
                identity: self.identity.clone(),
                detail: format!(
                    "destroyed on {day}: {method}; it was {}",
                    state_label(before)
                ),
            });
        }
        let r = self.commit(
            day,
            pool,
            changes
                .into_iter()
                .map(|(a, b)| (a, b, "disposed"))
                .collect(),
            &[],
            RotationWrite::default(),
        )?;
        let certificates = disposals
            .iter()
            .map(|d| self.cat.record_disposal(d))
            .collect::<std::result::Result<_, _>>()?;
        Ok((r, certificates))
    }

    /// A drive cleaning was done on `day`.
    pub fn cleaned(&self, pool: &str, day: Day) -> Result<Recorded> {
        self.commit(
            day,
            pool,
            Vec::new(),
            &[],
            RotationWrite {
                last_cleaning: Some(day.0),
                ..RotationWrite::default()
            },
        )
    }
}
