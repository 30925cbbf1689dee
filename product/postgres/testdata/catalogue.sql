-- A synthetic catalogue of 100,000 products for the EXPLAIN test
-- (postgres_test.go) and the listing benchmark (e2e/product_bench_test.go),
-- made in a few seconds with generate_series. Run it on an empty, migrated
-- product database. Everything is derived from the row number, so every run
-- builds the same catalogue:
--
--   10 departments (slug dept-1 … dept-10), each with 10 sub-categories
--   (dept-D-sub-S), each with 5 leaves (dept-D-sub-S-leaf-L): 610 categories;
--   products spread evenly over the 500 leaves, so a department holds 10%,
--   a sub-category 1% and a leaf 0.2% of them;
--   prices 1.00 … 999.99, spread evenly; 5% inactive, 2% featured, 10% out
--   of stock; names "<adjective> <noun> <n>" from 20 adjectives and 50
--   nouns, so a noun matches 2% of the products in a full-text search.

INSERT INTO categories (id, name, slug, parent_id)
SELECT md5('dept-' || d)::uuid, 'Department ' || d, 'dept-' || d, NULL
FROM generate_series(1, 10) d;

INSERT INTO categories (id, name, slug, parent_id)
SELECT md5('dept-' || d || '-sub-' || s)::uuid, 'Department ' || d || ' Aisle ' || s,
       'dept-' || d || '-sub-' || s, md5('dept-' || d)::uuid
FROM generate_series(1, 10) d, generate_series(1, 10) s;

INSERT INTO categories (id, name, slug, parent_id)
SELECT md5('dept-' || d || '-sub-' || s || '-leaf-' || l)::uuid, 'Department ' || d || ' Aisle ' || s || ' Shelf ' || l,
       'dept-' || d || '-sub-' || s || '-leaf-' || l, md5('dept-' || d || '-sub-' || s)::uuid
FROM generate_series(1, 10) d, generate_series(1, 10) s, generate_series(1, 5) l;

WITH words AS (
    SELECT ARRAY['red', 'blue', 'green', 'quiet', 'sturdy', 'compact', 'vintage', 'modern', 'classic', 'rustic',
                 'smart', 'light', 'heavy', 'soft', 'bright', 'dark', 'tiny', 'grand', 'swift', 'gentle'] AS adjectives,
           ARRAY['kettle', 'lamp', 'chair', 'table', 'mug', 'skillet', 'knife', 'blanket', 'pillow', 'backpack',
                 'jacket', 'sneaker', 'helmet', 'bottle', 'tent', 'speaker', 'headphone', 'keyboard', 'monitor', 'camera',
                 'drone', 'watch', 'wallet', 'scarf', 'glove', 'umbrella', 'notebook', 'pen', 'candle', 'vase',
                 'clock', 'mirror', 'rug', 'shelf', 'basket', 'towel', 'teapot', 'grinder', 'blender', 'toaster',
                 'kayak', 'paddle', 'racket', 'football', 'dumbbell', 'yoga', 'bicycle', 'scooter', 'skateboard', 'telescope'] AS nouns
)
INSERT INTO products (id, category_id, name, slug, short_description, description, sku, price, cost_price,
                      stock_quantity, min_stock_quantity, is_active, is_featured, created_at, updated_at)
SELECT md5('product-' || g)::uuid,
       md5('dept-' || (g % 10 + 1) || '-sub-' || (g / 10 % 10 + 1) || '-leaf-' || (g / 100 % 5 + 1))::uuid,
       w.adjectives[g % 20 + 1] || ' ' || w.nouns[g / 20 % 50 + 1] || ' ' || g,
       'product-' || g,
       'A ' || w.adjectives[g % 20 + 1] || ' ' || w.nouns[g / 20 % 50 + 1] || '.',
       'Synthetic product number ' || g || ', made for load tests and query plans.',
       'BENCH-' || g,
       (100 + (g::bigint * 7919) % 99900) / 100.0,
       (50 + (g::bigint * 7919) % 49950) / 100.0,
       CASE WHEN g % 10 = 0 THEN 0 ELSE g % 97 + 1 END,
       3,
       g % 20 <> 7,
       g % 50 = 3,
       now() - g * interval '1 minute',
       now() - g * interval '1 minute'
FROM generate_series(1, 100000) g, words w;

INSERT INTO stock_movements (product_id, variant_id, delta, reason, reference)
SELECT id, NULL, stock_quantity, 'initial', 'generated'
FROM products WHERE stock_quantity > 0;
