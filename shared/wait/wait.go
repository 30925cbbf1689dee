// Package wait pauses Mercato's background loops between rounds without
// holding up their shutdown.
package wait

import (
	"cmp"
	"context"
	"time"
)

// The default waits between the polls of a loop that polls for work: Poll
// when nothing else tells it of any, FallbackPoll when something does (a
// LISTEN, a wake channel) and the poll only finds what that missed, which
// spares an idle instance's database ten empty rounds a second.
const (
	Poll         = 100 * time.Millisecond
	FallbackPoll = time.Second
)

// PollEvery is the default wait between polls: FallbackPoll for a loop that
// is woken when there is work, else Poll.
func PollEvery(woken bool) time.Duration {
	if woken {
		return FallbackPoll
	}
	return Poll
}

// For waits for d or until ctx is done, reporting whether d passed (false:
// ctx is done and the caller should stop).
func For(ctx context.Context, d time.Duration) bool { return ForOr(ctx, d, nil) }

// ForOr is For that also ends on a value from wake (a nil wake never
// sends): a loop that polls as a fallback and wakes when told there is work.
// It reports whether ctx is still live.
func ForOr(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-wake:
	}
	return true
}

// Signal tells a loop waiting in ForOr (on its channel) that there is work.
// It holds one signal at most: signals sent while the loop is busy coalesce
// into one, and Notify never blocks.
type Signal chan struct{}

// NewSignal returns a Signal with nothing pending.
func NewSignal() Signal { return make(Signal, 1) }

// Notify sends a signal unless one is pending already.
func (s Signal) Notify() {
	select {
	case s <- struct{}{}:
	default:
	}
}

// Every calls round every d until ctx is done, the first time after d. It
// keeps a time.Ticker's beat: a round that takes longer than d makes the
// next one start at once, never two at a time.
func Every(ctx context.Context, d time.Duration, round func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			round()
		}
	}
}

// Retry calls try until it succeeds or ctx is done, waiting d after each
// failure, which it first hands to failed (to log it). It returns nil, or
// the last error an attempt ran to: one that ctx's end cut short says only
// that, so the error of the attempt before it is returned (a certificate
// refused, say, rather than "context deadline exceeded"). For a start-up
// that waits for a dependency still coming up (a new deployment's
// database, its Consul token) instead of exiting at the first refusal.
func Retry(ctx context.Context, d time.Duration, try func(context.Context) error, failed func(error)) error {
	var last error
	for {
		err := try(ctx)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return cmp.Or(last, err)
		}
		failed(err)
		last = err
		if !For(ctx, d) {
			return err
		}
	}
}
