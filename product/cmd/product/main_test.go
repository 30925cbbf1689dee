package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/consul/api"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const secret = "0123456789abcdef0123456789abcdef"

// TestRun starts two instances as the binary would, on free ports, both
// with -seed-demo, and checks what the rest of the system relies on: they
// register in Consul with their real ports and a passing check, the demo
// catalogue is there once, the API and the internal reservation routes
// answer, the events reach the Redis stream, and they leave Consul on
// shutdown.
func TestRun(t *testing.T) {
	consulAddr := testkit.ConsulAddr(t)
	rdb := testkit.Redis(t)
	args := testkit.InstanceArgs(t, consulAddr, secret, "-seed-demo", "-sweep-interval", "100ms")
	// Both at once: the demo catalogue must be loaded once although both
	// instances ask.
	from := testkit.StreamEnd(t, rdb, "events") // what this run publishes comes after
	runs := testkit.StartInstances(t, run, consulAddr, "product", 2, args...)
	instances := []*api.ServiceEntry{runs[0].Entry, runs[1].Entry}
	for _, in := range instances {
		if in.Service.Port == 0 || in.Service.ID != fmt.Sprintf("product-127.0.0.1-%d", in.Service.Port) {
			t.Errorf("registered as %s port %d", in.Service.ID, in.Service.Port)
		}
	}
	base := runs[0].BaseURL

	call := func(method, path, token, body string) (int, string) {
		t.Helper()
		r := testkit.Call(t, method, base+path, token, body)
		return r.Status, r.Body
	}

	if code, body := call("GET", "/ready", "", ""); code != http.StatusOK {
		t.Errorf("/ready: %d %s", code, body)
	}
	// The demo catalogue, loaded once although both instances asked.
	code, body := call("GET", "/api/v1/products?page_size=100", "", "")
	if code != http.StatusOK || !strings.Contains(body, `"total":50`) {
		t.Fatalf("demo products: %d %.300s", code, body)
	}
	var page struct {
		Items []struct {
			ID       string `json:"id"`
			Slug     string `json:"slug"`
			Stock    int    `json:"stock_quantity"`
			Variants []any  `json:"variants"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatal(err)
	}
	var earbuds string
	for _, p := range page.Items {
		if p.Slug == "everyday-earbuds" {
			earbuds = p.ID
		}
	}
	if code, body := call("GET", "/api/v1/categories", "", ""); code != http.StatusOK || !strings.Contains(body, `"slug":"t-shirts"`) {
		t.Errorf("demo categories: %d %.300s", code, body)
	}

	// A reservation through the internal route, with a service's token.
	tokens, err := auth.NewTokens([]byte(secret), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	svcToken, _ := tokens.ServiceToken("order")
	order := uuid.NewString()
	code, body = call("POST", "/internal/reservations", svcToken, `{"order_id":"`+order+`","items":[{"product_id":"`+earbuds+`","quantity":2}]}`)
	if code != http.StatusCreated || !strings.Contains(body, `"unit_price":"79.00"`) {
		t.Errorf("reserve: %d %s", code, body)
	}
	if code, body := call("POST", "/internal/reservations/"+order+"/release", svcToken, ""); code != http.StatusOK {
		t.Errorf("release: %d %s", code, body)
	}
	if _, body := call("GET", "/metrics", "", ""); !strings.Contains(body, `reservations_total{result="reserved"} 1`) ||
		!strings.Contains(body, "catalogue_cache_requests_total") {
		t.Errorf("/metrics lacks the business counters:\n%.2000s", body)
	}

	// The relays publish what was committed: 50 product.created and the
	// release.
	var created, released int
	for start := time.Now(); time.Since(start) < 15*time.Second && (created < 50 || released < 1); time.Sleep(100 * time.Millisecond) {
		entries, err := rdb.XRange(context.Background(), "events", "("+from, "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		created, released = 0, 0
		for _, e := range entries {
			var env events.Envelope
			if err := json.Unmarshal([]byte(e.Values["envelope"].(string)), &env); err != nil {
				t.Fatal(err)
			}
			if env.Source != "product" {
				continue
			}
			switch env.Type {
			case events.ProductCreated:
				created++
			case events.InventoryReleased:
				released++
			}
		}
	}
	if created != 50 || released != 1 {
		t.Errorf("%d product.created and %d inventory.released on the stream, want 50 and 1", created, released)
	}

	testkit.StopInstances(t, runs...)
	entries, _, err := runs[0].Consul.Health().Service("product", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("still in Consul after shutdown: %s", entries[0].Service.ID)
	}
}

// TestUncachedInstanceInvalidatesTheOthers: an instance run with
// -cache-ttl 0 caches nothing, but the instances beside it do, and they
// share the cache. A write through it must still make their entries stale.
func TestUncachedInstanceInvalidatesTheOthers(t *testing.T) {
	consulAddr := testkit.ConsulAddr(t)
	args := testkit.InstanceArgs(t, consulAddr, secret)
	cached := testkit.StartInstance(t, run, consulAddr, "product", args...).BaseURL
	uncached := testkit.StartInstance(t, run, consulAddr, "product", append(args, "-cache-ttl", "0")...).BaseURL
	tokens, err := auth.NewTokens([]byte(secret), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := tokens.Issue(auth.Identity{UserID: uuid.NewString(), Email: "admin@example.com", Role: auth.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	r := testkit.Call(t, "POST", cached+"/api/v1/products", admin, `{"name":"Desk Lamp","sku":"LAMP-1","price":"20.00"}`)
	var created struct{ Product struct{ ID string } }
	if r.Status != http.StatusCreated || json.Unmarshal([]byte(r.Body), &created) != nil {
		t.Fatalf("POST /api/v1/products: %d %s", r.Status, r.Body)
	}
	product := "/api/v1/products/" + created.Product.ID
	for range 2 { // the first read fills the cache, the second is served from it
		if r := testkit.Call(t, "GET", cached+product, "", nil); r.Status != http.StatusOK || !strings.Contains(r.Body, `"price":"20.00"`) {
			t.Fatalf("GET %s: %d %s", product, r.Status, r.Body)
		}
	}
	if r := testkit.Call(t, "PATCH", uncached+product, admin, `{"price":"17.50"}`); r.Status != http.StatusOK {
		t.Fatalf("PATCH through the -cache-ttl 0 instance: %d %s", r.Status, r.Body)
	}
	if r := testkit.Call(t, "GET", cached+product, "", nil); !strings.Contains(r.Body, `"price":"17.50"`) {
		t.Errorf("the caching instance still serves %s after a price change through the -cache-ttl 0 instance", r.Body)
	}
	// And the -cache-ttl 0 instance itself stores nothing.
	if r := testkit.Call(t, "GET", uncached+"/api/v1/products/desk-lamp", "", nil); r.Status != http.StatusOK {
		t.Fatalf("GET by slug through the -cache-ttl 0 instance: %d %s", r.Status, r.Body)
	}
	if n, err := testkit.Redis(t).Exists(context.Background(), "catalogue:product:desk-lamp").Result(); err != nil || n != 0 {
		t.Errorf("the -cache-ttl 0 instance cached a read (%d entries, %v)", n, err)
	}
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
		{"negative cache ttl", append(base[:len(base):len(base)], "-cache-ttl", "-1s"), "-cache-ttl"},
		{"zero sweep interval", append(base[:len(base):len(base)], "-sweep-interval", "0s"), "-sweep-interval"},
		{"unreachable database", base, "database"},
		{"bad flag value", append(base[:len(base):len(base)], "-cache-ttl", "soon"), "cache-ttl"},
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
