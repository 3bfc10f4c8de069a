//! Crypto-shredding of a pool's expired media sets.
//!
//! A set written for a pool with `shred` on keeps its key in escrow: wrapped
//! under the master key in the catalog and in the store object
//! `mediakeys/<set>` (which replicates with the store), never on its
//! cartridges' labels. Once the rotation expires the set, both copies are
//! destroyed and a disposal certificate is filed. The cartridges, whether
//! in the library, on a shelf or in the vault, then hold ciphertext that
//! no key opens, long before they are recycled or destroyed.

use coffer_catalog::{Catalog, NewDisposal};
use coffer_store::BlobStore;

use super::Book;
use crate::set::escrow_key;
use crate::{Error, Result};

/// One set shredded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Shredded {
    /// The media set.
    pub set: String,
    /// Its disposal certificate.
    pub certificate: i64,
}

/// Destroys the escrowed keys of pool `pool`'s expired sets, recording who
/// (`identity`) and when (`now_ms`); returns the sets shredded now.
pub fn expired(
    cat: &Catalog,
    blobs: &dyn BlobStore,
    pool: &str,
    identity: &str,
    now_ms: i64,
) -> Result<Vec<Shredded>> {
    let book = Book::new(cat, identity, now_ms);
    let inv = book.inventory(pool)?;
    let mut out = Vec::new();
    for s in inv.sets.iter().filter(|s| s.expired) {
        let info = match cat.media_set(&s.id) {
            Ok(i) => i,
            Err(coffer_catalog::Error::MediaSetNotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        if !info.escrowed || info.shredded_ms.is_some() {
            continue;
        }
        // The store's copy first: a key the catalog shows destroyed is
        // gone everywhere on this appliance.
        match blobs.delete(&escrow_key(&info.id)) {
            Ok(()) | Err(coffer_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Error::Store(e)),
        }
        let objects = cat.tape_objects(&info.id)?;
        let bytes = objects.iter().map(|o| o.len).sum();
        let certificate = NewDisposal {
            at_ms: now_ms,
            what: format!(
                "media set {} of media pool {pool} ({} set written {} to {}, on {})",
                info.id,
                s.tier,
                s.first,
                s.last,
                s.cartridges.join(", ")
            ),
            keys: info
                .key_fingerprint
                .iter()
                .map(|f| format!("media set {} key {f}", info.id))
                .collect(),
            objects: objects.len() as u64,
            bytes,
            policy: Some(format!(
                "media pool {pool}: the set's retention ended {}",
                s.expires
            )),
            identity: identity.to_string(),
            detail: format!(
                "crypto-shredding: the set's key was held only in escrow, never on its \
                 cartridges; the appliance's copies (this catalog, overwritten in place, and the \
                 store object {}) were destroyed, so the cartridges cannot be read with what the \
                 appliance holds. Copies made before now remain until they are destroyed too: \
                 the store's replicas and bucket mirrors, and catalog exports.",
                escrow_key(&info.id)
            ),
        };
        // The catalog's copy and the certificate commit together.
        let Some(certificate) = cat.shred_media_set(&info.id, now_ms, &certificate)? else {
            continue;
        };
        tracing::info!(set = %info.id, pool, certificate, "media set crypto-shredded");
        out.push(Shredded {
            set: info.id.to_hex(),
            certificate,
        });
    }
    Ok(out)
}
