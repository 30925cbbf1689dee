package events

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/shared/wait"
)

// watchBacklog refreshes the group's events_consumer_pending and
// events_consumer_lag gauges now and every BacklogInterval, apart from the
// reading loop, so that a slow handler (an upstream down) cannot hold back
// the very figures that show it. The returned stop ends the watch and waits
// for it; Run calls it before returning. Without Metrics there is nothing to
// watch for.
func (r *consumerRun) watchBacklog(ctx context.Context) (stop func()) {
	if r.Metrics == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	failures := failureStreak{logger: r.Logger}
	go func() {
		defer close(done)
		for {
			switch err := r.refreshBacklog(ctx); {
			case err == nil:
				failures.ok("event consumer: " + r.Group + " backlog gauges refreshed again")
			case ctx.Err() == nil:
				failures.fail("event consumer: "+r.Group+" backlog gauges", err)
			}
			if !wait.For(ctx, r.BacklogInterval) {
				return
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// refreshBacklog reads the group's pending count and lag with one XINFO
// GROUPS (a few fields per group of the stream, whatever its length). A
// stream or group that does not exist yet is not an error: the reading
// loop creates it, and the next refresh finds it.
func (r *consumerRun) refreshBacklog(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.BacklogInterval)
	defer cancel()
	groups, err := r.Redis.XInfoGroups(ctx, r.Stream).Result()
	if redis.HasErrorPrefix(err, "no such key") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("xinfo groups: %w", err)
	}
	for _, g := range groups {
		if g.Name == r.Group {
			// Lag is -1 when Redis cannot tell (entries deleted with XDEL
			// past the group's position); the lag gauge then keeps its value.
			r.Metrics.groupBacklog(r.Group, r.Stream, g.Pending, g.Lag)
		}
	}
	return nil
}
