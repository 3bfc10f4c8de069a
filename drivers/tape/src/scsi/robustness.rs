//! Every parser against every truncation of every fixture, fixtures with
//! corrupted length fields, and pseudo-random bytes: none may panic.

use super::fixtures;
use super::{encryption, sense, smc, ssc};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = (self.next() % (max as u64 + 1)) as usize;
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Runs every parser; results are ignored, panics are not.
fn every_parser(data: &[u8]) {
    let _ = sense::Sense::parse(data).map(|s| {
        let _ = s.to_string();
        sense::classify("d", "op", &s)
    });
    let _ = ssc::parse_inquiry(data);
    let _ = ssc::parse_unit_serial(data);
    let _ = ssc::parse_read_position_long(data);
    if let Ok(m) = ssc::parse_mode_sense10(data) {
        let _ = m.compression();
        let _ = m.worm();
        let _ = ssc::mode_select_block_size(&m, 0, Some(true));
        for p in &m.pages {
            let _ = smc::parse_element_address_assignment(&p.bytes);
        }
    }
    let _ = ssc::parse_tape_alerts(data);
    let _ = ssc::parse_attribute_values(data).map(|(_, a)| ssc::medium_attributes(&a));
    let _ = encryption::parse_capabilities(data);
    let _ = encryption::parse_status(data);
    let _ = smc::parse_element_address_assignment(data);
    let _ = smc::parse_element_status(data).map(|s| smc::inventory(s.elements));
}

#[test]
fn truncations_never_panic() {
    let all = fixtures::all();
    assert!(all.len() >= 25, "only {} fixtures", all.len());
    for (_name, bytes) in &all {
        for n in 0..=bytes.len() {
            every_parser(&bytes[..n]);
        }
    }
}

#[test]
fn lying_lengths_never_panic() {
    let mut rng = Rng(0x00C0_FFEE_1234_5678);
    for (_name, bytes) in fixtures::all() {
        // Every byte set to extreme values, one at a time: length fields
        // that claim far more (or less) than is there.
        for i in 0..bytes.len() {
            for v in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] = v;
                every_parser(&b);
            }
        }
        // Random corruption of several bytes at once.
        for _ in 0..200 {
            let mut b = bytes.clone();
            for _ in 0..4 {
                if !b.is_empty() {
                    let i = (rng.next() % b.len() as u64) as usize;
                    b[i] = rng.next() as u8;
                }
            }
            every_parser(&b);
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        let b = rng.bytes(300);
        every_parser(&b);
        // And with a plausible first byte for each format.
        for first in [0x70, 0x72, 0x01, 0x2E, 0x00] {
            let mut b = b.clone();
            if let Some(x) = b.first_mut() {
                *x = first;
            }
            every_parser(&b);
        }
    }
}
