package postgres

import (
	"database/sql"
	"errors"
	"time"
)

// NotFound maps the one error that means "no such row" to missing; every
// other error is a failure and stays one.
func NotFound(err, missing error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return missing
	}
	return err
}

// Affected returns none when the UPDATE or DELETE behind res matched no row,
// and nil when it matched some.
func Affected(res sql.Result, none error) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return none
	}
	return nil
}

// NullString stores "" as NULL.
func NullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// TimePtr reads a nullable timestamp: nil for NULL, else the time in UTC.
func TimePtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}

// NullTime stores nil as NULL.
func NullTime(t *time.Time) sql.NullTime {
	if t == nil {
		return sql.NullTime{}
	}
	return sql.NullTime{Time: *t, Valid: true}
}

// Convert maps rows to the domain values they store.
func Convert[Row, T any](rows []Row, of func(Row) T) []T {
	out := make([]T, len(rows))
	for i, row := range rows {
		out[i] = of(row)
	}
	return out
}

// TryConvert is Convert for rows whose conversion can fail (a JSON column
// that does not decode); it stops at the first failure.
func TryConvert[Row, T any](rows []Row, of func(Row) (T, error)) ([]T, error) {
	out := make([]T, len(rows))
	for i, row := range rows {
		v, err := of(row)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}
