//! Pure business types and use cases.
//!
//! Nothing in here performs I/O on its own or names an infrastructure crate:
//! every effect goes through a trait of [`crate::ports`]. Every public item
//! is documented (`missing_docs`, an error in CI through clippy's `-D warnings`).

#![warn(missing_docs)]

pub mod account;
pub mod billing;
pub mod email_address;
pub mod events;
pub mod locale;
pub mod mail_delivery;
pub mod otp;
pub mod progress;
pub mod retry;
mod serde_str;
pub mod timestamp;
