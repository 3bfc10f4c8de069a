//! Keyless container checks, index objects and table decryption on any bytes.
#![no_main]
use coffer_store::container::{self, HEADER_LEN, IndexObject, TRAILER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = container::check_container(data);
    let key = coffer_keys::MasterKey::from_bytes_for_fixtures([7; 32], 1);
    if let Ok(idx) = IndexObject::parse(data) {
        let _ = idx.open(&key);
    }
    if data.len() >= HEADER_LEN + TRAILER_LEN {
        let n = data.len();
        if let Ok(info) =
            container::parse_container(&data[..HEADER_LEN], &data[n - TRAILER_LEN..], n as u64)
        {
            let _ = container::open_table(&key, data, &info);
        }
    }
});
