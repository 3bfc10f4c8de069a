//! 3-2-1-1-0 per asset: of its newest good snapshot, three copies, on two
//! media, one offsite, one immutable or offline, and zero errors after
//! verification.
//!
//! The copies are gathered from the catalog:
//! - **the store** is immutable while the snapshot's retention lock runs
//!   (its objects carry `chattr +i`);
//! - **every tape media set holding the snapshot's record** is offsite
//!   when all its cartridges are in the vault, and offline when none is in
//!   the library, or immutable when they are WORM;
//! - **every remote whose last good replication began after the snapshot
//!   finished** is offsite, and immutable when it is a bucket with Object
//!   Lock.
//!
//! "Zero errors" means that no verification found damage that is still
//! open, and that the asset's newest restore drill passed (an asset never
//! drilled has no such evidence yet). [`judge`] applies the rule to the
//! gathered facts, and is tested on its own.

use anyhow::Result;
use coffer_catalog::Catalog;
use coffer_media::rotation::{Book, Content, Place};
use coffer_types::Level;
use coffer_types::api::{AssetCompliance, CopyView, ObjectLockMode, RemoteKind};

use crate::Inner;

/// What the rule is judged on, for one asset.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    pub(crate) asset: String,
    pub(crate) snapshot: Option<String>,
    pub(crate) copies: Vec<(CopyView, Option<i64>)>,
    /// Open verification damage, in words.
    pub(crate) damage: Vec<String>,
    /// The newest drill: passed?
    pub(crate) last_drill: Option<bool>,
}

/// The rule applied to `f` at `now_ms`.
pub(crate) fn judge(f: &Facts, now_ms: i64) -> AssetCompliance {
    let mut missing = Vec::new();
    let copies: Vec<&CopyView> = f.copies.iter().map(|(c, _)| c).collect();
    if f.snapshot.is_none() {
        missing.push("no good backup yet".to_string());
    } else {
        if copies.len() < 3 {
            missing.push(format!("3 copies: {} of the newest snapshot", copies.len()));
        }
        let mut media: Vec<&str> = copies.iter().map(|c| c.medium.as_str()).collect();
        media.sort_unstable();
        media.dedup();
        if media.len() < 2 {
            missing.push(format!("2 media: only {}", media.join(", ")));
        }
        if !copies.iter().any(|c| c.offsite) {
            missing.push("1 offsite: no copy is away from the site".to_string());
        }
        if !copies.iter().any(|c| c.immutable_or_offline) {
            missing
                .push("1 immutable or offline: every copy can be changed or reached".to_string());
        }
    }
    if !f.damage.is_empty() {
        missing.push(format!("0 errors: {}", f.damage.join("; ")));
    }
    match f.last_drill {
        Some(true) => {}
        Some(false) => missing.push("0 errors: the newest restore drill failed".to_string()),
        None => missing.push("0 errors: no restore drill has verified a copy yet".to_string()),
    }
    let offsite_age_s = f
        .copies
        .iter()
        .filter(|(c, _)| c.offsite)
        .filter_map(|(_, t)| *t)
        .max()
        .map(|t| ((now_ms - t).max(0)) / 1000);
    AssetCompliance {
        asset: f.asset.clone(),
        snapshot: f.snapshot.clone(),
        copies: f.copies.iter().map(|(c, _)| c.clone()).collect(),
        offsite_age_s,
        met: missing.is_empty(),
        missing,
    }
}

/// Every asset against the rule, from the catalog at `now_ms`.
pub(crate) fn all(inner: &Inner, cat: &Catalog, now_ms: i64) -> Result<Vec<AssetCompliance>> {
    let store = inner.repo.config().store_id;
    let locks = cat.protections(now_ms)?;
    let remotes = cat.remotes()?;
    let drills = cat.drills(None)?;
    let book = Book::new(cat, "", now_ms);
    let mut damage = Vec::new();
    let damaged = cat.damaged_containers()?;
    if !damaged.is_empty() {
        damage.push(format!(
            "{} damaged container(s) in the store",
            damaged.len()
        ));
    }
    for a in cat.alerts(false)? {
        if a.kind == crate::verify::VERIFY_FAILED {
            damage.push(format!("{}: {}", a.subject, a.message));
        }
    }
    let mut pools: std::collections::HashMap<String, Option<coffer_media::rotation::Inventory>> =
        Default::default();
    let mut out = Vec::new();
    for reg in cat.register()? {
        let name = reg.asset.name.clone();
        // The newest snapshot, as the tape jobs choose it.
        let newest = cat.latest_snapshot(
            &name,
            &[Level::Full, Level::Incremental, Level::Differential],
        )?;
        let newest = newest.as_ref();
        let mut f = Facts {
            asset: name.clone(),
            snapshot: newest.map(|s| s.id.to_hex()),
            damage: damage.clone(),
            last_drill: drills
                .iter()
                .find(|d| d.asset == name && d.result != "running")
                .map(|d| d.result == "pass"),
            ..Facts::default()
        };
        if let Some(s) = newest {
            f.copies.push((
                CopyView {
                    kind: "store".into(),
                    name: format!("store {store}"),
                    medium: "disk".into(),
                    offsite: false,
                    immutable_or_offline: locks.locks.contains_key(&s.id),
                    since: Some(coffer_types::rfc3339_ms(s.finished_ms)),
                },
                Some(s.finished_ms),
            ));
            let record = coffer_store::snapshot::record_key(&s.id);
            for set in cat.sets_holding(&record)? {
                let info = cat.media_set(&set.to_hex())?;
                let carts = cat.set_cartridges(&set)?;
                let mut places: Vec<Option<(Place, Content)>> = Vec::new();
                for c in &carts {
                    let Some(pool) = cat.rotation_pool_of(&c.barcode)? else {
                        places.push(None);
                        continue;
                    };
                    // Each pool's inventory is read once per pass.
                    if !pools.contains_key(&pool) {
                        let inv = book.inventory(&pool).ok();
                        pools.insert(pool.clone(), inv);
                    }
                    places.push(
                        pools
                            .get(&pool)
                            .and_then(Option::as_ref)
                            .and_then(|inv| inv.cart(&c.barcode))
                            .map(|x| (x.place, x.content)),
                    );
                }
                let known = !places.is_empty() && places.iter().all(Option::is_some);
                let vaulted = known
                    && places
                        .iter()
                        .flatten()
                        .all(|(p, _)| matches!(p, Place::Vault | Place::RecallRequested { .. }));
                let offline = known
                    && places
                        .iter()
                        .flatten()
                        .all(|(p, _)| !matches!(p, Place::Library));
                let worm = !carts.is_empty() && carts.iter().all(|c| c.worm);
                f.copies.push((
                    CopyView {
                        kind: "tape".into(),
                        name: format!(
                            "media set {} ({})",
                            set,
                            carts
                                .iter()
                                .map(|c| c.barcode.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        medium: "tape".into(),
                        offsite: vaulted,
                        immutable_or_offline: offline || worm,
                        since: Some(coffer_types::rfc3339_ms(info.created_ms)),
                    },
                    Some(info.created_ms.max(s.finished_ms)),
                ));
            }
            for r in &remotes {
                let Some(covers) = r.covers_until_ms.filter(|c| *c >= s.finished_ms) else {
                    continue;
                };
                let (medium, immutable) = match r.spec.kind {
                    RemoteKind::Appliance => ("disk", false),
                    RemoteKind::S3 => (
                        "object",
                        r.spec
                            .s3
                            .as_ref()
                            .is_some_and(|s| s.lock != ObjectLockMode::None),
                    ),
                };
                f.copies.push((
                    CopyView {
                        kind: "remote".into(),
                        name: format!("remote {}", r.spec.name),
                        medium: medium.into(),
                        offsite: true,
                        immutable_or_offline: immutable,
                        since: Some(coffer_types::rfc3339_ms(covers)),
                    },
                    Some(covers),
                ));
            }
        }
        out.push(judge(&f, now_ms));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(kind: &str, medium: &str, offsite: bool, immutable: bool) -> (CopyView, Option<i64>) {
        (
            CopyView {
                kind: kind.into(),
                name: kind.into(),
                medium: medium.into(),
                offsite,
                immutable_or_offline: immutable,
                since: None,
            },
            Some(1_000),
        )
    }

    #[test]
    fn every_part_of_the_rule_is_judged_and_named_when_missing() {
        let full = Facts {
            asset: "web".into(),
            snapshot: Some("ab".into()),
            copies: vec![
                copy("store", "disk", false, true),
                copy("tape", "tape", true, true),
                copy("remote", "object", true, true),
            ],
            damage: Vec::new(),
            last_drill: Some(true),
        };
        let j = judge(&full, 61_000);
        assert!(j.met, "{:?}", j.missing);
        assert_eq!(j.offsite_age_s, Some(60));

        let only_store = Facts {
            copies: vec![copy("store", "disk", false, false)],
            ..full.clone()
        };
        let j = judge(&only_store, 61_000);
        assert!(!j.met);
        let m = j.missing.join(" | ");
        for part in [
            "3 copies: 1",
            "2 media: only disk",
            "1 offsite",
            "1 immutable or offline",
        ] {
            assert!(m.contains(part), "{m}");
        }
        assert_eq!(j.offsite_age_s, None);

        let two_disks = Facts {
            copies: vec![
                copy("store", "disk", false, true),
                copy("remote", "disk", true, false),
                copy("remote", "disk", true, false),
            ],
            ..full.clone()
        };
        let j = judge(&two_disks, 61_000);
        assert_eq!(j.missing, vec!["2 media: only disk".to_string()]);

        let damaged = Facts {
            damage: vec!["store: 1 container damaged".into()],
            last_drill: Some(false),
            ..full.clone()
        };
        let j = judge(&damaged, 61_000);
        assert_eq!(j.missing.len(), 2, "{:?}", j.missing);
        assert!(j.missing[0].starts_with("0 errors: store"));
        assert!(j.missing[1].contains("drill failed"));

        let never_drilled = Facts {
            last_drill: None,
            ..full.clone()
        };
        assert!(judge(&never_drilled, 0).missing[0].contains("no restore drill"));

        let never_backed_up = Facts {
            snapshot: None,
            copies: Vec::new(),
            ..full
        };
        assert_eq!(
            judge(&never_backed_up, 0).missing,
            vec!["no good backup yet".to_string()]
        );
    }
}
