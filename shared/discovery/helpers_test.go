package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/kit/sd"
	httptransport "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
)

// backend is one instance of a fake upstream: GET/POST /thing answers
// {"server": "<host:port>"} or, when status is set, that status.
type backend struct {
	srv    *httptest.Server
	hits   atomic.Int64
	status atomic.Int64 // 0 means 200
	block  bool         // hold /thing until the client goes away
}

func newBackend(t *testing.T, status int) *backend {
	t.Helper()
	b := &backend{}
	b.status.Store(int64(status))
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("/thing", func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		if b.block {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if s := int(b.status.Load()); s != 0 {
			w.WriteHeader(s)
			_, _ = io.WriteString(w, `{"error":{"code":"test","message":"status from test"}}`)
			return
		}
		_ = json.NewEncoder(w).Encode(thingResponse{Server: b.addr()})
	})
	b.srv = httptest.NewServer(mux)
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) addr() string { return b.srv.Listener.Addr().String() }

// thingResponse carries business errors (404) in Failed(), as every Mercato
// client's responses do.
type thingResponse struct {
	Server string `json:"server"`
	Err    error  `json:"-"`
}

func (r thingResponse) Failed() error { return r.Err }

var errThingNotFound = errors.New("thing not found")

// thingFactory builds per-instance endpoints the way a service's client.go
// does: a go-kit HTTP client with its own http.Client, decoding 5xx with
// CheckResponse and 404 into the response. closed counts closed instances.
func thingFactory(method, idempotencyKey string, closed *closeLog) sd.Factory {
	return func(instance string) (endpoint.Endpoint, io.Closer, error) {
		tgt := &url.URL{Scheme: "http", Host: instance, Path: "/thing"}
		transport := &http.Transport{MaxIdleConnsPerHost: 4}
		client := &http.Client{Timeout: 2 * time.Second, Transport: transport}
		encode := func(_ context.Context, r *http.Request, _ any) error {
			if idempotencyKey != "" {
				r.Header.Set(IdempotencyKeyHeader, idempotencyKey)
			}
			return nil
		}
		decode := func(_ context.Context, resp *http.Response) (any, error) {
			if err := CheckResponse(resp); err != nil {
				return nil, err
			}
			if resp.StatusCode == http.StatusNotFound {
				return thingResponse{Err: errThingNotFound}, nil
			}
			var out thingResponse
			return out, json.NewDecoder(resp.Body).Decode(&out)
		}
		e := httptransport.NewClient(method, tgt, encode, decode, httptransport.SetClient(client)).Endpoint()
		return e, closerFunc(func() error {
			transport.CloseIdleConnections()
			closed.add(instance)
			return nil
		}), nil
	}
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// closeLog records which instances' clients were closed.
type closeLog struct {
	mu     sync.Mutex
	closed map[string]int
}

func (c *closeLog) add(instance string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed == nil {
		c.closed = map[string]int{}
	}
	c.closed[instance]++
}

func (c *closeLog) count(instance string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed[instance]
}

// testInstancer is an sd.Instancer a test drives by hand.
type testInstancer struct {
	mu    sync.Mutex
	subs  map[chan<- sd.Event]bool
	event sd.Event
}

func newTestInstancer(instances ...string) *testInstancer {
	return &testInstancer{subs: map[chan<- sd.Event]bool{}, event: sd.Event{Instances: instances}}
}

func (i *testInstancer) Register(ch chan<- sd.Event) {
	i.mu.Lock()
	i.subs[ch] = true
	ev := i.event
	i.mu.Unlock()
	ch <- ev
}

func (i *testInstancer) Deregister(ch chan<- sd.Event) {
	i.mu.Lock()
	defer i.mu.Unlock()
	delete(i.subs, ch)
}

func (i *testInstancer) Stop() {}

func (i *testInstancer) update(ev sd.Event) {
	i.mu.Lock()
	i.event = ev
	subs := make([]chan<- sd.Event, 0, len(i.subs))
	for ch := range i.subs {
		subs = append(subs, ch)
	}
	i.mu.Unlock()
	for _, ch := range subs {
		ch <- ev
	}
}

// ready makes one call, which finds an instance (NewEndpoint returns once
// its endpointer holds the instancer's set), then forgets the calls the
// backends counted.
func ready(t *testing.T, e endpoint.Endpoint, backends ...*backend) {
	t.Helper()
	if _, err := e(context.Background(), struct{}{}); errors.Is(err, ErrNoInstances) {
		t.Fatalf("first call: %v", err)
	}
	for _, b := range backends {
		b.hits.Store(0)
	}
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func call(e endpoint.Endpoint) (thingResponse, error) {
	resp, err := e(context.Background(), struct{}{})
	if err != nil {
		return thingResponse{}, err
	}
	return resp.(thingResponse), nil
}

// metricValue returns the value of the series of name with exactly labels in
// reg, and whether it exists.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue(), true
			}
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

// testLogger discards: sd goroutines outlive tests, and t.Log after a test
// ends panics.
func testLogger() log.Logger { return log.NewNopLogger() }
