package product

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// sweepCounter is a Housekeeping whose ReleaseExpired counts its calls; nothing
// else of it is called.
type sweepCounter struct {
	Housekeeping
	sweeps atomic.Int32
}

func (s *sweepCounter) ReleaseExpired(context.Context) (int, error) {
	s.sweeps.Add(1)
	return 0, nil
}

func TestSweeperRun(t *testing.T) {
	svc := &sweepCounter{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- (&Sweeper{Housekeeping: svc, Interval: 5 * time.Millisecond}).Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for svc.sweeps.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the sweeper did not sweep twice")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
	}

	for _, bad := range []*Sweeper{{Interval: time.Second}, {Housekeeping: svc}} {
		if err := bad.Run(context.Background()); err == nil {
			t.Errorf("Run of %+v = nil, want a configuration error", bad)
		}
	}
}
