//! The four status LEDs, one output pin each.

use embedded_hal::digital::OutputPin;

use crate::Error;

/// One of the front panel's status LEDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Led {
    /// The appliance is up.
    Power,
    /// A job is moving data.
    Activity,
    /// Something needs an operator.
    Fault,
    /// A tape is loaded or the library is busy.
    Tape,
}

impl Led {
    /// All LEDs, in the order their pins are given to [`Leds::new`].
    pub const ALL: [Led; 4] = [Led::Power, Led::Activity, Led::Fault, Led::Tape];

    /// Lower-case name: `power`, `activity`, `fault`, `tape`.
    pub fn name(self) -> &'static str {
        match self {
            Led::Power => "power",
            Led::Activity => "activity",
            Led::Fault => "fault",
            Led::Tape => "tape",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Led::Power => 0,
            Led::Activity => 1,
            Led::Fault => 2,
            Led::Tape => 3,
        }
    }
}

impl core::fmt::Display for Led {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// On/off for every LED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LedStates {
    /// [`Led::Power`].
    pub power: bool,
    /// [`Led::Activity`].
    pub activity: bool,
    /// [`Led::Fault`].
    pub fault: bool,
    /// [`Led::Tape`].
    pub tape: bool,
}

impl LedStates {
    /// Whether `led` is on.
    pub fn get(&self, led: Led) -> bool {
        match led {
            Led::Power => self.power,
            Led::Activity => self.activity,
            Led::Fault => self.fault,
            Led::Tape => self.tape,
        }
    }

    /// Switches `led` on or off.
    pub fn set(&mut self, led: Led, on: bool) {
        match led {
            Led::Power => self.power = on,
            Led::Activity => self.activity = on,
            Led::Fault => self.fault = on,
            Led::Tape => self.tape = on,
        }
    }
}

/// The four status LEDs on output pins.
///
/// The driver remembers what it last wrote to each pin. [`Leds::apply`]
/// writes only the pins whose state changes; pins it has never written, and
/// every pin after any pin error, count as unknown and are written again.
pub struct Leds<P> {
    pins: [P; 4],
    active_low: bool,
    written: [Option<bool>; 4],
}

impl<P: OutputPin> Leds<P> {
    /// The LEDs on `pins`, in [`Led::ALL`] order (power, activity, fault,
    /// tape). With `active_low` an LED is lit by driving its pin low (LED
    /// wired from the supply to the pin), otherwise by driving it high.
    /// Does not touch the pins; the first [`Leds::apply`] writes all four.
    pub fn new(pins: [P; 4], active_low: bool) -> Self {
        Leds {
            pins,
            active_low,
            written: [None; 4],
        }
    }

    /// Switches one LED, writing its pin whether or not it changes.
    pub fn set(&mut self, led: Led, on: bool) -> Result<(), Error<P::Error>> {
        let i = led.index();
        match self.write(i, on) {
            Ok(()) => {
                self.written[i] = Some(on);
                Ok(())
            }
            Err(e) => {
                self.written = [None; 4];
                Err(Error::Bus(e))
            }
        }
    }

    /// Shows `states`, writing only pins whose state changes.
    ///
    /// A pin error does not stop the other pins from being written; the
    /// first error is returned, and every pin is written again by the next
    /// `apply`.
    pub fn apply(&mut self, states: LedStates) -> Result<(), Error<P::Error>> {
        let mut first_error = None;
        for led in Led::ALL {
            let i = led.index();
            let on = states.get(led);
            if self.written[i] == Some(on) {
                continue;
            }
            match self.write(i, on) {
                Ok(()) => self.written[i] = Some(on),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            None => Ok(()),
            Some(e) => {
                self.written = [None; 4];
                Err(Error::Bus(e))
            }
        }
    }

    /// What the pins were last successfully set to; an LED whose pin state
    /// is unknown (never written, or after an error) counts as off.
    pub fn states(&self) -> LedStates {
        let mut states = LedStates::default();
        for led in Led::ALL {
            states.set(led, self.written[led.index()] == Some(true));
        }
        states
    }

    /// Gives back the pins, in [`Led::ALL`] order.
    pub fn destroy(self) -> [P; 4] {
        self.pins
    }

    fn write(&mut self, i: usize, on: bool) -> Result<(), P::Error> {
        let pin = &mut self.pins[i];
        if on != self.active_low {
            pin.set_high()
        } else {
            pin.set_low()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use embedded_hal_mock::eh1::MockError;
    use embedded_hal_mock::eh1::digital::{Mock as PinMock, State, Transaction as PinTx};

    fn pins(expect: [Vec<PinTx>; 4]) -> [PinMock; 4] {
        expect.map(|e| PinMock::new(&e))
    }

    fn done(pins: [PinMock; 4]) {
        for mut p in pins {
            p.done();
        }
    }

    fn io_error() -> MockError {
        MockError::Io(std::io::ErrorKind::BrokenPipe)
    }

    #[test]
    fn active_high_first_apply_writes_every_pin() {
        let p = pins([
            vec![PinTx::set(State::High)],
            vec![PinTx::set(State::Low)],
            vec![PinTx::set(State::High)],
            vec![PinTx::set(State::Low)],
        ]);
        let mut leds = Leds::new(p, false);
        let want = LedStates {
            power: true,
            activity: false,
            fault: true,
            tape: false,
        };
        leds.apply(want).unwrap();
        assert_eq!(leds.states(), want);
        done(leds.destroy());
    }

    #[test]
    fn active_low_inverts_the_levels() {
        let p = pins([
            vec![PinTx::set(State::Low), PinTx::set(State::High)],
            vec![PinTx::set(State::High)],
            vec![PinTx::set(State::High)],
            vec![PinTx::set(State::Low)],
        ]);
        let mut leds = Leds::new(p, true);
        leds.apply(LedStates {
            power: true,
            tape: true,
            ..LedStates::default()
        })
        .unwrap();
        leds.set(Led::Power, false).unwrap();
        assert_eq!(
            leds.states(),
            LedStates {
                tape: true,
                ..LedStates::default()
            }
        );
        done(leds.destroy());
    }

    #[test]
    fn apply_writes_only_changes() {
        let p = pins([
            vec![PinTx::set(State::High)],
            vec![
                PinTx::set(State::Low),
                PinTx::set(State::High),
                PinTx::set(State::Low),
            ],
            vec![PinTx::set(State::Low)],
            vec![PinTx::set(State::Low), PinTx::set(State::High)],
        ]);
        let mut leds = Leds::new(p, false);
        let mut s = LedStates {
            power: true,
            ..LedStates::default()
        };
        leds.apply(s).unwrap();
        leds.apply(s).unwrap(); // nothing
        s.set(Led::Activity, true);
        s.set(Led::Tape, true);
        leds.apply(s).unwrap(); // activity and tape
        s.set(Led::Activity, false);
        leds.apply(s).unwrap(); // activity
        assert!(s.get(Led::Tape) && !s.get(Led::Activity));
        done(leds.destroy());
    }

    #[test]
    fn set_always_writes() {
        let p = pins([
            vec![PinTx::set(State::High), PinTx::set(State::High)],
            vec![],
            vec![],
            vec![],
        ]);
        let mut leds = Leds::new(p, false);
        leds.set(Led::Power, true).unwrap();
        leds.set(Led::Power, true).unwrap();
        done(leds.destroy());
    }

    #[test]
    fn after_an_error_every_pin_is_rewritten() {
        let p = pins([
            vec![PinTx::set(State::High), PinTx::set(State::High)],
            vec![PinTx::set(State::Low), PinTx::set(State::Low)],
            vec![
                PinTx::set(State::Low),
                PinTx::set(State::High).with_error(io_error()),
                PinTx::set(State::High),
            ],
            // the error on the fault pin does not stop the tape pin
            vec![
                PinTx::set(State::Low),
                PinTx::set(State::High),
                PinTx::set(State::High),
            ],
        ]);
        let mut leds = Leds::new(p, false);
        let mut s = LedStates {
            power: true,
            ..LedStates::default()
        };
        leds.apply(s).unwrap();
        s.fault = true;
        s.tape = true;
        let err = leds.apply(s).unwrap_err();
        assert!(matches!(
            err,
            Error::Bus(MockError::Io(std::io::ErrorKind::BrokenPipe))
        ));
        assert_eq!(leds.states(), LedStates::default());
        leds.apply(s).unwrap();
        assert_eq!(leds.states(), s);
        done(leds.destroy());
    }

    #[test]
    fn a_failed_set_makes_apply_rewrite_everything() {
        let p = pins([
            vec![PinTx::set(State::High), PinTx::set(State::High)],
            vec![
                PinTx::set(State::Low).with_error(io_error()),
                PinTx::set(State::Low),
            ],
            vec![PinTx::set(State::Low)],
            vec![PinTx::set(State::Low)],
        ]);
        let mut leds = Leds::new(p, false);
        leds.set(Led::Power, true).unwrap();
        assert!(leds.set(Led::Activity, false).is_err());
        leds.apply(LedStates {
            power: true,
            ..LedStates::default()
        })
        .unwrap();
        done(leds.destroy());
    }

    #[test]
    fn names() {
        let names: Vec<_> = Led::ALL.iter().map(|l| l.name()).collect();
        assert_eq!(names, ["power", "activity", "fault", "tape"]);
        assert_eq!(Led::Tape.to_string(), "tape");
    }
}
