//! `Argon2Hasher`: Argon2id PHC strings computed on the blocking pool,
//! within `HashSlots`, in reused working memory.

use std::sync::{Arc, Mutex, PoisonError};

use argon2::{
    Algorithm, Argon2, Block, Params, Version,
    password_hash::{
        self, Output, ParamsString, PasswordHash as Phc, Salt, SaltString, rand_core::OsRng,
    },
};
use async_trait::async_trait;

use super::{ARGON2_ITERATIONS, ARGON2_LANES, ARGON2_MEMORY_KIB, HashBound, HashSlots};
use crate::{
    domain::account::{Password, PasswordHash},
    ports::{HashError, PasswordHasher},
};

/// Argon2 working memory kept between hashes: at most one buffer per slot,
/// reused. With a fresh 19 MiB allocation per hash, glibc kept the freed
/// buffers in its heap (fragmented by the requests' small allocations): a
/// 500-login storm through 2 slots peaked at 357-457 MiB RSS and grew with
/// the wait; with reused buffers it peaks at 68 MiB (docs/benchmarks.md).
pub(super) struct Scratch {
    pub(super) buffers: Mutex<Vec<Vec<Block>>>,
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
    pub(super) scratch: Arc<Scratch>,
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

    pub(super) fn argon2(&self) -> Argon2<'static> {
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
pub(super) fn hash_phc(
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
