package payment

import (
	"strconv"
	"strings"
)

// Card is what is kept of a card: never the number.
type Card struct {
	Brand string `json:"brand"`
	Last4 string `json:"last4"`
}

// CardDetails is a card as the customer gave it. It lives only in memory,
// for the provider call; String keeps it out of logs and error messages.
type CardDetails struct {
	Number   string `json:"number"`
	ExpMonth int    `json:"exp_month"`
	ExpYear  int    `json:"exp_year"`
	CVC      string `json:"cvc"`
}

// String shows the card as brand and last four digits only, so that
// formatting one by mistake (%v in a log line) leaks nothing.
func (c CardDetails) String() string {
	k := c.Card()
	return k.Brand + " ****" + k.Last4
}

// GoString is String for %#v.
func (c CardDetails) GoString() string { return c.String() }

// Card is what may be stored of c.
func (c CardDetails) Card() Card {
	last4 := ""
	if n := len(c.Number); n >= 4 {
		last4 = c.Number[n-4:]
	}
	return Card{Brand: CardBrand(c.Number), Last4: last4}
}

// CardBrand names the card network from the number's prefix (IIN ranges).
func CardBrand(number string) string {
	prefix := func(n int) int {
		if len(number) < n {
			return -1
		}
		v, err := strconv.Atoi(number[:n])
		if err != nil {
			return -1
		}
		return v
	}
	between := func(n, lo, hi int) bool { p := prefix(n); return p >= lo && p <= hi }
	switch {
	case strings.HasPrefix(number, "4"):
		return "visa"
	case between(2, 51, 55), between(4, 2221, 2720):
		return "mastercard"
	case between(2, 34, 34), between(2, 37, 37):
		return "amex"
	case between(4, 6011, 6011), between(2, 65, 65), between(3, 644, 649):
		return "discover"
	case between(4, 3528, 3589):
		return "jcb"
	case between(2, 36, 36), between(3, 300, 305), between(2, 38, 39):
		return "diners"
	case between(2, 62, 62):
		return "unionpay"
	default:
		return "unknown"
	}
}
