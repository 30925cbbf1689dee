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
