package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// gatewayBenchPath is the route every case of the gateway benchmark asks
// for: a public read the product service answers from its cache, so the
// figures are the proxies', not PostgreSQL's.
const gatewayBenchPath = "/api/v1/categories"

// BenchmarkGateway compares, in one run, the same upstream route
// (GET /api/v1/categories, two product instances registered in Consul):
//
//   - direct: straight to one product instance;
//   - nginx/1 and nginx/auto: through Debian's nginx, one worker and
//     worker_processes auto, keepalive upstream to both instances;
//   - gateway/bearer: through the Mercato gateway with a bearer token, so
//     token verification (signature, expiry, denylist), the rate limiter
//     (a limit high enough never to refuse), the breakers and the metrics
//     all run;
//   - gateway/anonymous: the same without a token.
//
// The load is wrk (Debian's package: C, closed loop, 2 threads and 32
// connections, as in issue 15's baseline), which costs less CPU per
// request than a Go client would on the same two cores. Rounds are
// interleaved (every case once, then again, gatewayBenchRounds times), so
// a noisy machine hits every case alike; the table at the end gives each
// round's throughput and p50/p99 and the ratios gateway/nginx and
// gateway/direct. make bench-gateway runs it:
//
//	go test -run '^$' -bench BenchmarkGateway -benchtime 1x -timeout 10m ./e2e/
//
// With GATEWAY_BENCH_PROFILE=dir, the gateway's CPU profile during the
// first round's bearer case and its allocations after it are written to
// dir/cpu.pprof and dir/allocs.pprof (the gateway runs with -pprof-addr).
// Nothing here asserts on time; TestGatewayBenchShort is its short mode.
func BenchmarkGateway(b *testing.B) {
	cases := newGatewayBench(b, os.Getenv("GATEWAY_BENCH_PROFILE"))
	table := runGatewayBench(b, cases, gatewayBenchRounds, gatewayBenchDuration)
	b.Logf("\n%s", table)
	fmt.Println(table)
}

// TestGatewayBenchShort is make bench-gateway's short mode, so it cannot
// rot: every case for one short round, and each must have served only 200s.
func TestGatewayBenchShort(t *testing.T) {
	cases := newGatewayBench(t, "")
	t.Logf("\n%s", runGatewayBench(t, cases, 1, time.Second))
}

const (
	gatewayBenchRounds      = 3
	gatewayBenchDuration    = 5 * time.Second
	gatewayBenchConnections = 32
)

// benchCase is one way to the route: a URL and the headers to send.
type benchCase struct {
	name    string
	url     string
	headers map[string]string
	profile func(testing.TB, time.Duration) func() // starts a profile for the round, returns its stop; nil: none
}

// newGatewayBench starts Consul, Redis, PostgreSQL, two product instances,
// the gateway and nginx (one worker, and auto), and returns the cases.
func newGatewayBench(t testing.TB, profileDir string) []benchCase {
	t.Helper()
	nginx := nginxBinary(t)
	wrkBinary(t)
	consul := testkit.NewConsul(t).Addr()
	own := testkit.NewRedis(t)
	dbURL := testkit.PostgresURL(t)
	common := []string{"-consul-addr", consul, "-database-url", dbURL, "-redis-addr", own.Addr(),
		"-jwt-secret", jwtSecret, "-log-level", "warn"}
	// The first instance migrates the database.
	products := []*proc{start(t, "product", common...)}
	products = append(products, start(t, "product", common...))
	waitPassing(t, consul, "product", 2)
	gwArgs := []string{"-consul-addr", consul, "-redis-addr", own.Addr(), "-jwt-secret", jwtSecret,
		"-rate-limit", "1000000000", "-rate-burst", "100000000", "-log-level", "warn"}
	var pprofAddr string
	if profileDir != "" {
		pprofAddr = freeAddr(t)
		gwArgs = append(gwArgs, "-pprof-addr", pprofAddr)
	}
	gateway := start(t, "gateway", gwArgs...)
	upstreams := []string{products[0].addr, products[1].addr}
	nginx1 := startNginx(t, nginx, "1", upstreams)
	nginxAuto := startNginx(t, nginx, "auto", upstreams)

	tokens, err := auth.NewTokens([]byte(jwtSecret), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	token, err := tokens.Issue(auth.Identity{UserID: uuid.NewString(), Email: "bench@mercato.test", Role: auth.RoleCustomer})
	if err != nil {
		t.Fatal(err)
	}
	bearer := map[string]string{"Authorization": "Bearer " + token}
	cases := []benchCase{
		{name: "direct", url: "http://" + products[0].addr + gatewayBenchPath},
		{name: "nginx/1", url: "http://" + nginx1 + gatewayBenchPath},
		{name: "nginx/auto", url: "http://" + nginxAuto + gatewayBenchPath},
		{name: "gateway/bearer", url: "http://" + gateway.addr + gatewayBenchPath, headers: bearer},
		{name: "gateway/anonymous", url: "http://" + gateway.addr + gatewayBenchPath},
	}
	if profileDir != "" {
		cases[3].profile = func(t testing.TB, d time.Duration) func() {
			return profileGateway(t, pprofAddr, profileDir, d)
		}
	}
	// Every way answers 200 before any load: a case that answers
	// something else would measure the wrong thing.
	for _, c := range cases {
		waitFor(t, 10*time.Second, c.name+" answers 200", func() error { return getOK(c.url, c.headers) })
	}
	return cases
}

// runGatewayBench runs every case once per round, rounds times, each for d
// with wrk, fails t if any answer was not a 2xx or any socket failed, and
// returns the table of figures and ratios.
func runGatewayBench(t testing.TB, cases []benchCase, rounds int, d time.Duration) string {
	t.Helper()
	results := map[string][]wrkResult{}
	load := []float64{}
	for round := range rounds {
		for _, c := range cases {
			var stop func()
			if c.profile != nil && round == 0 {
				stop = c.profile(t, d)
			}
			res := runWrk(t, c, d)
			if stop != nil {
				stop()
			}
			results[c.name] = append(results[c.name], res)
		}
		load = append(load, loadAverage())
	}
	return benchTable(cases, results, load)
}

// benchTable prints each case's rounds and the ratios of their medians.
func benchTable(cases []benchCase, results map[string][]wrkResult, load []float64) string {
	var s strings.Builder
	fmt.Fprintf(&s, "GET %s, %d connections (wrk), %d round(s); load average after each round: %v\n",
		gatewayBenchPath, gatewayBenchConnections, len(load), load)
	fmt.Fprintf(&s, "%-18s %s\n", "case", "req/s  p50 ms  p99 ms  (per round)")
	for _, c := range cases {
		fmt.Fprintf(&s, "%-18s", c.name)
		for _, r := range results[c.name] {
			fmt.Fprintf(&s, "  %7.0f %6.2f %6.2f |", r.rps, ms(r.p50), ms(r.p99))
		}
		s.WriteString("\n")
	}
	median := func(name string) wrkResult { return medianResult(results[name]) }
	for _, gw := range []string{"gateway/bearer", "gateway/anonymous"} {
		g := median(gw)
		fmt.Fprintf(&s, "%-18s req/s ×%.2f nginx/1, ×%.2f nginx/auto, ×%.2f direct; p99 %.2f ms vs nginx/1 %.2f ms (median of rounds)\n",
			gw, g.rps/median("nginx/1").rps, g.rps/median("nginx/auto").rps, g.rps/median("direct").rps,
			ms(g.p99), ms(median("nginx/1").p99))
	}
	return s.String()
}

// getOK asks url once and wants a 200 with a body.
func getOK(url string, headers map[string]string) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || len(body) == 0 {
		return fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	return nil
}

// profileGateway starts fetching the gateway's CPU profile for d and
// returns what, once the load is over, waits for it and fetches the
// allocations profile, both written under dir.
func profileGateway(t testing.TB, pprofAddr, dir string, d time.Duration) func() {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fetch := func(path, file string) error {
		resp, err := http.Get("http://" + pprofAddr + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: status %d", path, resp.StatusCode)
		}
		f, err := os.Create(filepath.Join(dir, file))
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(f, resp.Body)
		return err
	}
	done := make(chan error, 1)
	go func() {
		done <- fetch(fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(d.Seconds())), "cpu.pprof")
	}()
	return func() {
		if err := <-done; err != nil {
			t.Errorf("CPU profile: %v", err)
		}
		if err := fetch("/debug/pprof/allocs", "allocs.pprof"); err != nil {
			t.Errorf("allocations profile: %v", err)
		}
	}
}
