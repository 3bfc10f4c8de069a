//! Updates through the control API: the slots' state is readable by
//! anyone who may read the status; installing needs `system.update` and
//! a fresh code, installs a signed bundle into the inactive slot (files
//! standing in for the partitions and the ESP) and is audited with what
//! it did; a refused bundle and a machine that is not an appliance are
//! clear errors that are audited too; a development daemon does not
//! restart its machine.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::Cursor;
use std::path::{Path, PathBuf};

use coffer_image::bundle::{self, SigningKey, Source};
use coffer_image::slots::{self, Layout, Partition, Slot};
use coffer_image::system::System;
use common::*;
use serde_json::{Value, json};

fn test_key() -> SigningKey {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/update/test-only.key");
    SigningKey::from_pkcs8(&std::fs::read(p).unwrap()).unwrap()
}

fn write_bundle(path: &Path, key: &SigningKey, version: &str) {
    let items: Vec<(String, Vec<u8>)> = vec![
        ("rootfs".into(), vec![7u8; 64 * 1024]),
        ("vmlinuz".into(), b"kernel".to_vec()),
        ("initrd.img".into(), b"initrd".to_vec()),
    ];
    let mut out = Vec::new();
    bundle::write(
        &mut out,
        version.parse().unwrap(),
        "2026-12-07T00:00:00.000Z",
        key,
        &mut || {
            Ok(items
                .iter()
                .map(|(n, b)| Source {
                    name: n.clone(),
                    reader: Box::new(Cursor::new(b.clone())),
                })
                .collect())
        },
    )
    .unwrap();
    std::fs::write(path, out).unwrap();
}

/// An appliance on files under `root`: slot a runs 0.1.0.
fn rig(root: &Path) -> System {
    let esp = root.join("esp");
    std::fs::create_dir_all(esp.join("loader/entries")).unwrap();
    for s in ["a", "b"] {
        std::fs::write(root.join(format!("{s}.img")), b"").unwrap();
    }
    let layout = Layout {
        esp: esp.clone(),
        slots: [
            Partition {
                device: root.join("a.img"),
                partuuid: "11111111-1111-4111-8111-111111111111".into(),
            },
            Partition {
                device: root.join("b.img"),
                partuuid: "22222222-2222-4222-8222-222222222222".into(),
            },
        ],
        options: "panic=10".into(),
    };
    std::fs::write(
        esp.join("loader/entries/coffer-a.conf"),
        slots::entry_text(&layout, Slot::A, "0.1.0".parse().unwrap()),
    )
    .unwrap();
    std::fs::write(
        root.join("slots.json"),
        serde_json::to_vec(&layout).unwrap(),
    )
    .unwrap();
    std::fs::write(root.join("version"), "0.1.0\n").unwrap();
    std::fs::create_dir_all(root.join("keys")).unwrap();
    std::fs::write(
        root.join("keys/release.pub"),
        hex::encode(test_key().public()),
    )
    .unwrap();
    std::fs::write(root.join("cmdline"), "root=PARTUUID=x rw coffer.slot=a\n").unwrap();
    System {
        layout: root.join("slots.json"),
        version_file: root.join("version"),
        keys: root.join("keys"),
        cmdline: root.join("cmdline"),
    }
}

fn audited(c: &mut Client, action: &str) -> Vec<(String, String, String)> {
    c.ok("audit_list", json!({"filter": {"limit": 1000}}))
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == json!(action))
        .map(|e| {
            (
                e["result"].as_str().unwrap().to_string(),
                e["target"].as_str().unwrap_or("").to_string(),
                e["detail"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn an_update_installs_through_the_api_with_a_fresh_code_and_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let sys = rig(dir.path());
    let d = TestDaemon::start_with({
        let sys = sys.clone();
        move |c| c.update = sys
    });
    let (mut c, secret) = d.admin();
    assert_eq!(c.ok("status", Value::Null)["image"], json!("0.1.0, slot a"));
    let st = c.ok("update_status", Value::Null);
    assert_eq!(st["running"], json!("a"));
    assert_eq!(st["running_version"], json!("0.1.0"));
    assert_eq!(st["entries"][0]["file"], json!("coffer-a.conf"));

    let good = dir.path().join("coffer-0.2.0.cub");
    write_bundle(&good, &test_key(), "0.2.0");
    let args = json!({"path": good, "tries": 2});
    // Without a fresh code (the login's is older than 5 minutes): refused.
    d.clock.advance(6 * 60_000);
    c.fails("update_install", args.clone(), "fresh_mfa_required");
    assert_eq!(sys.status().unwrap().entries.len(), 1);
    // Signed by a key the appliance does not trust: invalid, by reason.
    let foreign = dir.path().join("foreign.cub");
    let other = SigningKey::from_pkcs8(&bundle::generate_key().unwrap()).unwrap();
    write_bundle(&foreign, &other, "0.2.0");
    fresh(&d, &mut c, &secret);
    let m = c.fails("update_install", json!({"path": foreign}), "invalid");
    assert!(m.contains("signature does not verify"), "{m}");
    // A path that is not there.
    fresh(&d, &mut c, &secret);
    let m = c.fails(
        "update_install",
        json!({"path": "/no/such.cub"}),
        "not_found",
    );
    assert!(m.contains("/no/such.cub"), "{m}");
    assert_eq!(sys.status().unwrap().entries.len(), 1);

    fresh(&d, &mut c, &secret);
    let i = c.ok("update_install", args);
    assert_eq!(i["slot"], json!("b"));
    assert_eq!(i["entry"], json!("coffer-b+2.conf"));
    let st = c.ok("update_status", Value::Null);
    assert_eq!(st["entries"][0]["slot"], json!("b"));
    assert_eq!(st["entries"][0]["version"], json!("0.2.0"));
    assert_eq!(
        st["entries"][0]["counter"],
        json!({"state": "trying", "left": 2, "done": 0})
    );
    assert_eq!(
        std::fs::read(dir.path().join("b.img")).unwrap(),
        vec![7u8; 64 * 1024]
    );

    let a = audited(&mut c, "update.install");
    let good_s = good.display().to_string();
    assert!(
        a.iter()
            .any(|(r, t, det)| r == "ok" && *t == good_s && det.contains("installed into slot b")),
        "{a:?}"
    );
    assert!(
        a.iter()
            .any(|(r, _, det)| r == "failed" && det.contains("signature does not verify")),
        "{a:?}"
    );
    assert!(a.iter().any(|(r, _, _)| r == "denied"), "{a:?}");

    // The development daemon does not restart the machine it runs on.
    fresh(&d, &mut c, &secret);
    let m = c.fails("system_reboot", Value::Null, "state");
    assert!(m.contains("does not restart"), "{m}");
}

#[test]
fn only_system_update_may_install_and_a_plain_machine_is_no_appliance() {
    // The defaults: this test machine has no slot layout.
    let d = TestDaemon::start();
    let (mut admin, secret) = d.admin();
    assert!(admin.ok("status", Value::Null).get("image").is_none());
    let m = admin.fails("update_status", Value::Null, "state");
    assert!(m.contains("not an installed appliance"), "{m}");
    fresh(&d, &mut admin, &secret);
    let m = admin.fails("update_install", json!({"path": "/tmp/x.cub"}), "state");
    assert!(m.contains("not an installed appliance"), "{m}");
    // Roles without system.update are refused before anything is read.
    let mut n = 0;
    for role in coffer_types::api::Role::ALL {
        if coffer_auth::allows(role, coffer_auth::Permission::SystemUpdate) {
            continue;
        }
        n += 1;
        let (mut u, s) = user_with_role(&d, &mut admin, &secret, &format!("user{n}"), role);
        d.next_step();
        u.mfa = Some(d.code(&s));
        u.fails("update_install", json!({"path": "/tmp/x.cub"}), "forbidden");
        d.next_step();
        u.mfa = Some(d.code(&s));
        u.fails("system_reboot", Value::Null, "forbidden");
    }
    assert!(n >= 3, "only {n} roles lack system.update");
}
