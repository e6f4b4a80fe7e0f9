//! What the operating system provides: wall-clock time and randomness from
//! its CSPRNG (ids and one-time passwords). The controllable stand-ins for
//! tests live in `memory`.

mod clock;
mod otp;

pub use clock::{RandomIds, SystemClock};
pub use otp::RandomOtps;
