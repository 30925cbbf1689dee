-- +goose Up
-- The W3C trace context of the charge call, as a JSON object (NULL outside
-- any trace). The webhook is sent with it as its traceparent, so the trace
-- the webhook starts at the gateway is linked to the checkout's.
ALTER TABLE sandbox_charges ADD COLUMN trace_context jsonb;

-- +goose Down
ALTER TABLE sandbox_charges DROP COLUMN trace_context;
