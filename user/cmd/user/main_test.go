package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const secret = "0123456789abcdef0123456789abcdef"

// TestRun starts the service as the binary would, on a free port, and checks
// what the rest of the system relies on: it registers in Consul with its
// real port and a passing check, serves the API, bootstraps the admin,
// publishes its events to the Redis stream, and leaves Consul on shutdown.
func TestRun(t *testing.T) {
	consulAddr := testkit.ConsulAddr(t)
	rdb := testkit.Redis(t)
	args := testkit.InstanceArgs(t, consulAddr, secret,
		"-admin-email", "root@example.com",
		"-admin-password", "admin-password",
		"-bcrypt-cost", "4",
	)
	from := testkit.StreamEnd(t, rdb, "events") // what this run publishes comes after
	in := testkit.StartInstance(t, run, consulAddr, "user", args...)
	instance := in.Entry
	if instance.Service.Port == 0 || instance.Service.ID != fmt.Sprintf("user-127.0.0.1-%d", instance.Service.Port) {
		t.Errorf("registered as %s port %d", instance.Service.ID, instance.Service.Port)
	}
	base := in.BaseURL

	get := func(path, token string) (int, string) {
		t.Helper()
		r := testkit.Call(t, "GET", base+path, token, nil)
		return r.Status, r.Body
	}
	post := func(path, body string) (int, string) {
		t.Helper()
		r := testkit.Call(t, "POST", base+path, "", body)
		return r.Status, r.Body
	}

	if code, body := get("/ready", ""); code != http.StatusOK {
		t.Errorf("/ready: %d %s", code, body)
	}
	if code, body := post("/api/v1/auth/register", `{"email":"ada@example.com","password":"password123","first_name":"Ada","last_name":"Lovelace"}`); code != http.StatusCreated {
		t.Fatalf("register: %d %s", code, body)
	}
	code, body := post("/api/v1/auth/login", `{"email":"root@example.com","password":"admin-password"}`)
	if code != http.StatusOK {
		t.Fatalf("admin login: %d %s", code, body)
	}
	var pair struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(body), &pair); err != nil {
		t.Fatal(err)
	}
	if code, body := get("/api/v1/users", pair.AccessToken); code != http.StatusOK || !strings.Contains(body, `"total":2`) {
		t.Errorf("admin GET /users: %d %s", code, body)
	}
	if _, body := get("/metrics", ""); !strings.Contains(body, "users_registered_total 1") || !strings.Contains(body, `logins_total{result="success"} 1`) {
		t.Errorf("/metrics lacks the business counters:\n%s", grep(body, "users_registered_total", "logins_total"))
	}

	// The relay publishes what the registrations committed: the admin's and
	// Ada's user.created.
	var published []string // emails
	for start := time.Now(); time.Since(start) < 10*time.Second && len(published) < 2; time.Sleep(100 * time.Millisecond) {
		entries, err := rdb.XRange(context.Background(), "events", "("+from, "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		published = published[:0]
		for _, e := range entries {
			var env events.Envelope
			if err := json.Unmarshal([]byte(e.Values["envelope"].(string)), &env); err != nil {
				t.Fatal(err)
			}
			var data struct {
				Email string `json:"email"`
			}
			if err := env.Decode(&data); err != nil {
				t.Fatal(err)
			}
			if env.Type == events.UserCreated && env.Source == "user" {
				published = append(published, data.Email)
			}
		}
	}
	slices.Sort(published)
	if !slices.Equal(published, []string{"ada@example.com", "root@example.com"}) {
		t.Errorf("user.created events on the stream for %v", published)
	}

	// No password or token in the logs.
	if out := in.Logs.String(); strings.Contains(out, "password123") || strings.Contains(out, "admin-password") || strings.Contains(out, pair.AccessToken) {
		t.Errorf("secrets in the logs:\n%s", out)
	}

	testkit.StopInstances(t, in)
	entries, _, err := in.Consul.Health().Service("user", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("still in Consul after shutdown: %s", entries[0].Service.ID)
	}
}

func grep(text string, words ...string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		for _, w := range words {
			if strings.Contains(line, w) {
				out = append(out, line)
			}
		}
	}
	return strings.Join(out, "\n")
}

// TestRunRefusesBadConfig checks that a misconfigured instance stops at once
// with an error that names the setting, before serving anything.
func TestRunRefusesBadConfig(t *testing.T) {
	base := []string{"-http-addr", "127.0.0.1:0", "-jwt-secret", secret, "-database-url", "postgres://127.0.0.1:1/none?sslmode=disable&connect_timeout=2"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no database", []string{"-jwt-secret", secret}, "-database-url"},
		{"short secret", []string{"-database-url", "postgres://x/y", "-jwt-secret", "short"}, "-jwt-secret"},
		{"admin email alone", append(base[:len(base):len(base)], "-admin-email", "root@example.com"), "-admin-password"},
		{"unreachable database", base, "database"},
		{"bad flag value", append(base[:len(base):len(base)], "-bcrypt-cost", "many"), "bcrypt-cost"},
		{"unknown flag", []string{"-no-such-flag"}, "no-such-flag"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// An unreachable database is asked again until the start-up
			// deadline, or this context, ends.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := run(ctx, tc.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one naming %q", err, tc.want)
			}
		})
	}

	if err := run(context.Background(), []string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: err = %v, want flag.ErrHelp", err)
	}
}
