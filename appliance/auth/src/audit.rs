//! The audit log's hash chain, and the anchor file that pins it.
//!
//! Every entry's hash covers its sequence number, its fields and the
//! previous entry's hash ([`entry_hash`]; the byte layout is in
//! `docs/formats/audit.md`). The catalog's triggers refuse updates and
//! deletes; the chain detects what gets past them (an edited field, a
//! deleted or reordered entry). What the chain alone cannot detect is a
//! wholesale rewrite from some entry on, or the newest entries cut off: for
//! that, every append also writes `seq hash` to an append-only **anchor
//! file** outside the catalog (the daemon sets `chattr +a` on it where it
//! can), and [`Auditor::verify`] checks the newest anchor lines against the
//! chain.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use coffer_catalog::{AUDIT_GENESIS, AuditRow, Catalog, NewAuditRecord};
use coffer_types::api::{AuditEntry, AuditFilter, AuditVerify};
use coffer_types::rfc3339_ms;

use crate::error::{Error, Result};

/// The domain string that starts every hashed encoding; version 1 of the
/// chain. Do not modify: existing chains would no longer verify.
pub const AUDIT_DOMAIN: &str = "coffer audit v1";

/// How much of the anchor file's end [`Auditor::verify`] reads.
const ANCHOR_TAIL_BYTES: u64 = 64 * 1024;

/// The most problems [`Auditor::verify`] lists one by one.
const MAX_PROBLEMS: usize = 100;

fn put_field(h: &mut blake3::Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// The chain hash of entry `seq` holding `rec`, after the entry whose hash
/// is `prev`: blake3 over the domain string, `seq` and `time_ms` (i64
/// little-endian), identity, source, action, target, result and detail
/// (each a u64 little-endian byte length then UTF-8 bytes) and `prev`.
pub fn entry_hash(prev: &[u8; 32], seq: i64, rec: &NewAuditRecord) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    put_field(&mut h, AUDIT_DOMAIN.as_bytes());
    h.update(&seq.to_le_bytes());
    h.update(&rec.time_ms.to_le_bytes());
    put_field(&mut h, rec.identity.as_bytes());
    put_field(&mut h, rec.source.as_str().as_bytes());
    put_field(&mut h, rec.action.as_bytes());
    put_field(&mut h, rec.target.as_bytes());
    put_field(&mut h, rec.result.as_bytes());
    put_field(&mut h, rec.detail.as_bytes());
    h.update(prev);
    *h.finalize().as_bytes()
}

/// An entry as the API shows it.
pub fn to_entry(row: &AuditRow) -> AuditEntry {
    let r = &row.record;
    AuditEntry {
        seq: row.seq,
        time: rfc3339_ms(r.time_ms),
        time_ms: r.time_ms,
        identity: r.identity.clone(),
        source: r.source,
        action: r.action.clone(),
        target: r.target.clone(),
        result: r.result.clone(),
        detail: r.detail.clone(),
        hash: hex::encode(row.hash),
    }
}

/// Appends to, lists and verifies the audit log, with an optional anchor
/// file.
#[derive(Debug, Clone, Default)]
pub struct Auditor {
    anchor: Option<PathBuf>,
}

impl Auditor {
    /// An auditor that anchors the chain in `anchor` (created on the first
    /// append), or not at all.
    pub fn new(anchor: Option<PathBuf>) -> Auditor {
        Auditor { anchor }
    }

    /// The anchor file, if any.
    pub fn anchor_path(&self) -> Option<&Path> {
        self.anchor.as_deref()
    }

    /// Appends `rec` to the chain (atomically with respect to every other
    /// appender on the catalog), then writes `seq hash` to the anchor file.
    /// The entry is committed before the anchor is written: a failure to
    /// write the anchor is logged, not returned, since the action it records
    /// has happened and is in the chain.
    pub fn append(&self, cat: &Catalog, rec: NewAuditRecord) -> Result<AuditEntry> {
        let row = cat.append_audit(&rec, &|prev, rec, seq| entry_hash(prev, seq, rec))?;
        if let Some(path) = &self.anchor
            && let Err(error) = write_anchor(path, row.seq, &row.hash)
        {
            tracing::error!(
                anchor = %path.display(),
                seq = row.seq,
                %error,
                "cannot write the audit anchor"
            );
        }
        Ok(to_entry(&row))
    }

    /// Entries matching `filter`, newest first.
    pub fn list(&self, cat: &Catalog, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        Ok(cat.audit_rows(filter)?.iter().map(to_entry).collect())
    }

    /// Recomputes every entry's hash and link, in sequence order, and checks
    /// the anchor file's newest lines against the chain. Reports a gap in
    /// the sequence (deleted entries), a broken link (deleted, inserted or
    /// reordered entries), an entry whose contents do not match its hash
    /// (an edited field, named by its sequence number), and an anchor the
    /// chain no longer agrees with (entries cut off the end, or the chain
    /// rewritten). Fails only if the catalog or the anchor file cannot be
    /// read.
    pub fn verify(&self, cat: &Catalog) -> Result<AuditVerify> {
        let anchors = match &self.anchor {
            Some(path) => read_anchors(path)?,
            None => Anchors::default(),
        };
        let mut problems = Vec::new();
        let mut extra = 0usize;
        let mut report = |p: String| {
            if problems.len() < MAX_PROBLEMS {
                problems.push(p);
            } else {
                extra += 1;
            }
        };
        for line in &anchors.malformed {
            report(format!("anchor line {line:?} cannot be read"));
        }

        let mut expected_seq = 1i64;
        let mut prev = Some(AUDIT_GENESIS);
        let mut head: Option<(i64, [u8; 32])> = None;
        // Anchor lines by sequence number (a forged file may repeat one).
        let mut by_seq: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for (i, (aseq, _)) in anchors.lines.iter().enumerate() {
            by_seq.entry(*aseq).or_default().push(i);
        }
        let mut anchor_hits = vec![false; anchors.lines.len()];
        let n = cat.audit_all_ascending(&mut |seq, row| {
            if seq != expected_seq {
                if seq > expected_seq {
                    report(format!("entries {expected_seq} to {} are missing", seq - 1));
                } else {
                    report(format!("entry {seq} is out of order"));
                }
            }
            expected_seq = seq + 1;
            let row = match row {
                Ok(row) => row,
                Err(e) => {
                    report(format!("entry {seq} cannot be read: {e}"));
                    prev = None;
                    return;
                }
            };
            if let Some(p) = prev
                && row.prev_hash != p
            {
                report(format!(
                    "entry {seq} does not link to the entry before it \
                     (an entry was removed, inserted or replaced)"
                ));
            }
            if entry_hash(&row.prev_hash, seq, &row.record) != row.hash {
                report(format!(
                    "entry {seq} does not match its hash (its contents were changed)"
                ));
            }
            for &i in by_seq.get(&seq).into_iter().flatten() {
                if let (Some(hit), Some((_, ahash))) =
                    (anchor_hits.get_mut(i), anchors.lines.get(i))
                {
                    *hit = true;
                    if *ahash != row.hash {
                        report(format!(
                            "entry {seq} differs from the anchor (the chain was rewritten)"
                        ));
                    }
                }
            }
            prev = Some(row.hash);
            head = Some((seq, row.hash));
        })?;

        let last = head.map_or(0, |(s, _)| s);
        for ((aseq, _), hit) in anchors.lines.iter().zip(&anchor_hits) {
            if !hit {
                if *aseq > last {
                    report(format!(
                        "the anchor records entry {aseq} but the chain ends at {last} \
                         (entries were removed from the end)"
                    ));
                } else {
                    report(format!("entry {aseq}, recorded in the anchor, is missing"));
                }
            }
        }
        if let Some(path) = &self.anchor
            && !anchors.exists
            && n > 0
        {
            report(format!(
                "the anchor file {} is missing but the chain has {n} entries",
                path.display()
            ));
        }
        if extra > 0 {
            problems.push(format!("… and {extra} more problems"));
        }
        Ok(AuditVerify {
            entries: n,
            ok: problems.is_empty(),
            problems,
            head: head.map(|(_, h)| hex::encode(h)),
        })
    }
}

/// Appends `seq hash\n` to the anchor file (O_APPEND, created if missing)
/// and syncs it.
fn write_anchor(path: &Path, seq: i64, hash: &[u8; 32]) -> std::io::Result<()> {
    let mut f = OpenOptions::new().append(true).create(true).open(path)?;
    f.write_all(format!("{seq} {}\n", hex::encode(hash)).as_bytes())?;
    f.sync_data()
}

#[derive(Debug, Default)]
struct Anchors {
    exists: bool,
    lines: Vec<(i64, [u8; 32])>,
    malformed: Vec<String>,
}

/// Reads the complete lines in the last [`ANCHOR_TAIL_BYTES`] of the anchor
/// file (a torn last line, from a crash mid-write, is ignored).
fn read_anchors(path: &Path) -> Result<Anchors> {
    let err = |error| Error::Anchor {
        path: path.to_path_buf(),
        error,
    };
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Anchors::default()),
        Err(e) => return Err(err(e)),
    };
    let len = f.metadata().map_err(err)?.len();
    let start = len.saturating_sub(ANCHOR_TAIL_BYTES);
    f.seek(SeekFrom::Start(start)).map_err(err)?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).map_err(err)?;
    let text = String::from_utf8_lossy(&buf);
    let mut pieces: Vec<&str> = text.split('\n').collect();
    pieces.pop(); // after the last '\n': empty, or a torn line
    if start > 0 && !pieces.is_empty() {
        pieces.remove(0); // began mid-line
    }
    let mut out = Anchors {
        exists: true,
        ..Anchors::default()
    };
    for line in pieces.into_iter().filter(|l| !l.is_empty()) {
        match parse_anchor_line(line) {
            Some(a) => out.lines.push(a),
            None => out.malformed.push(line.chars().take(100).collect()),
        }
    }
    Ok(out)
}

fn parse_anchor_line(line: &str) -> Option<(i64, [u8; 32])> {
    let (seq, hash) = line.split_once(' ')?;
    let seq = seq.parse().ok()?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hash, &mut out).ok()?;
    Some((seq, out))
}

#[cfg(test)]
mod tests {
    use coffer_types::api::Source;
    use rusqlite::Connection;

    use super::*;

    fn rec(i: i64) -> NewAuditRecord {
        NewAuditRecord {
            time_ms: 1_700_000_000_000 + i,
            identity: "alice".into(),
            source: Source::Console,
            action: "asset.add".into(),
            target: format!("web-{i:02}"),
            result: "ok".into(),
            detail: format!("owner=ops criticality=high #{i}"),
        }
    }

    fn setup(n: i64) -> (tempfile::TempDir, Catalog, Auditor) {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(&dir.path().join("catalog.db")).unwrap();
        let auditor = Auditor::new(Some(dir.path().join("audit.anchor")));
        for i in 1..=n {
            auditor.append(&cat, rec(i)).unwrap();
        }
        (dir, cat, auditor)
    }

    /// A raw connection with the append-only triggers dropped: what an
    /// attacker with write access to the file can do.
    fn tamper(dir: &tempfile::TempDir) -> Connection {
        let raw = Connection::open(dir.path().join("catalog.db")).unwrap();
        raw.execute_batch("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;")
            .unwrap();
        raw
    }

    #[test]
    fn the_hash_encoding_is_stable() {
        // Golden value: changing the encoding breaks every existing chain.
        let h = entry_hash(&[0; 32], 1, &rec(1));
        assert_eq!(
            hex::encode(h),
            GOLDEN_FIRST_HASH,
            "the chain encoding changed; docs/formats/audit.md and existing logs depend on it"
        );
        // Every field and the link count.
        let base = rec(1);
        let variants = [
            NewAuditRecord {
                time_ms: base.time_ms + 1,
                ..base.clone()
            },
            NewAuditRecord {
                identity: "alicf".into(),
                ..base.clone()
            },
            NewAuditRecord {
                source: Source::Api,
                ..base.clone()
            },
            NewAuditRecord {
                action: "asset.ad".into(),
                ..base.clone()
            },
            NewAuditRecord {
                target: "web-0".into(),
                ..base.clone()
            },
            NewAuditRecord {
                result: "failed".into(),
                ..base.clone()
            },
            NewAuditRecord {
                detail: String::new(),
                ..base.clone()
            },
        ];
        for v in variants {
            assert_ne!(entry_hash(&[0; 32], 1, &v), h, "{v:?}");
        }
        assert_ne!(entry_hash(&[0; 32], 2, &base), h);
        assert_ne!(entry_hash(&[1; 32], 1, &base), h);
        // Length prefixes: moving a byte between fields changes the hash.
        let a = NewAuditRecord {
            action: "ab".into(),
            target: "c".into(),
            ..base.clone()
        };
        let b = NewAuditRecord {
            action: "a".into(),
            target: "bc".into(),
            ..base
        };
        assert_ne!(entry_hash(&[0; 32], 1, &a), entry_hash(&[0; 32], 1, &b));
    }

    const GOLDEN_FIRST_HASH: &str =
        "a7ecfcc76bd19710b5f5d6ed7b61cde91e20a9d8fc9bc326ce705a4840a0c0dd";

    #[test]
    fn the_hash_is_the_documented_byte_layout() {
        // docs/formats/audit.md, written out independently of entry_hash.
        let r = rec(7);
        let prev = [0xab; 32];
        let mut bytes = Vec::new();
        let field = |bytes: &mut Vec<u8>, s: &str| {
            bytes.extend_from_slice(&(s.len() as u64).to_le_bytes());
            bytes.extend_from_slice(s.as_bytes());
        };
        field(&mut bytes, "coffer audit v1");
        bytes.extend_from_slice(&42i64.to_le_bytes());
        bytes.extend_from_slice(&r.time_ms.to_le_bytes());
        for s in [
            r.identity.as_str(),
            "console",
            &r.action,
            &r.target,
            &r.result,
            &r.detail,
        ] {
            field(&mut bytes, s);
        }
        bytes.extend_from_slice(&prev);
        assert_eq!(entry_hash(&prev, 42, &r), *blake3::hash(&bytes).as_bytes());
    }

    #[test]
    fn an_intact_chain_verifies() {
        let (_dir, cat, auditor) = setup(5);
        let v = auditor.verify(&cat).unwrap();
        assert!(v.ok, "{:?}", v.problems);
        assert_eq!(v.entries, 5);
        let head = cat.audit_head().unwrap().unwrap();
        assert_eq!(v.head, Some(hex::encode(head.1)));
        let listed = auditor.list(&cat, &AuditFilter::default()).unwrap();
        assert_eq!(listed.len(), 5);
        assert_eq!(listed[0].seq, 5);
        assert_eq!(listed[0].time, "2023-11-14T22:13:20.005Z");
        assert_eq!(listed[0].hash, hex::encode(head.1));
    }

    #[test]
    fn an_empty_log_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(&dir.path().join("catalog.db")).unwrap();
        let v = Auditor::new(Some(dir.path().join("anchor")))
            .verify(&cat)
            .unwrap();
        assert!(v.ok && v.entries == 0 && v.head.is_none(), "{v:?}");
    }

    #[test]
    fn an_edited_detail_is_reported_at_its_entry() {
        let (dir, cat, auditor) = setup(6);
        let raw = tamper(&dir);
        raw.execute(
            "UPDATE audit_log SET detail = 'owner=nobody' WHERE seq = 3",
            [],
        )
        .unwrap();
        let v = auditor.verify(&cat).unwrap();
        assert!(!v.ok);
        assert_eq!(
            v.problems,
            ["entry 3 does not match its hash (its contents were changed)"]
        );
    }

    #[test]
    fn an_edit_with_a_recomputed_hash_breaks_the_next_link() {
        let (dir, cat, auditor) = setup(4);
        let raw = tamper(&dir);
        let row2 = cat
            .audit_rows(&AuditFilter::default())
            .unwrap()
            .into_iter()
            .find(|r| r.seq == 2)
            .unwrap();
        let mut forged = row2.record.clone();
        forged.result = "denied".into();
        let h = entry_hash(&row2.prev_hash, 2, &forged);
        raw.execute(
            "UPDATE audit_log SET result = 'denied', hash = ?1 WHERE seq = 2",
            [h.as_slice()],
        )
        .unwrap();
        let v = auditor.verify(&cat).unwrap();
        assert!(!v.ok);
        assert!(
            v.problems
                .iter()
                .any(|p| p.starts_with("entry 3 does not link")),
            "{:?}",
            v.problems
        );
        assert!(
            v.problems
                .iter()
                .any(|p| p.starts_with("entry 2 differs from the anchor")),
            "{:?}",
            v.problems
        );
    }

    #[test]
    fn a_deleted_middle_entry_is_a_gap_and_a_broken_link() {
        let (dir, cat, auditor) = setup(5);
        tamper(&dir)
            .execute("DELETE FROM audit_log WHERE seq = 2", [])
            .unwrap();
        let v = auditor.verify(&cat).unwrap();
        assert!(!v.ok);
        assert_eq!(v.entries, 4);
        assert!(
            v.problems
                .contains(&"entries 2 to 2 are missing".to_string()),
            "{:?}",
            v.problems
        );
        assert!(
            v.problems
                .iter()
                .any(|p| p.starts_with("entry 3 does not link"))
        );
    }

    #[test]
    fn swapped_entries_are_reported() {
        let (dir, cat, auditor) = setup(4);
        tamper(&dir)
            .execute_batch(
                "UPDATE audit_log SET seq = 100 WHERE seq = 2; \
                 UPDATE audit_log SET seq = 2 WHERE seq = 3; \
                 UPDATE audit_log SET seq = 3 WHERE seq = 100;",
            )
            .unwrap();
        let v = auditor.verify(&cat).unwrap();
        assert!(!v.ok);
        assert!(
            v.problems.iter().any(|p| p.starts_with("entry 2 ")),
            "{:?}",
            v.problems
        );
    }

    #[test]
    fn the_anchor_catches_entries_cut_off_the_end() {
        let (dir, cat, auditor) = setup(6);
        tamper(&dir)
            .execute("DELETE FROM audit_log WHERE seq > 4", [])
            .unwrap();
        // The chain on its own still verifies…
        let v = Auditor::new(None).verify(&cat).unwrap();
        assert!(v.ok, "{v:?}");
        // …the anchor does not agree.
        let v = auditor.verify(&cat).unwrap();
        assert!(!v.ok);
        assert_eq!(v.entries, 4);
        assert!(
            v.problems
                .iter()
                .any(|p| p.contains("anchor records entry 6 but the chain ends at 4")),
            "{:?}",
            v.problems
        );
    }

    #[test]
    fn the_anchor_catches_a_rewritten_chain() {
        let (dir, cat, auditor) = setup(3);
        // Rewrite the whole log with different contents and valid hashes.
        let raw = tamper(&dir);
        raw.execute("DELETE FROM audit_log", []).unwrap();
        drop(raw);
        for i in 1..=3 {
            let mut r = rec(i);
            r.detail = "nothing to see".into();
            cat.append_audit(&r, &|prev, rec, seq| entry_hash(prev, seq, rec))
                .unwrap();
        }
        assert!(Auditor::new(None).verify(&cat).unwrap().ok);
        let v = auditor.verify(&cat).unwrap();
        assert!(!v.ok);
        assert!(
            v.problems
                .iter()
                .any(|p| p == "entry 3 differs from the anchor (the chain was rewritten)"),
            "{:?}",
            v.problems
        );
    }

    #[test]
    fn a_missing_or_garbled_anchor_is_reported_and_a_torn_line_ignored() {
        let (dir, cat, auditor) = setup(2);
        let anchor = dir.path().join("audit.anchor");
        // A crash mid-write leaves a torn last line: not a problem.
        let mut f = OpenOptions::new().append(true).open(&anchor).unwrap();
        f.write_all(b"3 abc").unwrap();
        drop(f);
        assert!(auditor.verify(&cat).unwrap().ok);

        std::fs::write(&anchor, "2 not-hex\n").unwrap();
        let v = auditor.verify(&cat).unwrap();
        assert!(!v.ok);
        assert!(v.problems[0].contains("cannot be read"), "{:?}", v.problems);

        std::fs::remove_file(&anchor).unwrap();
        let v = auditor.verify(&cat).unwrap();
        assert!(!v.ok);
        assert!(v.problems[0].contains("is missing"), "{:?}", v.problems);
    }

    #[test]
    fn anchor_lines_are_appended_per_entry() {
        let (dir, cat, _auditor) = setup(3);
        let text = std::fs::read_to_string(dir.path().join("audit.anchor")).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let head = cat.audit_head().unwrap().unwrap();
        assert_eq!(lines[2], format!("3 {}", hex::encode(head.1)));
    }

    #[test]
    fn only_the_tail_of_a_long_anchor_is_read() {
        let (dir, cat, auditor) = setup(1);
        let anchor = dir.path().join("audit.anchor");
        let line = std::fs::read_to_string(&anchor).unwrap();
        // Garbage far back (beyond the tail) is not read; the tail is.
        let mut big = "garbage\n".repeat(20_000);
        big.push_str(&line.repeat(2_000));
        assert!(line.len() * 2_000 > ANCHOR_TAIL_BYTES as usize);
        std::fs::write(&anchor, big).unwrap();
        assert!(auditor.verify(&cat).unwrap().ok);
    }
}
