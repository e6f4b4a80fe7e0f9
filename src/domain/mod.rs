//! Pure business types and use cases.
//!
//! Nothing in here performs I/O on its own or names an infrastructure crate:
//! every effect goes through a trait of [`crate::ports`].

pub mod account;
pub mod email;
pub mod events;
pub mod locale;
pub mod mail;
pub mod otp;
pub mod plan;
pub mod progress;
pub mod retry;
mod serde_str;
pub mod subscription;
pub mod timestamp;
