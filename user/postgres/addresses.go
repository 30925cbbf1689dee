package postgres

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"

	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
	"github.com/mercato-dev/mercato/user"
)

const addressColumns = `id, user_id, type, street, city, state, zip_code, country, is_default, created_at, updated_at`

// inUTC gives an address read back the UTC timestamps the API shows.
func inUTC(a user.Address) user.Address {
	a.CreatedAt, a.UpdatedAt = a.CreatedAt.UTC(), a.UpdatedAt.UTC()
	return a
}

func (r *Repository) ListAddresses(ctx context.Context, userID string) ([]user.Address, error) {
	var addrs []user.Address
	if err := r.db.SelectContext(ctx, &addrs, `
		SELECT `+addressColumns+` FROM user_addresses
		WHERE user_id = $1 ORDER BY created_at, id`, userID); err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	for i := range addrs {
		addrs[i] = inUTC(addrs[i])
	}
	if addrs == nil {
		addrs = []user.Address{}
	}
	return addrs, nil
}

func (r *Repository) CreateAddress(ctx context.Context, a user.Address) (user.Address, error) {
	var stored user.Address
	err := inUserTx(ctx, r.db, a.UserID, func(tx *sqlx.Tx) error {
		if err := clearDefault(ctx, tx, a); err != nil {
			return err
		}
		return tx.GetContext(ctx, &stored, `
			INSERT INTO user_addresses (id, user_id, type, street, city, state, zip_code, country, is_default)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			RETURNING `+addressColumns,
			a.ID, a.UserID, a.Type, a.Street, a.City, a.State, a.ZipCode, a.Country, a.IsDefault)
	})
	if err != nil {
		return user.Address{}, err
	}
	return inUTC(stored), nil
}

func (r *Repository) UpdateAddress(ctx context.Context, userID, id string, change func(user.Address) user.Address) (user.Address, error) {
	var stored user.Address
	err := inUserTx(ctx, r.db, userID, func(tx *sqlx.Tx) error {
		var cur user.Address
		if err := tx.GetContext(ctx, &cur, `
			SELECT `+addressColumns+` FROM user_addresses WHERE id = $1 AND user_id = $2`, id, userID); err != nil {
			return notFound(err)
		}
		a := change(cur)
		a.ID, a.UserID = cur.ID, cur.UserID
		if err := clearDefault(ctx, tx, a); err != nil {
			return err
		}
		// Not found still: a delete does not wait for the user's row.
		return notFound(tx.GetContext(ctx, &stored, `
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
	return inUTC(stored), nil
}

// inUserTx runs write in a transaction that first locks the row of user
// userID, so the address writes of one user queue up: none of them writes
// back what another changed while it ran, and concurrent new defaults do
// not trip the one-default index.
func inUserTx(ctx context.Context, db *sqlx.DB, userID string, write func(tx *sqlx.Tx) error) error {
	return sharedpg.InTx(ctx, db, func(tx *sqlx.Tx) error {
		var locked string
		if err := tx.GetContext(ctx, &locked, `SELECT id FROM users WHERE id = $1 FOR UPDATE`, userID); err != nil {
			return notFound(err)
		}
		return write(tx)
	})
}

// clearDefault clears the previous default address of a's type when a is
// the default.
func clearDefault(ctx context.Context, tx *sqlx.Tx, a user.Address) error {
	if !a.IsDefault {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `
		UPDATE user_addresses SET is_default = FALSE, updated_at = now()
		WHERE user_id = $1 AND type = $2 AND is_default AND id <> $3`,
		a.UserID, a.Type, a.ID); err != nil {
		return fmt.Errorf("clear default address: %w", err)
	}
	return nil
}

func (r *Repository) DeleteAddress(ctx context.Context, userID, id string) error {
	res, err := r.db.ExecContext(ctx, `DELETE FROM user_addresses WHERE id = $1 AND user_id = $2`, id, userID)
	if err != nil {
		return fmt.Errorf("delete address: %w", err)
	}
	return sharedpg.Affected(res, user.ErrNotFound)
}
