package discovery

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mercato-dev/mercato/shared/config"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// A preStop hook's POST /leave takes the instance out of Consul while it
// still serves, and /ready answers 503 from then on.
func TestLeaveDeregistersBeforeShutdown(t *testing.T) {
	addr := testkit.ConsulAddr(t)
	client, err := NewConsulClientWithToken(addr, testkit.ConsulToken(t, addr, ""))
	if err != nil {
		t.Fatal(err)
	}
	service := "leaving-" + time.Now().Format("150405.000000")
	routes := http.NewServeMux()
	routes.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	routes.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })

	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ListenAndServe(ctx, config.Common{Service: service, HTTPAddr: "127.0.0.1:0", Version: "test"}, client, routes, testLogger())
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("ListenAndServe: %v", err)
		}
	}()

	// The instance's address, once Consul has it.
	var base string
	for deadline := time.Now().Add(5 * time.Second); base == ""; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never registered", service)
		}
		services, err := client.Agent().ServicesWithFilter("Service == " + `"` + service + `"`)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range services {
			base = "http://" + net.JoinHostPort(s.Address, strconv.Itoa(s.Port))
		}
	}
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
	if services, err := client.Agent().ServicesWithFilter("Service == " + `"` + service + `"`); err != nil || len(services) != 0 {
		t.Errorf("Consul after leave: %v, %v; want no instance", services, err)
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
