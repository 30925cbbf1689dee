package chaos

import (
	"bytes"
	"image/png"
	"strings"
	"testing"
	"time"

	"github.com/mercato-dev/mercato/e2e/load"
)

// TestFaultWindowFromTheTimeline: a fault's figures are the seconds from
// its start until the platform was whole and the traffic clean again.
func TestFaultWindowFromTheTimeline(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := &load.Report{Started: start, Rate: 10, DurationSeconds: 10}
	for s, errs := range []int{0, 0, 5, 8, 3, 0, 0, 0, 0, 0} {
		r.Timeline = append(r.Timeline, load.Second{At: s, Requests: 10, Errors: errs, P99: float64(100 * (errs + 1))})
	}
	f := FaultResult{Name: "x", started: start.Add(2 * time.Second), ended: start.Add(3 * time.Second), recovered: start.Add(3500 * time.Millisecond)}
	f.measure(r)
	if f.Start != 2 || f.End != 3 || f.Recovered != 3.5 || f.RecoverySeconds != 0.5 {
		t.Errorf("times %+v", f)
	}
	if f.ErrorFreeSeconds != 2 { // second 5 is the first of two clean ones
		t.Errorf("error free after %gs, want 2", f.ErrorFreeSeconds)
	}
	if f.Errors != 16 || f.Requests != 50 || f.P99 != 900 { // seconds 2 to 6
		t.Errorf("window: %d of %d failed, p99 %g", f.Errors, f.Requests, f.P99)
	}

	rep := &Report{Load: r, Faults: []FaultResult{f}, Invariants: []load.Invariant{{Name: "a", OK: true}, {Name: "b", Detail: "broken"}}}
	if rep.OK() {
		t.Error("a failed invariant reported OK")
	}
	var table, img bytes.Buffer
	rep.WriteTable(&table)
	for _, want := range []string{"FAIL  b: broken", "PASS  a", "chaos: FAILED", "32.0%"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	if err := rep.WritePNG(&img); err != nil {
		t.Fatal(err)
	}
	if _, err := png.DecodeConfig(&img); err != nil {
		t.Error(err)
	}
	if d := (Plan{Warmup: time.Second, Gap: 2 * time.Second, Cooldown: 3 * time.Second,
		Faults: []Fault{{Down: 10 * time.Second}, {}}}).Duration(); d != 18*time.Second {
		t.Errorf("plan duration %s, want 18s", d)
	}
}
