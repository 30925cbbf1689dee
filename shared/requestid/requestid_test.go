package requestid

import (
	"context"
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
