package chaos

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/mercato-dev/mercato/e2e/load"
)

// WriteTable prints the timeline (each fault, its error rate and p99, the
// time to recover) and a verdict per invariant.
func (r *Report) WriteTable(w io.Writer) {
	if r.Load != nil {
		fmt.Fprintf(w, "chaos: %g req/s for %.0fs, %d faults, %d orders acknowledged, %.0fs in all\n\n",
			r.Load.Rate, r.Load.DurationSeconds, len(r.Faults), len(r.Load.Orders), r.Seconds)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FAULT\tAT\tLASTED\tWHOLE AGAIN\tNO ERRORS AGAIN\tREQUESTS\tERRORS\tERROR RATE\tP99\t")
	for _, f := range r.Faults {
		rec := fmt.Sprintf("+%.1fs", f.RecoverySeconds)
		if f.Recovered < 0 {
			rec = "never"
		}
		clean := fmt.Sprintf("+%.0fs", f.ErrorFreeSeconds)
		if f.ErrorFreeSeconds < 0 {
			clean = "not in the run"
		}
		fmt.Fprintf(tw, "%s\t%.1fs\t%.1fs\t%s\t%s\t%d\t%d\t%.1f%%\t%.0fms\t\n", f.Name, f.Start, f.End-f.Start, rec, clean,
			f.Requests, f.Errors, 100*f.ErrorRate, f.P99)
		if f.Err != "" {
			fmt.Fprintf(tw, "  ! %s\t\t\t\t\t\t\t\t\n", f.Err)
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, inv := range r.Invariants {
		verdict := "PASS"
		if !inv.OK {
			verdict = "FAIL"
		}
		fmt.Fprintf(w, "%s  %s: %s\n", verdict, inv.Name, inv.Detail)
	}
	if r.OK() {
		fmt.Fprintln(w, "\nchaos: every invariant held")
	} else {
		fmt.Fprintln(w, "\nchaos: FAILED")
	}
}

// WriteJSON writes the report as JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WritePNG draws the load's rate, errors and latency over time with the
// faults marked.
func (r *Report) WritePNG(w io.Writer) error {
	if r.Load == nil {
		return fmt.Errorf("chaos: no load report to draw")
	}
	marks := make([]load.Mark, len(r.Faults))
	for i, f := range r.Faults {
		to := f.Recovered
		if to < 0 {
			to = f.End
		}
		marks[i] = load.Mark{From: f.Start, To: to, Label: f.Name}
	}
	return r.Load.WritePNGMarked(w, marks)
}
