package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/go-kit/log"
	"github.com/jmoiron/sqlx"

	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
	"github.com/mercato-dev/mercato/user"
)

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
	t.RevokedAt = sharedpg.TimePtr(r.RevokedAt)
	return t
}

// insertRefreshToken stores a token's hash, never the token itself.
//
//nolint:gosec // G101: a SQL statement naming the token_hash column, not a credential
const insertRefreshToken = `
	INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at)
	VALUES ($1, $2, $3, $4, $5)`

func (r *Repository) CreateRefreshToken(ctx context.Context, t user.RefreshToken, passwordHash string) error {
	return sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		// The share lock waits out a change of the user's row in flight
		// (MakeAdmin), so the hash read is the one committed; a change that
		// starts after it waits for this token and then revokes it.
		var current string
		if err := tx.GetContext(ctx, &current, `SELECT password_hash FROM users WHERE id = $1 FOR SHARE`, t.UserID); err != nil {
			return sharedpg.NotFound(err, user.ErrInvalidCredentials)
		}
		if current != passwordHash {
			return user.ErrInvalidCredentials
		}
		if _, err := tx.ExecContext(ctx, insertRefreshToken, t.ID, t.UserID, t.FamilyID, t.Hash, t.ExpiresAt); err != nil {
			return fmt.Errorf("insert refresh token: %w", err)
		}
		return nil
	})
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
		// A revocation of the user's tokens locks the user's row before it
		// looks for them, so this share lock makes it wait until the
		// successor is committed, and then see it.
		var owner string
		if err := tx.GetContext(ctx, &owner, `SELECT id FROM users WHERE id = $1 FOR SHARE`, next.UserID); err != nil {
			return notFound(err)
		}
		// The conditional update is the arbiter between concurrent refreshes
		// of one token: only one of them finds it unrevoked.
		res, err := tx.ExecContext(ctx, `
			UPDATE refresh_tokens SET revoked_at = now(), replaced_by = $2
			WHERE id = $1 AND revoked_at IS NULL`, oldID, next.ID)
		if err != nil {
			return fmt.Errorf("revoke refresh token: %w", err)
		}
		if err := sharedpg.Affected(res, user.ErrRefreshTokenReused); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, insertRefreshToken,
			next.ID, next.UserID, next.FamilyID, next.Hash, next.ExpiresAt); err != nil {
			return fmt.Errorf("insert refresh token: %w", err)
		}
		return nil
	})
}

func (r *Repository) RevokeRefreshTokenFamily(ctx context.Context, familyID string) error {
	return sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		// Locking the owner first waits out a rotation in flight (see
		// RotateRefreshToken); the update after it then sees the successor.
		var owner []string
		if err := tx.SelectContext(ctx, &owner, `
			SELECT id FROM users
			WHERE id = (SELECT user_id FROM refresh_tokens WHERE family_id = $1 LIMIT 1)
			FOR NO KEY UPDATE`, familyID); err != nil {
			return fmt.Errorf("lock refresh token family's user: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `
			UPDATE refresh_tokens SET revoked_at = now()
			WHERE family_id = $1 AND revoked_at IS NULL`, familyID); err != nil {
			return fmt.Errorf("revoke refresh token family: %w", err)
		}
		return nil
	})
}

// ExpiredTokenRetention is how long a refresh token is kept after it
// expired. A rotated token that comes back revokes its session (theft
// detection, user.Service.Refresh), even when it has expired: a client
// offline for weeks may still hold the copy a thief forked. Kept this long,
// such a token is detected for up to 30 days past its expiry, and the table
// holds at most the tokens of the last TTL plus 30 days.
const ExpiredTokenRetention = 30 * 24 * time.Hour

// TokenJanitor deletes the refresh tokens that expired more than
// ExpiredTokenRetention ago, every hour.
func (r *Repository) TokenJanitor(logger log.Logger) *sharedpg.Janitor {
	return &sharedpg.Janitor{DB: r.db, Table: "refresh_tokens", Key: "id", Column: "expires_at",
		Retention: ExpiredTokenRetention, Interval: time.Hour, Logger: logger}
}
