package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/events"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
	"github.com/mercato-dev/mercato/user"
)

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

func (r *Repository) CreateUser(ctx context.Context, u user.User, passwordHash string, created events.Envelope) (user.User, error) {
	var row userRow
	err := sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		err := tx.GetContext(ctx, &row, `
			INSERT INTO users (id, email, password_hash, first_name, last_name, phone, role, is_active)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			RETURNING `+userColumns,
			u.ID, u.Email, passwordHash, u.FirstName, u.LastName, sharedpg.NullString(u.Phone), string(u.Role), u.IsActive)
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

func (r *Repository) UpdateUser(ctx context.Context, id string, change func(user.User) (user.User, events.Envelope, error)) (user.User, error) {
	var row userRow
	err := sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		if err := tx.GetContext(ctx, &row, `SELECT `+userColumns+` FROM users WHERE id = $1 FOR UPDATE`, id); err != nil {
			return notFound(err)
		}
		u, updated, err := change(row.user())
		if err != nil {
			return err
		}
		if err := tx.GetContext(ctx, &row, `
			UPDATE users SET first_name = $2, last_name = $3, phone = $4, updated_at = now()
			WHERE id = $1
			RETURNING `+userColumns,
			id, u.FirstName, u.LastName, sharedpg.NullString(u.Phone)); err != nil {
			return fmt.Errorf("update user: %w", err)
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
		if err := sharedpg.Affected(res, user.ErrNotFound); err != nil {
			return err
		}
		// The update of the user's row above has waited out any rotation in
		// flight (see RotateRefreshToken), so this sees its successor.
		if _, err := tx.ExecContext(ctx, `
			UPDATE refresh_tokens SET revoked_at = now()
			WHERE user_id = $1 AND revoked_at IS NULL`, userID); err != nil {
			return fmt.Errorf("revoke refresh tokens: %w", err)
		}
		return events.Enqueue(ctx, tx, updated)
	})
}

func (r *Repository) ListUsers(ctx context.Context, offset, limit int) ([]user.User, int, error) {
	rows, total, err := sharedpg.Page[userRow](ctx, r.db, userColumns, `users`, `created_at DESC, id DESC`, offset, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("list users: %w", err)
	}
	return sharedpg.Convert(rows, userRow.user), total, nil
}
