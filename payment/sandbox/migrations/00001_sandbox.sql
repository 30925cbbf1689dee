-- +goose Up
-- The sandbox processor's own books, kept apart from the payment service's
-- tables as an external processor's would be. They hold outcomes, amounts
-- and ids: never a card.
CREATE TABLE sandbox_charges (
    id                  VARCHAR(64)   PRIMARY KEY,
    idempotency_key     VARCHAR(255)  NOT NULL,
    payment_id          UUID          NOT NULL,
    amount              NUMERIC(10,2) NOT NULL,
    currency            VARCHAR(3)    NOT NULL,
    outcome             VARCHAR(20)   NOT NULL,
    failure_code        VARCHAR(50),
    refunded_amount     NUMERIC(10,2) NOT NULL DEFAULT 0,
    -- The webhook announcing the outcome: the same event id on every
    -- attempt, so the receiver recognises a repeat.
    webhook_event_id    VARCHAR(64)   NOT NULL,
    delivery_attempts   INTEGER       NOT NULL DEFAULT 0,
    -- When the dispatcher may try next; NULL once delivered. A dispatcher
    -- that takes a row pushes it ahead by a lease, so a crashed one's rows
    -- come due again.
    next_delivery_at    TIMESTAMPTZ,
    delivered_at        TIMESTAMPTZ,
    last_delivery_error TEXT,
    created_at          TIMESTAMPTZ   NOT NULL DEFAULT now(),
    CONSTRAINT sandbox_charges_idempotency_key_key UNIQUE (idempotency_key),
    CONSTRAINT sandbox_charges_outcome_check CHECK (outcome IN ('succeeded', 'failed')),
    CONSTRAINT sandbox_charges_refunded_check CHECK (refunded_amount >= 0 AND refunded_amount <= amount)
);

-- The dispatcher's lookup of webhooks due.
CREATE INDEX sandbox_charges_due_idx ON sandbox_charges (next_delivery_at) WHERE delivered_at IS NULL;

CREATE TABLE sandbox_refunds (
    id              VARCHAR(64)   PRIMARY KEY,
    idempotency_key VARCHAR(255)  NOT NULL,
    charge_id       VARCHAR(64)   NOT NULL REFERENCES sandbox_charges (id),
    amount          NUMERIC(10,2) NOT NULL,
    created_at      TIMESTAMPTZ   NOT NULL DEFAULT now(),
    CONSTRAINT sandbox_refunds_idempotency_key_key UNIQUE (idempotency_key),
    CONSTRAINT sandbox_refunds_amount_check CHECK (amount > 0)
);

-- +goose Down
DROP TABLE sandbox_refunds;
DROP TABLE sandbox_charges;
