//! The pool link: the small file in a store directory (`pool.json`) that
//! says the store's objects live on a pool, and which member paths open
//! it. The store directory keeps the catalog; the objects are on the
//! pool's members. The shell's direct mode and `cofferd` open a store
//! through it alike.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, OpenOptions, Pool, PoolMeta, Result};

/// The file in a store directory that says its objects live on a pool.
pub const POOL_LINK: &str = "pool.json";

/// What a store directory records about the pool its objects live on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolLink {
    /// The pool's id.
    pub pool_id: String,
    /// Its name.
    pub name: String,
    /// Member paths when linked: any one that is still a member opens it.
    pub members: Vec<PathBuf>,
}

impl PoolLink {
    /// The link to the pool `meta` describes.
    pub fn of(meta: &PoolMeta) -> PoolLink {
        PoolLink {
            pool_id: meta.id.clone(),
            name: meta.name.clone(),
            members: meta.members.iter().map(|m| m.path.clone()).collect(),
        }
    }

    /// Reads `DIR/pool.json`, if the store is on a pool.
    pub fn read(store: &Path) -> Result<Option<PoolLink>> {
        let p = store.join(POOL_LINK);
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::BadMetadata {
                    path: p,
                    reason: format!("the pool link does not parse: {e}"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", &p, e)),
        }
    }

    /// Writes the link to the pool `meta` describes into the store
    /// directory, replacing any link atomically (a torn link would leave
    /// the store unopenable).
    pub fn write(store: &Path, meta: &PoolMeta) -> Result<()> {
        let link = PoolLink::of(meta);
        let p = store.join(POOL_LINK);
        let tmp = store.join(format!(".{POOL_LINK}.tmp"));
        let text = serde_json::to_vec_pretty(&link).map_err(|e| Error::BadMetadata {
            path: p.clone(),
            reason: e.to_string(),
        })?;
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut f, &text)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &p)?;
            std::fs::File::open(store)?.sync_all()
        };
        write().map_err(|e| Error::io("write", &p, e))
    }

    /// Opens the linked pool through the first member path that holds it.
    pub fn open(&self, opts: &OpenOptions) -> Result<Pool> {
        let mut last = None;
        for p in &self.members {
            match Pool::open(p, opts) {
                Ok(pool) if pool.meta().id == self.pool_id => return Ok(pool),
                Ok(_) => last = Some(format!("'{}' now holds another pool", p.display())),
                Err(e) => last = Some(e.to_string()),
            }
        }
        Err(Error::Unavailable {
            name: format!("{} ({})", self.name, self.pool_id),
            reason: last.unwrap_or_else(|| "the link lists no members".into()),
        })
    }

    /// The first listed member that still carries pool metadata.
    pub fn reachable_member(&self) -> Option<&Path> {
        self.members
            .iter()
            .find(|m| m.join(crate::meta::META_FILE).exists())
            .map(PathBuf::as_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_round_trips_and_a_damaged_one_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let members: Vec<PathBuf> = (0..3)
            .map(|i| {
                let p = t.path().join(format!("d{i}"));
                std::fs::create_dir(&p).unwrap();
                p
            })
            .collect();
        let meta = crate::admin::create(
            &members,
            &crate::admin::CreateOptions {
                name: "tank".into(),
                geometry: None,
                allow_same_device: true,
                block_size: None,
            },
        )
        .unwrap();
        let store = t.path().join("store");
        std::fs::create_dir(&store).unwrap();
        assert_eq!(PoolLink::read(&store).unwrap(), None);
        PoolLink::write(&store, &meta).unwrap();
        let link = PoolLink::read(&store).unwrap().unwrap();
        assert_eq!(link, PoolLink::of(&meta));
        assert_eq!(
            link.open(&OpenOptions::default()).unwrap().meta().id,
            meta.id
        );
        std::fs::write(store.join(POOL_LINK), b"{not json").unwrap();
        let e = PoolLink::read(&store).unwrap_err().to_string();
        assert!(e.contains("does not parse"), "{e}");
        // A link whose members are gone names the pool.
        let gone = PoolLink {
            members: vec![t.path().join("nowhere")],
            ..PoolLink::of(&meta)
        };
        let e = gone.open(&OpenOptions::default()).unwrap_err().to_string();
        assert!(e.contains("tank"), "{e}");
    }
}
