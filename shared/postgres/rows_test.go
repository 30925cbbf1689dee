package postgres

import (
	"database/sql"
	"testing"
	"time"
)

func TestNullTimeRoundTrip(t *testing.T) {
	if TimePtr(sql.NullTime{}) != nil || NullTime(nil).Valid {
		t.Error("NULL does not stay nil")
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	got := TimePtr(NullTime(&at))
	if got == nil || !got.Equal(at) || got.Location() != time.UTC {
		t.Errorf("TimePtr(NullTime(%s)) = %v, want the same instant in UTC", at, got)
	}
}
