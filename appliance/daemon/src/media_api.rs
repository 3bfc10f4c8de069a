//! The media rotation through the control API: the day's procedure, the
//! pools, transfer manifests, the chain of custody, and each step the
//! operator records from the console or a script. The API audits every
//! step (who, from where, what, the result) and the rotation writes its
//! chain-of-custody lines. Exports and imports move the cartridges
//! through the configured library's mail slots.

use coffer_catalog::Catalog;
use coffer_media::rotation::{self, Book, Day, Recorded};
use coffer_tape::MediaChanger;
use coffer_types::api::{ApiError, ErrorCode, MediaStep};
use serde_json::{Value, json};

use crate::Inner;

type ApiResult<T> = Result<T, ApiError>;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Invalid, message)
}

fn from_media(e: coffer_media::Error) -> ApiError {
    match e {
        coffer_media::Error::Invalid(m) | coffer_media::Error::NeedMedia(m) => invalid(m),
        coffer_media::Error::Catalog(coffer_catalog::Error::NotFound { .. }) => {
            ApiError::new(ErrorCode::NotFound, e.to_string())
        }
        e => ApiError::new(ErrorCode::Internal, e.to_string()),
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::Internal, e.to_string())
}

/// Today in the daemon's time zone.
fn today(inner: &Inner) -> ApiResult<Day> {
    crate::tape::local(inner.now_ms(), &inner.config().time_zone())
        .map(|(d, _)| d)
        .map_err(internal)
}

/// The day `date` names (default today); a step is recorded on the day it
/// happens or later, never ahead (that would expire sets early).
fn day(inner: &Inner, date: Option<&str>, recording: bool) -> ApiResult<Day> {
    let today = today(inner)?;
    let Some(s) = date else {
        return Ok(today);
    };
    let d = Day::parse(s).ok_or_else(|| invalid(format!("'{s}' is not a date (YYYY-MM-DD)")))?;
    if recording && d > today {
        return Err(invalid(format!(
            "{d} is after today ({today}): a step is recorded on the day it happens, never ahead"
        )));
    }
    Ok(d)
}

fn pools_named(book: &Book<'_>, pool: Option<&str>) -> ApiResult<Vec<String>> {
    let names: Vec<String> = match pool {
        Some(p) => vec![p.to_string()],
        None => book
            .pools()
            .map_err(from_media)?
            .into_iter()
            .map(|p| p.name)
            .collect(),
    };
    if names.is_empty() {
        return Err(invalid(
            "no media pools: create one with `coffer media pool add NAME …`",
        ));
    }
    Ok(names)
}

/// The pool of the cartridges named (the first one's).
fn pool_of(cat: &Catalog, barcodes: &[String]) -> ApiResult<String> {
    let first = barcodes
        .first()
        .ok_or_else(|| invalid("name at least one cartridge"))?;
    cat.rotation_pool_of(first)
        .map_err(internal)?
        .ok_or_else(|| invalid(format!("cartridge {first} is not in any media pool")))
}

/// The configured library's changer, for steps that move cartridges.
fn changer(inner: &Inner) -> ApiResult<Option<Box<dyn MediaChanger>>> {
    let Some(cfg) = inner.config().tape.library else {
        return Ok(None);
    };
    let mut lib = coffer_tape::open_library(&cfg).map_err(|e| {
        invalid(format!(
            "the tape library (tape.library) cannot be opened: {e}"
        ))
    })?;
    lib.changer()
        .map(Some)
        .map_err(|e| invalid(format!("the tape library's changer cannot be opened: {e}")))
}

/// `media_today`: each pool's plan for the day and its checklist.
pub(crate) fn today_call(
    inner: &Inner,
    cat: &Catalog,
    identity: &str,
    pool: Option<&str>,
    date: Option<&str>,
) -> ApiResult<Value> {
    let d = day(inner, date, false)?;
    let book = Book::new(cat, identity, inner.now_ms());
    let mut out = Vec::new();
    for n in pools_named(&book, pool)? {
        let plan = book.today(&n, d).map_err(from_media)?;
        let inv = book.inventory(&n).map_err(from_media)?;
        let text = rotation::checklist(&plan, &inv);
        out.push(json!({ "pool": n, "plan": plan, "text": text }));
    }
    Ok(Value::Array(out))
}

/// `media_pools`: every pool's policy, size and inventory.
pub(crate) fn pools(inner: &Inner, cat: &Catalog) -> ApiResult<Value> {
    let book = Book::new(cat, "", inner.now_ms());
    let mut out = Vec::new();
    for p in book.pools().map_err(from_media)? {
        let inv = book.inventory(&p.name).map_err(from_media)?;
        let required = book.required(&p.name).map_err(from_media)?;
        let carts: Vec<Value> = inv
            .carts
            .iter()
            .map(|c| json!({ "barcode": c.barcode, "state": rotation::state_label(c), "set": c.set }))
            .collect();
        out.push(json!({
            "pool": p, "required_cartridges": required, "cartridges": carts, "sets": inv.sets,
        }));
    }
    Ok(Value::Array(out))
}

/// `media_manifest`: one transfer manifest (with each cartridge's set), or
/// every one.
pub(crate) fn manifest(cat: &Catalog, id: Option<i64>) -> ApiResult<Value> {
    let Some(id) = id else {
        return serde_json::to_value(cat.transfer_manifests().map_err(internal)?).map_err(internal);
    };
    let m = cat
        .transfer_manifest(id)
        .map_err(internal)?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no transfer manifest {id}")))?;
    let book = Book::new(cat, "", 0);
    let inv = book.inventory(&m.pool).map_err(from_media)?;
    let sets: Vec<Option<String>> = m
        .barcodes
        .iter()
        .map(|b| inv.cart(b).and_then(|c| c.set.clone()))
        .collect();
    Ok(json!({ "manifest": m, "sets": sets }))
}

fn recorded(r: &Recorded, verb: &str) -> String {
    let mut d = r
        .cartridges
        .iter()
        .map(|(b, s)| format!("{b} {verb} (now {s})"))
        .collect::<Vec<_>>()
        .join("; ");
    if let Some(m) = r.manifest {
        d.push_str(&format!("; transfer manifest {m}"));
    }
    d
}

/// `media_step`: records one step; returns what it recorded and the audit
/// detail.
pub(crate) fn step(
    inner: &Inner,
    cat: &Catalog,
    identity: &str,
    step: &MediaStep,
    date: Option<&str>,
) -> ApiResult<(Value, String)> {
    let d = day(inner, date, true)?;
    let now = inner.now_ms();
    let book = Book::new(cat, identity, now);
    let m = from_media;
    let one = |r: Recorded, verb: &str| -> ApiResult<(Value, String)> {
        let detail = recorded(&r, verb);
        Ok((serde_json::to_value(&r).map_err(internal)?, detail))
    };
    match step {
        MediaStep::Settle { pool } => {
            let mut out = Vec::new();
            let mut detail = Vec::new();
            for n in pools_named(&book, pool.as_deref())? {
                let plan = book.today(&n, d).map_err(m)?;
                let r = book.settle(&n, &plan).map_err(m)?;
                let shredded =
                    rotation::shred::expired(cat, inner.repo.blobs().as_ref(), &n, identity, now)
                        .map_err(m)?;
                detail.push(format!(
                    "pool {n} settled for {d}: {} set(s) expired{}",
                    plan.expire.len(),
                    shredded
                        .iter()
                        .map(|s| format!(
                            "; set {} crypto-shredded (disposal certificate {})",
                            s.set, s.certificate
                        ))
                        .collect::<String>()
                ));
                out.push(json!({ "pool": n, "recorded": r, "shredded": shredded }));
            }
            Ok((Value::Array(out), detail.join("; ")))
        }
        MediaStep::Export { barcodes } => {
            let pool = pool_of(cat, barcodes)?;
            let mut ch = changer(inner)?;
            let ch = ch.as_mut().map(|c| c.as_mut() as &mut dyn MediaChanger);
            let r = Book::new(cat, identity, now)
                .export(&pool, barcodes, d, ch)
                .map_err(m)?;
            one(r, "in an export slot")
        }
        MediaStep::Sent { manifest } => {
            one(book.sent(*manifest, d).map_err(m)?, "handed to the courier")
        }
        MediaStep::Received { barcodes } => {
            let pool = pool_of(cat, barcodes)?;
            one(book.received(&pool, barcodes, d).map_err(m)?, "received")
        }
        MediaStep::Recall {
            barcodes,
            needed_by,
        } => {
            let pool = pool_of(cat, barcodes)?;
            let by = match needed_by {
                Some(s) => Day::parse(s)
                    .ok_or_else(|| invalid(format!("'{s}' is not a date (YYYY-MM-DD)")))?,
                None => d.plus(book.pool(&pool).map_err(m)?.courier_days as i32 + 1),
            };
            let wanted: Vec<(String, Day)> = barcodes.iter().map(|b| (b.clone(), by)).collect();
            one(book.recall(&pool, &wanted, d).map_err(m)?, "recalled")
        }
        MediaStep::Import { barcodes } => {
            let pool = pool_of(cat, barcodes)?;
            let mut ch = changer(inner)?;
            let ch = ch.as_mut().map(|c| c.as_mut() as &mut dyn MediaChanger);
            let r = Book::new(cat, identity, now)
                .import(&pool, barcodes, d, ch)
                .map_err(m)?;
            one(r, "in the library")
        }
        MediaStep::Cleaned { pool } => {
            book.cleaned(pool, d).map_err(m)?;
            Ok((
                json!({ "pool": pool, "cleaned": d }),
                format!("drive cleaning of pool {pool} recorded for {d}"),
            ))
        }
        MediaStep::Damaged { barcode } => {
            let pool = pool_of(cat, std::slice::from_ref(barcode))?;
            one(book.damaged(&pool, barcode, d).map_err(m)?, "damaged")
        }
        MediaStep::Dispose { barcodes, method } => {
            let pool = pool_of(cat, barcodes)?;
            let (r, certificates) = book.disposed(&pool, barcodes, d, method).map_err(m)?;
            let detail = format!(
                "{}; disposal certificate(s) {}",
                recorded(&r, "destroyed"),
                certificates
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok((
                json!({ "recorded": r, "certificates": certificates }),
                detail,
            ))
        }
    }
}
