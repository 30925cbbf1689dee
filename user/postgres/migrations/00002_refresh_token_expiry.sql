-- +goose NO TRANSACTION
-- +goose Up
-- Every login and every refresh adds a refresh token, and nothing deleted
-- them: the table grew with each session's every refresh (one a quarter of an
-- hour for a storefront left open). The token janitor deletes the tokens
-- that expired a while ago (postgres.Repository.TokenJanitor); this index
-- keeps its hourly round from reading the whole table.
--
-- CONCURRENTLY, outside a transaction (NO TRANSACTION above), so that
-- building it on a large table does not block logins and refreshes. A build
-- that fails (the start-up deadline ends it) leaves an INVALID index behind,
-- which IF NOT EXISTS would take for the index: while this migration is not
-- recorded, an index of its name is what such a build left (migrations run
-- under an advisory lock), so it is dropped and built again.
DROP INDEX CONCURRENTLY IF EXISTS refresh_tokens_expires_at_idx;
CREATE INDEX CONCURRENTLY refresh_tokens_expires_at_idx ON refresh_tokens (expires_at);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS refresh_tokens_expires_at_idx;
