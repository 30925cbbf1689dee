package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/mercato-dev/mercato/shared/config"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// A preStop hook's POST /leave takes the instance out of Consul while it
// still serves, and /ready answers 503 from then on.
func TestLeaveDeregistersBeforeShutdown(t *testing.T) {
	_, client := testConsul(t)
	service, base, stop := serveInstance(t, client, client, "leaving")
	defer func() {
		if _, err := stop(); err != nil {
			t.Errorf("ListenAndServe: %v", err)
		}
	}()
	status := func(method, path string) int {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	if got := status(http.MethodGet, "/ready"); got != http.StatusOK {
		t.Fatalf("GET /ready before leaving: %d, want 200", got)
	}
	if got := status(http.MethodGet, LeavePath); got != http.StatusMethodNotAllowed {
		t.Errorf("GET %s: %d, want 405", LeavePath, got)
	}
	if got := status(http.MethodPost, LeavePath); got != http.StatusOK {
		t.Fatalf("POST %s: %d, want 200", LeavePath, got)
	}
	if registered(t, client, service) {
		t.Errorf("Consul after leave: %s still registered; want no instance", service)
	}
	if got := status(http.MethodGet, "/ready"); got != http.StatusServiceUnavailable {
		t.Errorf("GET /ready after leaving: %d, want 503", got)
	}
	if got := status(http.MethodGet, "/health"); got != http.StatusOK {
		t.Errorf("GET /health after leaving: %d, want 200 (it still serves)", got)
	}
	if got := status(http.MethodPost, LeavePath); got != http.StatusOK {
		t.Errorf("POST %s again: %d, want 200", LeavePath, got)
	}
}

// An instance stopped under traffic (SIGTERM without a preStop's -leave:
// docker compose, make run, systemd) fails none of its callers' calls,
// POSTs without an Idempotency-Key included, which nobody may send twice.
// Its callers learn that it left through their Consul watches, a moment
// after it did (here 300 ms, a loaded agent's). Draining at once, it closed
// its idle keep-alive connections while callers still sent calls on them:
// each such POST failed with EOF, unanswered, and was not retried (the
// instance might have applied it), so the gateway answered 502 for a
// request no instance had taken.
func TestDrainFailsNoCall(t *testing.T) {
	addr, direct := testConsul(t)
	agent := &url.URL{Scheme: "http", Host: addr}
	lagging := httputil.NewSingleHostReverseProxy(agent)
	lagging.ModifyResponse = func(resp *http.Response) error {
		if strings.HasPrefix(resp.Request.URL.Path, "/v1/health/service/") {
			time.Sleep(300 * time.Millisecond) // the watch hears of the change late
		}
		return nil
	}
	lagging.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) }
	watching := httptest.NewServer(lagging)
	t.Cleanup(watching.Close)
	watcher, err := NewConsulClientWithToken(watching.Listener.Addr().String(), testkit.ConsulToken(t, addr, ""))
	if err != nil {
		t.Fatal(err)
	}

	service := "draining-" + time.Now().Format("150405.000000")
	_, stopA := serveAs(t, direct, direct, service)
	serveAs(t, direct, direct, service)
	instancer := NewInstancer(watcher, service, testLogger())
	t.Cleanup(instancer.Stop)
	eventually(t, 15*time.Second, "both instances passing", func() bool {
		entries, _, err := direct.Health().Service(service, "", true, nil)
		return err == nil && len(entries) == 2
	})
	e := NewEndpoint(instancer, service, thingFactory(http.MethodPost, "", nil), testLogger(), Options{})
	time.Sleep(time.Second) // the instancer has both

	var (
		mu     sync.Mutex
		failed []error
		calls  atomic.Int64
		wg     sync.WaitGroup
	)
	ctx, stopCalls := context.WithCancel(context.Background())
	for range 16 {
		wg.Go(func() {
			for ctx.Err() == nil {
				calls.Add(1)
				if _, err := call(e); err != nil {
					mu.Lock()
					failed = append(failed, err)
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	if _, err := stopA(); err != nil {
		t.Errorf("ListenAndServe: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	stopCalls()
	wg.Wait()
	if len(failed) > 0 {
		t.Errorf("%d of %d calls failed while an instance drained; the first: %v", len(failed), calls.Load(), errors.Join(failed[:min(3, len(failed))]...))
	}
}

func TestLeaveOnlyFromLoopback(t *testing.T) {
	left := false
	l := &leaver{logger: testLogger(), leave: func() error { left = true; return nil }}
	req := httptest.NewRequest(http.MethodPost, LeavePath, nil)
	req.RemoteAddr = "10.0.0.7:40000"
	rec := httptest.NewRecorder()
	l.wrap(http.NotFoundHandler()).ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "forbidden") || left {
		t.Errorf("POST %s from 10.0.0.7: %d %s, left %v; want a 403 and no leave", LeavePath, rec.Code, rec.Body, left)
	}
}

// testConsul is the test binary's Consul agent: its address, and a client
// of it with the management token.
func testConsul(t *testing.T) (string, *api.Client) {
	t.Helper()
	addr := testkit.ConsulAddr(t)
	client, err := NewConsulClientWithToken(addr, testkit.ConsulToken(t, addr, ""))
	if err != nil {
		t.Fatal(err)
	}
	return addr, client
}

// faultyConsul is a reverse proxy to the Consul agent at addr that passes
// every request on except what fault takes over: fault returns true when it
// has answered r itself.
func faultyConsul(t *testing.T, addr string, fault func(w http.ResponseWriter, r *http.Request) bool) *api.Client {
	t.Helper()
	agent := &url.URL{Scheme: "http", Host: addr}
	proxy := httputil.NewSingleHostReverseProxy(agent)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fault(w, r) {
			proxy.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	client, err := NewConsulClientWithToken(srv.Listener.Addr().String(), testkit.ConsulToken(t, addr, ""))
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// serveInstance runs ListenAndServe of a new service through consul until
// the returned stop is called, which returns how long ListenAndServe took
// to return and its error; base is the instance's URL.
func serveInstance(t *testing.T, consul, direct *api.Client, prefix string) (service, base string, stop func() (time.Duration, error)) {
	t.Helper()
	service = prefix + "-" + time.Now().Format("150405.000000")
	base, stop = serveAs(t, consul, direct, service)
	return service, base, stop
}

// serveAs is serveInstance for one more instance of service. Besides
// /health and /ready it serves /thing, as newBackend's do.
func serveAs(t *testing.T, consul, direct *api.Client, service string) (base string, stop func() (time.Duration, error)) {
	t.Helper()
	before, err := direct.Agent().ServicesWithFilter(`Service == "` + service + `"`)
	if err != nil {
		t.Fatal(err)
	}
	routes := http.NewServeMux()
	routes.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	routes.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	routes.HandleFunc("/thing", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
		_ = json.NewEncoder(w).Encode(thingResponse{Server: r.Host})
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ListenAndServe(ctx, config.Common{Service: service, HTTPAddr: "127.0.0.1:0", Version: "test"}, consul, routes, testLogger())
	}()
	for deadline := time.Now().Add(5 * time.Second); base == ""; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("%s never registered", service)
		}
		services, err := direct.Agent().ServicesWithFilter(`Service == "` + service + `"`)
		if err != nil {
			t.Fatal(err)
		}
		for id, s := range services {
			if _, ok := before[id]; !ok {
				base = "http://" + net.JoinHostPort(s.Address, strconv.Itoa(s.Port))
			}
		}
	}
	var once sync.Once
	var (
		served error
		took   time.Duration
	)
	stop = func() (time.Duration, error) {
		once.Do(func() {
			start := time.Now()
			cancel()
			served = <-done
			took = time.Since(start)
		})
		return took, served
	}
	t.Cleanup(func() { _, _ = stop() })
	return base, stop
}

func registered(t *testing.T, client *api.Client, service string) bool {
	t.Helper()
	services, err := client.Agent().ServicesWithFilter(`Service == "` + service + `"`)
	if err != nil {
		t.Fatal(err)
	}
	return len(services) > 0
}

// A POST /leave whose deregistration fails (the agent answered 500, or
// could not be reached) says so instead of "left", and the shutdown that
// follows tries again, so the instance does not stay in Consul while it
// drains and after it has gone.
func TestFailedLeaveIsTriedAgainAtShutdown(t *testing.T) {
	addr, direct := testConsul(t)
	var deregistrations atomic.Int32
	consul := faultyConsul(t, addr, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/v1/agent/service/deregister/") && deregistrations.Add(1) == 1 {
			http.Error(w, "agent busy", http.StatusInternalServerError)
			return true
		}
		return false
	})
	service, base, stop := serveInstance(t, consul, direct, "leave-fails")

	resp, err := http.Post(base+LeavePath, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Errorf("POST %s whose deregistration failed: 200, want an error status", LeavePath)
	}
	if !registered(t, direct, service) {
		t.Fatalf("%s left Consul although its deregistration failed", service)
	}
	if _, err := stop(); err != nil {
		t.Errorf("ListenAndServe: %v", err)
	}
	if registered(t, direct, service) {
		t.Errorf("%s still in Consul after shutdown: the failed leave was not tried again (%d deregistrations)", service, deregistrations.Load())
	}
}

// An agent that takes a request and never answers (frozen, overloaded)
// holds neither the instance's shutdown nor its drain for longer than
// deregisterTimeout: the client's own timeout, made for blocking queries,
// would hold it for over 40 s, past a pod's grace period.
func TestHungConsulDoesNotHoldTheShutdown(t *testing.T) {
	addr, direct := testConsul(t)
	var hung atomic.Bool
	release := make(chan struct{})
	defer close(release)
	consul := faultyConsul(t, addr, func(w http.ResponseWriter, r *http.Request) bool {
		if !hung.Load() || r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/v1/agent/service/register") {
			return false
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return true
	})
	_, _, stop := serveInstance(t, consul, direct, "consul-hangs")
	hung.Store(true)

	took, err := stop()
	if err != nil {
		t.Errorf("ListenAndServe: %v", err)
	}
	// Far below the 42 s it took before, with room for a loaded machine.
	if limit := deregisterTimeout + 10*time.Second; took > limit {
		t.Errorf("shutdown with a hung agent took %s, want at most %s", took.Round(100*time.Millisecond), limit)
	}
}

// An admin listener on loopback cannot be reached at an address that is
// not: an instance registered under another one (-advertise-host, or the
// host's address for -http-addr 0.0.0.0:…) would go critical in Consul at
// once, its check unanswered, and Prometheus could not scrape it. It is
// refused at start, saying which flag to change, and nothing is registered.
func TestAdminOnLoopbackIsRefusedForAnotherHost(t *testing.T) {
	_, client := testConsul(t)
	for _, tc := range []struct {
		advertise, admin string
		ok               bool
	}{
		{"10.1.2.3", "127.0.0.1:0", false},
		{"10.1.2.3", "[::1]:0", false},
		{"", "127.0.0.1:0", true},          // registered as 127.0.0.1 too
		{"localhost", "127.0.0.1:0", true}, // a name: taken at its word
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		service := "admin-" + strings.NewReplacer(".", "-", ":", "-", "[", "", "]", "").Replace(tc.advertise+tc.admin)
		cfg := config.Common{Service: service, HTTPAddr: "127.0.0.1:0", AdvertiseHost: tc.advertise, Version: "test"}
		err := ListenAndServeWithAdmin(ctx, cfg, client, http.NotFoundHandler(), &Admin{Addr: tc.admin, Handler: http.NotFoundHandler()}, testLogger())
		cancel()
		if refused := err != nil && strings.Contains(err.Error(), "-admin-addr"); refused == tc.ok {
			t.Errorf("advertised as %q, admin on %s: ListenAndServeWithAdmin = %v; want refused: %v", tc.advertise, tc.admin, err, !tc.ok)
		}
	}
}

// TestStopTimeoutCoversTheShutdown: testkit's Stop waits for a run to
// return for StopTimeout before it reports ErrStillRunning (and
// StopInstances fails the test). A run leaving Consul at its cancellation
// may take MaxShutdown to drain, so a shorter StopTimeout fails a test whose
// instance shut down within its bound.
func TestStopTimeoutCoversTheShutdown(t *testing.T) {
	if testkit.StopTimeout <= MaxShutdown {
		t.Errorf("testkit.StopTimeout %s, but an instance's shutdown may take %s (MaxShutdown)", testkit.StopTimeout, MaxShutdown)
	}
}
