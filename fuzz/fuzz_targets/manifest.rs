//! The manifest decoder must return entries or an error on any input, never
//! panic or allocate without bound.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut stream = coffer_store::manifest::stream_header();
    stream.extend_from_slice(data);
    for e in coffer_store::manifest::ManifestDecoder::new(&stream[..]).take(10_000) {
        if e.is_err() {
            break;
        }
    }
    let _ = coffer_store::Entry::decode(data);
});
