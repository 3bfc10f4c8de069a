//! What the image's tests share: the fixtures' test-only key and bundles
//! made in memory.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;
use std::path::PathBuf;

use coffer_image::bundle::{self, SigningKey, Source};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/update")
}

/// The test-only key of the fixtures (never trusted by an appliance).
pub fn test_key() -> SigningKey {
    SigningKey::from_pkcs8(&std::fs::read(fixtures().join("test-only.key")).unwrap()).unwrap()
}

pub fn public(k: &SigningKey) -> [u8; 32] {
    k.public().try_into().unwrap()
}

/// A bundle of `items` for `version`, signed by `key`, made at a fixed
/// time (so the golden fixture's bytes are reproduced).
pub fn make(key: &SigningKey, version: &str, items: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let owned = items.to_vec();
    bundle::write(
        &mut out,
        version.parse().unwrap(),
        "2026-12-06T00:00:00.000Z",
        key,
        &mut || {
            Ok(owned
                .iter()
                .map(|(n, b)| Source {
                    name: n.clone(),
                    reader: Box::new(Cursor::new(b.clone())),
                })
                .collect())
        },
    )
    .unwrap();
    out
}
