//! The appliance front panel: a 20x4 character LCD (HD44780 behind a PCF8574
//! I2C backpack, 4-bit mode), an LM75-class I2C temperature sensor, four
//! status LEDs and four buttons.
//!
//! # How it fits
//!
//! * **Drivers** — [`hd44780`], [`lm75`], [`leds`], [`buttons`] — depend on
//!   `embedded-hal` 1.0 alone: each is generic over the bus or pin type,
//!   returns [`Error`] wrapping the bus error, hands its bus back on
//!   `destroy()`, and is unit-tested against exact bus transactions with
//!   `embedded-hal-mock`.
//! * **[`panel`]** composes them into [`FrontPanel`], the [`PanelDevice`] the
//!   daemon ticks: show four lines and the LEDs, get back debounced button
//!   presses, the temperature and a set of [`Fault`]s. It never panics and
//!   retries a failed device on a schedule, not in a loop.
//! * **[`sim`]** is a simulated panel behind the same `embedded-hal` traits
//!   (I2C bus with a PCF8574+HD44780 and an LM75 emulator, LED and button
//!   pins), so the very same drivers run on machines without a panel, and
//!   tests can unplug devices and break the bus. [`panel::simulated`] builds
//!   a `FrontPanel` on it.
//! * **`linux`** (feature `linux`) opens the real thing through
//!   `linux-embedded-hal`; it is the only Linux-specific code.
//!
//! Wiring, byte sequences, debouncing and the retry policy are described in
//! `docs/panel.md`.
//!
//! **Architecture invariant:** nothing outside `linux` knows about Linux, and
//! no driver knows about threads, clocks or the daemon.

pub mod buttons;
mod error;
pub mod hd44780;
pub mod leds;
#[cfg(feature = "linux")]
pub mod linux;
pub mod lm75;
pub mod panel;
pub mod sim;

pub use buttons::{Button, ButtonEvent, Buttons, DebounceConfig};
pub use error::Error;
pub use hd44780::Lcd;
pub use leds::{Led, LedStates, Leds};
pub use lm75::Lm75;
pub use panel::{Component, Fault, FrontPanel, PanelConfig, PanelDevice, Tick, simulated};
pub use sim::{SimDevice, SimPanel, SimSnapshot};
