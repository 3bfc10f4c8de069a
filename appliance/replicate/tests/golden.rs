//! The replication protocol's golden frames: `tests/fixtures/replication-v1/
//! frames.bin` holds the encoding of one message of every type, written
//! once by `COFFER_WRITE_REPLICATION_FIXTURE=1 cargo test -p
//! coffer-replicate --test golden` and committed. It is never regenerated
//! for a protocol change (that is a new version): every later build must
//! encode these messages to exactly these bytes and read them back.
//! Also a round-trip property over random messages.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;

use coffer_replicate::wire::{self, AckStatus, Have, Msg};
use proptest::prelude::*;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/replication-v1/frames.bin")
}

fn messages() -> Vec<Msg> {
    vec![
        Msg::Hello {
            store: *b"0123456789abcdef",
            source: "coffer-01".into(),
        },
        Msg::Ready { objects: 2 },
        Msg::Inventory(vec![
            Have {
                key: "config".into(),
                size: 80,
                complete: true,
            },
            Have {
                key: "data/3f/3f6d299c2554bfba2a0bd74076ea73a5".into(),
                size: 65_536,
                complete: false,
            },
        ]),
        Msg::InventoryEnd,
        Msg::Begin {
            key: "data/3f/3f6d299c2554bfba2a0bd74076ea73a5".into(),
            size: 600_254,
            offset: 65_536,
        },
        Msg::Data(b"sealed container bytes".to_vec()),
        Msg::End { hash: [0x5a; 32] },
        Msg::Ack {
            key: "data/3f/3f6d299c2554bfba2a0bd74076ea73a5".into(),
            status: AckStatus::Ok,
            hash: [0x5a; 32],
        },
        Msg::Done,
        Msg::Summary {
            objects: 1,
            bytes: 534_718,
        },
        Msg::Refused {
            message: "no replication agreement with 'stranger'".into(),
        },
    ]
}

#[test]
fn version_1_frames_are_byte_exact_and_read_back() {
    let mut bytes = Vec::new();
    for m in messages() {
        bytes.extend(m.encode().unwrap());
    }
    let path = fixture();
    if std::env::var_os("COFFER_WRITE_REPLICATION_FIXTURE").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
    }
    let golden = std::fs::read(&path).expect("the golden frames fixture");
    assert_eq!(bytes, golden, "the encoding of version 1 changed");
    let mut r = &golden[..];
    let mut back = Vec::new();
    while !r.is_empty() {
        back.push(wire::recv(&mut r).unwrap());
    }
    assert_eq!(back, messages());
}

fn key() -> impl Strategy<Value = String> {
    "[a-z0-9/._-]{0,80}"
}

fn msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        (any::<[u8; 16]>(), ".{0,40}").prop_map(|(store, source)| Msg::Hello { store, source }),
        (any::<[u8; 16]>(), ".{0,40}").prop_map(|(store, source)| Msg::Pull { store, source }),
        any::<u64>().prop_map(|objects| Msg::Ready { objects }),
        proptest::collection::vec(
            (key(), any::<u64>(), any::<bool>()).prop_map(|(key, size, complete)| Have {
                key,
                size,
                complete
            }),
            0..20
        )
        .prop_map(Msg::Inventory),
        Just(Msg::InventoryEnd),
        (key(), any::<u64>(), any::<u64>()).prop_map(|(key, size, offset)| Msg::Begin {
            key,
            size,
            offset
        }),
        proptest::collection::vec(any::<u8>(), 0..4096).prop_map(Msg::Data),
        any::<[u8; 32]>().prop_map(|hash| Msg::End { hash }),
        (key(), any::<bool>(), any::<[u8; 32]>()).prop_map(|(key, ok, hash)| Msg::Ack {
            key,
            status: if ok {
                AckStatus::Ok
            } else {
                AckStatus::Mismatch
            },
            hash
        }),
        Just(Msg::Done),
        (any::<u64>(), any::<u64>()).prop_map(|(objects, bytes)| Msg::Summary { objects, bytes }),
        ".{0,200}".prop_map(|message| Msg::Refused { message }),
    ]
}

proptest! {
    #[test]
    fn any_message_round_trips(m in msg()) {
        let b = m.encode().unwrap();
        prop_assert_eq!(wire::recv(&mut &b[..]).unwrap(), m);
    }
}

/// The sender's bytes in, the receiver's replies discarded.
struct Scripted<'a> {
    input: &'a [u8],
}

impl std::io::Read for Scripted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.input.read(buf)
    }
}

impl std::io::Write for Scripted<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// A hostile or broken sender (a valid Hello, then any frames or any
    /// bytes): the receiver ends with an error or a report, writes nothing
    /// outside its root, and keeps only objects with valid names.
    #[test]
    fn a_receiver_survives_any_sender(
        frames in proptest::collection::vec(msg(), 0..8),
        noise in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("replicas");
        let mut input = Msg::Hello { store: [3; 16], source: "fuzz".into() }.encode().unwrap();
        for f in &frames {
            input.extend(f.encode().unwrap());
        }
        input.extend(&noise);
        let _ = coffer_replicate::serve(&mut Scripted { input: &input }, &root, &|_, _| Ok(()));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        prop_assert_eq!(names, vec![std::ffi::OsString::from("replicas")]);
        let r = coffer_replicate::Replica::open(&root, &[3; 16]).unwrap();
        for h in r.inventory().unwrap() {
            prop_assert!(coffer_replicate::replica::valid_key(&h.key));
        }
    }
}
