-- +goose NO TRANSACTION
-- +goose Up
-- webhook_events remembers each provider event id so that a redelivered
-- webhook is not applied twice, and nothing deleted them. The webhook
-- janitor deletes those received long before any redelivery
-- (postgres.Repository.WebhookJanitor); this index keeps its hourly round
-- from reading the whole table.
--
-- CONCURRENTLY, outside a transaction (NO TRANSACTION above), so that
-- building it does not block webhooks. A build that fails (the start-up
-- deadline ends it) leaves an INVALID index behind, which IF NOT EXISTS would
-- take for the index: while this migration is not recorded, an index of its
-- name is what such a build left (migrations run under an advisory lock), so
-- it is dropped and built again.
DROP INDEX CONCURRENTLY IF EXISTS webhook_events_received_at_idx;
CREATE INDEX CONCURRENTLY webhook_events_received_at_idx ON webhook_events (received_at);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS webhook_events_received_at_idx;
