-- +goose Up
-- Every statement that adds outbox rows sends a NOTIFY on channel
-- outbox_insert. PostgreSQL delivers it when the transaction commits (never
-- for a rolled-back one) and folds duplicates within a transaction into one,
-- so a relay listening on the channel (Relay.ListenURL) publishes a committed
-- event at once instead of at its next poll.
-- +goose StatementBegin
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox_insert', '');
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- +goose Down
DROP TRIGGER outbox_notify ON outbox;
DROP FUNCTION outbox_notify();
