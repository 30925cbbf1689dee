package order

import (
	"context"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// MinIdempotencyRetention is the shortest time an Idempotency-Key is kept:
// a client may retry a checkout for a day and still get its first answer.
const MinIdempotencyRetention = 24 * time.Hour

// KeyJanitor deletes Idempotency-Keys older than Retention, every Interval.
// Every instance runs one; a delete that finds nothing costs one indexed
// query.
type KeyJanitor struct {
	Repo      Repository
	Retention time.Duration // at least MinIdempotencyRetention
	Interval  time.Duration
	Logger    log.Logger
}

// Run cleans up until ctx is done.
func (j *KeyJanitor) Run(ctx context.Context) {
	retention := max(j.Retention, MinIdempotencyRetention)
	t := time.NewTicker(j.Interval)
	defer t.Stop()
	for {
		n, err := j.Repo.DeleteIdempotencyKeys(ctx, time.Now().Add(-retention))
		switch {
		case err != nil && ctx.Err() == nil:
			level.Warn(j.Logger).Log("msg", "deleting old idempotency keys failed; retrying at the next interval", "err", err)
		case n > 0:
			level.Info(j.Logger).Log("msg", "deleted old idempotency keys", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
