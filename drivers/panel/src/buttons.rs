//! The four front-panel buttons on input pins, debounced by counting
//! samples.
//!
//! # Debouncing
//!
//! [`Buttons::poll`] reads every pin once; the caller polls at a steady rate
//! (the appliance: every 20 ms). There are no clocks, only sample counts, per
//! button:
//!
//! * **Press.** When the pin has read *pressed* on `stable_samples`
//!   consecutive polls, [`ButtonEvent::Pressed`] is reported, once. Shorter
//!   bounces are ignored. The button then counts as held until it has read
//!   *released* on `stable_samples` consecutive polls; only after that can it
//!   be pressed again.
//! * **Stuck.** A button held for `stuck_samples` pressed polls (counting from
//!   the first sample of the press, and not reset by release bounces shorter
//!   than `stable_samples`) reports [`ButtonEvent::Stuck`], once, and no
//!   presses. When it has then read released for `stable_samples`
//!   consecutive polls it reports [`ButtonEvent::Unstuck`] and is an ordinary
//!   released button again. `stuck_samples = 0` turns stuck detection off. If
//!   `stuck_samples <= stable_samples` the press and the stuck report come from
//!   the same poll, in that order.
//! * `stable_samples = 0` counts as 1 (no debouncing).

use core::fmt;
use core::str::FromStr;

use embedded_hal::digital::InputPin;

use crate::Error;

/// One of the front-panel buttons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Button {
    /// Up: previous menu item.
    Up,
    /// Down: next menu item.
    Down,
    /// OK: select.
    Ok,
    /// Back: leave the menu.
    Back,
}

impl Button {
    /// All buttons, in the order their pins are given to [`Buttons::new`].
    pub const ALL: [Button; 4] = [Button::Up, Button::Down, Button::Ok, Button::Back];

    /// Lower-case name: `up`, `down`, `ok`, `back`.
    pub fn name(self) -> &'static str {
        match self {
            Button::Up => "up",
            Button::Down => "down",
            Button::Ok => "ok",
            Button::Back => "back",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Button::Up => 0,
            Button::Down => 1,
            Button::Ok => 2,
            Button::Back => 3,
        }
    }
}

impl fmt::Display for Button {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that names no button.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseButtonError {
    input: String,
}

impl fmt::Display for ParseButtonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown button '{}' (expected up, down, ok or back)",
            self.input
        )
    }
}

impl std::error::Error for ParseButtonError {}

impl FromStr for Button {
    type Err = ParseButtonError;

    /// `up`, `down`, `ok` or `back`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Button::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseButtonError {
                input: s.to_owned(),
            })
    }
}

/// What a poll found out about a button.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ButtonEvent {
    /// A debounced press (reported once per press).
    Pressed(Button),
    /// Held down for `stuck_samples` polls: probably jammed.
    Stuck(Button),
    /// The stuck button has been released.
    Unstuck(Button),
}

/// Debouncing thresholds, in polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebounceConfig {
    /// Consecutive equal samples that make a press or a release (default 3,
    /// 60 ms at 20 ms per poll).
    pub stable_samples: u32,
    /// Pressed samples after which a button is stuck (default 500, 10 s at
    /// 20 ms per poll); 0 disables stuck detection.
    pub stuck_samples: u32,
}

impl Default for DebounceConfig {
    fn default() -> Self {
        DebounceConfig {
            stable_samples: 3,
            stuck_samples: 500,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Debounced {
    Released,
    Pressed,
    Stuck,
}

#[derive(Debug, Clone, Copy)]
struct Debouncer {
    state: Debounced,
    pressed_run: u32,
    released_run: u32,
    /// Pressed samples since the start of the current press.
    held: u32,
}

impl Debouncer {
    const NEW: Debouncer = Debouncer {
        state: Debounced::Released,
        pressed_run: 0,
        released_run: 0,
        held: 0,
    };

    fn sample(
        &mut self,
        pressed: bool,
        button: Button,
        cfg: &DebounceConfig,
        out: &mut Vec<ButtonEvent>,
    ) {
        let stable = cfg.stable_samples.max(1);
        let stuck = |held: u32| cfg.stuck_samples > 0 && held >= cfg.stuck_samples;
        if pressed {
            self.pressed_run = self.pressed_run.saturating_add(1);
            self.released_run = 0;
            match self.state {
                Debounced::Released => {
                    if self.pressed_run >= stable {
                        self.state = Debounced::Pressed;
                        self.held = self.pressed_run;
                        out.push(ButtonEvent::Pressed(button));
                        if stuck(self.held) {
                            self.state = Debounced::Stuck;
                            out.push(ButtonEvent::Stuck(button));
                        }
                    }
                }
                Debounced::Pressed => {
                    self.held = self.held.saturating_add(1);
                    if stuck(self.held) {
                        self.state = Debounced::Stuck;
                        out.push(ButtonEvent::Stuck(button));
                    }
                }
                Debounced::Stuck => {}
            }
        } else {
            self.released_run = self.released_run.saturating_add(1);
            self.pressed_run = 0;
            if self.released_run >= stable {
                match self.state {
                    Debounced::Released => {}
                    Debounced::Pressed => self.state = Debounced::Released,
                    Debounced::Stuck => {
                        self.state = Debounced::Released;
                        out.push(ButtonEvent::Unstuck(button));
                    }
                }
                self.held = 0;
            }
        }
    }
}

/// The four buttons on input pins, debounced.
pub struct Buttons<P> {
    pins: [P; 4],
    active_low: bool,
    cfg: DebounceConfig,
    debouncers: [Debouncer; 4],
}

impl<P: InputPin> Buttons<P> {
    /// The buttons on `pins`, in [`Button::ALL`] order (up, down, ok, back).
    /// With `active_low` a pressed button reads low (switch to ground with a
    /// pull-up, the usual wiring), otherwise high. Does not touch the pins.
    pub fn new(pins: [P; 4], active_low: bool, cfg: DebounceConfig) -> Self {
        Buttons {
            pins,
            active_low,
            cfg,
            debouncers: [Debouncer::NEW; 4],
        }
    }

    /// Samples every pin once and returns what happened, in [`Button::ALL`]
    /// order.
    ///
    /// All four pins are read even if one fails; if any read fails, the
    /// first error is returned and this poll's samples are discarded (no
    /// button's debouncing state changes).
    pub fn poll(&mut self) -> Result<Vec<ButtonEvent>, Error<P::Error>> {
        let mut samples = [false; 4];
        let mut first_error = None;
        for (pin, sample) in self.pins.iter_mut().zip(samples.iter_mut()) {
            let level = if self.active_low {
                pin.is_low()
            } else {
                pin.is_high()
            };
            match level {
                Ok(pressed) => *sample = pressed,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(Error::Bus(e));
        }
        let mut events = Vec::new();
        for button in Button::ALL {
            let i = button.index();
            self.debouncers[i].sample(samples[i], button, &self.cfg, &mut events);
        }
        Ok(events)
    }

    /// Whether `button` is currently held down (debounced, stuck included).
    pub fn is_held(&self, button: Button) -> bool {
        self.debouncers[button.index()].state != Debounced::Released
    }

    /// Gives back the pins, in [`Button::ALL`] order.
    pub fn destroy(self) -> [P; 4] {
        self.pins
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use embedded_hal_mock::eh1::MockError;
    use embedded_hal_mock::eh1::digital::{Mock as PinMock, State, Transaction as PinTx};

    const H: State = State::High;
    const L: State = State::Low;

    /// Pins whose reads follow the given levels, one per poll.
    fn pins(levels: [&[State]; 4]) -> [PinMock; 4] {
        levels.map(|l| PinMock::new(&l.iter().map(|&s| PinTx::get(s)).collect::<Vec<_>>()))
    }

    fn done(pins: [PinMock; 4]) {
        for mut p in pins {
            p.done();
        }
    }

    fn cfg(stable: u32, stuck: u32) -> DebounceConfig {
        DebounceConfig {
            stable_samples: stable,
            stuck_samples: stuck,
        }
    }

    /// Polls `n` times, returning each poll's events.
    fn run<P: InputPin>(b: &mut Buttons<P>, n: usize) -> Vec<Vec<ButtonEvent>> {
        (0..n).map(|_| b.poll().unwrap()).collect()
    }

    #[test]
    fn bounces_shorter_than_stable_samples_are_ignored() {
        // active low: L = pressed
        let up: &[State] = &[H, L, L, H, L, H, L, L, H, H];
        let idle: &[State] = &[H; 10];
        let mut b = Buttons::new(pins([up, idle, idle, idle]), true, cfg(3, 500));
        let polls = run(&mut b, 10);
        assert!(polls.iter().all(Vec::is_empty), "{polls:?}");
        done(b.destroy());
    }

    #[test]
    fn a_press_is_reported_once_after_stable_samples() {
        let ok: &[State] = &[H, L, L, L, L, L, L, H, H, H, L, L, L];
        let idle: &[State] = &[H; 13];
        let mut b = Buttons::new(pins([idle, idle, ok, idle]), true, cfg(3, 500));
        let polls = run(&mut b, 13);
        let expected: Vec<Vec<ButtonEvent>> = (0..13)
            .map(|i| match i {
                // third consecutive low
                3 => vec![ButtonEvent::Pressed(Button::Ok)],
                // released for three polls (7, 8, 9), pressed again for three
                12 => vec![ButtonEvent::Pressed(Button::Ok)],
                _ => vec![],
            })
            .collect();
        assert_eq!(polls, expected);
        done(b.destroy());
    }

    #[test]
    fn a_short_release_does_not_make_a_second_press() {
        let down: &[State] = &[L, L, L, H, H, L, L, L, L];
        let idle: &[State] = &[H; 9];
        let mut b = Buttons::new(pins([idle, down, idle, idle]), true, cfg(3, 500));
        let events: Vec<_> = run(&mut b, 9).into_iter().flatten().collect();
        assert_eq!(events, [ButtonEvent::Pressed(Button::Down)]);
        assert!(b.is_held(Button::Down));
        done(b.destroy());
    }

    #[test]
    fn active_high_buttons() {
        // active high: H = pressed
        let back: &[State] = &[H, H, L, H, H, H];
        let idle: &[State] = &[L; 6];
        let mut b = Buttons::new(pins([idle, idle, idle, back]), false, cfg(3, 500));
        let polls = run(&mut b, 6);
        assert_eq!(polls[5], [ButtonEvent::Pressed(Button::Back)]);
        assert!(polls[..5].iter().all(Vec::is_empty));
        done(b.destroy());
    }

    #[test]
    fn stuck_after_stuck_samples_then_unstuck_after_stable_release() {
        // pressed for 8 polls (stuck at 6), released 1 (bounce), pressed 1,
        // released 3 -> unstuck
        let up: &[State] = &[L, L, L, L, L, L, L, L, H, L, H, H, H];
        let idle: &[State] = &[H; 13];
        let mut b = Buttons::new(pins([up, idle, idle, idle]), true, cfg(2, 6));
        let polls = run(&mut b, 13);
        let expected: Vec<Vec<ButtonEvent>> = (0..13)
            .map(|i| match i {
                1 => vec![ButtonEvent::Pressed(Button::Up)],
                5 => vec![ButtonEvent::Stuck(Button::Up)],
                11 => vec![ButtonEvent::Unstuck(Button::Up)],
                _ => vec![],
            })
            .collect();
        assert_eq!(polls, expected);
        assert!(!b.is_held(Button::Up));
        done(b.destroy());
    }

    #[test]
    fn a_stuck_button_presses_again_only_after_unstuck() {
        let ok: &[State] = &[L, L, L, H, H, L, L];
        let idle: &[State] = &[H; 7];
        let mut b = Buttons::new(pins([idle, idle, ok, idle]), true, cfg(2, 2));
        let polls = run(&mut b, 7);
        assert_eq!(
            polls,
            [
                vec![],
                // stuck_samples <= stable_samples: press and stuck together
                vec![
                    ButtonEvent::Pressed(Button::Ok),
                    ButtonEvent::Stuck(Button::Ok)
                ],
                vec![],
                vec![],
                vec![ButtonEvent::Unstuck(Button::Ok)],
                vec![],
                vec![
                    ButtonEvent::Pressed(Button::Ok),
                    ButtonEvent::Stuck(Button::Ok)
                ],
            ]
        );
        done(b.destroy());
    }

    #[test]
    fn stuck_detection_off_with_zero() {
        let up: &[State] = &[L; 20];
        let idle: &[State] = &[H; 20];
        let mut b = Buttons::new(pins([up, idle, idle, idle]), true, cfg(3, 0));
        let events: Vec<_> = run(&mut b, 20).into_iter().flatten().collect();
        assert_eq!(events, [ButtonEvent::Pressed(Button::Up)]);
        done(b.destroy());
    }

    #[test]
    fn several_buttons_in_one_poll_come_in_all_order() {
        let p: &[State] = &[L, L, L];
        let idle: &[State] = &[H; 3];
        let mut b = Buttons::new(pins([p, idle, idle, p]), true, DebounceConfig::default());
        let polls = run(&mut b, 3);
        assert_eq!(
            polls[2],
            [
                ButtonEvent::Pressed(Button::Up),
                ButtonEvent::Pressed(Button::Back)
            ]
        );
        done(b.destroy());
    }

    #[test]
    fn a_pin_error_reads_every_pin_and_changes_nothing() {
        let err = MockError::Io(std::io::ErrorKind::BrokenPipe);
        let idle = || PinMock::new(&[PinTx::get(H), PinTx::get(H), PinTx::get(H)]);
        let p = [
            PinMock::new(&[PinTx::get(L), PinTx::get(L), PinTx::get(L)]),
            PinMock::new(&[
                PinTx::get(H),
                PinTx::get(H).with_error(err.clone()),
                PinTx::get(H),
            ]),
            idle(),
            idle(),
        ];
        let mut b = Buttons::new(p, true, cfg(2, 500));
        assert_eq!(b.poll().unwrap(), []);
        assert!(matches!(b.poll(), Err(Error::Bus(e)) if e == err));
        // the sample of poll 2 was dropped: the press needs one more
        assert_eq!(b.poll().unwrap(), [ButtonEvent::Pressed(Button::Up)]);
        done(b.destroy());
    }

    #[test]
    fn names_and_parsing() {
        for b in Button::ALL {
            assert_eq!(b.name().parse::<Button>().unwrap(), b);
            assert_eq!(b.name().to_uppercase().parse::<Button>().unwrap(), b);
        }
        assert_eq!("Ok".parse::<Button>().unwrap(), Button::Ok);
        let err = "enter".parse::<Button>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown button 'enter' (expected up, down, ok or back)"
        );
        assert_eq!(Button::Back.to_string(), "back");
    }
}
