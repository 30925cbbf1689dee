package wait

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestFor(t *testing.T) {
	if !For(context.Background(), time.Millisecond) {
		t.Error("For returned false although its context is live")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if For(ctx, time.Hour) {
		t.Error("For returned true although its context is done")
	}
	if time.Since(start) > time.Second {
		t.Error("For did not return when its context was done")
	}
}

func TestEvery(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const d = 20 * time.Millisecond
	start := time.Now()
	var rounds []time.Duration
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		Every(ctx, d, func() {
			rounds = append(rounds, time.Since(start))
			if len(rounds) == 3 {
				cancel()
			}
		})
	}()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("Every did not return when its context was done")
	}
	if len(rounds) != 3 {
		t.Fatalf("Every ran %d rounds, want 3 (cancelled in the third)", len(rounds))
	}
	if rounds[0] < d {
		t.Errorf("the first round came after %s, before the first interval (%s)", rounds[0], d)
	}
	for i := 1; i < len(rounds); i++ {
		if rounds[i] <= rounds[i-1] {
			t.Errorf("round %d came at %s, not after round %d at %s", i, rounds[i], i-1, rounds[i-1])
		}
	}

	done, stop := context.WithCancel(context.Background())
	stop()
	Every(done, time.Hour, func() { t.Error("Every ran a round although its context was done") })
}

func TestForOrWakesOnSignal(t *testing.T) {
	wake := NewSignal()
	wake.Notify()
	wake.Notify() // coalesces: never blocks
	start := time.Now()
	if !ForOr(context.Background(), time.Hour, wake) {
		t.Fatal("ForOr returned false although its context is live")
	}
	if time.Since(start) > time.Minute {
		t.Fatal("ForOr waited for its timer although a signal was pending")
	}
	select {
	case <-wake:
		t.Fatal("two signals sent while nobody waited were not coalesced into one")
	default:
	}
	if !ForOr(context.Background(), time.Millisecond, nil) {
		t.Error("ForOr with no wake channel did not return on its timer")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if ForOr(ctx, time.Hour, nil) {
		t.Error("ForOr returned true although its context is done")
	}
}

func TestRetry(t *testing.T) {
	var failures []error
	tries := 0
	err := Retry(context.Background(), time.Millisecond, func(context.Context) error {
		if tries++; tries < 3 {
			return errors.New("not yet")
		}
		return nil
	}, func(err error) { failures = append(failures, err) })
	if err != nil || tries != 3 || len(failures) != 2 {
		t.Errorf("Retry = %v after %d tries, %d failures handed on; want nil after 3, 2", err, tries, len(failures))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	refused := errors.New("refused")
	start := time.Now()
	if err := Retry(ctx, 10*time.Millisecond, func(context.Context) error { return refused }, func(error) {}); err != refused {
		t.Errorf("Retry until the deadline = %v, want the last attempt's error", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Error("Retry did not return when its context was done")
	}
}

// TestRetryKeepsTheErrorOfTheLastWholeAttempt: an attempt that the deadline
// cuts short fails with the deadline only; Retry returns the error of the
// attempt before it, which says why the dependency refused.
func TestRetryKeepsTheErrorOfTheLastWholeAttempt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	refused := errors.New("certificate signed by unknown authority")
	tries := 0
	err := Retry(ctx, time.Millisecond, func(ctx context.Context) error {
		if tries++; tries == 1 {
			return refused
		}
		<-ctx.Done()
		return ctx.Err()
	}, func(error) {})
	if err != refused {
		t.Errorf("Retry = %v, want the refusal of the last attempt the deadline did not cut short", err)
	}
}
