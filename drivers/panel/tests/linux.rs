#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The Linux backend cannot be exercised here (no I2C or GPIO hardware);
//! this checks that a missing device is an error naming it, not a panic.
#![cfg(feature = "linux")]

use coffer_panel::linux::{LinuxPanelConfig, open};

#[test]
fn a_missing_i2c_bus_is_an_error_naming_the_path() {
    let cfg = LinuxPanelConfig {
        i2c_bus: "/nonexistent/coffer-test/i2c-9".into(),
        ..LinuxPanelConfig::default()
    };
    let err = match open(&cfg) {
        Ok(_) => panic!("opened a bus that does not exist"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    let message = err.to_string();
    assert!(
        message.contains("/nonexistent/coffer-test/i2c-9"),
        "{message}"
    );
}

#[test]
fn defaults() {
    let cfg = LinuxPanelConfig::default();
    assert_eq!(cfg.i2c_bus, std::path::Path::new("/dev/i2c-1"));
    assert_eq!(cfg.gpio_chip, std::path::Path::new("/dev/gpiochip0"));
}
