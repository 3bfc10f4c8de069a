//! Tonight's tape job of a rotation pool, around `set::write`: prepared
//! from the day's plan (settled; only cartridges recorded in the library
//! and held by the changer; expired ones relabelled and recorded as
//! recycled, new scratch ones labelled), turned into the write
//! request (the plan's set, the plan's cartridges only), and recorded once
//! written. The shell's `media write` and the service use these.

use coffer_catalog::Catalog;
use coffer_store::BlobStore;
use coffer_tape::Library;

use super::{Book, Content, Day, JobPlan, Place, Plan, SetChoice};
use crate::set::{self, WriteOutcome, WriteRequest};
use crate::{Error, Result};

/// Tonight's job, ready to write.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The day's plan (already settled).
    pub plan: Plan,
    /// Its job, with only the cartridges recorded in the library.
    pub job: JobPlan,
    /// Expired cartridges relabelled for it.
    pub recycled: Vec<String>,
    /// New scratch cartridges labelled for the pool.
    pub labelled: Vec<String>,
    /// Expired sets crypto-shredded while settling the day.
    pub shredded: Vec<super::shred::Shredded>,
    /// The pool encrypts its sets.
    pub encrypt: bool,
    /// The pool keeps set keys in escrow (it crypto-shreds).
    pub escrow: bool,
}

/// Prepares pool `pool`'s job of `day`: settles the day (crypto-shredding
/// the sets that expired, in `blobs`' escrow too, even when the job then
/// has to wait), refuses when there is no job or its cartridges are not in
/// the library (the reason says what the operator must do), and relabels
/// the expired cartridges it will use.
pub fn prepare(
    book: &Book<'_>,
    lib: &mut dyn Library,
    catalog: &Catalog,
    blobs: &dyn BlobStore,
    pool: &str,
    day: Day,
    drive: u16,
) -> Result<Prepared> {
    let policy = book.pool(pool)?;
    let plan = book.today(pool, day)?;
    book.settle(pool, &plan)?;
    let shredded = super::shred::expired(catalog, blobs, pool, book.identity(), book.now_ms())?;
    let Some(job) = plan.job.clone() else {
        return Err(Error::Invalid(format!(
            "pool {pool}'s rotation has no tape job on {day} (`coffer media rotation today`)"
        )));
    };
    if plan.scratch_short > 0 {
        return Err(Error::NeedMedia(format!(
            "pool {pool} needs {} more scratch cartridge(s) in the library tonight: {}",
            plan.scratch_short,
            plan.warnings.join("; ")
        )));
    }
    let inv = book.inventory(pool)?;
    let job = JobPlan {
        cartridges: job
            .cartridges
            .iter()
            .filter(|b| inv.cart(b).is_some_and(|c| c.place == Place::Library))
            .cloned()
            .collect(),
        ..job
    };
    if job.cartridges.is_empty() {
        let wanted: Vec<&str> = plan
            .load
            .iter()
            .map(String::as_str)
            .chain(
                plan.job
                    .iter()
                    .flat_map(|j| j.cartridges.iter().map(String::as_str)),
            )
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        return Err(Error::NeedMedia(format!(
            "pool {pool}: tonight's cartridges are not in the library yet: import {} (`coffer media import`, see `coffer media rotation today`)",
            wanted.join(", ")
        )));
    }
    let seen = lib.changer()?.inventory()?;
    let absent: Vec<&str> = job
        .cartridges
        .iter()
        .filter(|b| seen.find(b).is_none())
        .map(String::as_str)
        .collect();
    if !absent.is_empty() {
        return Err(Error::NeedMedia(format!(
            "pool {pool}: {} recorded in the library but the changer does not hold them: insert them into a mail slot and run `coffer changer import`",
            absent.join(", ")
        )));
    }
    let mut recycled = Vec::new();
    let mut labelled = Vec::new();
    for b in &job.cartridges {
        if inv.cart(b).is_some_and(|c| c.content == Content::Expired) {
            set::label(lib, catalog, drive, b, pool, true)?;
            book.recycled(pool, b, day)?;
            recycled.push(b.clone());
        } else if catalog.cartridge(b)?.is_none() {
            // A new scratch cartridge: labelled for the pool. One that
            // holds anything already is refused, never overwritten.
            set::label(lib, catalog, drive, b, pool, false)?;
            labelled.push(b.clone());
        }
    }
    Ok(Prepared {
        plan,
        job,
        recycled,
        labelled,
        shredded,
        encrypt: policy.encrypt,
        escrow: policy.shred,
    })
}

impl Prepared {
    /// `base` (pool, snapshots, drive) aimed at the plan's set and
    /// cartridges, encrypted and escrowed as the pool says.
    pub fn request(&self, catalog: &Catalog, base: WriteRequest) -> Result<WriteRequest> {
        let (set, new_set) = match &self.job.set {
            SetChoice::Continue { id } => (Some(catalog.media_set(id)?.id), false),
            SetChoice::New => (None, true),
        };
        Ok(WriteRequest {
            set,
            new_set,
            only: Some(self.job.cartridges.clone()),
            encrypt: self.encrypt,
            escrow: self.escrow,
            ..base
        })
    }

    /// Records what `set::write` did: the cartridges it mounted (the
    /// continued one first). Nothing when it wrote nothing new.
    pub fn record(&self, book: &Book<'_>, pool: &str, out: &WriteOutcome) -> Result<bool> {
        let Some(s) = out.set else {
            return Ok(false);
        };
        if out.cartridges.is_empty() {
            return Ok(false);
        }
        book.written(pool, &self.plan, &s.to_hex(), &out.cartridges)?;
        Ok(true)
    }

    /// After a write that failed partway: records the cartridges of
    /// tonight's job that the catalog shows the write put into a set (their
    /// set label is on them, so they hold the set's data and are under its
    /// retention, never scratch again). Returns them.
    pub fn record_partial(
        &self,
        book: &Book<'_>,
        catalog: &Catalog,
        pool: &str,
    ) -> Result<Vec<String>> {
        let inv = book.inventory(pool)?;
        let mut set: Option<String> = match &self.job.set {
            SetChoice::Continue { id } => Some(id.clone()),
            SetChoice::New => None,
        };
        let mut wrote = Vec::new();
        for b in &self.job.cartridges {
            let Some(c) = catalog.cartridge(b)? else {
                continue;
            };
            let Some((id, _)) = c.set else { continue };
            let id = id.to_hex();
            let ours = match &set {
                Some(s) => *s == id,
                // A new set: one the rotation did not know before tonight.
                None => inv.set(&id).is_none(),
            };
            if ours {
                set = Some(id);
                wrote.push(b.clone());
            }
        }
        let Some(set) = set.filter(|_| !wrote.is_empty()) else {
            return Ok(Vec::new());
        };
        book.written(pool, &self.plan, &set, &wrote)?;
        Ok(wrote)
    }
}
