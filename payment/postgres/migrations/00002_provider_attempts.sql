-- +goose Up
-- The provider is called outside any transaction: a charge or a refund is
-- recorded as an attempt and committed first, the provider is called, and
-- the outcome is recorded after. These columns say when an attempt's
-- provider call was last started, so that an attempt a stopped process left
-- without its outcome can be told from one still in flight and finished
-- (payment.Recovery). A payment's charge is awaited while it is pending
-- without provider_transaction_id; a refund's outcome while it is pending.
ALTER TABLE payments ADD COLUMN charge_attempted_at TIMESTAMPTZ;
ALTER TABLE refunds ADD COLUMN attempted_at TIMESTAMPTZ;

-- Recovery's lookups of attempts without their outcome.
CREATE INDEX payments_charge_awaited_idx ON payments (charge_attempted_at)
    WHERE status = 'pending' AND provider_transaction_id IS NULL;
CREATE INDEX refunds_pending_idx ON refunds (attempted_at) WHERE status = 'pending';

-- +goose Down
DROP INDEX refunds_pending_idx;
DROP INDEX payments_charge_awaited_idx;
ALTER TABLE refunds DROP COLUMN attempted_at;
ALTER TABLE payments DROP COLUMN charge_attempted_at;
