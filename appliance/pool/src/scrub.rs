//! Scrub: read every shard of every object, verify every block and every
//! shard's hash, and rewrite what is missing or damaged from the others.
//! Rebuild after a replacement is the same walk: the shards the old member
//! held are missing, and are written onto the member with room for them,
//! which is the new one.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::Result;
use crate::pool::{MemberState, OpenObject, Pool, ShardOut, publish};
use crate::shard::{Coder, HASH_LEN};

/// The last scrub's report, kept on every member.
pub(crate) const REPORT_FILE: &str = "coffer-pool-scrub.json";

/// Progress of a scrub, for a progress bar.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScrubProgress {
    /// Objects done.
    pub objects_done: u64,
    /// Objects in the pool.
    pub objects_total: u64,
    /// Shard bytes read so far.
    pub bytes: u64,
}

/// Per member figures of a scrub.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemberScrub {
    /// Member id.
    pub id: String,
    /// Path.
    pub path: PathBuf,
    /// State during the scrub.
    pub state: String,
    /// Shards read and verified.
    pub shards: u64,
    /// Shards found damaged (failing a hash, wrong size, bad header).
    pub damaged: u64,
    /// Shards written onto this member (repairs and rebuilds).
    pub written: u64,
}

/// What a scrub found and did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ScrubReport {
    /// Pool name.
    pub pool: String,
    /// When it started (RFC 3339).
    pub started: String,
    /// How long it took.
    pub seconds: f64,
    /// Objects checked.
    pub objects: u64,
    /// Shards read.
    pub shards_checked: u64,
    /// Shard bytes read.
    pub bytes_checked: u64,
    /// Shards not found on any readable member.
    pub shards_missing: u64,
    /// Shards found damaged.
    pub shards_damaged: u64,
    /// Shards rewritten.
    pub shards_repaired: u64,
    /// Objects with fewer than k good shards: data lost.
    pub unrecoverable: Vec<String>,
    /// Repairs that could not be made (no member with room, write errors).
    pub failures: Vec<String>,
    /// Per member.
    pub members: Vec<MemberScrub>,
}

impl ScrubReport {
    /// Every object readable and fully redundant after the scrub.
    pub fn ok(&self) -> bool {
        self.unrecoverable.is_empty() && self.failures.is_empty()
    }
}

pub(crate) fn last_report(pool: &Pool) -> Option<ScrubReport> {
    pool.members.iter().find_map(|m| {
        let text = fs::read(m.root().join(REPORT_FILE)).ok()?;
        serde_json::from_slice(&text).ok()
    })
}

impl Pool {
    /// Scrubs the pool: verifies every shard and heals from parity. The
    /// report is also saved on every online member (`pool status` shows
    /// it).
    pub fn scrub(&self, progress: &dyn Fn(ScrubProgress)) -> Result<ScrubReport> {
        let t0 = Instant::now();
        let mut r = ScrubReport {
            pool: self.meta.name.clone(),
            started: now(),
            ..ScrubReport::default()
        };
        let mut per: Vec<MemberScrub> = self
            .members
            .iter()
            .map(|m| MemberScrub {
                id: m.meta.id.clone(),
                path: m.root().to_path_buf(),
                ..MemberScrub::default()
            })
            .collect();
        let keys = self.list_all()?;
        let mut p = ScrubProgress {
            objects_total: keys.len() as u64,
            ..ScrubProgress::default()
        };
        progress(p);
        for key in &keys {
            self.scrub_object(key, &mut r, &mut per);
            r.objects += 1;
            p.objects_done += 1;
            p.bytes = r.bytes_checked;
            progress(p);
        }
        for (m, s) in self.members.iter().zip(per.iter_mut()) {
            s.state = m.state().name().to_string();
        }
        r.members = per;
        r.seconds = t0.elapsed().as_secs_f64();
        if let Ok(text) = serde_json::to_vec_pretty(&r) {
            for m in &self.members {
                if m.state().writable() || matches!(m.state(), MemberState::Full(_)) {
                    let tmp = m.root().join(format!(".{REPORT_FILE}.tmp"));
                    if fs::write(&tmp, &text).is_ok() {
                        let _ = fs::rename(&tmp, m.root().join(REPORT_FILE));
                    }
                }
            }
        }
        Ok(r)
    }

    fn scrub_object(&self, key: &str, r: &mut ScrubReport, per: &mut [MemberScrub]) {
        let (obj, rejected) = match self.open_object_fresh(key) {
            Ok(x) => x,
            Err(e) => {
                r.unrecoverable.push(format!("{key}: {e}"));
                return;
            }
        };
        let l = obj.layout;
        let n = l.k + l.m;
        // Where each index's damaged copy sits (to rewrite it in place).
        let mut damaged_on: BTreeMap<usize, usize> = BTreeMap::new();
        for rej in &rejected {
            r.shards_damaged += 1;
            per[rej.member].damaged += 1;
        }
        // Pass 1: verify every block and each shard's own hash.
        let mut hashers: Vec<Option<blake3::Hasher>> = (0..n)
            .map(|i| obj.shards[i].as_ref().map(|_| blake3::Hasher::new()))
            .collect();
        let mut buf = Vec::new();
        for s in 0..l.stripes() {
            for (i, hasher) in hashers.iter_mut().enumerate() {
                let Some(h) = hasher.as_mut() else {
                    continue;
                };
                if self.read_verified(key, &obj, s, i, &mut buf) {
                    r.bytes_checked += buf.len() as u64;
                    h.update(&buf[..HASH_LEN as usize]);
                }
            }
        }
        let mut bad: Vec<usize> = Vec::new();
        // A rejected file (bad header, wrong size) is a damaged copy of one
        // of the absent indices: counted as damaged, not also as missing.
        let mut unaccounted = rejected.len();
        for (i, hasher) in hashers.iter().enumerate() {
            match obj.shards[i].as_ref() {
                None => {
                    if unaccounted > 0 {
                        unaccounted -= 1;
                    } else {
                        r.shards_missing += 1;
                    }
                    bad.push(i);
                }
                Some(sh) => {
                    r.shards_checked += 1;
                    per[sh.member].shards += 1;
                    let whole_ok = hasher
                        .as_ref()
                        .is_some_and(|h| *h.finalize().as_bytes() == sh.header.shard_hash);
                    if sh.bad.load(Ordering::Relaxed) || !whole_ok {
                        if !sh.bad.load(Ordering::Relaxed) {
                            self.checksum_error(
                                &self.members[sh.member],
                                key,
                                "shard hash mismatch",
                            );
                        }
                        r.shards_damaged += 1;
                        per[sh.member].damaged += 1;
                        damaged_on.insert(i, sh.member);
                        sh.bad.store(true, Ordering::Relaxed);
                        bad.push(i);
                    }
                }
            }
        }
        let good = n - bad.len();
        if good < l.k {
            r.unrecoverable.push(format!(
                "{key}: only {good} of the {} shards needed are intact",
                l.k
            ));
            return;
        }
        let failures = r.failures.len();
        let written = if bad.is_empty() {
            Vec::new()
        } else {
            self.repair_object(key, &obj, &bad, &damaged_on, r, per)
        };
        if r.failures.len() == failures {
            // The object is whole: files at its key that are no usable
            // shard of it (damaged header, wrong size, a second copy) and
            // were not rewritten go.
            for rej in &rejected {
                let holds_good = obj
                    .shards
                    .iter()
                    .flatten()
                    .any(|sh| sh.member == rej.member);
                if !holds_good && !written.contains(&rej.member) {
                    let p = self.members[rej.member].shard_path(key);
                    if coffer_block::is_immutable(&p).unwrap_or(false) {
                        continue;
                    }
                    let _ = fs::remove_file(p);
                }
            }
        }
    }

    /// Pass 2: regenerate the shards in `bad` and write them out.
    fn repair_object(
        &self,
        key: &str,
        obj: &OpenObject,
        bad: &[usize],
        damaged_on: &BTreeMap<usize, usize>,
        r: &mut ScrubReport,
        per: &mut [MemberScrub],
    ) -> Vec<usize> {
        let mut written = Vec::new();
        let l = obj.layout;
        let n = l.k + l.m;
        // Members already holding a good shard of this object.
        let mut used: Vec<usize> = obj
            .shards
            .iter()
            .flatten()
            .filter(|sh| !sh.bad.load(Ordering::Relaxed))
            .map(|sh| sh.member)
            .collect();
        let mut outs: Vec<(ShardOut, bool)> = Vec::new();
        for &i in bad {
            // A damaged shard is rewritten where it is; a missing one goes
            // to a writable member holding no good shard of this object:
            // one with an unusable file at the key first (rewritten in
            // place), else the one with most room.
            let target = match damaged_on.get(&i) {
                Some(&mi) if self.members[mi].state().writable() => Some((mi, true)),
                _ => {
                    let mut best: Option<(usize, bool, u64)> = None;
                    for (mi, m) in self.members.iter().enumerate() {
                        if !m.state().writable() || used.contains(&mi) {
                            continue;
                        }
                        let occupied = m.shard_path(key).exists();
                        if let Ok(c) = coffer_block::capacity(m.root())
                            && best.is_none_or(|b| (occupied, c.available) > (b.1, b.2))
                        {
                            best = Some((mi, occupied, c.available));
                        }
                    }
                    best.map(|(mi, occupied, _)| (mi, occupied))
                }
            };
            let Some((mi, replace)) = target else {
                r.failures.push(format!(
                    "{key}: shard {i} has no writable member to go to (every other member holds a shard of it or is not writable)"
                ));
                continue;
            };
            match self.shard_out(mi, i as u8) {
                Ok(o) => {
                    used.push(mi);
                    outs.push((o, replace));
                }
                Err(e) => {
                    self.member_failed(&self.members[mi], &e, true);
                    r.failures.push(format!("{key}: shard {i}: {e}"));
                }
            }
        }
        if outs.is_empty() {
            return written;
        }
        let mut coder = Coder::new(l.k, l.m);
        let mut buf = Vec::new();
        for s in 0..l.stripes() {
            let blen = l.block_len(s) as usize;
            let mut blocks: Vec<Option<Vec<u8>>> = vec![None; n];
            let mut have = 0;
            for (i, slot) in blocks.iter_mut().enumerate() {
                if have == l.k {
                    break;
                }
                if self.read_verified(key, obj, s, i, &mut buf) {
                    *slot = Some(buf[HASH_LEN as usize..].to_vec());
                    have += 1;
                }
            }
            if let Err(e) = coder.repair(&mut blocks, blen) {
                r.failures.push(format!("{key}: stripe {s}: {e}"));
                return written;
            }
            for (o, _) in outs.iter_mut() {
                let Some(data) = blocks[o.index as usize].as_ref() else {
                    continue;
                };
                if let Err(e) = o.push(s, data) {
                    r.failures.push(format!(
                        "{key}: writing shard {} to member {}: {e}",
                        o.index, self.members[o.member].meta.id
                    ));
                    return written;
                }
            }
        }
        for (mut o, replace) in outs {
            let m = &self.members[o.member];
            let res = o
                .finish(self.id, key, &l)
                .and_then(|_| publish(m.root(), key, &o.tmp, replace));
            match res {
                Ok(()) => {
                    r.shards_repaired += 1;
                    per[o.member].written += 1;
                    written.push(o.member);
                    // A new shard of a locked object is locked too.
                    if !replace && self.object_locked(key) {
                        let _ = coffer_block::set_immutable(&m.shard_path(key), true);
                    }
                }
                Err(e) => r.failures.push(format!(
                    "{key}: writing shard {} to member {}: {e}",
                    o.index, m.meta.id
                )),
            }
        }
        written
    }

    fn object_locked(&self, key: &str) -> bool {
        self.members.iter().any(|m| {
            let p = m.shard_path(key);
            p.exists() && coffer_block::is_immutable(&p).unwrap_or(false)
        })
    }
}

pub(crate) fn now() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    coffer_types::rfc3339_ms(ms)
}
