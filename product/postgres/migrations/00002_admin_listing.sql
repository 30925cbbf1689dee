-- +goose NO TRANSACTION
-- +goose Up
-- The admin's product list (GET /products as an admin) shows inactive
-- products too, so it has no "p.is_active" for the partial listing indexes
-- of 00001 to match: its default sort (-created_at) and every category
-- filter read the whole table and sorted it, for the page and again for the
-- bounded count. The foreign key's RESTRICT check of a category delete
-- (category_id = $1, no is_active) scanned the table as well. These two
-- indexes cover every product, active or not.
--
-- CONCURRENTLY, outside a transaction (NO TRANSACTION above), so that
-- building them on a large catalogue does not block writes to products. A
-- build that fails (the start-up deadline ends it) leaves an INVALID index
-- behind, which IF NOT EXISTS would take for the index: while this migration
-- is not recorded, an index of its name is what such a build left
-- (migrations run under an advisory lock), so each is dropped and built again.

-- The admin's default sort, newest first:
DROP INDEX CONCURRENTLY IF EXISTS products_all_created_at_idx;
CREATE INDEX CONCURRENTLY products_all_created_at_idx ON products (created_at DESC, id DESC);

-- The admin's category filter (its count walks category_id, price, id), and
-- the RESTRICT check of categories' foreign key:
DROP INDEX CONCURRENTLY IF EXISTS products_all_category_idx;
CREATE INDEX CONCURRENTLY products_all_category_idx ON products (category_id, price, id);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS products_all_category_idx;
DROP INDEX CONCURRENTLY IF EXISTS products_all_created_at_idx;
