//! Any bytes as a device's response: every SCSI parser (sense data, INQUIRY,
//! serial number, READ POSITION, MODE SENSE, TapeAlert log page, READ
//! ATTRIBUTE, encryption capabilities and status, element address page,
//! READ ELEMENT STATUS) must return a value or a "malformed" error, never
//! panic; classified sense must always map to an error or an outcome.
#![no_main]
use coffer_tape::scsi::{encryption, sense, smc, ssc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = sense::Sense::parse(data) {
        let _ = sense::classify("fuzz", "READ(6)", &s);
        let _ = s.to_string();
    }
    let _ = ssc::parse_inquiry(data);
    let _ = ssc::parse_unit_serial(data);
    let _ = ssc::parse_read_position_long(data);
    let _ = ssc::parse_mode_sense10(data);
    let _ = ssc::parse_tape_alerts(data);
    if let Ok((_, attrs)) = ssc::parse_attribute_values(data) {
        let _ = ssc::medium_attributes(&attrs);
    }
    if let Ok(algs) = encryption::parse_capabilities(data) {
        let _ = encryption::pick_aes256_gcm(&algs);
    }
    let _ = encryption::parse_status(data);
    let _ = smc::parse_element_address_assignment(data);
    if let Ok(st) = smc::parse_element_status(data) {
        let _ = smc::inventory(st.elements);
    }
});
