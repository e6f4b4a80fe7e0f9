//! Argon2id password hashing (OWASP parameters).
//!
//! Each Argon2id hash takes 19 MiB and ~45 ms of one core, so hashing is
//! bounded: at most `concurrency` hashes run at once, on tokio's blocking
//! pool (never on the async executor threads), and a caller that finds
//! every slot taken for longer than `max_wait` gets `HashError::Busy`
//! instead of queueing without limit (docs/decisions.md 36). The 19 MiB
//! working memory is kept and reused rather than allocated per hash.
//!
//! `slots` bounds the work, `hasher` computes and checks PHC strings.

mod hasher;
mod slots;
#[cfg(test)]
mod tests;

pub use hasher::Argon2Hasher;
pub use slots::{HashBound, HashSlots};

/// OWASP's Argon2id recommendation: 19 MiB, 2 iterations, 1 lane.
pub const ARGON2_MEMORY_KIB: u32 = 19_456;
pub const ARGON2_ITERATIONS: u32 = 2;
pub const ARGON2_LANES: u32 = 1;
