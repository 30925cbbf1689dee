-- +goose NO TRANSACTION
-- +goose Up
-- Each channel's dispatcher workers claim due rows of their own channel
-- (notification.Dispatcher). By next_attempt_at alone, an SMS or push
-- worker's claim read every due email before it, which while an SMTP
-- server hangs is the whole email backlog, at every idle poll. By channel,
-- then time, a claim reads its own channel's rows only.
--
-- CONCURRENTLY, outside a transaction (NO TRANSACTION above), so that the
-- build holds up no claim. While this migration is not recorded, an index
-- of its name is what an interrupted build left (INVALID), so it is dropped
-- and built again.
DROP INDEX CONCURRENTLY IF EXISTS notifications_due_by_channel_idx;
CREATE INDEX CONCURRENTLY notifications_due_by_channel_idx ON notifications (channel, next_attempt_at)
    WHERE status IN ('pending', 'retrying');
DROP INDEX CONCURRENTLY IF EXISTS notifications_due_idx;

-- +goose Down
CREATE INDEX CONCURRENTLY IF NOT EXISTS notifications_due_idx ON notifications (next_attempt_at)
    WHERE status IN ('pending', 'retrying');
DROP INDEX CONCURRENTLY IF EXISTS notifications_due_by_channel_idx;
