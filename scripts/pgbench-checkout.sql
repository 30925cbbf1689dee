-- All the database work of one confirmed checkout — one line, quantity 1,
-- the 4242 card, an Idempotency-Key: what BenchmarkCheckout's clients do —
-- for pgbench. One run of the script is one checkout, so pgbench's tps is
-- the checkouts per second PostgreSQL itself allows: the ceiling that
-- BenchmarkCheckout (e2e/checkout_bench_test.go) compares its end-to-end
-- figure with.
--
-- pgbench connects to one database, so the order, product and payment
-- databases are schemas of one scratch database here (order_db, product_db,
-- payment_db), each created by its service's own migrations: the events
-- outbox/inbox and their notify triggers, and in payment_db the sandbox
-- processor's tables, included. Every statement is the service's, in the
-- order the saga sends them, and the list was checked against a
-- log_statement=all log of one checkout on the e2e platform. Per checkout,
-- 47 statements in 19 transactions (a transaction of n is BEGIN, n
-- statements, COMMIT; the others are single statements on their own):
--
--   order    claim the Idempotency-Key                                 1
--   product  reserve: reservation, lock product, lock variants, take
--            stock, reservation item, ledger row                  tx of 6
--   order    store: order, lines, history row, outbox row         tx of 4
--   order    its relay wakes: take and mark                        tx of 2
--   payment  payment row, the sandbox's charge row, charge id, refunds 4
--   order    record the payment: lock order, lines, history, update
--                                                                 tx of 4
--   order    finish the Idempotency-Key                                1
--   payment  the sandbox's dispatcher takes the webhook due            1
--   payment  webhook: event row, lock payment, refunds, update, outbox
--            row, refunds                                         tx of 6
--   payment  its relay wakes                                      tx of 2
--   payment  the dispatcher records the delivery                       1
--   payment  the saga checks the payment (GET): payment, refunds       2
--   product  commit: lock reservation, items, mark committed, ledger
--                                                                 tx of 4
--   order    consumer: inbox row, lock order, lines, history, update,
--            history row, outbox row                              tx of 7
--   order    its relay wakes                                      tx of 2
--
-- By database: order 21 statements in 7 transactions, product 10 in 2,
-- payment 16 in 10 (8 of them single statements; 3 statements are the
-- sandbox processor's, which a real card processor would make elsewhere).
--
-- Where the script differs from the platform, and why:
--   * The saga's payment check and the product commit run inside the order
--     consumer's transaction there (after its inbox row, with the order row
--     locked); one connection cannot nest transactions, so here they run
--     just before it. No other checkout waits for those locks either way.
--   * The relays and the dispatcher take LIMIT 1 rather than batches of 100
--     and 10: one checkout's share, as when they are not loaded. What a
--     round takes may be another client's row, as between instances; each
--     round publishes (delivers) what it took, so nothing piles up. An
--     outbox commit wakes only its own instance's relay (the notification
--     names the instance: Relay.ApplicationName), so one round follows it;
--     before that, both instances' relays woke and one found nothing.
--   * The first statement draws the checkout's ids (a SELECT the platform
--     does not make); the product (SKU PGB-MUG, stock 1e9, like the
--     benchmark's Bench Mug) is seeded by BenchmarkCheckout and named by
--     -D product_id; pgbench client N is customer N.
--   * JSON payloads are built with jsonb_build_object, not sent as text.
--   * Nobody LISTENs here: the notify triggers fire and queue their
--     notifications at commit, but no relay or status stream is woken.
-- Left out: the notification service (it consumes order.created,
-- order.updated and payment.processed, none of which waits for it: it is
-- not part of a checkout's confirmation), the other consumer groups (they
-- acknowledge these events in Redis without touching their database), and
-- work that runs whether there are checkouts or not (idle relay and
-- dispatcher polls, the reservation sweeper, outbox and idempotency-key
-- clean-up, backlog and low-stock gauges).
--
-- Run it with -M extended: lib/pq sends every statement unnamed, with bound
-- parameters, parsed and planned at each execution, and so does pgbench in
-- extended mode; -M prepared would plan each statement once, which the
-- services never do, and overstate the ceiling. BenchmarkCheckout
-- (pgbench/clients=N) creates the database, seeds the product and runs
--   pgbench -n -M extended -f scripts/pgbench-checkout.sql -D product_id=$ID -c N -j 2 -t T "$URL"
-- By hand, from the repository's root, on an empty scratch database $URL
-- (psql applying the migrations' Up sections as goose would):
--   for s in order product payment; do
--     psql -q -d "$URL" -c "CREATE SCHEMA ${s}_db"
--     for f in $s/postgres/migrations/*.sql shared/events/migrations/*.sql \
--              $([ $s = payment ] && echo payment/sandbox/migrations/*.sql); do
--       sed -n '/+goose Up/,/+goose Down/p' "$f" | PGOPTIONS="-c search_path=${s}_db" psql -q -v ON_ERROR_STOP=1 -d "$URL"
--     done
--   done
--   ID=$(psql -Atq -d "$URL" -c "INSERT INTO product_db.products (name, slug, sku, price, stock_quantity)
--        VALUES ('Bench Mug', 'pgb-mug', 'PGB-MUG', 19.99, 1000000000) RETURNING id")
--   pgbench -n -M extended -f scripts/pgbench-checkout.sql -D product_id=$ID -c 8 -j 2 -T 30 "$URL"

SELECT order_id, item_id, payment_id, created_event, processed_event, updated_event, charge_id, webhook_event, user_id,
       idempotency_key, placed_at, 'MER-' || to_char(placed_at, 'YYYYMMDD') || '-' || upper(substr(replace(order_id::text, '-', ''), 1, 12)) AS order_number
FROM (SELECT gen_random_uuid() AS order_id, gen_random_uuid() AS item_id, gen_random_uuid() AS payment_id,
             gen_random_uuid() AS created_event, gen_random_uuid() AS processed_event, gen_random_uuid() AS updated_event,
             'ch_' || substr(md5(random()::text), 1, 24) AS charge_id, 'evt_' || substr(md5(random()::text), 1, 24) AS webhook_event,
             '00000000-0000-4000-8000-' || lpad(:client_id::text, 12, '0') AS user_id,
             'pgbench-' || gen_random_uuid() AS idempotency_key, now() AS placed_at) AS ids \gset

-- order: claim the Idempotency-Key (order/postgres ClaimIdempotencyKey).
INSERT INTO order_db.idempotency_keys (user_id, key, request_hash, order_id, locked_until)
VALUES (:user_id, :idempotency_key, sha256(convert_to(:idempotency_key, 'UTF8')), :order_id, now() + make_interval(secs => 30))
ON CONFLICT (user_id, key) DO NOTHING
RETURNING user_id, key, request_hash, order_id, state, outcome;

-- product: reserve the stock (product/postgres Reserve, takeStock).
BEGIN READ WRITE;
INSERT INTO product_db.inventory_reservations (order_id, status, expires_at) VALUES (:order_id, 'reserved', now() + interval '15 minutes')
ON CONFLICT (order_id) DO NOTHING;
SELECT id, name, sku, price, currency, stock_quantity, min_stock_quantity, is_active
FROM product_db.products WHERE id = ANY(ARRAY[:product_id]::uuid[])
ORDER BY id
FOR NO KEY UPDATE;
SELECT id, product_id, name, sku, price, stock_quantity, is_active
FROM product_db.product_variants WHERE id = ANY(NULL::uuid[])
ORDER BY id
FOR NO KEY UPDATE;
UPDATE product_db.products SET stock_quantity = stock_quantity - 1, updated_at = now()
WHERE id = :product_id AND stock_quantity >= 1;
INSERT INTO product_db.reservation_items (order_id, product_id, variant_id, quantity, sku, name, unit_price, currency)
VALUES (:order_id, :product_id, NULL, 1, 'PGB-MUG', 'Bench Mug', '19.99', 'USD');
INSERT INTO product_db.stock_movements (product_id, variant_id, delta, reason, reference)
VALUES (:product_id, NULL, -1, 'reserve', :order_id);
COMMIT;

-- order: store the order (order/postgres CreateOrder).
BEGIN READ WRITE;
INSERT INTO order_db.orders (id, user_id, order_number, status, subtotal, tax_amount, shipping_amount,
                             discount_amount, total_amount, currency, shipping_address, billing_address)
VALUES (:order_id, :user_id, :order_number, 'pending', '19.99', '1.65', '4.99', '0.00', '26.63', 'USD',
        '{"street":"1 Infinite Loop","city":"Cupertino","state":"CA","zip_code":"95014","country":"US"}',
        '{"street":"1 Infinite Loop","city":"Cupertino","state":"CA","zip_code":"95014","country":"US"}')
RETURNING created_at;
INSERT INTO order_db.order_items (id, order_id, line, product_id, variant_id, sku, name, quantity, unit_price, total_price)
SELECT i.id, :order_id, i.line, i.product_id, i.variant_id, i.sku, i.name, i.quantity, i.unit_price, i.total_price
FROM unnest(ARRAY[:item_id]::uuid[], '{1}'::smallint[], ARRAY[:product_id]::uuid[], '{NULL}'::uuid[], '{PGB-MUG}'::text[],
            '{Bench Mug}'::text[], '{1}'::int[], '{19.99}'::numeric[], '{19.99}'::numeric[])
     AS i(id, line, product_id, variant_id, sku, name, quantity, unit_price, total_price);
INSERT INTO order_db.order_status_history (order_id, status, reason, created_at) VALUES (:order_id, 'pending', 'order placed', :placed_at);
INSERT INTO order_db.outbox (id, type, payload, trace_context)
VALUES (:created_event, 'order.created', jsonb_build_object(
        'id', :created_event::text, 'type', 'order.created', 'source', 'order', 'timestamp', now(), 'request_id', :created_event::text,
        'data', jsonb_build_object('order_id', :order_id::text, 'order_number', :order_number::text, 'user_id', :user_id::text,
                                   'total_amount', '26.63', 'currency', 'USD', 'items', jsonb_build_array(
                                       jsonb_build_object('product_id', :product_id::text, 'variant_id', NULL, 'name', 'Bench Mug',
                                                          'quantity', 1, 'unit_price', '19.99')))), NULL);
COMMIT;

-- order: the committing instance's outbox relay wakes (shared/events Relay.publishBatch).
\set relay_found 0
BEGIN READ WRITE;
SELECT id, type, payload, trace_context, 1 AS found FROM order_db.outbox
WHERE published_at IS NULL
ORDER BY created_at
LIMIT 1
FOR UPDATE SKIP LOCKED \aset relay_
\if :relay_found
UPDATE order_db.outbox SET published_at = now() WHERE id = ANY(ARRAY[:relay_id]::uuid[]);
COMMIT;
\else
ROLLBACK;
\endif

-- payment: the charge (payment Charge: CreatePayment, the sandbox's Charge, RecordCharge).
INSERT INTO payment_db.payments (id, order_id, user_id, amount, currency, status, payment_method,
                                 payment_provider, card_brand, card_last4, charge_attempted_at)
VALUES (:payment_id, :order_id, :user_id, '26.63', 'USD', 'pending', 'card', 'sandbox', 'visa', '4242', now())
ON CONFLICT (order_id) DO NOTHING
RETURNING id, order_id, user_id, amount, currency, status, payment_method, payment_provider,
          provider_transaction_id, provider_response, card_brand, card_last4, failure_code, captured_amount,
          refunded_amount, cancel_requested_at, charge_attempted_at, processed_at, created_at, updated_at;
INSERT INTO payment_db.sandbox_charges (id, idempotency_key, payment_id, amount, currency, outcome,
                                        failure_code, webhook_event_id, next_delivery_at, trace_context)
VALUES (:charge_id, :order_id, :payment_id, '26.63', 'USD', 'succeeded', NULL, :webhook_event, now() + make_interval(secs => 0), NULL)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id;
UPDATE payment_db.payments SET provider_transaction_id = :charge_id
WHERE id = :payment_id AND (provider_transaction_id IS NULL OR provider_transaction_id = :charge_id)
RETURNING id, order_id, user_id, amount, currency, status, payment_method, payment_provider,
          provider_transaction_id, provider_response, card_brand, card_last4, failure_code, captured_amount,
          refunded_amount, cancel_requested_at, charge_attempted_at, processed_at, created_at, updated_at;
SELECT id, payment_id, amount, reason, status, provider_refund_id, idempotency_key,
       request_hash, processed_at, attempted_at, created_at, updated_at FROM payment_db.refunds WHERE payment_id = :payment_id ORDER BY created_at, id;

-- order: record the pending payment (order charge: Transition).
BEGIN READ WRITE;
SELECT id, user_id, order_number, status, subtotal, tax_amount, shipping_amount, discount_amount,
       total_amount, currency, shipping_address, billing_address, payment_id, payment_status, card_brand, card_last4,
       payment_failure, refunded_amount, created_at, updated_at FROM order_db.orders WHERE id = :order_id FOR UPDATE;
SELECT id, order_id, product_id, variant_id, sku, name, quantity, unit_price, total_price FROM order_db.order_items WHERE order_id = :order_id ORDER BY line;
SELECT status, reason, created_at FROM order_db.order_status_history WHERE order_id = :order_id ORDER BY id;
UPDATE order_db.orders SET status = 'pending', payment_id = :payment_id, payment_status = 'pending', card_brand = 'visa', card_last4 = '4242',
                           payment_failure = NULL, refunded_amount = '0.00', updated_at = now()
WHERE id = :order_id
RETURNING id, user_id, order_number, status, subtotal, tax_amount, shipping_amount, discount_amount,
          total_amount, currency, shipping_address, billing_address, payment_id, payment_status, card_brand, card_last4,
          payment_failure, refunded_amount, created_at, updated_at;
COMMIT;

-- order: finish the Idempotency-Key with the order (FinishIdempotencyKey).
UPDATE order_db.idempotency_keys SET state = 'done', outcome = jsonb_build_object('order', jsonb_build_object(
           'id', :order_id::text, 'order_number', :order_number::text, 'user_id', :user_id::text, 'status', 'pending',
           'items', jsonb_build_array(jsonb_build_object('id', :item_id::text, 'sku', 'PGB-MUG', 'name', 'Bench Mug', 'quantity', 1,
                                                         'product_id', :product_id::text, 'unit_price', '19.99', 'variant_id', NULL,
                                                         'total_price', '19.99')),
           'payment', jsonb_build_object('id', :payment_id::text, 'card', jsonb_build_object('brand', 'visa', 'last4', '4242'),
                                         'status', 'pending', 'refunded_amount', '0.00'),
           'currency', 'USD', 'subtotal', '19.99', 'tax_amount', '1.65', 'shipping_amount', '4.99', 'discount_amount', '0.00',
           'total_amount', '26.63', 'created_at', :placed_at::text, 'updated_at', now(),
           'status_history', jsonb_build_array(jsonb_build_object('at', :placed_at::text, 'reason', 'order placed', 'status', 'pending')),
           'billing_address', '{"street":"1 Infinite Loop","city":"Cupertino","state":"CA","zip_code":"95014","country":"US"}'::jsonb,
           'shipping_address', '{"street":"1 Infinite Loop","city":"Cupertino","state":"CA","zip_code":"95014","country":"US"}'::jsonb)),
       updated_at = now()
WHERE user_id = :user_id AND key = :idempotency_key;

-- payment: the sandbox's webhook dispatcher takes the due charge (Dispatcher.deliverDue).
\set dispatch_found 0
UPDATE payment_db.sandbox_charges
SET next_delivery_at = now() + make_interval(secs => 30), delivery_attempts = delivery_attempts + 1
WHERE id IN (
    SELECT id FROM payment_db.sandbox_charges
    WHERE delivered_at IS NULL AND next_delivery_at <= now()
    ORDER BY next_delivery_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED)
RETURNING id, payment_id, outcome, failure_code, webhook_event_id, delivery_attempts, trace_context, 1 AS found \aset dispatch_

-- payment: the webhook, through the gateway (HandleWebhook: UpdatePayment, store).
BEGIN READ WRITE;
INSERT INTO payment_db.webhook_events (provider, event_id, type) VALUES ('sandbox', :webhook_event, 'charge.succeeded')
ON CONFLICT DO NOTHING;
SELECT id, order_id, user_id, amount, currency, status, payment_method, payment_provider,
       provider_transaction_id, provider_response, card_brand, card_last4, failure_code, captured_amount,
       refunded_amount, cancel_requested_at, charge_attempted_at, processed_at, created_at, updated_at
FROM payment_db.payments WHERE provider_transaction_id = :charge_id FOR UPDATE;
SELECT id, payment_id, amount, reason, status, provider_refund_id, idempotency_key,
       request_hash, processed_at, attempted_at, created_at, updated_at FROM payment_db.refunds WHERE payment_id = :payment_id ORDER BY created_at, id;
UPDATE payment_db.payments
SET status = 'completed', failure_code = NULL, captured_amount = '26.63', refunded_amount = '0.00',
    processed_at = now(), cancel_requested_at = NULL,
    provider_response = jsonb_build_object('id', :webhook_event::text, 'type', 'charge.succeeded', 'charge_id', :charge_id::text,
                                           'payment_id', :payment_id::text), updated_at = now()
WHERE id = :payment_id
RETURNING id, order_id, user_id, amount, currency, status, payment_method, payment_provider,
          provider_transaction_id, provider_response, card_brand, card_last4, failure_code, captured_amount,
          refunded_amount, cancel_requested_at, charge_attempted_at, processed_at, created_at, updated_at;
INSERT INTO payment_db.outbox (id, type, payload, trace_context)
VALUES (:processed_event, 'payment.processed', jsonb_build_object(
        'id', :processed_event::text, 'type', 'payment.processed', 'source', 'payment', 'timestamp', now(), 'request_id', :processed_event::text,
        'data', jsonb_build_object('payment_id', :payment_id::text, 'order_id', :order_id::text, 'user_id', :user_id::text,
                                   'amount', '26.63', 'currency', 'USD')), NULL);
SELECT id, payment_id, amount, reason, status, provider_refund_id, idempotency_key,
       request_hash, processed_at, attempted_at, created_at, updated_at FROM payment_db.refunds WHERE payment_id = :payment_id ORDER BY created_at, id;
COMMIT;

-- payment: the committing instance's outbox relay wakes.
\set relay_found 0
BEGIN READ WRITE;
SELECT id, type, payload, trace_context, 1 AS found FROM payment_db.outbox
WHERE published_at IS NULL
ORDER BY created_at
LIMIT 1
FOR UPDATE SKIP LOCKED \aset relay_
\if :relay_found
UPDATE payment_db.outbox SET published_at = now() WHERE id = ANY(ARRAY[:relay_id]::uuid[]);
COMMIT;
\else
ROLLBACK;
\endif

-- payment: the dispatcher records the delivery (answered 200).
\if :dispatch_found
UPDATE payment_db.sandbox_charges
SET delivered_at = now(), next_delivery_at = NULL, last_delivery_error = NULL
WHERE id = :dispatch_id;
\endif

-- payment: the saga checks payment.processed with the payment service (GET /payments/{id}).
SELECT id, order_id, user_id, amount, currency, status, payment_method, payment_provider,
       provider_transaction_id, provider_response, card_brand, card_last4, failure_code, captured_amount,
       refunded_amount, cancel_requested_at, charge_attempted_at, processed_at, created_at, updated_at
FROM payment_db.payments WHERE id = :payment_id;
SELECT id, payment_id, amount, reason, status, provider_refund_id, idempotency_key,
       request_hash, processed_at, attempted_at, created_at, updated_at FROM payment_db.refunds WHERE payment_id = :payment_id ORDER BY created_at, id;

-- product: the saga commits the reservation (CommitReservation).
BEGIN READ WRITE;
SELECT order_id, status, release_reason, expires_at FROM product_db.inventory_reservations WHERE order_id = :order_id FOR UPDATE;
SELECT product_id, variant_id, quantity, sku, name, unit_price, currency
FROM product_db.reservation_items WHERE order_id = :order_id
ORDER BY product_id, variant_id NULLS FIRST;
UPDATE product_db.inventory_reservations SET status = 'committed', updated_at = now() WHERE order_id = :order_id;
INSERT INTO product_db.stock_movements (product_id, variant_id, delta, reason, reference)
VALUES (:product_id, NULL, 0, 'commit', :order_id);
COMMIT;

-- order: the consumer applies payment.processed with its inbox row (Consumer.handle, Saga.paymentProcessed).
BEGIN READ WRITE;
INSERT INTO order_db.inbox (consumer, event_id) VALUES ('order', :processed_event) ON CONFLICT DO NOTHING;
SELECT id, user_id, order_number, status, subtotal, tax_amount, shipping_amount, discount_amount,
       total_amount, currency, shipping_address, billing_address, payment_id, payment_status, card_brand, card_last4,
       payment_failure, refunded_amount, created_at, updated_at FROM order_db.orders WHERE id = :order_id FOR UPDATE;
SELECT id, order_id, product_id, variant_id, sku, name, quantity, unit_price, total_price FROM order_db.order_items WHERE order_id = :order_id ORDER BY line;
SELECT status, reason, created_at FROM order_db.order_status_history WHERE order_id = :order_id ORDER BY id;
UPDATE order_db.orders SET status = 'confirmed', payment_id = :payment_id, payment_status = 'captured', card_brand = 'visa', card_last4 = '4242',
                           payment_failure = NULL, refunded_amount = '0.00', updated_at = now()
WHERE id = :order_id
RETURNING id, user_id, order_number, status, subtotal, tax_amount, shipping_amount, discount_amount,
          total_amount, currency, shipping_address, billing_address, payment_id, payment_status, card_brand, card_last4,
          payment_failure, refunded_amount, created_at, updated_at;
INSERT INTO order_db.order_status_history (order_id, status, previous_status, reason) VALUES (:order_id, 'confirmed', 'pending', 'payment captured')
RETURNING created_at;
INSERT INTO order_db.outbox (id, type, payload, trace_context)
VALUES (:updated_event, 'order.updated', jsonb_build_object(
        'id', :updated_event::text, 'type', 'order.updated', 'source', 'order', 'timestamp', now(), 'request_id', :processed_event::text,
        'data', jsonb_build_object('order_id', :order_id::text, 'order_number', :order_number::text, 'user_id', :user_id::text,
                                   'status', 'confirmed', 'previous_status', 'pending')), NULL);
COMMIT;

-- order: the committing instance's outbox relay wakes.
\set relay_found 0
BEGIN READ WRITE;
SELECT id, type, payload, trace_context, 1 AS found FROM order_db.outbox
WHERE published_at IS NULL
ORDER BY created_at
LIMIT 1
FOR UPDATE SKIP LOCKED \aset relay_
\if :relay_found
UPDATE order_db.outbox SET published_at = now() WHERE id = ANY(ARRAY[:relay_id]::uuid[]);
COMMIT;
\else
ROLLBACK;
\endif
