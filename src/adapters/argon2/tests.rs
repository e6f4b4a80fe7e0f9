//! Argon2 hashing: format, compatibility, bounded slots, reused memory.

use std::{sync::Arc, time::Duration};

use argon2::password_hash::{PasswordHash as Phc, SaltString, rand_core::OsRng};

use super::{Argon2Hasher, HashBound, HashSlots, hasher::hash_phc};
use crate::{
    domain::account::{Password, PasswordHash},
    ports::{HashError, PasswordHasher},
};

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
