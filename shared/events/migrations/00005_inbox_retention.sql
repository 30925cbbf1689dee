-- +goose Up
-- The relay deletes inbox rows after a retention period (Relay.InboxRetention);
-- this index lets it find them without scanning the table.
CREATE INDEX inbox_processed_idx ON inbox (processed_at);

-- +goose Down
DROP INDEX inbox_processed_idx;
