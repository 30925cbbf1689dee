package defaults

import (
	"testing"
	"time"

	"github.com/go-kit/log"
)

func TestPositive(t *testing.T) {
	if got := Positive(0, 3); got != 3 {
		t.Errorf("Positive(0, 3) = %d, want 3", got)
	}
	if got := Positive(-time.Second, time.Minute); got != time.Minute {
		t.Errorf("Positive(-1s, 1m) = %s, want 1m", got)
	}
	if got := Positive(2*time.Second, time.Minute); got != 2*time.Second {
		t.Errorf("Positive(2s, 1m) = %s, want 2s", got)
	}
}

func TestLogger(t *testing.T) {
	if Logger(nil) == nil {
		t.Error("Logger(nil) is nil, want a logger that discards")
	}
	l := log.NewLogfmtLogger(log.NewSyncWriter(nil))
	if got := Logger(l); got != l {
		t.Errorf("Logger(l) = %v, want l itself", got)
	}
}

func TestDeref(t *testing.T) {
	if got := Deref[string](nil); got != "" {
		t.Errorf("Deref(nil) = %q, want empty", got)
	}
	s := "v1"
	if got := Deref(&s); got != "v1" {
		t.Errorf("Deref(&%q) = %q", s, got)
	}
}
