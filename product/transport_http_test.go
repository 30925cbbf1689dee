package product_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/product"
	"github.com/mercato-dev/mercato/product/postgres"
	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/metrics"
	"github.com/mercato-dev/mercato/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const secret = "0123456789abcdef0123456789abcdef"

// clock moves a database's reservations back in time, as waiting would:
// their expiry is the database's clock's, which a test cannot set.
type clock struct {
	t  testing.TB
	db *sqlx.DB
}

// Advance makes every reservation d older.
func (c *clock) Advance(d time.Duration) {
	c.t.Helper()
	if _, err := c.db.Exec(`UPDATE inventory_reservations SET expires_at = expires_at - make_interval(secs => $1)`, d.Seconds()); err != nil {
		c.t.Fatal(err)
	}
}

// stack is the whole product service over HTTP: real router, endpoints,
// middlewares and service on a fresh, migrated PostgreSQL database, with
// the Redis cache when one is given.
type stack struct {
	srv      *httptest.Server
	hits     *atomic.Int64 // requests served
	db       *sqlx.DB
	svc      product.Backend
	reg      *prometheus.Registry // the service's metrics
	tokens   *auth.Tokens
	clock    *clock
	admin    string // bearer tokens
	customer string
	service  string
}

func newDB(t testing.TB) *sqlx.DB {
	t.Helper()
	db := testkit.Postgres(t)
	if err := postgres.Schema.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	return db
}

func newStack(t testing.TB) *stack {
	t.Helper()
	return newStackOn(t, newDB(t), nil)
}

// newStackOn serves the service on db, which may be shared with another
// stack (several instances of one service), caching in rdb when not nil.
func newStackOn(t testing.TB, db *sqlx.DB, rdb *redis.Client) *stack {
	t.Helper()
	tokens, err := auth.NewTokens([]byte(secret), 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	logger := log.NewNopLogger()
	reg := metrics.NewRegistry()
	m := product.NewMetrics(reg)
	svc := product.NewService(postgres.New(db), product.Options{})
	if rdb != nil {
		svc = product.CachingMiddleware(rdb, time.Minute, logger, m)(svc)
	}
	svc = product.LoggingMiddleware(logger)(svc)
	svc = product.InstrumentingMiddleware(m)(svc)
	router := httpkit.Router(logger, reg, metrics.NewHTTP(reg, "product"), nil)
	product.MakeHTTPHandler(router, product.MakeServerEndpoints(svc, tokens), logger)
	hits := new(atomic.Int64)
	handler := httpkit.Handler(logger, router)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s := &stack{srv: srv, hits: hits, db: db, svc: svc, reg: reg, tokens: tokens, clock: &clock{t: t, db: db}}
	s.admin = s.token(t, auth.RoleAdmin)
	s.customer = s.token(t, auth.RoleCustomer)
	s.service, err = tokens.ServiceToken("order")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *stack) token(t testing.TB, role auth.Role) string {
	t.Helper()
	tok, err := s.tokens.Issue(auth.Identity{UserID: uuid.NewString(), Email: string(role) + "@example.com", Role: role})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// call sends body (a string is sent as is, anything else as JSON) to path
// (from the root: /api/v1/… or /internal/…) with the bearer token, if any.
func (s *stack) call(t *testing.T, method, path, token string, body any) response {
	t.Helper()
	return s.callType(t, method, path, token, body, "application/json")
}

func (s *stack) callType(t *testing.T, method, path, token string, body any, contentType string) response {
	t.Helper()
	req := testkit.NewRequest(t, method, s.srv.URL+path, token, body)
	if req.Body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	r := testkit.Do(t, req)
	return response{status: r.Status, header: r.Header, raw: r.Body, body: r.Object(t)}
}

func want(t *testing.T, r response, status int) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	return r
}

func errorCode(r response) string {
	e, _ := r.body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func obj(r response, key string) map[string]any {
	m, _ := r.body[key].(map[string]any)
	return m
}

func (s *stack) createCategory(t *testing.T, name string, parent string) string {
	t.Helper()
	body := map[string]any{"name": name}
	if parent != "" {
		body["parent_id"] = parent
	}
	r := want(t, s.call(t, "POST", "/api/v1/categories", s.admin, body), http.StatusCreated)
	return obj(r, "category")["id"].(string)
}

// createProduct creates a product from the defaults overridden by fields
// and returns its JSON.
func (s *stack) createProduct(t *testing.T, fields map[string]any) map[string]any {
	t.Helper()
	body := map[string]any{"name": "Widget " + uuid.NewString()[:8], "sku": "SKU-" + uuid.NewString()[:8],
		"price": "10.00", "stock_quantity": 5}
	for k, v := range fields {
		body[k] = v
	}
	r := want(t, s.call(t, "POST", "/api/v1/products", s.admin, body), http.StatusCreated)
	return obj(r, "product")
}

func (s *stack) createVariant(t *testing.T, productID string, fields map[string]any) map[string]any {
	t.Helper()
	body := map[string]any{"name": "Variant", "sku": "VAR-" + uuid.NewString()[:8], "price": "12.00", "stock_quantity": 3}
	for k, v := range fields {
		body[k] = v
	}
	r := want(t, s.call(t, "POST", "/api/v1/products/"+productID+"/variants", s.admin, body), http.StatusCreated)
	return obj(r, "variant")
}

// stockOf reads available stock straight from the database.
func (s *stack) stockOf(t *testing.T, table, id string) int {
	t.Helper()
	var n int
	if err := s.db.Get(&n, `SELECT stock_quantity FROM `+table+` WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	return n
}

func ids(items []any) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.(map[string]any)["id"].(string))
	}
	return out
}

func TestHTTPCatalogue(t *testing.T) {
	s := newStack(t)

	// Categories: a tree, slugs derived from names.
	electronics := s.createCategory(t, "Electronics", "")
	phones := s.createCategory(t, "Phones & Tablets", electronics)
	books := s.createCategory(t, "Books", "")
	r := want(t, s.call(t, "GET", "/api/v1/categories", "", nil), http.StatusOK)
	tree := r.body["items"].([]any)
	if len(tree) != 2 {
		t.Fatalf("roots: %s", r.raw)
	}
	first := tree[0].(map[string]any) // sorted by name: Books, Electronics
	second := tree[1].(map[string]any)
	if first["id"] != books || second["id"] != electronics || len(first["children"].([]any)) != 0 {
		t.Fatalf("tree: %s", r.raw)
	}
	child := second["children"].([]any)[0].(map[string]any)
	if child["id"] != phones || child["slug"] != "phones-tablets" || child["parent_id"] != electronics {
		t.Errorf("child: %v", child)
	}

	r = want(t, s.call(t, "PATCH", "/api/v1/categories/"+phones, s.admin, map[string]any{"name": "Phones", "slug": "phones"}), http.StatusOK)
	if c := obj(r, "category"); c["name"] != "Phones" || c["slug"] != "phones" || c["parent_id"] != electronics {
		t.Errorf("patched category: %s", r.raw)
	}

	// A product with every field, as an admin sees it and as a customer does.
	p := s.createProduct(t, map[string]any{
		"category_id": phones, "name": "Aurora X1 Smartphone", "sku": "AUR-X1", "price": "699.00",
		"compare_price": "799.99", "cost_price": "350.10", "stock_quantity": 40, "min_stock_quantity": 5,
		"weight": 0.25, "dimensions": map[string]any{"length": 15, "width": 7.5, "height": 0.8},
		"images": []string{"https://img.example.com/x1.jpg"}, "is_featured": true,
		"short_description": "A phone.", "description": "A very good phone with a camera.",
	})
	id := p["id"].(string)
	for k, v := range map[string]any{"slug": "aurora-x1-smartphone", "price": "699.00", "compare_price": "799.99",
		"cost_price": "350.10", "currency": "USD", "stock_quantity": float64(40), "weight": 0.25,
		"is_active": true, "is_featured": true, "category_id": phones} {
		if p[k] != v {
			t.Errorf("created product %s = %v, want %v", k, p[k], v)
		}
	}
	if d := p["dimensions"].(map[string]any); d["unit"] != "cm" || d["width"] != 7.5 {
		t.Errorf("dimensions = %v", d)
	}
	if vs := p["variants"].([]any); len(vs) != 0 {
		t.Errorf("variants = %v", vs)
	}

	black := s.createVariant(t, id, map[string]any{"name": "Aurora X1 Black 256GB", "sku": "AUR-X1-B256",
		"price": "799.00", "stock_quantity": 7, "attributes": map[string]string{"colour": "black", "storage": "256GB"}})
	hidden := s.createVariant(t, id, map[string]any{"name": "Aurora X1 Prototype", "is_active": false})
	if black["price"] != "799.00" || black["stock_quantity"] != float64(7) || black["product_id"] != id ||
		black["attributes"].(map[string]any)["colour"] != "black" || hidden["is_active"] != false {
		t.Errorf("variants: %v %v", black, hidden)
	}

	for _, ref := range []string{id, "aurora-x1-smartphone", strings.ToUpper(id)} {
		r = want(t, s.call(t, "GET", "/api/v1/products/"+ref, "", nil), http.StatusOK)
		got := obj(r, "product")
		if got["id"] != id || strings.Contains(r.raw, "cost_price") || strings.Contains(r.raw, "350.10") {
			t.Errorf("public GET %s: %s", ref, r.raw)
		}
		if vs := got["variants"].([]any); len(vs) != 1 || vs[0].(map[string]any)["id"] != black["id"] {
			t.Errorf("public variants: %v", vs)
		}
	}
	r = want(t, s.call(t, "GET", "/api/v1/products/"+id, s.admin, nil), http.StatusOK)
	if got := obj(r, "product"); got["cost_price"] != "350.10" || len(got["variants"].([]any)) != 2 {
		t.Errorf("admin GET: %s", r.raw)
	}
	r = want(t, s.call(t, "GET", "/api/v1/products/"+id, s.customer, nil), http.StatusOK)
	if strings.Contains(r.raw, "cost_price") {
		t.Errorf("customer sees the cost price: %s", r.raw)
	}

	// Partial update: only what is given changes; null clears.
	r = want(t, s.call(t, "PATCH", "/api/v1/products/"+id, s.admin, map[string]any{"price": "649.50", "compare_price": nil, "weight": nil}), http.StatusOK)
	got := obj(r, "product")
	if got["price"] != "649.50" || got["compare_price"] != nil || got["weight"] != nil || got["name"] != "Aurora X1 Smartphone" || got["cost_price"] != "350.10" {
		t.Errorf("patched: %s", r.raw)
	}
	r = want(t, s.call(t, "PATCH", "/api/v1/products/"+id+"/variants/"+black["id"].(string), s.admin, map[string]any{"price": "749.00", "is_active": false}), http.StatusOK)
	if v := obj(r, "variant"); v["price"] != "749.00" || v["is_active"] != false || v["sku"] != "AUR-X1-B256" {
		t.Errorf("patched variant: %s", r.raw)
	}

	// Stock adjustments, to the product and to a variant, go to the ledger.
	r = want(t, s.call(t, "POST", "/api/v1/products/"+id+"/stock", s.admin, map[string]any{"delta": -15, "reason": "damaged in storage"}), http.StatusOK)
	if obj(r, "product")["stock_quantity"] != float64(25) {
		t.Errorf("after -15: %s", r.raw)
	}
	want(t, s.call(t, "POST", "/api/v1/products/"+id+"/stock", s.admin, map[string]any{"variant_id": hidden["id"], "delta": 4, "reason": "delivery 42"}), http.StatusOK)
	if n := s.stockOf(t, "product_variants", hidden["id"].(string)); n != 7 {
		t.Errorf("hidden variant stock %d, want 7", n)
	}
	r = want(t, s.call(t, "POST", "/api/v1/products/"+id+"/stock", s.admin, map[string]any{"delta": -26, "reason": "too many"}), http.StatusConflict)
	if errorCode(r) != "out_of_stock" || obj(r, "error")["details"].(map[string]any)["available"] != float64(25) {
		t.Errorf("over-withdrawal: %s", r.raw)
	}
	var ledger []struct {
		Delta     int    `db:"delta"`
		Reason    string `db:"reason"`
		Reference string `db:"reference"`
	}
	if err := s.db.Select(&ledger, `SELECT delta, reason, reference FROM stock_movements WHERE product_id = $1 AND variant_id IS NULL ORDER BY id`, id); err != nil {
		t.Fatal(err)
	}
	if len(ledger) != 2 || ledger[0].Delta != 40 || ledger[0].Reason != "initial" || ledger[1].Delta != -15 ||
		ledger[1].Reason != "adjust" || ledger[1].Reference != "damaged in storage" {
		t.Errorf("ledger: %+v", ledger)
	}

	// Delete is deactivation: gone for customers, there for admins.
	want(t, s.call(t, "DELETE", "/api/v1/products/"+id, s.admin, nil), http.StatusNoContent)
	want(t, s.call(t, "GET", "/api/v1/products/"+id, "", nil), http.StatusNotFound)
	want(t, s.call(t, "GET", "/api/v1/products/aurora-x1-smartphone", s.customer, nil), http.StatusNotFound)
	r = want(t, s.call(t, "GET", "/api/v1/products/"+id, s.admin, nil), http.StatusOK)
	if obj(r, "product")["is_active"] != false {
		t.Errorf("deactivated: %s", r.raw)
	}

	// A category that holds products or sub-categories is not deleted.
	r = want(t, s.call(t, "DELETE", "/api/v1/categories/"+electronics, s.admin, nil), http.StatusConflict)
	if errorCode(r) != "category_not_empty" {
		t.Errorf("delete parent: %s", r.raw)
	}
	want(t, s.call(t, "DELETE", "/api/v1/categories/"+phones, s.admin, nil), http.StatusConflict)
	want(t, s.call(t, "PATCH", "/api/v1/products/"+id, s.admin, map[string]any{"category_id": books}), http.StatusOK)
	want(t, s.call(t, "DELETE", "/api/v1/categories/"+phones, s.admin, nil), http.StatusNoContent)
	want(t, s.call(t, "DELETE", "/api/v1/categories/"+phones, s.admin, nil), http.StatusNotFound)
	want(t, s.call(t, "DELETE", "/api/v1/categories/"+electronics, s.admin, nil), http.StatusNoContent)

	// Moving a category below its own descendant is refused.
	a := s.createCategory(t, "A", "")
	b := s.createCategory(t, "B", a)
	c := s.createCategory(t, "C", b)
	for _, parent := range []string{a, c} {
		r = want(t, s.call(t, "PATCH", "/api/v1/categories/"+a, s.admin, map[string]any{"parent_id": parent}), http.StatusUnprocessableEntity)
		if errorCode(r) != "category_cycle" {
			t.Errorf("cycle via %s: %s", parent, r.raw)
		}
	}
	r = want(t, s.call(t, "PATCH", "/api/v1/categories/"+c, s.admin, map[string]any{"parent_id": nil}), http.StatusOK)
	if obj(r, "category")["parent_id"] != nil {
		t.Errorf("to root: %s", r.raw)
	}

	// Product events went to the outbox with the changes.
	var types []string
	if err := s.db.Select(&types, `SELECT type FROM outbox ORDER BY created_at`); err != nil {
		t.Fatal(err)
	}
	if strings.Join(types, ",") != "product.created,product.updated,product.updated,product.updated,product.updated,product.updated,product.updated,product.updated,product.updated" {
		t.Errorf("outbox: %v", types)
	}
}

func TestHTTPListing(t *testing.T) {
	s := newStack(t)
	root := s.createCategory(t, "Home", "")
	kitchen := s.createCategory(t, "Kitchen", root)
	pans := s.createCategory(t, "Pans", kitchen)
	garden := s.createCategory(t, "Garden", "")

	p1 := s.createProduct(t, map[string]any{"category_id": pans, "name": "Iron Skillet", "price": "5.00", "stock_quantity": 0})["id"].(string)
	p2 := s.createProduct(t, map[string]any{"category_id": kitchen, "name": "Chef Knife", "price": "15.00", "stock_quantity": 3, "is_featured": true})["id"].(string)
	p3 := s.createProduct(t, map[string]any{"category_id": root, "name": "Apron", "price": "25.00", "stock_quantity": 0})["id"].(string)
	v3 := s.createVariant(t, p3, map[string]any{"stock_quantity": 2})["id"].(string)
	p4 := s.createProduct(t, map[string]any{"category_id": garden, "name": "Blue Watering Can", "price": "35.00", "stock_quantity": 1,
		"description": "Holds ten litres of water for thirsty kettle plants."})["id"].(string)
	p5 := s.createProduct(t, map[string]any{"category_id": root, "name": "Hidden Thing", "price": "1.00", "is_active": false})["id"].(string)

	list := func(query, token string) ([]string, int) {
		t.Helper()
		r := want(t, s.call(t, "GET", "/api/v1/products?"+query, token, nil), http.StatusOK)
		return ids(r.body["items"].([]any)), int(r.body["total"].(float64))
	}
	tests := []struct {
		query string
		token string
		want  []string
		total int
	}{
		{"category=home&sort=price", "", []string{p1, p2, p3}, 3},
		{"category=" + kitchen + "&sort=price", "", []string{p1, p2}, 2},
		{"category=pans", "", []string{p1}, 1},
		{"q=kettle", "", []string{p4}, 1},
		{"q=skillet+OR+knife&sort=price", "", []string{p1, p2}, 2},
		{"q=nothing-like-it", "", nil, 0},
		{"min_price=10&max_price=30&sort=price", "", []string{p2, p3}, 2},
		{"min_price=25.00&sort=price", "", []string{p3, p4}, 2},
		{"in_stock=true&sort=price", "", []string{p2, p3, p4}, 3},
		{"in_stock=false&sort=price", "", []string{p1, p2, p3, p4}, 4},
		{"featured=true", "", []string{p2}, 1},
		{"sort=-price", "", []string{p4, p3, p2, p1}, 4},
		{"sort=name", "", []string{p3, p4, p2, p1}, 4},
		{"sort=-created_at", "", []string{p4, p3, p2, p1}, 4},
		{"", "", []string{p4, p3, p2, p1}, 4},
		{"sort=price&page=2&page_size=3", "", []string{p4}, 4},
		{"sort=price&page=9", "", nil, 4},
		{"category=home&in_stock=true&min_price=20", "", []string{p3}, 1},
		{"sort=price", s.customer, []string{p1, p2, p3, p4}, 4},
		{"sort=price", s.admin, []string{p5, p1, p2, p3, p4}, 5},
	}
	for _, tc := range tests {
		got, total := list(tc.query, tc.token)
		if strings.Join(got, ",") != strings.Join(tc.want, ",") || total != tc.total {
			t.Errorf("?%s: got %v (total %d), want %v (total %d)", tc.query, got, total, tc.want, tc.total)
		}
	}

	r := want(t, s.call(t, "GET", "/api/v1/products?sort=price&page=2&page_size=3", "", nil), http.StatusOK)
	if r.body["page"] != float64(2) || r.body["page_size"] != float64(3) || r.body["total"] != float64(4) {
		t.Errorf("list envelope: %s", r.raw)
	}
	if strings.Contains(r.raw, "cost_price") {
		t.Errorf("public list shows cost prices: %s", r.raw)
	}
	r = want(t, s.call(t, "GET", "/api/v1/products?sort=price&page=9", "", nil), http.StatusOK)
	if !strings.Contains(r.raw, `"items":[]`) {
		t.Errorf("past the end: %s", r.raw)
	}
	r = want(t, s.call(t, "GET", "/api/v1/products?category=home&sort=price", "", nil), http.StatusOK)
	apron := r.body["items"].([]any)[2].(map[string]any)
	if vs := apron["variants"].([]any); len(vs) != 1 || vs[0].(map[string]any)["id"] != v3 {
		t.Errorf("list items carry their variants: %v", apron)
	}

	// The apron is in stock only through its variant: deactivating it, or
	// selling its stock, takes the apron out of in_stock.
	want(t, s.call(t, "PATCH", "/api/v1/products/"+p3+"/variants/"+v3, s.admin, map[string]any{"is_active": false}), http.StatusOK)
	if got, _ := list("in_stock=true&sort=price", ""); strings.Join(got, ",") != strings.Join([]string{p2, p4}, ",") {
		t.Errorf("in_stock after deactivating the variant: %v", got)
	}
	want(t, s.call(t, "PATCH", "/api/v1/products/"+p3+"/variants/"+v3, s.admin, map[string]any{"is_active": true}), http.StatusOK)
	want(t, s.call(t, "POST", "/internal/reservations", s.service, map[string]any{"order_id": uuid.NewString(),
		"items": []map[string]any{{"product_id": p3, "variant_id": v3, "quantity": 2}}}), http.StatusCreated)
	if got, _ := list("in_stock=true&sort=price", ""); strings.Join(got, ",") != strings.Join([]string{p2, p4}, ",") {
		t.Errorf("in_stock after selling the variant out: %v", got)
	}
}

// mustSucceed is every route an admin (or, for /internal, a service) may
// call, with a valid body.
func TestHTTPAuthorization(t *testing.T) {
	s := newStack(t)
	cat := s.createCategory(t, "Cat", "")
	p := s.createProduct(t, map[string]any{"cost_price": "3.21", "stock_quantity": 10})
	id := p["id"].(string)
	v := s.createVariant(t, id, nil)["id"].(string)
	order := uuid.NewString()
	want(t, s.call(t, "POST", "/internal/reservations", s.service, map[string]any{"order_id": order,
		"items": []map[string]any{{"product_id": id, "quantity": 1}}}), http.StatusCreated)

	expired, err := func() (string, error) {
		old, err := auth.NewTokens([]byte(secret), time.Nanosecond)
		if err != nil {
			return "", err
		}
		return old.Issue(auth.Identity{UserID: uuid.NewString(), Role: auth.RoleAdmin})
	}()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // past the nanosecond

	adminRoutes := []struct {
		method, path string
		body         any
	}{
		{"POST", "/api/v1/categories", map[string]any{"name": "New"}},
		{"PATCH", "/api/v1/categories/" + cat, map[string]any{"name": "Renamed"}},
		{"DELETE", "/api/v1/categories/" + cat, nil},
		{"POST", "/api/v1/products", map[string]any{"name": "N", "sku": "N-1", "price": "1.00"}},
		{"PATCH", "/api/v1/products/" + id, map[string]any{"price": "0.01"}},
		{"DELETE", "/api/v1/products/" + id, nil},
		{"POST", "/api/v1/products/" + id + "/variants", map[string]any{"name": "V", "sku": "V-1", "price": "1.00"}},
		{"PATCH", "/api/v1/products/" + id + "/variants/" + v, map[string]any{"price": "0.01"}},
		{"POST", "/api/v1/products/" + id + "/stock", map[string]any{"delta": 5, "reason": "r"}},
	}
	internalRoutes := []struct {
		method, path string
		body         any
	}{
		{"POST", "/internal/reservations", map[string]any{"order_id": uuid.NewString(), "items": []map[string]any{{"product_id": id, "quantity": 1}}}},
		{"GET", "/internal/reservations/" + order, nil},
		{"POST", "/internal/reservations/" + order + "/commit", nil},
		{"POST", "/internal/reservations/" + order + "/release", nil},
	}
	check := func(method, path string, body any, token string, status int, code string) {
		t.Helper()
		r := s.call(t, method, path, token, body)
		if r.status != status || errorCode(r) != code {
			t.Errorf("%s %s: %d %q, want %d %q: %s", method, path, r.status, errorCode(r), status, code, r.raw)
		}
	}
	before := rowCounts(t, s.db)
	for _, rt := range adminRoutes {
		check(rt.method, rt.path, rt.body, s.customer, 403, "forbidden")
		check(rt.method, rt.path, rt.body, s.service, 403, "forbidden")
		check(rt.method, rt.path, rt.body, "", 401, "unauthenticated")
		check(rt.method, rt.path, rt.body, "garbage", 401, "unauthenticated")
		check(rt.method, rt.path, rt.body, expired, 401, "token_expired")
	}
	for _, rt := range internalRoutes {
		check(rt.method, rt.path, rt.body, s.customer, 403, "forbidden")
		check(rt.method, rt.path, rt.body, "", 401, "unauthenticated")
	}
	// Public reads: anyone, but a token that is sent must be valid.
	check("GET", "/api/v1/products", nil, "garbage", 401, "unauthenticated")
	check("GET", "/api/v1/products/"+id, nil, expired, 401, "token_expired")
	check("GET", "/api/v1/categories", nil, "garbage", 401, "unauthenticated")
	if after := rowCounts(t, s.db); !equalCounts(before, after) {
		t.Errorf("refused requests wrote: before %v, after %v", before, after)
	}

	// The cost price is for admins only, in every read.
	for _, path := range []string{"/api/v1/products/" + id, "/api/v1/products", "/api/v1/products?sort=price"} {
		for _, tok := range []string{"", s.customer, s.service} {
			if r := want(t, s.call(t, "GET", path, tok, nil), http.StatusOK); strings.Contains(r.raw, "cost_price") || strings.Contains(r.raw, "3.21") {
				t.Errorf("GET %s as %.10q shows the cost price: %s", path, tok, r.raw)
			}
		}
		if r := want(t, s.call(t, "GET", path, s.admin, nil), http.StatusOK); !strings.Contains(r.raw, `"cost_price":"3.21"`) {
			t.Errorf("GET %s as admin lacks the cost price: %s", path, r.raw)
		}
	}

	// And the writes do work for their role.
	for _, rt := range internalRoutes {
		if r := s.call(t, rt.method, rt.path, s.service, rt.body); r.status >= 300 {
			t.Errorf("service %s %s: %d %s", rt.method, rt.path, r.status, r.raw)
		}
	}
	for _, rt := range adminRoutes {
		if r := s.call(t, rt.method, rt.path, s.admin, rt.body); r.status >= 300 {
			t.Errorf("admin %s %s: %d %s", rt.method, rt.path, r.status, r.raw)
		}
	}
}

// rowCounts counts every table a request could write to, and sums what an
// update could change.
func rowCounts(t *testing.T, db *sqlx.DB) map[string]int {
	t.Helper()
	out := map[string]int{}
	for name, query := range map[string]string{
		"categories":          `SELECT count(*) FROM categories`,
		"products":            `SELECT count(*) FROM products`,
		"variants":            `SELECT count(*) FROM product_variants`,
		"reservations":        `SELECT count(*) FROM inventory_reservations`,
		"reservation items":   `SELECT count(*) FROM reservation_items`,
		"ledger":              `SELECT count(*) FROM stock_movements`,
		"outbox":              `SELECT count(*) FROM outbox`,
		"product stock":       `SELECT coalesce(sum(stock_quantity), 0) FROM products`,
		"variant stock":       `SELECT coalesce(sum(stock_quantity), 0) FROM product_variants`,
		"products updated":    `SELECT count(*) FROM products WHERE updated_at <> created_at`,
		"variants updated":    `SELECT count(*) FROM product_variants WHERE updated_at <> created_at`,
		"categories updated":  `SELECT count(*) FROM categories WHERE updated_at <> created_at`,
		"reservations status": `SELECT count(*) FROM inventory_reservations WHERE status <> 'reserved'`,
	} {
		var n int
		if err := db.Get(&n, query); err != nil {
			t.Fatal(err)
		}
		out[name] = n
	}
	return out
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestHTTPBadInput(t *testing.T) {
	s := newStack(t)
	cat := s.createCategory(t, "Existing", "")
	p := s.createProduct(t, map[string]any{"name": "Existing Product", "sku": "EXIST-1", "stock_quantity": 3})
	id := p["id"].(string)
	v := s.createVariant(t, id, map[string]any{"sku": "EXIST-V1"})["id"].(string)
	other := s.createProduct(t, map[string]any{"name": "Other Product", "sku": "OTHER-1"})["id"].(string)
	otherVariant := s.createVariant(t, other, nil)["id"].(string)
	inactive := s.createProduct(t, map[string]any{"name": "Gone", "sku": "GONE-1", "is_active": false})["id"].(string)
	order := uuid.NewString()

	product := func(override string) string {
		return `{"name":"New Product","sku":"NEW-1","price":"1.00"` + override + `}`
	}
	reserve := func(items string, extra string) string {
		return `{"order_id":"` + order + `","items":` + items + extra + `}`
	}
	line := func(pid string, qty string) string {
		return `[{"product_id":"` + pid + `","quantity":` + qty + `}]`
	}

	tests := []struct {
		name         string
		method, path string
		token        string
		body         string
		contentType  string
		status       int
		code         string
		field        string // a field the error details must name
	}{
		{"malformed JSON", "POST", "/api/v1/products", s.admin, `{"name":`, "", 400, "malformed_json", ""},
		{"not an object", "POST", "/api/v1/products", s.admin, `[1]`, "", 400, "invalid_type", ""},
		{"empty body", "POST", "/api/v1/products", s.admin, ``, "", 400, "empty_body", ""},
		{"unknown field", "POST", "/api/v1/products", s.admin, product(`,"colour":"red"`), "", 400, "unknown_field", "colour"},
		{"not JSON", "POST", "/api/v1/products", s.admin, product(""), "text/plain", 415, "unsupported_media_type", ""},
		{"name as number", "POST", "/api/v1/products", s.admin, `{"name":5,"sku":"N-1","price":"1.00"}`, "", 400, "invalid_type", "name"},
		{"missing fields", "POST", "/api/v1/products", s.admin, `{}`, "", 422, "validation_failed", "price"},
		{"negative price", "POST", "/api/v1/products", s.admin, `{"name":"N","sku":"N-1","price":"-1.00"}`, "", 422, "validation_failed", "price"},
		// A price of 0.00 could be stored, and then no checkout of it could be paid.
		{"zero price", "POST", "/api/v1/products", s.admin, `{"name":"N","sku":"N-1","price":"0.00"}`, "", 422, "validation_failed", "price"},
		{"zero price patched", "PATCH", "/api/v1/products/" + id, s.admin, `{"price":"0.00"}`, "", 422, "validation_failed", "price"},
		{"zero variant price", "POST", "/api/v1/products/" + id + "/variants", s.admin, `{"sku":"Z-1","name":"Z","price":"0.00"}`, "", 422, "validation_failed", "price"},
		{"zero variant price patched", "PATCH", "/api/v1/products/" + id + "/variants/" + v, s.admin, `{"price":"0.00"}`, "", 422, "validation_failed", "price"},
		{"price as a JSON number", "POST", "/api/v1/products", s.admin, `{"name":"N","sku":"N-1","price":19.99}`, "", 422, "validation_failed", "price"},
		{"price with three places", "POST", "/api/v1/products", s.admin, `{"name":"N","sku":"N-1","price":"1.999"}`, "", 422, "validation_failed", "price"},
		{"price not a number", "POST", "/api/v1/products", s.admin, `{"name":"N","sku":"N-1","price":"abc"}`, "", 422, "validation_failed", "price"},
		{"price too big", "POST", "/api/v1/products", s.admin, `{"name":"N","sku":"N-1","price":"100000000.00"}`, "", 422, "validation_failed", "price"},
		{"negative compare price", "POST", "/api/v1/products", s.admin, product(`,"compare_price":"-0.01"`), "", 422, "validation_failed", "compare_price"},
		{"negative cost price", "POST", "/api/v1/products", s.admin, product(`,"cost_price":"-5"`), "", 422, "validation_failed", "cost_price"},
		{"negative stock", "POST", "/api/v1/products", s.admin, product(`,"stock_quantity":-1`), "", 422, "validation_failed", "stock_quantity"},
		{"huge stock", "POST", "/api/v1/products", s.admin, product(`,"stock_quantity":1000000001`), "", 422, "validation_failed", "stock_quantity"},
		{"fractional stock", "POST", "/api/v1/products", s.admin, product(`,"stock_quantity":1.5`), "", 400, "invalid_type", "stock_quantity"},
		{"negative min stock", "POST", "/api/v1/products", s.admin, product(`,"min_stock_quantity":-3`), "", 422, "validation_failed", "min_stock_quantity"},
		{"weight with three places", "POST", "/api/v1/products", s.admin, product(`,"weight":1.234`), "", 422, "validation_failed", "weight"},
		{"negative weight", "POST", "/api/v1/products", s.admin, product(`,"weight":-1`), "", 422, "validation_failed", "weight"},
		// Every number of a request is a JSON number: a quoted one is a value
		// of the wrong type. A quoted weight was taken, and stored.
		{"weight as a string", "POST", "/api/v1/products", s.admin, product(`,"weight":"12"`), "", 400, "invalid_type", "weight"},
		{"stock as a string", "POST", "/api/v1/products", s.admin, product(`,"stock_quantity":"5"`), "", 400, "invalid_type", "stock_quantity"},
		{"min stock as a string", "POST", "/api/v1/products", s.admin, product(`,"min_stock_quantity":"2"`), "", 400, "invalid_type", "min_stock_quantity"},
		{"dimension as a string", "POST", "/api/v1/products", s.admin, product(`,"dimensions":{"length":"1","width":1,"height":1}`), "", 400, "invalid_type", "dimensions.length"},
		{"negative dimension", "POST", "/api/v1/products", s.admin, product(`,"dimensions":{"length":-1,"width":1,"height":1}`), "", 422, "validation_failed", "dimensions.length"},
		{"bad unit", "POST", "/api/v1/products", s.admin, product(`,"dimensions":{"length":1,"width":1,"height":1,"unit":"furlong"}`), "", 422, "validation_failed", "dimensions.unit"},
		{"image not a URL", "POST", "/api/v1/products", s.admin, product(`,"images":["javascript:alert(1)"]`), "", 422, "validation_failed", "images[0]"},
		{"unknown category", "POST", "/api/v1/products", s.admin, product(`,"category_id":"` + uuid.NewString() + `"`), "", 422, "unknown_category", ""},
		{"category not a UUID", "POST", "/api/v1/products", s.admin, product(`,"category_id":"kitchen"`), "", 422, "validation_failed", "category_id"},
		{"bad slug", "POST", "/api/v1/products", s.admin, product(`,"slug":"Not A Slug"`), "", 422, "validation_failed", "slug"},
		{"slug like an id", "POST", "/api/v1/products", s.admin, product(`,"slug":"` + uuid.NewString() + `"`), "", 422, "validation_failed", "slug"},
		{"name without letters needs a slug", "POST", "/api/v1/products", s.admin, `{"name":"???","sku":"N-1","price":"1.00"}`, "", 422, "validation_failed", "slug"},
		{"name like an id needs a slug", "POST", "/api/v1/products", s.admin, `{"name":"` + uuid.NewString() + `","sku":"N-1","price":"1.00"}`, "", 422, "validation_failed", "slug"},
		{"bad SKU", "POST", "/api/v1/products", s.admin, `{"name":"N","sku":"has space","price":"1.00"}`, "", 422, "validation_failed", "sku"},
		{"NUL in a name", "POST", "/api/v1/products", s.admin, `{"name":"a\u0000b","sku":"N-1","price":"1.00"}`, "", 422, "validation_failed", "name"},
		{"duplicate slug", "POST", "/api/v1/products", s.admin, `{"name":"Existing Product","sku":"N-1","price":"1.00"}`, "", 409, "slug_taken", ""},
		{"duplicate SKU", "POST", "/api/v1/products", s.admin, `{"name":"N","sku":"EXIST-1","price":"1.00"}`, "", 409, "sku_taken", ""},
		{"oversized body", "POST", "/api/v1/products", s.admin, product(`,"description":"` + strings.Repeat("x", 1<<20) + `"`), "", 413, "body_too_large", ""},

		{"empty patch", "PATCH", "/api/v1/products/" + id, s.admin, `{}`, "", 422, "validation_failed", "body"},
		{"null name", "PATCH", "/api/v1/products/" + id, s.admin, `{"name":null}`, "", 422, "validation_failed", "name"},
		{"negative price patch", "PATCH", "/api/v1/products/" + id, s.admin, `{"price":"-2.00"}`, "", 422, "validation_failed", "price"},
		{"price patch as number", "PATCH", "/api/v1/products/" + id, s.admin, `{"price":2}`, "", 422, "validation_failed", "price"},
		{"is_active as string", "PATCH", "/api/v1/products/" + id, s.admin, `{"is_active":"yes"}`, "", 422, "validation_failed", "is_active"},
		{"weight patch as a string", "PATCH", "/api/v1/products/" + id, s.admin, `{"weight":"0.5"}`, "", 422, "validation_failed", "weight"},
		{"min stock patch as a string", "PATCH", "/api/v1/products/" + id, s.admin, `{"min_stock_quantity":"2"}`, "", 422, "validation_failed", "min_stock_quantity"},
		{"dimension patch as a string", "PATCH", "/api/v1/products/" + id, s.admin, `{"dimensions":{"length":1,"width":"1","height":1}}`, "", 422, "validation_failed", "dimensions"},
		{"stock is not patchable", "PATCH", "/api/v1/products/" + id, s.admin, `{"stock_quantity":100}`, "", 400, "unknown_field", "stock_quantity"},
		// As in a POST: a misspelt measure was dropped, and the dimensions
		// stored without it.
		{"unknown field in patched dimensions", "PATCH", "/api/v1/products/" + id, s.admin, `{"dimensions":{"lenght":12,"width":1,"height":1}}`, "", 400, "unknown_field", "lenght"},
		{"patch to a taken SKU", "PATCH", "/api/v1/products/" + other, s.admin, `{"sku":"EXIST-1"}`, "", 409, "sku_taken", ""},
		{"patch to a taken slug", "PATCH", "/api/v1/products/" + other, s.admin, `{"slug":"existing-product"}`, "", 409, "slug_taken", ""},
		{"patch to an unknown category", "PATCH", "/api/v1/products/" + id, s.admin, `{"category_id":"` + uuid.NewString() + `"}`, "", 422, "unknown_category", ""},
		{"patch unknown product", "PATCH", "/api/v1/products/" + uuid.NewString(), s.admin, `{"price":"2.00"}`, "", 404, "not_found", ""},
		{"patch product, id not a UUID", "PATCH", "/api/v1/products/abc", s.admin, `{"price":"2.00"}`, "", 404, "not_found", ""},
		{"delete unknown product", "DELETE", "/api/v1/products/" + uuid.NewString(), s.admin, "", "", 404, "not_found", ""},
		{"get unknown slug", "GET", "/api/v1/products/no-such-product", "", "", "", 404, "not_found", ""},
		{"get bad ref", "GET", "/api/v1/products/Not%20Valid", "", "", "", 404, "not_found", ""},
		{"get inactive as customer", "GET", "/api/v1/products/" + inactive, s.customer, "", "", 404, "not_found", ""},

		{"variant negative price", "POST", "/api/v1/products/" + id + "/variants", s.admin, `{"name":"V","sku":"V-9","price":"-1.00"}`, "", 422, "validation_failed", "price"},
		{"variant negative stock", "POST", "/api/v1/products/" + id + "/variants", s.admin, `{"name":"V","sku":"V-9","price":"1.00","stock_quantity":-5}`, "", 422, "validation_failed", "stock_quantity"},
		{"variant stock as a string", "POST", "/api/v1/products/" + id + "/variants", s.admin, `{"name":"V","sku":"V-9","price":"1.00","stock_quantity":"5"}`, "", 400, "invalid_type", "stock_quantity"},
		{"variant duplicate SKU", "POST", "/api/v1/products/" + id + "/variants", s.admin, `{"name":"V","sku":"EXIST-V1","price":"1.00"}`, "", 409, "sku_taken", ""},
		{"variant of unknown product", "POST", "/api/v1/products/" + uuid.NewString() + "/variants", s.admin, `{"name":"V","sku":"V-9","price":"1.00"}`, "", 404, "not_found", ""},
		{"variant attributes not strings", "POST", "/api/v1/products/" + id + "/variants", s.admin, `{"name":"V","sku":"V-9","price":"1.00","attributes":{"size":3}}`, "", 400, "invalid_type", ""},
		{"variant of another product", "PATCH", "/api/v1/products/" + id + "/variants/" + otherVariant, s.admin, `{"price":"2.00"}`, "", 404, "not_found", ""},
		{"variant patch empty", "PATCH", "/api/v1/products/" + id + "/variants/" + v, s.admin, `{}`, "", 422, "validation_failed", "body"},

		{"stock delta zero", "POST", "/api/v1/products/" + id + "/stock", s.admin, `{"delta":0,"reason":"r"}`, "", 422, "validation_failed", "delta"},
		{"stock delta huge", "POST", "/api/v1/products/" + id + "/stock", s.admin, `{"delta":5000000,"reason":"r"}`, "", 422, "validation_failed", "delta"},
		{"stock delta as a string", "POST", "/api/v1/products/" + id + "/stock", s.admin, `{"delta":"1","reason":"r"}`, "", 400, "invalid_type", "delta"},
		{"stock without reason", "POST", "/api/v1/products/" + id + "/stock", s.admin, `{"delta":1}`, "", 422, "validation_failed", "reason"},
		{"stock below zero", "POST", "/api/v1/products/" + id + "/stock", s.admin, `{"delta":-4,"reason":"r"}`, "", 409, "out_of_stock", ""},
		{"stock of another product's variant", "POST", "/api/v1/products/" + id + "/stock", s.admin, `{"variant_id":"` + otherVariant + `","delta":1,"reason":"r"}`, "", 422, "unknown_variant", ""},
		{"stock of unknown product", "POST", "/api/v1/products/" + uuid.NewString() + "/stock", s.admin, `{"delta":1,"reason":"r"}`, "", 404, "not_found", ""},

		{"category without name", "POST", "/api/v1/categories", s.admin, `{"description":"d"}`, "", 422, "validation_failed", "name"},
		{"category duplicate slug", "POST", "/api/v1/categories", s.admin, `{"name":"Existing"}`, "", 409, "slug_taken", ""},
		{"category name like an id needs a slug", "POST", "/api/v1/categories", s.admin, `{"name":"` + uuid.NewString() + `"}`, "", 422, "validation_failed", "slug"},
		{"category unknown parent", "POST", "/api/v1/categories", s.admin, `{"name":"X","parent_id":"` + uuid.NewString() + `"}`, "", 422, "unknown_category", ""},
		{"category own parent", "PATCH", "/api/v1/categories/" + cat, s.admin, `{"parent_id":"` + cat + `"}`, "", 422, "category_cycle", ""},
		{"category patch empty", "PATCH", "/api/v1/categories/" + cat, s.admin, `{}`, "", 422, "validation_failed", "body"},

		{"page size 101", "GET", "/api/v1/products?page_size=101", "", "", "", 422, "validation_failed", "page_size"},
		{"huge page size", "GET", "/api/v1/products?page_size=100000000", "", "", "", 422, "validation_failed", "page_size"},
		{"page 0", "GET", "/api/v1/products?page=0", "", "", "", 422, "validation_failed", "page"},
		{"page beyond the cap", "GET", "/api/v1/products?page=10001", "", "", "", 422, "validation_failed", "page"},
		{"page not a number", "GET", "/api/v1/products?page=two", "", "", "", 422, "validation_failed", "page"},
		{"min price not money", "GET", "/api/v1/products?min_price=abc", "", "", "", 422, "validation_failed", "min_price"},
		{"min price negative", "GET", "/api/v1/products?min_price=-1", "", "", "", 422, "validation_failed", "min_price"},
		{"max price float", "GET", "/api/v1/products?max_price=1e3", "", "", "", 422, "validation_failed", "max_price"},
		{"max below min", "GET", "/api/v1/products?min_price=10&max_price=5", "", "", "", 422, "validation_failed", "max_price"},
		{"unknown sort", "GET", "/api/v1/products?sort=popularity", "", "", "", 422, "validation_failed", "sort"},
		{"in_stock not a boolean", "GET", "/api/v1/products?in_stock=maybe", "", "", "", 422, "validation_failed", "in_stock"},
		{"unknown filter", "GET", "/api/v1/products?colour=red", "", "", "", 422, "validation_failed", "colour"},
		{"filter given twice", "GET", "/api/v1/products?sort=price&sort=name", "", "", "", 422, "validation_failed", "sort"},
		{"malformed category", "GET", "/api/v1/products?category=Not%20A%20Slug", "", "", "", 422, "validation_failed", "category"},
		{"unknown category filter", "GET", "/api/v1/products?category=no-such-category", "", "", "", 422, "unknown_category", ""},
		{"query too long", "GET", "/api/v1/products?q=" + strings.Repeat("a", 201), "", "", "", 422, "validation_failed", "q"},
		// PostgreSQL's tsquery parser holds at most 32 operators waiting for
		// a word; the 33rd '-' in a row was its internal error, a 500.
		{"query of 33 exclusions in a row", "GET", "/api/v1/products?q=" + strings.Repeat("-", 33), "", "", "", 422, "validation_failed", "q"},
		{"query of 40 spaced exclusions", "GET", "/api/v1/products?q=shirt" + strings.Repeat("+-", 40) + "blue", "", "", "", 422, "validation_failed", "q"},
		// After an OR and an AND, 31 fill the stack.
		{"query of 31 exclusions after or", "GET", "/api/v1/products?q=shirt+or+blue+" + strings.Repeat("-", 31) + "red", "", "", "", 422, "validation_failed", "q"},

		{"reserve negative quantity", "POST", "/internal/reservations", s.service, reserve(line(id, "-1"), ""), "", 422, "validation_failed", "items[0].quantity"},
		{"reserve zero quantity", "POST", "/internal/reservations", s.service, reserve(line(id, "0"), ""), "", 422, "validation_failed", "items[0].quantity"},
		{"reserve no items", "POST", "/internal/reservations", s.service, reserve(`[]`, ""), "", 422, "validation_failed", "items"},
		{"reserve bad order id", "POST", "/internal/reservations", s.service, `{"order_id":"o-1","items":` + line(id, "1") + `}`, "", 422, "validation_failed", "order_id"},
		{"reserve bad product id", "POST", "/internal/reservations", s.service, reserve(line("p-1", "1"), ""), "", 422, "validation_failed", "items[0].product_id"},
		{"reserve ttl too short", "POST", "/internal/reservations", s.service, reserve(line(id, "1"), `,"ttl_seconds":5`), "", 422, "validation_failed", "ttl_seconds"},
		{"reserve ttl as a string", "POST", "/internal/reservations", s.service, reserve(line(id, "1"), `,"ttl_seconds":"60"`), "", 400, "invalid_type", "ttl_seconds"},
		{"reserve quantity as a string", "POST", "/internal/reservations", s.service, reserve(line(id, `"1"`), ""), "", 400, "invalid_type", ""},
		{"reserve ttl too long", "POST", "/internal/reservations", s.service, reserve(line(id, "1"), `,"ttl_seconds":86401`), "", 422, "validation_failed", "ttl_seconds"},
		{"reserve unknown product", "POST", "/internal/reservations", s.service, reserve(line(uuid.NewString(), "1"), ""), "", 422, "unknown_product", ""},
		{"reserve inactive product", "POST", "/internal/reservations", s.service, reserve(line(inactive, "1"), ""), "", 422, "unknown_product", ""},
		{"reserve another product's variant", "POST", "/internal/reservations", s.service,
			reserve(`[{"product_id":"`+id+`","variant_id":"`+otherVariant+`","quantity":1}]`, ""), "", 422, "unknown_product", ""},
		{"reserve more than there is", "POST", "/internal/reservations", s.service, reserve(line(id, "4"), ""), "", 409, "out_of_stock", ""},
		{"reserve unknown field", "POST", "/internal/reservations", s.service, reserve(line(id, "1"), `,"user_id":"x"`), "", 400, "unknown_field", "user_id"},
		{"commit unknown", "POST", "/internal/reservations/" + uuid.NewString() + "/commit", s.service, "", "", 404, "not_found", ""},
		{"release unknown", "POST", "/internal/reservations/" + uuid.NewString() + "/release", s.service, "", "", 404, "not_found", ""},
		{"get reservation, bad id", "GET", "/internal/reservations/nope", s.service, "", "", 404, "not_found", ""},

		{"method not allowed", "PUT", "/api/v1/products/" + id, s.admin, `{}`, "", 405, "method_not_allowed", ""},
		{"no such route", "GET", "/api/v1/products/" + id + "/reviews", "", "", "", 404, "not_found", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := rowCounts(t, s.db)
			var body any
			if tc.body != "" {
				body = tc.body
			}
			ct := tc.contentType
			if ct == "" {
				ct = "application/json"
			}
			r := s.callType(t, tc.method, tc.path, tc.token, body, ct)
			if r.status != tc.status {
				t.Errorf("status %d, want %d: %.300s", r.status, tc.status, r.raw)
			}
			if c := r.header.Get("Content-Type"); !strings.HasPrefix(c, "application/json") {
				t.Errorf("Content-Type %q", c)
			}
			if code := errorCode(r); code != tc.code {
				t.Errorf("error.code %q, want %q: %.300s", code, tc.code, r.raw)
			}
			if tc.field != "" {
				details, _ := obj(r, "error")["details"].(map[string]any)
				if _, ok := details[tc.field]; !ok {
					t.Errorf("error details %v do not name %q", details, tc.field)
				}
			}
			if after := rowCounts(t, s.db); !equalCounts(before, after) {
				t.Errorf("rejected request wrote: before %v, after %v", before, after)
			}
		})
	}
}

// checkLedger asserts the stock invariant for every product and variant:
// the ledger sums to the available stock, and its initial and adjust rows
// to available + reserved + committed.
func checkLedger(t *testing.T, db *sqlx.DB) {
	t.Helper()
	var bad []string
	err := db.Select(&bad, `
		WITH items AS (
			SELECT id AS product_id, NULL::uuid AS variant_id, stock_quantity FROM products
			UNION ALL
			SELECT product_id, id, stock_quantity FROM product_variants
		), held AS (
			SELECT i.product_id, i.variant_id, sum(i.quantity) AS quantity
			FROM reservation_items i JOIN inventory_reservations r USING (order_id)
			WHERE r.status IN ('reserved', 'committed')
			GROUP BY 1, 2
		)
		SELECT it.product_id || '/' || coalesce(it.variant_id::text, '-')
		FROM items it
		LEFT JOIN held h ON h.product_id = it.product_id AND h.variant_id IS NOT DISTINCT FROM it.variant_id
		WHERE it.stock_quantity <> (SELECT coalesce(sum(delta), 0) FROM stock_movements m
				WHERE m.product_id = it.product_id AND m.variant_id IS NOT DISTINCT FROM it.variant_id)
		   OR it.stock_quantity + coalesce(h.quantity, 0) <> (SELECT coalesce(sum(delta), 0) FROM stock_movements m
				WHERE m.product_id = it.product_id AND m.variant_id IS NOT DISTINCT FROM it.variant_id
				AND m.reason IN ('initial', 'adjust'))`)
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Errorf("ledger does not match stock for %v", bad)
	}
}

func eventsOf(t *testing.T, db *sqlx.DB, typ string) []map[string]any {
	t.Helper()
	var payloads []string
	if err := db.Select(&payloads, `SELECT payload::text FROM outbox WHERE type = $1 ORDER BY created_at`, typ); err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, p := range payloads {
		var env struct {
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal([]byte(p), &env); err != nil {
			t.Fatal(err)
		}
		out = append(out, env.Data)
	}
	return out
}

func TestHTTPReservations(t *testing.T) {
	s := newStack(t)
	p := s.createProduct(t, map[string]any{"name": "Mug", "sku": "MUG-1", "price": "8.50", "stock_quantity": 10, "min_stock_quantity": 6})
	pid := p["id"].(string)
	v := s.createVariant(t, pid, map[string]any{"name": "Mug Large", "sku": "MUG-1-L", "price": "9.75", "stock_quantity": 5})
	vid := v["id"].(string)
	q := s.createProduct(t, map[string]any{"name": "Saucer", "sku": "SAU-1", "price": "3.00", "stock_quantity": 1})
	qid := q["id"].(string)
	order := uuid.NewString()

	lines := []map[string]any{
		{"product_id": pid, "quantity": 2},
		{"product_id": pid, "variant_id": vid, "quantity": 1},
		{"product_id": strings.ToUpper(pid), "variant_id": nil, "quantity": 1}, // merged with the first
	}
	r := want(t, s.call(t, "POST", "/internal/reservations", s.service, map[string]any{"order_id": order, "items": lines, "ttl_seconds": 60}), http.StatusCreated)
	res := obj(r, "reservation")
	if res["order_id"] != order || res["status"] != "reserved" {
		t.Fatalf("reservation: %s", r.raw)
	}
	expires, err := time.Parse(time.RFC3339, res["expires_at"].(string))
	if err != nil || time.Until(expires) < 55*time.Second || time.Until(expires) > 61*time.Second {
		t.Errorf("expires_at %v, want about a minute from %v", res["expires_at"], time.Now())
	}
	items := res["items"].([]any)
	wantItems := []map[string]any{
		{"product_id": pid, "variant_id": nil, "quantity": float64(3), "sku": "MUG-1", "name": "Mug", "unit_price": "8.50", "currency": "USD"},
		{"product_id": pid, "variant_id": vid, "quantity": float64(1), "sku": "MUG-1-L", "name": "Mug Large", "unit_price": "9.75", "currency": "USD"},
	}
	if len(items) != len(wantItems) {
		t.Fatalf("items: %s", r.raw)
	}
	for i, w := range wantItems {
		for k, val := range w {
			if items[i].(map[string]any)[k] != val {
				t.Errorf("item %d %s = %v, want %v", i, k, items[i].(map[string]any)[k], val)
			}
		}
	}
	if s.stockOf(t, "products", pid) != 7 || s.stockOf(t, "product_variants", vid) != 4 {
		t.Errorf("stock after reserving: %d and %d, want 7 and 4", s.stockOf(t, "products", pid), s.stockOf(t, "product_variants", vid))
	}
	// Stock fell from 10 to 7, not yet to the minimum of 6: no low-stock event.
	if evs := eventsOf(t, s.db, "inventory.low_stock"); len(evs) != 0 {
		t.Errorf("low stock events: %v", evs)
	}

	// The same request again is the same reservation, and takes nothing.
	before := rowCounts(t, s.db)
	r = want(t, s.call(t, "POST", "/internal/reservations", s.service, map[string]any{"order_id": order, "items": lines}), http.StatusOK)
	if obj(r, "reservation")["expires_at"] != res["expires_at"] || len(obj(r, "reservation")["items"].([]any)) != 2 {
		t.Errorf("replayed reservation: %s", r.raw)
	}
	// Other items under the same order are a conflict.
	r = want(t, s.call(t, "POST", "/internal/reservations", s.service, map[string]any{"order_id": order,
		"items": []map[string]any{{"product_id": pid, "quantity": 3}}}), http.StatusConflict)
	if errorCode(r) != "reservation_mismatch" {
		t.Errorf("mismatch: %s", r.raw)
	}

	// All or nothing: the second line is short, so the first is not taken.
	other := uuid.NewString()
	r = want(t, s.call(t, "POST", "/internal/reservations", s.service, map[string]any{"order_id": other,
		"items": []map[string]any{{"product_id": pid, "quantity": 1}, {"product_id": qid, "quantity": 2}}}), http.StatusConflict)
	details := obj(r, "error")["details"].(map[string]any)
	if errorCode(r) != "out_of_stock" || details["product_id"] != qid || details["variant_id"] != nil ||
		details["requested"] != float64(2) || details["available"] != float64(1) {
		t.Errorf("out of stock: %s", r.raw)
	}
	if after := rowCounts(t, s.db); !equalCounts(before, after) {
		t.Errorf("replay, mismatch or failed reservation wrote: before %v, after %v", before, after)
	}
	want(t, s.call(t, "GET", "/internal/reservations/"+other, s.service, nil), http.StatusNotFound)

	// Commit, twice; then release gives the units back, once.
	r = want(t, s.call(t, "POST", "/internal/reservations/"+order+"/commit", s.service, nil), http.StatusOK)
	if obj(r, "reservation")["status"] != "committed" {
		t.Errorf("commit: %s", r.raw)
	}
	want(t, s.call(t, "POST", "/internal/reservations/"+order+"/commit", s.admin, nil), http.StatusOK)
	r = want(t, s.call(t, "GET", "/internal/reservations/"+order, s.service, nil), http.StatusOK)
	if obj(r, "reservation")["status"] != "committed" {
		t.Errorf("get: %s", r.raw)
	}
	checkLedger(t, s.db)
	for range 2 {
		r = want(t, s.call(t, "POST", "/internal/reservations/"+order+"/release", s.service, nil), http.StatusOK)
		if res := obj(r, "reservation"); res["status"] != "released" || res["release_reason"] != "released" {
			t.Errorf("release: %s", r.raw)
		}
	}
	if s.stockOf(t, "products", pid) != 10 || s.stockOf(t, "product_variants", vid) != 5 {
		t.Errorf("stock after release: %d and %d, want 10 and 5", s.stockOf(t, "products", pid), s.stockOf(t, "product_variants", vid))
	}
	r = want(t, s.call(t, "POST", "/internal/reservations/"+order+"/commit", s.service, nil), http.StatusConflict)
	if errorCode(r) != "reservation_released" {
		t.Errorf("commit after release: %s", r.raw)
	}
	if evs := eventsOf(t, s.db, "inventory.released"); len(evs) != 1 || evs[0]["order_id"] != order || evs[0]["reason"] != "released" {
		t.Errorf("inventory.released events: %v", evs)
	}
	checkLedger(t, s.db)

	// Low stock: 10 → 5 crosses the minimum of 6 once; 5 → 4 does not again.
	for _, qty := range []int{5, 1} {
		want(t, s.call(t, "POST", "/internal/reservations", s.service, map[string]any{"order_id": uuid.NewString(),
			"items": []map[string]any{{"product_id": pid, "quantity": qty}}}), http.StatusCreated)
	}
	evs := eventsOf(t, s.db, "inventory.low_stock")
	if len(evs) != 1 || evs[0]["product_id"] != pid || evs[0]["stock_quantity"] != float64(5) || evs[0]["min_stock_quantity"] != float64(6) || evs[0]["sku"] != "MUG-1" {
		t.Errorf("low stock events: %v", evs)
	}
	checkLedger(t, s.db)
}

func TestReservationExpiry(t *testing.T) {
	db := newDB(t)
	a, b := newStackOn(t, db, nil), newStackOn(t, db, nil)
	clk := a.clock
	pid := a.createProduct(t, map[string]any{"stock_quantity": 100})["id"].(string)
	reserve := func(ttl int) string {
		t.Helper()
		order := uuid.NewString()
		want(t, a.call(t, "POST", "/internal/reservations", a.service, map[string]any{"order_id": order, "ttl_seconds": ttl,
			"items": []map[string]any{{"product_id": pid, "quantity": 2}}}), http.StatusCreated)
		return order
	}
	short := reserve(10)
	long := reserve(3600)
	committed := reserve(10)
	want(t, a.call(t, "POST", "/internal/reservations/"+committed+"/commit", a.service, nil), http.StatusOK)

	// Nothing is due yet.
	if n, err := a.svc.ReleaseExpired(context.Background()); err != nil || n != 0 {
		t.Fatalf("sweep before expiry: %d, %v", n, err)
	}
	clk.Advance(11 * time.Second)
	if n, err := a.svc.ReleaseExpired(context.Background()); err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v; want 1", n, err)
	}
	if n := a.stockOf(t, "products", pid); n != 96 {
		t.Errorf("stock %d after the sweep, want 96 (long and committed still held)", n)
	}
	r := want(t, a.call(t, "GET", "/internal/reservations/"+short, a.service, nil), http.StatusOK)
	if res := obj(r, "reservation"); res["status"] != "released" || res["release_reason"] != "expired" {
		t.Errorf("expired reservation: %s", r.raw)
	}
	r = want(t, a.call(t, "POST", "/internal/reservations/"+short+"/commit", a.service, nil), http.StatusConflict)
	if errorCode(r) != "reservation_released" {
		t.Errorf("commit after expiry: %s", r.raw)
	}
	if evs := eventsOf(t, db, "inventory.released"); len(evs) != 1 || evs[0]["order_id"] != short || evs[0]["reason"] != "expired" {
		t.Errorf("inventory.released events: %v", evs)
	}

	// A commit that comes after the expiry but before the sweeper releases
	// the reservation itself, with the same answer.
	clk.Advance(time.Hour)
	r = want(t, b.call(t, "POST", "/internal/reservations/"+long+"/commit", b.service, nil), http.StatusConflict)
	if errorCode(r) != "reservation_released" {
		t.Errorf("late commit: %s", r.raw)
	}
	if n := a.stockOf(t, "products", pid); n != 98 {
		t.Errorf("stock %d after the late commit, want 98", n)
	}
	if n, err := b.svc.ReleaseExpired(context.Background()); err != nil || n != 0 {
		t.Errorf("sweep after the late commit: %d, %v; want 0 (committed reservations never expire)", n, err)
	}
	checkLedger(t, db)

	// Many expired reservations, two sweepers at once: each released once.
	for range 30 {
		reserve(10)
	}
	clk.Advance(time.Minute)
	var wg sync.WaitGroup
	counts := make([]int, 4)
	for i := range counts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			svc := a.svc
			if i%2 == 1 {
				svc = b.svc
			}
			n, err := svc.ReleaseExpired(context.Background())
			if err != nil {
				t.Errorf("concurrent sweep: %v", err)
			}
			counts[i] = n
		}()
	}
	wg.Wait()
	if total := counts[0] + counts[1] + counts[2] + counts[3]; total != 30 {
		t.Errorf("sweepers released %v = %d, want 30 in all", counts, total)
	}
	if n := a.stockOf(t, "products", pid); n != 98 {
		t.Errorf("stock %d after the sweep, want 98", n)
	}
	var expireRows int
	if err := db.Get(&expireRows, `SELECT count(*) FROM stock_movements WHERE reason = 'expire'`); err != nil {
		t.Fatal(err)
	}
	if expireRows != 32 {
		t.Errorf("%d expire ledger rows, want 32", expireRows)
	}
	checkLedger(t, db)
}

// TestReservationsExpireByOneClock: a reservation made by one instance is
// still valid on another until its expiry by the database's clock: the
// other's sweeper leaves it alone and its commit goes through. Before, each
// instance wrote and compared its own clock's times (Options.Now): with the
// second instance's two minutes ahead, it released a reservation of a
// minute at once and refused its commit, so an order paid in time was
// cancelled. The service now reads no clock of its own, so no skew can be
// played here; what stays tested is the cross-instance commit and sweep.
func TestReservationsExpireByOneClock(t *testing.T) {
	db := newDB(t)
	a, other := newStackOn(t, db, nil), newStackOn(t, db, nil)
	pid := a.createProduct(t, map[string]any{"stock_quantity": 10})["id"].(string)
	reserve := func() string {
		t.Helper()
		order := uuid.NewString()
		want(t, a.call(t, "POST", "/internal/reservations", a.service, map[string]any{"order_id": order, "ttl_seconds": 60,
			"items": []map[string]any{{"product_id": pid, "quantity": 3}}}), http.StatusCreated)
		return order
	}
	paid, waiting := reserve(), reserve()

	r := other.call(t, "POST", "/internal/reservations/"+paid+"/commit", other.service, nil)
	if r.status != http.StatusOK {
		t.Errorf("commit by the other instance, a second into a reservation of a minute: %d %s, want 200", r.status, r.raw)
	}
	if n, err := other.svc.ReleaseExpired(context.Background()); err != nil || n != 0 {
		t.Errorf("sweep by the other instance, a second into a reservation of a minute: %d released, %v; want 0", n, err)
	}
	r = want(t, a.call(t, "GET", "/internal/reservations/"+waiting, a.service, nil), http.StatusOK)
	if got := obj(r, "reservation")["status"]; got != "reserved" {
		t.Errorf("the reservation not yet paid is %v, want reserved", got)
	}
	if n := a.stockOf(t, "products", pid); n != 4 {
		t.Errorf("stock %d, want 4: both reservations' units still the orders'", n)
	}
	checkLedger(t, db)
}

// TestReserveAgainAfterTheExpiry: an order's reservation asked for again (the
// order service resuming an Idempotency-Key whose first attempt stopped
// after reserving) once it has expired, but before the sweeper released it.
// The stock is no longer promised to the order, so the answer is the
// released reservation, whether or not the sweeper got there first, as a
// late commit's is: a reservation answered as reserved would have the order
// stored and its card charged, only to be cancelled and refunded when the
// commit finds it expired.
func TestReserveAgainAfterTheExpiry(t *testing.T) {
	s := newStack(t)
	pid := s.createProduct(t, map[string]any{"stock_quantity": 10})["id"].(string)
	order := uuid.NewString()
	body := map[string]any{"order_id": order, "ttl_seconds": 10, "items": []map[string]any{{"product_id": pid, "quantity": 3}}}
	want(t, s.call(t, "POST", "/internal/reservations", s.service, body), http.StatusCreated)

	s.clock.Advance(11 * time.Second)
	r := want(t, s.call(t, "POST", "/internal/reservations", s.service, body), http.StatusOK)
	if res := obj(r, "reservation"); res["status"] != "released" || res["release_reason"] != "expired" {
		t.Errorf("reservation asked for again after its expiry: %s", r.raw)
	}
	if n := s.stockOf(t, "products", pid); n != 10 {
		t.Errorf("stock %d, want 10: the expired units are back", n)
	}
	if evs := eventsOf(t, s.db, "inventory.released"); len(evs) != 1 || evs[0]["order_id"] != order || evs[0]["reason"] != "expired" {
		t.Errorf("inventory.released events: %v", evs)
	}
	// Released once: the sweeper finds nothing, and asking again changes nothing.
	if n, err := s.svc.ReleaseExpired(context.Background()); err != nil || n != 0 {
		t.Errorf("sweep: %d, %v; want 0", n, err)
	}
	want(t, s.call(t, "POST", "/internal/reservations", s.service, body), http.StatusOK)
	if n := s.stockOf(t, "products", pid); n != 10 || len(eventsOf(t, s.db, "inventory.released")) != 1 {
		t.Errorf("stock %d after asking a third time", n)
	}
	checkLedger(t, s.db)
}

// TestSweepGoesPastAReservationItCannotRelease: a reservation whose units no
// longer fit under the stock limit (the stock was topped up to the limit
// while they were held) cannot be given back. The sweeper must still release
// every other expired reservation, not stop at that one at every tick.
func TestSweepGoesPastAReservationItCannotRelease(t *testing.T) {
	s := newStack(t)
	full := s.createProduct(t, map[string]any{"stock_quantity": 1_000_000_000})["id"].(string)
	other := s.createProduct(t, map[string]any{"stock_quantity": 5})["id"].(string)
	reserve := func(pid string) string {
		t.Helper()
		order := uuid.NewString()
		want(t, s.call(t, "POST", "/internal/reservations", s.service, map[string]any{"order_id": order, "ttl_seconds": 10,
			"items": []map[string]any{{"product_id": pid, "quantity": 2}}}), http.StatusCreated)
		return order
	}
	stuck := reserve(full) // expires first
	s.clock.Advance(time.Second)
	freed := reserve(other)
	want(t, s.call(t, "POST", "/api/v1/products/"+full+"/stock", s.admin, map[string]any{"delta": 2, "reason": "back to the limit"}), http.StatusOK)

	s.clock.Advance(time.Minute)
	n, err := s.svc.ReleaseExpired(context.Background())
	if n != 1 || !errors.Is(err, product.ErrStockLimit) {
		t.Errorf("sweep: %d released, err %v; want 1, and the stock limit of the one it could not release", n, err)
	}
	if got := s.stockOf(t, "products", other); got != 5 {
		t.Errorf("stock of the other product %d, want 5: its expired reservation was not released", got)
	}
	for order, status := range map[string]string{freed: "released", stuck: "reserved"} {
		r := want(t, s.call(t, "GET", "/internal/reservations/"+order, s.service, nil), http.StatusOK)
		if got := obj(r, "reservation")["status"]; got != status {
			t.Errorf("reservation %s is %v, want %s", order, got, status)
		}
	}
	if evs := eventsOf(t, s.db, "inventory.released"); len(evs) != 1 || evs[0]["order_id"] != freed {
		t.Errorf("inventory.released events: %v", evs)
	}
	checkLedger(t, s.db)
}
