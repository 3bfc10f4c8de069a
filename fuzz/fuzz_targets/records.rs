//! Config, key file, paper key and snapshot record parsers on any bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = coffer_store::StoreConfig::decode(data);
    let _ = coffer_keys::parse_key_file(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = coffer_keys::parse_paper_key(text);
    }
    let key = coffer_keys::MasterKey::from_bytes_for_fixtures([7; 32], 1);
    let _ = coffer_keys::DataKey::unwrap(data, &key, &[7; 16]);
    let _ = coffer_store::SnapshotRecord::open(&key, data);
});
