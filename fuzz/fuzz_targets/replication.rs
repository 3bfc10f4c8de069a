//! Any bytes as what a sender says to a receiving appliance: `serve` must
//! end with a report or an error; never panic, never loop, never write a
//! file outside its replica directory, and keep only objects whose names
//! a store has (the hash check itself is tested in `tests/protocol.rs`).
#![no_main]
use std::io::{Read, Write};

use libfuzzer_sys::fuzz_target;

/// The sender's bytes in, the receiver's replies discarded.
struct Scripted<'a> {
    input: &'a [u8],
}

impl Read for Scripted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Scripted<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("replicas");
    let mut s = Scripted { input: data };
    let _ = coffer_replicate::serve(&mut s, &root, &|_, _| Ok(()));
    // Nothing outside the replica root.
    for e in std::fs::read_dir(dir.path()).unwrap() {
        assert_eq!(e.unwrap().file_name(), "replicas");
    }
    // Only objects with names a store has are kept.
    if let Ok(stores) = std::fs::read_dir(&root) {
        for st in stores {
            let st = st.unwrap().path();
            let r = coffer_replicate::Replica::open(&root, &{
                let name = st.file_name().unwrap().to_string_lossy().to_string();
                let mut id = [0u8; 16];
                for (i, b) in id.iter_mut().enumerate() {
                    *b = u8::from_str_radix(&name[2 * i..2 * i + 2], 16).unwrap();
                }
                id
            })
            .unwrap();
            for h in r.inventory().unwrap() {
                assert!(coffer_replicate::replica::valid_key(&h.key));
            }
        }
    }
});
