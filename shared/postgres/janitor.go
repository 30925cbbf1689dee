package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/shared/defaults"
	"github.com/mercato-dev/mercato/shared/wait"
)

// Janitor deletes a table's rows older than Retention (DeleteOlder), every
// Interval: the clean-up of rows a service keeps for a while and then never
// reads again. Every instance runs one; a round that finds nothing costs one
// indexed query.
type Janitor struct {
	DB        *sqlx.DB      // required
	Table     string        // required
	Key       string        // required: the primary key's columns
	Column    string        // required: the time the retention counts from
	Retention time.Duration // required, positive
	Interval  time.Duration // required, positive: the time between rounds
	Logger    log.Logger    // default log.NewNopLogger(); its lines say component=janitor and the table
}

// Run cleans up at once and then every Interval until ctx is done, and
// returns nil. A failed round is logged and tried again at the next. It
// returns an error only when a required field is missing.
func (j *Janitor) Run(ctx context.Context) error {
	if j.DB == nil || j.Table == "" || j.Key == "" || j.Column == "" || j.Retention <= 0 || j.Interval <= 0 {
		return errors.New("postgres: a janitor needs DB, Table, Key, Column and a positive Retention and Interval")
	}
	logger := log.With(defaults.Logger(j.Logger), "component", "janitor", "table", j.Table)
	round := func() {
		n, err := j.Clean(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			level.Warn(logger).Log("msg", "deleting old rows failed; retrying at the next interval", "err", err)
		case n > 0:
			level.Info(logger).Log("msg", "deleted old rows", "count", n, "retention", j.Retention)
		}
	}
	round()
	wait.Every(ctx, j.Interval, round)
	return nil
}

// Clean runs one round: it deletes the rows past retention now.
func (j *Janitor) Clean(ctx context.Context) (int64, error) {
	return DeleteOlder(ctx, j.DB, j.Table, j.Key, j.Column, j.Retention)
}
