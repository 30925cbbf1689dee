-- +goose Up
-- The notification log: one row per message to one user on one channel. The
-- event consumer inserts it (status pending, or skipped) in the transaction
-- that records the event in the inbox; the dispatcher sends it afterwards,
-- outside any transaction, and records the outcome here.
CREATE TABLE notifications (
    id                   UUID         PRIMARY KEY,
    event_id             UUID         NOT NULL,
    event_type           VARCHAR(50)  NOT NULL,
    -- Two events can mean the same message (order.updated to cancelled and
    -- order.cancelled, a payment.processed published twice): the key names
    -- the message, e.g. order_confirmed:<order id>.
    dedupe_key           VARCHAR(200) NOT NULL,
    user_id              UUID         NOT NULL,
    channel              VARCHAR(10)  NOT NULL,
    template             VARCHAR(50)  NOT NULL,
    -- What the event said about the order or payment, rendered at send time.
    details              JSONB        NOT NULL DEFAULT '{}',
    status               VARCHAR(10)  NOT NULL DEFAULT 'pending',
    attempts             INTEGER      NOT NULL DEFAULT 0,
    -- Attempts that ended without an outcome (the process stopped mid-send):
    -- a duplicate is possible if one of them reached the provider.
    interrupted_attempts INTEGER      NOT NULL DEFAULT 0,
    next_attempt_at      TIMESTAMPTZ  NOT NULL DEFAULT now(),
    -- Set while an attempt is in flight; a claim left behind by a crash is
    -- taken over once next_attempt_at (the lease) has passed.
    claim_id             UUID,
    recipient            TEXT,
    provider_id          VARCHAR(255),
    error                TEXT,
    created_at           TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at           TIMESTAMPTZ  NOT NULL DEFAULT now(),
    sent_at              TIMESTAMPTZ,
    -- At most one message per event and channel, however often the event is
    -- delivered, and per message and channel, whichever event asks for it.
    CONSTRAINT notifications_event_channel_key UNIQUE (event_id, channel),
    CONSTRAINT notifications_dedupe_channel_key UNIQUE (dedupe_key, channel),
    CONSTRAINT notifications_channel_check CHECK (channel IN ('email', 'sms', 'push')),
    CONSTRAINT notifications_status_check CHECK (status IN ('pending', 'retrying', 'sent', 'failed', 'skipped')),
    CONSTRAINT notifications_attempts_check CHECK (attempts >= 0 AND interrupted_attempts BETWEEN 0 AND attempts),
    CONSTRAINT notifications_sent_at_check CHECK ((status = 'sent') = (sent_at IS NOT NULL))
);

-- The dispatcher's question, "what is due?", over the unfinished rows only.
CREATE INDEX notifications_due_idx ON notifications (next_attempt_at) WHERE status IN ('pending', 'retrying');

-- A user's log, newest first.
CREATE INDEX notifications_user_idx ON notifications (user_id, created_at DESC, id DESC);

-- Channels a user wants; no row means the defaults (all on).
CREATE TABLE preferences (
    user_id    UUID        PRIMARY KEY,
    email      BOOLEAN     NOT NULL,
    sms        BOOLEAN     NOT NULL,
    push       BOOLEAN     NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The device push messages go to: one per user, the latest registered.
CREATE TABLE push_tokens (
    user_id    UUID        PRIMARY KEY,
    token      TEXT        NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT push_tokens_token_check CHECK (length(token) BETWEEN 1 AND 4096)
);

-- What order.created said of an order: payment events do not carry the lines
-- and totals the order confirmation lists.
CREATE TABLE order_summaries (
    order_id     UUID          PRIMARY KEY,
    order_number VARCHAR(50)   NOT NULL,
    user_id      UUID          NOT NULL,
    total_amount NUMERIC(12,2) NOT NULL,
    currency     VARCHAR(3)    NOT NULL,
    items        JSONB         NOT NULL,
    created_at   TIMESTAMPTZ   NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE order_summaries;
DROP TABLE push_tokens;
DROP TABLE preferences;
DROP TABLE notifications;
