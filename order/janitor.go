package order

import (
	"context"
	"errors"
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
	Repo      Repository    // required
	Retention time.Duration // at least MinIdempotencyRetention (a shorter one is raised to it)
	Interval  time.Duration // required: the time between clean-ups
	Logger    log.Logger    // default log.NewNopLogger()
}

// Run cleans up until ctx is done, then returns nil. It returns an error
// only when Repo or a positive Interval is missing.
func (j *KeyJanitor) Run(ctx context.Context) error {
	if j.Repo == nil || j.Interval <= 0 {
		return errors.New("order: key janitor needs Repo and a positive Interval")
	}
	logger := j.Logger
	if logger == nil {
		logger = log.NewNopLogger()
	}
	retention := max(j.Retention, MinIdempotencyRetention)
	t := time.NewTicker(j.Interval)
	defer t.Stop()
	for {
		n, err := j.Repo.DeleteIdempotencyKeys(ctx, time.Now().Add(-retention))
		switch {
		case err != nil && ctx.Err() == nil:
			level.Warn(logger).Log("msg", "deleting old idempotency keys failed; retrying at the next interval", "err", err)
		case n > 0:
			level.Info(logger).Log("msg", "deleted old idempotency keys", "count", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
