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
	"strings"
	"testing"
	"time"

	"github.com/mercato-dev/mercato/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const secret = "0123456789abcdef0123456789abcdef"

// TestRun starts the gateway as the binary would, on a free port: it
// registers in Consul with its real port and a passing check, reports Redis
// and Consul in /ready, answers 503 JSON for an upstream with no instance,
// and leaves Consul on shutdown.
func TestRun(t *testing.T) {
	consulAddr := testkit.ConsulAddr(t)
	args := []string{
		"-http-addr", "127.0.0.1:0",
		"-consul-addr", consulAddr,
		"-redis-addr", testkit.RedisAddr(t),
		"-jwt-secret", secret,
	}
	in := testkit.StartInstance(t, run, consulAddr, "gateway", args...)
	if port := in.Entry.Service.Port; port == 0 || in.Entry.Service.ID != fmt.Sprintf("gateway-127.0.0.1-%d", port) {
		t.Errorf("registered as %s port %d", in.Entry.Service.ID, port)
	}

	code, body := get(t, in.BaseURL+"/ready")
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
	if code, body := get(t, in.BaseURL+"/ready"); code != http.StatusServiceUnavailable || !strings.Contains(body, `"consul":"ok"`) {
		t.Errorf("/ready without Redis: %d %s, want 503 with consul ok", code, body)
	}
	if code, _ := get(t, in.BaseURL+"/health"); code != http.StatusOK {
		t.Errorf("/health without Redis: %d", code)
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

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
