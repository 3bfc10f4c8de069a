#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The drivers against the simulated panel: what they put on the bus must
//! come out as what a person would see.

use coffer_panel::Error;
use coffer_panel::buttons::{Button, ButtonEvent, Buttons, DebounceConfig};
use coffer_panel::hd44780::{self, Lcd};
use coffer_panel::leds::{Led, LedStates, Leds};
use coffer_panel::lm75::{self, Lm75};
use coffer_panel::sim::{PRESS_SAMPLES, SimDevice, SimPanel};
use embedded_hal::i2c::{ErrorKind, I2c, NoAcknowledgeSource};
use embedded_hal_mock::eh1::delay::NoopDelay;

const NACK: ErrorKind = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address);

fn lines(l: [&str; 4]) -> [String; 4] {
    l.map(String::from)
}

/// A row as the display shows it: 20 cells.
fn row(s: &str) -> String {
    format!("{s:<20}")
}

fn blank() -> [String; 4] {
    lines(["", "", "", ""]).map(|l| row(&l))
}

#[test]
fn draw_comes_out_as_drawn_on_all_four_rows() {
    let sim = SimPanel::new();
    let mut lcd = Lcd::new(sim.i2c(), sim.delay(), hd44780::DEFAULT_ADDRESS);
    lcd.init().unwrap();
    assert_eq!(sim.lines(), blank());
    lcd.draw(&lines([
        "Coffer 1.0",
        "pool main: 87% full",
        "job 3/5 writing T004",
        "a line that is far too long for the display",
    ]))
    .unwrap();
    assert_eq!(
        sim.lines(),
        [
            row("Coffer 1.0"),
            row("pool main: 87% full"),
            "job 3/5 writing T004".to_string(),
            "a line that is far t".to_string(),
        ]
    );
    // only row 2 changes
    lcd.draw(&lines([
        "Coffer 1.0",
        "pool main: 87% full",
        "job 4/5 writing T005",
        "a line that is far too long for the display",
    ]))
    .unwrap();
    assert_eq!(sim.lines()[2], "job 4/5 writing T005");
    assert_eq!(sim.lines()[3], "a line that is far t");
    // non-ASCII shows as '?'
    lcd.draw(&lines(["", "", "", "41°C"])).unwrap();
    assert_eq!(sim.lines(), [row(""), row(""), row(""), row("41?C")]);
}

#[test]
fn set_cursor_and_write_str_on_rows_2_and_3() {
    let sim = SimPanel::new();
    let mut lcd = Lcd::new(sim.i2c(), sim.delay(), hd44780::DEFAULT_ADDRESS);
    lcd.init().unwrap();
    lcd.set_cursor(2, 5).unwrap();
    lcd.write_str("two").unwrap();
    lcd.set_cursor(3, 17).unwrap();
    lcd.write_str("end").unwrap();
    lcd.set_cursor(1, 0).unwrap();
    lcd.write_str("one").unwrap();
    assert_eq!(
        sim.lines(),
        [
            row(""),
            row("one"),
            row("     two"),
            row("                 end")
        ]
    );
}

#[test]
fn text_past_column_19_runs_on_the_way_the_controller_addresses_it() {
    let sim = SimPanel::new();
    let mut lcd = Lcd::new(sim.i2c(), sim.delay(), hd44780::DEFAULT_ADDRESS);
    lcd.init().unwrap();
    lcd.set_cursor(0, 18).unwrap();
    lcd.write_str("abcd").unwrap();
    // row 0 continues on row 2 (DDRAM 0x13 -> 0x14)
    assert_eq!(sim.lines()[0], row("                  ab"));
    assert_eq!(sim.lines()[2], row("cd"));
}

#[test]
fn clear_blanks_the_display() {
    let sim = SimPanel::new();
    let mut lcd = Lcd::new(sim.i2c(), sim.delay(), hd44780::DEFAULT_ADDRESS);
    lcd.init().unwrap();
    lcd.draw(&lines(["a", "b", "c", "d"])).unwrap();
    lcd.clear().unwrap();
    assert_eq!(sim.lines(), blank());
    // after clear the driver rewrites everything, so the screen comes back
    lcd.draw(&lines(["a", "b", "c", "d"])).unwrap();
    assert_eq!(sim.lines(), lines(["a", "b", "c", "d"]).map(|l| row(&l)));
}

#[test]
fn the_emulator_enforces_the_power_on_wait_and_the_clear_wait() {
    // a delay that does not advance the virtual clock: init happens within
    // the controller's 40 ms power-on reset and is lost
    let sim = SimPanel::new();
    let mut lcd = Lcd::new(sim.i2c(), NoopDelay::new(), hd44780::DEFAULT_ADDRESS);
    lcd.init().unwrap();
    lcd.write_str("hello").unwrap();
    assert_eq!(sim.lines(), blank());

    // initialised properly, then a clear without its 1.52 ms wait: the
    // characters that follow arrive while the controller is busy
    let sim = SimPanel::new();
    let mut lcd = Lcd::new(sim.i2c(), sim.delay(), hd44780::DEFAULT_ADDRESS);
    lcd.init().unwrap();
    let (i2c, _) = lcd.destroy();
    let mut lcd = Lcd::new(i2c, NoopDelay::new(), hd44780::DEFAULT_ADDRESS);
    lcd.clear().unwrap();
    lcd.write_str("hello").unwrap();
    assert_ne!(sim.lines()[0], row("hello"));
}

#[test]
fn init_waits_at_least_the_datasheet_times() {
    let sim = SimPanel::new();
    let mut lcd = Lcd::new(sim.i2c(), sim.delay(), hd44780::DEFAULT_ADDRESS);
    lcd.init().unwrap();
    // 50 ms + 4.5 ms + 150 us + 2 ms of waits, plus the bus time
    assert!(sim.elapsed().as_micros() > 56_650, "{:?}", sim.elapsed());
}

#[test]
fn backlight_follows_p3() {
    let sim = SimPanel::new();
    let mut lcd = Lcd::new(sim.i2c(), sim.delay(), hd44780::DEFAULT_ADDRESS);
    lcd.init().unwrap();
    assert!(sim.snapshot().backlight);
    lcd.set_backlight(false).unwrap();
    assert!(!sim.snapshot().backlight);
    lcd.draw(&lines(["dark", "", "", ""])).unwrap();
    assert!(!sim.snapshot().backlight);
    assert_eq!(sim.lines()[0], row("dark"));
    lcd.set_backlight(true).unwrap();
    assert!(sim.snapshot().backlight);
}

#[test]
fn reinit_recovers_a_display_left_half_way_through_a_byte() {
    let sim = SimPanel::new();
    let mut i2c = sim.i2c();
    let mut lcd = Lcd::new(sim.i2c(), sim.delay(), hd44780::DEFAULT_ADDRESS);
    lcd.init().unwrap();
    // one stray nibble (as if a transfer died mid-byte)
    i2c.write(hd44780::DEFAULT_ADDRESS, &[0x48, 0x4C, 0x48])
        .unwrap();
    lcd.init().unwrap();
    lcd.draw(&lines(["in sync", "", "", ""])).unwrap();
    assert_eq!(sim.lines()[0], row("in sync"));
}

#[test]
fn unplugging_the_lcd_nacks_and_replugging_powers_it_up_blank() {
    let sim = SimPanel::new();
    let mut lcd = Lcd::new(sim.i2c(), sim.delay(), hd44780::DEFAULT_ADDRESS);
    lcd.init().unwrap();
    lcd.draw(&lines(["up", "", "", ""])).unwrap();
    sim.set_present(SimDevice::Lcd, false);
    assert!(matches!(
        lcd.draw(&lines(["x", "", "", ""])),
        Err(Error::Bus(NACK))
    ));
    assert_eq!(sim.lines(), blank());
    assert!(!sim.snapshot().lcd_present);
    sim.set_present(SimDevice::Lcd, true);
    assert_eq!(sim.lines(), blank(), "powered up afresh: display off");
    lcd.init().unwrap();
    lcd.draw(&lines(["back", "", "", ""])).unwrap();
    assert_eq!(sim.lines()[0], row("back"));
}

#[test]
fn lm75_reads_the_set_temperature() {
    let sim = SimPanel::new();
    let mut sensor = Lm75::new(sim.i2c(), lm75::DEFAULT_ADDRESS);
    assert_eq!(sensor.read_celsius().unwrap(), 20.0);
    for t in [23.5, -10.25, -0.125, 0.0, 85.0, -40.0] {
        sim.set_temperature(t);
        assert_eq!(sensor.read_celsius().unwrap(), t);
        assert_eq!(sim.snapshot().temperature, t);
    }
    sim.set_temperature(21.3);
    assert_eq!(sensor.read_celsius().unwrap(), 21.25, "11-bit resolution");
}

#[test]
fn lm75_shutdown_freezes_the_reading() {
    let sim = SimPanel::new();
    let mut sensor = Lm75::new(sim.i2c(), lm75::DEFAULT_ADDRESS);
    sim.set_temperature(30.0);
    sensor.shutdown(true).unwrap();
    sim.set_temperature(35.0);
    assert_eq!(sensor.read_celsius().unwrap(), 30.0);
    sensor.shutdown(false).unwrap();
    assert_eq!(sensor.read_celsius().unwrap(), 35.0);
}

#[test]
fn absent_devices_and_unknown_addresses_nack() {
    let sim = SimPanel::new();
    let mut sensor = Lm75::new(sim.i2c(), lm75::DEFAULT_ADDRESS);
    sim.set_present(SimDevice::Sensor, false);
    assert!(matches!(sensor.read_celsius(), Err(Error::Bus(NACK))));
    sim.set_present(SimDevice::Sensor, true);
    sim.set_temperature(-5.5);
    assert_eq!(sensor.read_celsius().unwrap(), -5.5);

    let mut elsewhere = Lm75::new(sim.i2c(), 0x49);
    let err = elsewhere.read_celsius().unwrap_err();
    assert!(matches!(err, Error::Bus(NACK)));
    assert_eq!(
        err.to_string(),
        "bus transfer failed: NoAcknowledge(Address)"
    );
}

#[test]
fn a_bus_error_fails_every_transfer_and_reaches_no_device() {
    let sim = SimPanel::new();
    let mut lcd = Lcd::new(sim.i2c(), sim.delay(), hd44780::DEFAULT_ADDRESS);
    let mut sensor = Lm75::new(sim.i2c(), lm75::DEFAULT_ADDRESS);
    lcd.init().unwrap();
    sim.set_bus_error(true);
    assert!(matches!(
        lcd.draw(&lines(["x", "", "", ""])),
        Err(Error::Bus(ErrorKind::Bus))
    ));
    assert!(matches!(
        sensor.read_celsius(),
        Err(Error::Bus(ErrorKind::Bus))
    ));
    assert_eq!(sim.lines(), blank());
    sim.set_bus_error(false);
    lcd.draw(&lines(["x", "", "", ""])).unwrap();
    assert_eq!(sim.lines()[0], row("x"));
}

#[test]
fn transfers_are_counted_one_per_transaction() {
    let sim = SimPanel::new();
    let mut sensor = Lm75::new(sim.i2c(), lm75::DEFAULT_ADDRESS);
    assert_eq!(sim.transfers(), 0);
    sensor.read_celsius().unwrap(); // one write_read
    assert_eq!(sim.transfers(), 1);
    sensor.shutdown(true).unwrap(); // write_read + write
    assert_eq!(sim.transfers(), 3);
    sim.set_present(SimDevice::Sensor, false);
    assert!(sensor.read_celsius().is_err()); // failed ones count too
    assert_eq!(sim.transfers(), 4);

    let mut lcd = Lcd::new(sim.i2c(), sim.delay(), hd44780::DEFAULT_ADDRESS);
    lcd.init().unwrap();
    // idle byte + 4 nibbles + 4 commands of 2 nibbles
    assert_eq!(sim.transfers(), 4 + 13);
    lcd.draw(&lines(["a", "b", "c", "d"])).unwrap();
    // 4 rows of (address + 20 characters) * 2 nibbles
    assert_eq!(sim.transfers(), 17 + 4 * 42);
    lcd.draw(&lines(["a", "b", "c", "d"])).unwrap();
    assert_eq!(sim.transfers(), 17 + 4 * 42, "unchanged screen: no traffic");
}

#[test]
fn leds_driver_lights_the_sim_leds() {
    let sim = SimPanel::new();
    let mut leds = Leds::new(sim.led_pins(), false);
    let mut want = LedStates::default();
    want.set(Led::Power, true);
    want.set(Led::Tape, true);
    leds.apply(want).unwrap();
    assert_eq!(sim.snapshot().leds, want);
    leds.set(Led::Tape, false).unwrap();
    assert!(!sim.snapshot().leds.tape);

    sim.set_gpio_error(true);
    assert!(leds.set(Led::Fault, true).is_err());
    sim.set_gpio_error(false);
    leds.apply(want).unwrap();
    assert_eq!(sim.snapshot().leds, want);
}

#[test]
fn a_sim_press_is_one_debounced_press() {
    assert!(PRESS_SAMPLES > DebounceConfig::default().stable_samples);
    let sim = SimPanel::new();
    let mut buttons = Buttons::new(sim.button_pins(), true, DebounceConfig::default());
    sim.press(Button::Ok);
    let events: Vec<_> = (0..20).flat_map(|_| buttons.poll().unwrap()).collect();
    assert_eq!(events, [ButtonEvent::Pressed(Button::Ok)]);
    // and another one later
    sim.press(Button::Down);
    let events: Vec<_> = (0..20).flat_map(|_| buttons.poll().unwrap()).collect();
    assert_eq!(events, [ButtonEvent::Pressed(Button::Down)]);
}

#[test]
fn hold_and_release_make_a_stuck_button() {
    let sim = SimPanel::new();
    let cfg = DebounceConfig {
        stable_samples: 3,
        stuck_samples: 50,
    };
    let mut buttons = Buttons::new(sim.button_pins(), true, cfg);
    sim.hold(Button::Back);
    let polls: Vec<_> = (0..60).map(|_| buttons.poll().unwrap()).collect();
    assert_eq!(polls[2], [ButtonEvent::Pressed(Button::Back)]);
    assert_eq!(polls[49], [ButtonEvent::Stuck(Button::Back)]);
    assert_eq!(polls.iter().filter(|p| !p.is_empty()).count(), 2);
    sim.release(Button::Back);
    let polls: Vec<_> = (0..5).map(|_| buttons.poll().unwrap()).collect();
    assert_eq!(polls[2], [ButtonEvent::Unstuck(Button::Back)]);
    assert_eq!(polls.iter().filter(|p| !p.is_empty()).count(), 1);
}

#[test]
fn snapshot_shows_everything() {
    let sim = SimPanel::new();
    let snap = sim.snapshot();
    assert_eq!(snap.lines, blank());
    assert!(snap.lcd_present && snap.sensor_present);
    assert_eq!(snap.leds, LedStates::default());
    assert_eq!(snap.temperature, 20.0);
    // a clone is a handle on the same panel
    let other = sim.clone();
    other.set_present(SimDevice::Sensor, false);
    assert!(!sim.snapshot().sensor_present);
}
