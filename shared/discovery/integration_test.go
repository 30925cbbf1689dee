package discovery

import (
	"context"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/kit/sd"
	"github.com/hashicorp/consul/api"

	"github.com/mercato-dev/mercato/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// registerBackend registers b in Consul as one instance of service, deregistering it
// when the test ends.
func registerBackend(t *testing.T, client *api.Client, service string, b *backend) *Registrar {
	t.Helper()
	port := b.srv.Listener.Addr().(*net.TCPAddr).Port
	reg, err := Register(t.Context(), client, Registration{Service: service, Host: "127.0.0.1", Port: port, Version: "1.2.3", Tags: []string{"test"}}, testLogger())
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	t.Cleanup(func() { _ = reg.Deregister() })
	return reg
}

// waitInstances waits until instancer publishes exactly want.
func waitInstances(t *testing.T, instancer sd.Instancer, within time.Duration, want ...string) {
	t.Helper()
	slices.Sort(want)
	var (
		mu   sync.Mutex
		last sd.Event
		ch   = make(chan sd.Event)
		done = make(chan struct{})
		stop = make(chan struct{})
	)
	go func() {
		for {
			select {
			case ev := <-ch:
				mu.Lock()
				last = ev
				mu.Unlock()
				got := slices.Clone(ev.Instances)
				slices.Sort(got)
				if ev.Err == nil && slices.Equal(got, want) {
					select {
					case <-done:
					default:
						close(done)
					}
				}
			case <-stop:
				return
			}
		}
	}()
	instancer.Register(ch)
	defer func() {
		instancer.Deregister(ch) // before stop: a broadcast may be sending to ch
		close(stop)
	}()
	select {
	case <-done:
	case <-time.After(within):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("instancer never published %v within %s; last event %+v", want, within, last)
	}
}

func TestConsulDiscoveryIntegration(t *testing.T) {
	_, client := testConsul(t)
	service := "thing-" + time.Now().Format("150405.000000")
	a, b := newBackend(t, 0), newBackend(t, 0)
	regA := registerBackend(t, client, service, a)
	registerBackend(t, client, service, b)

	// Consul sees the registration as the rest of Mercato expects it.
	svc, _, err := client.Agent().Service(regA.ID(), nil)
	if err != nil {
		t.Fatalf("agent service %s: %v", regA.ID(), err)
	}
	if !slices.Contains(svc.Tags, "metrics") || !slices.Contains(svc.Tags, "version=1.2.3") || svc.Meta["version"] != "1.2.3" {
		t.Errorf("registered tags %v meta %v", svc.Tags, svc.Meta)
	}

	instancer := NewInstancer(client, service, testLogger())
	t.Cleanup(instancer.Stop)
	// Checks start critical; both turn passing after their first /health run.
	waitInstances(t, instancer, 15*time.Second, a.addr(), b.addr())

	closed := &closeLog{}
	e := NewEndpoint(instancer, service, thingFactory(http.MethodGet, "", closed), testLogger(), Options{})
	ready(t, e, a, b)
	served := map[string]int{}
	for range 10 {
		resp, err := call(e)
		if err != nil {
			t.Fatalf("call: %v", err)
		}
		served[resp.Server]++
	}
	if served[a.addr()] != 5 || served[b.addr()] != 5 {
		t.Errorf("served = %v, want 5 calls on each instance", served)
	}

	if err := regA.Deregister(); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	waitInstances(t, instancer, 10*time.Second, b.addr())
	eventually(t, 5*time.Second, "a's client to be closed", func() bool { return closed.count(a.addr()) == 1 })
	a.hits.Store(0)
	for i := range 10 {
		resp, err := call(e)
		if err != nil {
			t.Fatalf("call %d after deregistering a: %v", i, err)
		}
		if resp.Server != b.addr() {
			t.Fatalf("call %d served by %q after a left", i, resp.Server)
		}
	}
	if a.hits.Load() != 0 {
		t.Errorf("deregistered instance got %d calls", a.hits.Load())
	}
	if services, _, err := client.Health().Service(service, "", false, nil); err != nil || len(services) != 1 {
		t.Errorf("consul lists %d instances (err %v), want 1", len(services), err)
	}
}

// An instance Consul dropped while it kept running (its check critical for
// longer than DeregisterCriticalServiceAfter: a pause, a partition) is
// registered again by Run, and not after Run has stopped.
func TestRegistrarRunRegistersAgainWhatConsulDropped(t *testing.T) {
	_, client := testConsul(t)
	reg := registerBackend(t, client, "dropped-"+time.Now().Format("150405.000000"), newBackend(t, 0))
	reg.Every = 100 * time.Millisecond
	registered := func() bool {
		_, _, err := client.Agent().Service(reg.ID(), nil)
		return err == nil
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- reg.Run(ctx) }()

	// What Consul's reaper does to a long-critical instance.
	if err := client.Agent().ServiceDeregister(reg.ID()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !registered() {
		if time.Now().After(deadline) {
			t.Fatalf("%s still not in Consul 5 s after it was dropped", reg.ID())
		}
		time.Sleep(50 * time.Millisecond)
	}

	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := reg.Deregister(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // three of Run's checks, had it not stopped
	if registered() {
		t.Errorf("%s registered again after Run stopped and it deregistered", reg.ID())
	}
}
