//! Each use case answers with the case of its own error enum, run against
//! the in-memory adapters.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use uuid::Uuid;

use super::*;
use crate::{
    adapters::{
        argon2::Argon2Hasher,
        memory::{
            InMemoryBroker, InMemoryEventBus, InMemoryIdentityStore, InMemoryPlanCatalog,
            ManualClock, SequentialIds,
        },
        system::RandomOtps,
    },
    domain::{email_address::Email, locale::Locale, otp::OtpCode},
};

const PASSWORD: &str = "correct horse battery";

struct World {
    accounts: AccountService,
    billing: Arc<BillingService>,
    store: Arc<InMemoryIdentityStore>,
}

fn world() -> World {
    let store = Arc::new(InMemoryIdentityStore::new());
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
    ));
    let ids = Arc::new(SequentialIds::default());
    let bus = InMemoryEventBus::new(Arc::new(InMemoryBroker::with_smap_topology()));
    let events = Arc::new(EventService::new(
        Arc::new(bus),
        clock.clone(),
        ids.clone(),
        Arc::new(InMemoryPlanCatalog::with_defaults()),
    ));
    let billing = Arc::new(BillingService::new(
        store.clone(),
        events.clone(),
        clock.clone(),
        ids.clone(),
    ));
    let accounts = AccountService::new(
        store.clone(),
        Arc::new(Argon2Hasher::with(8, 1, 1)),
        Arc::new(RandomOtps),
        events,
        billing.clone(),
        clock,
        ids,
    );
    World {
        accounts,
        billing,
        store,
    }
}

fn email(address: &str) -> Email {
    Email::parse(address).unwrap()
}

fn password(text: &str) -> Password {
    Password::parse(text).unwrap()
}

async fn register(world: &World, address: &str) -> Result<User, RegisterError> {
    world
        .accounts
        .register(Registration {
            email: email(address),
            password: password(PASSWORD),
            full_name: None,
            locale: Locale::default(),
        })
        .await
}

#[tokio::test]
async fn registration_and_login_name_their_refusals() {
    let world = world();
    register(&world, "ann@example.com").await.unwrap();
    let again = register(&world, "ann@example.com").await;
    assert!(matches!(again, Err(RegisterError::EmailTaken)), "{again:?}");

    let login = |text: &'static str| {
        let accounts = &world.accounts;
        async move {
            accounts
                .login(&email("ann@example.com"), &password(text))
                .await
        }
    };
    let unverified = login(PASSWORD).await;
    assert!(
        matches!(unverified, Err(LoginError::NotVerified)),
        "{unverified:?}"
    );
    let wrong = login("not the password").await;
    assert!(
        matches!(wrong, Err(LoginError::InvalidCredentials)),
        "{wrong:?}"
    );

    let resend = world
        .accounts
        .send_otp(&email("ann@example.com"), &password(PASSWORD))
        .await;
    assert!(
        matches!(resend, Err(SendOtpError::OtpCooldown { retry_after_secs }) if retry_after_secs > 0),
        "{resend:?}"
    );
}

#[tokio::test]
async fn a_wrong_otp_says_how_many_tries_are_left() {
    let world = world();
    let user = register(&world, "bob@example.com").await.unwrap();
    let stored = world.store.user_by_id(user.id).await.unwrap().unwrap();
    let right = stored.otp.unwrap().code;
    let wrong = OtpCode::from_number(if right == OtpCode::from_number(1) {
        2
    } else {
        1
    });

    let first = world.accounts.verify_otp(&user.email, &wrong).await;
    assert!(
        matches!(first, Err(VerifyOtpError::OtpInvalid { attempts_left: 4 })),
        "{first:?}"
    );
    let nobody = world
        .accounts
        .verify_otp(&email("nobody@example.com"), &wrong)
        .await;
    assert!(
        matches!(nobody, Err(VerifyOtpError::OtpInvalid { attempts_left: 0 })),
        "{nobody:?}"
    );
}

#[tokio::test]
async fn unknown_users_and_subscriptions_are_not_found() {
    let world = world();
    let id = Uuid::new_v4();
    assert!(matches!(
        world.accounts.user(id).await,
        Err(UserError::UserNotFound)
    ));
    let change = world
        .accounts
        .change_password(id, &password(PASSWORD), &password("a new password"))
        .await;
    assert!(
        matches!(change, Err(ChangePasswordError::WrongPassword)),
        "{change:?}"
    );
    let mine = world.billing.my_subscription(id).await;
    assert!(
        matches!(
            mine,
            Err(crate::domain::billing::MySubscriptionError::SubscriptionNotFound)
        ),
        "{mine:?}"
    );
    let deleted = world.billing.delete_plan(id).await;
    assert!(
        matches!(
            deleted,
            Err(crate::domain::billing::DeletePlanError::PlanNotFound)
        ),
        "{deleted:?}"
    );
}
