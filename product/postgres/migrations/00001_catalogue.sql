-- +goose Up
-- The seed's catalogue tables, with TIMESTAMPTZ times, NOT NULL flags and
-- counters, CHECKs on every quantity and price, and foreign keys that refuse
-- to orphan rows (RESTRICT instead of the seed's SET NULL: deleting a
-- category that still holds products or sub-categories is refused, never
-- silently leaves them without one).

CREATE TABLE categories (
    id          UUID         PRIMARY KEY DEFAULT gen_random_uuid(),
    name        VARCHAR(255) NOT NULL,
    slug        VARCHAR(255) NOT NULL,
    description TEXT,
    parent_id   UUID         REFERENCES categories (id) ON DELETE RESTRICT,
    created_at  TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT categories_slug_key UNIQUE (slug),
    CONSTRAINT categories_not_own_parent CHECK (parent_id <> id)
);

-- Children of a category (the tree, the sub-category filter, and the
-- foreign key's RESTRICT check on delete).
CREATE INDEX categories_parent_id_idx ON categories (parent_id);

CREATE TABLE products (
    id                 UUID          PRIMARY KEY DEFAULT gen_random_uuid(),
    category_id        UUID          REFERENCES categories (id) ON DELETE RESTRICT,
    name               VARCHAR(255)  NOT NULL,
    slug               VARCHAR(255)  NOT NULL,
    description        TEXT,
    short_description  TEXT,
    sku                VARCHAR(100)  NOT NULL,
    price              NUMERIC(10,2) NOT NULL,
    compare_price      NUMERIC(10,2),
    cost_price         NUMERIC(10,2),
    currency           CHAR(3)       NOT NULL DEFAULT 'USD',
    -- Available stock of the product sold as itself (no variant): what a
    -- reservation takes from and a release gives back.
    stock_quantity     INTEGER       NOT NULL DEFAULT 0,
    min_stock_quantity INTEGER       NOT NULL DEFAULT 0,
    -- Sum of the available stock of the product's active variants, kept by
    -- the same transactions that change a variant's stock, so "in stock" is
    -- a condition on this row alone and can be indexed. BIGINT: a sum of
    -- many variants' stock can exceed INTEGER.
    variant_stock      BIGINT        NOT NULL DEFAULT 0,
    weight             NUMERIC(8,2),
    dimensions         JSONB,
    images             JSONB         NOT NULL DEFAULT '[]',
    is_active          BOOLEAN       NOT NULL DEFAULT TRUE,
    is_featured        BOOLEAN       NOT NULL DEFAULT FALSE,
    created_at         TIMESTAMPTZ   NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ   NOT NULL DEFAULT now(),
    -- Full-text search document: name weighs most, then the short and the
    -- long description. Generated, so no writer can forget to update it.
    search_vector      TSVECTOR      GENERATED ALWAYS AS (
        setweight(to_tsvector('english', coalesce(name, '')), 'A') ||
        setweight(to_tsvector('english', coalesce(short_description, '')), 'B') ||
        setweight(to_tsvector('english', coalesce(description, '')), 'C')
    ) STORED,
    CONSTRAINT products_slug_key UNIQUE (slug),
    CONSTRAINT products_sku_key UNIQUE (sku),
    CONSTRAINT products_price_check CHECK (price >= 0),
    CONSTRAINT products_compare_price_check CHECK (compare_price >= 0),
    CONSTRAINT products_cost_price_check CHECK (cost_price >= 0),
    CONSTRAINT products_stock_quantity_check CHECK (stock_quantity >= 0),
    -- Far below INTEGER's limit, so stock arithmetic can never overflow.
    CONSTRAINT products_stock_quantity_max CHECK (stock_quantity <= 1000000000),
    CONSTRAINT products_min_stock_quantity_check CHECK (min_stock_quantity >= 0),
    CONSTRAINT products_variant_stock_check CHECK (variant_stock >= 0),
    CONSTRAINT products_weight_check CHECK (weight >= 0)
);

-- Listing indexes. Customers only ever see active products, so each is
-- partial on is_active: smaller, and matched by every public query. Each
-- ends in id, the tie-breaker that keeps pages stable.
--
-- category (incl. sub-categories: category_id = ANY(...)), sorted by price:
CREATE INDEX products_category_price_idx ON products (category_id, price, id) WHERE is_active;
-- price range, and sort=price / -price:
CREATE INDEX products_price_idx ON products (price, id) WHERE is_active;
-- sort=name:
CREATE INDEX products_name_idx ON products (name, id) WHERE is_active;
-- the default sort, -created_at:
CREATE INDEX products_created_at_idx ON products (created_at DESC, id DESC) WHERE is_active;
-- featured=true (few rows), newest first:
CREATE INDEX products_featured_idx ON products (created_at DESC, id DESC) WHERE is_active AND is_featured;
-- in_stock=true, newest first:
CREATE INDEX products_in_stock_idx ON products (created_at DESC, id DESC)
    WHERE is_active AND (stock_quantity > 0 OR variant_stock > 0);
-- q: full-text search.
CREATE INDEX products_search_idx ON products USING GIN (search_vector);

CREATE TABLE product_variants (
    id             UUID          PRIMARY KEY DEFAULT gen_random_uuid(),
    product_id     UUID          NOT NULL REFERENCES products (id) ON DELETE RESTRICT,
    sku            VARCHAR(100)  NOT NULL,
    name           VARCHAR(255)  NOT NULL,
    price          NUMERIC(10,2) NOT NULL,
    stock_quantity INTEGER       NOT NULL DEFAULT 0,
    attributes     JSONB         NOT NULL DEFAULT '{}',
    is_active      BOOLEAN       NOT NULL DEFAULT TRUE,
    created_at     TIMESTAMPTZ   NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ   NOT NULL DEFAULT now(),
    CONSTRAINT product_variants_sku_key UNIQUE (sku),
    CONSTRAINT product_variants_price_check CHECK (price >= 0),
    CONSTRAINT product_variants_stock_quantity_check CHECK (stock_quantity >= 0),
    CONSTRAINT product_variants_stock_quantity_max CHECK (stock_quantity <= 1000000000)
);

-- A product's variants, for every product read.
CREATE INDEX product_variants_product_id_idx ON product_variants (product_id, created_at, id);

-- Reservations of the order service: one per order, all-or-nothing.
-- status: reserved (units taken from available stock, until expires_at),
-- committed (sold), released (given back; release_reason says whether the
-- order service asked or the reservation expired).
CREATE TABLE inventory_reservations (
    order_id       UUID        PRIMARY KEY,
    status         VARCHAR(20) NOT NULL DEFAULT 'reserved',
    release_reason VARCHAR(20),
    expires_at     TIMESTAMPTZ NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT inventory_reservations_status_check CHECK (status IN ('reserved', 'committed', 'released')),
    CONSTRAINT inventory_reservations_release_reason_check CHECK (
        (status = 'released') = (release_reason IS NOT NULL) AND
        (release_reason IS NULL OR release_reason IN ('released', 'expired')))
);

-- The sweeper's work list: reservations still holding stock, oldest expiry first.
CREATE INDEX inventory_reservations_expiry_idx ON inventory_reservations (expires_at) WHERE status = 'reserved';

-- The lines of a reservation, with the price and names the order service
-- takes: a snapshot, so a later price change does not alter an order.
CREATE TABLE reservation_items (
    order_id   UUID          NOT NULL REFERENCES inventory_reservations (order_id) ON DELETE CASCADE,
    product_id UUID          NOT NULL REFERENCES products (id) ON DELETE RESTRICT,
    variant_id UUID          REFERENCES product_variants (id) ON DELETE RESTRICT,
    quantity   INTEGER       NOT NULL,
    sku        VARCHAR(100)  NOT NULL,
    name       VARCHAR(255)  NOT NULL,
    unit_price NUMERIC(10,2) NOT NULL,
    currency   CHAR(3)       NOT NULL,
    CONSTRAINT reservation_items_quantity_check CHECK (quantity > 0),
    -- Duplicate lines are merged before they are stored.
    CONSTRAINT reservation_items_line_key UNIQUE NULLS NOT DISTINCT (order_id, product_id, variant_id)
);

-- The stock ledger: every change of available stock, and every commit, with
-- why (reason) and for what (reference: the order id, or the admin's note).
-- For every product and variant: sum(delta) = available stock, and
-- sum(delta of initial and adjust rows) = available + reserved + committed.
CREATE TABLE stock_movements (
    id         BIGINT       GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id UUID         NOT NULL REFERENCES products (id) ON DELETE RESTRICT,
    variant_id UUID         REFERENCES product_variants (id) ON DELETE RESTRICT,
    delta      INTEGER      NOT NULL,
    reason     VARCHAR(20)  NOT NULL,
    reference  VARCHAR(255) NOT NULL,
    created_at TIMESTAMPTZ  NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT stock_movements_reason_check CHECK (reason IN ('initial', 'adjust', 'reserve', 'commit', 'release', 'expire'))
);

-- A product's history, and the foreign keys' RESTRICT checks.
CREATE INDEX stock_movements_product_id_idx ON stock_movements (product_id, variant_id, created_at);
CREATE INDEX stock_movements_variant_id_idx ON stock_movements (variant_id) WHERE variant_id IS NOT NULL;

-- One row per one-off data load (the demo catalogue), so it happens once.
CREATE TABLE data_seeds (
    name       VARCHAR(50) PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE data_seeds;
DROP TABLE stock_movements;
DROP TABLE reservation_items;
DROP TABLE inventory_reservations;
DROP TABLE product_variants;
DROP TABLE products;
DROP TABLE categories;
