//! Reading media sets back: restoring a snapshot through the appliance's
//! catalog, and recovering a whole store from cartridges and the
//! passphrase alone.
//!
//! Both read objects into a store (a staging store for a restore, the new
//! store for a recovery) and let the engine restore from it, so tape adds
//! no second restore path. A damaged block loses only the objects it
//! touches: they are listed, and the engine's restore names the files that
//! needed them while everything else is restored.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use coffer_catalog::Catalog;
use coffer_engine::{Actor, Progress, RestoreOutcome, RestoreRequest};
use coffer_keys::{MediaSetKey, Passphrase};
use coffer_store::{BlobStore, DirStore, Repo};
use coffer_tape::{Library, SpaceOver, TapeDrive};
use coffer_types::{
    Cartridge, CartridgeStatus, JobKind, JobStatus, MediaSetId, MediaSetInfo, StoreId, TapeObject,
};

use crate::archive::{ArchiveReader, Item, ObjectPos};
use crate::blocks::FileReader;
use crate::format::Content;
use crate::label::{Doc, collect_doc};
use crate::set::{Deck, OnProgress, begin_job, finish_job, read_labels, set_key};
use crate::{Error, Result, SetLabel, TapeCatalog};

/// Objects read from tape.
#[derive(Debug, Clone, Default)]
pub struct FetchReport {
    /// Objects read.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Objects that could not be read, with the reason.
    pub lost: Vec<(String, String)>,
    /// Cartridges loaded, in order.
    pub cartridges: Vec<String>,
}

/// Reads the object at `pos` from the loaded cartridge; the inner error is
/// why it could not be read (damage), the outer one a drive failure.
pub fn read_object(
    drive: &mut dyn TapeDrive,
    key: Option<&MediaSetKey>,
    pos: &ObjectPos,
) -> Result<std::result::Result<Vec<u8>, String>> {
    drive.locate(pos.block)?;
    let mut r = ArchiveReader::at(drive, key, pos);
    Ok(match r.next_item()? {
        Some(Item::Object { key, data }) if key == pos.key => {
            if data.len() as u64 == pos.len {
                Ok(data)
            } else {
                Err(format!(
                    "{} bytes on tape, {} expected",
                    data.len(),
                    pos.len
                ))
            }
        }
        Some(Item::Object { key, .. }) => Err(format!("found '{key}' where it should be")),
        Some(Item::Lost { reason, .. }) => Err(reason),
        _ => Err("the archive ends before it".into()),
    })
}

/// Checks that the loaded cartridge is the one the catalog knows.
fn check_cartridge(deck: &mut Deck, cart: &Cartridge, set: &MediaSetId) -> Result<()> {
    let labels = read_labels(deck.drive(), &cart.barcode)?;
    let seq = cart.set.map(|s| s.1).unwrap_or(0);
    let ok = labels.media.as_ref().is_some_and(|m| m.media == cart.media)
        && labels
            .set
            .as_ref()
            .is_some_and(|s| s.set == *set && s.seq == seq);
    if ok {
        Ok(())
    } else {
        Err(Error::Foreign {
            barcode: cart.barcode.clone(),
            reason: format!(
                "is not sequence {seq} of media set {} (it was relabelled, or another cartridge \
                 carries its barcode)",
                set.short()
            ),
        })
    }
}

/// Reads `wanted` objects of a set into `into`, in sequence order, loading
/// each cartridge that holds any of them once per call.
struct SetSource<'a> {
    set: &'a MediaSetInfo,
    carts: &'a [Cartridge],
    key: Option<&'a MediaSetKey>,
}

fn fetch(
    deck: &mut Deck,
    src: &SetSource<'_>,
    wanted: &[&TapeObject],
    into: &dyn BlobStore,
    report: &mut FetchReport,
    progress: OnProgress<'_>,
) -> Result<()> {
    let (set, carts, key) = (src.set, src.carts, src.key);
    let mut by_seq: BTreeMap<u32, Vec<&TapeObject>> = BTreeMap::new();
    for o in wanted {
        by_seq.entry(o.seq).or_default().push(o);
    }
    let total: u64 = wanted.iter().map(|o| o.len).sum();
    let mut done = 0u64;
    for (seq, mut objs) in by_seq {
        objs.sort_by_key(|o| (o.block, o.offset));
        let cart = carts
            .iter()
            .find(|c| c.set.is_some_and(|s| s.1 == seq))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "the catalog lists no cartridge {seq} of set {}",
                    set.id.short()
                ))
            })?;
        let n = objs.len();
        deck.load(&cart.barcode, || Error::NeedCartridge {
            barcode: cart.barcode.clone(),
            set: set.id.short(),
            seq,
            reason: format!("it holds {n} of the objects this restore needs"),
        })?;
        check_cartridge(deck, cart, &set.id)?;
        if !report.cartridges.contains(&cart.barcode) {
            report.cartridges.push(cart.barcode.clone());
        }
        for o in objs {
            if into.size(&o.key).is_ok() {
                continue;
            }
            let pos = ObjectPos {
                key: o.key.clone(),
                len: o.len,
                file: o.file,
                file_start: o.file_start,
                block: o.block,
                offset: o.offset,
            };
            match read_object(deck.drive(), key, &pos)? {
                Ok(data) => {
                    into.put(&o.key, &data)?;
                    report.objects += 1;
                    report.bytes += o.len;
                }
                Err(reason) => {
                    tracing::warn!(object = %o.key, barcode = %cart.barcode, %reason, "object lost on tape");
                    report
                        .lost
                        .push((o.key.clone(), format!("{} on {}", reason, cart.barcode)));
                }
            }
            done += o.len;
            progress(&cart.barcode, done, total);
        }
    }
    Ok(())
}

/// Chunk id → container, from every index copy in `blobs`.
fn chunk_map(
    blobs: &dyn BlobStore,
    keys: &Repo,
) -> Result<HashMap<coffer_types::ChunkId, coffer_types::ContainerId>> {
    let mut map = HashMap::new();
    for k in blobs.list("index/")? {
        let (obj, table) = keys.open_index_object(&blobs.get(&k)?)?;
        for e in table {
            map.insert(e.id, obj.id);
        }
    }
    Ok(map)
}

/// What to restore from tape.
#[derive(Debug, Clone)]
pub struct TapeRestoreRequest {
    /// The set to read; `None`: the newest set holding the snapshot.
    pub set: Option<MediaSetId>,
    /// The restore itself (snapshot, target, paths, overwrite).
    pub restore: RestoreRequest,
    /// The drive to use.
    pub drive: u16,
    /// An empty or absent directory for the staging store (removed after).
    pub staging: PathBuf,
}

/// What a restore from tape did.
#[derive(Debug, Clone)]
pub struct TapeRestoreOutcome {
    /// The set read.
    pub set: MediaSetId,
    /// What was read from tape.
    pub fetched: FetchReport,
    /// The engine's restore.
    pub restore: RestoreOutcome,
    /// The media-restore job's log row.
    pub job_id: i64,
}

/// Restores a snapshot from a media set, reading only the cartridges and
/// objects it needs; `repo` is the appliance's store (the set's keys are
/// bound to it).
#[allow(clippy::too_many_arguments)]
pub fn restore(
    repo: &Repo,
    catalog: &Catalog,
    lib: &mut dyn Library,
    pass: &Passphrase,
    req: &TapeRestoreRequest,
    actor: &Actor,
    progress: OnProgress<'_>,
    restore_progress: &Progress,
) -> Result<TapeRestoreOutcome> {
    let snap = req.restore.snapshot;
    let record_key = coffer_store::snapshot::record_key(&snap);
    let set = match req.set {
        Some(id) => {
            let s = catalog.media_set(&id.to_hex())?;
            if !catalog.set_holds(&s.id, &record_key)? {
                return Err(Error::Invalid(format!(
                    "snapshot {} is not on media set {}",
                    snap.short(),
                    s.id.short()
                )));
            }
            s
        }
        None => {
            let mut found = None;
            for s in catalog.media_sets()?.into_iter().rev() {
                if catalog.set_holds(&s.id, &record_key)? {
                    found = Some(s);
                    break;
                }
            }
            found.ok_or_else(|| {
                Error::Invalid(format!("snapshot {} is on no media set", snap.short()))
            })?
        }
    };
    if set.store != repo.config().store_id {
        return Err(Error::Invalid(format!(
            "media set {} copies another store; recover it with `coffer media recover`",
            set.id.short()
        )));
    }
    let key = set_key(repo.master(), &set)?;
    if req.staging.exists()
        && std::fs::read_dir(&req.staging)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(Error::Invalid(format!(
            "staging directory {} is not empty",
            req.staging.display()
        )));
    }
    let job_id = begin_job(
        catalog,
        JobKind::MediaRestore,
        format!("snapshot {snap} from media set {}", set.id),
        actor,
    )?;
    let mut fetched = FetchReport::default();
    let result = (|| -> Result<Repo> {
        std::fs::create_dir_all(&req.staging).map_err(|e| coffer_store::Error::Io {
            op: "create",
            path: req.staging.display().to_string(),
            error: e,
        })?;
        let staging: Arc<dyn BlobStore> = Arc::new(DirStore::new(&req.staging));
        staging.put("config", &repo.blobs().get("config")?)?;
        for k in repo
            .blobs()
            .list("keys/")?
            .into_iter()
            .chain(repo.blobs().list("datakeys/")?)
        {
            staging.put(&k, &repo.blobs().get(&k)?)?;
        }
        let objects = catalog.tape_objects(&set.id)?;
        let carts = catalog.set_cartridges(&set.id)?;
        let mut deck = Deck::open(lib, req.drive)?;
        let src = SetSource {
            set: &set,
            carts: &carts,
            key: key.as_ref(),
        };
        // 1: the snapshot record and every container's index copy (small).
        let first: Vec<&TapeObject> = objects
            .iter()
            .filter(|o| o.key == record_key || o.key.starts_with("index/"))
            .collect();
        fetch(
            &mut deck,
            &src,
            &first,
            staging.as_ref(),
            &mut fetched,
            progress,
        )?;
        let stage = Repo::open(Arc::clone(&staging), pass)?;
        let rec = stage.load_snapshot(&snap)?;
        // Chunk → container from the index copies: the staging store lacks
        // most containers, so its own index treats them as missing.
        let chunks = chunk_map(staging.as_ref(), &stage)?;
        let by_key: BTreeMap<&str, &TapeObject> =
            objects.iter().map(|o| (o.key.as_str(), o)).collect();
        let wanted =
            |ids: &mut dyn Iterator<Item = &coffer_types::ChunkId>| -> Result<BTreeSet<String>> {
                let mut out = BTreeSet::new();
                for id in ids {
                    let c = chunks.get(id).ok_or_else(|| {
                        Error::Invalid(format!(
                            "snapshot {} needs a chunk no container on media set {} holds",
                            snap.short(),
                            set.id.short()
                        ))
                    })?;
                    out.insert(coffer_store::container::data_key(c));
                }
                Ok(out)
            };
        // 2: the containers holding the manifest.
        let manifest = wanted(&mut rec.manifest.iter())?;
        let second: Vec<&TapeObject> = manifest
            .iter()
            .filter_map(|k| by_key.get(k.as_str()).copied())
            .collect();
        fetch(
            &mut deck,
            &src,
            &second,
            staging.as_ref(),
            &mut fetched,
            progress,
        )?;
        // 3: those holding the files.
        let stage = Repo::open(Arc::clone(&staging), pass)?;
        let mut data_ids = Vec::new();
        for e in stage.manifest(&rec) {
            let e = e.map_err(|e| {
                Error::Invalid(format!(
                    "the snapshot's file list could not be read from tape ({e}); objects lost: {:?}",
                    fetched.lost
                ))
            })?;
            for x in e.extents {
                if let coffer_store::Extent::Data { id, .. } = x {
                    data_ids.push(id);
                }
            }
        }
        let files = wanted(&mut data_ids.iter())?;
        let third: Vec<&TapeObject> = files
            .iter()
            .filter(|k| !manifest.contains(*k))
            .filter_map(|k| by_key.get(k.as_str()).copied())
            .collect();
        fetch(
            &mut deck,
            &src,
            &third,
            staging.as_ref(),
            &mut fetched,
            progress,
        )?;
        let stage = Repo::open(Arc::clone(&staging), pass)?;
        deck.unload()?;
        Ok(stage)
    })();
    let mut messages: Vec<String> = fetched
        .lost
        .iter()
        .map(|(k, why)| format!("object {k} lost: {why}"))
        .collect();
    let status = match &result {
        Ok(_) if fetched.lost.is_empty() => JobStatus::Success,
        Ok(_) => JobStatus::Warning,
        Err(e) => {
            messages.push(e.to_string());
            JobStatus::Failed
        }
    };
    finish_job(
        catalog,
        job_id,
        status,
        fetched.bytes,
        &messages,
        Some(snap),
    )?;
    let cleanup = |dir: &Path| {
        if let Err(e) = std::fs::remove_dir_all(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "removing the staging store failed");
        }
    };
    let stage = match result {
        Ok(s) => s,
        Err(e) => {
            cleanup(&req.staging);
            return Err(e);
        }
    };
    let outcome =
        coffer_engine::restore::restore(&stage, catalog, &req.restore, actor, restore_progress);
    drop(stage);
    cleanup(&req.staging);
    Ok(TapeRestoreOutcome {
        set: set.id,
        fetched,
        restore: outcome?,
        job_id,
    })
}

/// What to recover.
#[derive(Debug, Clone)]
pub struct RecoverRequest {
    /// Directory of the store to rebuild (created; an existing store must
    /// be the same store).
    pub store: PathBuf,
    /// The set (id or prefix); `None`: the only set found.
    pub set: Option<String>,
    /// The drive to use.
    pub drive: u16,
    /// Recover what is here even when the newest cartridge present says the
    /// set continues on one that is not.
    pub incomplete: bool,
}

/// What a recovery did.
#[derive(Debug, Clone, Default)]
pub struct RecoverOutcome {
    /// The set read.
    pub set: Option<MediaSetId>,
    /// The store rebuilt.
    pub store: Option<StoreId>,
    /// Cartridges read, in sequence order.
    pub cartridges: Vec<String>,
    /// Objects written to the store.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Objects lost to damage (key when known) with the reason.
    pub lost: Vec<(Option<String>, String)>,
    /// Objects the tape catalogs list that were not recovered.
    pub missing: Vec<String>,
    /// Snapshots in the rebuilt store.
    pub snapshots: usize,
    /// Things worth knowing that lost nothing by themselves (an archive cut
    /// by the end of medium is normal; its objects are on the next cartridge).
    pub notes: Vec<String>,
    /// The newest cartridge read says the set goes on to cartridges that
    /// were not here (recovered anyway, with `incomplete`).
    pub set_continues: bool,
    /// Cartridges in the library that were skipped, with why.
    pub skipped: Vec<(String, String)>,
    /// The job log row (in the new catalog).
    pub job_id: i64,
}

/// A cartridge found in the library with its set label.
struct Found {
    barcode: String,
    label: SetLabel,
}

fn unhex(what: &str, s: &str) -> Result<Vec<u8>> {
    hex::decode(s).map_err(|_| Error::Format(format!("{what} in the media-set label is not hex")))
}

/// Reads the last tape file of the loaded cartridge as a tape catalog.
fn last_catalog(
    drive: &mut dyn TapeDrive,
    key: Option<&MediaSetKey>,
) -> Result<(Option<TapeCatalog>, bool)> {
    drive.space(SpaceOver::EndOfData)?;
    let end = drive.position()?;
    // Does the tape end with a filemark? Not when the end of medium (or a
    // crash) cut its last file.
    let clean = match drive.space(SpaceOver::Filemarks(-1)) {
        Ok(()) => drive.position()?.block + 1 == end.block,
        Err(_) => false,
    };
    // The newest catalog, from the last file backwards (files 0 and 1 are
    // the labels).
    for file in (2..end.file).rev() {
        drive.rewind()?;
        drive.space(SpaceOver::Filemarks(
            i64::try_from(file).unwrap_or(i64::MAX),
        ))?;
        let mut r = FileReader::new(drive, None, key);
        if r.peek()? != Some(Content::Catalog) {
            continue;
        }
        if let Ok(Doc::Found(c)) = collect_doc::<TapeCatalog>(&mut r, Content::Catalog) {
            let last_file = clean && file + 1 == end.file;
            return Ok((Some(c), last_file));
        }
    }
    Ok((None, false))
}

/// Rebuilds a store from the cartridges of a media set in the library and
/// the passphrase, with nothing else: no catalog, no store, no appliance.
pub fn recover(
    lib: &mut dyn Library,
    pass: &Passphrase,
    req: &RecoverRequest,
    actor: &Actor,
    progress: OnProgress<'_>,
) -> Result<(Repo, Catalog, RecoverOutcome)> {
    let mut out = RecoverOutcome::default();
    let mut deck = Deck::open(lib, req.drive)?;
    // 1: every cartridge's labels.
    let inv = deck.changer().inventory()?;
    let present: Vec<String> = inv
        .slots
        .iter()
        .chain(&inv.drives)
        .chain(&inv.ie_slots)
        .filter_map(|e| e.barcode.clone())
        .collect();
    let mut found: Vec<Found> = Vec::new();
    for barcode in &present {
        deck.load(barcode, || {
            Error::Invalid(format!("cartridge {barcode} vanished"))
        })?;
        if deck.drive().status()?.cleaning {
            out.skipped
                .push((barcode.clone(), "cleaning cartridge".into()));
            continue;
        }
        match read_labels(deck.drive(), barcode) {
            Ok(l) => match (l.media, l.set) {
                (Some(_), Some(label)) => found.push(Found {
                    barcode: barcode.clone(),
                    label,
                }),
                (Some(m), None) => out.skipped.push((
                    barcode.clone(),
                    format!("labelled for pool '{}', no media set", m.pool),
                )),
                (None, _) => out.skipped.push((barcode.clone(), "blank".into())),
            },
            Err(Error::Label { reason, .. }) => out.skipped.push((barcode.clone(), reason)),
            Err(e) => return Err(e),
        }
    }
    // 2: the set.
    let sets: BTreeSet<MediaSetId> = found.iter().map(|f| f.label.set).collect();
    let set = match &req.set {
        Some(p) => {
            let m: Vec<_> = sets
                .iter()
                .filter(|s| s.to_hex().starts_with(&p.to_ascii_lowercase()))
                .collect();
            match m.as_slice() {
                [one] => **one,
                [] => {
                    return Err(Error::Invalid(format!(
                        "no cartridge in the library belongs to media set {p}"
                    )));
                }
                _ => return Err(Error::Invalid(format!("media set prefix {p} is ambiguous"))),
            }
        }
        None => match sets.iter().collect::<Vec<_>>().as_slice() {
            [one] => **one,
            [] => {
                return Err(Error::Invalid(
                    "no cartridge in the library belongs to a media set".into(),
                ));
            }
            many => {
                return Err(Error::Invalid(format!(
                    "cartridges of {} media sets are in the library ({}); choose one with --set",
                    many.len(),
                    many.iter()
                        .map(|s| s.short())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        },
    };
    out.set = Some(set);
    let mut tapes: Vec<Found> = found.into_iter().filter(|f| f.label.set == set).collect();
    tapes.sort_by_key(|f| f.label.seq);
    let Some(first) = tapes.first() else {
        return Err(Error::Invalid("no cartridge of the set".into()));
    };
    let label = first.label.clone();
    if tapes.iter().any(|t| t.label.store != label.store) {
        return Err(Error::Format(
            "the set's cartridges name different stores".into(),
        ));
    }
    // 3: the store, from the label; the passphrase opens it or nothing happens.
    std::fs::create_dir_all(&req.store).map_err(|e| coffer_store::Error::Io {
        op: "create",
        path: req.store.display().to_string(),
        error: e,
    })?;
    let blobs: Arc<dyn BlobStore> = Arc::new(DirStore::new(&req.store));
    let config = unhex("store config", &label.store_config)?;
    match blobs.get("config") {
        Ok(existing) if existing != config => {
            return Err(Error::Invalid(format!(
                "{} holds another store; recover into an empty directory",
                req.store.display()
            )));
        }
        Ok(_) => {}
        Err(coffer_store::Error::NotFound { .. }) => blobs.put("config", &config)?,
        Err(e) => return Err(e.into()),
    }
    for (k, v) in &label.store_keys {
        if !k.starts_with("keys/") {
            return Err(Error::Format(format!(
                "key object name {k:?} in the media-set label"
            )));
        }
        match blobs.put(k, &unhex("store key file", v)?) {
            Ok(()) | Err(coffer_store::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let repo = Repo::open(Arc::clone(&blobs), pass)?;
    out.store = Some(repo.config().store_id);
    let mut escrow: Option<Vec<u8>> = None;
    let key = match (&label.wrapped_key, &label.key_fingerprint) {
        (Some(w), _) => {
            let k = MediaSetKey::unwrap_with(repo.master(), &set.0, &unhex("wrapped key", w)?)
                .map_err(|_| {
                    Error::Format(format!(
                        "the set key in the label of {} does not open with this store's master key: \
                         the label was altered or belongs to another store",
                        first.barcode
                    ))
                })?;
            if label.key_fingerprint.as_deref() != Some(k.fingerprint().as_str()) {
                return Err(Error::WrongSetKey);
            }
            Some(k)
        }
        (None, Some(fp)) => {
            // An escrowed key: in the store recovered into, when that is
            // the appliance's store or its replica.
            let escrowed = match blobs.get(&crate::set::escrow_key(&set)) {
                Ok(w) => w,
                Err(coffer_store::Error::NotFound { .. }) => {
                    return Err(Error::Invalid(format!(
                        "media set {}'s key is held in escrow by the store that wrote it, not on its \
                         cartridges (its pool crypto-shreds expired sets): recover into that store \
                         or its replica (which holds mediakeys/{}), or read the set on the appliance \
                         that wrote it; if the set expired, its key was destroyed and it cannot be read",
                        set.short(),
                        set.to_hex()
                    )));
                }
                Err(e) => return Err(e.into()),
            };
            let k = MediaSetKey::unwrap_with(repo.master(), &set.0, &escrowed)?;
            if k.fingerprint() != *fp {
                return Err(Error::WrongSetKey);
            }
            escrow = Some(escrowed);
            Some(k)
        }
        (None, None) => None,
    };
    // 4: every cartridge of the set must be here: the newest one's catalog
    // lists those before it.
    let last = tapes.last().map(|t| t.barcode.clone()).unwrap_or_default();
    deck.load(&last, || {
        Error::Invalid(format!("cartridge {last} vanished"))
    })?;
    let (listed, catalog_is_last) = last_catalog(deck.drive(), key.as_ref())?;
    let have: HashSet<u32> = tapes.iter().map(|t| t.label.seq).collect();
    let max = tapes.last().map(|t| t.label.seq).unwrap_or(0);
    for seq in 1..=max {
        if !have.contains(&seq) {
            let barcode = listed
                .as_ref()
                .and_then(|c| c.tapes.iter().find(|t| t.seq == seq))
                .map_or_else(|| "(barcode unknown)".to_string(), |t| t.barcode.clone());
            return Err(Error::NeedCartridge {
                barcode,
                set: set.short(),
                seq,
                reason: "the set cannot be recovered without it".into(),
            });
        }
    }
    // After the newest cartridge here: a full one whose catalog says the
    // set went on, or one cut by the end of medium (no catalog), means a
    // later cartridge exists.
    let continues = !catalog_is_last || listed.as_ref().is_some_and(|c| c.continues);
    if continues && !req.incomplete {
        return Err(Error::NeedCartridge {
            barcode: "(its barcode is on no cartridge read so far)".into(),
            set: set.short(),
            seq: max + 1,
            reason: format!(
                "cartridge {last} (sequence {max}) ends full or cut short, so the set goes on; \
                 --incomplete recovers what is here"
            ),
        });
    }
    if continues {
        out.set_continues = true;
        out.notes.push(format!(
            "cartridge {last} (sequence {max}) ends full or cut short: later cartridges of the \
             set were not read"
        ));
    }
    if have.len() != tapes.len() {
        return Err(Error::Invalid(format!(
            "two cartridges in the library claim the same sequence number of set {}",
            set.short()
        )));
    }
    // 5: read everything, in sequence order.
    let mut catalogs: Vec<TapeCatalog> = Vec::new();
    let mut recovered: HashSet<String> = HashSet::new();
    for t in &tapes {
        deck.load(&t.barcode, || {
            Error::Invalid(format!("cartridge {} vanished", t.barcode))
        })?;
        let labels = read_labels(deck.drive(), &t.barcode)?;
        if labels.set.as_ref() != Some(&t.label) {
            return Err(Error::Foreign {
                barcode: t.barcode.clone(),
                reason: "changed while being recovered".into(),
            });
        }
        out.cartridges.push(t.barcode.clone());
        // The drive is past file 1 (the set label).
        let mut tape_catalog = None;
        loop {
            let mut r = FileReader::new(deck.drive(), None, key.as_ref());
            match r.peek()? {
                Some(Content::Catalog) => {
                    match collect_doc::<TapeCatalog>(&mut r, Content::Catalog) {
                        Ok(Doc::Found(c)) => tape_catalog = Some(c),
                        Ok(Doc::Blank) => break,
                        Err(e) => out
                            .lost
                            .push((None, format!("tape catalog on {}: {e}", t.barcode))),
                    }
                    continue;
                }
                Some(Content::MediaLabel) | Some(Content::SetLabel) => {
                    return Err(Error::Format(format!(
                        "a label in the middle of cartridge {}",
                        t.barcode
                    )));
                }
                None if r.peeked_end_of_data() => break,
                Some(Content::Archive) | None => {}
            }
            let mut a = ArchiveReader::from_reader(r);
            let mut ended_file = false;
            while let Some(item) = a.next_item()? {
                match item {
                    Item::Object { key: k, data } => {
                        if !crate::set::storable_key(&k) {
                            out.lost
                                .push((Some(k), "not a store object key; skipped".into()));
                            continue;
                        }
                        match blobs.put(&k, &data) {
                            Ok(()) | Err(coffer_store::Error::AlreadyExists { .. }) => {}
                            Err(e) => return Err(e.into()),
                        }
                        out.objects += 1;
                        out.bytes += data.len() as u64;
                        recovered.insert(k);
                        progress(&t.barcode, out.bytes, 0);
                    }
                    Item::Lost { key: k, reason } => {
                        out.lost
                            .push((k, format!("{reason} (cartridge {})", t.barcode)));
                    }
                    Item::End { .. } => {
                        ended_file = true;
                    }
                    Item::Truncated => out.notes.push(format!(
                        "cartridge {}: an archive ends without its end entry (the end of medium \
                         cut it, or the cartridge is cut short)",
                        t.barcode
                    )),
                }
            }
            if ended_file {
                // Step over the archive's filemark.
                a.skip_rest()?;
                continue;
            }
            if a.at_end_of_data() {
                break;
            }
        }
        if let Some(c) = tape_catalog {
            catalogs.push(c);
        }
    }
    deck.unload()?;
    // 6: what the catalogs list that did not come back.
    let listed: BTreeSet<&str> = catalogs
        .iter()
        .flat_map(|c| c.objects.iter().map(|o| o.key.as_str()))
        .collect();
    out.missing = listed
        .into_iter()
        .filter(|k| !recovered.contains(*k))
        .map(str::to_string)
        .collect();
    // 7: the catalog: snapshots, and the set with its cartridges so later
    // restores can locate straight to objects.
    let mut catalog = Catalog::open(&req.store.join("catalog.db"))?;
    let repo = Repo::open(Arc::clone(&blobs), pass)?;
    out.snapshots = coffer_engine::rebuild_catalog(&repo, &mut catalog)?;
    record_recovered(&catalog, &label, escrow.as_deref(), &tapes, &catalogs)?;
    let job_id = begin_job(
        &catalog,
        JobKind::MediaRecover,
        format!("media set {set}"),
        actor,
    )?;
    let mut messages = vec![format!(
        "recovered {} objects ({} bytes) of media set {set} from {}",
        out.objects,
        out.bytes,
        out.cartridges.join(", ")
    )];
    messages.extend(
        out.lost
            .iter()
            .map(|(k, why)| format!("lost {}: {why}", k.as_deref().unwrap_or("object"))),
    );
    messages.extend(out.missing.iter().map(|k| format!("not recovered: {k}")));
    messages.extend(out.notes.iter().cloned());
    let status = if out.lost.is_empty() && out.missing.is_empty() {
        JobStatus::Success
    } else {
        JobStatus::Warning
    };
    finish_job(&catalog, job_id, status, out.bytes, &messages, None)?;
    out.job_id = job_id;
    Ok((repo, catalog, out))
}

fn record_recovered(
    catalog: &Catalog,
    label: &SetLabel,
    escrowed: Option<&[u8]>,
    tapes: &[Found],
    catalogs: &[TapeCatalog],
) -> Result<()> {
    if catalog.media_set(&label.set.to_hex()).is_ok() {
        return Ok(());
    }
    catalog.insert_media_set(&MediaSetInfo {
        id: label.set,
        pool: label.pool.clone(),
        created_ms: label.created_ms,
        store: label.store,
        key_fingerprint: label.key_fingerprint.clone(),
        wrapped_key: match escrowed {
            Some(w) => Some(w.to_vec()),
            None => label
                .wrapped_key
                .as_deref()
                .map(|w| unhex("wrapped key", w))
                .transpose()?,
        },
        escrowed: escrowed.is_some(),
        shredded_ms: None,
    })?;
    for t in tapes {
        let objects: Vec<TapeObject> = catalogs
            .iter()
            .filter(|c| c.tape.seq == t.label.seq)
            .flat_map(|c| c.objects.iter())
            .map(|o| TapeObject {
                key: o.key.clone(),
                len: o.len,
                barcode: t.barcode.clone(),
                seq: t.label.seq,
                file: o.file,
                file_start: o.file_start,
                block: o.block,
                offset: o.offset,
            })
            .collect();
        let cart = Cartridge {
            barcode: t.barcode.clone(),
            media: t.label.media,
            pool: label.pool.clone(),
            labelled_ms: t.label.created_ms,
            worm: false,
            set: Some((label.set, t.label.seq)),
            // Recovered sets are read, not appended to: a later write starts a new set.
            status: CartridgeStatus::Full,
            files: 0,
            end_of_data: 0,
            bytes: objects.iter().map(|o| o.len).sum(),
            written_ms: None,
        };
        catalog.record_tape_write(&cart, &objects)?;
    }
    Ok(())
}

/// What to read back.
#[derive(Debug, Clone, Default)]
pub struct VerifySetRequest {
    /// The set; `None`: the newest set of the store.
    pub set: Option<MediaSetId>,
    /// Only the newest set of this pool (when `set` is `None`).
    pub pool: Option<String>,
    /// The drive to use.
    pub drive: u16,
    /// The job log row to record it in, already running; `None`: a new row.
    pub job: Option<i64>,
}

/// What reading a media set back found.
#[derive(Debug, Clone)]
pub struct VerifySetReport {
    /// The set read.
    pub set: MediaSetId,
    /// Objects read and authenticated (each tape file's MAC, each
    /// object's length).
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Objects that could not be read, with the reason.
    pub lost: Vec<(String, String)>,
    /// Objects the store still holds whose bytes differ from the tape's.
    pub differ: Vec<String>,
    /// Objects also compared byte for byte with the store's copy.
    pub compared: u64,
    /// Cartridges loaded, in order.
    pub cartridges: Vec<String>,
    /// The job log row.
    pub job_id: i64,
}

impl VerifySetReport {
    /// Whether the set read back whole and matched the store.
    pub fn ok(&self) -> bool {
        self.lost.is_empty() && self.differ.is_empty()
    }
}

/// A sink for objects read from tape that compares each with the store's
/// copy (when the store still has it) instead of keeping it.
struct Compare<'a> {
    store: &'a dyn BlobStore,
    differ: std::sync::Mutex<Vec<String>>,
    compared: std::sync::atomic::AtomicU64,
}

impl BlobStore for Compare<'_> {
    fn put(&self, key: &str, data: &[u8]) -> coffer_store::Result<()> {
        match self.store.get(key) {
            Ok(ours) => {
                self.compared
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if ours != data {
                    match self.differ.lock() {
                        Ok(mut d) => d.push(key.to_string()),
                        Err(p) => p.into_inner().push(key.to_string()),
                    }
                }
                Ok(())
            }
            // Compacted or collected since the set was written: the tape
            // copy was authenticated, there is nothing to compare with.
            Err(coffer_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
    fn get(&self, key: &str) -> coffer_store::Result<Vec<u8>> {
        Err(coffer_store::Error::NotFound { key: key.into() })
    }
    fn get_range(&self, key: &str, _: u64, _: u64) -> coffer_store::Result<Vec<u8>> {
        self.get(key)
    }
    fn size(&self, key: &str) -> coffer_store::Result<u64> {
        Err(coffer_store::Error::NotFound { key: key.into() })
    }
    fn list(&self, _: &str) -> coffer_store::Result<Vec<String>> {
        Ok(Vec::new())
    }
    fn delete(&self, _: &str) -> coffer_store::Result<()> {
        Ok(())
    }
    fn describe(&self) -> String {
        "tape read-back comparison".into()
    }
}

/// Reads a whole media set back from its cartridges: every object is read
/// and authenticated (the tape file's MAC, the object's length), and
/// compared byte for byte with the store's copy where the store still
/// holds it. Nothing is written anywhere. The result goes in the job log
/// (`verify`, failed when anything was lost or differs).
pub fn verify_set(
    repo: &Repo,
    catalog: &Catalog,
    lib: &mut dyn Library,
    req: &VerifySetRequest,
    actor: &Actor,
    progress: OnProgress<'_>,
) -> Result<VerifySetReport> {
    let store = repo.config().store_id;
    let set = match (&req.set, &req.pool) {
        (Some(id), _) => catalog.media_set(&id.to_hex())?,
        (None, pool) => catalog
            .media_sets()?
            .into_iter()
            .rev()
            .find(|s| s.store == store && pool.as_ref().is_none_or(|p| &s.pool == p))
            .ok_or_else(|| {
                Error::Invalid(match pool {
                    Some(p) => format!("pool '{p}' has no media set of this store"),
                    None => "this store has no media set".into(),
                })
            })?,
    };
    let key = crate::set::set_key(repo.master(), &set)?;
    let carts = catalog.set_cartridges(&set.id)?;
    let objects = catalog.tape_objects(&set.id)?;
    let job_id = match req.job {
        Some(id) => id,
        None => begin_job(
            catalog,
            JobKind::Verify,
            format!("media set {} read back", set.id),
            actor,
        )?,
    };
    let sink = Compare {
        store: repo.blobs().as_ref(),
        differ: std::sync::Mutex::new(Vec::new()),
        compared: std::sync::atomic::AtomicU64::new(0),
    };
    let mut fetched = FetchReport::default();
    let result = (|| -> Result<()> {
        let mut deck = Deck::open(lib, req.drive)?;
        let wanted: Vec<&TapeObject> = objects.iter().collect();
        let src = SetSource {
            set: &set,
            carts: &carts,
            key: key.as_ref(),
        };
        let r = fetch(&mut deck, &src, &wanted, &sink, &mut fetched, progress);
        r.and_then(|()| deck.unload())
    })();
    let differ = match sink.differ.into_inner() {
        Ok(d) => d,
        Err(p) => p.into_inner(),
    };
    let report = VerifySetReport {
        set: set.id,
        objects: fetched.objects,
        bytes: fetched.bytes,
        lost: fetched.lost,
        differ,
        compared: sink.compared.into_inner(),
        cartridges: fetched.cartridges,
        job_id,
    };
    let (status, mut messages) = match &result {
        Ok(()) if report.ok() => (
            JobStatus::Success,
            vec![format!(
                "media set {}: {} objects ({} bytes) read back from {} and authenticated; {} compared with the store, all equal",
                set.id,
                report.objects,
                report.bytes,
                report.cartridges.join(", "),
                report.compared
            )],
        ),
        Ok(()) => (
            JobStatus::Failed,
            vec![format!(
                "media set {}: {} objects read back; {} could not be read, {} differ from the store",
                set.id,
                report.objects,
                report.lost.len(),
                report.differ.len()
            )],
        ),
        Err(e) => (JobStatus::Failed, vec![e.to_string()]),
    };
    messages.extend(
        report
            .lost
            .iter()
            .take(20)
            .map(|(k, why)| format!("lost: {k}: {why}")),
    );
    messages.extend(
        report
            .differ
            .iter()
            .take(20)
            .map(|k| format!("differs: {k}")),
    );
    finish_job(catalog, job_id, status, report.bytes, &messages, None)?;
    result.map(|()| report)
}
