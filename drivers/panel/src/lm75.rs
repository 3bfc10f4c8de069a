//! LM75-class I2C temperature sensor (LM75A/LM75B and compatibles), read at
//! the LM75B's 11-bit resolution.
//!
//! # Registers and encoding
//!
//! The first byte of a write selects the register the *pointer* points at;
//! reads return that register.
//!
//! | pointer | register | size |
//! |---|---|---|
//! | `0x00` | temperature, read only | 2 bytes, big-endian |
//! | `0x01` | configuration; bit 0 = shutdown | 1 byte |
//! | `0x02` | T<sub>hyst</sub> | 2 bytes |
//! | `0x03` | T<sub>os</sub> | 2 bytes |
//!
//! The temperature register is a two's complement number of eighths of a
//! degree in its top 11 bits: `°C = (i16::from_be_bytes([msb, lsb]) >> 5) * 0.125`,
//! so `0x19 0x00` is 25.0 °C, `0x00 0x80` is 0.5 °C and `0xFF 0x80` is −0.5 °C
//! (the arithmetic shift keeps the sign). A 9-bit LM75 leaves the extra bits
//! zero and reads the same, in half degrees.

use embedded_hal::i2c::I2c;

use crate::Error;

/// Address of an LM75 with A0..A2 tied low.
pub const DEFAULT_ADDRESS: u8 = 0x48;

/// Pointer value of the temperature register.
pub const REG_TEMPERATURE: u8 = 0x00;
/// Pointer value of the configuration register.
pub const REG_CONFIG: u8 = 0x01;
/// Configuration bit 0: shutdown (conversions stop, the last reading stays).
pub const CONFIG_SHUTDOWN: u8 = 0x01;

/// Converts the two temperature register bytes to degrees Celsius.
pub fn celsius_from_register(bytes: [u8; 2]) -> f32 {
    f32::from(i16::from_be_bytes(bytes) >> 5) * 0.125
}

/// An LM75-class temperature sensor.
pub struct Lm75<I2C> {
    i2c: I2C,
    address: u8,
}

impl<I2C: I2c> Lm75<I2C> {
    /// A driver for the sensor at `address` ([`DEFAULT_ADDRESS`] usually).
    /// Does not touch the bus.
    pub fn new(i2c: I2C, address: u8) -> Self {
        Lm75 { i2c, address }
    }

    /// Reads the temperature: one write-read of pointer `0x00` and two bytes.
    pub fn read_celsius(&mut self) -> Result<f32, Error<I2C::Error>> {
        let mut bytes = [0; 2];
        self.i2c
            .write_read(self.address, &[REG_TEMPERATURE], &mut bytes)?;
        Ok(celsius_from_register(bytes))
    }

    /// Puts the sensor into (`true`) or out of (`false`) shutdown: reads the
    /// configuration register (write-read of pointer `0x01`, one byte) and
    /// writes it back with bit 0 changed, leaving the other settings alone.
    pub fn shutdown(&mut self, shutdown: bool) -> Result<(), Error<I2C::Error>> {
        let mut config = [0; 1];
        self.i2c
            .write_read(self.address, &[REG_CONFIG], &mut config)?;
        let config = if shutdown {
            config[0] | CONFIG_SHUTDOWN
        } else {
            config[0] & !CONFIG_SHUTDOWN
        };
        self.i2c.write(self.address, &[REG_CONFIG, config])?;
        Ok(())
    }

    /// Gives back the bus.
    pub fn destroy(self) -> I2C {
        self.i2c
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
    use embedded_hal_mock::eh1::i2c::{Mock as I2cMock, Transaction as I2cTx};

    const A: u8 = DEFAULT_ADDRESS;

    fn reads(bytes: [u8; 2]) -> f32 {
        let mut i2c = I2cMock::new(&[I2cTx::write_read(A, vec![0x00], bytes.to_vec())]);
        let mut sensor = Lm75::new(i2c.clone(), A);
        let t = sensor.read_celsius().unwrap();
        i2c.done();
        t
    }

    #[test]
    fn positive_temperatures() {
        assert_eq!(reads([0x19, 0x00]), 25.0);
        assert_eq!(reads([0x7D, 0x00]), 125.0);
        assert_eq!(reads([0x00, 0x20]), 0.125);
        assert_eq!(reads([0x00, 0x00]), 0.0);
    }

    #[test]
    fn half_degrees() {
        assert_eq!(reads([0x00, 0x80]), 0.5);
        assert_eq!(reads([0x19, 0x80]), 25.5);
        // a 9-bit LM75 leaves bits 6..0 of the low byte zero
        assert_eq!(reads([0x2A, 0x80]), 42.5);
    }

    #[test]
    fn negative_temperatures() {
        assert_eq!(reads([0xFF, 0x80]), -0.5);
        assert_eq!(reads([0xFF, 0xE0]), -0.125);
        assert_eq!(reads([0xE6, 0xE0]), -25.125);
        assert_eq!(reads([0xC9, 0x00]), -55.0);
    }

    #[test]
    fn the_five_unused_low_bits_are_ignored() {
        assert_eq!(reads([0x19, 0x1F]), 25.0);
        assert_eq!(reads([0xFF, 0x9F]), -0.5);
    }

    #[test]
    fn shutdown_sets_and_clears_bit_0_keeping_the_rest() {
        let mut i2c = I2cMock::new(&[
            I2cTx::write_read(A, vec![0x01], vec![0x18]),
            I2cTx::write(A, vec![0x01, 0x19]),
            I2cTx::write_read(A, vec![0x01], vec![0x19]),
            I2cTx::write(A, vec![0x01, 0x18]),
        ]);
        let mut sensor = Lm75::new(i2c.clone(), A);
        sensor.shutdown(true).unwrap();
        sensor.shutdown(false).unwrap();
        i2c.done();
    }

    #[test]
    fn a_missing_sensor_is_a_bus_error() {
        let nack = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address);
        let i2c = I2cMock::new(&[
            I2cTx::write_read(A, vec![0x00], vec![0, 0]).with_error(nack),
            I2cTx::write_read(A, vec![0x01], vec![0]).with_error(nack),
        ]);
        let mut sensor = Lm75::new(i2c, A);
        assert!(matches!(sensor.read_celsius(), Err(Error::Bus(e)) if e == nack));
        // the failed read leaves the configuration alone: no write follows
        assert!(matches!(sensor.shutdown(true), Err(Error::Bus(e)) if e == nack));
        let mut i2c = sensor.destroy();
        i2c.done();
    }

    #[test]
    fn other_addresses() {
        let mut i2c = I2cMock::new(&[I2cTx::write_read(0x4F, vec![0x00], vec![0x19, 0x00])]);
        let mut sensor = Lm75::new(i2c.clone(), 0x4F);
        assert_eq!(sensor.read_celsius().unwrap(), 25.0);
        i2c.done();
    }
}
