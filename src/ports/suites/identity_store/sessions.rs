//! Sessions: they end on logout, on a password change and at expiry.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    domain::account::{PasswordHash, Session, User},
    ports::{IdentityStore, StoreError},
};

use super::{insert, now};

/// Sessions resolve to their user until they expire or are deleted
/// (deleting twice is fine, others stay); a password change only from the
/// checked hash ends every earlier session and opens its own; expired
/// ones are cleaned up.
pub async fn sessions_end_on_logout_password_change_and_expiry(
    store: &dyn IdentityStore,
    prefix: &str,
) {
    let user = insert(store, prefix, "sessions").await;
    let at = now();
    let (a, b) = (
        Session::new(Uuid::new_v4(), user.id, at),
        Session::new(Uuid::new_v4(), user.id, at),
    );
    store
        .insert_session(&a, &user.password_hash)
        .await
        .expect("session");
    store
        .insert_session(&b, &user.password_hash)
        .await
        .expect("session");
    let found = store.session_user(a.id, at).await.expect("read");
    assert_eq!(found.map(|u| u.id), Some(user.id));
    assert!(
        store
            .session_user(a.id, a.expires_at)
            .await
            .expect("read")
            .is_none(),
        "expired"
    );

    store.delete_session(a.id).await.expect("logout");
    store.delete_session(a.id).await.expect("twice is fine");
    assert!(
        store.session_user(a.id, at).await.expect("read").is_none(),
        "logged out"
    );
    assert!(
        store.session_user(b.id, at).await.expect("read").is_some(),
        "others stay"
    );
    a_password_change_ends_earlier_sessions(store, &user, b.id, at).await;
}

/// A password change (only from the hash that was checked) ends every
/// earlier session (`earlier`) and opens its own; expired ones are cleaned.
async fn a_password_change_ends_earlier_sessions(
    store: &dyn IdentityStore,
    user: &User,
    earlier: Uuid,
    at: DateTime<Utc>,
) {
    let c = Session::new(Uuid::new_v4(), user.id, at);
    let new_hash = PasswordHash("$argon2id$new".into());
    assert!(
        matches!(
            store
                .change_password(user.id, &new_hash, &new_hash, &c, at)
                .await,
            Err(StoreError::Conflict)
        ),
        "only from the hash that was checked"
    );
    store
        .change_password(user.id, &user.password_hash, &new_hash, &c, at)
        .await
        .expect("change");
    assert!(
        store
            .session_user(earlier, at)
            .await
            .expect("read")
            .is_none(),
        "earlier sessions end"
    );
    assert!(
        store.session_user(c.id, at).await.expect("read").is_some(),
        "the new one lives"
    );
    assert_eq!(
        store
            .user_by_id(user.id)
            .await
            .expect("read")
            .expect("user")
            .password_hash,
        new_hash
    );
    let gone = store
        .delete_expired_sessions(c.expires_at)
        .await
        .expect("cleanup");
    assert!(gone >= 1);
    assert!(
        store.session_user(c.id, at).await.expect("read").is_none(),
        "forgotten"
    );
}
