package payment

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/mercato-dev/mercato/shared/httpkit"
)

var now = time.Date(2026, time.June, 15, 12, 0, 0, 0, time.UTC)

func validCharge() chargeRequest {
	return chargeRequest{
		OrderID: "6f1c1f0e-8c55-4a0d-9b63-2d7f0f1a9e11", UserID: "0b7b2b4a-3d7e-4c1e-8a3f-5e9c7d1b2a33",
		Amount: "19.99", Currency: "USD",
		Card: CardDetails{Number: "4242424242424242", ExpMonth: 12, ExpYear: 2030, CVC: "123"},
	}
}

// fields returns the fields a validation error names, sorted.
func fields(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	e := httpkit.ToError(context.Background(), log.NewNopLogger(), err)
	if e.Status != 422 || e.Code != "validation_failed" {
		t.Fatalf("err = %v, want a 422 validation_failed", err)
	}
	var out []string
	for k := range e.Details {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestChargeValidation(t *testing.T) {
	tests := []struct {
		name   string
		change func(*chargeRequest)
		want   []string // fields named; nil: valid
	}{
		{"valid", func(*chargeRequest) {}, nil},
		{"currency defaults to USD", func(r *chargeRequest) { r.Currency = "" }, nil},
		{"4-digit CVC", func(r *chargeRequest) { r.Card.CVC = "1234" }, nil},
		{"expires this month", func(r *chargeRequest) { r.Card.ExpMonth, r.Card.ExpYear = 6, 2026 }, nil},
		{"12-digit card", func(r *chargeRequest) { r.Card.Number = "123456789007" }, nil},
		{"19-digit card", func(r *chargeRequest) { r.Card.Number = "4000000000000000006" }, nil},
		{"Luhn fails", func(r *chargeRequest) { r.Card.Number = "4242424242424241" }, []string{"card.number"}},
		{"11 digits", func(r *chargeRequest) { r.Card.Number = "42424242424" }, []string{"card.number"}},
		{"20 digits", func(r *chargeRequest) { r.Card.Number = "42424242424242424242" }, []string{"card.number"}},
		{"spaces in the number", func(r *chargeRequest) { r.Card.Number = "4242 4242 4242 4242" }, []string{"card.number"}},
		{"letters in the number", func(r *chargeRequest) { r.Card.Number = "424242424242424x" }, []string{"card.number"}},
		{"no number", func(r *chargeRequest) { r.Card.Number = "" }, []string{"card.number"}},
		{"expired last month", func(r *chargeRequest) { r.Card.ExpMonth, r.Card.ExpYear = 5, 2026 }, []string{"card.exp_month"}},
		{"expired last year", func(r *chargeRequest) { r.Card.ExpMonth, r.Card.ExpYear = 12, 2025 }, []string{"card.exp_year"}},
		{"two-digit year", func(r *chargeRequest) { r.Card.ExpYear = 30 }, []string{"card.exp_year"}},
		{"year too far", func(r *chargeRequest) { r.Card.ExpYear = 2057 }, []string{"card.exp_year"}},
		{"month 0", func(r *chargeRequest) { r.Card.ExpMonth = 0 }, []string{"card.exp_month"}},
		{"month 13", func(r *chargeRequest) { r.Card.ExpMonth = 13 }, []string{"card.exp_month"}},
		{"CVC of 2", func(r *chargeRequest) { r.Card.CVC = "12" }, []string{"card.cvc"}},
		{"CVC of 5", func(r *chargeRequest) { r.Card.CVC = "12345" }, []string{"card.cvc"}},
		{"CVC not digits", func(r *chargeRequest) { r.Card.CVC = "12a" }, []string{"card.cvc"}},
		{"amount 0", func(r *chargeRequest) { r.Amount = "0.00" }, []string{"amount"}},
		{"amount negative", func(r *chargeRequest) { r.Amount = "-1.00" }, []string{"amount"}},
		{"amount three places", func(r *chargeRequest) { r.Amount = "1.999" }, []string{"amount"}},
		{"amount not a number", func(r *chargeRequest) { r.Amount = "abc" }, []string{"amount"}},
		{"amount too large for the column", func(r *chargeRequest) { r.Amount = "100000000.00" }, []string{"amount"}},
		{"amount missing", func(r *chargeRequest) { r.Amount = "" }, []string{"amount"}},
		{"lower-case currency", func(r *chargeRequest) { r.Currency = "usd" }, []string{"currency"}},
		{"order id not a UUID", func(r *chargeRequest) { r.OrderID = "order-1" }, []string{"order_id"}},
		{"user id missing", func(r *chargeRequest) { r.UserID = "" }, []string{"user_id"}},
		{"everything wrong", func(r *chargeRequest) { *r = chargeRequest{Currency: "dollars"} },
			[]string{"amount", "card.cvc", "card.exp_month", "card.exp_year", "card.number", "currency", "order_id", "user_id"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := validCharge()
			tc.change(&r)
			err := r.validate(now)
			if got := fields(t, err); !slices.Equal(got, tc.want) {
				t.Errorf("fields = %v, want %v", got, tc.want)
			}
			if err != nil && r.Card.Number != "" && strings.Contains(fmt.Sprint(err, httpkit.ToError(context.Background(), log.NewNopLogger(), err).Details), r.Card.Number) {
				t.Errorf("the error echoes the card number: %v", err)
			}
		})
	}
}

// The Luhn checks of these numbers live with validate.Luhn.
func TestCardBrand(t *testing.T) {
	for number, brand := range map[string]string{
		"4242424242424242": "visa", "5555555555554444": "mastercard", "2223003122003222": "mastercard",
		"378282246310005": "amex", "6011111111111117": "discover", "3566002020360505": "jcb",
		"36227206271667": "diners", "6200000000000005": "unionpay", "9999999999999995": "unknown",
	} {
		if got := CardBrand(number); got != brand {
			t.Errorf("CardBrand(%s) = %q, want %q", number, got, brand)
		}
	}
	c := CardDetails{Number: "4242424242424242", ExpMonth: 1, ExpYear: 2030, CVC: "999"}
	if c.Card() != (Card{Brand: "visa", Last4: "4242"}) {
		t.Errorf("Card() = %+v", c.Card())
	}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c), fmt.Sprint(ChargeRequest{Card: c})} {
		if strings.Contains(s, c.Number) || strings.Contains(s, "999") || strings.Contains(s, "424242424242") {
			t.Errorf("formatted card leaks: %s", s)
		}
	}
}

func TestWebhookSignature(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	body := []byte(`{"id":"evt_1","type":"charge.succeeded"}`)
	signed := SignWebhook(secret, body, now)
	ts := fmt.Sprint(now.Unix())
	if !strings.HasPrefix(signed, "t="+ts+",v1=") || len(signed) != len("t="+ts+",v1=")+64 {
		t.Fatalf("signature header %q", signed)
	}
	other := SignWebhook([]byte("another-secret-another-secret-xx"), body, now)
	v1 := strings.TrimPrefix(signed, "t="+ts+",")
	tests := []struct {
		name   string
		header string
		body   []byte
		at     time.Time
		want   error
	}{
		{"valid", signed, body, now, nil},
		{"valid, 4 minutes late", signed, body, now.Add(4 * time.Minute), nil},
		{"valid among several v1 (rotation)", "t=" + ts + ",v1=" + strings.Repeat("ab", 32) + "," + v1, body, now, nil},
		{"missing", "", body, now, ErrInvalidSignature},
		{"garbage", "nonsense", body, now, ErrInvalidSignature},
		{"no timestamp", v1, body, now, ErrInvalidSignature},
		{"no v1", "t=" + ts, body, now, ErrInvalidSignature},
		{"v1 not hex", "t=" + ts + ",v1=zz", body, now, ErrInvalidSignature},
		{"other secret", other, body, now, ErrInvalidSignature},
		{"body changed", signed, []byte(`{"id":"evt_1","type":"charge.failed"}`), now, ErrInvalidSignature},
		{"timestamp changed", "t=" + fmt.Sprint(now.Unix()+1) + "," + v1, body, now, ErrInvalidSignature},
		{"stale", signed, body, now.Add(5*time.Minute + time.Second), ErrStaleWebhook},
		{"from the future", signed, body, now.Add(-5*time.Minute - time.Second), ErrStaleWebhook},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyWebhookSignature(secret, tc.header, tc.body, tc.at, 5*time.Minute)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParseWebhookEvent(t *testing.T) {
	const pid = "6f1c1f0e-8c55-4a0d-9b63-2d7f0f1a9e11"
	tests := []struct {
		body string
		want []string
	}{
		{`{"id":"evt_1","type":"charge.succeeded","charge_id":"ch_1","payment_id":"` + pid + `","extra":1}`, nil},
		{`{"id":"evt_1","type":"charge.failed","charge_id":"ch_1","payment_id":"` + pid + `","failure_code":"card_declined"}`, nil},
		{`{"id":"evt_1","type":"charge.failed","charge_id":"ch_1","payment_id":"` + pid + `"}`, []string{"failure_code"}},
		{`{"id":"","type":"charge.refunded","charge_id":"","payment_id":"x"}`, []string{"charge_id", "id", "payment_id", "type"}},
		{`{"id":"evt\u0000","type":"charge.succeeded","charge_id":"ch_1","payment_id":"` + pid + `"}`, []string{"id"}},
		{`[1]`, []string{"body"}},
	}
	for _, tc := range tests {
		_, err := parseWebhookEvent([]byte(tc.body))
		if got := fields(t, err); !slices.Equal(got, tc.want) {
			t.Errorf("%s: fields = %v, want %v", tc.body, got, tc.want)
		}
	}
}

// TestStaleWebhookNamesTolerance: the stale answer says the tolerance in
// force, whatever it is configured to, and is still ErrStaleWebhook.
func TestStaleWebhookNamesTolerance(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	body := []byte(`{"id":"evt_1"}`)
	for tolerance, want := range map[time.Duration]string{
		5 * time.Minute:  "more than 5m0s away from now",
		90 * time.Second: "more than 1m30s away from now",
	} {
		err := VerifyWebhookSignature(secret, SignWebhook(secret, body, now), body, now.Add(tolerance+time.Second), tolerance)
		if !errors.Is(err, ErrStaleWebhook) || !strings.Contains(err.Error(), want) {
			t.Errorf("tolerance %s: err = %v, want ErrStaleWebhook saying %q", tolerance, err, want)
		}
	}
}
