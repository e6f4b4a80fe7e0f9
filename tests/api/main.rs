//! Black-box tests of the HTTP API, each against its own application bound
//! to port 0 with its own in-memory adapters.

mod health;
mod helpers;
mod layout;
mod progress;
mod progress_errors;
