-- +goose Up
-- The commit notification names the connection that added the rows, by its
-- application_name (shared/postgres PoolOptions.ApplicationName: the service
-- and an id of the instance). Each instance's relay wakes for its own
-- commits only, so a commit wakes one relay, not one per instance of the
-- service; the others' fallback poll still finds rows whose instance died
-- before relaying them. A connection that sets no name sends '', which
-- wakes every relay, as before.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox_insert', current_setting('application_name'));
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox_insert', '');
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
