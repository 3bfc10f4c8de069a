//! Tape cartridges, media sets and where each store object sits on them.
//!
//! What a set holds is also on its cartridges (each ends with a tape
//! catalog), so `coffer media recover` rebuilds a store without these rows;
//! they exist so a restore asks for exactly the cartridges it needs and
//! locates straight to each object.

use coffer_types::{Cartridge, CartridgeStatus, MediaSetId, MediaSetInfo, TapeObject};
use rusqlite::{OptionalExtension, params};

use crate::{Catalog, Error, Result};

const CARTRIDGE_COLUMNS: &str = "barcode, media, pool, labelled_ms, worm, media_set, seq, status, \
     files, end_of_data, bytes, written_ms";

type RawCartridge = (
    String,
    String,
    String,
    i64,
    bool,
    Option<String>,
    Option<i64>,
    String,
    i64,
    i64,
    i64,
    Option<i64>,
);

fn upsert_cartridge(conn: &rusqlite::Connection, c: &Cartridge) -> rusqlite::Result<()> {
    conn.execute(
        &format!(
            "INSERT INTO cartridges ({CARTRIDGE_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
             ON CONFLICT (barcode) DO UPDATE SET media = excluded.media, pool = excluded.pool, \
             labelled_ms = excluded.labelled_ms, worm = excluded.worm, \
             media_set = excluded.media_set, seq = excluded.seq, status = excluded.status, \
             files = excluded.files, end_of_data = excluded.end_of_data, bytes = excluded.bytes, \
             written_ms = excluded.written_ms"
        ),
        params![
            c.barcode,
            c.media.to_hex(),
            c.pool,
            c.labelled_ms,
            c.worm,
            c.set.map(|s| s.0.to_hex()),
            c.set.map(|s| i64::from(s.1)),
            c.status.as_str(),
            i64::from(c.files),
            i64::try_from(c.end_of_data).unwrap_or(i64::MAX),
            i64::try_from(c.bytes).unwrap_or(i64::MAX),
            c.written_ms,
        ],
    )?;
    Ok(())
}

impl Catalog {
    fn cartridge_from(&self, raw: RawCartridge) -> Result<Cartridge> {
        let (
            barcode,
            media,
            pool,
            labelled_ms,
            worm,
            set,
            seq,
            status,
            files,
            eod,
            bytes,
            written_ms,
        ) = raw;
        let bad =
            |what: &str| Error::corrupt(self.path(), format!("cartridge {barcode}: bad {what}"));
        let set = match (set, seq) {
            (Some(s), Some(q)) => Some((
                s.parse::<MediaSetId>().map_err(|_| bad("media set"))?,
                u32::try_from(q).map_err(|_| bad("sequence"))?,
            )),
            (None, None) => None,
            _ => return Err(bad("media set / sequence pair")),
        };
        Ok(Cartridge {
            media: media.parse().map_err(|_| bad("media id"))?,
            pool,
            labelled_ms,
            worm,
            set,
            status: status
                .parse::<CartridgeStatus>()
                .map_err(|_| bad("status"))?,
            files: u32::try_from(files).map_err(|_| bad("file count"))?,
            end_of_data: u64::try_from(eod).map_err(|_| bad("end of data"))?,
            bytes: u64::try_from(bytes).map_err(|_| bad("byte count"))?,
            written_ms,
            barcode,
        })
    }

    /// Records a cartridge, replacing what was known about that barcode
    /// (relabelling gives it a new media id and no set). Another cartridge
    /// already holding the same set and sequence number is refused.
    pub fn put_cartridge(&self, c: &Cartridge) -> Result<()> {
        upsert_cartridge(&self.conn, c).map_err(self.sql("recording a cartridge"))
    }

    /// One cartridge by barcode.
    pub fn cartridge(&self, barcode: &str) -> Result<Option<Cartridge>> {
        let raw = self
            .conn
            .query_row(
                &format!("SELECT {CARTRIDGE_COLUMNS} FROM cartridges WHERE barcode = ?1"),
                [barcode],
                crate::tuple::<RawCartridge>,
            )
            .optional()
            .map_err(self.sql("reading a cartridge"))?;
        raw.map(|r| self.cartridge_from(r)).transpose()
    }

    /// Every known cartridge, by barcode.
    pub fn cartridges(&self) -> Result<Vec<Cartridge>> {
        self.rows(
            &format!("SELECT {CARTRIDGE_COLUMNS} FROM cartridges ORDER BY barcode"),
            "listing cartridges",
            crate::tuple::<RawCartridge>,
        )?
        .into_iter()
        .map(|r| self.cartridge_from(r))
        .collect()
    }

    /// Records a new media set.
    pub fn insert_media_set(&self, s: &MediaSetInfo) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO media_sets (id, pool, created_ms, store, fingerprint, wrapped_key, \
                 escrowed, shredded_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    s.id.to_hex(),
                    s.pool,
                    s.created_ms,
                    s.store.to_hex(),
                    s.key_fingerprint,
                    s.wrapped_key,
                    s.escrowed,
                    s.shredded_ms
                ],
            )
            .map_err(self.sql("recording a media set"))?;
        Ok(())
    }

    /// Every media set, oldest first.
    pub fn media_sets(&self) -> Result<Vec<MediaSetInfo>> {
        let rows = self.rows(
            "SELECT id, pool, created_ms, store, fingerprint, wrapped_key, escrowed, shredded_ms \
             FROM media_sets ORDER BY created_ms, id",
            "listing media sets",
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<Vec<u8>>>(5)?,
                    (r.get::<_, bool>(6)?, r.get::<_, Option<i64>>(7)?),
                ))
            },
        )?;
        rows.into_iter()
            .map(
                |(
                    id,
                    pool,
                    created_ms,
                    store,
                    fingerprint,
                    wrapped_key,
                    (escrowed, shredded_ms),
                )| {
                    let bad =
                        |w: &str| Error::corrupt(self.path(), format!("media set {id}: bad {w}"));
                    Ok(MediaSetInfo {
                        id: id.parse().map_err(|_| bad("id"))?,
                        pool,
                        created_ms,
                        store: store.parse().map_err(|_| bad("store id"))?,
                        key_fingerprint: fingerprint,
                        wrapped_key,
                        escrowed,
                        shredded_ms,
                    })
                },
            )
            .collect()
    }

    /// Destroys the catalog's copy of escrowed media set `id`'s key
    /// (crypto-shredding) at `now_ms` and files `certificate`, in one
    /// transaction: a shredded key always has its certificate. Returns the
    /// certificate's number; `None` when the set is not escrowed or was
    /// shredded already (nothing is filed). The key's bytes are overwritten
    /// in the database file (`secure_delete`), not only unlinked.
    pub fn shred_media_set(
        &self,
        id: &MediaSetId,
        now_ms: i64,
        certificate: &crate::NewDisposal,
    ) -> Result<Option<i64>> {
        let tx = self.write_tx("locking a media set key")?;
        tx.pragma_update(None, "secure_delete", true)
            .map_err(self.sql("turning on secure delete"))?;
        let n = tx
            .execute(
                "UPDATE media_sets SET wrapped_key = NULL, shredded_ms = ?2 \
                 WHERE id = ?1 AND escrowed = 1 AND shredded_ms IS NULL",
                params![id.to_hex(), now_ms],
            )
            .map_err(self.sql("destroying a media set key"))?;
        if n == 0 {
            return Ok(None);
        }
        let cert = self.file_disposal(&tx, certificate)?;
        tx.commit()
            .map_err(self.sql("committing a media set key's destruction"))?;
        // Old pages of the write-ahead log may still hold the key: copy
        // them back and truncate the log.
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(self.sql("checkpointing after destroying a key"))?;
        Ok(Some(cert))
    }

    /// A media set by id or unique id prefix.
    pub fn media_set(&self, id_or_prefix: &str) -> Result<MediaSetInfo> {
        let found: Vec<_> = self
            .media_sets()?
            .into_iter()
            .filter(|s| {
                s.id.to_hex()
                    .starts_with(&id_or_prefix.to_ascii_lowercase())
            })
            .collect();
        let n = found.len();
        match <[MediaSetInfo; 1]>::try_from(found) {
            Ok([one]) => Ok(one),
            Err(_) if n == 0 => Err(Error::MediaSetNotFound(id_or_prefix.to_string())),
            Err(_) => Err(Error::AmbiguousMediaSet {
                prefix: id_or_prefix.to_string(),
                count: n,
            }),
        }
    }

    /// The cartridges of a set, by sequence number.
    pub fn set_cartridges(&self, set: &MediaSetId) -> Result<Vec<Cartridge>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {CARTRIDGE_COLUMNS} FROM cartridges WHERE media_set = ?1 ORDER BY seq"
            ))
            .map_err(self.sql("listing a set's cartridges"))?;
        let raws = stmt
            .query_map([set.to_hex()], crate::tuple::<RawCartridge>)
            .map_err(self.sql("listing a set's cartridges"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql("listing a set's cartridges"))?;
        raws.into_iter().map(|r| self.cartridge_from(r)).collect()
    }

    /// Records what one write session put on a cartridge: its new state and
    /// the objects' positions, in one transaction.
    pub fn record_tape_write(&self, cart: &Cartridge, objects: &[TapeObject]) -> Result<()> {
        let what = "recording a tape write";
        let Some((set, _)) = cart.set else {
            return Err(Error::corrupt(
                self.path(),
                format!("cartridge {} has no media set", cart.barcode),
            ));
        };
        let tx = self.write_tx(what)?;
        upsert_cartridge(&tx, cart).map_err(self.sql(what))?;
        {
            let mut stmt = tx
                .prepare(
                    "INSERT OR REPLACE INTO tape_objects \
                     (media_set, key, len, barcode, seq, file, file_start, block, offset) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(self.sql(what))?;
            for o in objects {
                stmt.execute(params![
                    set.to_hex(),
                    o.key,
                    i64::try_from(o.len).unwrap_or(i64::MAX),
                    o.barcode,
                    i64::from(o.seq),
                    i64::from(o.file),
                    i64::try_from(o.file_start).unwrap_or(i64::MAX),
                    i64::try_from(o.block).unwrap_or(i64::MAX),
                    i64::from(o.offset),
                ])
                .map_err(self.sql(what))?;
            }
        }
        tx.commit().map_err(self.sql(what))
    }

    /// Forgets every object recorded on a cartridge (it was erased).
    pub fn forget_tape_objects(&self, barcode: &str) -> Result<usize> {
        self.conn
            .execute("DELETE FROM tape_objects WHERE barcode = ?1", [barcode])
            .map_err(self.sql("forgetting a cartridge's objects"))
    }

    /// Whether a set holds the object `key`.
    pub fn set_holds(&self, set: &MediaSetId, key: &str) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT 1 FROM tape_objects WHERE media_set = ?1 AND key = ?2",
                params![set.to_hex(), key],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
            .map_err(self.sql("looking up an object on a set"))
    }

    /// Every object of a set with its position.
    pub fn tape_objects(&self, set: &MediaSetId) -> Result<Vec<TapeObject>> {
        let what = "listing a set's objects";
        let mut stmt = self
            .conn
            .prepare(
                "SELECT key, len, barcode, seq, file, file_start, block, offset FROM tape_objects \
                 WHERE media_set = ?1 ORDER BY seq, block, offset",
            )
            .map_err(self.sql(what))?;
        let rows = stmt
            .query_map([set.to_hex()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, i64>(7)?,
                ))
            })
            .map_err(self.sql(what))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql(what))?;
        rows.into_iter()
            .map(
                |(key, len, barcode, seq, file, file_start, block, offset)| {
                    let bad = || {
                        Error::corrupt(self.path(), format!("tape object {key}: negative field"))
                    };
                    Ok(TapeObject {
                        len: u64::try_from(len).map_err(|_| bad())?,
                        barcode,
                        seq: u32::try_from(seq).map_err(|_| bad())?,
                        file: u32::try_from(file).map_err(|_| bad())?,
                        file_start: u64::try_from(file_start).map_err(|_| bad())?,
                        block: u64::try_from(block).map_err(|_| bad())?,
                        offset: u32::try_from(offset).map_err(|_| bad())?,
                        key,
                    })
                },
            )
            .collect()
    }
}

impl Catalog {
    /// The media sets holding store object `key` (a snapshot record, a
    /// container), oldest first.
    pub fn sets_holding(&self, key: &str) -> Result<Vec<MediaSetId>> {
        let ids = self.rows_with(
            "SELECT o.media_set FROM tape_objects o JOIN media_sets s ON s.id = o.media_set \
             WHERE o.key = ?1 ORDER BY s.created_ms, s.id",
            [key],
            "finding the media sets holding an object",
            |r| r.get::<_, String>(0),
        )?;
        ids.iter()
            .map(|id| {
                id.parse()
                    .map_err(|_| Error::corrupt(self.path(), format!("media set {id}: bad id")))
            })
            .collect()
    }
}
