package product_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/product"
	"github.com/mercato-dev/mercato/shared/app"
	"github.com/mercato-dev/mercato/shared/localinfra"
	"github.com/mercato-dev/mercato/shared/metrics"
	"github.com/mercato-dev/mercato/shared/money"
	"github.com/mercato-dev/mercato/shared/testkit"
	"github.com/mercato-dev/mercato/shared/validate"
)

// freshRedis is the shared test Redis, emptied: the cache's keys are global.
func freshRedis(t *testing.T) *redis.Client {
	t.Helper()
	rdb := testkit.Redis(t)
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	return rdb
}

// TestCacheAcrossInstances: two instances share the database and the Redis
// cache. After a write returned through one, a read through the other sees
// it — the product, the list and the tree.
func TestCacheAcrossInstances(t *testing.T) {
	db := newDB(t)
	rdb := freshRedis(t)
	a, b := newStackOn(t, db, rdb), newStackOn(t, db, rdb)
	cat := a.createCategory(t, "Lamps", "")
	p := a.createProduct(t, map[string]any{"category_id": cat, "name": "Desk Lamp", "price": "20.00", "cost_price": "7.77"})
	id := p["id"].(string)

	read := func(s *stack, path string) string {
		t.Helper()
		return want(t, s.call(t, "GET", path, "", nil), http.StatusOK).raw
	}
	paths := []string{"/api/v1/products/" + id, "/api/v1/products/desk-lamp", "/api/v1/products?category=lamps&sort=price", "/api/v1/categories"}
	for range 2 { // the first populates, the second hits
		for _, s := range []*stack{a, b} {
			for _, path := range paths {
				if body := read(s, path); !strings.Contains(body, `"price":"20.00"`) && !strings.Contains(path, "categories") {
					t.Fatalf("GET %s: %s", path, body)
				}
			}
		}
	}
	if hits := counter(t, a, "hit") + counter(t, b, "hit"); hits < 8 {
		t.Fatalf("%v cache hits while warming, want at least 8", hits)
	}

	want(t, a.call(t, "PATCH", "/api/v1/products/"+id, a.admin, map[string]any{"price": "17.50"}), http.StatusOK)
	for _, path := range paths[:3] {
		if body := read(b, path); !strings.Contains(body, `"price":"17.50"`) {
			t.Errorf("GET %s through the other instance after the update: %s", path, body)
		}
	}
	want(t, b.call(t, "PATCH", "/api/v1/categories/"+cat, b.admin, map[string]any{"name": "Lights"}), http.StatusOK)
	if body := read(a, "/api/v1/categories"); !strings.Contains(body, `"name":"Lights"`) {
		t.Errorf("tree after a rename through the other instance: %s", body)
	}
	// Stock moves are writes too: a reservation shows at once.
	want(t, a.call(t, "POST", "/internal/reservations", a.service, map[string]any{"order_id": uuid.NewString(),
		"items": []map[string]any{{"product_id": id, "quantity": 5}}}), http.StatusCreated)
	if body := read(b, "/api/v1/products/"+id); !strings.Contains(body, `"stock_quantity":0`) {
		t.Errorf("stock after a reservation through the other instance: %s", body)
	}
	want(t, a.call(t, "DELETE", "/api/v1/products/"+id, a.admin, nil), http.StatusNoContent)
	want(t, b.call(t, "GET", "/api/v1/products/"+id, "", nil), http.StatusNotFound)

	// Admin reads are never cached, and no entry holds a cost price.
	want(t, a.call(t, "GET", "/api/v1/products/"+id, a.admin, nil), http.StatusOK)
	want(t, a.call(t, "GET", "/api/v1/products?sort=price", a.admin, nil), http.StatusOK)
	keys, err := rdb.Keys(context.Background(), "catalogue:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 5 {
		t.Errorf("only %d cache keys: %v", len(keys), keys)
	}
	for _, k := range keys {
		if k == product.CacheVersionKey {
			continue
		}
		v, err := rdb.Get(context.Background(), k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(v, "cost_price") || strings.Contains(v, "7.77") {
			t.Errorf("cache entry %s holds the cost price: %s", k, v)
		}
	}
}

// counter reads catalogue_cache_requests_total{result} of a stack.
func counter(t *testing.T, s *stack, result string) float64 {
	t.Helper()
	resp, err := http.Get(s.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "catalogue_cache_requests_total{") && strings.Contains(line, `result="`+result+`"`) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				t.Fatal(err)
			}
			sum += v
		}
	}
	return sum
}

// slowCatalogue is a Backend whose product reads block until released,
// returning the price current when they started: the read that races a write.
type slowCatalogue struct {
	product.Backend
	price   atomic.Int64
	loads   atomic.Int64
	release chan struct{}
	started chan struct{}
}

func (s *slowCatalogue) GetProduct(_ context.Context, ref string, _ bool) (product.Product, error) {
	price := money.Amount(s.price.Load())
	s.loads.Add(1)
	if s.started != nil {
		s.started <- struct{}{}
		<-s.release
	}
	return product.Product{ID: ref, Price: price, Variants: []product.Variant{}}, nil
}

func (s *slowCatalogue) UpdateProduct(_ context.Context, id string, p product.ProductPatch) (product.Product, error) {
	s.price.Store(int64(*p.Price.Value))
	return product.Product{ID: id, Price: *p.Price.Value}, nil
}

// TestCacheStaleFillRace is cache-aside's classic race: a read loads the old
// price, a write commits and invalidates, then the read stores what it
// loaded. No later read may see that old price.
func TestCacheStaleFillRace(t *testing.T) {
	rdb := freshRedis(t)
	next := &slowCatalogue{release: make(chan struct{}), started: make(chan struct{})}
	next.price.Store(1000)
	svc := product.CachingMiddleware(rdb, time.Minute, log.NewNopLogger(), product.NewMetrics(metrics.NewRegistry()))(next)
	ctx := context.Background()
	id := uuid.NewString()

	stale := make(chan product.Product)
	go func() {
		p, _ := svc.GetProduct(ctx, id, false)
		stale <- p
	}()
	<-next.started // the read has missed and loaded the old price
	if _, err := svc.UpdateProduct(ctx, id, product.ProductPatch{Price: validate.Some(money.Amount(900))}); err != nil {
		t.Fatal(err)
	}
	close(next.release) // now it stores what it loaded
	next.started = nil
	if p := <-stale; p.Price != 1000 {
		t.Fatalf("the racing read returned %v", p.Price)
	}
	for range 3 {
		p, err := svc.GetProduct(ctx, id, false)
		if err != nil || p.Price != 900 {
			t.Fatalf("read after the write returned: %v, %v; want 9.00", p.Price, err)
		}
	}
	if n := next.loads.Load(); n != 2 {
		t.Errorf("%d loads, want 2: the racing one, then one fill under the new version", n)
	}
}

// TestCacheRedisDown: the cache is an optimisation; without Redis, reads
// are served from the database.
func TestCacheRedisDown(t *testing.T) {
	private := testkit.NewRedis(t)
	o := testkit.RedisOptions(t, private.Addr(), "product") // the service's own ACL user
	o.MaxRetries, o.DialTimeout = -1, 200*time.Millisecond
	rdb := redis.NewClient(o)
	t.Cleanup(func() { rdb.Close() })
	s := newStackOn(t, newDB(t), rdb)
	id := s.createProduct(t, map[string]any{"price": "3.00"})["id"].(string)
	want(t, s.call(t, "GET", "/api/v1/products/"+id, "", nil), http.StatusOK)
	if err := private.Stop(); err != nil {
		t.Fatal(err)
	}
	if r := want(t, s.call(t, "GET", "/api/v1/products/"+id, "", nil), http.StatusOK); !strings.Contains(r.raw, `"price":"3.00"`) {
		t.Errorf("read with Redis down: %s", r.raw)
	}
	want(t, s.call(t, "GET", "/api/v1/products?sort=price", "", nil), http.StatusOK)
}

// TestCacheRedisHung: a Redis that accepts connections but does not answer
// (frozen, or cut off by the network) costs a catalogue read or write at
// most the cache's own bounds, not the Redis client's timeouts. Before the
// client took deadlines from the context (app.RedisDefaults), a read waited
// 2 to 4 s for the version before going to the database, and a write 6 s
// for its invalidation: past the gateway's 5 s per attempt and the order
// service's 5 s for a reservation.
func TestCacheRedisHung(t *testing.T) {
	private := testkit.NewRedis(t)
	o := testkit.RedisOptions(t, private.Addr(), "product")
	app.RedisDefaults(o) // as app.Start runs it
	rdb := redis.NewClient(o)
	t.Cleanup(func() { rdb.Close() })
	s := newStackOn(t, newDB(t), rdb)
	id := s.createProduct(t, map[string]any{"price": "3.00"})["id"].(string)
	want(t, s.call(t, "GET", "/api/v1/products/"+id, "", nil), http.StatusOK)
	testkit.FreezeRedis(t, private)
	for _, c := range []struct {
		method, path, token string
		body                any
		status              int
	}{
		{"GET", "/api/v1/products/" + id, "", nil, http.StatusOK},
		{"PATCH", "/api/v1/products/" + id, s.admin, map[string]any{"price": "4.00"}, http.StatusOK},
	} {
		start := time.Now()
		want(t, s.call(t, c.method, c.path, c.token, c.body), c.status)
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("%s %s with Redis hung took %v, want under 2s", c.method, c.path, took.Round(100*time.Millisecond))
		}
	}
}

// TestCacheHoldsOneEntryPerRead: every write moves the version, and every
// reserved, committed or released checkout is a write. The entries of the
// versions left behind are never read again, so they must not pile up in
// Redis until their TTL: Redis runs with noeviction (the event stream shares
// it), so a cache whose size grows with the write rate times the TTL fills it
// and then refuses the event stream's writes too. However many writes came
// between, the cache holds one entry per distinct read.
func TestCacheHoldsOneEntryPerRead(t *testing.T) {
	db := newDB(t)
	rdb := freshRedis(t)
	a, b := newStackOn(t, db, rdb), newStackOn(t, db, rdb)
	cat := a.createCategory(t, "Lamps", "")
	id := a.createProduct(t, map[string]any{"category_id": cat, "name": "Desk Lamp", "price": "20.00", "stock_quantity": 100})["id"].(string)
	paths := []string{"/api/v1/products/" + id, "/api/v1/products/desk-lamp", "/api/v1/products?category=lamps", "/api/v1/categories"}
	const checkouts = 20
	for i := range checkouts {
		for _, path := range paths {
			want(t, b.call(t, "GET", path, "", nil), http.StatusOK)
		}
		want(t, a.call(t, "POST", "/internal/reservations", a.service, map[string]any{"order_id": uuid.NewString(),
			"items": []map[string]any{{"product_id": id, "quantity": 1}}}), http.StatusCreated)
		if body := want(t, b.call(t, "GET", paths[0], "", nil), http.StatusOK).raw; !strings.Contains(body, `"stock_quantity":`+strconv.Itoa(99-i)) {
			t.Fatalf("after checkout %d: %s", i+1, body)
		}
	}
	keys, err := rdb.Keys(context.Background(), "catalogue:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) > len(paths)+1 { // the entries and the version
		t.Errorf("%d cache keys after %d checkouts for %d distinct reads, want at most %d", len(keys), checkouts, len(paths), len(paths)+1)
	}
}

// TestCacheKeysDoNotGrowWithClientQueries: Redis runs with noeviction and
// holds the event stream, the denylist and the rate limits too, so the cache
// must not hold one entry per distinct list query a client can make up: a
// full page of 100 is about 58 kB, and each search text, price bound, page
// or page size was an entry of its own until its TTL, so one client within
// its rate limit kept about 180 MB in Redis, and a few of them filled it
// (then XADD, logout's SET and the rate limiter's script fail with OOM). The
// cache keeps only browsing (no search text or price range, the
// storefront's or the default page size, within the first 100 products);
// everything else comes from the database, and both answer as the database
// does.
func TestCacheKeysDoNotGrowWithClientQueries(t *testing.T) {
	db := newDB(t)
	rdb := freshRedis(t)
	cached, plain := newStackOn(t, db, rdb), newStackOn(t, db, nil)
	for i := range 30 {
		cached.createProduct(t, map[string]any{"name": "Widget " + strconv.Itoa(i), "price": strconv.Itoa(i+1) + ".00"})
	}
	var paths []string
	for i := range 20 {
		paths = append(paths,
			"/api/v1/products?q=widget+"+strconv.Itoa(i),
			"/api/v1/products?min_price=0."+strconv.Itoa(10+i)+"&sort=price",
			"/api/v1/products?max_price="+strconv.Itoa(1000+i)+".00",
			"/api/v1/products?page="+strconv.Itoa(i%7+1)+"&page_size="+strconv.Itoa(i+1),
			"/api/v1/products?sort=price&page=1&page_size="+strconv.Itoa(100-i),
			"/api/v1/products?sort=price&page="+strconv.Itoa(100+i))
	}
	browsing := []string{"/api/v1/products?page=2", "/api/v1/products?sort=price&page=3&page_size=12"}
	paths = append(paths, browsing...)
	for _, path := range paths {
		want := want(t, plain.call(t, "GET", path, "", nil), http.StatusOK).raw
		for range 2 { // the first may fill, the second may hit
			if got := cached.call(t, "GET", path, "", nil).raw; got != want {
				t.Fatalf("GET %s through the cache:\n%s\nfrom the database:\n%s", path, got, want)
			}
		}
	}
	keys, err := rdb.Keys(context.Background(), "catalogue:list:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	// page=5&page_size=12 among the made-up ones is browsing too.
	if len(keys) > len(browsing)+1 {
		t.Errorf("%d list cache entries after %d distinct list queries, want at most %d", len(keys), len(paths), len(browsing)+1)
	}
	if hits := counter(t, cached, "hit"); hits < float64(len(browsing)) {
		t.Errorf("%v cache hits, want at least %d: browsing is served from the cache", hits, len(browsing))
	}
}

// The page size the cache keeps for the storefront is the one its shop
// asks for: were they to part, every storefront listing would miss.
func TestStorefrontPageSizeIsTheShops(t *testing.T) {
	js, err := os.ReadFile("../gateway/storefront/site/shop.js")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`const PAGE_SIZE = (\d+);`).FindSubmatch(js)
	if m == nil || string(m[1]) != strconv.Itoa(product.StorefrontPageSize) {
		t.Errorf("shop.js PAGE_SIZE %q, product.StorefrontPageSize %d: they must agree", m, product.StorefrontPageSize)
	}
}

// caseVariants returns n spellings of the UUID id that differ only in the
// case of its hex letters, each of which the API accepts as id.
func caseVariants(id string, n int) []string {
	out := []string{id}
	for mask := 1; len(out) < n && mask < 1<<12; mask++ {
		b, bit := []byte(id), 0
		for i, c := range b {
			if c >= 'a' && c <= 'f' {
				if mask&(1<<bit) != 0 {
					b[i] = c - 'a' + 'A'
				}
				bit++
			}
		}
		if s := string(b); s != out[len(out)-1] && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// TestCacheKeysDoNotGrowWithIDSpellings: an id is taken in any case
// (GET /products/{id}, ?category={id}), and each spelling names the same
// product or category. The cache must hold one entry for it, not one per
// spelling a client makes up: a UUID has a dozen hex letters on average, so
// a few thousand spellings of each id, each an entry until its TTL in a
// Redis that runs with noeviction.
func TestCacheKeysDoNotGrowWithIDSpellings(t *testing.T) {
	db := newDB(t)
	rdb := freshRedis(t)
	s := newStackOn(t, db, rdb)
	cat := s.createCategory(t, "Lamps", "")
	id := s.createProduct(t, map[string]any{"category_id": cat, "name": "Desk Lamp"})["id"].(string)
	products, categories := caseVariants(id, 8), caseVariants(cat, 8)
	if len(products) < 4 || len(categories) < 4 {
		t.Fatalf("too few spellings: %v %v", products, categories)
	}
	for _, ref := range products {
		want(t, s.call(t, "GET", "/api/v1/products/"+ref, "", nil), http.StatusOK)
	}
	for _, ref := range categories {
		r := want(t, s.call(t, "GET", "/api/v1/products?category="+ref, "", nil), http.StatusOK)
		if !strings.Contains(r.raw, id) {
			t.Fatalf("GET ?category=%s: %s", ref, r.raw)
		}
	}
	for kind, spellings := range map[string]int{"product": len(products), "list": len(categories)} {
		keys, err := rdb.Keys(context.Background(), "catalogue:"+kind+":*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 {
			t.Errorf("%d %s cache entries after %d spellings of one id, want 1", len(keys), kind, spellings)
		}
	}
}

// TestCacheAfterRedisLostItsLastWrites: Redis acknowledges a write before
// it is on disk (appendfsync everysec; on ElastiCache, before a replica has
// it), so a host crash or a failover brings it back without its last
// second or so: the version counter back at a value an entry of the older
// catalogue is stored under, while the write the lost INCR followed is in
// the database. No read may take that entry for current.
func TestCacheAfterRedisLostItsLastWrites(t *testing.T) {
	private := testkit.NewRedis(t)
	o := testkit.RedisOptions(t, private.Addr(), "product")
	app.RedisDefaults(o)
	rdb := redis.NewClient(o)
	t.Cleanup(func() { rdb.Close() })
	s := newStackOn(t, newDB(t), rdb)
	id := s.createProduct(t, map[string]any{"price": "3.00"})["id"].(string)
	path := "/api/v1/products/" + id
	want(t, s.call(t, "GET", path, "", nil), http.StatusOK) // cached at 3.00

	crashRedisLosing(t, private, func() {
		want(t, s.call(t, "PATCH", path, s.admin, map[string]any{"price": "4.00"}), http.StatusOK)
		if r := want(t, s.call(t, "GET", path, "", nil), http.StatusOK); !strings.Contains(r.raw, `"price":"4.00"`) {
			t.Fatalf("read after the update: %s", r.raw)
		}
	})
	for range 2 {
		if r := want(t, s.call(t, "GET", path, "", nil), http.StatusOK); !strings.Contains(r.raw, `"price":"4.00"`) {
			t.Fatalf("read after Redis came back without its last writes: %s; want the price in the database, 4.00", r.raw)
		}
	}
}

// crashRedisLosing runs lost against r, then kills r and starts it again
// without the writes lost made: what a host crash does to an append-only
// file Redis has written but not yet synced (everysec), and what a failover
// does with writes the replica had not received.
func crashRedisLosing(t *testing.T, r *localinfra.Redis, lost func()) {
	t.Helper()
	ctx := context.Background()
	admin := redis.NewClient(testkit.RedisOptions(t, r.Addr(), localinfra.RedisAdmin))
	defer admin.Close()
	dir, err := admin.ConfigGet(ctx, "dir").Result()
	if err != nil {
		t.Fatal(err)
	}
	// The file Redis appends to now: the manifest's last incremental one.
	aofDir := filepath.Join(dir["dir"], "appendonlydir")
	manifest, err := os.ReadFile(filepath.Join(aofDir, "appendonly.aof.manifest"))
	if err != nil {
		t.Fatal(err)
	}
	var incr string
	for _, line := range strings.Split(string(manifest), "\n") {
		if f := strings.Fields(line); len(f) == 6 && f[5] == "i" {
			incr = filepath.Join(aofDir, f[1])
		}
	}
	st, err := os.Stat(incr)
	if err != nil {
		t.Fatalf("append-only file %q: %v", incr, err)
	}
	lost()
	r.Process().Kill()
	if err := os.Truncate(incr, st.Size()); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
}
