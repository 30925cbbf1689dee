-- The order service's write of one checkout (order/postgres CreateOrder), for
-- pgbench: the ceiling PostgreSQL itself puts on placing orders, to compare
-- with checkouts per second end to end (docs/checkout.md).
--
-- One transaction, statement for statement as the service sends it: the
-- order row, its lines in one INSERT … SELECT FROM unnest, the first status
-- history row and the order.created outbox row. Ids are fresh per
-- transaction; the order number is unique (the real one is random with a
-- retry on collision, which pgbench cannot do).
--
-- Run against a scratch database holding the order service's schema:
--   for f in order/postgres/migrations/00001_orders.sql shared/events/migrations/00001_outbox_inbox.sql; do
--     sed -n '/+goose Up/,/+goose Down/p' "$f" | psql -q -d "$URL"; done
--   pgbench -n -M prepared -f scripts/pgbench-order.sql -c 8 -j 2 -T 30 "$URL"
-- -M prepared (or extended) is required: the :variables become bind
-- parameters, as the service's queries are. (BenchmarkCheckout in
-- e2e/checkout_bench_test.go does all of this.)

SELECT gen_random_uuid() AS order_id, gen_random_uuid() AS user_id, gen_random_uuid() AS product_a,
       gen_random_uuid() AS product_b, now() AS created_at \gset
BEGIN;
INSERT INTO orders (id, user_id, order_number, status, subtotal, tax_amount, shipping_amount,
                    discount_amount, total_amount, currency, shipping_address, billing_address)
VALUES (:order_id, :user_id, 'MER-' || to_char(now(), 'YYYYMMDD') || '-' || replace(:order_id, '-', ''),
        'pending', '44.98', '3.71', '4.99', '0.00', '53.68', 'USD',
        '{"street":"1 Infinite Loop","city":"Cupertino","state":"CA","zip_code":"95014","country":"US"}',
        '{"street":"1 Infinite Loop","city":"Cupertino","state":"CA","zip_code":"95014","country":"US"}')
RETURNING created_at;
INSERT INTO order_items (id, order_id, line, product_id, variant_id, sku, name, quantity, unit_price, total_price)
SELECT i.id, :order_id, i.line, i.product_id, i.variant_id, i.sku, i.name, i.quantity, i.unit_price, i.total_price
FROM unnest(ARRAY[gen_random_uuid(), gen_random_uuid()], '{1,2}'::smallint[], ARRAY[:product_a, :product_b]::uuid[],
            '{NULL,NULL}'::uuid[], '{MUG-1,TEE-M}'::text[], '{Enamel Mug,Cotton Tee}'::text[], '{2,1}'::int[],
            '{19.99,5.00}'::numeric[], '{39.98,5.00}'::numeric[])
     AS i(id, line, product_id, variant_id, sku, name, quantity, unit_price, total_price);
INSERT INTO order_status_history (order_id, status, reason, created_at) VALUES (:order_id, 'pending', 'order placed', :created_at);
INSERT INTO outbox (id, type, payload)
VALUES (gen_random_uuid(), 'order.created', jsonb_build_object(
        'id', gen_random_uuid(), 'type', 'order.created', 'source', 'order', 'timestamp', now(),
        'data', jsonb_build_object('order_id', :order_id::text, 'order_number', 'MER', 'user_id', :user_id::text,
                                   'total_amount', '53.68', 'currency', 'USD', 'items', jsonb_build_array(
                                       jsonb_build_object('product_id', :product_a::text, 'variant_id', NULL, 'name', 'Enamel Mug', 'quantity', 2, 'unit_price', '19.99'),
                                       jsonb_build_object('product_id', :product_b::text, 'variant_id', NULL, 'name', 'Cotton Tee', 'quantity', 1, 'unit_price', '5.00')))));
COMMIT;
