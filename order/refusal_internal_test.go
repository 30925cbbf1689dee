package order

import (
	"errors"
	"testing"
)

// TestRefusalCodesMatchTheAPI: a refusal is stored under the API's code of
// its domain error (keys stored as HTTP answers before were converted by
// that code), and the refusals are the 4xx answers of the error table, in
// its order of precedence, but for the idempotency errors, which come
// before a checkout runs and are never stored, and the status stream's
// limit, which no checkout meets.
func TestRefusalCodesMatchTheAPI(t *testing.T) {
	var want []string
	for _, m := range errorMappings {
		if m.Status < 500 && !errors.Is(m.Err, ErrIdempotencyMismatch) && !errors.Is(m.Err, ErrIdempotencyInProgress) &&
			!errors.Is(m.Err, ErrTooManyStreams) {
			want = append(want, m.Code)
		}
	}
	if len(want) != len(refusalCodes) {
		t.Fatalf("%d refusal codes, want %d: %v", len(refusalCodes), len(want), want)
	}
	for i, c := range refusalCodes {
		if c.code != want[i] || errorResponse(c.err).Code != c.code {
			t.Errorf("refusal %d is %q (%v), want %q", i, c.code, c.err, want[i])
		}
		if got := (&Refusal{Code: c.code}).Unwrap(); got != c.err {
			t.Errorf("Refusal{%q}.Unwrap() = %v, want %v", c.code, got, c.err)
		}
	}
}
