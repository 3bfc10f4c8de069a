//! The whole front panel as the daemon drives it: one [`PanelDevice::tick`]
//! per poll interval (20 ms on the appliance) shows four lines and the LED
//! states, and returns the debounced button presses, the temperature and
//! the current set of faults.
//!
//! # Fault handling and retries
//!
//! `tick` never panics, never sleeps except for the LCD's own power-on waits
//! during (re-)initialisation (about 57 ms), and never retries within a
//! tick. Each device is handled on its own, so a dead LCD does not stop
//! the buttons:
//!
//! | device | healthy | after an error |
//! |---|---|---|
//! | LCD | initialised on the first tick, then drawn every tick (only changed rows go on the bus) | [`Fault`] with the bus error; re-initialised and redrawn every `retry_every` ticks, no bus traffic in between |
//! | sensor | read on the first tick, then every `sensor_every` ticks; [`Tick::temperature`] keeps the last reading | fault, temperature `None`; read again every `retry_every` ticks |
//! | LEDs | applied every tick (only changed pins written) | fault; all four pins rewritten every `retry_every` ticks |
//! | buttons | all four pins read every tick | a fault on **each** of the four `Button(_)` components (the driver reports one error for the whole poll, so no single button can be blamed); polled again every `retry_every` ticks |
//! | a stuck button | — | fault on that `Button(_)` from the `Stuck` event until `Unstuck` |
//!
//! A device's fault disappears from [`Tick::faults`] on the first tick it
//! works again. `retry_every` and `sensor_every` of 0 count as 1.

use std::collections::BTreeSet;

use embedded_hal::delay::DelayNs;
use embedded_hal::digital::{InputPin, OutputPin};
use embedded_hal::i2c::I2c;

use crate::buttons::{Button, ButtonEvent, Buttons, DebounceConfig};
use crate::hd44780::{self, Lcd};
use crate::leds::{LedStates, Leds};
use crate::lm75::{self, Lm75};
use crate::sim::{SimDelay, SimI2c, SimInputPin, SimOutputPin, SimPanel};

/// A front panel, real or simulated, as the daemon sees it.
pub trait PanelDevice: Send {
    /// Shows `lines` and `leds`, reads the buttons (and, when due, the
    /// temperature) and reports. Call it at the button poll rate.
    fn tick(&mut self, lines: &[String; 4], leds: LedStates) -> Tick;
}

/// What one tick found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tick {
    /// Debounced button presses, in [`Button::ALL`] order.
    pub events: Vec<Button>,
    /// The latest temperature reading in °C; `None` while the sensor is
    /// faulted (or before the first reading).
    pub temperature: Option<f32>,
    /// The faults present now, sorted by component.
    pub faults: Vec<Fault>,
}

/// Something wrong with one part of the panel.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fault {
    /// Which part.
    pub component: Component,
    /// What is wrong, for the operator (includes the bus error).
    pub message: String,
}

impl core::fmt::Display for Fault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.component, self.message)
    }
}

/// A part of the panel that can be faulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    /// The LCD.
    Lcd,
    /// The temperature sensor.
    Sensor,
    /// The status LEDs.
    Leds,
    /// One button.
    Button(Button),
}

impl Component {
    /// `lcd`, `sensor`, `leds`, `button-up`, `button-down`, `button-ok`,
    /// `button-back`.
    pub fn name(self) -> &'static str {
        match self {
            Component::Lcd => "lcd",
            Component::Sensor => "sensor",
            Component::Leds => "leds",
            Component::Button(Button::Up) => "button-up",
            Component::Button(Button::Down) => "button-down",
            Component::Button(Button::Ok) => "button-ok",
            Component::Button(Button::Back) => "button-back",
        }
    }
}

impl core::fmt::Display for Component {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// How the panel is wired and how patient it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PanelConfig {
    /// I2C address of the LCD backpack (default `0x27`).
    pub lcd_address: u8,
    /// I2C address of the temperature sensor (default `0x48`).
    pub sensor_address: u8,
    /// LEDs lit by driving their pin low (default `false`).
    pub leds_active_low: bool,
    /// Buttons read low when pressed (default `true`: pull-ups, switch to
    /// ground).
    pub buttons_active_low: bool,
    /// Button debouncing.
    pub debounce: DebounceConfig,
    /// Ticks between retries of a faulted device (default 250, 5 s at 20 ms).
    pub retry_every: u32,
    /// Ticks between temperature readings (default 50, 1 s at 20 ms).
    pub sensor_every: u32,
}

impl Default for PanelConfig {
    fn default() -> Self {
        PanelConfig {
            lcd_address: hd44780::DEFAULT_ADDRESS,
            sensor_address: lm75::DEFAULT_ADDRESS,
            leds_active_low: false,
            buttons_active_low: true,
            debounce: DebounceConfig::default(),
            retry_every: 250,
            sensor_every: 50,
        }
    }
}

/// When a device is next due and what is wrong with it.
#[derive(Debug, Default)]
struct Health {
    fault: Option<String>,
    next_at: u64,
}

impl Health {
    fn due(&self, tick: u64) -> bool {
        tick >= self.next_at
    }

    fn ok(&mut self, tick: u64, every: u32) {
        self.fault = None;
        self.next_at = tick.saturating_add(u64::from(every.max(1)));
    }

    fn failed(&mut self, tick: u64, retry_every: u32, message: String) {
        self.fault = Some(message);
        self.next_at = tick.saturating_add(u64::from(retry_every.max(1)));
    }
}

/// The front panel: LCD, temperature sensor, LEDs and buttons, each on its
/// `embedded-hal` driver, with the fault handling described in the module
/// docs.
pub struct FrontPanel<I2C, D, O, I> {
    lcd: Lcd<I2C, D>,
    sensor: Lm75<I2C>,
    leds: Leds<O>,
    buttons: Buttons<I>,
    cfg: PanelConfig,
    ticks: u64,
    lcd_ready: bool,
    lcd_health: Health,
    sensor_health: Health,
    temperature: Option<f32>,
    leds_health: Health,
    buttons_health: Health,
    stuck: BTreeSet<Button>,
}

impl<I2C, D, O, I> FrontPanel<I2C, D, O, I>
where
    I2C: I2c,
    D: DelayNs,
    O: OutputPin,
    I: InputPin,
{
    /// A panel over its buses and pins: the LCD and the sensor each get their
    /// own I2C handle (they may be two handles on the same bus), LED pins in
    /// [`crate::leds::Led::ALL`] order, button pins in [`Button::ALL`] order.
    /// Touches nothing; the first [`PanelDevice::tick`] initialises.
    pub fn new(
        lcd_i2c: I2C,
        sensor_i2c: I2C,
        delay: D,
        leds: [O; 4],
        buttons: [I; 4],
        cfg: PanelConfig,
    ) -> Self {
        FrontPanel {
            lcd: Lcd::new(lcd_i2c, delay, cfg.lcd_address),
            sensor: Lm75::new(sensor_i2c, cfg.sensor_address),
            leds: Leds::new(leds, cfg.leds_active_low),
            buttons: Buttons::new(buttons, cfg.buttons_active_low, cfg.debounce),
            cfg,
            ticks: 0,
            lcd_ready: false,
            lcd_health: Health::default(),
            sensor_health: Health::default(),
            temperature: None,
            leds_health: Health::default(),
            buttons_health: Health::default(),
            stuck: BTreeSet::new(),
        }
    }

    /// The configuration the panel was built with.
    pub fn config(&self) -> &PanelConfig {
        &self.cfg
    }

    /// Gives back the LCD bus, the sensor bus, the delay, the LED pins and
    /// the button pins.
    #[allow(clippy::type_complexity)]
    pub fn destroy(self) -> (I2C, I2C, D, [O; 4], [I; 4]) {
        let (lcd_i2c, delay) = self.lcd.destroy();
        (
            lcd_i2c,
            self.sensor.destroy(),
            delay,
            self.leds.destroy(),
            self.buttons.destroy(),
        )
    }

    fn run(&mut self, lines: &[String; 4], leds: LedStates) -> Tick {
        let t = self.ticks;
        self.ticks = self.ticks.wrapping_add(1);
        let retry = self.cfg.retry_every;

        let mut events = Vec::new();
        if self.buttons_health.due(t) {
            match self.buttons.poll() {
                Ok(polled) => {
                    self.buttons_health.ok(t, 1);
                    for event in polled {
                        match event {
                            ButtonEvent::Pressed(b) => events.push(b),
                            ButtonEvent::Stuck(b) => {
                                self.stuck.insert(b);
                            }
                            ButtonEvent::Unstuck(b) => {
                                self.stuck.remove(&b);
                            }
                        }
                    }
                }
                Err(e) => self.buttons_health.failed(
                    t,
                    retry,
                    format!("reading the button pins failed: {e}"),
                ),
            }
        }

        if !self.lcd_ready && self.lcd_health.due(t) {
            match self.lcd.init() {
                Ok(()) => self.lcd_ready = true,
                Err(e) => self.lcd_health.failed(
                    t,
                    retry,
                    format!(
                        "LCD at {:#04x} did not initialise: {e}",
                        self.cfg.lcd_address
                    ),
                ),
            }
        }
        if self.lcd_ready {
            match self.lcd.draw(lines) {
                Ok(()) => self.lcd_health.ok(t, 1),
                Err(e) => {
                    self.lcd_ready = false;
                    self.lcd_health.failed(
                        t,
                        retry,
                        format!(
                            "writing to the LCD at {:#04x} failed: {e}",
                            self.cfg.lcd_address
                        ),
                    );
                }
            }
        }

        if self.leds_health.due(t) {
            match self.leds.apply(leds) {
                Ok(()) => self.leds_health.ok(t, 1),
                Err(e) => {
                    self.leds_health
                        .failed(t, retry, format!("setting the LED pins failed: {e}"))
                }
            }
        }

        if self.sensor_health.due(t) {
            match self.sensor.read_celsius() {
                Ok(celsius) => {
                    self.temperature = Some(celsius);
                    self.sensor_health.ok(t, self.cfg.sensor_every);
                }
                Err(e) => {
                    self.temperature = None;
                    self.sensor_health.failed(
                        t,
                        retry,
                        format!(
                            "reading the temperature sensor at {:#04x} failed: {e}",
                            self.cfg.sensor_address
                        ),
                    );
                }
            }
        }

        Tick {
            events,
            temperature: self.temperature,
            faults: self.faults(),
        }
    }

    fn faults(&self) -> Vec<Fault> {
        let mut faults = Vec::new();
        let mut add = |component, message: &Option<String>| {
            if let Some(message) = message {
                faults.push(Fault {
                    component,
                    message: message.clone(),
                });
            }
        };
        add(Component::Lcd, &self.lcd_health.fault);
        add(Component::Sensor, &self.sensor_health.fault);
        add(Component::Leds, &self.leds_health.fault);
        for button in Button::ALL {
            if self.buttons_health.fault.is_some() {
                add(Component::Button(button), &self.buttons_health.fault);
            } else if self.stuck.contains(&button) {
                add(
                    Component::Button(button),
                    &Some(format!(
                        "button '{button}' has been held down for {} polls: stuck?",
                        self.cfg.debounce.stuck_samples
                    )),
                );
            }
        }
        faults.sort();
        faults
    }
}

impl<I2C, D, O, I> PanelDevice for FrontPanel<I2C, D, O, I>
where
    I2C: I2c + Send,
    D: DelayNs + Send,
    O: OutputPin + Send,
    I: InputPin + Send,
{
    fn tick(&mut self, lines: &[String; 4], leds: LedStates) -> Tick {
        self.run(lines, leds)
    }
}

/// A [`FrontPanel`] over a [`SimPanel`]'s bus and pins. The simulated
/// devices answer at the default addresses, its LEDs are active high and its
/// buttons active low, which is what [`PanelConfig::default`] expects.
pub fn simulated(
    sim: &SimPanel,
    cfg: PanelConfig,
) -> FrontPanel<SimI2c, SimDelay, SimOutputPin, SimInputPin> {
    FrontPanel::new(
        sim.i2c(),
        sim.i2c(),
        sim.delay(),
        sim.led_pins(),
        sim.button_pins(),
        cfg,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn component_names_and_order() {
        let mut all = [
            Component::Button(Button::Back),
            Component::Leds,
            Component::Button(Button::Up),
            Component::Sensor,
            Component::Lcd,
        ];
        all.sort();
        let names: Vec<_> = all.iter().map(|c| c.name()).collect();
        assert_eq!(names, ["lcd", "sensor", "leds", "button-up", "button-back"]);
        assert_eq!(Component::Button(Button::Ok).to_string(), "button-ok");
        assert_eq!(Component::Button(Button::Down).name(), "button-down");
    }

    #[test]
    fn defaults() {
        let cfg = PanelConfig::default();
        assert_eq!((cfg.lcd_address, cfg.sensor_address), (0x27, 0x48));
        assert_eq!((cfg.retry_every, cfg.sensor_every), (250, 50));
        assert!(!cfg.leds_active_low && cfg.buttons_active_low);
        assert_eq!(cfg.debounce.stable_samples, 3);
        assert_eq!(cfg.debounce.stuck_samples, 500);
    }

    #[test]
    fn panels_are_send() {
        fn is_send<T: Send>() {}
        is_send::<FrontPanel<SimI2c, SimDelay, SimOutputPin, SimInputPin>>();
        is_send::<Box<dyn PanelDevice>>();
    }
}
