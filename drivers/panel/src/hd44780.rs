//! HD44780 20x4 character LCD behind a PCF8574 I2C backpack, driven in
//! 4-bit mode.
//!
//! # The PCF8574 byte
//!
//! Every byte written to the expander sets all eight of its pins at once:
//!
//! ```text
//!  bit   7    6    5    4    3          2    1    0
//!  pin   P7   P6   P5   P4   P3         P2   P1   P0
//!  LCD   D7   D6   D5   D4   backlight  EN   RW   RS
//! ```
//!
//! RW is always 0 (the driver never reads the LCD, so it never polls the busy
//! flag and relies on waits instead, see below).
//!
//! # What goes on the bus
//!
//! One nibble `n` is sent as **one I2C write of three bytes**:
//!
//! ```text
//!  [ b, b | EN, b ]      where b = (n << 4) | BL | RS
//! ```
//!
//! The expander updates its pins as each byte is acknowledged, so the first
//! byte sets up RS and the data lines with EN low, the second raises EN, the
//! third lowers it again, which latches the nibble. At the PCF8574's 100 kHz
//! every byte takes 90 µs, comfortably above the HD44780's setup, pulse width
//! and hold times. A byte (command with RS = 0, character with RS = 1) is two
//! such writes, high nibble first. `BL` is `0x08` while the backlight is on.
//!
//! Because one nibble write already takes longer than the 37 µs an ordinary
//! instruction needs, the driver only waits explicitly where the datasheet
//! asks for more: at power-on and after *clear display*.
//!
//! # Initialisation by instruction (datasheet figure 24, 4-bit)
//!
//! | step | bus | wait afterwards |
//! |---|---|---|
//! | expander to a known state: all low, backlight as set | `[BL]` | 50 ms (> 40 ms) |
//! | function set, 8-bit | nibble `0x3` | 4.5 ms (> 4.1 ms) |
//! | function set, 8-bit | nibble `0x3` | 150 µs (> 100 µs) |
//! | function set, 8-bit | nibble `0x3` | — |
//! | function set, 4-bit | nibble `0x2` | — |
//! | function set: 4-bit, 2 lines, 5x8 | command `0x28` | — |
//! | display on, cursor off, blink off | command `0x0C` | — |
//! | clear display | command `0x01` | 2 ms (> 1.52 ms) |
//! | entry mode: increment, no shift | command `0x06` | — |
//!
//! The three `0x3` nibbles bring the controller into 8-bit mode from any state
//! (power-on, 8-bit, or 4-bit half way through a byte), so `init` also
//! recovers a display whose nibble pairing was lost to a bus error.

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

use crate::Error;

/// The usual address of a PCF8574 backpack with A0..A2 left open
/// (a PCF8574A backpack answers at `0x3F` instead).
pub const DEFAULT_ADDRESS: u8 = 0x27;

/// Display columns.
pub const COLS: usize = 20;
/// Display rows.
pub const ROWS: usize = 4;
/// DDRAM address of column 0 of each row of a 20x4 display: rows 0 and 2
/// are the two halves of the controller's first line, rows 1 and 3 of its
/// second.
pub const ROW_BASES: [u8; ROWS] = [0x00, 0x40, 0x14, 0x54];

/// PCF8574 P0: register select (0 = instruction, 1 = data).
pub const PIN_RS: u8 = 0x01;
/// PCF8574 P1: read/write (always 0 = write).
pub const PIN_RW: u8 = 0x02;
/// PCF8574 P2: enable; the nibble is latched on its falling edge.
pub const PIN_EN: u8 = 0x04;
/// PCF8574 P3: backlight transistor (1 = on).
pub const PIN_BACKLIGHT: u8 = 0x08;

const CMD_CLEAR: u8 = 0x01;
const CMD_ENTRY_MODE_INCREMENT: u8 = 0x06;
const CMD_DISPLAY_ON: u8 = 0x0C;
const CMD_FUNCTION_SET_4BIT_2LINE: u8 = 0x28;
const CMD_SET_DDRAM: u8 = 0x80;

/// One row as the display holds it: already mapped to displayable bytes.
type Row = [u8; COLS];

/// A 20x4 HD44780 character LCD on a PCF8574 backpack.
///
/// Generic over any `embedded-hal` 1.0 I2C bus and delay. Nothing is sent on
/// the bus until [`Lcd::init`] or another method is called.
pub struct Lcd<I2C, D> {
    i2c: I2C,
    delay: D,
    address: u8,
    backlight: bool,
    /// What the display holds, row by row, as far as the driver knows;
    /// `None` when unknown (before init, after clear, write_str or any
    /// bus error), which makes the next [`Lcd::draw`] rewrite every row.
    shadow: Option<[Row; ROWS]>,
}

impl<I2C, D> Lcd<I2C, D>
where
    I2C: I2c,
    D: DelayNs,
{
    /// A driver for the LCD at `address` ([`DEFAULT_ADDRESS`] on most
    /// backpacks). The backlight starts out on. Does not touch the bus.
    pub fn new(i2c: I2C, delay: D, address: u8) -> Self {
        Lcd {
            i2c,
            delay,
            address,
            backlight: true,
            shadow: None,
        }
    }

    /// Runs the HD44780 power-on initialisation by instruction (see the
    /// module docs for the exact steps and waits). Leaves the display on,
    /// cleared, with the cursor at row 0 column 0.
    pub fn init(&mut self) -> Result<(), Error<I2C::Error>> {
        self.shadow = None;
        let result = self.init_sequence();
        self.after(result)
    }

    fn init_sequence(&mut self) -> Result<(), I2C::Error> {
        let idle = self.backlight_bits();
        self.i2c.write(self.address, &[idle])?;
        self.delay.delay_ms(50);
        self.write_nibble(0x3, false)?;
        self.delay.delay_us(4500);
        self.write_nibble(0x3, false)?;
        self.delay.delay_us(150);
        self.write_nibble(0x3, false)?;
        self.write_nibble(0x2, false)?;
        self.command(CMD_FUNCTION_SET_4BIT_2LINE)?;
        self.command(CMD_DISPLAY_ON)?;
        self.command(CMD_CLEAR)?;
        self.delay.delay_us(2000);
        self.command(CMD_ENTRY_MODE_INCREMENT)
    }

    /// Clears the display and puts the cursor at row 0 column 0 (waits 2 ms
    /// for the controller to finish).
    pub fn clear(&mut self) -> Result<(), Error<I2C::Error>> {
        self.shadow = None;
        let result = self.command(CMD_CLEAR).map(|()| self.delay.delay_us(2000));
        self.after(result)
    }

    /// Moves the cursor to `row` (0..=3) and `col` (0..=19).
    ///
    /// Returns [`Error::OutOfRange`] without touching the bus otherwise.
    pub fn set_cursor(&mut self, row: u8, col: u8) -> Result<(), Error<I2C::Error>> {
        let address = ddram_address(row, col).ok_or(Error::OutOfRange)?;
        let result = self.command(CMD_SET_DDRAM | address);
        self.after(result)
    }

    /// Writes `text` at the cursor, one cell per character. Characters
    /// outside printable ASCII (`0x20..=0x7E`) are shown as `?`. The
    /// controller moves the cursor right after each character; text running
    /// past column 19 continues wherever the DDRAM address goes next (row 0
    /// runs on into row 2, row 1 into row 3), so use [`Lcd::draw`] for
    /// whole screens.
    pub fn write_str(&mut self, text: &str) -> Result<(), Error<I2C::Error>> {
        self.shadow = None;
        let result = text
            .chars()
            .try_for_each(|c| self.write_data(displayable(c)));
        self.after(result)
    }

    /// Switches the backlight on or off, at once (one single-byte write with
    /// EN low, so nothing is latched into the controller).
    pub fn set_backlight(&mut self, on: bool) -> Result<(), Error<I2C::Error>> {
        self.backlight = on;
        let bits = self.backlight_bits();
        let result = self.i2c.write(self.address, &[bits]);
        self.after(result)
    }

    /// Whether the backlight is (meant to be) on.
    pub fn backlight(&self) -> bool {
        self.backlight
    }

    /// Shows four lines, each padded with spaces or truncated to 20
    /// characters (mapped like [`Lcd::write_str`]).
    ///
    /// Only rows that differ from what the display is known to hold are
    /// rewritten, each as *set DDRAM address* followed by its 20 characters.
    /// After `init`, `clear`, `write_str` or any bus error the contents are
    /// unknown and the next `draw` rewrites all four rows.
    pub fn draw(&mut self, lines: &[String; 4]) -> Result<(), Error<I2C::Error>> {
        let wanted: [Row; ROWS] = core::array::from_fn(|r| render_row(&lines[r]));
        let shown = self.shadow.take();
        let mut result = Ok(());
        for (row, (text, &base)) in wanted.iter().zip(ROW_BASES.iter()).enumerate() {
            if shown.as_ref().is_some_and(|s| s[row] == *text) {
                continue;
            }
            result = self.write_row(base, text);
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            self.shadow = Some(wanted);
        }
        self.after(result)
    }

    /// Gives back the bus and the delay.
    pub fn destroy(self) -> (I2C, D) {
        (self.i2c, self.delay)
    }

    fn write_row(&mut self, base: u8, text: &Row) -> Result<(), I2C::Error> {
        self.command(CMD_SET_DDRAM | base)?;
        text.iter().try_for_each(|&b| self.write_data(b))
    }

    /// Any bus error makes the display contents unknown.
    fn after(&mut self, result: Result<(), I2C::Error>) -> Result<(), Error<I2C::Error>> {
        result.map_err(|e| {
            self.shadow = None;
            Error::Bus(e)
        })
    }

    fn backlight_bits(&self) -> u8 {
        if self.backlight { PIN_BACKLIGHT } else { 0 }
    }

    fn command(&mut self, byte: u8) -> Result<(), I2C::Error> {
        self.write_byte(byte, false)
    }

    fn write_data(&mut self, byte: u8) -> Result<(), I2C::Error> {
        self.write_byte(byte, true)
    }

    fn write_byte(&mut self, byte: u8, rs: bool) -> Result<(), I2C::Error> {
        self.write_nibble(byte >> 4, rs)?;
        self.write_nibble(byte & 0x0F, rs)
    }

    fn write_nibble(&mut self, nibble: u8, rs: bool) -> Result<(), I2C::Error> {
        let b = nibble_byte(nibble, rs, self.backlight);
        self.i2c.write(self.address, &[b, b | PIN_EN, b])
    }
}

/// The expander byte for `nibble` with EN low.
fn nibble_byte(nibble: u8, rs: bool, backlight: bool) -> u8 {
    let mut b = (nibble & 0x0F) << 4;
    if rs {
        b |= PIN_RS;
    }
    if backlight {
        b |= PIN_BACKLIGHT;
    }
    b
}

/// The DDRAM address of a cell, if it is on the display.
pub fn ddram_address(row: u8, col: u8) -> Option<u8> {
    let base = ROW_BASES.get(usize::from(row))?;
    (usize::from(col) < COLS).then_some(base + col)
}

/// The byte a character is shown as: itself if printable ASCII, else `?`.
fn displayable(c: char) -> u8 {
    u8::try_from(c)
        .ok()
        .filter(|b| (0x20..=0x7E).contains(b))
        .unwrap_or(b'?')
}

fn render_row(line: &str) -> Row {
    let mut row = [b' '; COLS];
    for (cell, c) in row.iter_mut().zip(line.chars()) {
        *cell = displayable(c);
    }
    row
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use embedded_hal::i2c::ErrorKind;
    use embedded_hal_mock::eh1::delay::{CheckedDelay, NoopDelay, Transaction as DelayTx};
    use embedded_hal_mock::eh1::i2c::{Mock as I2cMock, Transaction as I2cTx};

    const A: u8 = DEFAULT_ADDRESS;

    /// One nibble as the driver must send it, with the backlight on.
    fn nib(rs: bool, n: u8) -> I2cTx {
        let b = (n << 4) | 0x08 | u8::from(rs);
        I2cTx::write(A, vec![b, b | 0x04, b])
    }

    fn cmd(byte: u8) -> Vec<I2cTx> {
        vec![nib(false, byte >> 4), nib(false, byte & 0xF)]
    }

    fn data(text: &[u8]) -> Vec<I2cTx> {
        text.iter()
            .flat_map(|&b| [nib(true, b >> 4), nib(true, b & 0xF)])
            .collect()
    }

    fn row(base: u8, text: &[u8; 20]) -> Vec<I2cTx> {
        let mut v = cmd(0x80 | base);
        v.extend(data(text));
        v
    }

    fn lines(l: [&str; 4]) -> [String; 4] {
        l.map(String::from)
    }

    /// An LCD whose shadow is known: initialised (init's traffic checked
    /// elsewhere) and then drawn with `first`.
    fn drawn(first: [&str; 4], expect_after: Vec<I2cTx>) -> (Lcd<I2cMock, NoopDelay>, I2cMock) {
        let mut expected = init_bus();
        let first_rows: Vec<[u8; 20]> = first.iter().map(|l| render_row(l)).collect();
        for (r, text) in first_rows.iter().enumerate() {
            expected.extend(row(ROW_BASES[r], text));
        }
        expected.extend(expect_after);
        let i2c = I2cMock::new(&expected);
        let mut lcd = Lcd::new(i2c.clone(), NoopDelay::new(), A);
        lcd.init().unwrap();
        lcd.draw(&lines(first)).unwrap();
        (lcd, i2c)
    }

    /// The init sequence, byte for byte (backlight on).
    fn init_bus() -> Vec<I2cTx> {
        vec![
            I2cTx::write(A, vec![0x08]),
            I2cTx::write(A, vec![0x38, 0x3C, 0x38]), // 0x3
            I2cTx::write(A, vec![0x38, 0x3C, 0x38]), // 0x3
            I2cTx::write(A, vec![0x38, 0x3C, 0x38]), // 0x3
            I2cTx::write(A, vec![0x28, 0x2C, 0x28]), // 0x2: 4-bit from here
            I2cTx::write(A, vec![0x28, 0x2C, 0x28]), // 0x28 high
            I2cTx::write(A, vec![0x88, 0x8C, 0x88]), // 0x28 low
            I2cTx::write(A, vec![0x08, 0x0C, 0x08]), // 0x0C high
            I2cTx::write(A, vec![0xC8, 0xCC, 0xC8]), // 0x0C low
            I2cTx::write(A, vec![0x08, 0x0C, 0x08]), // 0x01 high
            I2cTx::write(A, vec![0x18, 0x1C, 0x18]), // 0x01 low
            I2cTx::write(A, vec![0x08, 0x0C, 0x08]), // 0x06 high
            I2cTx::write(A, vec![0x68, 0x6C, 0x68]), // 0x06 low
        ]
    }

    #[test]
    fn init_sends_the_power_on_sequence_with_the_datasheet_waits() {
        let mut i2c = I2cMock::new(&init_bus());
        let mut delay = CheckedDelay::new(&[
            DelayTx::delay_ms(50),
            DelayTx::delay_us(4500),
            DelayTx::delay_us(150),
            DelayTx::delay_us(2000),
        ]);
        let mut lcd = Lcd::new(i2c.clone(), delay.clone(), A);
        lcd.init().unwrap();
        i2c.done();
        delay.done();
    }

    #[test]
    fn init_with_backlight_off_keeps_p3_low() {
        // set_backlight(false), then init's idle byte, then every nibble of
        // the sequence with P3 low
        let mut i2c_expect = vec![I2cTx::write(A, vec![0x00]), I2cTx::write(A, vec![0x00])];
        for n in [0x3, 0x3, 0x3, 0x2, 0x2, 0x8, 0x0, 0xC, 0x0, 0x1, 0x0, 0x6] {
            let b: u8 = n << 4;
            i2c_expect.push(I2cTx::write(A, vec![b, b | 0x04, b]));
        }
        let mut i2c = I2cMock::new(&i2c_expect);
        let mut lcd = Lcd::new(i2c.clone(), NoopDelay::new(), A);
        lcd.set_backlight(false).unwrap();
        assert!(!lcd.backlight());
        lcd.init().unwrap();
        i2c.done();
    }

    #[test]
    fn set_cursor_addresses_each_row() {
        let mut i2c = I2cMock::new(&[
            // row 0 col 0 -> 0x80
            I2cTx::write(A, vec![0x88, 0x8C, 0x88]),
            I2cTx::write(A, vec![0x08, 0x0C, 0x08]),
            // row 1 col 0 -> 0xC0
            I2cTx::write(A, vec![0xC8, 0xCC, 0xC8]),
            I2cTx::write(A, vec![0x08, 0x0C, 0x08]),
            // row 2 col 0 -> 0x94
            I2cTx::write(A, vec![0x98, 0x9C, 0x98]),
            I2cTx::write(A, vec![0x48, 0x4C, 0x48]),
            // row 3 col 19 -> 0x80 | (0x54 + 19) = 0xE7
            I2cTx::write(A, vec![0xE8, 0xEC, 0xE8]),
            I2cTx::write(A, vec![0x78, 0x7C, 0x78]),
        ]);
        let mut lcd = Lcd::new(i2c.clone(), NoopDelay::new(), A);
        lcd.set_cursor(0, 0).unwrap();
        lcd.set_cursor(1, 0).unwrap();
        lcd.set_cursor(2, 0).unwrap();
        lcd.set_cursor(3, 19).unwrap();
        i2c.done();
    }

    #[test]
    fn set_cursor_out_of_range_sends_nothing() {
        let mut i2c = I2cMock::new(&[]);
        let mut lcd = Lcd::new(i2c.clone(), NoopDelay::new(), A);
        assert!(matches!(lcd.set_cursor(4, 0), Err(Error::OutOfRange)));
        assert!(matches!(lcd.set_cursor(0, 20), Err(Error::OutOfRange)));
        assert!(matches!(lcd.set_cursor(255, 255), Err(Error::OutOfRange)));
        i2c.done();
    }

    #[test]
    fn write_str_sends_characters_with_rs_high_and_maps_non_ascii_to_question_mark() {
        let mut i2c = I2cMock::new(&[
            // 'O' = 0x4F
            I2cTx::write(A, vec![0x49, 0x4D, 0x49]),
            I2cTx::write(A, vec![0xF9, 0xFD, 0xF9]),
            // 'K' = 0x4B
            I2cTx::write(A, vec![0x49, 0x4D, 0x49]),
            I2cTx::write(A, vec![0xB9, 0xBD, 0xB9]),
            // '°' (two UTF-8 bytes) -> one '?' = 0x3F
            I2cTx::write(A, vec![0x39, 0x3D, 0x39]),
            I2cTx::write(A, vec![0xF9, 0xFD, 0xF9]),
            // '\t' -> '?'
            I2cTx::write(A, vec![0x39, 0x3D, 0x39]),
            I2cTx::write(A, vec![0xF9, 0xFD, 0xF9]),
            // '~' = 0x7E stays
            I2cTx::write(A, vec![0x79, 0x7D, 0x79]),
            I2cTx::write(A, vec![0xE9, 0xED, 0xE9]),
        ]);
        let mut lcd = Lcd::new(i2c.clone(), NoopDelay::new(), A);
        lcd.write_str("OK°\t~").unwrap();
        i2c.done();
    }

    #[test]
    fn clear_sends_0x01_and_waits() {
        let mut i2c = I2cMock::new(&[
            I2cTx::write(A, vec![0x08, 0x0C, 0x08]),
            I2cTx::write(A, vec![0x18, 0x1C, 0x18]),
        ]);
        let mut delay = CheckedDelay::new(&[DelayTx::delay_us(2000)]);
        let mut lcd = Lcd::new(i2c.clone(), delay.clone(), A);
        lcd.clear().unwrap();
        i2c.done();
        delay.done();
    }

    #[test]
    fn backlight_toggles_p3_and_later_nibbles_carry_it() {
        let mut i2c = I2cMock::new(&[
            I2cTx::write(A, vec![0x00]),
            // 'A' = 0x41 with backlight off
            I2cTx::write(A, vec![0x41, 0x45, 0x41]),
            I2cTx::write(A, vec![0x11, 0x15, 0x11]),
            I2cTx::write(A, vec![0x08]),
            // 'A' with backlight on
            I2cTx::write(A, vec![0x49, 0x4D, 0x49]),
            I2cTx::write(A, vec![0x19, 0x1D, 0x19]),
        ]);
        let mut lcd = Lcd::new(i2c.clone(), NoopDelay::new(), A);
        lcd.set_backlight(false).unwrap();
        lcd.write_str("A").unwrap();
        lcd.set_backlight(true).unwrap();
        lcd.write_str("A").unwrap();
        i2c.done();
    }

    #[test]
    fn first_draw_writes_every_row_padded_and_truncated() {
        let mut expected = Vec::new();
        expected.extend(row(0x00, b"Coffer              "));
        expected.extend(row(0x40, b"0123456789abcdefghij"));
        expected.extend(row(0x14, b"                    "));
        expected.extend(row(0x54, b"temp 41?C           "));
        let mut i2c = I2cMock::new(&expected);
        let mut lcd = Lcd::new(i2c.clone(), NoopDelay::new(), A);
        lcd.draw(&lines([
            "Coffer",
            "0123456789abcdefghijKLMNOP",
            "",
            "temp 41°C",
        ]))
        .unwrap();
        i2c.done();
    }

    #[test]
    fn draw_rewrites_only_changed_rows() {
        let mut after = row(0x14, b"job 2 of 3          ");
        // the same screen again: nothing at all
        // then row 3 changes
        after.extend(row(0x54, b"done                "));
        let (mut lcd, mut i2c) = drawn(["a", "b", "job 1 of 3", ""], after);
        lcd.draw(&lines(["a", "b", "job 2 of 3", ""])).unwrap();
        lcd.draw(&lines(["a", "b", "job 2 of 3", ""])).unwrap();
        // padding makes "b" and "b   " the same row
        lcd.draw(&lines(["a", "b   ", "job 2 of 3", "done"]))
            .unwrap();
        i2c.done();
    }

    #[test]
    fn a_bus_error_is_reported_and_the_next_draw_rewrites_every_row() {
        let mut after = cmd(0x80 | 0x40);
        // the first character of row 1 fails on its second nibble
        after.push(nib(true, b'X' >> 4));
        after.push(nib(true, b'X' & 0xF).with_error(ErrorKind::Bus));
        // next draw: all four rows, even those that did not change
        after.extend(row(0x00, b"a                   "));
        after.extend(row(0x40, b"X                   "));
        after.extend(row(0x14, b"c                   "));
        after.extend(row(0x54, b"d                   "));
        let (mut lcd, mut i2c) = drawn(["a", "b", "c", "d"], after);
        let err = lcd.draw(&lines(["a", "X", "c", "d"])).unwrap_err();
        assert!(matches!(err, Error::Bus(ErrorKind::Bus)));
        assert_eq!(err.to_string(), "bus transfer failed: Bus");
        lcd.draw(&lines(["a", "X", "c", "d"])).unwrap();
        i2c.done();
    }

    #[test]
    fn init_invalidates_the_shadow() {
        let mut after = init_bus();
        for (base, text) in ROW_BASES.iter().zip(["a", "b", "c", "d"]) {
            after.extend(row(*base, &render_row(text)));
        }
        let (mut lcd, mut i2c) = drawn(["a", "b", "c", "d"], after);
        lcd.init().unwrap();
        lcd.draw(&lines(["a", "b", "c", "d"])).unwrap();
        i2c.done();
    }

    #[test]
    fn init_stops_at_the_first_nack() {
        let mut i2c =
            I2cMock::new(&[
                I2cTx::write(A, vec![0x08]).with_error(ErrorKind::NoAcknowledge(
                    embedded_hal::i2c::NoAcknowledgeSource::Address,
                )),
            ]);
        let mut lcd = Lcd::new(i2c.clone(), NoopDelay::new(), A);
        assert!(matches!(
            lcd.init(),
            Err(Error::Bus(ErrorKind::NoAcknowledge(_)))
        ));
        i2c.done();
    }

    #[test]
    fn destroy_hands_back_the_bus() {
        let i2c = I2cMock::new(&[]);
        let lcd = Lcd::new(i2c, NoopDelay::new(), A);
        let (mut i2c, _delay) = lcd.destroy();
        i2c.done();
    }

    #[test]
    fn ddram_addresses_of_the_20x4_layout() {
        assert_eq!(ddram_address(0, 19), Some(0x13));
        assert_eq!(ddram_address(1, 0), Some(0x40));
        assert_eq!(ddram_address(2, 0), Some(0x14));
        assert_eq!(ddram_address(3, 19), Some(0x67));
        assert_eq!(ddram_address(4, 0), None);
    }
}
