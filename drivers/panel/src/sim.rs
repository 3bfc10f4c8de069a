//! A simulated front panel behind the same `embedded-hal` traits as the real
//! one, so the very same drivers run against it. Shipped code, not a test
//! helper: the appliance runs on machines with no panel (development
//! laptops, CI, virtual machines) and drives a [`SimPanel`] there.
//!
//! # What is emulated
//!
//! * **I2C bus** ([`SimI2c`]): one transfer per `I2c::transaction` call (so
//!   a `write_read` is one transfer), counted by [`SimPanel::transfers`].
//!   Devices answer at fixed addresses: the LCD backpack at
//!   [`hd44780::DEFAULT_ADDRESS`] (`0x27`) and the sensor at
//!   [`lm75::DEFAULT_ADDRESS`] (`0x48`); any other address, or an absent
//!   device, NACKs (`ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address)`).
//!   With [`SimPanel::set_bus_error`] every transfer fails with
//!   `ErrorKind::Bus` and reaches no device.
//! * **Virtual time.** Nothing sleeps. A virtual clock advances by 90 µs per
//!   byte on the bus (address byte included: 9 bit times at the PCF8574's
//!   100 kHz) and by whatever [`SimDelay`] is asked to wait. The LCD uses it
//!   the way the real controller uses real time, see below.
//! * **PCF8574 + HD44780** (`0x27`): every written byte sets the expander's
//!   eight pins (P0 = RS, P1 = RW, P2 = EN, P3 = backlight, P4..P7 = D4..D7;
//!   all high at power-on, as on the real chip). On each EN high→low edge
//!   the controller latches the nibble on D4..D7 with RS, as the pins were
//!   while EN was high. Latches with RW high (reads) are ignored. The
//!   controller starts in 8-bit mode, where each latch is a whole instruction
//!   (D0..D3 are not wired on the backpack and read as 0); a function set with
//!   DL = 0 switches to 4-bit mode, where nibbles pair into bytes, high nibble
//!   first. Executed: clear display, return home, entry mode (increment or
//!   decrement; display shift is not emulated), display on/off (cursor and
//!   blink are not shown), cursor/display shift (ignored), function set (DL,
//!   N), set CGRAM address (data then goes to CGRAM and is not shown), set
//!   DDRAM address, and data writes with the two-line DDRAM address
//!   sequence (0x00..0x27, 0x40..0x67) laid out as 20x4 rows at 0x00, 0x40,
//!   0x14, 0x54. Timing is enforced: latches in the first 40 ms after power-on
//!   are ignored, and so are latches while the controller is busy (1.52 ms
//!   after clear or home, 37 µs after anything else) — a driver that forgets
//!   a wait loses characters here just as on the real display.
//! * **LM75** (`0x48`): pointer register, temperature register (11-bit
//!   LM75B encoding of the value set with [`SimPanel::set_temperature`]; it
//!   stops updating while the configuration register's shutdown bit is set),
//!   configuration register, T<sub>hyst</sub>/T<sub>os</sub> stored and read back.
//! * **Presence.** [`SimPanel::set_present`] unplugs a device (it NACKs);
//!   plugging it back in powers it up afresh, so the LCD must be initialised
//!   again and the sensor's configuration is back to its default.
//! * **LEDs** ([`SimOutputPin`]): active high, state visible in
//!   [`SimPanel::snapshot`].
//! * **Buttons** ([`SimInputPin`]): active low, like switches to ground with
//!   pull-ups. [`SimPanel::press`] makes a button read pressed for the next
//!   [`PRESS_SAMPLES`] reads of its pin; [`SimPanel::hold`] and
//!   [`SimPanel::release`] keep it down for as long as wanted.
//! * **GPIO faults**: [`SimPanel::set_gpio_error`] makes every pin access
//!   fail with `digital::ErrorKind::Other`.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use embedded_hal::delay::DelayNs;
use embedded_hal::digital::{self, InputPin, OutputPin};
use embedded_hal::i2c::{self, ErrorKind, I2c, NoAcknowledgeSource, Operation};

use crate::buttons::Button;
use crate::hd44780::{self, PIN_BACKLIGHT, PIN_EN, PIN_RS, PIN_RW, ROW_BASES};
use crate::leds::{Led, LedStates};
use crate::lm75::{self, CONFIG_SHUTDOWN};

/// How many reads of its pin a [`SimPanel::press`] lasts; more than the
/// default [`crate::buttons::DebounceConfig::stable_samples`] (3), so a
/// simulated press is one debounced press with default settings.
pub const PRESS_SAMPLES: u32 = 5;

/// Virtual time one byte takes on the bus: 9 bit times at 100 kHz.
const I2C_BYTE_NS: u64 = 90_000;
/// The HD44780 ignores everything for this long after power-on.
const LCD_POWER_ON_NS: u64 = 40_000_000;
/// Execution time of clear display and return home.
const LCD_SLOW_NS: u64 = 1_520_000;
/// Execution time of every other instruction and of data writes.
const LCD_FAST_NS: u64 = 37_000;

const COLS: usize = hd44780::COLS;

/// A device on the simulated I2C bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimDevice {
    /// The LCD backpack at `0x27`.
    Lcd,
    /// The temperature sensor at `0x48`.
    Sensor,
}

/// Everything a person (or a test) can see on the simulated panel.
#[derive(Debug, Clone, PartialEq)]
pub struct SimSnapshot {
    /// The four display rows, 20 characters each (see [`SimPanel::lines`]).
    pub lines: [String; 4],
    /// Whether the backpack's backlight pin is on.
    pub backlight: bool,
    /// What was last written to the LED pins.
    pub leds: LedStates,
    /// The temperature the sensor is set to measure.
    pub temperature: f32,
    /// Whether the LCD is plugged in.
    pub lcd_present: bool,
    /// Whether the sensor is plugged in.
    pub sensor_present: bool,
}

/// A simulated front panel. Cloning gives another handle on the same panel.
#[derive(Clone, Default)]
pub struct SimPanel {
    state: Arc<Mutex<State>>,
}

impl core::fmt::Debug for SimPanel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SimPanel")
            .field("snapshot", &self.snapshot())
            .field("transfers", &self.transfers())
            .finish()
    }
}

impl SimPanel {
    /// A panel with both devices present and powered up at virtual time 0,
    /// 20 °C, all LEDs off and no button pressed.
    pub fn new() -> Self {
        SimPanel::default()
    }

    /// A handle on the I2C bus (clone it, or call again, for a second driver).
    pub fn i2c(&self) -> SimI2c {
        SimI2c {
            state: Arc::clone(&self.state),
        }
    }

    /// A delay that advances the virtual clock instead of sleeping.
    pub fn delay(&self) -> SimDelay {
        SimDelay {
            state: Arc::clone(&self.state),
        }
    }

    /// The LED pins in [`Led::ALL`] order, active high.
    pub fn led_pins(&self) -> [SimOutputPin; 4] {
        Led::ALL.map(|led| SimOutputPin {
            state: Arc::clone(&self.state),
            led,
        })
    }

    /// The button pins in [`Button::ALL`] order, active low.
    pub fn button_pins(&self) -> [SimInputPin; 4] {
        Button::ALL.map(|button| SimInputPin {
            state: Arc::clone(&self.state),
            button,
        })
    }

    /// The display as a person would read it: four rows of 20 characters,
    /// spaces where nothing was written, printable ASCII as is and any other
    /// character code as `?`. All blank while the display is off, which
    /// includes before it has been initialised and while it is unplugged.
    pub fn lines(&self) -> [String; 4] {
        let s = self.lock();
        if s.lcd_present {
            s.lcd.lines()
        } else {
            blank_lines()
        }
    }

    /// Everything visible at once.
    pub fn snapshot(&self) -> SimSnapshot {
        let s = self.lock();
        SimSnapshot {
            lines: if s.lcd_present {
                s.lcd.lines()
            } else {
                blank_lines()
            },
            backlight: s.lcd_present && s.lcd.port & PIN_BACKLIGHT != 0,
            leds: s.leds,
            temperature: s.sensor.ambient,
            lcd_present: s.lcd_present,
            sensor_present: s.sensor_present,
        }
    }

    /// I2C transfers attempted so far, failed ones included.
    pub fn transfers(&self) -> u64 {
        self.lock().transfers
    }

    /// Virtual time since the panel was created.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.lock().now_ns)
    }

    /// Plugs a device in or out. Plugging it back in powers it up afresh.
    pub fn set_present(&self, device: SimDevice, present: bool) {
        let mut s = self.lock();
        let now = s.now_ns;
        match device {
            SimDevice::Lcd => {
                if present && !s.lcd_present {
                    s.lcd = LcdSim::powered_on(now);
                }
                s.lcd_present = present;
            }
            SimDevice::Sensor => {
                if present && !s.sensor_present {
                    s.sensor = Lm75Sim::powered_on(s.sensor.ambient);
                }
                s.sensor_present = present;
            }
        }
    }

    /// Makes every I2C transfer fail with `ErrorKind::Bus` (or stops doing so).
    pub fn set_bus_error(&self, failing: bool) {
        self.lock().bus_error = failing;
    }

    /// Makes every LED and button pin access fail (or stops doing so).
    pub fn set_gpio_error(&self, failing: bool) {
        self.lock().gpio_error = failing;
    }

    /// Sets the temperature the sensor measures.
    pub fn set_temperature(&self, celsius: f32) {
        self.lock().sensor.set_ambient(celsius);
    }

    /// Presses `button` briefly: its pin reads pressed for the next
    /// [`PRESS_SAMPLES`] reads, then released.
    pub fn press(&self, button: Button) {
        self.lock().buttons[button.index()].press_left = PRESS_SAMPLES;
    }

    /// Holds `button` down until [`SimPanel::release`].
    pub fn hold(&self, button: Button) {
        self.lock().buttons[button.index()].held = true;
    }

    /// Lets go of a held (or briefly pressed) button.
    pub fn release(&self, button: Button) {
        let mut s = self.lock();
        let b = &mut s.buttons[button.index()];
        b.held = false;
        b.press_left = 0;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn blank_lines() -> [String; 4] {
    core::array::from_fn(|_| " ".repeat(COLS))
}

/// The simulated I2C bus; see the module docs for what answers where.
#[derive(Clone)]
pub struct SimI2c {
    state: Arc<Mutex<State>>,
}

impl i2c::ErrorType for SimI2c {
    type Error = ErrorKind;
}

impl I2c for SimI2c {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        let mut guard = lock(&self.state);
        let s = &mut *guard;
        s.transfers += 1;
        s.now_ns += I2C_BYTE_NS;
        if s.bus_error {
            return Err(ErrorKind::Bus);
        }
        let nack = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address);
        match address {
            hd44780::DEFAULT_ADDRESS if s.lcd_present => {
                for op in operations {
                    match op {
                        Operation::Write(bytes) => {
                            for &b in bytes.iter() {
                                s.now_ns += I2C_BYTE_NS;
                                s.lcd.expander_write(b, s.now_ns);
                            }
                        }
                        Operation::Read(buf) => {
                            s.now_ns += I2C_BYTE_NS * buf.len() as u64;
                            buf.fill(s.lcd.port);
                        }
                    }
                }
                Ok(())
            }
            lm75::DEFAULT_ADDRESS if s.sensor_present => {
                for op in operations {
                    match op {
                        Operation::Write(bytes) => {
                            s.now_ns += I2C_BYTE_NS * bytes.len() as u64;
                            s.sensor.write(bytes);
                        }
                        Operation::Read(buf) => {
                            s.now_ns += I2C_BYTE_NS * buf.len() as u64;
                            s.sensor.read(buf);
                        }
                    }
                }
                Ok(())
            }
            _ => Err(nack),
        }
    }
}

/// A delay that advances the simulated panel's virtual clock and returns at
/// once.
#[derive(Clone)]
pub struct SimDelay {
    state: Arc<Mutex<State>>,
}

impl DelayNs for SimDelay {
    fn delay_ns(&mut self, ns: u32) {
        lock(&self.state).now_ns += u64::from(ns);
    }
}

/// An LED pin of the simulated panel (active high).
#[derive(Clone)]
pub struct SimOutputPin {
    state: Arc<Mutex<State>>,
    led: Led,
}

impl digital::ErrorType for SimOutputPin {
    type Error = digital::ErrorKind;
}

impl SimOutputPin {
    fn drive(&mut self, high: bool) -> Result<(), digital::ErrorKind> {
        let mut s = lock(&self.state);
        if s.gpio_error {
            return Err(digital::ErrorKind::Other);
        }
        s.leds.set(self.led, high);
        Ok(())
    }
}

impl OutputPin for SimOutputPin {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        self.drive(false)
    }

    fn set_high(&mut self) -> Result<(), Self::Error> {
        self.drive(true)
    }
}

/// A button pin of the simulated panel (active low: reads low while pressed).
#[derive(Clone)]
pub struct SimInputPin {
    state: Arc<Mutex<State>>,
    button: Button,
}

impl digital::ErrorType for SimInputPin {
    type Error = digital::ErrorKind;
}

impl SimInputPin {
    /// One read of the pin: whether the button is down.
    fn pressed(&mut self) -> Result<bool, digital::ErrorKind> {
        let mut s = lock(&self.state);
        if s.gpio_error {
            return Err(digital::ErrorKind::Other);
        }
        let b = &mut s.buttons[self.button.index()];
        let pressed = b.held || b.press_left > 0;
        b.press_left = b.press_left.saturating_sub(1);
        Ok(pressed)
    }
}

impl InputPin for SimInputPin {
    fn is_high(&mut self) -> Result<bool, Self::Error> {
        self.pressed().map(|p| !p)
    }

    fn is_low(&mut self) -> Result<bool, Self::Error> {
        self.pressed()
    }
}

#[derive(Debug)]
struct State {
    now_ns: u64,
    transfers: u64,
    bus_error: bool,
    gpio_error: bool,
    lcd: LcdSim,
    lcd_present: bool,
    sensor: Lm75Sim,
    sensor_present: bool,
    leds: LedStates,
    buttons: [ButtonSim; 4],
}

impl Default for State {
    fn default() -> Self {
        State {
            now_ns: 0,
            transfers: 0,
            bus_error: false,
            gpio_error: false,
            lcd: LcdSim::powered_on(0),
            lcd_present: true,
            sensor: Lm75Sim::powered_on(20.0),
            sensor_present: true,
            leds: LedStates::default(),
            buttons: [ButtonSim::default(); 4],
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct ButtonSim {
    press_left: u32,
    held: bool,
}

/// PCF8574 expander with an HD44780 on its pins.
#[derive(Debug)]
struct LcdSim {
    /// The expander's output latch.
    port: u8,
    powered_at_ns: u64,
    busy_until_ns: u64,
    eight_bit: bool,
    /// The high nibble of a byte in 4-bit mode, with its RS.
    pending: Option<(bool, u8)>,
    display_on: bool,
    two_line: bool,
    increment: bool,
    /// Address counter.
    address: u8,
    /// Whether the address counter points into CGRAM.
    cgram_selected: bool,
    ddram: [u8; 128],
    cgram: [u8; 64],
}

impl LcdSim {
    fn powered_on(now_ns: u64) -> Self {
        LcdSim {
            port: 0xFF,
            powered_at_ns: now_ns,
            busy_until_ns: 0,
            eight_bit: true,
            pending: None,
            display_on: false,
            two_line: false,
            increment: true,
            address: 0,
            cgram_selected: false,
            ddram: [b' '; 128],
            cgram: [0; 64],
        }
    }

    fn expander_write(&mut self, byte: u8, now_ns: u64) {
        let before = self.port;
        self.port = byte;
        if before & PIN_EN != 0 && byte & PIN_EN == 0 {
            self.latch(before, now_ns);
        }
    }

    fn latch(&mut self, pins: u8, now_ns: u64) {
        if pins & PIN_RW != 0 {
            return;
        }
        if now_ns < self.powered_at_ns + LCD_POWER_ON_NS || now_ns < self.busy_until_ns {
            return;
        }
        let rs = pins & PIN_RS != 0;
        let nibble = pins >> 4;
        if self.eight_bit {
            self.execute(rs, nibble << 4, now_ns);
        } else if let Some((first_rs, high)) = self.pending.take() {
            self.execute(first_rs, (high << 4) | nibble, now_ns);
        } else {
            self.pending = Some((rs, nibble));
        }
    }

    fn execute(&mut self, rs: bool, byte: u8, now_ns: u64) {
        let mut busy = LCD_FAST_NS;
        if rs {
            if self.cgram_selected {
                self.cgram[usize::from(self.address & 0x3F)] = byte;
                self.address = (self.address + 1) & 0x3F;
            } else {
                self.ddram[usize::from(self.address & 0x7F)] = byte;
                self.step_address();
            }
        } else if byte & 0x80 != 0 {
            self.address = byte & 0x7F;
            self.cgram_selected = false;
        } else if byte & 0x40 != 0 {
            self.address = byte & 0x3F;
            self.cgram_selected = true;
        } else if byte & 0x20 != 0 {
            self.eight_bit = byte & 0x10 != 0;
            self.two_line = byte & 0x08 != 0;
            self.pending = None;
        } else if byte & 0x10 != 0 {
            // cursor or display shift: not emulated
        } else if byte & 0x08 != 0 {
            self.display_on = byte & 0x04 != 0;
        } else if byte & 0x04 != 0 {
            self.increment = byte & 0x02 != 0;
        } else if byte & 0x02 != 0 {
            self.address = 0;
            self.cgram_selected = false;
            busy = LCD_SLOW_NS;
        } else if byte & 0x01 != 0 {
            self.ddram = [b' '; 128];
            self.address = 0;
            self.cgram_selected = false;
            self.increment = true;
            busy = LCD_SLOW_NS;
        }
        self.busy_until_ns = now_ns + busy;
    }

    /// Moves the address counter one step through the DDRAM address space
    /// (two lines: 0x00..=0x27 then 0x40..=0x67; one line: 0x00..=0x4F).
    fn step_address(&mut self) {
        let a = self.address;
        self.address = match (self.two_line, self.increment) {
            (true, true) => match a {
                0x27 => 0x40,
                0x67.. => 0x00,
                _ => a + 1,
            },
            (true, false) => match a {
                0x00 => 0x67,
                0x40 => 0x27,
                _ => a - 1,
            },
            (false, true) => {
                if a >= 0x4F {
                    0
                } else {
                    a + 1
                }
            }
            (false, false) => {
                if a == 0 {
                    0x4F
                } else {
                    a - 1
                }
            }
        };
    }

    fn lines(&self) -> [String; 4] {
        if !self.display_on {
            return blank_lines();
        }
        ROW_BASES.map(|base| {
            (0..COLS)
                .map(|col| {
                    let b = self.ddram[usize::from(base) + col];
                    if (0x20..=0x7E).contains(&b) {
                        char::from(b)
                    } else {
                        '?'
                    }
                })
                .collect()
        })
    }
}

/// LM75B: pointer, temperature, configuration, hysteresis and overtemperature
/// registers.
#[derive(Debug)]
struct Lm75Sim {
    pointer: u8,
    config: u8,
    thyst: [u8; 2],
    tos: [u8; 2],
    /// What the sensor would measure.
    ambient: f32,
    /// The temperature register (frozen while shut down).
    temperature: [u8; 2],
}

impl Lm75Sim {
    fn powered_on(ambient: f32) -> Self {
        Lm75Sim {
            pointer: 0,
            config: 0,
            thyst: [0x4B, 0x00], // 75 °C
            tos: [0x50, 0x00],   // 80 °C
            ambient,
            temperature: encode_celsius(ambient),
        }
    }

    fn set_ambient(&mut self, celsius: f32) {
        self.ambient = celsius;
        if self.config & CONFIG_SHUTDOWN == 0 {
            self.temperature = encode_celsius(celsius);
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        let Some((&pointer, data)) = bytes.split_first() else {
            return;
        };
        self.pointer = pointer & 0x03;
        match (self.pointer, data) {
            (1, [config, ..]) => {
                self.config = *config;
                if self.config & CONFIG_SHUTDOWN == 0 {
                    self.temperature = encode_celsius(self.ambient);
                }
            }
            (2, [msb, lsb, ..]) => self.thyst = [*msb, *lsb],
            (3, [msb, lsb, ..]) => self.tos = [*msb, *lsb],
            _ => {}
        }
    }

    fn read(&self, buf: &mut [u8]) {
        let config = [self.config];
        let source: &[u8] = match self.pointer {
            0 => &self.temperature,
            1 => &config,
            2 => &self.thyst,
            _ => &self.tos,
        };
        for (b, s) in buf.iter_mut().zip(source.iter().cycle()) {
            *b = *s;
        }
    }
}

/// The LM75B temperature register for `celsius`: eighths of a degree, two's
/// complement, in the top 11 bits (clamped to what 11 bits can hold).
fn encode_celsius(celsius: f32) -> [u8; 2] {
    // `as` saturates and maps NaN to 0, then the clamp keeps 11 bits.
    let eighths = ((celsius * 8.0).round() as i32).clamp(-1024, 1023);
    let raw = i16::try_from(eighths * 32).unwrap_or(0);
    raw.to_be_bytes()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::lm75::celsius_from_register;

    #[test]
    fn temperature_encoding_round_trips() {
        for t in [
            0.0, 25.0, 25.5, -0.5, -0.125, -25.125, -55.0, 125.0, 127.875,
        ] {
            assert_eq!(celsius_from_register(encode_celsius(t)), t, "{t}");
        }
        assert_eq!(encode_celsius(25.0), [0x19, 0x00]);
        assert_eq!(encode_celsius(-0.5), [0xFF, 0x80]);
        assert_eq!(celsius_from_register(encode_celsius(500.0)), 127.875);
        assert_eq!(celsius_from_register(encode_celsius(-500.0)), -128.0);
        assert_eq!(celsius_from_register(encode_celsius(f32::NAN)), 0.0);
        // rounds to the nearest eighth
        assert_eq!(celsius_from_register(encode_celsius(21.3)), 21.25);
    }

    #[test]
    fn ddram_address_sequence_runs_row_0_into_row_2() {
        let mut lcd = LcdSim::powered_on(0);
        lcd.two_line = true;
        lcd.address = 0x13;
        lcd.step_address();
        assert_eq!(lcd.address, 0x14);
        lcd.address = 0x27;
        lcd.step_address();
        assert_eq!(lcd.address, 0x40);
        lcd.address = 0x67;
        lcd.step_address();
        assert_eq!(lcd.address, 0x00);
        lcd.increment = false;
        lcd.step_address();
        assert_eq!(lcd.address, 0x67);
    }

    #[test]
    fn the_expander_latches_on_the_falling_edge_only() {
        let mut lcd = LcdSim::powered_on(0);
        let t = LCD_POWER_ON_NS;
        // power-on port is 0xFF: RW high, so this falling edge is a read
        lcd.expander_write(0x08, t);
        assert!(lcd.eight_bit && lcd.pending.is_none());
        // 8-bit function set to 4-bit (0x2), rising edge does nothing
        lcd.expander_write(0x2C, t);
        assert!(lcd.eight_bit);
        lcd.expander_write(0x28, t);
        assert!(!lcd.eight_bit);
    }
}
