package httpkit

import (
	"errors"
	"net/url"
	"testing"

	"github.com/mercato-dev/mercato/shared/validate"
)

func TestDecodePage(t *testing.T) {
	tests := []struct {
		query              string
		wantPage, wantSize int
		wantBad            []string
	}{
		{"", 1, validate.DefaultPageSize, nil},
		{"page=3&page_size=50", 3, 50, nil},
		{"page_size=500", 1, 500, nil}, // bounds are the endpoint's to check
		{"page=two", 0, 0, []string{"page"}},
		{"page=x&page_size=1.5", 0, 0, []string{"page", "page_size"}},
	}
	for _, tc := range tests {
		q, _ := url.ParseQuery(tc.query)
		page, size, err := DecodePage(q)
		if tc.wantBad == nil {
			if err != nil || page != tc.wantPage || size != tc.wantSize {
				t.Errorf("%q: %d, %d, %v", tc.query, page, size, err)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Status != 422 || len(e.Details) != len(tc.wantBad) {
			t.Fatalf("%q: want a 422 naming %v, got %v", tc.query, tc.wantBad, err)
		}
		for _, f := range tc.wantBad {
			if e.Details[f] == nil {
				t.Errorf("%q: %s not named in %v", tc.query, f, e.Details)
			}
		}
	}
}
