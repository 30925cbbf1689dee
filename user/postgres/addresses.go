package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
	"github.com/mercato-dev/mercato/user"
)

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
	return oneRow(res, user.ErrNotFound)
}
