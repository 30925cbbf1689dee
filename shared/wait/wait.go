// Package wait pauses Mercato's background loops between rounds without
// holding up their shutdown.
package wait

import (
	"context"
	"time"
)

// For waits for d or until ctx is done, reporting whether d passed (false:
// ctx is done and the caller should stop).
func For(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
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
