//go:build k8s

package k8s

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mercato-dev/mercato/e2e/deployed"
)

// TestReadsThatNeverCompleted: a gateway that holds every read until the
// stream stops fails no round (a round cut short by stop is no failure),
// so the stream sent nothing; that proves nothing about the pod deletions
// and readsVerdict says so.
func TestReadsThatNeverCompleted(t *testing.T) {
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(gw.Close)
	stream := startReads(context.Background(), deployed.NewClient(t, gw.URL))
	time.Sleep(3 * readEvery)
	sent, failures := stream.stop()
	if err := readsVerdict(sent, failures); err == nil {
		t.Errorf("%d reads sent, %d failed: passed", sent, len(failures))
	}

	// A gateway that answers every read passes.
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
	}))
	t.Cleanup(ok.Close)
	stream = startReads(context.Background(), deployed.NewClient(t, ok.URL))
	time.Sleep(3 * readEvery)
	if err := readsVerdict(stream.stop()); err != nil {
		t.Error(err)
	}
}
