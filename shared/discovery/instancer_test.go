package discovery

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/kit/sd"

	"github.com/mercato-dev/mercato/shared/testkit"
)

// TestInstancerRidesOutConsulRestart stops the Consul agent under a watched
// service and starts it again. The agent comes back without the instance,
// which registers again (its Registrar's check) and starts critical until
// its first health check: go-kit's instancer published that empty list, and
// the gateway answered 503 for a minute (the chaos suite). Ours keeps the
// last known instance through the outage and the re-registration, and sees
// the instance again once it passes.
func TestInstancerRidesOutConsulRestart(t *testing.T) {
	consul := testkit.NewConsul(t)
	client, err := NewConsulClientWithToken(consul.Addr(), consul.ManagementToken())
	if err != nil {
		t.Fatal(err)
	}
	const service = "restarted"
	a := newBackend(t, 0)
	reg := registerBackend(t, client, service, a)
	reg.Every = 200 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = reg.Run(ctx) }()

	instancer := NewInstancer(client, service, testLogger())
	t.Cleanup(instancer.Stop)
	waitInstances(t, instancer, 15*time.Second, a.addr())

	var (
		mu     sync.Mutex
		events []sd.Event
		ch     = make(chan sd.Event)
		stop   = make(chan struct{})
	)
	go func() {
		for {
			select {
			case ev := <-ch:
				mu.Lock()
				events = append(events, ev)
				mu.Unlock()
			case <-stop:
				return
			}
		}
	}()
	instancer.Register(ch)
	defer func() { instancer.Deregister(ch); close(stop) }()

	if err := consul.Stop(); err != nil {
		t.Fatalf("stop consul: %v", err)
	}
	eventually(t, 10*time.Second, "the instancer to see Consul gone", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.ContainsFunc(events, func(ev sd.Event) bool { return ev.Err != nil })
	})
	time.Sleep(2 * time.Second) // an outage of a few retries
	if err := consul.Start(context.Background()); err != nil {
		t.Fatalf("start consul: %v", err)
	}
	// The instance passes again once registered anew and checked.
	eventually(t, 30*time.Second, "the instance to pass in the restarted Consul", func() bool {
		entries, _, err := client.Health().Service(service, "", true, nil)
		return err == nil && len(entries) == 1
	})
	// A restarted agent may still answer an odd 500 for a moment ("grpc:
	// the client connection is closing", seen in CI): that is published as
	// an error keeping the instance, and the next answer clears it. So the
	// last event must become the instance without error, not be it at once.
	eventually(t, 10*time.Second, "the last event to be the instance, without error", func() bool {
		mu.Lock()
		defer mu.Unlock()
		last := events[len(events)-1]
		return last.Err == nil && slices.Equal(last.Instances, []string{a.addr()})
	})

	mu.Lock()
	defer mu.Unlock()
	for i, ev := range events {
		if ev.Err == nil && len(ev.Instances) == 0 {
			t.Fatalf("event %d of %d published no instance while the restarted agent re-registered it: %+v", i+1, len(events), events)
		}
	}
}

// TestInstancerPublishesNoInstances: a service with no instance is published as
// such (the grace only covers an agent that just came back).
func TestInstancerPublishesNoInstances(t *testing.T) {
	_, client := testConsul(t)
	service := "none-" + time.Now().Format("150405.000000")
	a := newBackend(t, 0)
	reg := registerBackend(t, client, service, a)
	instancer := NewInstancer(client, service, testLogger())
	t.Cleanup(instancer.Stop)
	waitInstances(t, instancer, 15*time.Second, a.addr())
	if err := reg.Deregister(); err != nil {
		t.Fatal(err)
	}
	waitInstances(t, instancer, 10*time.Second)
}

// TestInstancerWaitFitsClientTimeout reads the wait of the instancer's
// blocking query, as a fake agent receives it: with the jitter Consul adds
// (wait/16) it must end before the client's timeout, or every idle watch
// fails with "Client.Timeout exceeded" and publishes an error (an instancer
// that asked for 5 minutes under a 42 s timeout did so every 42 s in CI).
func TestInstancerWaitFitsClientTimeout(t *testing.T) {
	waits := make(chan string, 1)
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("index") != "" {
			select {
			case waits <- r.URL.Query().Get("wait"):
			default:
			}
			<-r.Context().Done() // blocks, as an idle agent does
			return
		}
		w.Header().Set("X-Consul-Index", "1")
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "[]")
	}))
	t.Cleanup(agent.Close)
	client, err := NewConsulClient(agent.URL)
	if err != nil {
		t.Fatal(err)
	}
	instancer := NewInstancer(client, "thing", testLogger())
	t.Cleanup(instancer.Stop)

	select {
	case raw := <-waits:
		wait, err := time.ParseDuration(raw)
		if err != nil {
			t.Fatalf("the blocking query's wait %q: %v", raw, err)
		}
		if wait == 0 || wait+wait/16 >= consulTimeout {
			t.Errorf("the instancer waits %s (up to %s with Consul's jitter) under a client timeout of %s", wait, wait+wait/16, consulTimeout)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the instancer sent no blocking query in 5 s")
	}
}
