package requestid

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	for id, want := range map[string]bool{
		"abc-123":                true,
		New():                    true,
		"":                       false,
		"has space":              false,
		"new\nline":              false,
		"ünïcode":                false,
		strings.Repeat("a", 128): true,
		strings.Repeat("a", 129): false,
	} {
		if Valid(id) != want {
			t.Errorf("Valid(%q) = %v, want %v", id, !want, want)
		}
	}
}

func TestContext(t *testing.T) {
	if FromContext(context.Background()) != "" {
		t.Fatal("empty context carries an id")
	}
	if got := FromContext(NewContext(context.Background(), "r1")); got != "r1" {
		t.Fatalf("FromContext = %q", got)
	}
}

func TestToHTTP(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	ToHTTP(context.Background(), r)
	if got := r.Header.Get(Header); got != "" {
		t.Errorf("without an id, %s = %q, want none", Header, got)
	}
	ToHTTP(NewContext(context.Background(), "req-1"), r)
	if got := r.Header.Get(Header); got != "req-1" {
		t.Errorf("%s = %q, want req-1", Header, got)
	}
}
