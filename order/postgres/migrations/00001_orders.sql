-- +goose Up
-- The seed's orders table, with TIMESTAMPTZ times, NOT NULL amounts, the
-- statuses of the state machine, and what the order knows of its payment
-- (never the card: only the brand and last four digits the payment service
-- reports). Totals are stored, not derived, so an order keeps the prices it
-- was placed at; the CHECKs keep them consistent whoever writes.
CREATE TABLE orders (
    id               UUID          PRIMARY KEY,
    user_id          UUID          NOT NULL,
    order_number     VARCHAR(50)   NOT NULL,
    status           VARCHAR(20)   NOT NULL DEFAULT 'pending',
    subtotal         NUMERIC(12,2) NOT NULL,
    tax_amount       NUMERIC(12,2) NOT NULL DEFAULT 0,
    shipping_amount  NUMERIC(12,2) NOT NULL DEFAULT 0,
    discount_amount  NUMERIC(12,2) NOT NULL DEFAULT 0,
    total_amount     NUMERIC(12,2) NOT NULL,
    currency         VARCHAR(3)    NOT NULL DEFAULT 'USD',
    shipping_address JSONB         NOT NULL,
    billing_address  JSONB         NOT NULL,
    notes            TEXT,
    payment_id       UUID,
    payment_status   VARCHAR(20),
    card_brand       VARCHAR(20),
    card_last4       VARCHAR(4),
    payment_failure  VARCHAR(100),
    refunded_amount  NUMERIC(12,2) NOT NULL DEFAULT 0,
    created_at       TIMESTAMPTZ   NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ   NOT NULL DEFAULT now(),
    CONSTRAINT orders_order_number_key UNIQUE (order_number),
    CONSTRAINT orders_status_check CHECK (status IN ('pending', 'confirmed', 'shipped', 'delivered', 'cancelled', 'refunded')),
    CONSTRAINT orders_amounts_check CHECK (subtotal >= 0 AND tax_amount >= 0 AND shipping_amount >= 0
        AND discount_amount >= 0 AND refunded_amount >= 0),
    CONSTRAINT orders_total_check CHECK (total_amount = subtotal + tax_amount + shipping_amount - discount_amount),
    CONSTRAINT orders_payment_status_check CHECK (payment_status IN ('pending', 'captured', 'failed', 'partially_refunded', 'refunded')),
    CONSTRAINT orders_card_last4_check CHECK (card_last4 ~ '^[0-9]{4}$')
);

-- Order history: a user's orders newest first, and everyone's for an admin,
-- optionally by status.
CREATE INDEX orders_user_id_created_at_idx ON orders (user_id, created_at DESC, id DESC);
CREATE INDEX orders_created_at_idx ON orders (created_at DESC, id DESC);
CREATE INDEX orders_status_created_at_idx ON orders (status, created_at DESC, id DESC);

CREATE TABLE order_items (
    id          UUID          PRIMARY KEY,
    order_id    UUID          NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line        SMALLINT      NOT NULL,
    product_id  UUID          NOT NULL,
    variant_id  UUID,
    sku         VARCHAR(100)  NOT NULL,
    name        VARCHAR(255)  NOT NULL,
    quantity    INTEGER       NOT NULL,
    unit_price  NUMERIC(10,2) NOT NULL,
    total_price NUMERIC(12,2) NOT NULL,
    created_at  TIMESTAMPTZ   NOT NULL DEFAULT now(),
    CONSTRAINT order_items_line_key UNIQUE (order_id, line),
    CONSTRAINT order_items_quantity_check CHECK (quantity > 0),
    CONSTRAINT order_items_price_check CHECK (unit_price >= 0 AND total_price = unit_price * quantity)
);

-- Every status an order has had, with why: the history the API shows and
-- the audit trail of the saga.
CREATE TABLE order_status_history (
    id              BIGSERIAL   PRIMARY KEY,
    order_id        UUID        NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    status          VARCHAR(20) NOT NULL,
    previous_status VARCHAR(20),
    reason          TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX order_status_history_order_id_idx ON order_status_history (order_id, id);

-- Idempotency-Key of POST /orders, per user. order_id is fixed when the key
-- is first seen, so every attempt of the request works on the same order
-- (and the same reservation and payment upstream, which are idempotent per
-- order id). An attempt holds the key until locked_until; once the response
-- is stored the key is done and answers repeats. The request hash is an
-- HMAC: the request holds a card number. Keys are kept at least 24 h; the
-- service deletes older ones.
CREATE TABLE idempotency_keys (
    user_id         UUID         NOT NULL,
    key             VARCHAR(255) NOT NULL,
    request_hash    BYTEA        NOT NULL,
    order_id        UUID         NOT NULL,
    state           VARCHAR(20)  NOT NULL DEFAULT 'in_progress',
    locked_until    TIMESTAMPTZ  NOT NULL,
    response_status INTEGER,
    response_body   JSONB,
    created_at      TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ  NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key),
    CONSTRAINT idempotency_keys_state_check CHECK (state IN ('in_progress', 'done')),
    CONSTRAINT idempotency_keys_response_check CHECK ((state = 'done') = (response_status IS NOT NULL AND response_body IS NOT NULL))
);

CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE order_status_history;
DROP TABLE order_items;
DROP TABLE orders;
