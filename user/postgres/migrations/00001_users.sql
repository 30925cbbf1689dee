-- +goose Up
-- The seed's users table, plus a role, TIMESTAMPTZ times and NOT NULL flags.
-- The service stores emails trimmed and lowercased; the CHECK keeps a stray
-- writer from adding a second spelling the unique constraint would not catch.
CREATE TABLE users (
    id            UUID         PRIMARY KEY DEFAULT gen_random_uuid(),
    email         VARCHAR(255) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    first_name    VARCHAR(100) NOT NULL,
    last_name     VARCHAR(100) NOT NULL,
    phone         VARCHAR(20),
    role          VARCHAR(20)  NOT NULL DEFAULT 'customer',
    is_active     BOOLEAN      NOT NULL DEFAULT TRUE,
    is_verified   BOOLEAN      NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_email_normalised CHECK (email = lower(btrim(email))),
    CONSTRAINT users_role_check CHECK (role IN ('customer', 'admin'))
);

-- The admin's user list pages newest first.
CREATE INDEX users_created_at_idx ON users (created_at DESC, id DESC);

CREATE TABLE user_addresses (
    id         UUID         PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    UUID         NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type       VARCHAR(20)  NOT NULL,
    street     VARCHAR(255) NOT NULL,
    city       VARCHAR(100) NOT NULL,
    state      VARCHAR(100) NOT NULL,
    zip_code   VARCHAR(20)  NOT NULL,
    country    VARCHAR(100) NOT NULL,
    is_default BOOLEAN      NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT user_addresses_type_check CHECK (type IN ('billing', 'shipping'))
);

-- Listing a user's addresses, and the foreign key's cascade.
CREATE INDEX user_addresses_user_id_idx ON user_addresses (user_id, created_at);

-- At most one default address per user and type. The service clears the old
-- default in the same transaction that sets a new one; this index is what
-- makes the rule hold whatever the code does.
CREATE UNIQUE INDEX user_addresses_one_default_idx ON user_addresses (user_id, type) WHERE is_default;

-- Refresh tokens, stored only as their SHA-256 hash. A login starts a family;
-- each refresh revokes the presented token and adds its successor to the
-- family (replaced_by), so a revoked token coming back reveals a copy and the
-- whole family can be revoked.
CREATE TABLE refresh_tokens (
    id          UUID        PRIMARY KEY,
    user_id     UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   UUID        NOT NULL,
    token_hash  BYTEA       NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ,
    replaced_by UUID,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash),
    CONSTRAINT refresh_tokens_token_hash_len CHECK (octet_length(token_hash) = 32)
);

-- Revoking a family, and every token of a user (promotion to admin, the
-- foreign key's cascade).
CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_id_idx ON refresh_tokens (user_id);

-- +goose Down
DROP TABLE refresh_tokens;
DROP TABLE user_addresses;
DROP TABLE users;
