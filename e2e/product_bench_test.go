package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/shared/localinfra"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// benchListPath is the benchmarked request: a department of the synthetic
// catalogue (10% of its 100,000 products, over 50 leaf categories), sorted by
// price, first page of 20.
const benchListPath = "/api/v1/products?category=dept-4&sort=price"

// catalogueVersionKey is the product service's cache version
// (product.CacheVersionKey; the e2e module does not import service
// modules). INCRing it empties the cache for every instance at once.
const catalogueVersionKey = "catalogue:version"

// BenchmarkProductListing measures GET /api/v1/products?category=…&sort=price
// on a catalogue of 100,000 products (product/postgres/testdata/catalogue.sql)
// through the gateway (two product instances behind it) and straight
// against one product instance, with the cache warm (every request a hit)
// and cold (the cache version bumped before every request, so every request
// misses and queries PostgreSQL). Each case runs for benchDuration with
// benchWorkers concurrent clients on loopback and reports requests per
// second and latency percentiles; the cold cases also report the share of
// cache misses, to show they really were cold.
//
//	go test -run '^$' -bench BenchmarkProductListing -benchtime 1x -timeout 10m ./e2e/
func BenchmarkProductListing(b *testing.B) {
	consul := testkit.NewConsul(b).Addr()
	own := testkit.NewRedis(b)
	rdb := redis.NewClient(own.Options(localinfra.RedisAdmin))
	b.Cleanup(func() { rdb.Close() })
	dbURL := testkit.PostgresURL(b)
	common := []string{"-consul-addr", consul, "-database-url", dbURL, "-redis-addr", own.Addr(),
		"-jwt-secret", jwtSecret, "-log-level", "warn"}

	// The first instance migrates the database; then the catalogue.
	products := []*proc{start(b, "product", common...)}
	loadBenchCatalogue(b, dbURL)
	products = append(products, start(b, "product", common...))
	waitPassing(b, consul, "product", 2)
	gateway := start(b, "gateway", "-consul-addr", consul, "-redis-addr", own.Addr(), "-jwt-secret", jwtSecret,
		"-rate-limit", "1000000000", "-rate-burst", "100000000", "-log-level", "warn")

	httpClient := &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}}
	cases := []struct {
		name string
		addr string
		cold bool
	}{
		{"gateway/warm", gateway.addr, false},
		{"gateway/cold", gateway.addr, true},
		{"direct/warm", products[0].addr, false},
		{"direct/cold", products[0].addr, true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			hits, misses := benchCacheCounts(b, products)
			res := benchLoad(b, httpClient, rdb, "http://"+c.addr+benchListPath, c.cold)
			hits2, misses2 := benchCacheCounts(b, products)
			looked := (hits2 - hits) + (misses2 - misses)
			missRatio := 0.0
			if looked > 0 {
				missRatio = (misses2 - misses) / looked
			}
			if c.cold && missRatio < 0.9 {
				// Not a timing assertion: a cold run that hit the cache measured
				// the wrong thing (e.g. the version key was renamed).
				b.Errorf("cold run: only %.0f%% of cache lookups missed", 100*missRatio)
			}
			if !c.cold && missRatio > 0.1 {
				b.Errorf("warm run: %.0f%% of cache lookups missed", 100*missRatio)
			}
			b.ReportMetric(res.rps, "req/s")
			b.ReportMetric(float64(res.p50.Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(res.p99.Microseconds())/1000, "p99-ms")
			b.ReportMetric(100*missRatio, "miss-%")
			b.Logf("%-13s %7.0f req/s  p50 %6.2f ms  p99 %6.2f ms  %d requests, %d errors, %.0f%% cache misses",
				c.name, res.rps, float64(res.p50.Microseconds())/1000, float64(res.p99.Microseconds())/1000,
				res.requests, res.errors, 100*missRatio)
		})
	}
}

const (
	benchDuration = 4 * time.Second
	benchWorkers  = 16
)

type benchResult struct {
	rps              float64
	p50, p99         time.Duration
	requests, errors int
}

// benchLoad sends the request from benchWorkers goroutines for
// benchDuration, after a short warm-up (which also fills the cache).
func benchLoad(b *testing.B, c *http.Client, rdb *redis.Client, url string, cold bool) benchResult {
	b.Helper()
	get := func() error {
		if cold {
			if err := rdb.Incr(context.Background(), catalogueVersionKey).Err(); err != nil {
				return err
			}
		}
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	for range 50 {
		if err := get(); err != nil {
			b.Fatalf("warm-up: %v", err)
		}
	}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		errs      int
		wg        sync.WaitGroup
	)
	deadline := time.Now().Add(benchDuration)
	begin := time.Now()
	for range benchWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			failed := 0
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if err := get(); err != nil {
					failed++
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			errs += failed
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)
	if len(latencies) == 0 {
		b.Fatalf("no request succeeded (%d errors)", errs)
	}
	slices.Sort(latencies)
	return benchResult{
		rps:      float64(len(latencies)) / elapsed.Seconds(),
		p50:      latencies[len(latencies)/2],
		p99:      latencies[len(latencies)*99/100],
		requests: len(latencies),
		errors:   errs,
	}
}

// benchCacheCounts sums the instances' cache hits and misses.
func benchCacheCounts(b *testing.B, products []*proc) (hits, misses float64) {
	b.Helper()
	for _, p := range products {
		resp, err := http.Get("http://" + p.addr + "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(body), "\n") {
			if !strings.HasPrefix(line, "catalogue_cache_requests_total{") {
				continue
			}
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			switch {
			case strings.Contains(line, `result="hit"`):
				hits += v
			case strings.Contains(line, `result="miss"`):
				misses += v
			}
		}
	}
	return hits, misses
}

// loadBenchCatalogue runs the synthetic catalogue script on the product
// database and refreshes the planner's statistics.
func loadBenchCatalogue(b *testing.B, dbURL string) {
	b.Helper()
	root, err := localinfra.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join(root, "product", "postgres", "testdata", "catalogue.sql"))
	if err != nil {
		b.Fatal(err)
	}
	db, err := sqlx.Open("postgres", dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	begin := time.Now()
	if _, err := db.Exec(string(script)); err != nil {
		b.Fatalf("catalogue.sql: %v", err)
	}
	if _, err := db.Exec(`VACUUM ANALYZE`); err != nil {
		b.Fatal(err)
	}
	b.Logf("catalogue of 100,000 products loaded in %s", time.Since(begin).Round(time.Millisecond))
}
