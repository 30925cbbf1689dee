// Package chaos drives the load generator's shopper mix (package load) at
// a steady rate while it injects faults one after another — processes
// killed and paused, PostgreSQL, Redis, Consul and the SMTP sink stopped,
// the payment provider slowed — with recovery time between, and then
// checks that the platform kept its promises: the load run's invariants
// and those of Checks (emails, outboxes, consumer groups, instances).
//
// The faults are the caller's (Fault.Inject): the e2e platform knows its
// processes and servers. Run schedules them, measures each one's error
// rate, p99 and time to recover from the load run's timeline, and writes
// the report as a table, JSON and a chart with the faults marked.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/mercato-dev/mercato/e2e/load"
)

// Fault is one thing going wrong.
type Fault struct {
	// Name says what happens: "SIGKILL order[1] mid-checkout".
	Name string
	// Down is how long the fault lasts, for planning the load's duration.
	Down time.Duration
	// Inject does the whole fault: breaks something, waits Down, repairs
	// it (restarts what a supervisor would restart). An error ends the
	// run: the suite could not do what it meant to.
	Inject func(ctx context.Context) error
	// Recovered reports whether the platform is whole again (instances
	// passing in Consul, the gateway answering); polled after Inject
	// until it returns nil. nil: recovered as soon as Inject returns.
	Recovered func(ctx context.Context) error
}

// Plan is a chaos run.
type Plan struct {
	// Load is the load run; its Duration is set by Run to cover Warmup,
	// the faults and their Gaps, and Cooldown.
	Load load.Config
	// Warmup is steady load before the first fault; Gap the time after a
	// fault has recovered before the next; Cooldown after the last.
	Warmup, Gap, Cooldown time.Duration
	// RecoverWithin bounds how long Run waits for a fault's Recovered.
	RecoverWithin time.Duration
	Faults        []Fault
	// Checks, when set, are the invariants read after the load run
	// settled (Run calls it once).
	Checks func(ctx context.Context, r *Report) []load.Invariant
	// Progress, when set, receives a line per fault as it happens.
	Progress io.Writer
}

// FaultResult is what one fault did to the traffic. Times are seconds
// since the load run's first request.
type FaultResult struct {
	Name      string  `json:"name"`
	Start     float64 `json:"start_s"`
	End       float64 `json:"end_s"`       // Inject returned: repaired
	Recovered float64 `json:"recovered_s"` // Recovered said whole again; -1: never within RecoverWithin
	// Requests sent between Start and Recovered (the second after at
	// least), how many failed, their share, and the worst p99 of a second.
	Requests  int     `json:"requests"`
	Errors    int     `json:"errors"`
	ErrorRate float64 `json:"error_rate"`
	P99       float64 `json:"p99_ms"`
	// RecoverySeconds is Recovered − End: until the platform said it was
	// whole. ErrorFreeSeconds is the time from End until the traffic was
	// clean again: the first of two seconds in a row without an error
	// (-1: not before the run ended). The window above ends at the later.
	RecoverySeconds  float64 `json:"recovery_s"`
	ErrorFreeSeconds float64 `json:"error_free_after_s"`
	Err              string  `json:"error,omitempty"`
	started, ended   time.Time
	recovered        time.Time
}

// Report is a chaos run: the load's report, the faults, the invariants.
type Report struct {
	Load       *load.Report     `json:"load"`
	Faults     []FaultResult    `json:"faults"`
	Invariants []load.Invariant `json:"invariants"` // the load's, then Checks'
	Started    time.Time        `json:"started"`
	Seconds    float64          `json:"seconds"`
}

// OK reports whether every invariant held and every fault was injected
// and recovered from.
func (r *Report) OK() bool {
	for _, inv := range r.Invariants {
		if !inv.OK {
			return false
		}
	}
	for _, f := range r.Faults {
		if f.Err != "" || f.Recovered < 0 {
			return false
		}
	}
	return r.Load != nil && len(r.Invariants) > 0
}

// recoverySlack is load time beyond the plan's for faults slower to
// recover than planned, so the last faults still happen under load.
const recoverySlack = time.Minute

// Duration is the load duration a plan needs, without recoverySlack.
func (p Plan) Duration() time.Duration {
	d := p.Warmup + p.Cooldown
	for _, f := range p.Faults {
		d += f.Down + p.Gap
	}
	return d
}

// Run runs the plan: the load in the background, the faults in turn.
func Run(ctx context.Context, p Plan) (*Report, error) {
	began := time.Now()
	p.Load.Duration = min(p.Duration()+recoverySlack, load.MaxDuration)
	if p.RecoverWithin == 0 {
		p.RecoverWithin = time.Minute
	}
	type result struct {
		r   *load.Report
		err error
	}
	done := make(chan result, 1)
	started := make(chan time.Time, 1)
	cfg := p.Load
	cfg.OnStart = func(at time.Time) { started <- at }
	go func() {
		r, err := load.Run(ctx, cfg)
		done <- result{r, err}
	}()
	var origin time.Time
	select {
	case origin = <-started:
	case res := <-done:
		return nil, fmt.Errorf("the load run ended before it began: %w", res.err)
	}
	rep := &Report{Started: origin}
	var faultErr error
	if sleep(ctx, p.Warmup) {
		for _, f := range p.Faults {
			fr := inject(ctx, p, f)
			rep.Faults = append(rep.Faults, fr)
			if p.Progress != nil {
				fmt.Fprintf(p.Progress, "chaos: %-40s %s\n", f.Name, fr.summary(origin))
			}
			if fr.Err != "" {
				faultErr = fmt.Errorf("fault %s: %s", f.Name, fr.Err)
				break
			}
			if !sleep(ctx, p.Gap) {
				break
			}
		}
	}
	res := <-done
	rep.Load = res.r
	if res.r == nil {
		return rep, errors.Join(faultErr, res.err)
	}
	rep.Started = res.r.Started
	for i := range rep.Faults {
		rep.Faults[i].measure(res.r)
	}
	rep.Invariants = append(rep.Invariants, res.r.Invariants...)
	if p.Checks != nil && ctx.Err() == nil {
		rep.Invariants = append(rep.Invariants, p.Checks(ctx, rep)...)
	}
	rep.Seconds = time.Since(began).Seconds()
	return rep, errors.Join(faultErr, res.err)
}

// inject runs one fault and waits for the platform to recover from it.
func inject(ctx context.Context, p Plan, f Fault) FaultResult {
	fr := FaultResult{Name: f.Name, started: time.Now()}
	if err := f.Inject(ctx); err != nil {
		fr.Err = err.Error()
	}
	fr.ended = time.Now()
	fr.recovered = fr.ended
	if f.Recovered != nil && fr.Err == "" {
		deadline := fr.ended.Add(p.RecoverWithin)
		for {
			err := f.Recovered(ctx)
			if err == nil {
				fr.recovered = time.Now()
				break
			}
			if time.Now().After(deadline) || !sleep(ctx, 200*time.Millisecond) {
				fr.recovered = time.Time{}
				fr.Err = fmt.Sprintf("not recovered within %s: %v", p.RecoverWithin, err)
				break
			}
		}
	}
	return fr
}

// measure fills the figures of the fault's window from the load timeline.
func (f *FaultResult) measure(r *load.Report) {
	at := func(t time.Time) float64 { return t.Sub(r.Started).Seconds() }
	f.Start, f.End, f.Recovered = at(f.started), at(f.ended), -1
	until := f.End
	if !f.recovered.IsZero() {
		f.Recovered = at(f.recovered)
		f.RecoverySeconds = f.Recovered - f.End
		until = f.Recovered
	}
	f.ErrorFreeSeconds = -1
	for i, s := range r.Timeline {
		if float64(s.At+1) > f.End && i+1 < len(r.Timeline) && s.Errors == 0 && r.Timeline[i+1].Errors == 0 {
			f.ErrorFreeSeconds = max(0, float64(s.At)-f.End)
			until = max(until, float64(s.At))
			break
		}
	}
	for _, s := range r.Timeline {
		if float64(s.At+1) <= f.Start || float64(s.At) > until+1 {
			continue
		}
		f.Requests += s.Requests
		f.Errors += s.Errors
		f.P99 = max(f.P99, s.P99)
	}
	if f.Requests > 0 {
		f.ErrorRate = float64(f.Errors) / float64(f.Requests)
	}
}

func (f FaultResult) summary(origin time.Time) string {
	if f.Err != "" {
		return "FAILED: " + f.Err
	}
	return fmt.Sprintf("at %5.1fs, repaired after %4.1fs, whole again %4.1fs later",
		f.started.Sub(origin).Seconds(), f.ended.Sub(f.started).Seconds(), f.recovered.Sub(f.ended).Seconds())
}

// sleep waits d or until ctx is done; false when ctx is done.
func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
