//! Media sets: labelling cartridges, writing snapshots to a set through a
//! changer, restoring from a set, and recovering a store from cartridges
//! and the passphrase alone.
//!
//! The SQLite catalog remembers cartridges, sets and where each object sits,
//! so a restore loads exactly the cartridges it needs and locates straight to
//! each object. Every cartridge also carries that knowledge itself (labels,
//! tape catalog), which is what [`recover`] reads when the appliance and its
//! catalog are gone.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::Arc;

use coffer_catalog::{Catalog, JobEnd, NewJob};
use coffer_engine::{Actor, now_ms};
use coffer_keys::MediaSetKey;
use coffer_store::{Extent, Repo, SnapshotRecord};
use coffer_tape::{DriveKey, Library, MediaChanger, TapeDrive};
use coffer_types::{
    BackupStats, Cartridge, CartridgeStatus, ContainerId, JobKind, JobStatus, MediaId, MediaSetId,
    MediaSetInfo, Scope, SnapshotId, TapeObject,
};

use crate::archive::{ArchiveWriter, ObjectPos};
use crate::format::{
    Content, DEFAULT_BLOCK_SIZE, LABEL_BLOCK_SIZE, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE,
};
use crate::label::{
    CATALOG_FORMAT, Doc, MEDIA_LABEL_FORMAT, SET_LABEL_FORMAT, read_doc, write_doc,
};
use crate::{Error, MediaLabel, Result, SetLabel, TapeCatalog, TapeRef};

/// Progress callback: (what is happening, bytes done, bytes in total).
pub type OnProgress<'a> = &'a (dyn Fn(&str, u64, u64) + Sync);

/// A changer and one of its drives, as a job uses them.
pub struct Deck {
    changer: Box<dyn MediaChanger>,
    drive: Box<dyn TapeDrive>,
    index: u16,
}

impl Deck {
    /// Takes drive `index` of a library (exclusively) and its changer.
    pub fn open(lib: &mut dyn Library, index: u16) -> Result<Deck> {
        Ok(Deck {
            changer: lib.changer()?,
            drive: lib.drive(index)?,
            index,
        })
    }

    /// The drive.
    pub fn drive(&mut self) -> &mut dyn TapeDrive {
        self.drive.as_mut()
    }

    /// The changer.
    pub fn changer(&mut self) -> &mut dyn MediaChanger {
        self.changer.as_mut()
    }

    /// Loads the cartridge `barcode` and rewinds it; `missing` explains,
    /// when it is not in the library, which cartridge is needed and why.
    pub fn load(&mut self, barcode: &str, missing: impl FnOnce() -> Error) -> Result<()> {
        let inv = self.changer.inventory()?;
        let here = inv
            .drives
            .get(usize::from(self.index))
            .and_then(|d| d.barcode.clone());
        if here.as_deref() == Some(barcode) {
            self.drive.load()?;
            return Ok(());
        }
        if inv.find(barcode).is_none() {
            return Err(missing());
        }
        if here.is_some() {
            self.unload()?;
        }
        self.changer.load_barcode(barcode, self.index)?;
        self.drive.load()?;
        Ok(())
    }

    /// Rewinds, unloads and returns the cartridge to a slot.
    pub fn unload(&mut self) -> Result<()> {
        let inv = self.changer.inventory()?;
        if inv
            .drives
            .get(usize::from(self.index))
            .is_some_and(|d| d.full)
        {
            self.drive.unload()?;
            self.changer.unload_drive(self.index)?;
        }
        Ok(())
    }
}

/// Labels of a cartridge.
#[derive(Debug, Clone)]
pub struct Labels {
    /// The media label, if any.
    pub media: Option<MediaLabel>,
    /// The media-set label, if any.
    pub set: Option<SetLabel>,
}

/// Reads the labels of the loaded cartridge (rewinding first).
pub fn read_labels(drive: &mut dyn TapeDrive, barcode: &str) -> Result<Labels> {
    drive.rewind()?;
    let label_err = |e: Error| match e {
        Error::Format(reason) => Error::Label {
            barcode: barcode.to_string(),
            reason: format!("not a Coffer cartridge or its label is damaged: {reason}"),
        },
        e => e,
    };
    let media = match read_doc::<MediaLabel>(drive, Content::MediaLabel, None).map_err(label_err)? {
        Doc::Blank => {
            return Ok(Labels {
                media: None,
                set: None,
            });
        }
        Doc::Found(l) => l,
    };
    if media.format != MEDIA_LABEL_FORMAT {
        return Err(Error::Label {
            barcode: barcode.into(),
            reason: format!(
                "media label format {:?} is not one this Coffer reads",
                media.format
            ),
        });
    }
    let set = match read_doc::<SetLabel>(drive, Content::SetLabel, None).map_err(label_err)? {
        Doc::Blank => None,
        Doc::Found(s) => {
            if s.format != SET_LABEL_FORMAT {
                return Err(Error::Label {
                    barcode: barcode.into(),
                    reason: format!(
                        "media-set label format {:?} is not one this Coffer reads",
                        s.format
                    ),
                });
            }
            if s.media != media.media {
                return Err(Error::Label {
                    barcode: barcode.into(),
                    reason: "its media-set label belongs to another labelling of the cartridge"
                        .into(),
                });
            }
            Some(s)
        }
    };
    Ok(Labels {
        media: Some(media),
        set,
    })
}

/// Labels the cartridge `barcode` for `pool`. A cartridge that already
/// holds anything is refused unless `force` (which erases it; a WORM
/// cartridge refuses even then).
pub fn label(
    lib: &mut dyn Library,
    catalog: &Catalog,
    drive: u16,
    barcode: &str,
    pool: &str,
    force: bool,
) -> Result<Cartridge> {
    coffer_tape::virtual_lib::check_barcode(barcode)?;
    check_pool(pool)?;
    let mut deck = Deck::open(lib, drive)?;
    deck.load(barcode, || {
        Error::Tape(coffer_tape::Error::CartridgeMissing {
            device: "the library".into(),
            barcode: barcode.into(),
        })
    })?;
    let st = deck.drive().status()?;
    if st.cleaning {
        return Err(Error::Label {
            barcode: barcode.into(),
            reason: "is a cleaning cartridge".into(),
        });
    }
    let existing = match read_labels(deck.drive(), barcode) {
        Ok(l) => l
            .media
            .map(|m| format!("is labelled for pool '{}'", m.pool)),
        Err(Error::Label { reason, .. }) => {
            Some(format!("holds data Coffer cannot read ({reason})"))
        }
        Err(e) => return Err(e),
    };
    if let Some(what) = existing {
        if !force {
            return Err(Error::Label {
                barcode: barcode.into(),
                reason: format!("{what}; relabelling erases it: add --force if that is intended"),
            });
        }
        if st.worm {
            return Err(Error::Label {
                barcode: barcode.into(),
                reason: format!("{what} and is WORM: it cannot be relabelled"),
            });
        }
        if let Some(c) = catalog.cartridge(barcode)?
            && let Some((set, seq)) = c.set
        {
            // Its objects are no longer on the set: the next write puts
            // them on another cartridge.
            tracing::warn!(barcode, set = %set, seq, "relabelling erases a cartridge of a media set");
            catalog.forget_tape_objects(barcode)?;
        }
    }
    let mut media = [0u8; 16];
    coffer_keys::random_bytes(&mut media)?;
    let label = MediaLabel {
        format: MEDIA_LABEL_FORMAT.into(),
        media: MediaId(media),
        barcode: barcode.into(),
        pool: pool.into(),
        labelled_ms: now_ms(),
    };
    deck.drive().rewind()?;
    write_doc(
        deck.drive(),
        Content::MediaLabel,
        &label,
        None,
        LABEL_BLOCK_SIZE,
    )?;
    let eod = deck.drive().position()?.block;
    let cart = Cartridge {
        barcode: barcode.into(),
        media: label.media,
        pool: pool.into(),
        labelled_ms: label.labelled_ms,
        worm: st.worm,
        set: None,
        status: CartridgeStatus::Labelled,
        files: 1,
        end_of_data: eod,
        bytes: 0,
        written_ms: None,
    };
    catalog.put_cartridge(&cart)?;
    deck.unload()?;
    Ok(cart)
}

/// Whether a key read from tape may go into a store: a container, its
/// index copy, a snapshot record or a data key (wrapped by the master key:
/// one that does not open under it is ignored). Config and key files come
/// only from the media-set label, never from archive contents.
pub fn storable_key(key: &str) -> bool {
    coffer_store::check_key(key).is_ok()
        && (key.starts_with("data/")
            || key.starts_with("index/")
            || key.starts_with("snapshots/")
            || key.starts_with("datakeys/"))
}

fn check_pool(pool: &str) -> Result<()> {
    if pool.is_empty()
        || pool.len() > 64
        || !pool
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::Invalid(format!(
            "pool name {pool:?}: use 1-64 letters, digits, '-' or '_'"
        )));
    }
    Ok(())
}

/// What to write.
#[derive(Debug, Clone)]
pub struct WriteRequest {
    /// Media pool.
    pub pool: String,
    /// Snapshots to copy (empty: every snapshot in the store).
    pub snapshots: Vec<SnapshotId>,
    /// Continue this set; `None`: the pool's newest set that can still
    /// append, or a new set when there is none or `new_set`.
    pub set: Option<MediaSetId>,
    /// Always start a new set.
    pub new_set: bool,
    /// Seal the set under its own key (default on).
    pub encrypt: bool,
    /// Also turn on the drive's hardware encryption (LTO AES-256-GCM).
    pub drive_encryption: bool,
    /// The drive to use.
    pub drive: u16,
    /// Block size.
    pub block_size: u32,
    /// Bytes per archive before a filemark (a seek point).
    pub archive_bytes: u64,
    /// Only these cartridges may start a set or take its next part (the
    /// ones the media rotation chose); `None`: any labelled cartridge of
    /// the pool.
    pub only: Option<Vec<String>>,
    /// The job log row to record the write in, already running (a queued
    /// job the service started); `None`: a new row.
    pub job: Option<i64>,
    /// A new set's key is held in escrow (the catalog and the store's
    /// `mediakeys/` object, which replicates offsite), not on the labels,
    /// so that destroying the escrow shreds the set wherever its
    /// cartridges are. Reading the set then needs the store (or its
    /// replica), not only the passphrase.
    pub escrow: bool,
}

impl WriteRequest {
    /// Defaults for `pool`.
    pub fn new(pool: &str) -> WriteRequest {
        WriteRequest {
            pool: pool.into(),
            snapshots: Vec::new(),
            set: None,
            new_set: false,
            encrypt: true,
            drive_encryption: false,
            drive: 0,
            block_size: DEFAULT_BLOCK_SIZE,
            archive_bytes: 4 << 30,
            only: None,
            job: None,
            escrow: false,
        }
    }
}

/// What a write did.
#[derive(Debug, Clone, Default)]
pub struct WriteOutcome {
    /// The set written to.
    pub set: Option<MediaSetId>,
    /// Cartridges written, in order.
    pub cartridges: Vec<String>,
    /// Objects written.
    pub objects: u64,
    /// Bytes of objects written.
    pub bytes: u64,
    /// Objects the set already held (skipped).
    pub skipped: u64,
    /// Snapshots now complete on the set.
    pub snapshots: Vec<SnapshotId>,
    /// Job log row.
    pub job_id: i64,
}

impl WriteOutcome {
    /// One line for the job log: the set, what was written, onto which
    /// cartridges.
    pub fn summary(&self) -> String {
        format!(
            "media set {}: {} objects, {} bytes on {}; {} already on the set",
            self.set.map(|s| s.to_hex()).unwrap_or_default(),
            self.objects,
            self.bytes,
            if self.cartridges.is_empty() {
                "no new cartridge".to_string()
            } else {
                self.cartridges.join(", ")
            },
            self.skipped
        )
    }
}

/// The containers a snapshot needs (its manifest's and its files').
pub fn snapshot_containers(repo: &Repo, rec: &SnapshotRecord) -> Result<BTreeSet<ContainerId>> {
    let mut out = BTreeSet::new();
    let mut add = |id: &coffer_types::ChunkId| -> Result<()> {
        match repo.locate(id)? {
            Some(loc) => {
                out.insert(loc.container);
                Ok(())
            }
            None => Err(Error::Invalid(format!(
                "snapshot {} refers to a chunk the store does not hold; run `coffer verify`",
                rec.info.id.short()
            ))),
        }
    };
    for id in &rec.manifest {
        add(id)?;
    }
    for e in repo.manifest(rec) {
        for x in &e?.extents {
            if let Extent::Data { id, .. } = x {
                add(id)?;
            }
        }
    }
    Ok(out)
}

/// The object keys that copy `snapshots` completely, in the order they go
/// to tape: container index copies, containers, then snapshot records (the
/// store's own commit order).
pub fn objects_for(repo: &Repo, snapshots: &[SnapshotId]) -> Result<Vec<String>> {
    let mut containers = BTreeSet::new();
    for id in snapshots {
        let rec = repo.load_snapshot(id)?;
        containers.extend(snapshot_containers(repo, &rec)?);
    }
    // The data keys (generation 2 on) the containers are sealed under,
    // first: a new machine needs them to read anything after them.
    let mut generations = BTreeSet::new();
    for c in &containers {
        let g = repo.container_generation(c)?;
        if g >= 2 && g != u32::MAX {
            generations.insert(g);
        }
    }
    let mut keys: Vec<String> = generations
        .into_iter()
        .map(coffer_store::data_key_object)
        .collect();
    keys.extend(containers.iter().map(coffer_store::container::index_key));
    keys.extend(containers.iter().map(coffer_store::container::data_key));
    keys.extend(snapshots.iter().map(coffer_store::snapshot::record_key));
    Ok(keys)
}

/// The store object holding escrowed media set `id`'s wrapped key.
pub fn escrow_key(id: &MediaSetId) -> String {
    format!("mediakeys/{}", id.to_hex())
}

/// A media set's key, unwrapped with the store's master key: `None` for an
/// unencrypted set; an error once the key has been destroyed (the set's
/// secure disposal).
pub fn set_key(
    master: &coffer_keys::MasterKey,
    info: &MediaSetInfo,
) -> Result<Option<MediaSetKey>> {
    match (&info.wrapped_key, &info.key_fingerprint) {
        (Some(w), _) => Ok(Some(MediaSetKey::unwrap_with(master, &info.id.0, w)?)),
        (None, Some(_)) => Err(Error::Invalid(format!(
            "media set {}'s key was destroyed{} (secure disposal, crypto-shredding): it can no longer be read or appended to",
            info.id.short(),
            info.shredded_ms
                .map(|t| format!(" on {}", coffer_types::rfc3339_ms(t)))
                .unwrap_or_default()
        ))),
        (None, None) => Ok(None),
    }
}

/// Starts a tape job's row in the job log.
pub(crate) fn begin_job(
    catalog: &Catalog,
    kind: JobKind,
    what: String,
    actor: &Actor,
) -> Result<i64> {
    Ok(catalog.begin_job(&NewJob {
        kind,
        asset: None,
        level: None,
        scope: Scope {
            paths: vec![what],
            excludes: Vec::new(),
            one_file_system: false,
        },
        started_ms: now_ms(),
        identity: actor.identity.clone(),
        host: actor.host.clone(),
        pid: std::process::id(),
    })?)
}

/// Ends a tape job's row: its status, the bytes it moved, its messages.
pub(crate) fn finish_job(
    catalog: &Catalog,
    id: i64,
    status: JobStatus,
    bytes: u64,
    messages: &[String],
    snapshot: Option<SnapshotId>,
) -> Result<()> {
    Ok(catalog.finish_job(
        id,
        &JobEnd {
            status,
            ended_ms: now_ms(),
            stats: BackupStats {
                bytes_read: bytes,
                ..BackupStats::default()
            },
            messages,
            snapshot,
        },
    )?)
}

struct OpenSet {
    info: MediaSetInfo,
    key: Option<MediaSetKey>,
    label_base: SetLabel,
}

fn store_keys(repo: &Repo) -> Result<Vec<(String, String)>> {
    let blobs = repo.blobs();
    blobs
        .list("keys/")?
        .into_iter()
        .map(|k| Ok((k.clone(), hex::encode(blobs.get(&k)?))))
        .collect()
}

fn open_or_create_set(repo: &Repo, catalog: &Catalog, req: &WriteRequest) -> Result<OpenSet> {
    let store = repo.config().store_id;
    let existing = match req.set {
        Some(id) => Some(catalog.media_set(&id.to_hex())?),
        None if req.new_set => None,
        None => {
            // The pool's newest set continues (on a new cartridge once its
            // last one is full) until a new set is asked for.
            catalog
                .media_sets()?
                .into_iter()
                .rev()
                .find(|s| s.pool == req.pool && s.store == store)
        }
    };
    let base = |info: &MediaSetInfo, wrapped: Option<&Vec<u8>>| -> Result<SetLabel> {
        Ok(SetLabel {
            format: SET_LABEL_FORMAT.into(),
            set: info.id,
            seq: 0,
            media: MediaId([0; 16]),
            pool: info.pool.clone(),
            created_ms: info.created_ms,
            store,
            store_config: hex::encode(repo.blobs().get("config")?),
            store_keys: store_keys(repo)?,
            key_fingerprint: info.key_fingerprint.clone(),
            wrapped_key: wrapped.map(hex::encode),
            block_size: req.block_size,
        })
    };
    if let Some(info) = existing {
        if info.key_fingerprint.is_some() != req.encrypt {
            return Err(Error::Invalid(format!(
                "media set {} is {}encrypted and this write asks {}: start a new set with --new-set",
                info.id.short(),
                if info.key_fingerprint.is_some() {
                    ""
                } else {
                    "not "
                },
                if req.encrypt {
                    "for encryption"
                } else {
                    "for none"
                }
            )));
        }
        if info.store != store {
            return Err(Error::Invalid(format!(
                "media set {} copies another store ({})",
                info.id.short(),
                info.store.short()
            )));
        }
        let key = set_key(repo.master(), &info)?;
        let on_label = info.wrapped_key.as_ref().filter(|_| !info.escrowed);
        let label_base = base(&info, on_label)?;
        return Ok(OpenSet {
            info,
            key,
            label_base,
        });
    }
    let mut id = [0u8; 16];
    coffer_keys::random_bytes(&mut id)?;
    let id = MediaSetId(id);
    let key = if req.encrypt {
        Some(MediaSetKey::generate()?)
    } else {
        None
    };
    let wrapped = key
        .as_ref()
        .map(|k| k.wrap(repo.master(), &id.0))
        .transpose()?;
    let escrowed = req.escrow && wrapped.is_some();
    let info = MediaSetInfo {
        id,
        pool: req.pool.clone(),
        created_ms: now_ms(),
        store,
        key_fingerprint: key.as_ref().map(MediaSetKey::fingerprint),
        wrapped_key: wrapped.clone(),
        escrowed,
        shredded_ms: None,
    };
    if let (true, Some(w)) = (escrowed, &wrapped) {
        // In the store before the catalog: a set the catalog knows always
        // has its escrow copy.
        repo.blobs().put(&escrow_key(&id), w)?;
    }
    catalog.insert_media_set(&info)?;
    let label_base = base(&info, wrapped.as_ref().filter(|_| !escrowed))?;
    Ok(OpenSet {
        info,
        key,
        label_base,
    })
}

/// One cartridge being written.
struct Mounted {
    cart: Cartridge,
    seq: u32,
    /// Objects on this cartridge from earlier sessions and this one.
    objects: Vec<ObjectPos>,
    new_objects: Vec<ObjectPos>,
}

struct Writer<'a> {
    repo: &'a Repo,
    catalog: &'a Catalog,
    deck: Deck,
    set: OpenSet,
    req: &'a WriteRequest,
    out: WriteOutcome,
    tapes: Vec<TapeRef>,
}

impl Writer<'_> {
    /// Turns the drive's hardware encryption on with the set's drive key,
    /// when asked for.
    fn hardware_encryption(&mut self) -> Result<()> {
        if self.req.drive_encryption
            && let Some(k) = self.set.key.as_ref()
        {
            let key = DriveKey::new(*k.drive_key_bytes(), self.set.info.id.0.to_vec());
            self.deck.drive().set_encryption(Some(&key))?;
        }
        Ok(())
    }

    /// Loads the set's cartridge that can still append, or the next free
    /// cartridge of the pool, checks its labels and positions it at end of data.
    fn mount(&mut self) -> Result<Mounted> {
        let set_id = self.set.info.id;
        let carts = self.catalog.set_cartridges(&set_id)?;
        self.tapes = carts
            .iter()
            .filter_map(|c| {
                Some(TapeRef {
                    seq: c.set?.1,
                    barcode: c.barcode.clone(),
                    media: c.media,
                })
            })
            .collect();
        if let Some(last) = carts
            .last()
            .filter(|c| c.status == CartridgeStatus::Writing)
        {
            let seq = last.set.map(|s| s.1).unwrap_or(1);
            let barcode = last.barcode.clone();
            self.deck.load(&barcode, || Error::NeedCartridge {
                barcode: barcode.clone(),
                set: set_id.short(),
                seq,
                reason: "the set continues on it".into(),
            })?;
            let labels = read_labels(self.deck.drive(), &barcode)?;
            let ok = labels.media.as_ref().is_some_and(|m| m.media == last.media)
                && labels
                    .set
                    .as_ref()
                    .is_some_and(|s| s.set == set_id && s.seq == seq);
            if !ok {
                return Err(Error::Foreign {
                    barcode,
                    reason: format!(
                        "is not the cartridge the catalog expects (media set {}, sequence {seq}): \
                         it was relabelled or swapped",
                        set_id.short()
                    ),
                });
            }
            // Append after everything on it, never over it.
            self.deck.drive().space(coffer_tape::SpaceOver::EndOfData)?;
            let mut cart = last.clone();
            if self.deck.drive().position()?.block != last.end_of_data {
                // An interrupted session left a tape file without its
                // filemark: close it, so the next archive is a file of its own.
                tracing::warn!(barcode = %barcode, "closing a tape file an interrupted write left open");
                self.deck.drive().write_filemarks(1)?;
            }
            cart.files = u32::try_from(self.deck.drive().position()?.file).unwrap_or(u32::MAX);
            self.hardware_encryption()?;
            if !self.out.cartridges.contains(&barcode) {
                self.out.cartridges.push(barcode.clone());
            }
            let objects = self
                .catalog
                .tape_objects(&set_id)?
                .into_iter()
                .filter(|o| o.barcode == last.barcode)
                .map(|o| ObjectPos {
                    key: o.key,
                    len: o.len,
                    file: o.file,
                    file_start: o.file_start,
                    block: o.block,
                    offset: o.offset,
                })
                .collect();
            return Ok(Mounted {
                cart,
                seq,
                objects,
                new_objects: Vec::new(),
            });
        }
        let seq = carts.last().and_then(|c| c.set).map_or(1, |s| s.1 + 1);
        let inv = self.deck.changer().inventory()?;
        let present: HashSet<String> = inv.all().filter_map(|e| e.barcode.clone()).collect();
        let mut candidates: Vec<Cartridge> = self
            .catalog
            .cartridges()?
            .into_iter()
            .filter(|c| {
                c.pool == self.set.info.pool
                    && c.status == CartridgeStatus::Labelled
                    && c.set.is_none()
                    && present.contains(&c.barcode)
                    && self
                        .req
                        .only
                        .as_ref()
                        .is_none_or(|o| o.contains(&c.barcode))
            })
            .collect();
        candidates.sort_by(|a, b| a.barcode.cmp(&b.barcode));
        for cand in candidates {
            let barcode = cand.barcode.clone();
            self.deck.load(&barcode, || Error::NoWritableCartridge {
                pool: self.set.info.pool.clone(),
            })?;
            let labels = read_labels(self.deck.drive(), &barcode)?;
            let Some(media) = labels.media.filter(|m| m.media == cand.media) else {
                tracing::warn!(
                    barcode,
                    "cartridge's label differs from the catalog; skipped"
                );
                self.deck.unload()?;
                continue;
            };
            if let Some(s) = labels.set {
                // It holds a set the catalog does not know of: never overwrite.
                return Err(Error::Foreign {
                    barcode,
                    reason: format!(
                        "already holds media set {} (pool '{}')",
                        s.set.short(),
                        s.pool
                    ),
                });
            }
            if media.pool != self.set.info.pool {
                return Err(Error::Foreign {
                    barcode,
                    reason: format!(
                        "is labelled for pool '{}', not '{}'",
                        media.pool, self.set.info.pool
                    ),
                });
            }
            // The drive is after the media label's filemark, at file 1.
            let label = SetLabel {
                seq,
                media: media.media,
                ..self.set.label_base.clone()
            };
            write_doc(
                self.deck.drive(),
                Content::SetLabel,
                &label,
                None,
                LABEL_BLOCK_SIZE,
            )?;
            // Labels stay readable without keys; what follows may be
            // encrypted by the drive too.
            self.hardware_encryption()?;
            let mut cart = cand;
            cart.set = Some((self.set.info.id, seq));
            cart.status = CartridgeStatus::Writing;
            cart.files = 2;
            cart.end_of_data = self.deck.drive().position()?.block;
            cart.written_ms = Some(now_ms());
            self.catalog.record_tape_write(&cart, &[])?;
            self.tapes.push(TapeRef {
                seq,
                barcode: cart.barcode.clone(),
                media: cart.media,
            });
            self.out.cartridges.push(cart.barcode.clone());
            return Ok(Mounted {
                cart,
                seq,
                objects: Vec::new(),
                new_objects: Vec::new(),
            });
        }
        Err(Error::NoWritableCartridge {
            pool: self.set.info.pool.clone(),
        })
    }

    /// Writes the tape catalog (unless the medium is out of room) and
    /// records the cartridge's new state. Returns whether the catalog is on
    /// the cartridge.
    fn close_tape(
        &mut self,
        mut m: Mounted,
        mut full: bool,
        room_for_catalog: bool,
        continues: bool,
    ) -> Result<bool> {
        let mut written = false;
        if !room_for_catalog {
            // Nothing more fits, but what the drive holds in its buffer must
            // be on the medium before the catalog says it is (WRITE
            // FILEMARKS with a count of 0 flushes).
            match self.deck.drive().write_filemarks(0) {
                Ok(_) | Err(coffer_tape::Error::EndOfMedium { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if room_for_catalog {
            let cat = TapeCatalog {
                format: CATALOG_FORMAT.into(),
                set: self.set.info.id,
                tape: TapeRef {
                    seq: m.seq,
                    barcode: m.cart.barcode.clone(),
                    media: m.cart.media,
                },
                tapes: self.tapes.clone(),
                objects: m.objects.clone(),
                written_ms: now_ms(),
                continues,
            };
            let key = self.set.key.as_ref();
            match write_doc(
                self.deck.drive.as_mut(),
                Content::Catalog,
                &cat,
                key,
                self.req.block_size,
            ) {
                Ok(_) => {
                    m.cart.files += 1;
                    written = true;
                }
                Err(Error::Tape(coffer_tape::Error::EndOfMedium { .. })) => {
                    tracing::warn!(barcode = %m.cart.barcode, "no room left for the tape catalog");
                    full = true;
                }
                Err(e) => return Err(e),
            }
        }
        m.cart.end_of_data = self.deck.drive().position()?.block;
        m.cart.status = if full {
            CartridgeStatus::Full
        } else {
            CartridgeStatus::Writing
        };
        m.cart.written_ms = Some(now_ms());
        let objects: Vec<TapeObject> = m
            .new_objects
            .iter()
            .map(|o| TapeObject {
                key: o.key.clone(),
                len: o.len,
                barcode: m.cart.barcode.clone(),
                seq: m.seq,
                file: o.file,
                file_start: o.file_start,
                block: o.block,
                offset: o.offset,
            })
            .collect();
        self.catalog.record_tape_write(&m.cart, &objects)?;
        if full {
            self.deck.unload()?;
        }
        Ok(written)
    }

    fn run(&mut self, keys: Vec<String>, progress: OnProgress<'_>) -> Result<()> {
        let blobs = Arc::clone(self.repo.blobs());
        // Sizes once: for the progress total and to size each read buffer.
        let keys: Vec<(String, u64)> = keys
            .into_iter()
            .map(|k| blobs.size(&k).map(|n| (k, n)))
            .collect::<coffer_store::Result<_>>()?;
        let total: u64 = keys.iter().map(|(_, n)| n).sum();
        let mut done = 0u64;
        // Objects are read from the store on a second thread while the drive
        // writes, two ahead.
        let (tx, rx) = std::sync::mpsc::sync_channel::<(String, coffer_store::Result<Vec<u8>>)>(2);
        // Buffers come back once the drive has an object, so tens of MiB are
        // not mapped, faulted in and unmapped for every container.
        let (free_tx, free_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let remaining = keys.len();
        std::thread::scope(|s| -> Result<()> {
            // Owned by this closure, so an early return drops the receiver
            // and the reader thread stops instead of blocking the scope.
            let mut source = Source {
                rx,
                free: free_tx,
                retry: VecDeque::new(),
                blobs: Arc::clone(self.repo.blobs()),
                remaining,
            };
            s.spawn(move || {
                // At most this many buffers: two queued, one being read, and
                // the ones the writer holds until the drive has them.
                const BUFFERS: usize = 5;
                let mut made = 0;
                for (k, len) in keys {
                    let mut buf = match free_rx.try_recv() {
                        Ok(b) => b,
                        Err(_) if made < BUFFERS => {
                            made += 1;
                            Vec::new()
                        }
                        Err(_) => match free_rx.recv() {
                            Ok(b) => b,
                            Err(_) => return,
                        },
                    };
                    let r = read_object(blobs.as_ref(), &k, len, &mut buf).map(|()| buf);
                    if tx.send((k, r)).is_err() {
                        return;
                    }
                }
            });
            while !source.is_empty() {
                let mut m = self.mount()?;
                let end = self.fill_tape(&mut m, &mut source, progress, &mut done, total)?;
                let catalog_written = match end {
                    TapeEnd::Done => self.close_tape(m, false, true, false)?,
                    TapeEnd::EarlyWarning => {
                        let more = !source.is_empty();
                        self.close_tape(m, true, true, more)?
                    }
                    TapeEnd::EndOfMedium => self.close_tape(m, true, false, true)?,
                };
                if source.is_empty() && !catalog_written {
                    // The last object made it whole but the medium ran out
                    // before (or while writing) the catalog: without one,
                    // the cartridge reads as cut short and a recovery asks
                    // for a next cartridge. The set's catalog goes on the
                    // next cartridge, so the set always ends with one.
                    let m = self.mount()?;
                    self.close_tape(m, false, true, false)?;
                }
            }
            Ok(())
        })
    }

    /// Writes archives to the mounted cartridge until the objects run out or
    /// the cartridge fills.
    fn fill_tape(
        &mut self,
        m: &mut Mounted,
        source: &mut Source,
        progress: OnProgress<'_>,
        done: &mut u64,
        total: u64,
    ) -> Result<TapeEnd> {
        loop {
            let mut aw = ArchiveWriter::begin(
                self.deck.drive.as_mut(),
                m.cart.files,
                self.set.key.as_ref(),
                self.req.block_size,
            )?;
            // Objects put but not yet wholly accepted by the drive, to write
            // again on the next cartridge after an end of medium (read again
            // from the store then: their buffers go back at once).
            let mut unconfirmed: VecDeque<(usize, String)> = VecDeque::new();
            let mut put = 0usize;
            let mut bytes = 0u64;
            let mut warned = false;
            let r: Result<()> = loop {
                let Some((k, data)) = source.next()? else {
                    break Ok(());
                };
                let r = aw.put(&k, &data);
                bytes += data.len() as u64;
                source.recycle(data);
                unconfirmed.push_back((put, k));
                put += 1;
                if let Err(e) = r {
                    break Err(e);
                }
                let confirmed = aw.confirmed();
                while unconfirmed.front().is_some_and(|(i, _)| *i < confirmed) {
                    unconfirmed.pop_front();
                }
                if aw.early_warning() {
                    warned = true;
                    break Ok(());
                }
                if bytes >= self.req.archive_bytes {
                    break Ok(());
                }
            };
            let (objs, end) = match r.and_then(|()| aw.finish()) {
                Ok((_, objs)) => (objs, None),
                Err(Error::Tape(coffer_tape::Error::EndOfMedium { .. })) => {
                    let safe = aw.safely_written();
                    if safe.is_empty() && m.objects.is_empty() {
                        // Objects never span cartridges: one that does not
                        // fit an empty cartridge fits none.
                        let first = unconfirmed
                            .front()
                            .map(|(_, k)| k.clone())
                            .unwrap_or_default();
                        return Err(Error::Invalid(format!(
                            "object {first} does not fit on an empty cartridge ({}): use larger cartridges",
                            m.cart.barcode
                        )));
                    }
                    let confirmed = safe.len();
                    // Everything after the last whole object goes again.
                    for (i, k) in unconfirmed.into_iter().rev() {
                        if i >= confirmed {
                            source.retry.push_front(k);
                        }
                    }
                    (safe, Some(TapeEnd::EndOfMedium))
                }
                Err(e) => return Err(e),
            };
            warned |= aw.early_warning();
            drop(aw);
            for o in &objs {
                *done += o.len;
                self.out.objects += 1;
                self.out.bytes += o.len;
                m.cart.bytes += o.len;
            }
            m.objects.extend(objs.iter().cloned());
            m.new_objects.extend(objs);
            m.cart.files += 1;
            progress(&m.cart.barcode, *done, total);
            if let Some(end) = end {
                return Ok(end);
            }
            if warned || self.deck.drive().position()?.eop {
                return Ok(TapeEnd::EarlyWarning);
            }
            if source.is_empty() {
                return Ok(TapeEnd::Done);
            }
        }
    }
}

/// How writing to a cartridge ended.
enum TapeEnd {
    /// Everything is written; the cartridge can take more later.
    Done,
    /// Early warning: the catalog goes on and the set moves on.
    EarlyWarning,
    /// The medium ran out mid-archive: no room even for the catalog.
    EndOfMedium,
}

/// Reads a store object into `buf` (reusing its allocation).
fn read_object(
    blobs: &dyn coffer_store::BlobStore,
    key: &str,
    len: u64,
    buf: &mut Vec<u8>,
) -> coffer_store::Result<()> {
    buf.clear();
    buf.reserve_exact(usize::try_from(len).unwrap_or(usize::MAX));
    let mut rd = blobs.reader(key)?;
    std::io::Read::read_to_end(&mut rd, buf).map_err(|e| coffer_store::Error::Io {
        op: "read",
        path: key.to_string(),
        error: e,
    })?;
    Ok(())
}

/// Objects to write, read ahead by the store reader, plus any to write again.
struct Source {
    rx: std::sync::mpsc::Receiver<(String, coffer_store::Result<Vec<u8>>)>,
    free: std::sync::mpsc::Sender<Vec<u8>>,
    /// Objects to write again, read anew from the store.
    retry: VecDeque<String>,
    blobs: Arc<dyn coffer_store::BlobStore>,
    remaining: usize,
}

impl Source {
    fn next(&mut self) -> Result<Option<(String, Vec<u8>)>> {
        if let Some(k) = self.retry.pop_front() {
            let mut buf = Vec::new();
            let len = self.blobs.size(&k)?;
            read_object(self.blobs.as_ref(), &k, len, &mut buf)?;
            return Ok(Some((k, buf)));
        }
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        let (k, r) = self
            .rx
            .recv()
            .map_err(|_| Error::Invalid("the store reader stopped early".into()))?;
        Ok(Some((k, r?)))
    }

    fn is_empty(&self) -> bool {
        self.retry.is_empty() && self.remaining == 0
    }

    /// Hands a buffer back to the reader.
    fn recycle(&self, buf: Vec<u8>) {
        let _ = self.free.send(buf);
    }
}

/// Writes snapshots to a media set and records the job.
pub fn write(
    repo: &Repo,
    catalog: &Catalog,
    lib: &mut dyn Library,
    req: &WriteRequest,
    actor: &Actor,
    progress: OnProgress<'_>,
) -> Result<WriteOutcome> {
    check_pool(&req.pool)?;
    if req.escrow && !req.encrypt {
        return Err(Error::Invalid(
            "a set whose key is held in escrow (a pool that crypto-shreds) must be encrypted"
                .into(),
        ));
    }
    if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&req.block_size) {
        return Err(Error::Invalid(format!(
            "block size {} is outside {MIN_BLOCK_SIZE}..={MAX_BLOCK_SIZE}",
            req.block_size
        )));
    }
    let snapshots = if req.snapshots.is_empty() {
        repo.snapshot_ids()?
    } else {
        req.snapshots.clone()
    };
    let set = open_or_create_set(repo, catalog, req)?;
    let held: HashSet<String> = catalog
        .tape_objects(&set.info.id)?
        .into_iter()
        .map(|o| o.key)
        .collect();
    let all = objects_for(repo, &snapshots)?;
    let skipped = all.iter().filter(|k| held.contains(*k)).count() as u64;
    let keys: Vec<String> = all.into_iter().filter(|k| !held.contains(k)).collect();
    let job_id = match req.job {
        Some(id) => id,
        None => begin_job(
            catalog,
            JobKind::MediaWrite,
            format!(
                "snapshots {} to a media set of pool '{}'",
                snapshots
                    .iter()
                    .map(|s| s.short())
                    .collect::<Vec<_>>()
                    .join(", "),
                req.pool
            ),
            actor,
        )?,
    };
    let set_id = set.info.id;
    let mut w = Writer {
        repo,
        catalog,
        deck: Deck::open(lib, req.drive)?,
        set,
        req,
        out: WriteOutcome {
            set: Some(set_id),
            skipped,
            snapshots: snapshots.clone(),
            job_id,
            ..WriteOutcome::default()
        },
        tapes: Vec::new(),
    };
    let result = if keys.is_empty() {
        Ok(())
    } else {
        // The drive's key is dropped and the cartridge goes back to its
        // slot at the end, as after any job.
        let r = w.run(keys, progress);
        let off = if req.drive_encryption {
            w.deck.drive().set_encryption(None).map_err(Error::from)
        } else {
            Ok(())
        };
        r.and(off).and_then(|()| w.deck.unload())
    };
    let out = w.out.clone();
    let (status, messages) = match &result {
        Ok(()) => (JobStatus::Success, vec![out.summary()]),
        Err(e) => (JobStatus::Failed, vec![e.to_string()]),
    };
    finish_job(catalog, job_id, status, out.bytes, &messages, None)?;
    result.map(|()| out)
}
