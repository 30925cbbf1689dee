-- +goose Up
-- A finished Idempotency-Key keeps the domain outcome of its request — the
-- order, or the business error that refused it by its code, message and
-- details — instead of the HTTP status and body it was answered with; the
-- transport shows a repeat as it showed the first answer. Keys finished
-- before this migration are converted: a 201 body is the order, any other
-- body is the error as {code, message, details}, which is what a refusal
-- holds. Unfinished keys have no outcome yet and are left as they are.
ALTER TABLE idempotency_keys ADD COLUMN outcome JSONB;

UPDATE idempotency_keys
SET outcome = CASE WHEN response_status = 201 THEN jsonb_build_object('order', response_body)
                   ELSE jsonb_build_object('refusal', response_body) END
WHERE state = 'done';

ALTER TABLE idempotency_keys
    DROP CONSTRAINT idempotency_keys_response_check,
    DROP COLUMN response_status,
    DROP COLUMN response_body,
    ADD CONSTRAINT idempotency_keys_outcome_check CHECK ((state = 'done') = (outcome IS NOT NULL));

-- +goose Down
-- Back to status and body, with the statuses the refusal codes were
-- answered with when this migration was written. A code not listed leaves
-- the status NULL, which the restored CHECK refuses: the downgrade stops
-- rather than invent an answer.
ALTER TABLE idempotency_keys ADD COLUMN response_status INTEGER, ADD COLUMN response_body JSONB;

UPDATE idempotency_keys
SET response_status = CASE
        WHEN outcome ? 'order' THEN 201
        ELSE CASE outcome->'refusal'->>'code'
            WHEN 'not_found' THEN 404
            WHEN 'invalid_transition' THEN 409
            WHEN 'out_of_stock' THEN 409
            WHEN 'reservation_mismatch' THEN 409
            WHEN 'reservation_released' THEN 409
            WHEN 'unknown_product' THEN 422
            WHEN 'payment_rejected' THEN 422
            WHEN 'mixed_currencies' THEN 422
            WHEN 'order_total_too_large' THEN 422
        END
    END,
    response_body = COALESCE(outcome->'order', outcome->'refusal')
WHERE state = 'done';

ALTER TABLE idempotency_keys
    DROP CONSTRAINT idempotency_keys_outcome_check,
    DROP COLUMN outcome,
    ADD CONSTRAINT idempotency_keys_response_check CHECK ((state = 'done') = (response_status IS NOT NULL AND response_body IS NOT NULL));
