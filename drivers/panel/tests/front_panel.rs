#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Whole-panel scenarios: `FrontPanel` over the simulated panel, with
//! devices unplugged, buses failing and buttons pressed and stuck.

use coffer_panel::buttons::{Button, DebounceConfig};
use coffer_panel::leds::LedStates;
use coffer_panel::panel::{Component, PanelConfig, PanelDevice, Tick, simulated};
use coffer_panel::sim::{SimDevice, SimPanel};

fn screen(l: [&str; 4]) -> [String; 4] {
    l.map(String::from)
}

fn row(s: &str) -> String {
    format!("{s:<20}")
}

fn shown(l: [&str; 4]) -> [String; 4] {
    l.map(row)
}

fn components(tick: &Tick) -> Vec<Component> {
    tick.faults.iter().map(|f| f.component).collect()
}

const BUTTONS: [Component; 4] = [
    Component::Button(Button::Up),
    Component::Button(Button::Down),
    Component::Button(Button::Ok),
    Component::Button(Button::Back),
];

fn cfg(retry_every: u32, sensor_every: u32) -> PanelConfig {
    PanelConfig {
        retry_every,
        sensor_every,
        ..PanelConfig::default()
    }
}

#[test]
fn a_healthy_panel_shows_lines_and_leds_and_reads_the_temperature() {
    let sim = SimPanel::new();
    sim.set_temperature(31.5);
    let mut panel = simulated(&sim, PanelConfig::default());
    let leds = LedStates {
        power: true,
        activity: true,
        ..LedStates::default()
    };
    let lines = screen(["Coffer", "idle", "", "31.5 C"]);
    let tick = panel.tick(&lines, leds);
    assert_eq!(
        tick,
        Tick {
            events: vec![],
            temperature: Some(31.5),
            faults: vec![],
        }
    );
    let snap = sim.snapshot();
    assert_eq!(snap.lines, shown(["Coffer", "idle", "", "31.5 C"]));
    assert_eq!(snap.leds, leds);
    assert!(snap.backlight);
}

#[test]
fn an_unchanged_screen_costs_no_bus_traffic() {
    let sim = SimPanel::new();
    let mut panel = simulated(&sim, cfg(250, 1000));
    let lines = screen(["a", "b", "c", "d"]);
    panel.tick(&lines, LedStates::default());
    let after_first = sim.transfers();
    for _ in 0..100 {
        panel.tick(&lines, LedStates::default());
    }
    assert_eq!(sim.transfers(), after_first);
    // one changed row: set address + 20 characters, two nibbles each
    panel.tick(&screen(["a", "B", "c", "d"]), LedStates::default());
    assert_eq!(sim.transfers(), after_first + 42);
    assert_eq!(sim.lines()[1], row("B"));
}

#[test]
fn the_temperature_is_read_every_sensor_every_ticks() {
    let sim = SimPanel::new();
    let mut panel = simulated(&sim, cfg(250, 10));
    let lines = screen(["", "", "", ""]);
    assert_eq!(
        panel.tick(&lines, LedStates::default()).temperature,
        Some(20.0)
    );
    sim.set_temperature(-12.5);
    for _ in 1..10 {
        assert_eq!(
            panel.tick(&lines, LedStates::default()).temperature,
            Some(20.0)
        );
    }
    // tick 10
    assert_eq!(
        panel.tick(&lines, LedStates::default()).temperature,
        Some(-12.5)
    );
}

#[test]
fn an_absent_lcd_is_a_fault_retried_only_every_retry_every_ticks() {
    let sim = SimPanel::new();
    sim.set_present(SimDevice::Lcd, false);
    // the sensor is read once, at tick 0, and not again during the test
    let mut panel = simulated(&sim, cfg(10, 1_000_000));
    let lines = screen(["Coffer", "up again", "", ""]);

    let tick = panel.tick(&lines, LedStates::default());
    assert_eq!(components(&tick), [Component::Lcd]);
    let message = &tick.faults[0].message;
    assert!(message.contains("0x27"), "{message}");
    assert!(message.contains("NoAcknowledge(Address)"), "{message}");
    assert_eq!(tick.temperature, Some(20.0), "the sensor still works");
    // init stopped at its first transfer, plus the sensor read
    assert_eq!(sim.transfers(), 2);

    for _ in 1..10 {
        let tick = panel.tick(&lines, LedStates::default());
        assert_eq!(components(&tick), [Component::Lcd]);
    }
    assert_eq!(sim.transfers(), 2, "no bus traffic between retries");

    // tick 10: one more attempt, still absent
    let tick = panel.tick(&lines, LedStates::default());
    assert_eq!(components(&tick), [Component::Lcd]);
    assert_eq!(sim.transfers(), 3);

    sim.set_present(SimDevice::Lcd, true);
    for _ in 11..20 {
        let tick = panel.tick(&lines, LedStates::default());
        assert_eq!(components(&tick), [Component::Lcd]);
    }
    assert_eq!(sim.transfers(), 3);
    assert_eq!(sim.lines(), shown(["", "", "", ""]));

    // tick 20: initialised and drawn
    let tick = panel.tick(&lines, LedStates::default());
    assert_eq!(tick.faults, []);
    assert_eq!(sim.lines(), shown(["Coffer", "up again", "", ""]));
}

#[test]
fn an_lcd_unplugged_while_running_is_reinitialised_when_it_comes_back() {
    let sim = SimPanel::new();
    let mut panel = simulated(&sim, cfg(5, 1_000_000));
    panel.tick(&screen(["before", "", "", ""]), LedStates::default());
    assert_eq!(sim.lines()[0], row("before"));

    sim.set_present(SimDevice::Lcd, false);
    // tick 1: the draw fails
    let tick = panel.tick(&screen(["during", "", "", ""]), LedStates::default());
    assert_eq!(components(&tick), [Component::Lcd]);
    assert!(
        tick.faults[0]
            .message
            .starts_with("writing to the LCD at 0x27 failed")
    );
    sim.set_present(SimDevice::Lcd, true);
    for _ in 2..6 {
        panel.tick(&screen(["during", "", "", ""]), LedStates::default());
    }
    // the LCD came back powered off: nothing until the retry at tick 6
    assert_eq!(sim.lines(), shown(["", "", "", ""]));
    let tick = panel.tick(&screen(["after", "", "", ""]), LedStates::default());
    assert_eq!(tick.faults, []);
    assert_eq!(sim.lines()[0], row("after"));
}

#[test]
fn a_sensor_that_nacks_has_no_temperature_and_a_fault_until_it_answers() {
    let sim = SimPanel::new();
    sim.set_present(SimDevice::Sensor, false);
    let mut panel = simulated(&sim, cfg(4, 2));
    let lines = screen(["", "", "", ""]);
    for _ in 0..4 {
        let tick = panel.tick(&lines, LedStates::default());
        assert_eq!(tick.temperature, None);
        assert_eq!(components(&tick), [Component::Sensor]);
        assert!(tick.faults[0].message.contains("0x48"), "{:?}", tick.faults);
    }
    sim.set_present(SimDevice::Sensor, true);
    sim.set_temperature(-3.25);
    // tick 4 is the retry
    let tick = panel.tick(&lines, LedStates::default());
    assert_eq!(tick.temperature, Some(-3.25));
    assert_eq!(tick.faults, []);

    // it goes away again: the next scheduled read (tick 6) notices
    sim.set_present(SimDevice::Sensor, false);
    assert_eq!(
        panel.tick(&lines, LedStates::default()).temperature,
        Some(-3.25)
    );
    let tick = panel.tick(&lines, LedStates::default());
    assert_eq!(tick.temperature, None);
    assert_eq!(components(&tick), [Component::Sensor]);
}

#[test]
fn everything_failing_is_a_set_of_faults_not_a_panic() {
    let sim = SimPanel::new();
    sim.set_bus_error(true);
    sim.set_gpio_error(true);
    let mut panel = simulated(&sim, cfg(3, 1));
    let lines = screen(["x", "", "", ""]);
    let mut all = vec![Component::Lcd, Component::Sensor, Component::Leds];
    all.extend(BUTTONS);
    for _ in 0..10 {
        let tick = panel.tick(&lines, LedStates::default());
        assert_eq!(components(&tick), all, "sorted by component");
        assert_eq!(tick.temperature, None);
        assert!(tick.events.is_empty());
    }
    let tick = panel.tick(&lines, LedStates::default());
    let lcd = &tick.faults[0].message;
    assert!(lcd.contains("Bus"), "{lcd}");
    assert!(
        tick.faults[2].message.contains("LED"),
        "{:?}",
        tick.faults[2]
    );
    assert!(
        tick.faults[3].message.contains("button"),
        "{:?}",
        tick.faults[3]
    );
    // 11 ticks at one retry every 3 ticks: 4 LCD attempts and 4 sensor reads
    assert_eq!(sim.transfers(), 8);

    sim.set_bus_error(false);
    sim.set_gpio_error(false);
    // the next retry (tick 12) brings everything back
    panel.tick(&lines, LedStates::default());
    let tick = panel.tick(&lines, LedStates::default());
    assert_eq!(tick.faults, []);
    assert_eq!(tick.temperature, Some(20.0));
    assert_eq!(sim.lines()[0], row("x"));
}

#[test]
fn failing_gpio_faults_leds_and_all_four_buttons() {
    let sim = SimPanel::new();
    let mut panel = simulated(&sim, cfg(2, 50));
    let lines = screen(["", "", "", ""]);
    let on = LedStates {
        fault: true,
        ..LedStates::default()
    };
    panel.tick(&lines, LedStates::default());
    sim.set_gpio_error(true);
    let tick = panel.tick(&lines, on);
    let mut expected = vec![Component::Leds];
    expected.extend(BUTTONS);
    assert_eq!(components(&tick), expected);
    sim.set_gpio_error(false);
    // tick 2: not due yet; tick 3: retried, all LED pins rewritten
    assert_eq!(components(&panel.tick(&lines, on)), expected);
    assert!(!sim.snapshot().leds.fault);
    assert_eq!(panel.tick(&lines, on).faults, []);
    assert!(sim.snapshot().leds.fault);
}

#[test]
fn a_press_is_exactly_one_event() {
    let sim = SimPanel::new();
    let mut panel = simulated(&sim, PanelConfig::default());
    let lines = screen(["", "", "", ""]);
    panel.tick(&lines, LedStates::default());
    sim.press(Button::Ok);
    let ticks: Vec<Tick> = (0..20)
        .map(|_| panel.tick(&lines, LedStates::default()))
        .collect();
    let events: Vec<Button> = ticks.iter().flat_map(|t| t.events.clone()).collect();
    assert_eq!(events, [Button::Ok]);
    // reported on the third pressed sample
    assert_eq!(ticks[2].events, [Button::Ok]);
    assert!(ticks.iter().all(|t| t.faults.is_empty()));
}

#[test]
fn a_held_button_becomes_a_stuck_fault_and_clears_on_release() {
    let sim = SimPanel::new();
    let debounce = DebounceConfig {
        stable_samples: 3,
        stuck_samples: 25,
    };
    let mut panel = simulated(
        &sim,
        PanelConfig {
            debounce,
            ..PanelConfig::default()
        },
    );
    let lines = screen(["", "", "", ""]);
    sim.hold(Button::Up);
    let ticks: Vec<Tick> = (0..40)
        .map(|_| panel.tick(&lines, LedStates::default()))
        .collect();
    // a press first, when it went down
    assert_eq!(ticks[2].events, [Button::Up]);
    assert_eq!(ticks.iter().map(|t| t.events.len()).sum::<usize>(), 1);
    // stuck on the 25th pressed sample
    assert_eq!(ticks[23].faults, []);
    assert_eq!(components(&ticks[24]), [Component::Button(Button::Up)]);
    assert_eq!(
        ticks[24].faults[0].message,
        "button 'up' has been held down for 25 polls: stuck?"
    );
    assert_eq!(components(&ticks[39]), [Component::Button(Button::Up)]);

    sim.release(Button::Up);
    let ticks: Vec<Tick> = (0..5)
        .map(|_| panel.tick(&lines, LedStates::default()))
        .collect();
    assert_eq!(components(&ticks[1]), [Component::Button(Button::Up)]);
    assert_eq!(ticks[2].faults, [], "released for stable_samples polls");
    assert!(
        ticks.iter().all(|t| t.events.is_empty()),
        "unstuck is no press"
    );
}

#[test]
fn the_daemon_can_hold_it_as_a_boxed_panel_device() {
    let sim = SimPanel::new();
    let mut panel: Box<dyn PanelDevice> = Box::new(simulated(&sim, PanelConfig::default()));
    let tick = panel.tick(&screen(["boxed", "", "", ""]), LedStates::default());
    assert_eq!(tick.faults, []);
    assert_eq!(sim.lines()[0], row("boxed"));
    // and move it to another thread
    let handle = std::thread::spawn(move || {
        panel
            .tick(&screen(["thread", "", "", ""]), LedStates::default())
            .faults
    });
    assert_eq!(handle.join().unwrap(), []);
    assert_eq!(sim.lines()[0], row("thread"));
}

#[test]
fn fault_display_names_the_component() {
    let sim = SimPanel::new();
    sim.set_present(SimDevice::Sensor, false);
    let mut panel = simulated(&sim, PanelConfig::default());
    let tick = panel.tick(&screen(["", "", "", ""]), LedStates::default());
    assert_eq!(
        tick.faults[0].to_string(),
        "sensor: reading the temperature sensor at 0x48 failed: bus transfer failed: NoAcknowledge(Address)"
    );
}
