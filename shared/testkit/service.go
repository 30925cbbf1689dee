package testkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// This file runs a service's main in-process, as its start-up tests do. It
// talks to Consul through consul/api directly: shared/discovery's own tests
// import testkit, so testkit must not import discovery.

// Timeouts of StartInstances and Stop.
const (
	// StartTimeout is how long each instance may take to pass in Consul.
	StartTimeout = 30 * time.Second
	// StopTimeout is how long a run may take to return once cancelled:
	// more than an instance's shutdown (discovery.MaxShutdown, 21 s, which
	// discovery's TestStopTimeoutCoversTheShutdown checks), as mercato-local
	// and compose wait.
	StopTimeout = 25 * time.Second
)

// ErrStillRunning is wrapped by Stop's error when the run did not return
// within StopTimeout of its context being cancelled.
var ErrStillRunning = errors.New("run did not return after the context was cancelled")

// RunFunc is a service's main without the process: run(ctx, args, logOutput).
// It serves until ctx is done and returns nil after a clean shutdown.
type RunFunc func(ctx context.Context, args []string, logs io.Writer) error

// LogBuffer collects the log lines of a run that is still writing them. It
// is safe for concurrent use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Instance is one in-process run of a service started by StartInstance or
// StartInstances.
type Instance struct {
	// Entry is its passing entry in Consul when it was started. Of several
	// instances started together each gets one of their entries, which is
	// not necessarily its own (Consul cannot tell which run a port 0
	// listener belongs to).
	Entry   *api.ServiceEntry
	BaseURL string      // http://<Entry's address>:<Entry's port>
	Logs    *LogBuffer  // what the run logged so far
	Consul  *api.Client // a client of the Consul agent it registered with (management token)

	cancel context.CancelFunc
	done   chan struct{} // closed when run has returned, after err is set
	err    error         // run's result

	stopped  atomic.Bool // Stop was called
	stopOnce sync.Once
	stopErr  error
}

// InstanceArgs are the flags of a service instance that a test runs on the
// test's servers: a free port on 127.0.0.1, Consul at consulAddr, the test's
// PostgreSQL database and Redis, and jwtSecret; extra follow.
func InstanceArgs(t testing.TB, consulAddr, jwtSecret string, extra ...string) []string {
	t.Helper()
	return append([]string{
		"-http-addr", "127.0.0.1:0",
		"-consul-addr", consulAddr,
		"-database-url", PostgresURL(t),
		"-redis-addr", RedisAddr(t),
		"-jwt-secret", jwtSecret,
	}, extra...)
}

// StartInstance runs run with args in a goroutine and waits until Consul at
// consulAddr reports one passing instance of service besides those it
// listed before (instances the test started earlier, with other args). It fails t,
// with the logs, if run returns early or StartTimeout passes. The run is
// stopped at t.Cleanup if the test did not stop it (an error then fails t).
func StartInstance(t testing.TB, run RunFunc, consulAddr, service string, args ...string) *Instance {
	t.Helper()
	return StartInstances(t, run, consulAddr, service, 1, args...)[0]
}

// StartInstances runs n instances of run with the same args concurrently,
// as n processes started together would, and waits until Consul at
// consulAddr reports n passing instances of service besides those it listed
// before (n times StartTimeout at most). Otherwise like StartInstance.
//
// The instances log in to the Redis of -redis-addr and to Consul with the
// service's own credentials (ServiceCredentials), added to args.
func StartInstances(t testing.TB, run RunFunc, consulAddr, service string, n int, args ...string) []*Instance {
	t.Helper()
	if n < 1 {
		t.Fatalf("testkit: StartInstances: n = %d, want at least 1", n)
	}
	args = append(append([]string(nil), args...), ServiceCredentials(t, service, ArgValue(args, "redis-addr"), consulAddr)...)
	cfg := api.DefaultConfig()
	cfg.Address = consulAddr
	cfg.Token = ConsulToken(t, consulAddr, "") // reads any service's health
	cfg.HttpClient = &http.Client{Timeout: 10 * time.Second}
	consul, err := api.NewClient(cfg)
	if err != nil {
		t.Fatalf("testkit: consul client for %q: %v", consulAddr, err)
	}

	before, _, err := consul.Health().Service(service, "", false, nil)
	if err != nil {
		t.Fatalf("testkit: the %s instances in Consul at %s: %v", service, consulAddr, err)
	}
	running := make(map[string]bool, len(before))
	for _, e := range before {
		running[e.Service.ID] = true
	}

	instances := make([]*Instance, n)
	for i := range instances {
		ctx, cancel := context.WithCancel(context.Background())
		in := &Instance{Logs: &LogBuffer{}, Consul: consul, cancel: cancel, done: make(chan struct{})}
		instances[i] = in
		go func() {
			defer close(in.done)
			in.err = run(ctx, args, in.Logs)
		}()
		t.Cleanup(func() {
			if in.stopped.Load() {
				return // the test stopped it and saw the result
			}
			if err := in.Stop(); err != nil {
				t.Errorf("testkit: %s run after shutdown: %v", service, err)
			}
		})
	}

	timeout := time.Duration(n) * StartTimeout
	deadline := time.Now().Add(timeout)
	for {
		for _, in := range instances {
			select {
			case <-in.done:
				t.Fatalf("run returned early: %v\nlogs:\n%s", in.err, allLogs(instances))
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %d new passing %s instance(s) in Consul after %s\nlogs:\n%s", n, service, timeout, allLogs(instances))
		}
		entries, _, err := consul.Health().Service(service, "", true, nil)
		entries = slices.DeleteFunc(entries, func(e *api.ServiceEntry) bool { return running[e.Service.ID] })
		if err == nil && len(entries) == n {
			for i, in := range instances {
				in.Entry = entries[i]
				in.BaseURL = fmt.Sprintf("http://%s:%d", entries[i].Service.Address, entries[i].Service.Port)
			}
			return instances
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// allLogs joins the logs of instances, one block per instance.
func allLogs(instances []*Instance) string {
	logs := make([]string, len(instances))
	for i, in := range instances {
		logs[i] = in.Logs.String()
	}
	return strings.Join(logs, "\n")
}

// Stop cancels the run and returns its error, waiting up to StopTimeout; a
// run still going after that gives an error wrapping ErrStillRunning. Later
// calls return the same result.
func (i *Instance) Stop() error {
	i.stopped.Store(true)
	i.cancel()
	i.stopOnce.Do(func() {
		select {
		case <-i.done:
			i.stopErr = i.err
		case <-time.After(StopTimeout):
			i.stopErr = fmt.Errorf("%w (waited %s)", ErrStillRunning, StopTimeout)
		}
	})
	return i.stopErr
}

// StopInstances cancels every run at once, then waits for each: it fails t
// at once if a run is still going after StopTimeout, and reports a run that
// returned an error.
func StopInstances(t testing.TB, instances ...*Instance) {
	t.Helper()
	for _, in := range instances {
		in.cancel()
	}
	for _, in := range instances {
		err := in.Stop()
		switch {
		case errors.Is(err, ErrStillRunning):
			t.Fatal(err)
		case err != nil:
			t.Errorf("run after shutdown: %v", err)
		}
	}
}
