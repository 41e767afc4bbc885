//! Pin polarity as a wrapper type, not as `if`s in the drivers.
//!
//! The LED and button drivers speak in logical levels: "high" means *LED lit* or *button
//! pressed*. Wiring decides which voltage that is. [`ActiveLow`] inverts a pin (as
//! eldruin/inverted-pin does), so an active-low LED or a button to ground with a pull-up is
//! `ActiveLow::new(pin)` and the driver code stays the same.
//!
//! Board files choose polarity at run time, so the real backend boxes the pin once at open
//! time ([`DynOutput`], [`DynInput`], built by [`output_with_polarity`] and
//! [`input_with_polarity`]); the drivers never see the choice.

use embedded_hal::digital::{self, ErrorType, InputPin, OutputPin, StatefulOutputPin};

/// Inverts an output or input pin: `set_high` drives the wire low, `is_high` is true when
/// the wire is low.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveLow<P> {
    pin: P,
}

impl<P> ActiveLow<P> {
    /// Wraps `pin` so that its logical level is the inverse of its electrical level.
    pub fn new(pin: P) -> Self {
        ActiveLow { pin }
    }

    /// Gives the wrapped pin back (so a test can call `.done()` on a mock).
    pub fn release(self) -> P {
        self.pin
    }
}

impl<P: ErrorType> ErrorType for ActiveLow<P> {
    type Error = P::Error;
}

impl<P: OutputPin> OutputPin for ActiveLow<P> {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        self.pin.set_high()
    }

    fn set_high(&mut self) -> Result<(), Self::Error> {
        self.pin.set_low()
    }
}

impl<P: StatefulOutputPin> StatefulOutputPin for ActiveLow<P> {
    fn is_set_high(&mut self) -> Result<bool, Self::Error> {
        self.pin.is_set_low()
    }

    fn is_set_low(&mut self) -> Result<bool, Self::Error> {
        self.pin.is_set_high()
    }
}

impl<P: InputPin> InputPin for ActiveLow<P> {
    fn is_high(&mut self) -> Result<bool, Self::Error> {
        self.pin.is_low()
    }

    fn is_low(&mut self) -> Result<bool, Self::Error> {
        self.pin.is_high()
    }
}

/// An output pin whose level can be read back through [`InputPin`] (a GPIO line requested
/// as an output reads back the level it drives; `letterbox debug-gpio` checks that).
pub trait ReadableOutput: OutputPin + InputPin {}

impl<P: OutputPin + InputPin> ReadableOutput for P {}

/// A boxed output pin whose polarity was chosen at run time. Reading it gives the logical
/// level (true = lit) read back from the pin.
pub struct DynOutput<E>(Box<dyn ReadableOutput<Error = E> + Send>);

impl<E: digital::Error> ErrorType for DynOutput<E> {
    type Error = E;
}

impl<E: digital::Error> OutputPin for DynOutput<E> {
    fn set_low(&mut self) -> Result<(), E> {
        self.0.set_low()
    }

    fn set_high(&mut self) -> Result<(), E> {
        self.0.set_high()
    }
}

impl<E: digital::Error> InputPin for DynOutput<E> {
    fn is_high(&mut self) -> Result<bool, E> {
        self.0.is_high()
    }

    fn is_low(&mut self) -> Result<bool, E> {
        self.0.is_low()
    }
}

/// A boxed input pin whose polarity was chosen at run time.
pub struct DynInput<E>(Box<dyn InputPin<Error = E> + Send>);

impl<E: digital::Error> ErrorType for DynInput<E> {
    type Error = E;
}

impl<E: digital::Error> InputPin for DynInput<E> {
    fn is_high(&mut self) -> Result<bool, E> {
        self.0.is_high()
    }

    fn is_low(&mut self) -> Result<bool, E> {
        self.0.is_low()
    }
}

/// Boxes `pin`, inverted when `active_low` (the one place polarity is decided).
pub fn output_with_polarity<P>(pin: P, active_low: bool) -> DynOutput<P::Error>
where
    P: OutputPin + InputPin + Send + 'static,
{
    if active_low {
        DynOutput(Box::new(ActiveLow::new(pin)))
    } else {
        DynOutput(Box::new(pin))
    }
}

/// Boxes `pin`, inverted when `active_low` (the one place polarity is decided).
pub fn input_with_polarity<P>(pin: P, active_low: bool) -> DynInput<P::Error>
where
    P: InputPin + Send + 'static,
{
    if active_low {
        DynInput(Box::new(ActiveLow::new(pin)))
    } else {
        DynInput(Box::new(pin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction};

    #[test]
    fn active_low_output_inverts() {
        let mock = Mock::new(&[Transaction::set(State::Low), Transaction::set(State::High)]);
        let mut done = mock.clone();
        let mut pin = ActiveLow::new(mock);
        pin.set_high().unwrap();
        pin.set_low().unwrap();
        pin.release();
        done.done();
    }

    #[test]
    fn active_low_input_inverts() {
        let mock = Mock::new(&[Transaction::get(State::Low), Transaction::get(State::High)]);
        let mut done = mock.clone();
        let mut pin = ActiveLow::new(mock);
        assert!(pin.is_high().unwrap());
        assert!(pin.is_low().unwrap());
        done.done();
    }

    #[test]
    fn dyn_pins_follow_polarity() {
        let inv = Mock::new(&[Transaction::set(State::Low), Transaction::get(State::Low)]);
        let mut inv_done = inv.clone();
        let mut out = output_with_polarity(inv.clone(), true);
        out.set_high().unwrap();
        let mut input = input_with_polarity(inv, true);
        assert!(input.is_high().unwrap());
        inv_done.done();

        let plain = Mock::new(&[Transaction::set(State::High), Transaction::get(State::High)]);
        let mut plain_done = plain.clone();
        let mut out = output_with_polarity(plain.clone(), false);
        out.set_high().unwrap();
        let mut input = input_with_polarity(plain, false);
        assert!(input.is_high().unwrap());
        plain_done.done();
    }
}
