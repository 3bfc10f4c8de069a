//! A/B slot installation on files standing in for the partitions and an
//! ESP directory: a bundle lands in the slot that is not running with a
//! counted entry, last; systemd-boot's counting (the file renames it does)
//! puts a failed slot last, which is the rollback; a power cut (the bundle
//! stream breaking) at any point, a damaged item and every refused bundle
//! leave the running slot's entry the only bootable one and its files
//! untouched; a slot still being tried does not give up its fallback.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{make, public, test_key};

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use coffer_image::bundle::{self, SigningKey, Version};
use coffer_image::slots::{self, Counter, Error, Layout, Partition, Slot};
use coffer_image::system::System;

fn root_bytes(seed: u32) -> Vec<u8> {
    (0..200_000u32)
        .map(|i| ((i * 7 + seed) % 251) as u8)
        .collect()
}

fn image_items(seed: u32) -> Vec<(String, Vec<u8>)> {
    vec![
        ("rootfs".into(), root_bytes(seed)),
        ("vmlinuz".into(), format!("kernel {seed}").into_bytes()),
        ("initrd.img".into(), format!("initrd {seed}").into_bytes()),
    ]
}

/// An appliance on files: slot a runs `version`, with the factory entry.
struct Rig {
    _dir: tempfile::TempDir,
    root: PathBuf,
    layout: Layout,
}

impl Rig {
    fn new(version: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let esp = root.join("esp");
        std::fs::create_dir_all(esp.join("loader/entries")).unwrap();
        for s in ["a", "b"] {
            std::fs::create_dir_all(esp.join("coffer").join(s)).unwrap();
            std::fs::write(root.join(format!("{s}.img")), vec![0xEEu8; 1000]).unwrap();
        }
        std::fs::write(esp.join("coffer/a/vmlinuz"), b"factory kernel").unwrap();
        std::fs::write(esp.join("coffer/a/initrd.img"), b"factory initrd").unwrap();
        let layout = Layout {
            esp,
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
            options: "console=ttyS0,115200 panic=10".into(),
        };
        let v: Version = version.parse().unwrap();
        std::fs::write(
            layout.esp.join("loader/entries/coffer-a.conf"),
            slots::entry_text(&layout, Slot::A, v),
        )
        .unwrap();
        std::fs::write(
            root.join("layout.json"),
            serde_json::to_vec(&layout).unwrap(),
        )
        .unwrap();
        std::fs::write(root.join("version"), format!("{version}\n")).unwrap();
        std::fs::create_dir_all(root.join("keys")).unwrap();
        std::fs::write(
            root.join("keys/test.pub"),
            hex::encode(public(&test_key())) + "\n",
        )
        .unwrap();
        std::fs::write(
            root.join("cmdline"),
            "BOOT_IMAGE=/coffer/a/vmlinuz root=PARTUUID=1 rw coffer.slot=a\n",
        )
        .unwrap();
        Rig {
            _dir: dir,
            root,
            layout,
        }
    }

    fn system(&self) -> System {
        System {
            layout: self.root.join("layout.json"),
            version_file: self.root.join("version"),
            keys: self.root.join("keys"),
            cmdline: self.root.join("cmdline"),
        }
    }

    /// What systemd-boot would boot, first to last: (slot, version, counter).
    fn order(&self) -> Vec<(Slot, String, Counter)> {
        slots::entries(&self.layout)
            .unwrap()
            .into_iter()
            .map(|e| (e.slot, e.version, e.counter))
            .collect()
    }

    fn entry_files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.layout.esp.join("loader/entries"))
            .unwrap()
            .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn esp_file(&self, rel: &str) -> Option<Vec<u8>> {
        std::fs::read(self.layout.esp.join(rel)).ok()
    }

    fn rename_entry(&self, from: &str, to: &str) {
        let d = self.layout.esp.join("loader/entries");
        std::fs::rename(d.join(from), d.join(to)).unwrap();
    }

    /// Boots into `slot` at `version` (what the new root's files say).
    fn boot(&self, slot: Slot, version: &str) {
        std::fs::write(
            self.root.join("cmdline"),
            format!("root=PARTUUID=x rw coffer.slot={}\n", slot.name()),
        )
        .unwrap();
        std::fs::write(self.root.join("version"), format!("{version}\n")).unwrap();
    }

    /// Everything an install must not touch while slot a runs.
    fn running_a_state(&self) -> Vec<Option<Vec<u8>>> {
        vec![
            std::fs::read(self.root.join("a.img")).ok(),
            self.esp_file("coffer/a/vmlinuz"),
            self.esp_file("coffer/a/initrd.img"),
            self.esp_file("loader/entries/coffer-a.conf"),
        ]
    }
}

fn prefix(path: &Path, n: usize) -> Vec<u8> {
    let mut b = std::fs::read(path).unwrap();
    b.truncate(n);
    b
}

#[test]
fn an_update_goes_into_the_other_slot_counted_and_a_failed_slot_rolls_back() {
    let rig = Rig::new("0.1.0");
    let sys = rig.system();
    let before = rig.running_a_state();
    let b = make(&test_key(), "0.2.0", &image_items(2));
    let i = sys.install(Cursor::new(&b), 3).unwrap();
    assert_eq!((i.slot, i.version.as_str(), i.tries), (Slot::B, "0.2.0", 3));
    assert_eq!(i.entry, "coffer-b+3.conf");
    // The root image on b's partition, the kernel and initrd in coffer/b.
    assert_eq!(prefix(&rig.root.join("b.img"), 200_000), root_bytes(2));
    assert_eq!(rig.esp_file("coffer/b/vmlinuz").unwrap(), b"kernel 2");
    assert_eq!(rig.esp_file("coffer/b/initrd.img").unwrap(), b"initrd 2");
    assert_eq!(rig.running_a_state(), before, "slot a was touched");
    // No temporary or partial file is left on the ESP.
    assert_eq!(rig.entry_files(), ["coffer-a.conf", "coffer-b+3.conf"]);
    assert!(rig.esp_file("coffer/b/vmlinuz.new").is_none());
    // The entry names the partition, the slot and the options.
    let text = String::from_utf8(rig.esp_file("loader/entries/coffer-b+3.conf").unwrap()).unwrap();
    for want in [
        "version 0.2.0",
        "sort-key coffer",
        "linux /coffer/b/vmlinuz",
        "initrd /coffer/b/initrd.img",
        "root=PARTUUID=22222222-2222-4222-8222-222222222222 rw coffer.slot=b console=ttyS0,115200 panic=10",
    ] {
        assert!(text.contains(want), "{want:?} not in\n{text}");
    }
    // The newer slot boots first while it has tries left...
    let trying = rig.order();
    assert_eq!(
        trying[0],
        (
            Slot::B,
            "0.2.0".into(),
            Counter::Trying { left: 3, done: 0 }
        )
    );
    assert_eq!(trying[1], (Slot::A, "0.1.0".into(), Counter::Good));
    // ...systemd-boot counts it down on each boot...
    rig.rename_entry("coffer-b+3.conf", "coffer-b+1-2.conf");
    assert_eq!(rig.order()[0].0, Slot::B);
    // ...and with none left it sorts last: slot a boots again.
    rig.rename_entry("coffer-b+1-2.conf", "coffer-b+0-3.conf");
    assert_eq!(
        rig.order(),
        [
            (Slot::A, "0.1.0".into(), Counter::Good),
            (Slot::B, "0.2.0".into(), Counter::Failed { done: 3 }),
        ]
    );
    // The status says so, from the running slot's point of view.
    let st = sys.status().unwrap();
    assert_eq!(
        (st.running, st.running_version.as_str()),
        (Slot::A, "0.1.0")
    );
    assert_eq!(st.entries[1].counter, Counter::Failed { done: 3 });

    // A fixed 0.2.1 replaces the failed slot's entry; blessed, it stays first.
    let fixed = make(&test_key(), "0.2.1", &image_items(3));
    sys.install(Cursor::new(&fixed), 2).unwrap();
    assert_eq!(rig.entry_files(), ["coffer-a.conf", "coffer-b+2.conf"]);
    rig.rename_entry("coffer-b+2.conf", "coffer-b+1-1.conf");
    rig.boot(Slot::B, "0.2.1");
    // Running b unblessed: a is its fallback and is not overwritten.
    let next = make(&test_key(), "0.3.0", &image_items(4));
    let m = sys.install(Cursor::new(&next), 3).unwrap_err().to_string();
    assert!(
        m.contains("still being tried") && m.contains("fallback"),
        "{m}"
    );
    assert_eq!(rig.running_a_state(), before);
    // Blessed (systemd-bless-boot drops the counter): now 0.3.0 goes into a.
    rig.rename_entry("coffer-b+1-1.conf", "coffer-b.conf");
    assert_eq!(rig.order()[0], (Slot::B, "0.2.1".into(), Counter::Good));
    let i = sys.install(Cursor::new(&next), 1).unwrap();
    assert_eq!((i.slot, i.entry.as_str()), (Slot::A, "coffer-a+1.conf"));
    assert_eq!(rig.entry_files(), ["coffer-a+1.conf", "coffer-b.conf"]);
    assert_eq!(prefix(&rig.root.join("a.img"), 200_000), root_bytes(4));
    assert_eq!(rig.order()[0].0, Slot::A);
}

/// A reader that fails after `n` bytes, as a medium pulled out or the
/// power cut mid-install would leave the writer.
struct Cut<'a> {
    rest: &'a [u8],
    n: usize,
}

impl Read for Cut<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.n == 0 {
            return Err(std::io::Error::other("the medium went away"));
        }
        let k = buf.len().min(self.n).min(self.rest.len());
        buf[..k].copy_from_slice(&self.rest[..k]);
        self.rest = &self.rest[k..];
        self.n -= k;
        Ok(k)
    }
}

#[test]
fn a_cut_at_any_point_leaves_only_the_running_slot_bootable() {
    let good = make(&test_key(), "0.2.0", &image_items(2));
    // In the header, the manifest, the root image, the kernel, the initrd, the last byte.
    let cuts = [
        7,
        300,
        good.len() / 3,
        good.len() - 40,
        good.len() - 10,
        good.len() - 1,
    ];
    for cut in cuts {
        let rig = Rig::new("0.1.0");
        let sys = rig.system();
        // A slot b that was good before (an older install) is removed
        // before its partition is written: a half-written b never boots.
        std::fs::write(
            rig.layout.esp.join("loader/entries/coffer-b.conf"),
            "title old\nsort-key coffer\nversion 0.0.9\n",
        )
        .unwrap();
        let before = rig.running_a_state();
        let r = sys.install(
            Cut {
                rest: &good,
                n: cut,
            },
            3,
        );
        let e = r.unwrap_err();
        assert!(
            e.to_string().contains("the medium went away") || e.to_string().contains("truncated"),
            "cut at {cut}: {e}"
        );
        assert_eq!(rig.running_a_state(), before, "cut at {cut}");
        let files = rig.entry_files();
        // A cut before the signature verified leaves even the old b entry;
        // after it, b has none. Never a new or partial one.
        assert!(
            files == ["coffer-a.conf"] || files == ["coffer-a.conf", "coffer-b.conf"],
            "cut at {cut}: {files:?}"
        );
        if cut > 1000 {
            assert_eq!(files, ["coffer-a.conf"], "cut at {cut}");
        }
        assert_eq!(rig.order()[0].0, Slot::A, "cut at {cut}");
        assert!(
            rig.esp_file("coffer/b/vmlinuz.new").is_none(),
            "cut at {cut}"
        );
        assert!(
            rig.esp_file("coffer/b/initrd.img.new").is_none(),
            "cut at {cut}"
        );
        // The same bundle, whole, then installs.
        sys.install(Cursor::new(&good), 3).unwrap();
        assert_eq!(rig.entry_files(), ["coffer-a.conf", "coffer-b+3.conf"]);
    }
}

#[test]
fn refused_and_damaged_bundles_switch_nothing() {
    let rig = Rig::new("0.2.0");
    let sys = rig.system();
    let before = rig.running_a_state();
    let b_before = std::fs::read(rig.root.join("b.img")).unwrap();
    let k = test_key();
    let other = SigningKey::from_pkcs8(&bundle::generate_key().unwrap()).unwrap();
    let missing_initrd: Vec<_> = image_items(2).into_iter().take(2).collect();
    let mut extra = image_items(2);
    extra.push(("bios.rom".into(), b"flash me".to_vec()));
    let cases: Vec<(&str, Vec<u8>, u32, &str)> = vec![
        (
            "another key",
            make(&other, "0.3.0", &image_items(2)),
            3,
            "signature does not verify",
        ),
        (
            "a downgrade",
            make(&k, "0.1.5", &image_items(2)),
            3,
            "no downgrade",
        ),
        (
            "a reinstall",
            make(&k, "0.2.0", &image_items(2)),
            3,
            "no downgrade",
        ),
        (
            "no initrd",
            make(&k, "0.3.0", &missing_initrd),
            3,
            "carries no 'initrd.img'",
        ),
        (
            "zero tries",
            make(&k, "0.3.0", &image_items(2)),
            0,
            "1 to 9 boots",
        ),
        (
            "ten tries",
            make(&k, "0.3.0", &image_items(2)),
            10,
            "1 to 9 boots",
        ),
        (
            "garbage",
            b"not a bundle at all, just text".to_vec(),
            3,
            "magic",
        ),
    ];
    for (what, bytes, tries, want) in cases {
        let m = sys
            .install(Cursor::new(&bytes), tries)
            .unwrap_err()
            .to_string();
        assert!(m.contains(want), "{what}: {m}");
        assert_eq!(rig.running_a_state(), before, "{what}");
        assert_eq!(
            std::fs::read(rig.root.join("b.img")).unwrap(),
            b_before,
            "{what}"
        );
        assert_eq!(rig.entry_files(), ["coffer-a.conf"], "{what}");
    }
    // An item this appliance does not install: refused once it is reached.
    let m = sys
        .install(Cursor::new(make(&k, "0.3.0", &extra)), 3)
        .unwrap_err()
        .to_string();
    assert!(m.contains("'bios.rom'"), "{m}");
    // A byte of the root image changed in transit: damaged, by name.
    let mut damaged = make(&k, "0.3.0", &image_items(2));
    let at = damaged.len() - 120_000;
    damaged[at] ^= 0x40;
    match sys.install(Cursor::new(&damaged), 3) {
        Err(Error::Bundle(bundle::Error::Damaged { item, .. })) => assert_eq!(item, "rootfs"),
        other => panic!("{other:?}"),
    }
    assert_eq!(rig.running_a_state(), before);
    assert_eq!(rig.entry_files(), ["coffer-a.conf"]);
    assert!(rig.esp_file("coffer/b/vmlinuz").is_none());
    assert!(rig.esp_file("coffer/b/vmlinuz.new").is_none());
}

#[test]
fn a_machine_that_is_not_an_appliance_says_so() {
    let rig = Rig::new("0.1.0");
    let mut sys = rig.system();
    sys.layout = rig.root.join("absent.json");
    let m = sys.status().unwrap_err().to_string();
    assert!(m.contains("not an installed appliance"), "{m}");
    let m = sys
        .install(Cursor::new(make(&test_key(), "0.2.0", &image_items(2))), 3)
        .unwrap_err()
        .to_string();
    assert!(m.contains("not an installed appliance"), "{m}");
    // A command line that names no slot, a layout that does not parse,
    // no trusted keys: each a clear error.
    let sys = rig.system();
    std::fs::write(rig.root.join("cmdline"), "root=/dev/sda2 quiet\n").unwrap();
    assert!(
        sys.status()
            .unwrap_err()
            .to_string()
            .contains("names no coffer.slot")
    );
    std::fs::write(rig.root.join("layout.json"), "{ not json").unwrap();
    assert!(
        sys.status()
            .unwrap_err()
            .to_string()
            .contains("does not parse")
    );
    let rig = Rig::new("0.1.0");
    let sys = rig.system();
    std::fs::remove_dir_all(rig.root.join("keys")).unwrap();
    let m = sys
        .install(Cursor::new(make(&test_key(), "0.2.0", &image_items(2))), 3)
        .unwrap_err()
        .to_string();
    assert!(m.contains("no trusted update keys"), "{m}");
    assert_eq!(rig.entry_files(), ["coffer-a.conf"]);
}
