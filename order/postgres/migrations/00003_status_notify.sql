-- +goose Up
-- Every status history row wakes the order's live status streams on every
-- instance (GET /orders/{id}/events): NOTIFY is delivered when the
-- transaction that wrote the row commits, and not at all if it rolls back.
-- The payload is the order id; the streams read the rows themselves.
-- +goose StatementBegin
CREATE FUNCTION order_status_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('order_status', NEW.order_id::text);
    RETURN NEW;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER order_status_history_notify AFTER INSERT ON order_status_history
    FOR EACH ROW EXECUTE FUNCTION order_status_notify();

-- +goose Down
DROP TRIGGER order_status_history_notify ON order_status_history;
DROP FUNCTION order_status_notify();
