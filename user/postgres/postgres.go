// Package postgres is the PostgreSQL repository of the user service, with the
// schema migrations it owns embedded.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/events"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
	"github.com/mercato-dev/mercato/user"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// schemaTable records the user service's migrations, apart from the events
// package's own table in the same database.
const schemaTable = "user_schema_version"

// Migrate brings the database to the current schema: the user tables and
// the events outbox/inbox.
func Migrate(ctx context.Context, db *sqlx.DB) error {
	return events.MigrateService(ctx, db, migrationFiles, schemaTable)
}

// Repository implements user.Repository on PostgreSQL.
type Repository struct {
	db *sqlx.DB
}

var _ user.Repository = (*Repository)(nil)

// New returns a repository on db, whose schema Migrate has brought up to date.
func New(db *sqlx.DB) *Repository { return &Repository{db: db} }

type userRow struct {
	ID           string         `db:"id"`
	Email        string         `db:"email"`
	PasswordHash string         `db:"password_hash"`
	FirstName    string         `db:"first_name"`
	LastName     string         `db:"last_name"`
	Phone        sql.NullString `db:"phone"`
	Role         string         `db:"role"`
	IsActive     bool           `db:"is_active"`
	IsVerified   bool           `db:"is_verified"`
	CreatedAt    time.Time      `db:"created_at"`
	UpdatedAt    time.Time      `db:"updated_at"`
}

const userColumns = `id, email, password_hash, first_name, last_name, phone, role, is_active, is_verified, created_at, updated_at`

func (r userRow) user() user.User {
	return user.User{
		ID: r.ID, Email: r.Email, FirstName: r.FirstName, LastName: r.LastName,
		Phone: r.Phone.String, Role: auth.Role(r.Role), IsActive: r.IsActive, IsVerified: r.IsVerified,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
}

// nullable stores "" as NULL, the seed's "no phone".
func nullable(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// notFound maps the one error that means "no such row"; every other error is
// a failure and stays one.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return user.ErrNotFound
	}
	return err
}

func (r *Repository) CreateUser(ctx context.Context, u user.User, passwordHash string, created events.Envelope) (user.User, error) {
	var row userRow
	err := sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		err := tx.GetContext(ctx, &row, `
			INSERT INTO users (id, email, password_hash, first_name, last_name, phone, role, is_active)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			RETURNING `+userColumns,
			u.ID, u.Email, passwordHash, u.FirstName, u.LastName, nullable(u.Phone), string(u.Role), u.IsActive)
		if sharedpg.IsUniqueViolation(err, "users_email_key") {
			return user.ErrEmailTaken
		}
		if err != nil {
			return fmt.Errorf("insert user: %w", err)
		}
		return events.Enqueue(ctx, tx, created)
	})
	if err != nil {
		return user.User{}, err
	}
	return row.user(), nil
}

func (r *Repository) UserByID(ctx context.Context, id string) (user.User, error) {
	var row userRow
	err := r.db.GetContext(ctx, &row, `SELECT `+userColumns+` FROM users WHERE id = $1`, id)
	if err != nil {
		return user.User{}, notFound(err)
	}
	return row.user(), nil
}

func (r *Repository) Credentials(ctx context.Context, email string) (user.User, string, error) {
	var row userRow
	err := r.db.GetContext(ctx, &row, `SELECT `+userColumns+` FROM users WHERE email = $1`, email)
	if err != nil {
		return user.User{}, "", notFound(err)
	}
	return row.user(), row.PasswordHash, nil
}

func (r *Repository) UpdateUser(ctx context.Context, u user.User, updated events.Envelope) (user.User, error) {
	var row userRow
	err := sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		err := tx.GetContext(ctx, &row, `
			UPDATE users SET first_name = $2, last_name = $3, phone = $4, updated_at = now()
			WHERE id = $1
			RETURNING `+userColumns,
			u.ID, u.FirstName, u.LastName, nullable(u.Phone))
		if err != nil {
			return notFound(err)
		}
		return events.Enqueue(ctx, tx, updated)
	})
	if err != nil {
		return user.User{}, err
	}
	return row.user(), nil
}

func (r *Repository) MakeAdmin(ctx context.Context, userID, passwordHash string, updated events.Envelope) error {
	return sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, `
			UPDATE users SET role = 'admin', is_active = TRUE, password_hash = $2, updated_at = now()
			WHERE id = $1`, userID, passwordHash)
		if err != nil {
			return fmt.Errorf("promote user: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return user.ErrNotFound
		}
		if _, err := tx.ExecContext(ctx, `
			UPDATE refresh_tokens SET revoked_at = now()
			WHERE user_id = $1 AND revoked_at IS NULL`, userID); err != nil {
			return fmt.Errorf("revoke refresh tokens: %w", err)
		}
		return events.Enqueue(ctx, tx, updated)
	})
}

func (r *Repository) ListUsers(ctx context.Context, offset, limit int) ([]user.User, int, error) {
	var total int
	if err := r.db.GetContext(ctx, &total, `SELECT count(*) FROM users`); err != nil {
		return nil, 0, fmt.Errorf("count users: %w", err)
	}
	var rows []userRow
	if err := r.db.SelectContext(ctx, &rows, `
		SELECT `+userColumns+` FROM users
		ORDER BY created_at DESC, id DESC
		OFFSET $1 LIMIT $2`, offset, limit); err != nil {
		return nil, 0, fmt.Errorf("list users: %w", err)
	}
	users := make([]user.User, len(rows))
	for i, row := range rows {
		users[i] = row.user()
	}
	return users, total, nil
}

type refreshTokenRow struct {
	ID         string         `db:"id"`
	UserID     string         `db:"user_id"`
	FamilyID   string         `db:"family_id"`
	TokenHash  []byte         `db:"token_hash"`
	ExpiresAt  time.Time      `db:"expires_at"`
	RevokedAt  sql.NullTime   `db:"revoked_at"`
	ReplacedBy sql.NullString `db:"replaced_by"`
	CreatedAt  time.Time      `db:"created_at"`
}

func (r refreshTokenRow) token() user.RefreshToken {
	t := user.RefreshToken{
		ID: r.ID, UserID: r.UserID, FamilyID: r.FamilyID, Hash: r.TokenHash,
		ExpiresAt: r.ExpiresAt.UTC(), ReplacedBy: r.ReplacedBy.String, CreatedAt: r.CreatedAt.UTC(),
	}
	if r.RevokedAt.Valid {
		at := r.RevokedAt.Time.UTC()
		t.RevokedAt = &at
	}
	return t
}

const insertRefreshToken = `
	INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at)
	VALUES ($1, $2, $3, $4, $5)`

func (r *Repository) CreateRefreshToken(ctx context.Context, t user.RefreshToken) error {
	_, err := r.db.ExecContext(ctx, insertRefreshToken, t.ID, t.UserID, t.FamilyID, t.Hash, t.ExpiresAt)
	if err != nil {
		return fmt.Errorf("insert refresh token: %w", err)
	}
	return nil
}

func (r *Repository) RefreshTokenByHash(ctx context.Context, hash []byte) (user.RefreshToken, error) {
	var row refreshTokenRow
	err := r.db.GetContext(ctx, &row, `
		SELECT id, user_id, family_id, token_hash, expires_at, revoked_at, replaced_by, created_at
		FROM refresh_tokens WHERE token_hash = $1`, hash)
	if err != nil {
		return user.RefreshToken{}, notFound(err)
	}
	return row.token(), nil
}

func (r *Repository) RotateRefreshToken(ctx context.Context, oldID string, next user.RefreshToken) error {
	return sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		// The conditional update is the arbiter between concurrent refreshes
		// of one token: only one of them finds it unrevoked.
		res, err := tx.ExecContext(ctx, `
			UPDATE refresh_tokens SET revoked_at = now(), replaced_by = $2
			WHERE id = $1 AND revoked_at IS NULL`, oldID, next.ID)
		if err != nil {
			return fmt.Errorf("revoke refresh token: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return user.ErrRefreshTokenReused
		}
		if _, err := tx.ExecContext(ctx, insertRefreshToken,
			next.ID, next.UserID, next.FamilyID, next.Hash, next.ExpiresAt); err != nil {
			return fmt.Errorf("insert refresh token: %w", err)
		}
		return nil
	})
}

func (r *Repository) RevokeRefreshTokenFamily(ctx context.Context, familyID string) error {
	_, err := r.db.ExecContext(ctx, `
		UPDATE refresh_tokens SET revoked_at = now()
		WHERE family_id = $1 AND revoked_at IS NULL`, familyID)
	if err != nil {
		return fmt.Errorf("revoke refresh token family: %w", err)
	}
	return nil
}

type addressRow struct {
	ID        string    `db:"id"`
	UserID    string    `db:"user_id"`
	Type      string    `db:"type"`
	Street    string    `db:"street"`
	City      string    `db:"city"`
	State     string    `db:"state"`
	ZipCode   string    `db:"zip_code"`
	Country   string    `db:"country"`
	IsDefault bool      `db:"is_default"`
	CreatedAt time.Time `db:"created_at"`
	UpdatedAt time.Time `db:"updated_at"`
}

const addressColumns = `id, user_id, type, street, city, state, zip_code, country, is_default, created_at, updated_at`

func (r addressRow) address() user.Address {
	return user.Address{
		ID: r.ID, UserID: r.UserID, Type: r.Type, Street: r.Street, City: r.City, State: r.State,
		ZipCode: r.ZipCode, Country: r.Country, IsDefault: r.IsDefault,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
}

func (r *Repository) ListAddresses(ctx context.Context, userID string) ([]user.Address, error) {
	var rows []addressRow
	if err := r.db.SelectContext(ctx, &rows, `
		SELECT `+addressColumns+` FROM user_addresses
		WHERE user_id = $1 ORDER BY created_at, id`, userID); err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	addrs := make([]user.Address, len(rows))
	for i, row := range rows {
		addrs[i] = row.address()
	}
	return addrs, nil
}

func (r *Repository) AddressByID(ctx context.Context, userID, id string) (user.Address, error) {
	var row addressRow
	err := r.db.GetContext(ctx, &row, `
		SELECT `+addressColumns+` FROM user_addresses WHERE id = $1 AND user_id = $2`, id, userID)
	if err != nil {
		return user.Address{}, notFound(err)
	}
	return row.address(), nil
}

func (r *Repository) CreateAddress(ctx context.Context, a user.Address) (user.Address, error) {
	var row addressRow
	err := r.inAddressTx(ctx, a, func(tx *sqlx.Tx) error {
		return tx.GetContext(ctx, &row, `
			INSERT INTO user_addresses (id, user_id, type, street, city, state, zip_code, country, is_default)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			RETURNING `+addressColumns,
			a.ID, a.UserID, a.Type, a.Street, a.City, a.State, a.ZipCode, a.Country, a.IsDefault)
	})
	if err != nil {
		return user.Address{}, err
	}
	return row.address(), nil
}

func (r *Repository) UpdateAddress(ctx context.Context, a user.Address) (user.Address, error) {
	var row addressRow
	err := r.inAddressTx(ctx, a, func(tx *sqlx.Tx) error {
		return notFound(tx.GetContext(ctx, &row, `
			UPDATE user_addresses
			SET type = $3, street = $4, city = $5, state = $6, zip_code = $7, country = $8,
			    is_default = $9, updated_at = now()
			WHERE id = $1 AND user_id = $2
			RETURNING `+addressColumns,
			a.ID, a.UserID, a.Type, a.Street, a.City, a.State, a.ZipCode, a.Country, a.IsDefault))
	})
	if err != nil {
		return user.Address{}, err
	}
	return row.address(), nil
}

// inAddressTx runs write in a transaction that first locks the owner's row,
// so concurrent address writes of one user queue up instead of tripping the
// one-default index, and, when a becomes the default, clears the previous
// default of its type.
func (r *Repository) inAddressTx(ctx context.Context, a user.Address, write func(tx *sqlx.Tx) error) error {
	return sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		var locked string
		err := tx.GetContext(ctx, &locked, `SELECT id FROM users WHERE id = $1 FOR UPDATE`, a.UserID)
		if err != nil {
			return notFound(err)
		}
		if a.IsDefault {
			if _, err := tx.ExecContext(ctx, `
				UPDATE user_addresses SET is_default = FALSE, updated_at = now()
				WHERE user_id = $1 AND type = $2 AND is_default AND id <> $3`,
				a.UserID, a.Type, a.ID); err != nil {
				return fmt.Errorf("clear default address: %w", err)
			}
		}
		return write(tx)
	})
}

func (r *Repository) DeleteAddress(ctx context.Context, userID, id string) error {
	res, err := r.db.ExecContext(ctx, `DELETE FROM user_addresses WHERE id = $1 AND user_id = $2`, id, userID)
	if err != nil {
		return fmt.Errorf("delete address: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return user.ErrNotFound
	}
	return nil
}
