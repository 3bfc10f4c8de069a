//! Key management: status, data key rotation, re-wrapping the master key
//! under a new passphrase, and the escrow (paper key) export and import.
//! Every change is recorded in the catalog's key history.
//!
//! Key generations: generation 1 is the master key's own derivation (one
//! key per container, derived from the master key). A rotation starts
//! generation 2, 3, …: a random data key, wrapped by the master key in the
//! store (`datakeys/…`), from which the containers sealed from then on
//! derive their keys. Older generations stay readable; garbage collection
//! destroys a data key once nothing is sealed under it (crypto-shredding,
//! with a disposal certificate), and `gc --retire-old-keys` re-encrypts
//! what older generations seal so their keys can go.

use std::sync::Arc;

use coffer_catalog::Catalog;
use coffer_keys::{KdfParams, Passphrase};
use coffer_store::{BlobStore, Repo};
use coffer_types::api::{DataKeyView, KeyStatus};
use coffer_types::rfc3339_ms;
use zeroize::Zeroizing;

use crate::{Error, Result};

/// The store's keys as `key status` shows them (never their material).
pub fn status(repo: &Repo, catalog: &Catalog) -> Result<KeyStatus> {
    let events: Vec<_> = catalog.key_events()?;
    let rotated = events
        .iter()
        .find(|(_, e)| matches!(e.event.as_str(), "rotated" | "rewrapped"))
        .map(|(ms, _)| rfc3339_ms(*ms));
    let created = events
        .iter()
        .rev()
        .find(|(_, e)| e.event == "created")
        .map(|(ms, _)| rfc3339_ms(*ms));
    let master = repo.master();
    let destroyed: Vec<(u32, String)> = events
        .iter()
        .filter(|(_, e)| e.event == "destroyed")
        .map(|(ms, e)| (e.generation, rfc3339_ms(*ms)))
        .collect();
    let mut data_keys: Vec<DataKeyView> = repo
        .data_keys()?
        .into_iter()
        .map(|k| DataKeyView {
            generation: k.generation,
            key_id: k.key_id,
            state: if k.current { "current" } else { "active" }.into(),
            containers: k.containers,
            created: k.created_ms.map(rfc3339_ms).or_else(|| {
                (k.generation == master.generation())
                    .then(|| created.clone())
                    .flatten()
            }),
        })
        .collect();
    for (g, at) in destroyed {
        if !data_keys.iter().any(|k| k.generation == g) {
            data_keys.push(DataKeyView {
                generation: g,
                key_id: String::new(),
                state: format!("destroyed {at}"),
                containers: 0,
                created: None,
            });
        }
    }
    data_keys.sort_by_key(|k| k.generation);
    Ok(KeyStatus {
        algorithm: "AES-256-GCM; per-container keys derived with BLAKE3 from the key generation's key (generation 1: the 256-bit master key; later generations: random data keys wrapped by it), the master key sealed under the passphrase with Argon2id".into(),
        store: repo.config().store_id.to_hex(),
        master_key_id: master.key_id(),
        key_files: repo.key_files()?.len() as u64,
        data_keys,
        rotated,
        events: events.into_iter().map(|(_, e)| e).collect(),
    })
}

/// Starts a new data key generation (new data is sealed under it), recorded
/// as `rotated`.
pub fn rotate_data_key(
    repo: &Repo,
    catalog: &Catalog,
    identity: &str,
    now_ms: i64,
) -> Result<coffer_store::DataKeyInfo> {
    let k = repo.rotate_data_key(now_ms)?;
    catalog.record_key_event(
        now_ms,
        "rotated",
        k.generation,
        identity,
        &format!(
            "data key generation {} ({}) seals new data from now on",
            k.generation, k.key_id
        ),
    )?;
    Ok(k)
}

/// When the current data key generation began: its data key's creation,
/// or for generation 1 the catalog's `created` event (recorded now if
/// there is none, so a schedule has a start).
pub fn current_key_since(repo: &Repo, catalog: &Catalog, now_ms: i64) -> Result<i64> {
    let keys = repo.data_keys()?;
    if let Some(ms) = keys.iter().find(|k| k.current).and_then(|k| k.created_ms) {
        return Ok(ms);
    }
    if let Some((ms, _)) = catalog
        .key_events()?
        .into_iter()
        .rev()
        .find(|(_, e)| e.event == "created")
    {
        return Ok(ms);
    }
    catalog.record_key_event(
        now_ms,
        "created",
        repo.master().generation(),
        "system",
        &format!(
            "master key {} first seen by the key schedule",
            repo.master().key_id()
        ),
    )?;
    Ok(now_ms)
}

/// Re-wraps the master key under `new` (the old passphrase stops opening
/// the store); data is not re-encrypted.
pub fn rotate_passphrase(
    repo: &Repo,
    catalog: &Catalog,
    new: &Passphrase,
    kdf: KdfParams,
    identity: &str,
) -> Result<String> {
    let file = repo.rewrap(new, kdf)?;
    catalog.record_key_event(
        crate::now_ms(),
        "rewrapped",
        repo.master().generation(),
        identity,
        &format!(
            "master key {} sealed under a new passphrase as '{file}'; the previous key files were deleted",
            repo.master().key_id()
        ),
    )?;
    Ok(file)
}

/// The paper key (escrow copy), recorded as exported.
pub fn export_paper(repo: &Repo, catalog: &Catalog, identity: &str) -> Result<Zeroizing<String>> {
    let paper = repo.master().paper_key(&repo.config().store_id.0);
    catalog.record_key_event(
        crate::now_ms(),
        "exported",
        repo.master().generation(),
        identity,
        &format!("paper key of master key {} printed", repo.master().key_id()),
    )?;
    Ok(paper)
}

/// Restores access from a paper key: checks its checksums, that it is this
/// store's, and that it opens the store; then seals it under `pass` as a new
/// key file. Returns the key id.
pub fn import_paper(
    blobs: Arc<dyn BlobStore>,
    catalog: &Catalog,
    paper: &str,
    pass: &Passphrase,
    kdf: KdfParams,
    identity: &str,
) -> Result<String> {
    let (store, master) =
        coffer_keys::parse_paper_key(paper).map_err(|e| Error::Invalid(e.to_string()))?;
    let config = coffer_store::StoreConfig::read(blobs.as_ref())?;
    if config.store_id.0 != store {
        return Err(Error::Invalid(format!(
            "this paper key belongs to store {}, not to {}",
            hex::encode(store),
            config.store_id.to_hex()
        )));
    }
    let repo = Repo::open_with_master(blobs, master)?;
    let file = repo.add_key_file(pass, kdf)?;
    let id = repo.master().key_id();
    catalog.record_key_event(
        crate::now_ms(),
        "imported",
        repo.master().generation(),
        identity,
        &format!(
            "paper key of master key {id} imported and sealed under a new passphrase as '{file}'"
        ),
    )?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gc::tests::{World, pass};

    fn kdf() -> KdfParams {
        KdfParams {
            m_kib: 64,
            t: 1,
            p: 1,
        }
    }

    #[test]
    fn rotating_the_passphrase_and_importing_a_paper_key_keep_the_data() {
        let w = World::new();
        let repo = w.repo();
        crate::gc::tests::write_files(&w.src(), 0, 3);
        let snap = w.backup(&repo);
        let cat = w.catalog();
        let before = status(&repo, &cat).unwrap();
        assert_eq!(before.key_files, 1);

        let new = Passphrase::new(b"a brand new passphrase".to_vec()).unwrap();
        rotate_passphrase(&repo, &cat, &new, kdf(), "officer").unwrap();
        let blobs: Arc<dyn BlobStore> = Arc::new(coffer_store::DirStore::new(w.store()));
        assert!(
            Repo::open(blobs.clone(), &pass()).is_err(),
            "the old passphrase is gone"
        );
        let reopened = Repo::open(blobs.clone(), &new).unwrap();
        crate::gc::tests::assert_restores(&w, &reopened, &snap, &w.src());
        let after = status(&reopened, &cat).unwrap();
        assert_eq!(after.master_key_id, before.master_key_id);
        assert!(after.rotated.is_some());
        assert_eq!(after.events[0].event, "rewrapped");

        // Escrow: the paper key recovers the store when the passphrase is lost.
        let paper = export_paper(&reopened, &cat, "officer").unwrap();
        let lost = Passphrase::new(b"recovered after the officer left".to_vec()).unwrap();
        // One digit of line 1 mistyped.
        let at = paper.find("\n1: ").unwrap() + 4;
        let digit = if &paper[at..=at] == "0" { "1" } else { "0" };
        let typo = format!("{}{digit}{}", &paper[..at], &paper[at + 1..]);
        let e = import_paper(blobs.clone(), &cat, &typo, &lost, kdf(), "officer").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        let id = import_paper(blobs.clone(), &cat, &paper, &lost, kdf(), "officer").unwrap();
        assert_eq!(id, before.master_key_id);
        let again = Repo::open(blobs.clone(), &lost).unwrap();
        crate::gc::tests::assert_restores(&w, &again, &snap, &w.src());
        let events: Vec<String> = status(&again, &cat)
            .unwrap()
            .events
            .into_iter()
            .map(|e| e.event)
            .collect();
        assert_eq!(events, ["imported", "exported", "rewrapped"]);

        // Another store's paper key is refused.
        let other = World::new();
        let other_paper = export_paper(&other.repo(), &other.catalog(), "x").unwrap();
        let e = import_paper(blobs, &cat, &other_paper, &lost, kdf(), "officer").unwrap_err();
        assert!(e.to_string().contains("belongs to store"), "{e}");
    }

    #[test]
    fn data_keys_rotate_for_new_data_and_are_shredded_once_nothing_needs_them() {
        use crate::gc::tests::{assert_restores, run_gc, walk, write_files};
        let w = World::new();
        let repo = w.repo();
        let cat = w.catalog();
        let a_src = w.dir.path().join("a");
        write_files(&w.src(), 0, 4);
        let a = w.backup(&repo);
        std::fs::rename(w.src(), &a_src).unwrap();
        assert_eq!(repo.data_generation().unwrap(), 1);

        // Generation 2 seals what comes next; generation 1 stays readable.
        let k2 = rotate_data_key(&repo, &cat, "officer", crate::now_ms()).unwrap();
        assert_eq!(k2.generation, 2);
        write_files(&w.src(), 100, 4);
        let b = w.backup(&repo);
        let gens: Vec<(u32, u64, bool)> = repo
            .data_keys()
            .unwrap()
            .iter()
            .map(|k| (k.generation, k.containers, k.current))
            .collect();
        assert!(gens[0].1 > 0 && gens[1].1 > 0, "{gens:?}");
        assert_eq!((gens[1].0, gens[1].2), (2, true));
        let fresh = w.repo();
        assert_eq!(fresh.data_generation().unwrap(), 2);
        assert_restores(&w, &fresh, &a, &a_src);
        assert_restores(&w, &fresh, &b, &w.src());
        // The current generation, and one that still seals data, stay.
        let e = repo.destroy_data_key(2).unwrap_err().to_string();
        assert!(e.contains("rotate first"), "{e}");
        rotate_data_key(&repo, &cat, "officer", crate::now_ms()).unwrap();
        let e = repo.destroy_data_key(2).unwrap_err().to_string();
        assert!(e.contains("still sealed under it"), "{e}");
        let e = repo.destroy_data_key(1).unwrap_err().to_string();
        assert!(e.contains("master key's own"), "{e}");

        // B expires: gc deletes its containers and then generation 2's key,
        // with a certificate; a copy of one of its containers cannot be
        // read by anyone any more.
        let gen2_container = walk(&w.store().join("data"))
            .into_iter()
            .find(|p| {
                let id: coffer_types::ContainerId =
                    p.file_name().unwrap().to_str().unwrap().parse().unwrap();
                repo.container_generation(&id).unwrap() == 2
            })
            .unwrap();
        let kept = std::fs::read(&gen2_container).unwrap();
        repo.delete_snapshot(&b).unwrap();
        cat.delete_snapshot(&b).unwrap();
        let r = run_gc(&w, &repo, crate::gc::GcOptions::default()).unwrap();
        assert_eq!(r.shredded.len(), 1, "{r:?}");
        assert_eq!(r.shredded[0].0, 2);
        let certs = cat.disposals().unwrap();
        let cert = certs.iter().find(|c| !c.keys.is_empty()).unwrap();
        assert!(cert.keys[0].contains("data key generation 2"), "{cert:?}");
        assert!(cert.detail.contains("crypto-shredded"), "{cert:?}");
        assert!(!w.store().join("datakeys/00000002").exists());
        std::fs::write(&gen2_container, &kept).unwrap();
        let after = w.repo();
        let bad = after.bad_containers().unwrap();
        assert!(
            bad.values()
                .any(|why| why.contains("generation 2 is not in this store")),
            "{bad:?}"
        );
        std::fs::remove_file(&gen2_container).unwrap();
        let _ = std::fs::remove_file(
            w.store()
                .join("index")
                .join(gen2_container.file_name().unwrap()),
        );

        // Retiring old keys re-encrypts generation 1's data under 3.
        let repo = w.repo();
        let r = run_gc(
            &w,
            &repo,
            crate::gc::GcOptions {
                retire_before: 3,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(r.stats.containers_compacted > 0, "{r:?}");
        let gens: Vec<(u32, u64)> = repo
            .data_keys()
            .unwrap()
            .iter()
            .map(|k| (k.generation, k.containers))
            .collect();
        assert_eq!(gens[0], (1, 0), "{gens:?}");
        assert_restores(&w, &w.repo(), &a, &a_src);
        let st = status(&w.repo(), &cat).unwrap();
        assert!(
            st.data_keys
                .iter()
                .any(|k| k.generation == 2 && k.state.starts_with("destroyed")),
            "{st:?}"
        );
        assert!(st.events.iter().any(|e| e.event == "destroyed"));
    }
}
