-- +goose Up
-- The W3C trace context (traceparent, tracestate) of the request or event
-- handler that enqueued the event, as a JSON object; NULL outside any trace. The relay
-- publishes the event inside a span continuing it, and puts that span's
-- context in the envelope, so the consumers' spans join the producer's trace.
ALTER TABLE outbox ADD COLUMN trace_context jsonb;

-- +goose Down
ALTER TABLE outbox DROP COLUMN trace_context;
