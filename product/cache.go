package product

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/shared/logging"
	"github.com/mercato-dev/mercato/shared/validate"
)

// CacheVersionKey is the Redis key of the catalogue version. Every cache
// entry holds the version it was read under; every write INCRs it after its
// transaction committed and before it returns.
const CacheVersionKey = "catalogue:version"

// CachingMiddleware keeps public catalogue reads (a product by id or slug, a
// product list, the category tree) in Redis, cache-aside, shared by every
// instance, for at most ttl.
//
// Invalidation is by version, not by key: a read first GETs the version v,
// then its entry, which is a hit only if it was stored under v; on a miss it
// loads from the service and stores the result, tagged v, in the entry.
// Every write (admin changes, reservations, the sweeper's releases) INCRs
// the version once it has committed, so every entry at once stops being a
// hit. That closes the classic race of cache-aside — a read that loaded the
// old row just before a write commits and stores it after the write
// invalidated the cache: such a read stores under the version it read before
// loading, which the write has since left behind, so no later read can take
// it for a hit (at worst it overwrites a newer entry, and the next read
// misses and loads again). A read that starts after a write returned reads
// the new version, misses, and loads from the database after the commit. If
// the INCR itself fails (Redis down right after the commit), entries can be
// stale for at most ttl; that is logged. Redis acknowledges an INCR before
// it is on disk or on a replica, so a host crash or a failover can bring
// the version back to one an older entry is stored under: an instance that
// reads a version below the highest it has seen moves it past that first
// (TestCacheAfterRedisLostItsLastWrites). An instance started since knows
// no higher version; entries can then be stale for at most ttl too.
//
// Each read has one key, whatever the version, which the next fill after a
// write overwrites: the cache holds at most one entry per distinct read, not
// one per read and version. Redis runs with noeviction (the event stream
// shares it) and every checkout is a write, so entries left behind under old
// versions until their TTL would grow with the write rate times the TTL.
//
// A ttl of 0 caches nothing on this instance, but its writes still move the
// version: the other instances, which may cache, share the version, and an
// instance that skipped it would leave their entries stale until their TTL.
//
// Only the public view is cached: admin reads (cost prices, inactive
// products) always go to the database, so admin-only fields cannot reach a
// cache entry a customer is served.
func CachingMiddleware(rdb redis.Cmdable, ttl time.Duration, logger log.Logger, m *Metrics) Middleware {
	return func(next Backend) Backend {
		c := &catalogueCache{rdb: rdb, ttl: ttl, logger: logger, m: m}
		return instance{
			Catalogue:    &cachingCatalogue{next: next, catalogueCache: c},
			Inventory:    &cachingInventory{next: next, catalogueCache: c},
			Housekeeping: &cachingHousekeeping{next: next, catalogueCache: c},
		}
	}
}

// catalogueCache is the Redis side of the cache, shared by the decorators
// of the three parts of the Backend.
type catalogueCache struct {
	rdb    redis.Cmdable
	ttl    time.Duration
	logger log.Logger
	m      *Metrics
	// seen is the highest version this instance has read or made. Redis
	// acknowledges a write before it is on disk (appendfsync everysec) or
	// on a replica, so a host crash or a failover can bring it back
	// without its last INCRs, at a version the entries of an older
	// catalogue are stored under: a version below seen is moved past it
	// before it is used.
	seen atomic.Int64
}

// cachingCatalogue serves reads from the cache and invalidates it after
// writes.
type cachingCatalogue struct {
	next Catalogue
	*catalogueCache
}

// cachingInventory invalidates the cache after reservations, which change
// stock.
type cachingInventory struct {
	next Inventory
	*catalogueCache
}

// cachingHousekeeping invalidates the cache after sweeps and seeds that
// changed something.
type cachingHousekeeping struct {
	next Housekeeping
	*catalogueCache
}

var (
	_ Catalogue    = (*cachingCatalogue)(nil)
	_ Inventory    = (*cachingInventory)(nil)
	_ Housekeeping = (*cachingHousekeeping)(nil)
)

// noVersion marks a lookup that could not read the version: nothing may be
// stored then, since the entry could not be tied to a version.
const noVersion = -1

// lookup reads the entry key of kind into dst. It returns the version the
// lookup was made under (noVersion when Redis failed) and whether it hit: an
// entry stored under another version is a miss.
func (c *catalogueCache) lookup(ctx context.Context, kind, key string, dst any) (int64, bool) {
	if c.ttl == 0 {
		return noVersion, false // caching is off here; writes still invalidate
	}
	rctx, cancel := context.WithTimeout(ctx, cacheTimeout) // both reads
	defer cancel()
	version, err := c.rdb.Get(rctx, CacheVersionKey).Int64()
	if errors.Is(err, redis.Nil) {
		version, err = 0, nil
	}
	if seen := c.seen.Load(); err == nil && version < seen {
		version, err = c.rdb.IncrBy(rctx, CacheVersionKey, seen+1-version).Result()
		if err == nil {
			level.Warn(logging.WithRequest(ctx, c.logger)).Log("msg",
				"catalogue cache: the version went back (Redis lost its last writes); moved past it", "version", version)
		}
	}
	if err != nil {
		c.failed(ctx, kind, "read cache version", err)
		return noVersion, false
	}
	c.saw(version)
	entry, err := c.rdb.Get(rctx, entryKey(kind, key)).Result()
	switch {
	case errors.Is(err, redis.Nil):
		c.m.Cache.With("kind", kind, "result", "miss").Add(1)
		return version, false
	case err != nil:
		c.failed(ctx, kind, "read cache entry", err)
		return noVersion, false
	}
	// An entry is the version it was read under, a newline, and the value's
	// JSON: the version is read without decoding the value.
	stored, value, _ := strings.Cut(entry, "\n")
	if string(stored) != strconv.FormatInt(version, 10) {
		c.m.Cache.With("kind", kind, "result", "miss").Add(1)
		return version, false
	}
	if err := json.Unmarshal([]byte(value), dst); err != nil {
		c.failed(ctx, kind, "decode cache entry", err)
		return version, false // overwritten by the fresh load
	}
	c.m.Cache.With("kind", kind, "result", "hit").Add(1)
	return version, true
}

// store keeps v as the entry key of kind, read under version.
func (c *catalogueCache) store(ctx context.Context, version int64, kind, key string, v any) {
	if version == noVersion {
		return
	}
	value, err := json.Marshal(v)
	if err != nil {
		c.failed(ctx, kind, "encode cache entry", err)
		return
	}
	b := append(strconv.AppendInt(make([]byte, 0, 21+len(value)), version, 10), '\n')
	b = append(b, value...)
	ctx, cancel := context.WithTimeout(ctx, cacheTimeout)
	defer cancel()
	if err := c.rdb.Set(ctx, entryKey(kind, key), b, c.ttl).Err(); err != nil {
		c.failed(ctx, kind, "write cache entry", err)
	}
}

// cacheTimeout bounds the cache's Redis calls (a lookup's two reads
// together, a store, each try of an invalidation), so a Redis that hangs
// costs a read or a write far less than the gateway's 5 s per attempt and
// the order service's 5 s for a reservation. Redis answers in well under a
// millisecond when it answers.
const cacheTimeout = 500 * time.Millisecond

func (c *catalogueCache) failed(ctx context.Context, kind, what string, err error) {
	c.m.Cache.With("kind", kind, "result", "error").Add(1)
	level.Warn(logging.WithRequest(ctx, c.logger)).Log("msg", "catalogue cache: "+what+"; served from the database", "err", err)
}

func entryKey(kind, key string) string {
	return "catalogue:" + kind + ":" + key
}

// saw records that the version has reached version.
func (c *catalogueCache) saw(version int64) {
	for {
		seen := c.seen.Load()
		if version <= seen || c.seen.CompareAndSwap(seen, version) {
			return
		}
	}
}

// invalidate moves the catalogue to a new version. It runs even when the
// caller has gone away: the write it follows has committed.
func (c *catalogueCache) invalidate(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	var err error
	for range 3 { // a try that timed out may have landed: one more INCR is harmless
		try, cancel := context.WithTimeout(ctx, cacheTimeout)
		var version int64
		version, err = c.rdb.Incr(try, CacheVersionKey).Result()
		cancel()
		if err == nil {
			c.saw(version)
			return
		}
	}
	c.m.Cache.With("kind", "invalidate", "result", "error").Add(1)
	level.Error(logging.WithRequest(ctx, c.logger)).Log("msg",
		"catalogue cache: cannot invalidate after a write; cached reads may be stale until their TTL", "err", err)
}

func (mw *cachingCatalogue) ListCategories(ctx context.Context) ([]CategoryNode, error) {
	var tree []CategoryNode
	version, hit := mw.lookup(ctx, "categories", "tree", &tree)
	if hit {
		return tree, nil
	}
	tree, err := mw.next.ListCategories(ctx)
	if err == nil {
		mw.store(ctx, version, "categories", "tree", tree)
	}
	return tree, err
}

func (mw *cachingCatalogue) ListProducts(ctx context.Context, q ProductQuery) (ProductPage, error) {
	if !listCached(q) {
		return mw.next.ListProducts(ctx, q)
	}
	key := listKey(canonicalQuery(q))
	var page ProductPage
	version, hit := mw.lookup(ctx, "list", key, &page)
	if hit {
		return page, nil
	}
	page, err := mw.next.ListProducts(ctx, q)
	if err == nil {
		for i := range page.Items {
			page.Items[i].CostPrice = nil // already so; the cache must never hold it
		}
		mw.store(ctx, version, "list", key, page)
	}
	return page, err
}

// listCached reports whether the cache keeps q's page. Redis runs with
// noeviction, beside the event stream, the denylist and the rate limits,
// so the cache must not hold an entry per query a client makes up: each
// search text, price bound, page number and page size was one, of up to
// 100 products (about 60 kB) until the TTL, so one client within its rate
// limit kept about 180 MB in Redis, and a few of them filled it (XADD,
// logout's SET and the rate limiter's script then fail with OOM). Only
// browsing is cached: no search text or price range, the storefront's page
// size or the API's default, within the first 100 products. The entries are
// then as many as the catalogue's categories, orders and flags times 13,
// whatever clients send; everything else goes to the database.
func listCached(q ProductQuery) bool {
	return !q.Admin && q.Q == "" && q.MinPrice == nil && q.MaxPrice == nil &&
		(q.PageSize == StorefrontPageSize || q.PageSize == validate.DefaultPageSize) &&
		q.Page >= 1 && q.Page*q.PageSize <= validate.MaxPageSize
}

// StorefrontPageSize is the page size of the storefront's product lists
// (gateway/storefront/site/shop.js, PAGE_SIZE).
const StorefrontPageSize = 12

// canonicalQuery is q with its category, when an id, in the one form
// (validate.ParseUUID) that every spelling of it names: the API takes an id
// in any case, and a UUID has a dozen letters, so a client could otherwise
// make thousands of entries of one list.
func canonicalQuery(q ProductQuery) ProductQuery {
	if id, ok := validate.ParseUUID(q.Category); ok {
		q.Category = id
	}
	return q
}

// listKey identifies a public list query: the hash of its canonical JSON
// (field order is fixed by the struct), so any q fits in a short key.
func listKey(q ProductQuery) string {
	b, _ := json.Marshal(q) // a struct of strings, numbers and amounts: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

func (mw *cachingCatalogue) GetProduct(ctx context.Context, ref string, admin bool) (Product, error) {
	// One entry per product: an id in its canonical form, whatever the case
	// a client spells it in, else the slug.
	key, isID := validate.ParseUUID(ref)
	if admin || !isID && !ValidSlug(ref) {
		return mw.next.GetProduct(ctx, ref, admin)
	}
	if !isID {
		key = ref
	}
	var p Product
	version, hit := mw.lookup(ctx, "product", key, &p)
	if hit {
		return p, nil
	}
	p, err := mw.next.GetProduct(ctx, ref, false)
	if err == nil {
		p.CostPrice = nil // already so; the cache must never hold it
		mw.store(ctx, version, "product", key, p)
	}
	return p, err
}

// Writes: the call, then the new version.

func (mw *cachingCatalogue) CreateCategory(ctx context.Context, in CategoryInput) (Category, error) {
	defer mw.invalidate(ctx)
	return mw.next.CreateCategory(ctx, in)
}

func (mw *cachingCatalogue) UpdateCategory(ctx context.Context, id string, p CategoryPatch) (Category, error) {
	defer mw.invalidate(ctx)
	return mw.next.UpdateCategory(ctx, id, p)
}

func (mw *cachingCatalogue) DeleteCategory(ctx context.Context, id string) error {
	defer mw.invalidate(ctx)
	return mw.next.DeleteCategory(ctx, id)
}

func (mw *cachingCatalogue) CreateProduct(ctx context.Context, in ProductInput) (Product, error) {
	defer mw.invalidate(ctx)
	return mw.next.CreateProduct(ctx, in)
}

func (mw *cachingCatalogue) UpdateProduct(ctx context.Context, id string, p ProductPatch) (Product, error) {
	defer mw.invalidate(ctx)
	return mw.next.UpdateProduct(ctx, id, p)
}

func (mw *cachingCatalogue) DeactivateProduct(ctx context.Context, id string) error {
	defer mw.invalidate(ctx)
	return mw.next.DeactivateProduct(ctx, id)
}

func (mw *cachingCatalogue) CreateVariant(ctx context.Context, productID string, in VariantInput) (Variant, error) {
	defer mw.invalidate(ctx)
	return mw.next.CreateVariant(ctx, productID, in)
}

func (mw *cachingCatalogue) UpdateVariant(ctx context.Context, productID, variantID string, p VariantPatch) (Variant, error) {
	defer mw.invalidate(ctx)
	return mw.next.UpdateVariant(ctx, productID, variantID, p)
}

func (mw *cachingCatalogue) AdjustStock(ctx context.Context, productID string, a StockAdjustment) (Product, error) {
	defer mw.invalidate(ctx)
	return mw.next.AdjustStock(ctx, productID, a)
}

// Reservations change stock, which product reads and the in_stock filter
// show, so they are writes like any other.

func (mw *cachingInventory) Reserve(ctx context.Context, r ReservationRequest) (Reservation, bool, error) {
	defer mw.invalidate(ctx)
	return mw.next.Reserve(ctx, r)
}

func (mw *cachingInventory) CommitReservation(ctx context.Context, orderID string) (Reservation, error) {
	// A commit that finds its reservation expired releases it, so even a
	// failed commit may have changed stock.
	defer mw.invalidate(ctx)
	return mw.next.CommitReservation(ctx, orderID)
}

func (mw *cachingInventory) ReleaseReservation(ctx context.Context, orderID string) (Reservation, error) {
	defer mw.invalidate(ctx)
	return mw.next.ReleaseReservation(ctx, orderID)
}

func (mw *cachingInventory) GetReservation(ctx context.Context, orderID string) (Reservation, error) {
	return mw.next.GetReservation(ctx, orderID)
}

func (mw *cachingHousekeeping) ReleaseExpired(ctx context.Context) (int, error) {
	n, err := mw.next.ReleaseExpired(ctx)
	if n > 0 { // the sweeper runs every few seconds; most runs change nothing
		mw.invalidate(ctx)
	}
	return n, err
}

func (mw *cachingHousekeeping) CountLowStock(ctx context.Context) (int, error) {
	return mw.next.CountLowStock(ctx)
}

func (mw *cachingHousekeeping) SeedDemo(ctx context.Context) (bool, error) {
	seeded, err := mw.next.SeedDemo(ctx)
	if seeded {
		mw.invalidate(ctx)
	}
	return seeded, err
}
