//! Account benchmarks on real PostgreSQL and RabbitMQ: register, verify and
//! login throughput and latency, next to the Argon2id hash and verify that
//! register and login must pay, measured in the same run — so the share of
//! everything else on the request path is visible.
//!
//! Run: `scripts/bench.sh` (starts the servers, then `cargo bench`).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::{StreamExt, stream};
use smap_identity::{
    adapters::{
        amqp::{AmqpBroker, AmqpConfig, AmqpEventPublisher},
        clock::{RandomIds, SystemClock},
        credentials::{
            ARGON2_ITERATIONS, ARGON2_LANES, ARGON2_MEMORY_KIB, Argon2Hasher, RandomOtps,
        },
        postgres::{self, PgIdentityStore},
        store_plans::StorePlanCatalog,
    },
    domain::{
        account::{AccountService, BillingService, Password, Registration},
        email::Email,
        events::EventService,
        locale::Locale,
        otp::OtpCode,
    },
    ports::{IdentityStore, PasswordHasher},
};
use uuid::Uuid;

mod support;

use support::env;

const USERS: usize = 200;
const CONCURRENCY: usize = 4;

struct Run {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

async fn measure<F, Fut>(n: usize, op: F) -> Run
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    let mut samples: Vec<Duration> = stream::iter(0..n)
        .map(|i| {
            let fut = op(i);
            async move {
                let t = Instant::now();
                fut.await;
                t.elapsed()
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    samples.sort_unstable();
    let at = |p: f64| {
        samples[((n as f64 * p).ceil() as usize)
            .saturating_sub(1)
            .min(n - 1)]
    };
    Run {
        rate,
        p50: at(0.5),
        p99: at(0.99),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let base = env("DATABASE_URL");
    let mut admin = AsyncPgConnection::establish(&base).await.unwrap();
    let name = format!("bench_{}", Uuid::new_v4().simple());
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
    let pool = postgres::pool(&url, 16).unwrap();
    postgres::migrate(&pool).await.unwrap();
    let store: Arc<dyn IdentityStore> = Arc::new(PgIdentityStore::new(pool.clone()));
    let broker = AmqpBroker::connect(&env("AMQP_URL"), AmqpConfig::default()).await;
    let clock = Arc::new(SystemClock);
    let ids = Arc::new(RandomIds);
    let events = Arc::new(EventService::new(
        Arc::new(AmqpEventPublisher::new(broker.clone())),
        clock.clone(),
        ids.clone(),
        Arc::new(StorePlanCatalog::new(store.clone())),
    ));
    let hasher = Arc::new(Argon2Hasher::owasp());
    let billing = Arc::new(BillingService::new(
        store.clone(),
        events.clone(),
        clock.clone(),
        ids.clone(),
    ));
    let accounts = Arc::new(AccountService::new(
        store.clone(),
        hasher.clone(),
        Arc::new(RandomOtps),
        events,
        billing,
        clock,
        ids,
    ));
    let password = Password::parse("correct horse battery staple").unwrap();
    let emails: Vec<Email> = (0..USERS)
        .map(|i| Email::parse(&format!("bench{i}@example.com")).unwrap())
        .collect();

    let hash_only = measure(USERS, |_| {
        let hasher = hasher.clone();
        let password = password.clone();
        async move {
            hasher.hash(&password).await.unwrap();
        }
    })
    .await;
    let register = measure(USERS, |i| {
        let accounts = accounts.clone();
        let registration = Registration {
            email: emails[i].clone(),
            password: password.clone(),
            full_name: None,
            locale: Locale::En,
        };
        async move {
            accounts.register(registration).await.unwrap();
        }
    })
    .await;
    let mut otps = Vec::with_capacity(USERS);
    for email in &emails {
        let user = store.user_by_email(email).await.unwrap().unwrap();
        otps.push(user.otp.unwrap().code);
    }
    let verify = measure(USERS, |i| {
        let accounts = accounts.clone();
        let (email, otp): (Email, OtpCode) = (emails[i].clone(), otps[i].clone());
        async move {
            accounts.verify_otp(&email, &otp).await.unwrap();
        }
    })
    .await;
    let stored = store
        .user_by_email(&emails[0])
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    let verify_only = measure(USERS, |_| {
        let hasher = hasher.clone();
        let password = password.clone();
        let stored = stored.clone();
        async move {
            assert!(hasher.verify(&password, &stored).await.unwrap());
        }
    })
    .await;
    let login = measure(USERS, |i| {
        let accounts = accounts.clone();
        let email = emails[i].clone();
        let password = password.clone();
        async move {
            accounts.login(&email, &password).await.unwrap();
        }
    })
    .await;

    println!(
        "Argon2id m={ARGON2_MEMORY_KIB} KiB, t={ARGON2_ITERATIONS}, p={ARGON2_LANES}; {USERS} users, {CONCURRENCY} at a time\n"
    );
    println!(
        "| operation | throughput | p50 | p99 | hash alone (same run) | share of the hash in p50 |"
    );
    println!("|---|---|---|---|---|---|");
    let row = |name: &str, r: &Run, base: Option<&Run>| {
        let (alone, share) = match base {
            Some(b) => (
                format!("{:.1}/s, p50 {}", b.rate, ms(b.p50)),
                format!("{:.0} %", b.p50.as_secs_f64() / r.p50.as_secs_f64() * 100.0),
            ),
            None => ("— (no hash)".to_owned(), "—".to_owned()),
        };
        println!(
            "| {name} | {:.1}/s | {} | {} | {alone} | {share} |",
            r.rate,
            ms(r.p50),
            ms(r.p99)
        );
    };
    row(
        "register (hash + insert + publish in the transaction)",
        &register,
        Some(&hash_only),
    );
    row("verify OTP (activate + trial + publish)", &verify, None);
    row("login (verify password + read)", &login, Some(&verify_only));

    // The auth check every signed-in request pays since sessions are
    // revocable: one indexed read (session joined with its user), next to
    // the primary-key read of the user that `/users/me` did before, and a
    // bare round trip on the same pool — the floor of any read.
    let mut sessions = Vec::with_capacity(USERS);
    let mut user_ids = Vec::with_capacity(USERS);
    for email in &emails {
        let (user, session) = accounts.login(email, &password).await.unwrap();
        sessions.push(session.id);
        user_ids.push(user.id);
    }
    let reads = USERS * 25;
    let session_check = measure(reads, |i| {
        let store = store.clone();
        let id = sessions[i % USERS];
        async move {
            let user = store.session_user(id, chrono::Utc::now()).await.unwrap();
            assert!(user.is_some());
        }
    })
    .await;
    let user_read = measure(reads, |i| {
        let store = store.clone();
        let id = user_ids[i % USERS];
        async move {
            assert!(store.user_by_id(id).await.unwrap().is_some());
        }
    })
    .await;
    let round_trip = measure(reads, |_| {
        let pool = pool.clone();
        async move {
            let mut conn = pool.get().await.unwrap();
            diesel::sql_query("SELECT 1")
                .execute(&mut conn)
                .await
                .unwrap();
        }
    })
    .await;
    println!("\nPer-request auth check, {reads} reads, {CONCURRENCY} at a time\n");
    println!("| read | throughput | p50 | p99 | p50 over a bare round trip |");
    println!("|---|---|---|---|---|");
    for (name, r) in [
        (
            "session check (session ⨝ user by primary key)",
            &session_check,
        ),
        ("user by id (what `/users/me` read before)", &user_read),
        ("`SELECT 1` (baseline, same pool)", &round_trip),
    ] {
        println!(
            "| {name} | {:.0}/s | {:.3} ms | {:.3} ms | +{:.3} ms |",
            r.rate,
            r.p50.as_secs_f64() * 1000.0,
            r.p99.as_secs_f64() * 1000.0,
            (r.p50.as_secs_f64() - round_trip.p50.as_secs_f64()) * 1000.0
        );
    }
    broker.close().await;
}
