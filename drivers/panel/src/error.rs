//! The one error type every driver in this crate returns.
//!
//! Error policy: a driver never retries and never panics; it reports the
//! failed bus operation as [`Error::Bus`] carrying the bus implementation's own
//! error (an `embedded-hal` error such as `ErrorKind::NoAcknowledge`, or the
//! Linux backend's `I2CError`) and leaves the decision to the caller.
//! [`crate::panel::FrontPanel`] is that caller on the appliance: it turns
//! errors into faults and retries on a schedule.

use core::fmt;

/// An error from one of the panel drivers, generic over the bus error `E`.
#[derive(Debug)]
pub enum Error<E> {
    /// The I2C transfer or GPIO pin access failed; the bus implementation's
    /// error is inside (a missing device shows up here as a NACK).
    Bus(E),
    /// A cursor position outside the 20x4 display was asked for.
    OutOfRange,
}

impl<E> From<E> for Error<E> {
    fn from(e: E) -> Self {
        Error::Bus(e)
    }
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Bus(e) => write!(f, "bus transfer failed: {e:?}"),
            Error::OutOfRange => write!(
                f,
                "cursor position out of range (rows 0..=3, columns 0..=19)"
            ),
        }
    }
}

impl<E: fmt::Debug> std::error::Error for Error<E> {}
