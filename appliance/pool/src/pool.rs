//! An opened pool: its members' state, placement, and the `BlobStore` over
//! erasure-coded shards.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use coffer_block::{Capacity, Health, Verdict};
use coffer_store::{BlobStore, DirStore, ObjectWriter};
use serde::Serialize;

use crate::meta::{self, MemberMeta, PoolMeta, PoolState};
use crate::shard::{self, Coder, HASH_LEN, HEADER_LEN, Header, Layout};
use crate::{Error, Result};

/// Shards live under this folder of every member, by object key.
pub(crate) const OBJECTS: &str = "objects";
/// Shards being written.
pub(crate) const TMP: &str = "tmp";

/// k data + m parity shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Geometry {
    /// Data shards.
    pub data: u8,
    /// Parity shards: members that may fail without loss.
    pub parity: u8,
}

/// The default k + m for a number of members: every stripe spans all
/// members up to 12, parity grows with the number of disks that can fail
/// together (2 → 1+1, 3 → 2+1, 4 → 2+2, 6 → 4+2, 8 → 6+2, 10 → 7+3,
/// 12 and more → 8+4).
pub fn default_geometry(members: usize) -> Option<Geometry> {
    let (k, m) = match members {
        0 | 1 => return None,
        2 => (1, 1),
        3 => (2, 1),
        4 => (2, 2),
        5..=8 => (members - 2, 2),
        9..=11 => (members - 3, 3),
        _ => (8, 4),
    };
    Some(Geometry {
        data: k as u8,
        parity: m as u8,
    })
}

/// What a member is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "lowercase")]
pub enum MemberState {
    /// Readable and writable.
    Online,
    /// Readable, but out of space for new placement.
    Full(String),
    /// SMART says the disk is failing: readable, no new placement.
    Failing(String),
    /// Not there: path gone, nothing mounted, metadata missing.
    Missing(String),
    /// I/O errors: neither read nor written any more in this session.
    Failed(String),
    /// Holds metadata of an older generation: it missed changes.
    Stale(String),
    /// Holds another pool's or another member's metadata.
    Foreign(String),
}

impl MemberState {
    pub(crate) fn readable(&self) -> bool {
        matches!(
            self,
            MemberState::Online | MemberState::Full(_) | MemberState::Failing(_)
        )
    }
    pub(crate) fn writable(&self) -> bool {
        matches!(self, MemberState::Online)
    }
    /// Short name.
    pub fn name(&self) -> &'static str {
        match self {
            MemberState::Online => "online",
            MemberState::Full(_) => "full",
            MemberState::Failing(_) => "failing",
            MemberState::Missing(_) => "missing",
            MemberState::Failed(_) => "failed",
            MemberState::Stale(_) => "stale",
            MemberState::Foreign(_) => "foreign",
        }
    }
    /// Why it is not online.
    pub fn reason(&self) -> Option<&str> {
        match self {
            MemberState::Online => None,
            MemberState::Full(r)
            | MemberState::Failing(r)
            | MemberState::Missing(r)
            | MemberState::Failed(r)
            | MemberState::Stale(r)
            | MemberState::Foreign(r) => Some(r),
        }
    }
}

/// A member at run time.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) meta: MemberMeta,
    state: Mutex<MemberState>,
    pub(crate) health: Option<Health>,
    pub(crate) read_errors: AtomicU64,
    pub(crate) write_errors: AtomicU64,
    pub(crate) checksum_errors: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a plain assignment or push: a panic
    // cannot leave the value half-updated, so poisoning is ignored.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Member {
    pub(crate) fn new(meta: MemberMeta, state: MemberState) -> Member {
        Member {
            meta,
            state: Mutex::new(state),
            health: None,
            read_errors: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            checksum_errors: AtomicU64::new(0),
        }
    }
    /// Where the member is mounted.
    pub(crate) fn root(&self) -> &Path {
        &self.meta.path
    }
    pub(crate) fn state(&self) -> MemberState {
        lock(&self.state).clone()
    }
    pub(crate) fn shard_path(&self, key: &str) -> PathBuf {
        self.root().join(OBJECTS).join(key)
    }
    fn label(&self) -> String {
        format!("{} ({})", self.meta.id, self.root().display())
    }
}

/// How to open a pool.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Ask `smartctl` about the disks under the members (when installed);
    /// a failing disk leaves placement. Off by default: a query takes time
    /// and can wake a sleeping disk, so only what places data or reports
    /// health ([`OpenOptions::with_smart`]) asks.
    pub smart: bool,
    /// Free space every member keeps from containers, so index objects and
    /// snapshot records can still be written when data fills the pool.
    /// `None`: 1% of the member's filesystem, between 256 KiB and 64 MiB.
    pub reserve: Option<u64>,
    /// Refuse an exported pool (true for every use but inspection).
    pub require_active: bool,
    /// The sysfs root, for finding the disk under a member.
    pub sys: PathBuf,
}

impl OpenOptions {
    /// The defaults, asking smartctl about the members' disks.
    pub fn with_smart() -> OpenOptions {
        OpenOptions {
            smart: true,
            ..OpenOptions::default()
        }
    }
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            smart: false,
            reserve: None,
            require_active: true,
            sys: PathBuf::from("/sys"),
        }
    }
}

#[derive(Debug, Default)]
struct Notices {
    member_events: Vec<String>,
    degraded_writes: u64,
    degraded_shards: u64,
    healed_reads: u64,
}

/// A verified data block: ((stripe, block index), bytes).
type CachedBlock = ((u64, usize), Arc<Vec<u8>>);

/// An opened object: its shard files, found on the members.
#[derive(Debug)]
pub(crate) struct OpenObject {
    pub(crate) layout: Layout,
    pub(crate) shards: Vec<Option<OpenShard>>,
    /// Recently read data blocks: (stripe, block) → bytes.
    blocks: Mutex<VecDeque<CachedBlock>>,
}

#[derive(Debug)]
pub(crate) struct OpenShard {
    pub(crate) member: usize,
    pub(crate) file: File,
    pub(crate) header: Header,
    pub(crate) bad: AtomicBool,
}

/// Why a shard of an object could not be used, found while opening it.
#[derive(Debug, Clone)]
pub(crate) struct Rejected {
    pub(crate) member: usize,
    pub(crate) reason: String,
}

/// An opened pool. It is also the [`BlobStore`] the datastore writes to.
#[derive(Debug)]
pub struct Pool {
    pub(crate) meta: PoolMeta,
    pub(crate) id: [u8; 16],
    pub(crate) members: Vec<Member>,
    pub(crate) k: usize,
    pub(crate) m: usize,
    pub(crate) block: u32,
    reserve: Option<u64>,
    notices: Mutex<Notices>,
    cache: Mutex<VecDeque<(String, Arc<OpenObject>)>>,
}

/// Objects kept open for reads.
const OPEN_CACHE: usize = 8;

impl Pool {
    /// Opens the pool that `path` is a member of. The newest metadata
    /// generation found on the members wins; members holding older,
    /// foreign or no metadata are marked and left out.
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Pool> {
        let first = meta::read(path)?.ok_or_else(|| Error::NotAMember {
            path: path.to_path_buf(),
        })?;
        let mut best = first.pool;
        // Follow newer generations (a member that was away holds an older
        // one; any other member may hold a newer one).
        for _ in 0..8 {
            let mut newer = None;
            for m in &best.members {
                if let Ok(Some(c)) = meta::read(&m.path)
                    && c.pool.id == best.id
                    && c.pool.generation > best.generation
                    && newer
                        .as_ref()
                        .is_none_or(|n: &PoolMeta| c.pool.generation > n.generation)
                {
                    newer = Some(c.pool);
                }
            }
            match newer {
                Some(n) => best = n,
                None => break,
            }
        }
        if opts.require_active && best.state == PoolState::Exported {
            return Err(Error::Exported(best.name.clone()));
        }
        let mut members = Vec::new();
        // One smartctl query per disk, however many members share it.
        let mut asked: HashMap<String, Option<Health>> = HashMap::new();
        for mm in &best.members {
            let state = probe_member(mm, &best);
            let mut member = Member::new(mm.clone(), state);
            if opts.smart
                && member.state().readable()
                && let Some(disk) = coffer_block::disk_of_path(member.root(), &opts.sys)
                && !disk.starts_with("loop")
            {
                member.health = asked
                    .entry(disk)
                    .or_insert_with_key(|d| {
                        coffer_block::smart::query(&Path::new("/dev").join(d))
                            .ok()
                            .flatten()
                    })
                    .clone();
                member.apply_health();
            }
            members.push(member);
        }
        Pool::assemble(best, members, opts.reserve)
    }

    pub(crate) fn assemble(
        meta: PoolMeta,
        members: Vec<Member>,
        reserve: Option<u64>,
    ) -> Result<Pool> {
        let id = meta.id_bytes()?;
        let pool = Pool {
            id,
            k: meta.data_shards as usize,
            m: meta.parity_shards as usize,
            block: meta.block_size,
            meta,
            members,
            reserve,
            notices: Mutex::new(Notices::default()),
            cache: Mutex::new(VecDeque::new()),
        };
        for m in &pool.members {
            pool.member_event(m, &m.state());
            pool.check_space(m);
        }
        let readable = pool.members.iter().filter(|m| m.state().readable()).count();
        if readable < pool.k {
            return Err(Error::Unavailable {
                name: pool.meta.name.clone(),
                reason: format!(
                    "only {readable} of its members are readable and every object needs {}: {}",
                    pool.k,
                    pool.member_problems()
                ),
            });
        }
        Ok(pool)
    }

    /// The pool's metadata as opened.
    pub fn meta(&self) -> &PoolMeta {
        &self.meta
    }

    /// Records SMART health for a member (by id), as `open` does from
    /// smartctl; a failing verdict takes the member out of placement.
    pub fn set_member_health(&mut self, member: &str, health: Health) -> Result<()> {
        let m = self
            .members
            .iter_mut()
            .find(|m| m.meta.id == member)
            .ok_or_else(|| Error::UnknownMember(member.to_string()))?;
        m.health = Some(health);
        m.apply_health();
        Ok(())
    }

    fn member_problems(&self) -> String {
        let v: Vec<String> = self
            .members
            .iter()
            .filter_map(|m| {
                let s = m.state();
                s.reason()
                    .map(|r| format!("{} {}: {r}", m.label(), s.name()))
            })
            .collect();
        if v.is_empty() {
            "all members online".into()
        } else {
            v.join("; ")
        }
    }

    fn reserve_for(&self, cap: &Capacity) -> u64 {
        self.reserve
            .unwrap_or_else(|| (cap.total / 100).clamp(256 * 1024, 64 * 1024 * 1024))
    }

    /// Marks a member full when its free space is inside the reserve.
    fn check_space(&self, m: &Member) -> Option<u64> {
        if !m.state().writable() {
            return None;
        }
        match coffer_block::capacity(m.root()) {
            Ok(cap) => {
                let reserve = self.reserve_for(&cap);
                if cap.available <= reserve {
                    self.set_state(
                        m,
                        MemberState::Full(format!(
                            "{} KiB free, keeping {} KiB in reserve",
                            cap.available / 1024,
                            reserve / 1024
                        )),
                    );
                    None
                } else {
                    Some(cap.available - reserve)
                }
            }
            Err(e) => {
                self.member_failed(m, &e.to_string(), false);
                None
            }
        }
    }

    pub(crate) fn set_state(&self, m: &Member, s: MemberState) {
        let mut g = lock(&m.state);
        if *g != s {
            self.member_event(m, &s);
            *g = s;
        }
    }

    /// Logs and keeps for the job log a member that is not online.
    fn member_event(&self, m: &Member, s: &MemberState) {
        if let Some(r) = s.reason() {
            tracing::warn!(member = %m.meta.id, state = s.name(), reason = r, "pool member not online");
            lock(&self.notices).member_events.push(format!(
                "pool '{}': member {} is {}: {r}",
                self.meta.name,
                m.label(),
                s.name()
            ));
        }
    }

    /// Takes a member out after an I/O error: a missing root or metadata
    /// means the disk is gone or unmounted.
    pub(crate) fn member_failed(&self, m: &Member, what: &str, write: bool) {
        if write {
            m.write_errors.fetch_add(1, Ordering::Relaxed);
        } else {
            m.read_errors.fetch_add(1, Ordering::Relaxed);
        }
        let state = if !m.root().join(meta::META_FILE).exists() {
            MemberState::Missing(format!("not there any more ({what})"))
        } else {
            MemberState::Failed(what.to_string())
        };
        self.set_state(m, state);
    }

    fn member_full(&self, m: &Member, what: &str) {
        m.write_errors.fetch_add(1, Ordering::Relaxed);
        self.set_state(m, MemberState::Full(what.to_string()));
    }

    pub(crate) fn checksum_error(&self, m: &Member, key: &str, why: &str) {
        m.checksum_errors.fetch_add(1, Ordering::Relaxed);
        let msg = format!(
            "pool '{}': shard of '{key}' on member {} is damaged ({why}); read from parity, 'coffer pool scrub' rewrites it",
            self.meta.name,
            m.label()
        );
        tracing::warn!(member = %m.meta.id, key, why, "damaged shard");
        lock(&self.notices).member_events.push(msg);
    }

    fn note_degraded_write(&self, written: usize) {
        let mut n = lock(&self.notices);
        n.degraded_writes += 1;
        n.degraded_shards += (self.k + self.m - written) as u64;
    }

    /// Members in placement order: writable, most free space first, with
    /// their usable bytes.
    fn placement(&self) -> Vec<(usize, u64)> {
        let mut v: Vec<(usize, u64)> = self
            .members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| self.check_space(m).map(|free| (i, free)))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    fn backend_error(&self, reason: String) -> coffer_store::Error {
        coffer_store::Error::Backend {
            store: self.describe(),
            reason,
        }
    }

    /// Opens an object's shards, without the cache. Shards that cannot be
    /// used are returned with the reason.
    pub(crate) fn open_object_fresh(
        &self,
        key: &str,
    ) -> coffer_store::Result<(OpenObject, Vec<Rejected>)> {
        let khash = shard::key_hash(key);
        let mut shards: Vec<Option<OpenShard>> = Vec::new();
        let mut rejected = Vec::new();
        let mut layout: Option<Layout> = None;
        for (mi, m) in self.members.iter().enumerate() {
            if !m.state().readable() {
                continue;
            }
            let p = m.shard_path(key);
            let file = match File::open(&p) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    self.member_failed(m, &format!("open '{}': {e}", p.display()), false);
                    continue;
                }
            };
            let mut hb = [0u8; HEADER_LEN as usize];
            let header = match file.read_exact_at(&mut hb, 0) {
                Ok(()) => Header::decode(&hb),
                Err(e) => Err(format!("header unreadable: {e}")),
            };
            let check = header.and_then(|h| {
                if h.pool != self.id {
                    return Err("belongs to another pool".into());
                }
                if h.key != khash {
                    return Err("belongs to another object".into());
                }
                let l = h.layout();
                if let Some(first) = &layout
                    && *first != l
                {
                    return Err(format!(
                        "says the object is {} bytes in {}+{} ({} bytes per block), other shards say {} in {}+{}",
                        l.len, l.k, l.m, l.block, first.len, first.k, first.m
                    ));
                }
                let size = file.metadata().map(|md| md.len()).unwrap_or(0);
                if size != l.shard_file_len() {
                    return Err(format!(
                        "wrong size: {size} bytes, the header asks for {}",
                        l.shard_file_len()
                    ));
                }
                Ok(h)
            });
            match check {
                Ok(h) => {
                    let l = h.layout();
                    if layout.is_none() {
                        layout = Some(l);
                        shards.resize_with(l.k + l.m, || None);
                    }
                    let slot = &mut shards[h.index as usize];
                    if slot.is_some() {
                        rejected.push(Rejected {
                            member: mi,
                            reason: format!("a second copy of shard {}", h.index),
                        });
                    } else {
                        *slot = Some(OpenShard {
                            member: mi,
                            file,
                            header: h,
                            bad: AtomicBool::new(false),
                        });
                    }
                }
                Err(reason) => {
                    self.checksum_error(m, key, &reason);
                    rejected.push(Rejected { member: mi, reason });
                }
            }
        }
        let Some(layout) = layout else {
            if rejected.is_empty() {
                return Err(coffer_store::Error::NotFound { key: key.into() });
            }
            return Err(coffer_store::Error::Corrupt {
                what: format!("object '{key}' in pool '{}'", self.meta.name),
                reason: format!("no usable shard ({})", rejected[0].reason),
            });
        };
        Ok((
            OpenObject {
                layout,
                shards,
                blocks: Mutex::new(VecDeque::new()),
            },
            rejected,
        ))
    }

    fn open_object(&self, key: &str) -> coffer_store::Result<Arc<OpenObject>> {
        {
            let mut c = lock(&self.cache);
            if let Some(pos) = c.iter().position(|(k, _)| k == key) {
                let e = c.remove(pos);
                if let Some(e) = e {
                    let o = e.1.clone();
                    c.push_front(e);
                    return Ok(o);
                }
            }
        }
        let (obj, _) = self.open_object_fresh(key)?;
        let have = obj.shards.iter().flatten().count();
        if have < obj.layout.k {
            return Err(coffer_store::Error::Corrupt {
                what: format!("object '{key}' in pool '{}'", self.meta.name),
                reason: format!(
                    "only {have} of the {} shards needed are readable ({})",
                    obj.layout.k,
                    self.member_problems()
                ),
            });
        }
        let obj = Arc::new(obj);
        let mut c = lock(&self.cache);
        c.push_front((key.to_string(), obj.clone()));
        c.truncate(OPEN_CACHE);
        Ok(obj)
    }

    fn forget(&self, key: &str) {
        lock(&self.cache).retain(|(k, _)| k != key);
    }

    /// Reads and verifies block `j` of stripe `s` from its shard; `None`
    /// if the shard is missing, marked bad, or fails now (then marked).
    pub(crate) fn read_verified(
        &self,
        key: &str,
        obj: &OpenObject,
        s: u64,
        j: usize,
        buf: &mut Vec<u8>,
    ) -> bool {
        let Some(sh) = obj.shards.get(j).and_then(Option::as_ref) else {
            return false;
        };
        if sh.bad.load(Ordering::Relaxed) {
            return false;
        }
        match shard::read_block(&sh.file, &obj.layout, s, j as u8, buf) {
            Ok(()) => true,
            Err(e) => {
                sh.bad.store(true, Ordering::Relaxed);
                let m = &self.members[sh.member];
                let what = format!("stripe {s} {e}");
                match e {
                    shard::BlockError::Hash => self.checksum_error(m, key, &what),
                    shard::BlockError::Read(_) => {
                        self.member_failed(m, &format!("shard of '{key}': {what}"), false)
                    }
                }
                false
            }
        }
    }

    /// All k data blocks of stripe `s`, repaired from parity where needed.
    pub(crate) fn stripe_blocks(
        &self,
        key: &str,
        obj: &OpenObject,
        s: u64,
    ) -> coffer_store::Result<Vec<Vec<u8>>> {
        let (k, m) = (obj.layout.k, obj.layout.m);
        let blen = obj.layout.block_len(s) as usize;
        let mut blocks: Vec<Option<Vec<u8>>> = vec![None; k + m];
        let mut buf = Vec::new();
        let mut have = 0;
        for (j, slot) in blocks.iter_mut().enumerate().take(k) {
            if self.read_verified(key, obj, s, j, &mut buf) {
                *slot = Some(buf[HASH_LEN as usize..].to_vec());
                have += 1;
            }
        }
        if have < k {
            for (i, slot) in blocks.iter_mut().enumerate().skip(k) {
                if have == k {
                    break;
                }
                if self.read_verified(key, obj, s, i, &mut buf) {
                    *slot = Some(buf[HASH_LEN as usize..].to_vec());
                    have += 1;
                }
            }
            Coder::new(k, m).repair(&mut blocks, blen).map_err(|e| {
                coffer_store::Error::Corrupt {
                    what: format!("object '{key}' in pool '{}'", self.meta.name),
                    reason: format!(
                        "stripe {s} cannot be rebuilt: {e} ({})",
                        self.member_problems()
                    ),
                }
            })?;
            lock(&self.notices).healed_reads += 1;
        }
        Ok(blocks.into_iter().take(k).flatten().collect())
    }

    /// Data block `j` of stripe `s`, from the block cache or the shards.
    fn data_block(
        &self,
        key: &str,
        obj: &OpenObject,
        s: u64,
        j: usize,
    ) -> coffer_store::Result<Arc<Vec<u8>>> {
        {
            let c = lock(&obj.blocks);
            if let Some((_, b)) = c.iter().find(|(id, _)| *id == (s, j)) {
                return Ok(b.clone());
            }
        }
        let mut buf = Vec::new();
        let got: Vec<(usize, Arc<Vec<u8>>)> = if self.read_verified(key, obj, s, j, &mut buf) {
            buf.drain(..HASH_LEN as usize);
            vec![(j, Arc::new(buf))]
        } else {
            self.stripe_blocks(key, obj, s)?
                .into_iter()
                .map(Arc::new)
                .enumerate()
                .collect()
        };
        let mut c = lock(&obj.blocks);
        let mut out = None;
        for (i, b) in got {
            if i == j {
                out = Some(b.clone());
            }
            c.push_front(((s, i), b));
        }
        c.truncate(2 * obj.layout.k.max(2));
        out.ok_or_else(|| {
            self.backend_error(format!("block {j} of stripe {s} of '{key}' went missing"))
        })
    }

    /// Looks at every member in use without waiting for an I/O error: one
    /// whose pool metadata is gone (the disk pulled, its filesystem
    /// unmounted) is taken out as missing. A long-running service calls it
    /// before reporting, so a pulled disk shows at once. Returns the
    /// members taken out.
    pub fn check_members(&self) -> Vec<String> {
        let mut out = Vec::new();
        for m in &self.members {
            if m.state().readable() && !m.root().join(meta::META_FILE).is_file() {
                self.set_state(
                    m,
                    MemberState::Missing(format!(
                        "'{}' is gone: the disk was pulled or unmounted",
                        m.root().join(meta::META_FILE).display()
                    )),
                );
                out.push(m.meta.id.clone());
            }
        }
        out
    }

    /// The pool's current status: members, capacity, health.
    pub fn status(&self) -> PoolStatus {
        let mut members = Vec::new();
        let (mut total, mut avail) = (0u64, 0u64);
        for m in &self.members {
            let cap = coffer_block::capacity(m.root()).ok();
            let state = m.state();
            if let Some(c) = &cap
                && state.readable()
            {
                total += c.total;
                if state.writable() {
                    avail += c.available;
                }
            }
            members.push(MemberStatus {
                id: m.meta.id.clone(),
                path: m.root().to_path_buf(),
                state: state.name().to_string(),
                reason: state.reason().map(String::from),
                disk: m.meta.disk.clone(),
                health: m.health.clone(),
                capacity: cap,
                read_errors: m.read_errors.load(Ordering::Relaxed),
                write_errors: m.write_errors.load(Ordering::Relaxed),
                checksum_errors: m.checksum_errors.load(Ordering::Relaxed),
            });
        }
        let online = self.members.iter().filter(|m| m.state().readable()).count();
        let degraded = self
            .members
            .iter()
            .any(|m| !matches!(m.state(), MemberState::Online | MemberState::Full(_)));
        PoolStatus {
            id: self.meta.id.clone(),
            name: self.meta.name.clone(),
            data_shards: self.k as u8,
            parity_shards: self.m as u8,
            generation: self.meta.generation,
            state: self.meta.state,
            health: if online < self.k {
                PoolHealth::Unavailable
            } else if degraded {
                PoolHealth::Degraded
            } else {
                PoolHealth::Online
            },
            raw_total: total,
            raw_available: avail,
            usable_available: avail / (self.k + self.m) as u64 * self.k as u64,
            members,
            last_scrub: crate::scrub::last_report(self),
        }
    }

    /// Keys of every object with at least one shard on a readable member.
    fn all_keys(&self, prefix: &str) -> coffer_store::Result<BTreeSet<String>> {
        let mut keys = BTreeSet::new();
        for m in &self.members {
            if !m.state().readable() {
                continue;
            }
            let dir = m.root().join(OBJECTS);
            if !dir.exists() {
                continue;
            }
            match DirStore::new(&dir).list(prefix) {
                Ok(v) => keys.extend(v),
                Err(e) => self.member_failed(m, &e.to_string(), false),
            }
        }
        Ok(keys)
    }

    pub(crate) fn list_all(&self) -> coffer_store::Result<Vec<String>> {
        Ok(self.all_keys("")?.into_iter().collect())
    }

    /// Creates the temporary file of a new shard on member `mi`.
    pub(crate) fn shard_out(&self, mi: usize, index: u8) -> std::result::Result<ShardOut, String> {
        let m = &self.members[mi];
        // A pulled or unmounted disk leaves its mount point behind (or
        // nothing at all): writing there would put shards on the system
        // disk, or recreate a member that is gone. The member must still
        // carry its pool metadata, and only its `tmp` is ever created.
        let marker = m.root().join(crate::meta::META_FILE);
        if !marker.is_file() {
            return Err(format!(
                "'{}' is gone: the disk was pulled or unmounted",
                marker.display()
            ));
        }
        let dir = m.root().join(TMP);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("create '{}': {e}", dir.display())),
        }
        let mut nonce = [0u8; 8];
        coffer_keys::random_bytes(&mut nonce).map_err(|e| e.to_string())?;
        let tmp = dir.join(format!("{}-{}", std::process::id(), hex::encode(nonce)));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| format!("create '{}': {e}", tmp.display()))?;
        // The header's place: it is written last, at `finish`.
        file.write_all(&[0u8; HEADER_LEN as usize])
            .map_err(|e| format!("write '{}': {e}", tmp.display()))?;
        Ok(ShardOut {
            member: mi,
            index,
            tmp,
            file: Some(file),
            hasher: blake3::Hasher::new(),
            budget: u64::MAX,
        })
    }

    /// Removes temporary shard files of writers that are no longer alive.
    pub fn clean_tmp(&self, is_alive: impl Fn(u32) -> bool) -> usize {
        let mut n = 0;
        for m in &self.members {
            if m.state().writable()
                && let Ok(k) = DirStore::new(m.root()).clean_tmp(&is_alive)
            {
                n += k;
            }
        }
        n
    }

    /// Takes the notices without formatting (for tests).
    fn take_notices(&self) -> Vec<String> {
        let n = std::mem::take(&mut *lock(&self.notices));
        let mut out = n.member_events;
        out.dedup();
        if n.degraded_writes > 0 {
            out.push(format!(
                "pool '{}' ran degraded: {} object(s) were written {} shard(s) short of {}+{}; they are readable now and 'coffer pool scrub' restores their redundancy once members are back or replaced",
                self.meta.name, n.degraded_writes, n.degraded_shards, self.k, self.m
            ));
        }
        if n.healed_reads > 0 {
            out.push(format!(
                "pool '{}': {} stripe(s) were read through parity because a shard was missing or damaged",
                self.meta.name, n.healed_reads
            ));
        }
        out
    }
}

fn probe_member(mm: &MemberMeta, best: &PoolMeta) -> MemberState {
    if !mm.path.is_dir() {
        return MemberState::Missing(format!("'{}' does not exist", mm.path.display()));
    }
    match meta::read(&mm.path) {
        Err(e) => MemberState::Failed(e.to_string()),
        Ok(None) => MemberState::Missing(format!(
            "no pool metadata at '{}': disk not mounted, or wiped",
            mm.path.display()
        )),
        Ok(Some(c)) if c.pool.id != best.id => MemberState::Foreign(format!(
            "holds pool '{}' ({}), not this pool",
            c.pool.name, c.pool.id
        )),
        Ok(Some(c)) if c.member != mm.id => MemberState::Foreign(format!(
            "holds member {}'s metadata, not {}'s",
            c.member, mm.id
        )),
        Ok(Some(c)) if c.pool.generation < best.generation => MemberState::Stale(format!(
            "metadata generation {}, the pool is at {}: it missed changes while away; replace it",
            c.pool.generation, best.generation
        )),
        Ok(Some(_)) => MemberState::Online,
    }
}

impl Member {
    fn apply_health(&mut self) {
        if let Some(h) = &self.health
            && h.verdict == Verdict::Failing
            && self.state().readable()
        {
            *lock(&self.state) = MemberState::Failing(format!("SMART: {}", h.reasons.join(", ")));
        }
    }
}

/// A shard being written to a temporary file on one member.
#[derive(Debug)]
pub(crate) struct ShardOut {
    pub(crate) member: usize,
    pub(crate) index: u8,
    pub(crate) tmp: PathBuf,
    file: Option<File>,
    hasher: blake3::Hasher,
    /// Bytes this shard may still take before the member's reserve.
    pub(crate) budget: u64,
}

impl ShardOut {
    /// Appends stripe `s`'s block.
    pub(crate) fn push(&mut self, s: u64, data: &[u8]) -> io::Result<()> {
        let len = HASH_LEN + data.len() as u64;
        if len > self.budget {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "No space left on device (inside the member's reserve)",
            ));
        }
        self.budget -= len;
        let h = shard::block_hash(s, self.index, data);
        self.hasher.update(&h);
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("shard already finished"))?;
        // One system call for hash and block, no copy through a buffer.
        let mut bufs = [io::IoSlice::new(&h), io::IoSlice::new(data)];
        let mut slices: &mut [io::IoSlice<'_>] = &mut bufs;
        while !slices.is_empty() {
            let n = f.write_vectored(slices)?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::WriteZero));
            }
            io::IoSlice::advance_slices(&mut slices, n);
        }
        Ok(())
    }

    /// Writes the header for an object of layout `l` and makes the file
    /// durable.
    pub(crate) fn finish(&mut self, pool: [u8; 16], key: &str, l: &Layout) -> io::Result<()> {
        let h = Header {
            k: l.k as u8,
            m: l.m as u8,
            index: self.index,
            block: l.block as u32,
            len: l.len,
            pool,
            key: shard::key_hash(key),
            shard_hash: *self.hasher.finalize().as_bytes(),
        };
        let f = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("shard already finished"))?;
        f.write_all_at(&h.encode(), 0)?;
        f.sync_all()
    }
}

impl Drop for ShardOut {
    fn drop(&mut self) {
        // Published or not, the temporary name goes (a published shard
        // lives on under its key through the hard link or rename).
        let _ = fs::remove_file(&self.tmp);
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Gives a finished shard its key on its member: a hard link (never
/// replacing), or with `replace` a rename over a damaged shard.
pub(crate) fn publish(root: &Path, key: &str, tmp: &Path, replace: bool) -> io::Result<()> {
    let objects = root.join(OBJECTS);
    let dest = objects.join(key);
    let parent = dest.parent().unwrap_or(root);
    if !parent.exists() {
        // Directories are made below the member's `objects` only: a member
        // that vanished mid-write is not recreated.
        if !objects.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "'{}' is gone: the disk was pulled or unmounted",
                    objects.display()
                ),
            ));
        }
        let mut below = objects.clone();
        for part in parent.strip_prefix(&objects).unwrap_or(Path::new("")) {
            below.push(part);
            match fs::create_dir(&below) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        let mut p = parent;
        while let Some(up) = p.parent() {
            sync_dir(up)?;
            if up == root {
                break;
            }
            p = up;
        }
    }
    if replace {
        let locked = coffer_block::is_immutable(&dest).unwrap_or(false);
        if locked {
            // The retention lock follows the shard onto its repaired copy.
            coffer_block::set_immutable(&dest, false).map_err(io::Error::other)?;
        }
        let r = fs::rename(tmp, &dest);
        if locked {
            coffer_block::set_immutable(&dest, true).map_err(io::Error::other)?;
        }
        r?;
    } else {
        fs::hard_link(tmp, &dest)?;
    }
    sync_dir(parent)
}

/// A new object being written across the members.
struct PoolWriter<'a> {
    pool: &'a Pool,
    key: String,
    outs: Vec<ShardOut>,
    stripe: Vec<u8>,
    stripe_no: u64,
    len: u64,
    coder: Coder,
    parity: Vec<Vec<u8>>,
    pad: Vec<u8>,
}

impl PoolWriter<'_> {
    fn drop_shard(&mut self, pos: usize, e: &io::Error) {
        let out = self.outs.remove(pos);
        let m = &self.pool.members[out.member];
        let what = format!("writing a shard of '{}': {e}", self.key);
        if e.kind() == io::ErrorKind::StorageFull || e.raw_os_error() == Some(libc::ENOSPC) {
            self.pool.member_full(m, &what);
        } else {
            self.pool.member_failed(m, &what, true);
        }
    }

    fn short(&self, when: &str) -> coffer_store::Error {
        self.pool.backend_error(format!(
            "cannot place a stripe of '{}' {when}: {} of the {} members needed are writable ({}); nothing of it was kept",
            self.key,
            self.outs.len(),
            self.pool.k,
            self.pool.member_problems()
        ))
    }

    /// Codes one stripe (`src`: a full stripe, or the last one) and
    /// appends its blocks to the shards.
    fn flush_stripe(&mut self, src: &[u8]) -> coffer_store::Result<()> {
        let k = self.pool.k;
        let full = src.len() as u64 == self.pool.block as u64 * k as u64;
        let b = if full {
            self.pool.block as usize
        } else {
            shard::even_block(src.len() as u64, k) as usize
        };
        let src: &[u8] = if full {
            src
        } else {
            self.pad.clear();
            self.pad.extend_from_slice(src);
            self.pad.resize(b * k, 0);
            &self.pad
        };
        let data: Vec<&[u8]> = src.chunks(b).collect();
        self.coder.encode(&data, &mut self.parity).map_err(|e| {
            self.pool
                .backend_error(format!("erasure coding failed: {e}"))
        })?;
        let s = self.stripe_no;
        let mut failed = Vec::new();
        for (pos, out) in self.outs.iter_mut().enumerate() {
            let i = out.index as usize;
            let blk: &[u8] = if i < k { data[i] } else { &self.parity[i - k] };
            if let Err(e) = out.push(s, blk) {
                failed.push((pos, e));
            }
        }
        for (pos, e) in failed.into_iter().rev() {
            self.drop_shard(pos, &e);
        }
        if self.outs.len() < k {
            return Err(self.short("while writing"));
        }
        self.stripe_no += 1;
        Ok(())
    }

    /// Codes the buffered stripe.
    fn flush_buffered(&mut self) -> coffer_store::Result<()> {
        let buf = std::mem::take(&mut self.stripe);
        let r = self.flush_stripe(&buf);
        self.stripe = buf;
        self.stripe.clear();
        r
    }
}

impl ObjectWriter for PoolWriter<'_> {
    fn write(&mut self, mut data: &[u8]) -> coffer_store::Result<()> {
        let d = self.pool.block as usize * self.pool.k;
        while !data.is_empty() {
            if self.stripe.is_empty() && data.len() >= d {
                // Whole stripes are coded straight from the caller's bytes.
                self.flush_stripe(&data[..d])?;
                self.len += d as u64;
                data = &data[d..];
                continue;
            }
            let take = (d - self.stripe.len()).min(data.len());
            self.stripe.extend_from_slice(&data[..take]);
            data = &data[take..];
            self.len += take as u64;
            if self.stripe.len() == d {
                self.flush_buffered()?;
            }
        }
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> coffer_store::Result<()> {
        if !self.stripe.is_empty() {
            self.flush_buffered()?;
        }
        let (pool, key) = (self.pool, self.key.clone());
        let layout = Layout {
            len: self.len,
            k: pool.k,
            m: pool.m,
            block: pool.block as u64,
        };
        let mut outs = std::mem::take(&mut self.outs);
        // The shards are on different disks: their headers and fsyncs run
        // side by side.
        let results: Vec<io::Result<()>> = std::thread::scope(|sc| {
            let handles: Vec<_> = outs
                .iter_mut()
                .map(|o| {
                    let (key, layout) = (&key, &layout);
                    sc.spawn(move || o.finish(pool.id, key, layout))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(io::Error::other("shard writer panicked")))
                })
                .collect()
        });
        let mut results = results.into_iter();
        outs.retain_mut(|o| match results.next().unwrap_or(Ok(())) {
            Ok(()) => true,
            Err(e) => {
                let m = &pool.members[o.member];
                let what = format!("finishing a shard of '{key}': {e}");
                if e.raw_os_error() == Some(libc::ENOSPC) {
                    pool.member_full(m, &what);
                } else {
                    pool.member_failed(m, &what, true);
                }
                false
            }
        });
        if outs.len() < pool.k {
            self.outs = outs;
            return Err(self.short("at commit"));
        }
        // Existing shards: a whole object wins (objects are never
        // replaced); fewer than k are the remains of an interrupted write
        // of the same key, never readable, and go.
        let existing: Vec<&Member> = pool
            .members
            .iter()
            .filter(|m| m.state().readable() && m.shard_path(&key).exists())
            .collect();
        if existing.len() >= pool.k {
            return Err(coffer_store::Error::AlreadyExists { key });
        }
        for m in existing {
            tracing::warn!(key, member = %m.meta.id, "removing a shard left by an interrupted write");
            let _ = fs::remove_file(m.shard_path(&key));
        }
        let mut published: Vec<usize> = Vec::new();
        let linked: Vec<io::Result<()>> = std::thread::scope(|sc| {
            let handles: Vec<_> = outs
                .iter()
                .map(|o| {
                    let (root, key, tmp) = (pool.members[o.member].root(), &key, &o.tmp);
                    sc.spawn(move || publish(root, key, tmp, false))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(io::Error::other("shard publisher panicked")))
                })
                .collect()
        });
        for (o, res) in outs.iter().zip(linked) {
            let m = &pool.members[o.member];
            match res {
                Ok(()) => published.push(o.member),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    for mi in &published {
                        let _ = fs::remove_file(pool.members[*mi].shard_path(&key));
                    }
                    return Err(coffer_store::Error::AlreadyExists { key });
                }
                Err(e) => {
                    pool.member_failed(m, &format!("publishing a shard of '{key}': {e}"), true)
                }
            }
        }
        if published.len() < pool.k {
            for mi in &published {
                let _ = fs::remove_file(pool.members[*mi].shard_path(&key));
            }
            self.outs = outs;
            return Err(self.short("at commit"));
        }
        if published.len() < pool.k + pool.m {
            pool.note_degraded_write(published.len());
        }
        Ok(())
    }
}

/// Reads an object from its start, stripe by stripe.
struct StripeReader<'a> {
    pool: &'a Pool,
    key: String,
    obj: Arc<OpenObject>,
    next: u64,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for StripeReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.cur.len() {
            if self.next >= self.obj.layout.stripes() {
                return Ok(0);
            }
            let s = self.next;
            let blocks = self
                .pool
                .stripe_blocks(&self.key, &self.obj, s)
                .map_err(io::Error::other)?;
            self.cur.clear();
            for b in blocks {
                self.cur.extend_from_slice(&b);
            }
            self.cur.truncate(self.obj.layout.stripe_len(s) as usize);
            self.pos = 0;
            self.next += 1;
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl BlobStore for Pool {
    fn put(&self, key: &str, data: &[u8]) -> coffer_store::Result<()> {
        let mut w = self.create(key)?;
        w.write(data)?;
        w.commit()
    }

    fn create<'a>(&'a self, key: &str) -> coffer_store::Result<Box<dyn ObjectWriter + 'a>> {
        coffer_store::check_key(key)?;
        // Whether the key is taken is decided once, at commit: an object
        // that appears meanwhile wins there.
        let mut outs = Vec::new();
        for (mi, free) in self.placement() {
            if outs.len() == self.k + self.m {
                break;
            }
            match self.shard_out(mi, outs.len() as u8) {
                Ok(mut o) => {
                    o.budget = free;
                    outs.push(o);
                }
                Err(e) => self.member_failed(&self.members[mi], &e, true),
            }
        }
        let w = PoolWriter {
            pool: self,
            key: key.to_string(),
            outs,
            stripe: Vec::new(),
            stripe_no: 0,
            len: 0,
            coder: Coder::new(self.k, self.m),
            parity: vec![Vec::new(); self.m],
            pad: Vec::new(),
        };
        if w.outs.len() < self.k {
            return Err(w.short("before writing"));
        }
        // Shard indices follow placement: data shards on the emptiest
        // members; in a degraded pool the missing ones are parity.
        Ok(Box::new(w))
    }

    fn get(&self, key: &str) -> coffer_store::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.reader(key)?
            .read_to_end(&mut out)
            .map_err(|e| self.backend_error(format!("reading '{key}': {e}")))?;
        Ok(out)
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> coffer_store::Result<Vec<u8>> {
        let obj = self.open_object(key)?;
        let l = obj.layout;
        match offset.checked_add(len) {
            Some(end) if end <= l.len => {}
            _ => {
                return Err(coffer_store::Error::Truncated {
                    key: key.into(),
                    detail: format!(
                        "wanted {len} bytes at offset {offset}, object has {}",
                        l.len
                    ),
                });
            }
        }
        let mut out = Vec::with_capacity(len as usize);
        let d = l.stripe_data();
        let mut pos = offset;
        let end = offset + len;
        while pos < end {
            let s = pos / d;
            let b = l.block_len(s);
            let in_stripe = pos - s * d;
            let j = (in_stripe / b) as usize;
            let within = (in_stripe % b) as usize;
            let block = self.data_block(key, &obj, s, j)?;
            let block_end = (s * d + (j as u64 + 1) * b).min(end);
            let n = (block_end - pos) as usize;
            out.extend_from_slice(&block[within..within + n]);
            pos += n as u64;
        }
        Ok(out)
    }

    fn size(&self, key: &str) -> coffer_store::Result<u64> {
        Ok(self.open_object(key)?.layout.len)
    }

    fn list(&self, prefix: &str) -> coffer_store::Result<Vec<String>> {
        Ok(self.all_keys(prefix)?.into_iter().collect())
    }

    fn delete(&self, key: &str) -> coffer_store::Result<()> {
        self.forget(key);
        coffer_store::check_key(key)?;
        for m in &self.members {
            if !m.state().readable() {
                continue;
            }
            let p = m.shard_path(key);
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                    return Err(coffer_store::Error::Locked { key: key.into() });
                }
                Err(e) => return Err(self.backend_error(format!("remove '{}': {e}", p.display()))),
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "pool '{}' ({}+{} over {} members)",
            self.meta.name,
            self.k,
            self.m,
            self.members.len()
        )
    }

    fn reader<'a>(&'a self, key: &str) -> coffer_store::Result<Box<dyn Read + Send + 'a>> {
        let obj = self.open_object(key)?;
        Ok(Box::new(StripeReader {
            pool: self,
            key: key.to_string(),
            obj,
            next: 0,
            cur: Vec::new(),
            pos: 0,
        }))
    }

    fn retention_lock(&self, key: &str, locked: bool) -> coffer_store::Result<()> {
        let mut n = 0;
        for m in &self.members {
            if !m.state().readable() {
                continue;
            }
            let p = m.shard_path(key);
            if !p.exists() {
                continue;
            }
            coffer_block::set_immutable(&p, locked)
                .map_err(|e| self.backend_error(format!("retention lock on '{key}': {e}")))?;
            n += 1;
        }
        if n == 0 {
            return Err(coffer_store::Error::NotFound { key: key.into() });
        }
        Ok(())
    }

    fn notices(&self) -> Vec<String> {
        self.take_notices()
    }
}

/// The pool's overall condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolHealth {
    /// Every member online.
    Online,
    /// Some member is missing, failed, failing or stale: data is readable,
    /// redundancy is reduced.
    Degraded,
    /// Fewer than k members readable.
    Unavailable,
}

/// A member in [`PoolStatus`].
#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    /// Member id.
    pub id: String,
    /// Mount path.
    pub path: PathBuf,
    /// online, full, failing, missing, failed, stale, foreign.
    pub state: String,
    /// Why it is not online.
    pub reason: Option<String>,
    /// The disk it joined on.
    pub disk: Option<String>,
    /// SMART health, when known.
    pub health: Option<Health>,
    /// Filesystem capacity.
    pub capacity: Option<Capacity>,
    /// Read errors in this session.
    pub read_errors: u64,
    /// Write errors in this session.
    pub write_errors: u64,
    /// Shards failing their hash in this session.
    pub checksum_errors: u64,
}

/// What `coffer pool status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct PoolStatus {
    /// Pool id.
    pub id: String,
    /// Name.
    pub name: String,
    /// k.
    pub data_shards: u8,
    /// m.
    pub parity_shards: u8,
    /// Metadata generation.
    pub generation: u64,
    /// Active or exported.
    pub state: PoolState,
    /// Online, degraded or unavailable.
    pub health: PoolHealth,
    /// Sum of the readable members' filesystem sizes.
    pub raw_total: u64,
    /// Sum of the writable members' free space.
    pub raw_available: u64,
    /// What new data can still take, after parity.
    pub usable_available: u64,
    /// Members.
    pub members: Vec<MemberStatus>,
    /// The last scrub's report, if any.
    pub last_scrub: Option<crate::scrub::ScrubReport>,
}
