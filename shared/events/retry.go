package events

import (
	"math/rand/v2"
	"time"

	"github.com/go-kit/log"
)

// backoff spaces out retries while a dependency is down: doubling from min to
// max, with jitter so the instances of a service do not retry in lockstep.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

func (b *backoff) next() time.Duration {
	switch {
	case b.cur == 0:
		b.cur = b.min
	case b.cur < b.max:
		b.cur = min(2*b.cur, b.max)
	}
	half := b.cur / 2
	return half + rand.N(half+1) //nolint:gosec // G404: jitter spreads retries; it needs no unpredictability
}

func (b *backoff) reset() { b.cur = 0 }

// failureStreak logs the first failure of a streak and the recovery that ends
// it, rather than one line per retry, so an outage reads as two log lines.
type failureStreak struct {
	logger   log.Logger
	failures int
}

func (s *failureStreak) fail(msg string, err error) {
	s.failures++
	if s.failures == 1 {
		s.logger.Log("level", "error", "msg", msg+"; retrying with backoff", "err", err)
	}
}

func (s *failureStreak) ok(msg string) {
	if s.failures > 0 {
		s.logger.Log("level", "info", "msg", msg, "failed_attempts", s.failures)
		s.failures = 0
	}
}
