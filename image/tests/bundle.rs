//! Update bundles: written and installed byte for byte; every way a bundle
//! can be wrong (unsigned, another key, a changed manifest or payload,
//! truncated anywhere, trailing bytes, a downgrade or reinstall, another
//! product, garbage) refused with its reason before anything switches;
//! the golden bundle of `tests/fixtures/update/` still reads (and is what
//! this code writes: Ed25519 signatures are deterministic); random damage
//! is always refused, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{fixtures, make, public, test_key};

use std::io::Cursor;

use coffer_image::bundle::{self, Error, Item, SigningKey, Version};
use proptest::prelude::*;

fn items() -> Vec<(String, Vec<u8>)> {
    let root: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    vec![
        ("rootfs".into(), root),
        ("vmlinuz".into(), b"kernel image".to_vec()),
        ("initrd.img".into(), Vec::new()),
    ]
}

/// Opens and installs into memory; the items as installed.
fn install(
    b: &[u8],
    trusted: &[[u8; 32]],
    installed: &str,
) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let opened = bundle::open(Cursor::new(b), trusted, installed.parse().unwrap())?;
    let mut got: Vec<(String, std::rc::Rc<std::cell::RefCell<Vec<u8>>>)> = Vec::new();
    opened.install(&mut |i: &Item| {
        let buf = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        got.push((i.name.clone(), buf.clone()));
        Ok(Box::new(Shared(buf)))
    })?;
    Ok(got
        .into_iter()
        .map(|(n, b)| (n, b.borrow().clone()))
        .collect())
}

struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);
impl std::io::Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_bundle_installs_byte_for_byte_and_names_its_key() {
    let k = test_key();
    let b = make(&k, "0.2.0", &items());
    assert_eq!(install(&b, &[public(&k)], "0.1.0").unwrap(), items());
    let opened = bundle::open(Cursor::new(&b), &[public(&k)], Version(0, 1, 9)).unwrap();
    assert_eq!(opened.version, Version(0, 2, 0));
    assert_eq!(opened.manifest.key, bundle::key_id(k.public()));
    assert_eq!(opened.item("rootfs").unwrap().size, 300_000);
    // A second trusted key (rotation) does not get in the way.
    let other = SigningKey::from_pkcs8(&bundle::generate_key().unwrap()).unwrap();
    assert!(install(&b, &[public(&other), public(&k)], "0.1.0").is_ok());
}

#[test]
fn bundles_that_must_not_install_are_refused_with_the_reason() {
    let k = test_key();
    let good = make(&k, "0.2.0", &items());
    let trust = [public(&k)];
    let msg = |r: Result<Vec<(String, Vec<u8>)>, Error>| r.unwrap_err().to_string();

    // Signed by another key: refused, naming both keys.
    let other = SigningKey::from_pkcs8(&bundle::generate_key().unwrap()).unwrap();
    let foreign = make(&other, "0.2.0", &items());
    let m = msg(install(&foreign, &trust, "0.1.0"));
    assert!(m.contains("signature does not verify"), "{m}");
    assert!(m.contains(&bundle::key_id(other.public())), "{m}");
    assert!(m.contains(&bundle::key_id(k.public())), "{m}");
    // No trusted key at all.
    assert!(msg(install(&good, &[], "0.1.0")).contains("trusts no update key"));

    // Unsigned: the signature zeroed.
    let len = u32::from_le_bytes(good[8..12].try_into().unwrap()) as usize;
    let mut unsigned = good.clone();
    unsigned[12 + len..12 + len + 64].fill(0);
    assert!(msg(install(&unsigned, &trust, "0.1.0")).contains("signature does not verify"));

    // The manifest changed (a bigger version, say): the signature fails.
    let text = String::from_utf8(good[12..12 + len].to_vec()).unwrap();
    let forged = text.replace("\"0.2.0\"", "\"9.2.0\"");
    assert_eq!(forged.len(), text.len());
    let mut b = good.clone();
    b[12..12 + len].copy_from_slice(forged.as_bytes());
    assert!(msg(install(&b, &trust, "0.1.0")).contains("signature does not verify"));

    // A payload byte changed: that item is damaged, by name.
    let mut b = good.clone();
    let at = 12 + len + 64 + 150_000;
    b[at] ^= 1;
    match install(&b, &trust, "0.1.0") {
        Err(Error::Damaged { item, .. }) => assert_eq!(item, "rootfs"),
        other => panic!("{other:?}"),
    }

    // Truncated in the header, the manifest, the signature, an item.
    for cut in [5, 12 + len / 2, 12 + len + 10, 12 + len + 64 + 1000] {
        let m = msg(install(&good[..cut], &trust, "0.1.0"));
        assert!(m.contains("truncated"), "cut at {cut}: {m}");
    }
    // Something after the last item.
    let mut b = good.clone();
    b.push(0);
    assert!(msg(install(&b, &trust, "0.1.0")).contains("follow the last item"));

    // Not newer than what is installed: a downgrade, a reinstall.
    let m = msg(install(&good, &trust, "0.3.0"));
    assert!(m.contains("no downgrade"), "{m}");
    assert!(msg(install(&good, &trust, "0.2.0")).contains("no downgrade"));

    // Garbage, and a manifest length that would allocate a lot.
    assert!(msg(install(b"hello, world: not a bundle", &trust, "0.1.0")).contains("magic"));
    let mut huge = good[..12].to_vec();
    huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(msg(install(&huge, &trust, "0.1.0")).contains("at most"));
}

#[test]
fn the_golden_bundle_reads_and_is_what_this_code_writes() {
    let k = test_key();
    let golden = std::fs::read(fixtures().join("v1.cub")).unwrap();
    let items = vec![
        ("rootfs".to_string(), b"a root filesystem image".to_vec()),
        ("vmlinuz".to_string(), b"a kernel".to_vec()),
    ];
    assert_eq!(make(&k, "1.2.3", &items), golden, "the v1 format changed");
    assert_eq!(install(&golden, &[public(&k)], "1.2.2").unwrap(), items);
    let public_text = std::fs::read_to_string(fixtures().join("test-only.pub")).unwrap();
    assert_eq!(bundle::parse_public(&public_text).unwrap(), public(&k));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let k = test_key();
        let _ = install(&bytes, &[public(&k)], "0.0.0");
    }

    #[test]
    fn any_changed_byte_of_a_small_bundle_is_refused(at in 0usize..10_000, bit in 0u8..8) {
        let k = test_key();
        let good = make(&k, "0.2.0", &[("rootfs".into(), vec![3u8; 4000])]);
        let at = at % good.len();
        let mut b = good.clone();
        b[at] ^= 1 << bit;
        prop_assert!(install(&b, &[public(&k)], "0.1.0").is_err(), "flip at {}", at);
    }
}
