//! The real panel on Linux: `/dev/i2c-*` through `linux-embedded-hal`'s
//! `I2cdev` and GPIO character-device lines through its `CdevPin`. The only
//! place in this crate that knows about Linux (feature `linux`).
//!
//! Line requests use the GPIO character device's v1 interface, which cannot
//! set a bias: the buttons need pull-ups on the board (or from the device
//! tree) when `buttons_active_low` is set.

use std::io;
use std::path::{Path, PathBuf};

use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};
use linux_embedded_hal::i2cdev::linux::LinuxI2CError;
use linux_embedded_hal::{CdevPin, Delay, I2cdev};

use crate::panel::{FrontPanel, PanelConfig, PanelDevice};

/// The consumer name the GPIO lines are requested under (visible in
/// `gpioinfo`).
pub const CONSUMER: &str = "coffer-panel";

/// Where the panel is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxPanelConfig {
    /// The I2C bus the LCD backpack and the sensor are on (default
    /// `/dev/i2c-1`).
    pub i2c_bus: PathBuf,
    /// The GPIO chip the LEDs and buttons are on (default `/dev/gpiochip0`).
    pub gpio_chip: PathBuf,
    /// Line offsets of the power, activity, fault and tape LEDs. The
    /// defaults (17, 27, 22, 23) are the Raspberry Pi header pins 11, 13,
    /// 15, 16; set them for the actual board.
    pub led_lines: [u32; 4],
    /// Line offsets of the up, down, ok and back buttons. The defaults
    /// (5, 6, 13, 19) are the Raspberry Pi header pins 29, 31, 33, 35.
    pub button_lines: [u32; 4],
    /// Addresses, polarities, debouncing and retry policy.
    pub panel: PanelConfig,
}

impl Default for LinuxPanelConfig {
    fn default() -> Self {
        LinuxPanelConfig {
            i2c_bus: PathBuf::from("/dev/i2c-1"),
            gpio_chip: PathBuf::from("/dev/gpiochip0"),
            led_lines: [17, 27, 22, 23],
            button_lines: [5, 6, 13, 19],
            panel: PanelConfig::default(),
        }
    }
}

/// Opens the I2C bus (twice: one handle for the LCD, one for the sensor) and
/// requests the LED lines as outputs, initially off, and the button lines as
/// inputs, all as [`CONSUMER`].
///
/// Fails, naming the device path (and line), if the bus or the chip cannot
/// be opened or a line cannot be requested. Does not talk to the devices on
/// the bus: a missing LCD or sensor shows up as a fault on the first tick.
pub fn open(cfg: &LinuxPanelConfig) -> io::Result<Box<dyn PanelDevice>> {
    let lcd_i2c = open_i2c(&cfg.i2c_bus)?;
    let sensor_i2c = open_i2c(&cfg.i2c_bus)?;
    let mut chip = Chip::new(&cfg.gpio_chip).map_err(|e| {
        io::Error::other(format!(
            "open GPIO chip '{}' failed: {e}",
            cfg.gpio_chip.display()
        ))
    })?;
    let off = u8::from(cfg.panel.leds_active_low);
    let mut leds = Vec::with_capacity(4);
    for line in cfg.led_lines {
        leds.push(request(
            &mut chip,
            &cfg.gpio_chip,
            line,
            LineRequestFlags::OUTPUT,
            off,
        )?);
    }
    let mut buttons = Vec::with_capacity(4);
    for line in cfg.button_lines {
        buttons.push(request(
            &mut chip,
            &cfg.gpio_chip,
            line,
            LineRequestFlags::INPUT,
            0,
        )?);
    }
    let leds: [CdevPin; 4] = leds
        .try_into()
        .map_err(|_| io::Error::other("expected four LED lines"))?;
    let buttons: [CdevPin; 4] = buttons
        .try_into()
        .map_err(|_| io::Error::other("expected four button lines"))?;
    Ok(Box::new(FrontPanel::new(
        lcd_i2c, sensor_i2c, Delay, leds, buttons, cfg.panel,
    )))
}

fn open_i2c(path: &Path) -> io::Result<I2cdev> {
    I2cdev::new(path).map_err(|e| {
        let kind = match &e {
            LinuxI2CError::Io(io) => io.kind(),
            LinuxI2CError::Errno(errno) => io::Error::from_raw_os_error(*errno).kind(),
        };
        io::Error::new(
            kind,
            format!(
                "open I2C bus '{}' for the front panel failed: {e}",
                path.display()
            ),
        )
    })
}

fn request(
    chip: &mut Chip,
    chip_path: &Path,
    line: u32,
    flags: LineRequestFlags,
    value: u8,
) -> io::Result<CdevPin> {
    let what = || format!("GPIO chip '{}' line {line}", chip_path.display());
    let handle = chip
        .get_line(line)
        .and_then(|l| l.request(flags, value, CONSUMER))
        .map_err(|e| io::Error::other(format!("request {} failed: {e}", what())))?;
    CdevPin::new(handle).map_err(|e| io::Error::other(format!("set up {} failed: {e}", what())))
}
