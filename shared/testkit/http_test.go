package testkit

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestCall: the request carries what its arguments say, and no
// Content-Type when it has no body.
func TestCall(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen", r.Method+"|"+r.Header.Get("Content-Type")+"|"+r.Header.Get("Authorization")+"|"+r.Header.Get("Idempotency-Key"))
		_ = json.NewEncoder(w).Encode(map[string]string{"body": string(body)})
	}))
	defer srv.Close()
	tests := []struct {
		name   string
		body   any
		header []string
		seen   string
		got    string
	}{
		{"no body", nil, nil, "GET||Bearer tok|", ""},
		{"empty string", "", nil, "GET||Bearer tok|", ""},
		{"string as is", `{"a":1}`, nil, "GET|application/json|Bearer tok|", `{"a":1}`},
		{"bytes as is", []byte("x"), []string{"Content-Type", "text/plain"}, "GET|text/plain|Bearer tok|", "x"},
		{"value as JSON", map[string]int{"a": 1}, []string{"Idempotency-Key", "k"}, "GET|application/json|Bearer tok|k", `{"a":1}`},
	}
	for _, tc := range tests {
		r := Call(t, "GET", srv.URL, "tok", tc.body, tc.header...)
		if r.Status != http.StatusOK || r.Header.Get("X-Seen") != tc.seen || r.Object(t)["body"] != tc.got {
			t.Errorf("%s: %d, server saw %q, answered %s; want %q and body %q", tc.name, r.Status, r.Header.Get("X-Seen"), r.Body, tc.seen, tc.got)
		}
	}
}
