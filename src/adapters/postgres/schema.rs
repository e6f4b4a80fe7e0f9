//! Diesel's view of the tables in `migrations/`.

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Text,
        password_hash -> Text,
        full_name -> Nullable<Text>,
        locale -> Text,
        role -> Text,
        status -> Text,
        otp_code -> Nullable<Text>,
        otp_expires_at -> Nullable<Timestamptz>,
        otp_sent_at -> Nullable<Timestamptz>,
        otp_attempts -> Int4,
        failed_logins -> Int4,
        login_blocked_until -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    plans (id) {
        id -> Uuid,
        code -> Text,
        name -> Text,
        description -> Nullable<Text>,
        price_minor -> Int8,
        currency -> Text,
        billing_cycle -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    subscriptions (id) {
        id -> Uuid,
        user_id -> Uuid,
        plan_code -> Text,
        status -> Text,
        trial_start -> Nullable<Timestamptz>,
        trial_end -> Nullable<Timestamptz>,
        period_start -> Nullable<Timestamptz>,
        period_end -> Nullable<Timestamptz>,
        cancelled_at -> Nullable<Timestamptz>,
        cancellation_reason -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    sessions (id) {
        id -> Uuid,
        user_id -> Uuid,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    outbox (id) {
        id -> Int8,
        event_id -> Text,
        aggregate -> Text,
        routing_key -> Text,
        body -> Text,
        traceparent -> Nullable<Text>,
        tracestate -> Nullable<Text>,
        created_at -> Timestamptz,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        locked_until -> Nullable<Timestamptz>,
        published_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(subscriptions -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(users, plans, subscriptions, sessions, outbox);
