//! Key management: status, re-wrapping the master key under a new
//! passphrase, and the escrow (paper key) export and import. Every change
//! is recorded in the catalog's key history.
//!
//! What is not built: data keys per epoch (new data under new keys on a
//! schedule) and crypto-shredding. A store has one master key; its data
//! keys are derived from it per container.

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
    Ok(KeyStatus {
        algorithm: "AES-256-GCM; per-container and per-object keys derived with BLAKE3 from a 256-bit master key, sealed under the passphrase with Argon2id".into(),
        store: repo.config().store_id.to_hex(),
        master_key_id: master.key_id(),
        key_files: repo.key_files()?.len() as u64,
        data_keys: vec![DataKeyView {
            generation: master.generation(),
            key_id: master.key_id(),
            state: "current".into(),
            containers: repo.container_ids()?.len() as u64,
            created,
        }],
        rotated,
        events: events.into_iter().map(|(_, e)| e).collect(),
    })
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
}
