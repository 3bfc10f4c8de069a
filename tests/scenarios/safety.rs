//! A hostile manifest cannot make restore write outside its target.

use std::sync::Arc;

use coffer_store::{BlobStore, DirStore, Entry, EntryKind, Extent, Packer, Repo, SnapshotRecord};
use coffer_types::{BackupStats, Level, Scope, SnapshotId, SnapshotInfo};

use crate::support::*;

fn file_entry(repo: &Repo, packer: &mut Packer<'_>, path: &[u8], data: &[u8]) -> Entry {
    let id = repo.chunk_id(data);
    if repo.claim(&id).unwrap() {
        packer.add(id, data).unwrap();
    }
    let mut e = Entry::new(EntryKind::File, path.to_vec());
    e.mode = 0o644;
    e.size = data.len() as u64;
    e.extents = vec![Extent::Data {
        id,
        len: data.len() as u32,
    }];
    e
}

/// Writes a snapshot whose manifest holds exactly `entries` (made by `make`).
fn craft(env: &Env, make: impl FnOnce(&Repo, &mut Packer<'_>) -> Vec<Entry>) -> String {
    let blobs: Arc<dyn BlobStore> = Arc::new(DirStore::new(&env.store));
    let repo = Repo::open(blobs, &coffer_keys::Passphrase::new(PASS.into()).unwrap()).unwrap();
    let mut packer = Packer::new(&repo);
    let entries = make(&repo, &mut packer);
    packer.flush().unwrap();
    let mut mw = repo.manifest_writer();
    for e in &entries {
        mw.push(e).unwrap();
    }
    let (len, chunks, _) = mw.finish().unwrap();
    let id = SnapshotId([0x66; 16]);
    repo.write_snapshot(&SnapshotRecord {
        info: SnapshotInfo {
            id,
            asset: "hostile".into(),
            level: Level::Full,
            time: coffer_types::rfc3339_ms(1),
            started_ms: 1,
            finished_ms: 2,
            reference: None,
            host: "attacker".into(),
            identity: "attacker".into(),
            scope: Scope::default(),
            stats: BackupStats::default(),
        },
        manifest_len: len,
        manifest: chunks,
    })
    .unwrap();
    id.to_hex()
}

#[test]
fn hostile_manifest_writes_nothing_outside_the_target() {
    let env = Env::new();
    let outside = env.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("victim"), b"original").unwrap();
    let target = env.path("target");
    std::fs::create_dir_all(&target).unwrap();
    // a symlink already in the target, pointing outside
    std::os::unix::fs::symlink(&outside, target.join("pre-existing-link")).unwrap();
    let outside_str = outside.to_str().unwrap().as_bytes().to_vec();

    let id = craft(&env, |repo, p| {
        let mut root = Entry::new(EntryKind::Dir, Vec::new());
        root.mode = 0o755;
        let mut link = Entry::new(EntryKind::Symlink, b"evil-link".to_vec());
        link.target = outside_str.clone();
        let mut dotdot_dir = Entry::new(EntryKind::Dir, b"..".to_vec());
        dotdot_dir.mode = 0o777;
        let mut hard = Entry::new(EntryKind::Hardlink, b"hl".to_vec());
        hard.target = b"../outside/victim".to_vec();
        vec![
            root,
            file_entry(repo, p, b"../escape", b"escaped via .."),
            file_entry(repo, p, b"/abs-escape", b"escaped via absolute path"),
            dotdot_dir,
            link,
            file_entry(repo, p, b"evil-link/pwned", b"written through a symlink"),
            hard,
            file_entry(repo, p, b"ok.txt", b"harmless"),
            file_entry(
                repo,
                p,
                b"pre-existing-link/victim",
                b"overwritten through a symlink",
            ),
            file_entry(repo, p, b"sub/../../up", b"escaped via a middle .."),
            file_entry(repo, p, b"sub/./x", b"dot"),
        ]
    });

    let before_parent: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let r = env.restore(&id, &target, &["--overwrite"]);
    assert_eq!(
        r.code, 3,
        "expected success with warnings:\n{}\n{}",
        r.stdout, r.stderr
    );
    // nothing escaped
    assert_eq!(std::fs::read(outside.join("victim")).unwrap(), b"original");
    assert!(!outside.join("pwned").exists());
    assert!(!env.path("escape").exists() && !env.path("up").exists());
    assert!(!std::path::Path::new("/abs-escape").exists());
    let after_parent: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        before_parent, after_parent,
        "files appeared next to the target"
    );
    // the harmless entry was restored, the symlink itself exists (not followed)
    assert_eq!(std::fs::read(target.join("ok.txt")).unwrap(), b"harmless");
    assert!(
        std::fs::symlink_metadata(target.join("evil-link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::symlink_metadata(target.join("pre-existing-link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    for needle in [
        "/../escape",
        "abs-escape",
        "evil-link/pwned",
        "pre-existing-link/victim",
        "/sub/../../up",
        "/hl",
    ] {
        assert!(
            r.stdout.contains(needle),
            "no warning for {needle}:\n{}",
            r.stdout
        );
    }
    assert!(r.stdout.contains("unsafe path"));
    assert!(r.stdout.contains("symlink is never followed"));
}
