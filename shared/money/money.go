// Package money holds amounts as integer minor units (cents), never floats.
// In JSON an amount is a decimal string with two places ("19.99", API.md);
// in PostgreSQL it is NUMERIC, read and written as the same decimal text.
package money

import (
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Amount is a sum of money in cents.
type Amount int64

// ErrInvalid is the error of text that is not a decimal amount with at most
// two places.
var ErrInvalid = errors.New(`money: want a decimal string with at most two places, like "19.99"`)

// maxCents keeps parsed amounts far from int64 overflow when summed
// (a hundred trillion).
const maxCents = 1e16

// Parse reads "19.99", "19.9", "19", "-0.50". It rejects more than two
// decimal places, exponents, spaces and anything else that is not a plain
// decimal.
func Parse(s string) (Amount, error) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || (hasDot && (frac == "" || len(frac) > 2)) || !digits(whole) || !digits(frac) {
		return 0, ErrInvalid
	}
	for len(frac) < 2 {
		frac += "0"
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > maxCents/100 {
		return 0, ErrInvalid
	}
	f, _ := strconv.ParseInt(frac, 10, 64)
	cents := w*100 + f
	if neg {
		cents = -cents
	}
	return Amount(cents), nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String renders the amount with two decimal places: "19.99", "-0.50".
func (a Amount) String() string {
	sign, c := "", int64(a)
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d", sign, c/100, c%100)
}

// Cents is the amount in minor units.
func (a Amount) Cents() int64 { return int64(a) }

// MarshalJSON writes the amount as a decimal string.
func (a Amount) MarshalJSON() ([]byte, error) { return json.Marshal(a.String()) }

// UnmarshalJSON accepts only a decimal string; a JSON number is refused so a
// client never sends money through a float.
func (a *Amount) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return ErrInvalid
	}
	v, err := Parse(s)
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// Value writes the amount as NUMERIC text.
func (a Amount) Value() (driver.Value, error) { return a.String(), nil }

// Scan reads a NUMERIC column (lib/pq gives its text as []byte). A value
// with more than two places is an error, not a silent rounding.
func (a *Amount) Scan(src any) error {
	var s string
	switch v := src.(type) {
	case []byte:
		s = string(v)
	case string:
		s = v
	case int64:
		*a = Amount(v * 100)
		return nil
	case nil:
		return errors.New("money: NULL amount; scan into *Amount or sql.Null[Amount]")
	default:
		return fmt.Errorf("money: cannot scan %T", src)
	}
	// NUMERIC(10,2) comes back as "19.99"; a bare NUMERIC may carry
	// trailing zeros ("19.9900").
	if whole, frac, ok := strings.Cut(s, "."); ok && len(frac) > 2 {
		if strings.TrimRight(frac[2:], "0") != "" {
			return fmt.Errorf("money: %q has more than two decimal places", s)
		}
		s = whole + "." + frac[:2]
	}
	v, err := Parse(s)
	if err != nil {
		return fmt.Errorf("money: scan %q: %w", s, err)
	}
	*a = v
	return nil
}
