//! Update bundles: `open` and `install` on arbitrary bytes never panic,
//! with and without a trusted key that matches nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let trusted = [[7u8; 32]];
    if let Ok(b) =
        coffer_image::bundle::open(data, &trusted, coffer_image::bundle::Version(0, 0, 0))
    {
        let _ = b.install(&mut |_| Ok(Box::new(std::io::sink())));
    }
});
