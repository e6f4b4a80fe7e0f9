-- Transactional outbox (DESIGN §10, EVENT_DELIVERY=outbox): each event is
-- written here in the transaction of the change it reports; a relay in every
-- API process publishes it. `id` is the order of writing; `aggregate`
-- (`user:<uuid>`, `subscription:<uuid>`) is the ordering key: a row is not
-- published while an older unpublished row of its aggregate exists.
CREATE TABLE outbox (
    id           BIGSERIAL PRIMARY KEY,
    event_id     TEXT NOT NULL UNIQUE,
    aggregate    TEXT NOT NULL,
    routing_key  TEXT NOT NULL,
    -- The sealed envelope, byte for byte as it goes on the wire.
    body         TEXT NOT NULL,
    -- The W3C trace context of the request that wrote the row, so the
    -- published message continues that request's trace.
    traceparent  TEXT,
    tracestate   TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    -- A relay's claim: no other relay takes the row before this time.
    locked_until TIMESTAMPTZ,
    published_at TIMESTAMPTZ
);
CREATE INDEX outbox_unpublished ON outbox (aggregate, id) WHERE published_at IS NULL;
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
