-- Accounts, plans and subscriptions. Timestamps are UTC (timestamptz).
CREATE TABLE users (
    id                  UUID PRIMARY KEY,
    email               TEXT NOT NULL,
    password_hash       TEXT NOT NULL,
    full_name           TEXT,
    locale              TEXT NOT NULL CHECK (locale IN ('en', 'vi')),
    role                TEXT NOT NULL CHECK (role IN ('user', 'admin')),
    status              TEXT NOT NULL CHECK (status IN ('unverified', 'active')),
    otp_code            TEXT,
    otp_expires_at      TIMESTAMPTZ,
    otp_sent_at         TIMESTAMPTZ,
    otp_attempts        INTEGER NOT NULL DEFAULT 0 CHECK (otp_attempts >= 0),
    failed_logins       INTEGER NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
    login_blocked_until TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);
-- One account per address, whatever its case.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_created_at ON users (created_at DESC);

CREATE TABLE plans (
    id            UUID PRIMARY KEY,
    code          TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    description   TEXT,
    price_minor   BIGINT NOT NULL CHECK (price_minor >= 0),
    currency      TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    billing_cycle TEXT NOT NULL CHECK (billing_cycle IN ('monthly', 'yearly')),
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE subscriptions (
    id                  UUID PRIMARY KEY,
    user_id             UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    plan_code           TEXT NOT NULL REFERENCES plans (code) ON UPDATE CASCADE ON DELETE RESTRICT,
    status              TEXT NOT NULL CHECK (status IN ('trialing', 'active', 'cancelled', 'expired', 'past_due')),
    trial_start         TIMESTAMPTZ,
    trial_end           TIMESTAMPTZ,
    period_start        TIMESTAMPTZ,
    period_end          TIMESTAMPTZ,
    cancelled_at        TIMESTAMPTZ,
    cancellation_reason TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);
-- At most one live subscription per user.
CREATE UNIQUE INDEX subscriptions_one_live_per_user ON subscriptions (user_id)
    WHERE status IN ('trialing', 'active', 'past_due');
CREATE INDEX subscriptions_by_user ON subscriptions (user_id, created_at DESC);
CREATE INDEX subscriptions_trial_due ON subscriptions (trial_end) WHERE status = 'trialing';
CREATE INDEX subscriptions_period_due ON subscriptions (period_end) WHERE status IN ('active', 'past_due');
