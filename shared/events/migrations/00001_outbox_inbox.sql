-- +goose Up
-- Events waiting to be published. The producer inserts a row in the same
-- transaction as its state change; the relay publishes it and sets
-- published_at. created_at defaults to clock_timestamp() rather than now() so
-- several events enqueued in one transaction keep their order.
CREATE TABLE outbox (
    id           uuid        PRIMARY KEY,
    type         text        NOT NULL,
    payload      jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    published_at timestamptz
);

-- The relay only ever looks for unpublished rows, oldest first; a partial
-- index keeps that lookup small however many published rows remain.
CREATE INDEX outbox_unpublished_idx ON outbox (created_at) WHERE published_at IS NULL;

-- The relay deletes published rows after a retention period; this index lets
-- it find them without scanning the table.
CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Events a consumer group has already applied, written in the same
-- transaction as the effect so a redelivered event is recognised and skipped.
CREATE TABLE inbox (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- +goose Down
DROP TABLE inbox;
DROP TABLE outbox;
