-- +goose Up
-- The seed's payments table, plus what the saga needs: the customer, the
-- card as brand and last four digits (never the number), the failure code,
-- what was captured and refunded, and when the order was cancelled.
-- TIMESTAMPTZ times and NOT NULL where the service always has a value.
CREATE TABLE payments (
    id                      UUID          PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id                UUID          NOT NULL,
    user_id                 UUID          NOT NULL,
    amount                  NUMERIC(10,2) NOT NULL,
    currency                VARCHAR(3)    NOT NULL DEFAULT 'USD',
    status                  VARCHAR(20)   NOT NULL DEFAULT 'pending',
    payment_method          VARCHAR(50)   NOT NULL,
    payment_provider        VARCHAR(50)   NOT NULL,
    provider_transaction_id VARCHAR(255),
    provider_response       JSONB,
    card_brand              VARCHAR(20)   NOT NULL,
    card_last4              CHAR(4)       NOT NULL,
    failure_code            VARCHAR(50),
    captured_amount         NUMERIC(10,2) NOT NULL DEFAULT 0,
    refunded_amount         NUMERIC(10,2) NOT NULL DEFAULT 0,
    cancel_requested_at     TIMESTAMPTZ,
    processed_at            TIMESTAMPTZ,
    created_at              TIMESTAMPTZ   NOT NULL DEFAULT now(),
    updated_at              TIMESTAMPTZ   NOT NULL DEFAULT now(),
    -- One payment per order: the order id is the charge's idempotency key.
    CONSTRAINT payments_order_id_key UNIQUE (order_id),
    -- A webhook finds its payment by the provider's charge id.
    CONSTRAINT payments_provider_transaction_id_key UNIQUE (provider_transaction_id),
    CONSTRAINT payments_status_check CHECK (status IN ('pending', 'completed', 'failed', 'refunded', 'partially_refunded')),
    CONSTRAINT payments_amount_check CHECK (amount > 0),
    -- Money never leaves more than came in, whatever the code does.
    CONSTRAINT payments_captured_check CHECK (captured_amount >= 0 AND captured_amount <= amount),
    CONSTRAINT payments_refunded_check CHECK (refunded_amount >= 0 AND refunded_amount <= captured_amount),
    -- Only the last four digits fit: a full number cannot be stored by mistake.
    CONSTRAINT payments_card_last4_check CHECK (card_last4 ~ '^[0-9]{4}$')
);

-- A customer's payments, newest first; the admin's list of everyone's.
CREATE INDEX payments_user_id_idx ON payments (user_id, created_at DESC, id DESC);
CREATE INDEX payments_created_at_idx ON payments (created_at DESC, id DESC);

CREATE TABLE refunds (
    id                 UUID          PRIMARY KEY DEFAULT gen_random_uuid(),
    payment_id         UUID          NOT NULL REFERENCES payments (id) ON DELETE CASCADE,
    amount             NUMERIC(10,2) NOT NULL,
    reason             TEXT,
    status             VARCHAR(20)   NOT NULL DEFAULT 'pending',
    provider_refund_id VARCHAR(255),
    -- The admin's Idempotency-Key and a hash of the request it came with.
    idempotency_key    VARCHAR(255),
    request_hash       BYTEA,
    processed_at       TIMESTAMPTZ,
    created_at         TIMESTAMPTZ   NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ   NOT NULL DEFAULT now(),
    CONSTRAINT refunds_amount_check CHECK (amount > 0),
    CONSTRAINT refunds_status_check CHECK (status IN ('pending', 'completed', 'failed')),
    CONSTRAINT refunds_idempotency_key_key UNIQUE (idempotency_key),
    -- A provider refund is recorded once, however often a step is retried.
    CONSTRAINT refunds_provider_refund_id_key UNIQUE (provider_refund_id)
);

CREATE INDEX refunds_payment_id_idx ON refunds (payment_id, created_at);

-- Provider notifications already applied: a replayed one is refused.
CREATE TABLE webhook_events (
    provider    VARCHAR(50)  NOT NULL,
    event_id    VARCHAR(255) NOT NULL,
    type        VARCHAR(50)  NOT NULL,
    received_at TIMESTAMPTZ  NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, event_id)
);

-- +goose Down
DROP TABLE webhook_events;
DROP TABLE refunds;
DROP TABLE payments;
