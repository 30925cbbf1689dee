package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/requestid"
	"github.com/mercato-dev/mercato/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const secret = "0123456789abcdef0123456789abcdef"

// TestRun starts the gateway as the binary would, on free ports: it
// registers in Consul with its real port, its admin port and a passing check
// on the admin port, reports Redis and Consul in /ready there, serves
// /metrics there and neither on the public port, answers 503 JSON for an
// upstream with no instance, logs the client behind a trusted proxy (the
// test, on loopback, is one), and leaves Consul on shutdown.
func TestRun(t *testing.T) {
	consulAddr := testkit.ConsulAddr(t)
	args := []string{
		"-http-addr", "127.0.0.1:0",
		"-consul-addr", consulAddr,
		"-redis-addr", testkit.RedisAddr(t),
		"-jwt-secret", secret,
		"-trusted-proxies", "127.0.0.0/8",
	}
	in := testkit.StartInstance(t, run, consulAddr, "gateway", args...)
	if port := in.Entry.Service.Port; port == 0 || in.Entry.Service.ID != fmt.Sprintf("gateway-127.0.0.1-%d", port) {
		t.Errorf("registered as %s port %d", in.Entry.Service.ID, port)
	}

	admin := adminURL(t, in)
	if check := checkOutput(t, in); !strings.Contains(check, "GET "+admin+"/health: 200") {
		t.Errorf("Consul's check says %q, want a passing GET of the admin listener's %s/health", check, admin)
	}
	for _, path := range []string{"/ready", "/metrics"} {
		if code, body := get(t, in.BaseURL+path); code != http.StatusNotFound || !strings.Contains(body, `"not_found"`) {
			t.Errorf("public %s: %d %s, want a 404 JSON error", path, code, body)
		}
	}
	if code, _ := get(t, in.BaseURL+"/health"); code != http.StatusOK {
		t.Errorf("public /health: %d", code)
	}
	if code, body := get(t, admin+"/metrics"); code != http.StatusOK || !strings.Contains(body, "go_goroutines") {
		t.Errorf("admin /metrics: %d", code)
	}
	code, body := get(t, admin+"/ready")
	var ready struct {
		Ready  bool              `json:"ready"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal([]byte(body), &ready); err != nil || code != http.StatusOK || !ready.Ready ||
		len(ready.Checks) != 2 || ready.Checks["redis"] != "ok" || ready.Checks["consul"] != "ok" {
		t.Errorf("/ready: %d %s, want ready with redis and consul", code, body)
	}
	if code, body := get(t, in.BaseURL+"/api/v1/categories"); code != http.StatusServiceUnavailable || !strings.Contains(body, `"error"`) {
		t.Errorf("no product instance: %d %s, want a 503 error body", code, body)
	}
	// The access log names the client the trusted proxy forwarded for, not
	// the proxy (gateway.FromClient around the router).
	forwarded, err := http.NewRequest(http.MethodGet, in.BaseURL+"/api/v1/nothing", nil)
	if err != nil {
		t.Fatal(err)
	}
	forwarded.Header.Set("X-Forwarded-For", "203.0.113.5")
	if resp, err := http.DefaultClient.Do(forwarded); err != nil {
		t.Error(err)
	} else {
		resp.Body.Close()
		awaitAccessLog(t, in.Logs, resp.Header.Get(requestid.Header), `"remote":"203.0.113.5:`)
	}
	// A CORS preflight, answered before anything is forwarded, carries a
	// request id like every answer.
	preflight, err := http.NewRequest(http.MethodOptions, in.BaseURL+"/api/v1/orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	preflight.Header.Set("Origin", "http://localhost:5173")
	preflight.Header.Set("Access-Control-Request-Method", http.MethodPost)
	if resp, err := http.DefaultClient.Do(preflight); err != nil {
		t.Error(err)
	} else {
		resp.Body.Close()
		if resp.Header.Get("Access-Control-Allow-Origin") == "" || resp.Header.Get(requestid.Header) == "" {
			t.Errorf("preflight: %d %v, want a CORS grant with an X-Request-ID", resp.StatusCode, resp.Header)
		}
	}

	testkit.StopInstances(t, in)
	entries, _, err := in.Consul.Health().Service("gateway", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("still in Consul after shutdown: %s", entries[0].Service.ID)
	}
}

// TestRunWithoutRedis checks that the gateway starts while Redis is down
// (its rate limiter fails open) and says so in /ready.
func TestRunWithoutRedis(t *testing.T) {
	consulAddr := testkit.ConsulAddr(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	noRedis := ln.Addr().String()
	ln.Close()
	in := testkit.StartInstance(t, run, consulAddr, "gateway",
		"-http-addr", "127.0.0.1:0", "-consul-addr", consulAddr, "-redis-addr", noRedis, "-jwt-secret", secret)
	if code, body := get(t, adminURL(t, in)+"/ready"); code != http.StatusServiceUnavailable || !strings.Contains(body, `"consul":"ok"`) {
		t.Errorf("/ready without Redis: %d %s, want 503 with consul ok", code, body)
	}
	if code, _ := get(t, in.BaseURL+"/health"); code != http.StatusOK {
		t.Errorf("/health without Redis: %d", code)
	}
}

// TestReadyConsulHung freezes the gateway's Consul agent (it takes
// connections and never answers): /ready answers 503 within its 2 s,
// naming Consul, rather than after the Consul client's timeout (over
// 40 s, a goroutine and a connection held per probe), and the shutdown
// that follows is not held by the agent either.
func TestReadyConsulHung(t *testing.T) {
	consul := testkit.NewConsul(t)
	in := testkit.StartInstance(t, run, consul.Addr(), "gateway",
		"-http-addr", "127.0.0.1:0", "-consul-addr", consul.Addr(), "-redis-addr", testkit.RedisAddr(t), "-jwt-secret", secret)
	admin := adminURL(t, in)
	testkit.FreezeConsul(t, consul)

	begin := time.Now()
	code, body := get(t, admin+"/ready")
	if took := time.Since(begin); code != http.StatusServiceUnavailable || !strings.Contains(body, `"redis":"ok"`) ||
		strings.Contains(body, `"consul":"ok"`) || took > 4*time.Second {
		t.Errorf("/ready with Consul hung: %d %s after %s; want 503 naming consul within 2s", code, body, took.Round(100*time.Millisecond))
	}

	begin = time.Now()
	if err := in.Stop(); err != nil {
		t.Errorf("run: %v", err)
	}
	// Deregistration gives up after 5 s; the drain has nothing to wait for.
	if took := time.Since(begin); took > 10*time.Second {
		t.Errorf("shutdown with Consul hung took %s, want at most 10s", took.Round(100*time.Millisecond))
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"short secret", []string{"-jwt-secret", "short"}, "-jwt-secret"},
		{"unknown flag", []string{"-no-such-flag"}, "no-such-flag"},
		{"bad trusted proxies", []string{"-jwt-secret", secret, "-trusted-proxies", "10.0.0.0/16,lb.internal"}, "-trusted-proxies"},
		// A rate of 0 made every request a Redis error, let through (the
		// limiter fails open): no limit at all. A burst of 0 refused every
		// request with 429.
		{"no rate", []string{"-jwt-secret", secret, "-rate-limit", "0"}, "-rate-limit"},
		{"no burst", []string{"-jwt-secret", secret, "-rate-burst", "0"}, "-rate-burst"},
		{"negative webhook rate", []string{"-jwt-secret", secret, "-webhook-rate-limit", "-1"}, "-webhook-rate-limit"},
		{"negative webhook burst", []string{"-jwt-secret", secret, "-webhook-rate-burst", "-5"}, "-webhook-rate-burst"},
		// 0 took away the attempt's timeout (the HTTP client's) and left the
		// call's to discovery's default of 5 s, so a hung instance held
		// every attempt and an answer's body had no bound at all.
		{"no upstream timeout", []string{"-jwt-secret", secret, "-upstream-timeout", "0"}, "-upstream-timeout"},
		{"negative upstream timeout", []string{"-jwt-secret", secret, "-upstream-timeout", "-5s"}, "-upstream-timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := run(ctx, tc.args, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one naming %q", err, tc.want)
			}
		})
	}
	if err := run(context.Background(), []string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: err = %v, want flag.ErrHelp", err)
	}
}

// awaitAccessLog fails t unless the access log line of request id, with
// want in it, is logged within 5 s.
func awaitAccessLog(t *testing.T, logs *testkit.LogBuffer, id, want string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, `"request_id":"`+id+`"`) && strings.Contains(line, `"msg":"http request"`) && strings.Contains(line, want) {
				return
			}
		}
	}
	t.Errorf("no access log line of %s with %s; the log:\n%s", id, want, logs)
}

// adminURL is the base URL of in's admin listener, as its Consul
// registration says.
func adminURL(t *testing.T, in *testkit.Instance) string {
	t.Helper()
	port := in.Entry.Service.Meta[discovery.AdminPortMeta]
	if port == "" || port == strconv.Itoa(in.Entry.Service.Port) {
		t.Fatalf("registered without an admin port of its own: meta %v, port %d", in.Entry.Service.Meta, in.Entry.Service.Port)
	}
	return "http://" + net.JoinHostPort(in.Entry.Service.Address, port)
}

// checkOutput is what Consul's check of in last said ("HTTP GET <url>: 200
// OK Output: …").
func checkOutput(t *testing.T, in *testkit.Instance) string {
	t.Helper()
	checks, err := in.Consul.Agent().Checks()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		if c.ServiceID == in.Entry.Service.ID {
			return c.Output
		}
	}
	return ""
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	r := testkit.Call(t, "GET", url, "", nil)
	return r.Status, r.Body
}

func TestParsePrefixes(t *testing.T) {
	got, err := parsePrefixes(" 10.0.0.0/16, 192.0.2.7,10.1.2.3/8,")
	if err != nil || fmt.Sprint(got) != "[10.0.0.0/16 192.0.2.7/32 10.0.0.0/8]" {
		t.Fatalf("got %v, %v", got, err)
	}
	if got, err := parsePrefixes(""); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v, %v", got, err)
	}
}

// TestParsePrefixesUnmapsIPv4InIPv6: the gateway matches peers unmapped, so
// a trusted range written in its IPv4-mapped form must be the IPv4 range,
// or no request from it would count as the proxy's.
func TestParsePrefixesUnmapsIPv4InIPv6(t *testing.T) {
	got, err := parsePrefixes("::ffff:10.0.0.0/104, ::ffff:192.0.2.7, 2001:db8::/32, 10.1.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "10.1.0.0/16"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("parsePrefixes = %v, want %v", got, want)
	}
	if _, err := parsePrefixes("::ffff:0.0.0.0/64"); err == nil {
		t.Error("an IPv4-mapped range shorter than 96 bits was taken")
	}
}
