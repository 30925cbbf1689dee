package validate

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"
)

// check runs one check on a fresh Problems and returns what it recorded.
func check(f func(Problems)) Problems {
	p := Problems{}
	f(p)
	return p
}

func TestProblemsErr(t *testing.T) {
	if err := (Problems{}).Err(); err != nil {
		t.Fatalf("no problems: err = %v, want nil", err)
	}
	p := Problems{"b": "is required", "a": "must be a UUID"}
	err := p.Err()
	var ve *Error
	if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) || !errors.Is(fmt.Errorf("wrapped: %w", err), ErrInvalid) {
		t.Fatalf("err = %#v, want an *Error that is ErrInvalid", err)
	}
	if want := "the request has invalid fields: a must be a UUID, b is required"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
	if d := ve.ErrorDetails(); len(d) != 2 || d["a"] != "must be a UUID" || d["b"] != "is required" {
		t.Errorf("ErrorDetails() = %v", d)
	}
	// The error is a snapshot: later checks do not change it.
	p["c"] = "later"
	if _, ok := ve.Fields["c"]; ok {
		t.Errorf("Fields changed after Err: %v", ve.Fields)
	}
}

func TestText(t *testing.T) {
	tests := []struct {
		name     string
		v        string
		max      int
		required bool
		want     string // "" when valid
	}{
		{"ok", "Ada", 10, true, ""},
		{"trimmed before counting", "  Ada  ", 3, true, ""},
		{"optional empty", "", 10, false, ""},
		{"required empty", "", 10, true, "is required"},
		{"required blank", " \t ", 10, true, "is required"},
		{"too long", "abcd", 3, false, "must be at most 3 characters"},
		{"counts characters, not bytes", "ééé", 3, true, ""},
		{"invalid UTF-8", "a\xffb", 10, false, "must be valid UTF-8"},
		{"NUL", "a\x00b", 10, false, "must not contain NUL characters"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := check(func(p Problems) { p.Text("f", tc.v, tc.max, tc.required) })
			if got["f"] != tc.want || (tc.want == "" && len(got) != 0) {
				t.Errorf("Text(%q) = %v, want %q", tc.v, got, tc.want)
			}
		})
	}
}

func TestParseUUID(t *testing.T) {
	const id = "6f1c1f0e-8c55-4a0d-9b63-2d7f0f1a9e11"
	tests := []struct {
		in, want string
		ok       bool
	}{
		{id, id, true},
		{strings.ToUpper(id), id, true},
		{"", "", false},
		{"42", "", false},
		{"6f1c1f0e8c554a0d9b632d7f0f1a9e11", "", false}, // 32 hex digits: a slug, not an id
		{"{" + id + "}", "", false},
		{"urn:uuid:" + id, "", false},
		{"6f1c1f0e-8c55-4a0d-9b63-2d7f0f1a9e1z", "", false},
	}
	for _, tc := range tests {
		got, ok := ParseUUID(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseUUID(%q) = %q, %v, want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
		p := check(func(p Problems) { p.UUID("id", tc.in) })
		if (len(p) == 0) != tc.ok || (!tc.ok && p["id"] != "must be a UUID") {
			t.Errorf("UUID(%q) recorded %v", tc.in, p)
		}
	}
}

func TestAmount(t *testing.T) {
	tests := []struct{ v, want string }{
		{"19.99", ""},
		{"0.01", ""},
		{"99999999.99", ""},
		{"5", ""},
		{"0.00", "must be greater than 0"},
		{"-1.00", "must be greater than 0"},
		{"100000000.00", "must be at most 99999999.99"},
		{"1.999", `must be a decimal string with at most two places, like "19.99"`},
		{"abc", `must be a decimal string with at most two places, like "19.99"`},
		{"", `must be a decimal string with at most two places, like "19.99"`},
	}
	for _, tc := range tests {
		if got := check(func(p Problems) { p.Amount("amount", tc.v) }); got["amount"] != tc.want {
			t.Errorf("Amount(%q) = %v, want %q", tc.v, got, tc.want)
		}
	}
}

func TestPage(t *testing.T) {
	tests := []struct {
		page, size int
		want       Problems
	}{
		{1, 20, Problems{}},
		{7, MaxPageSize, Problems{}},
		{0, 20, Problems{"page": "must be at least 1"}},
		{1, 0, Problems{"page_size": "must be between 1 and 100"}},
		{-1, 101, Problems{"page": "must be at least 1", "page_size": "must be between 1 and 100"}},
	}
	for _, tc := range tests {
		if got := check(func(p Problems) { p.Page(tc.page, tc.size) }); !maps.Equal(got, tc.want) {
			t.Errorf("Page(%d, %d) = %v, want %v", tc.page, tc.size, got, tc.want)
		}
	}
}

func TestIdempotencyKey(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
	}{
		{"", true}, // none given
		{"order-42", true},
		{"a b~!", true},
		{strings.Repeat("k", MaxIdempotencyKey), true},
		{strings.Repeat("k", MaxIdempotencyKey+1), false},
		{"clé", false},
		{"tab\there", false},
	}
	for _, tc := range tests {
		got := check(func(p Problems) { p.IdempotencyKey("Idempotency-Key", tc.key) })
		if (len(got) == 0) != tc.ok {
			t.Errorf("IdempotencyKey(%q) = %v, want ok %v", tc.key, got, tc.ok)
		}
	}
}

func TestCard(t *testing.T) {
	now := time.Date(2026, time.June, 15, 12, 0, 0, 0, time.UTC)
	valid := Card{Number: "4242424242424242", ExpMonth: 12, ExpYear: 2030, CVC: "123"}
	tests := []struct {
		name   string
		change func(*Card)
		want   Problems
	}{
		{"valid", func(*Card) {}, Problems{}},
		{"4-digit CVC", func(c *Card) { c.CVC = "1234" }, Problems{}},
		{"expires this month", func(c *Card) { c.ExpMonth, c.ExpYear = 6, 2026 }, Problems{}},
		{"12 digits", func(c *Card) { c.Number = "123456789007" }, Problems{}},
		{"19 digits", func(c *Card) { c.Number = "4000000000000000006" }, Problems{}},
		{"Luhn fails", func(c *Card) { c.Number = "4242424242424241" }, Problems{"card.number": "is not a valid card number"}},
		{"11 digits", func(c *Card) { c.Number = "42424242424" }, Problems{"card.number": "must be 12 to 19 digits"}},
		{"20 digits", func(c *Card) { c.Number = "42424242424242424242" }, Problems{"card.number": "must be 12 to 19 digits"}},
		{"spaces", func(c *Card) { c.Number = "4242 4242 4242 4242" }, Problems{"card.number": "must be 12 to 19 digits"}},
		{"no number", func(c *Card) { c.Number = "" }, Problems{"card.number": "must be 12 to 19 digits"}},
		{"expired last month", func(c *Card) { c.ExpMonth, c.ExpYear = 5, 2026 }, Problems{"card.exp_month": "the card has expired"}},
		{"expired last year", func(c *Card) { c.ExpYear = 2025 }, Problems{"card.exp_year": "must be this year or one of the next 30"}},
		{"two-digit year", func(c *Card) { c.ExpYear = 30 }, Problems{"card.exp_year": "must be this year or one of the next 30"}},
		{"30 years ahead", func(c *Card) { c.ExpYear = 2056 }, Problems{}},
		{"31 years ahead", func(c *Card) { c.ExpYear = 2057 }, Problems{"card.exp_year": "must be this year or one of the next 30"}},
		{"month 0", func(c *Card) { c.ExpMonth = 0 }, Problems{"card.exp_month": "must be between 1 and 12"}},
		{"month 13", func(c *Card) { c.ExpMonth = 13 }, Problems{"card.exp_month": "must be between 1 and 12"}},
		{"CVC of 2", func(c *Card) { c.CVC = "12" }, Problems{"card.cvc": "must be 3 or 4 digits"}},
		{"CVC of 5", func(c *Card) { c.CVC = "12345" }, Problems{"card.cvc": "must be 3 or 4 digits"}},
		{"CVC not digits", func(c *Card) { c.CVC = "12a" }, Problems{"card.cvc": "must be 3 or 4 digits"}},
		{"nothing given", func(c *Card) { *c = Card{} }, Problems{"card.number": "must be 12 to 19 digits",
			"card.exp_month": "must be between 1 and 12", "card.exp_year": "must be this year or one of the next 30",
			"card.cvc": "must be 3 or 4 digits"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid
			tc.change(&c)
			got := check(func(p Problems) { p.Card("card", c, now) })
			if !maps.Equal(got, tc.want) {
				t.Errorf("Card = %v, want %v", got, tc.want)
			}
			if c.Number != "" && strings.Contains(fmt.Sprint(got, got.Err()), c.Number) {
				t.Errorf("the problems repeat the card number: %v", got)
			}
		})
	}
	// The expiry is judged in UTC: 23:30 on 31 May in New York is June in UTC.
	ny := time.FixedZone("New York", -4*60*60)
	if got := check(func(p Problems) {
		p.Card("card", Card{Number: valid.Number, ExpMonth: 5, ExpYear: 2026, CVC: "123"}, time.Date(2026, time.May, 31, 23, 30, 0, 0, ny))
	}); got["card.exp_month"] != "the card has expired" {
		t.Errorf("expiry not judged in UTC: %v", got)
	}
	if s := fmt.Sprintf("%v %+v %#v %s", valid, valid, valid, valid); strings.Contains(s, valid.Number) || strings.Contains(s, "123") {
		t.Errorf("formatted card leaks: %s", s)
	}
}

func TestDigits(t *testing.T) {
	for s, want := range map[string]bool{"0": true, "0123456789": true, "": false, "12a": false, "1 2": false, "-1": false, "١٢": false} {
		if got := Digits(s); got != want {
			t.Errorf("Digits(%q) = %v, want %v", s, got, want)
		}
	}
}

// The valid numbers are the card brands' test numbers (payment.CardBrand
// tells them apart).
func TestLuhn(t *testing.T) {
	for _, number := range []string{
		"4242424242424242", "5555555555554444", "2223003122003222", "378282246310005", "6011111111111117",
		"3566002020360505", "36227206271667", "6200000000000005", "9999999999999995", "79927398713", "0",
	} {
		if !Luhn(number) {
			t.Errorf("Luhn(%s) = false", number)
		}
	}
	for _, bad := range []string{"", "4242424242424241", "79927398710", "12a4", "4242-4242-4242-4242", " 0"} {
		if Luhn(bad) {
			t.Errorf("Luhn(%q) = true", bad)
		}
	}
}

func TestLine(t *testing.T) {
	const id = "6f1c1f0e-8c55-4a0d-9b63-2d7f0f1a9e11"
	bad := "nope"
	p := Problems{}
	p.Line("items[0]", id, nil, 1, 10)
	if len(p) != 0 {
		t.Fatalf("a good line: %v", p)
	}
	p.Line("items[1]", "x", &bad, 11, 10)
	for _, f := range []string{"items[1].product_id", "items[1].variant_id", "items[1].quantity"} {
		if p[f] == "" {
			t.Errorf("no problem for %s: %v", f, p)
		}
	}
	if got := p["items[1].quantity"]; got != "must be between 1 and 10" {
		t.Errorf("quantity: %q", got)
	}
}
