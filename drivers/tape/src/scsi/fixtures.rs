//! Loads the hand-written byte fixtures in `tests/fixtures/scsi/`.

use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scsi")
}

/// Decodes fixture text: hex digits, whitespace ignored, `#` comments.
pub(crate) fn decode(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.bytes())
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// The bytes of fixture `name` (without `.hex`).
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = dir().join(format!("{name}.hex"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    decode(&text)
}

/// Every fixture, by name.
pub(crate) fn all() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hex"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let bytes = decode(&std::fs::read_to_string(&p).unwrap());
            (name, bytes)
        })
        .collect();
    v.sort();
    v
}
