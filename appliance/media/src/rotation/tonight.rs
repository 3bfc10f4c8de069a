//! Tonight's tape job of a rotation pool, around `set::write`: prepared
//! from the day's plan (settled; only cartridges recorded in the library;
//! expired ones relabelled and recorded as recycled), turned into the write
//! request (the plan's set, the plan's cartridges only), and recorded once
//! written. The shell's `media write` and the service use these.

use coffer_catalog::Catalog;
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
}

/// Prepares pool `pool`'s job of `day`: settles the day, refuses when
/// there is no job or its cartridges are not in the library (the reason
/// says what the operator must do), and relabels the expired cartridges
/// it will use.
pub fn prepare(
    book: &Book<'_>,
    lib: &mut dyn Library,
    catalog: &Catalog,
    pool: &str,
    day: Day,
    drive: u16,
) -> Result<Prepared> {
    let plan = book.today(pool, day)?;
    book.settle(pool, &plan)?;
    let Some(job) = plan.job.clone() else {
        return Err(Error::Invalid(format!(
            "pool {pool}'s rotation has no tape job on {day} (`coffer media rotation today`)"
        )));
    };
    if plan.scratch_short > 0 {
        return Err(Error::Invalid(format!(
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
        return Err(Error::Invalid(format!(
            "pool {pool}: tonight's cartridges are not in the library yet: import them first (`coffer media rotation today`)"
        )));
    }
    let mut recycled = Vec::new();
    for b in &job.cartridges {
        if inv.cart(b).is_some_and(|c| c.content == Content::Expired) {
            set::label(lib, catalog, drive, b, pool, true)?;
            book.recycled(pool, b, day)?;
            recycled.push(b.clone());
        }
    }
    Ok(Prepared {
        plan,
        job,
        recycled,
    })
}

impl Prepared {
    /// `base` (pool, snapshots, encryption, drive) aimed at the plan's set
    /// and cartridges.
    pub fn request(&self, catalog: &Catalog, base: WriteRequest) -> Result<WriteRequest> {
        let (set, new_set) = match &self.job.set {
            SetChoice::Continue { id } => (Some(catalog.media_set(id)?.id), false),
            SetChoice::New => (None, true),
        };
        Ok(WriteRequest {
            set,
            new_set,
            only: Some(self.job.cartridges.clone()),
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
}
