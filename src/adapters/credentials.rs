//! Credentials adapters: Argon2id password hashing (OWASP parameters) and
//! OTPs from the operating system's CSPRNG.
//!
//! Each Argon2id hash takes 19 MiB and ~45 ms of one core, so hashing is
//! bounded: at most `concurrency` hashes run at once, on tokio's blocking
//! pool (never on the async executor threads), and a caller that finds
//! every slot taken for longer than `max_wait` gets `HashError::Busy`
//! instead of queueing without limit (docs/decisions.md 36). The 19 MiB
//! working memory is kept and reused rather than allocated per hash.

use std::{
    num::NonZeroUsize,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use argon2::{
    Algorithm, Argon2, Block, Params, Version,
    password_hash::{
        self, Output, ParamsString, PasswordHash as Phc, Salt, SaltString, rand_core::OsRng,
    },
};
use async_trait::async_trait;
use rand::Rng;
use tokio::sync::Semaphore;

use crate::{
    domain::{
        account::{Password, PasswordHash},
        otp::OtpCode,
    },
    ports::{HashError, OtpSource, PasswordHasher},
};

/// OWASP's Argon2id recommendation: 19 MiB, 2 iterations, 1 lane.
pub const ARGON2_MEMORY_KIB: u32 = 19_456;
pub const ARGON2_ITERATIONS: u32 = 2;
pub const ARGON2_LANES: u32 = 1;

/// How many hashes may run at once and how long a caller waits for a slot
/// (`PASSWORD_HASH_CONCURRENCY`, `PASSWORD_HASH_MAX_WAIT_MS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashBound {
    pub concurrency: usize,
    pub max_wait: Duration,
}

impl HashBound {
    /// Long enough to absorb a burst of ~40 hashes per core (45 ms each),
    /// short enough that a shed request learns it within 2 s — far below
    /// the usual 10-30 s client and load-balancer timeouts.
    pub const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(2_000);

    /// One hash per core: Argon2 is CPU-bound, so more at once only adds
    /// memory and latency, not throughput. `available_parallelism` follows
    /// the container's CPU quota.
    pub fn default_concurrency() -> usize {
        std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
    }
}

impl Default for HashBound {
    fn default() -> Self {
        Self {
            concurrency: Self::default_concurrency(),
            max_wait: Self::DEFAULT_MAX_WAIT,
        }
    }
}

/// Slots for CPU-heavy work: at most `concurrency` closures run at once,
/// each on the blocking pool; callers wait in arrival order (tokio's
/// semaphore is fair) for at most `max_wait`.
#[derive(Clone)]
pub struct HashSlots {
    semaphore: Arc<Semaphore>,
    bound: HashBound,
}

impl HashSlots {
    pub fn new(bound: HashBound) -> Self {
        let permits = bound.concurrency.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            semaphore: Arc::new(Semaphore::new(permits)),
            bound: HashBound {
                concurrency: permits,
                ..bound
            },
        }
    }

    pub fn bound(&self) -> HashBound {
        self.bound
    }

    /// Runs `work` on the blocking pool once a slot is free, or answers
    /// `Busy` when none came free within `max_wait`.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let acquire = self.semaphore.clone().acquire_owned();
        let permit = match tokio::time::timeout(self.bound.max_wait, acquire).await {
            Ok(Ok(permit)) => permit,
            // The semaphore is never closed; kept typed rather than a panic.
            Ok(Err(closed)) => return Err(HashError::Failed(closed.into())),
            Err(_elapsed) => {
                return Err(HashError::Busy {
                    retry_after_secs: self.retry_after_secs(),
                });
            }
        };
        tokio::task::spawn_blocking(move || {
            // The slot moves into the blocking task: it is freed when the
            // hash ends, not when the caller stops waiting. A client that
            // hangs up mid-hash must not let another hash start meanwhile.
            let _slot = permit;
            work()
        })
        .await
        .map_err(|e| HashError::Failed(e.into()))
    }

    /// A queue that kept a caller waiting `max_wait` takes about as long
    /// to drain; whole seconds (the header's unit), at least 1.
    fn retry_after_secs(&self) -> u64 {
        self.bound.max_wait.as_secs_f64().ceil().max(1.0) as u64
    }
}

/// Argon2 working memory kept between hashes: at most one buffer per slot,
/// reused. With a fresh 19 MiB allocation per hash, glibc kept the freed
/// buffers in its heap (fragmented by the requests' small allocations): a
/// 500-login storm through 2 slots peaked at 357-457 MiB RSS and grew with
/// the wait; with reused buffers it peaks at 68 MiB (docs/benchmarks.md).
struct Scratch {
    buffers: Mutex<Vec<Vec<Block>>>,
    /// Blocks of this hasher's own parameters; other sizes (a stored hash
    /// made with other costs) are allocated for that hash and dropped.
    blocks: usize,
    keep: usize,
}

impl Scratch {
    fn take(&self, blocks: usize) -> Vec<Block> {
        let mut buffers = self.buffers.lock().unwrap_or_else(PoisonError::into_inner);
        match buffers.iter().position(|b| b.len() == blocks) {
            Some(i) => buffers.swap_remove(i),
            None => vec![Block::default(); blocks],
        }
    }

    fn give_back(&self, buffer: Vec<Block>) {
        let mut buffers = self.buffers.lock().unwrap_or_else(PoisonError::into_inner);
        if buffer.len() == self.blocks && buffers.len() < self.keep {
            buffers.push(buffer);
        }
    }

    /// `f` with a buffer of `blocks`, handed back afterwards. Argon2 writes
    /// every block before reading it, so a reused buffer needs no clearing.
    fn with<T>(&self, blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
        let mut buffer = self.take(blocks);
        let out = f(&mut buffer);
        self.give_back(buffer);
        out
    }
}

#[derive(Clone)]
pub struct Argon2Hasher {
    params: Params,
    slots: HashSlots,
    scratch: Arc<Scratch>,
}

impl Argon2Hasher {
    /// OWASP's costs, bounded by `HashBound::default()`.
    pub fn owasp() -> Self {
        Self::with(ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES)
    }

    /// Other costs (benchmarks compare them); falls back to OWASP's on
    /// parameters Argon2 rejects.
    pub fn with(memory_kib: u32, iterations: u32, lanes: u32) -> Self {
        let params = Params::new(memory_kib, iterations, lanes, None).unwrap_or_else(|_| {
            Params::new(ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES, None)
                .unwrap_or_default()
        });
        Self::build(params, HashBound::default())
    }

    /// The same costs under another bound.
    pub fn bounded(self, bound: HashBound) -> Self {
        Self::build(self.params, bound)
    }

    fn build(params: Params, bound: HashBound) -> Self {
        let slots = HashSlots::new(bound);
        let scratch = Arc::new(Scratch {
            buffers: Mutex::new(Vec::new()),
            blocks: params.block_count(),
            keep: slots.bound().concurrency,
        });
        Self {
            params,
            slots,
            scratch,
        }
    }

    pub fn bound(&self) -> HashBound {
        self.slots.bound()
    }

    /// For the start-up line.
    pub fn describe(&self) -> String {
        let bound = self.bound();
        format!(
            "argon2id (m={} KiB, t={}, p={}; {} at once, wait <= {} ms)",
            self.params.m_cost(),
            self.params.t_cost(),
            self.params.p_cost(),
            bound.concurrency,
            bound.max_wait.as_millis()
        )
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }
}

/// Argon2 of `password` and `salt` into an output of `len` bytes, in
/// `scratch`'s memory: what `argon2`'s own `hash_password` computes, minus
/// its allocation.
fn compute(
    argon2: &Argon2<'_>,
    scratch: &Scratch,
    password: &[u8],
    salt: Salt<'_>,
    len: usize,
) -> password_hash::Result<Output> {
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let salt = salt.decode_b64(&mut salt_bytes)?;
    scratch.with(argon2.params().block_count(), |memory| {
        Output::init_with(len, |out| {
            Ok(argon2.hash_password_into_with_memory(password, salt, out, memory)?)
        })
    })
}

/// A new PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
fn hash_phc(
    argon2: &Argon2<'_>,
    scratch: &Scratch,
    password: &[u8],
) -> password_hash::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let params = argon2.params();
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = compute(argon2, scratch, password, salt.as_salt(), len)?;
    let phc = Phc {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `stored`, with the algorithm,
/// version and costs written in it (as `argon2`'s own verifier does).
fn verify_phc(scratch: &Scratch, password: &[u8], stored: &str) -> password_hash::Result<bool> {
    let phc = Phc::new(stored)?;
    let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else {
        return Err(password_hash::Error::PhcStringField);
    };
    let version = phc
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    let argon2 = Argon2::new(
        Algorithm::try_from(phc.algorithm)?,
        version,
        Params::try_from(&phc)?,
    );
    let computed = compute(&argon2, scratch, password, salt, expected.len())?;
    // `Output`'s equality is constant-time.
    Ok(computed == expected)
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        let argon2 = self.argon2();
        let scratch = self.scratch.clone();
        let password = password.expose().to_owned();
        self.slots
            .run(move || {
                hash_phc(&argon2, &scratch, password.as_bytes())
                    .map(PasswordHash)
                    .map_err(|e| HashError::Failed(anyhow::anyhow!("{e}")))
            })
            .await?
    }

    async fn verify(&self, password: &Password, hash: &PasswordHash) -> Result<bool, HashError> {
        let scratch = self.scratch.clone();
        let password = password.expose().to_owned();
        let hash = hash.0.clone();
        self.slots
            .run(move || {
                verify_phc(&scratch, password.as_bytes(), &hash)
                    .map_err(|e| HashError::Failed(anyhow::anyhow!("stored hash: {e}")))
            })
            .await?
    }
}

/// Six-digit codes, uniform over 000000-999999.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomOtps;

impl OtpSource for RandomOtps {
    fn new_otp(&self) -> OtpCode {
        OtpCode::from_number(rand::rng().random_range(0..1_000_000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify_only_the_right_password() {
        let hasher = Argon2Hasher::owasp();
        let password = Password::parse("correct horse battery").unwrap();
        let hash = hasher.hash(&password).await.unwrap();
        assert!(
            hash.0.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            hash.0
        );
        assert!(hasher.verify(&password, &hash).await.unwrap());
        assert!(
            !hasher
                .verify(&Password::parse("wrong password").unwrap(), &hash)
                .await
                .unwrap()
        );
        let again = hasher.hash(&password).await.unwrap();
        assert_ne!(hash, again, "salted");
    }

    #[tokio::test]
    async fn hashes_stay_compatible_with_the_argon2_crates_own_format() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = Argon2Hasher::owasp();
        let password = Password::parse("correct horse battery").unwrap();
        let ours = hasher.hash(&password).await.unwrap();
        let argon2 = hasher.argon2();
        assert!(
            argon2
                .verify_password(password.expose().as_bytes(), &Phc::new(&ours.0).unwrap())
                .is_ok()
        );
        let salt = SaltString::generate(&mut OsRng);
        let theirs = argon2
            .hash_password(password.expose().as_bytes(), &salt)
            .unwrap()
            .to_string();
        assert!(
            hasher
                .verify(&password, &PasswordHash(theirs.clone()))
                .await
                .unwrap()
        );
        let wrong = Password::parse("wrong password").unwrap();
        assert!(!hasher.verify(&wrong, &PasswordHash(theirs)).await.unwrap());
        // A hash made with other costs verifies with its own.
        let cheap = Argon2Hasher::with(8_192, 1, 1)
            .hash(&password)
            .await
            .unwrap();
        assert!(cheap.0.contains("m=8192,t=1,p=1"), "{}", cheap.0);
        assert!(hasher.verify(&password, &cheap).await.unwrap());
        assert!(matches!(
            hasher
                .verify(&password, &PasswordHash("$argon2id$nonsense".into()))
                .await,
            Err(HashError::Failed(_))
        ));
    }

    #[tokio::test]
    async fn working_memory_is_reused_and_never_kept_beyond_one_buffer_per_slot() {
        let hasher = Argon2Hasher::owasp().bounded(HashBound {
            concurrency: 2,
            max_wait: Duration::from_secs(30),
        });
        let password = Password::parse("correct horse battery").unwrap();
        let hashes = futures_util::future::join_all((0..4).map(|_| hasher.hash(&password))).await;
        let cheap = Argon2Hasher::with(8_192, 1, 1)
            .hash(&password)
            .await
            .unwrap();
        assert!(hasher.verify(&password, &cheap).await.unwrap());
        let kept = hasher.scratch.buffers.lock().unwrap();
        assert!(hashes.iter().all(Result::is_ok));
        assert!((1..=2).contains(&kept.len()), "{} kept", kept.len());
        assert!(kept.iter().all(|b| b.len() == 19_456), "only our own size");
    }

    /// Runs `n` jobs at once through `slots`, each a real OWASP hash that
    /// counts how many jobs are inside their slot; returns the results
    /// and the most seen inside at once.
    async fn storm(slots: &HashSlots, n: usize) -> (Vec<Result<(), HashError>>, usize) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs = (0..n).map(|_| {
            let (slots, inside, most) = (slots.clone(), inside.clone(), most.clone());
            tokio::spawn(async move {
                slots
                    .run(move || {
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        let hasher = Argon2Hasher::owasp();
                        let hashed =
                            hash_phc(&hasher.argon2(), &hasher.scratch, b"correct horse battery")
                                .is_ok();
                        inside.fetch_sub(1, Ordering::SeqCst);
                        assert!(hashed);
                    })
                    .await
            })
        });
        let results = futures_util::future::join_all(jobs)
            .await
            .into_iter()
            .map(|joined| joined.unwrap())
            .collect();
        (results, most.load(Ordering::SeqCst))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_one_slot_and_a_short_wait_a_storm_is_partly_shed_and_never_overlaps() {
        let slots = HashSlots::new(HashBound {
            concurrency: 1,
            max_wait: Duration::from_millis(10),
        });
        let (results, most) = storm(&slots, 8).await;
        assert_eq!(most, 1, "never more than one hash at once");
        let done = results.iter().filter(|r| r.is_ok()).count();
        let busy = results
            .iter()
            .filter(|r| {
                matches!(
                    r,
                    Err(HashError::Busy {
                        retry_after_secs: 1
                    })
                )
            })
            .count();
        assert!(done >= 1, "the first caller gets the slot");
        assert!(busy >= 1, "a 45 ms hash outlasts a 10 ms wait");
        assert_eq!(done + busy, 8, "{results:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_enough_slots_and_wait_every_caller_is_served_within_the_bound() {
        let slots = HashSlots::new(HashBound {
            concurrency: 2,
            max_wait: Duration::from_secs(30),
        });
        let (results, most) = storm(&slots, 6).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert!((1..=2).contains(&most), "{most} at once");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slot_stays_taken_until_the_hash_ends_even_if_its_caller_left() {
        let slots = HashSlots::new(HashBound {
            concurrency: 1,
            max_wait: Duration::ZERO,
        });
        let slow = slots.run(|| std::thread::sleep(Duration::from_millis(400)));
        // The caller gives up (a client hanging up drops the request future).
        assert!(
            tokio::time::timeout(Duration::from_millis(50), slow)
                .await
                .is_err()
        );
        assert!(matches!(
            slots.run(|| ()).await,
            Err(HashError::Busy { .. })
        ));
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(slots.run(|| ()).await.is_ok(), "freed once the work ended");
    }

    #[tokio::test]
    async fn a_busy_hasher_says_when_to_retry_in_whole_seconds() {
        let bound = |ms| HashBound {
            concurrency: 1,
            max_wait: Duration::from_millis(ms),
        };
        assert_eq!(HashSlots::new(bound(0)).retry_after_secs(), 1);
        assert_eq!(HashSlots::new(bound(2_000)).retry_after_secs(), 2);
        assert_eq!(HashSlots::new(bound(2_001)).retry_after_secs(), 3);
        assert!(HashBound::default().concurrency >= 1);
        let hasher = Argon2Hasher::owasp().bounded(bound(0));
        assert!(hasher.describe().contains("1 at once, wait <= 0 ms"));
    }

    #[test]
    fn otps_are_six_digits_and_vary() {
        let codes: std::collections::HashSet<String> = (0..200)
            .map(|_| RandomOtps.new_otp().as_str().to_owned())
            .collect();
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()))
        );
        assert!(codes.len() > 190);
    }
}
