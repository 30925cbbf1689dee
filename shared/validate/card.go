package validate

import (
	"strconv"
	"time"
)

// Card is a payment card as a customer gives it; the order and payment
// services convert theirs (the same fields) to check it. Formatting one
// shows nothing of it.
type Card struct {
	Number   string
	ExpMonth int
	ExpYear  int
	CVC      string
}

func (c Card) String() string   { return "card(redacted)" }
func (c Card) GoString() string { return c.String() }

// maxCardYears is how far ahead an expiry year may be.
const maxCardYears = 30

// Card checks what a processor would reject before charging: a number of 12
// to 19 digits that passes the Luhn checksum, an expiry month and year that
// have not passed (a card is valid through the last day of its expiry
// month, in UTC), and a CVC of 3 or 4 digits. Each part is reported under
// field + "." + its JSON name; no reason repeats the number.
func (p Problems) Card(field string, c Card, now time.Time) {
	switch n := len(c.Number); {
	case n < 12 || n > 19 || !Digits(c.Number):
		p[field+".number"] = "must be 12 to 19 digits"
	case !Luhn(c.Number):
		p[field+".number"] = "is not a valid card number"
	}
	if c.ExpMonth < 1 || c.ExpMonth > 12 {
		p[field+".exp_month"] = "must be between 1 and 12"
	}
	now = now.UTC()
	year, month := now.Year(), int(now.Month())
	switch {
	case c.ExpYear < year || c.ExpYear > year+maxCardYears:
		p[field+".exp_year"] = "must be this year or one of the next " + strconv.Itoa(maxCardYears)
	case c.ExpYear == year && c.ExpMonth >= 1 && c.ExpMonth < month:
		p[field+".exp_month"] = "the card has expired"
	}
	if n := len(c.CVC); n < 3 || n > 4 || !Digits(c.CVC) {
		p[field+".cvc"] = "must be 3 or 4 digits"
	}
}

// Digits reports whether s is one or more ASCII digits.
func Digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// Luhn reports whether number (digits only) passes the Luhn checksum every
// card number carries, which catches a mistyped digit before a charge.
func Luhn(number string) bool {
	if !Digits(number) {
		return false
	}
	sum, double := 0, false
	for i := len(number) - 1; i >= 0; i-- {
		d := int(number[i] - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}
