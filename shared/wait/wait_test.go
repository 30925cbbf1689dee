package wait

import (
	"context"
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
