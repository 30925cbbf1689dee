package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/localinfra"
	"github.com/mercato-dev/mercato/shared/money"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// productPlatform is Consul, PostgreSQL, a Redis of its own (the product
// instances' events and cache), one user instance (accounts and tokens), two
// product instances that both start with -seed-demo, and the gateway.
type productPlatform struct {
	consul   string
	db       *sqlx.DB
	redis    *redis.Client
	products []*proc
	gateway  *proc
	api      *client
	admin    string // bearer tokens
	customer string
	service  string // the order service's own token
}

func startProductPlatform(t *testing.T) *productPlatform {
	p := &productPlatform{consul: testkit.NewConsul(t).Addr()}
	own := testkit.NewRedis(t)
	p.redis = redis.NewClient(own.Options(localinfra.RedisAdmin))
	t.Cleanup(func() { p.redis.Close() })
	productURL, userURL := testkit.PostgresURL(t), testkit.PostgresURL(t)
	db, err := sqlx.Open("postgres", productURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	p.db = db

	start(t, "user", "-consul-addr", p.consul, "-database-url", userURL, "-redis-addr", own.Addr(),
		"-jwt-secret", jwtSecret, "-bcrypt-cost", "4", "-admin-email", "admin@mercato.test", "-admin-password", "admin-password-1")
	// Both instances load the demo catalogue at once, as make run starts them.
	var wg sync.WaitGroup
	p.products = make([]*proc, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.products[i] = start(t, "product", "-consul-addr", p.consul, "-database-url", productURL,
				"-redis-addr", own.Addr(), "-jwt-secret", jwtSecret, "-seed-demo", "-sweep-interval", "200ms")
		}()
	}
	wg.Wait()
	waitPassing(t, p.consul, "user", 1)
	waitPassing(t, p.consul, "product", 2)
	p.gateway = start(t, "gateway", "-consul-addr", p.consul, "-redis-addr", testkit.RedisAddr(t),
		"-jwt-secret", jwtSecret, "-rate-limit", "100000", "-rate-burst", "10000")
	p.api = newClient(t, p.gateway.addr)

	var admin tokenPair
	p.api.do("POST", "/api/v1/auth/login", "", map[string]string{"email": "admin@mercato.test", "password": "admin-password-1"}).
		must(t, http.StatusOK).decode(t, &admin)
	p.admin = admin.AccessToken
	p.api.do("POST", "/api/v1/auth/register", "", map[string]any{"email": "shopper@example.com", "password": "correct-horse",
		"first_name": "Sam", "last_name": "Shopper"}).must(t, http.StatusCreated)
	var customer tokenPair
	p.api.do("POST", "/api/v1/auth/login", "", map[string]string{"email": "shopper@example.com", "password": "correct-horse"}).
		must(t, http.StatusOK).decode(t, &customer)
	p.customer = customer.AccessToken
	tokens, err := auth.NewTokens([]byte(jwtSecret), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if p.service, err = tokens.ServiceToken("order"); err != nil {
		t.Fatal(err)
	}
	return p
}

// direct is a client of one product instance, bypassing the gateway: how
// the order service reaches the internal routes.
func (p *productPlatform) direct(t *testing.T, i int) *client {
	return newClient(t, p.products[i].addr)
}

type e2eProduct struct {
	ID            string  `json:"id"`
	Slug          string  `json:"slug"`
	Price         string  `json:"price"`
	CostPrice     *string `json:"cost_price"`
	StockQuantity int     `json:"stock_quantity"`
	Variants      []struct {
		ID    string `json:"id"`
		Price string `json:"price"`
	} `json:"variants"`
}

func (p *productPlatform) product(t *testing.T, c *client, ref, token string) e2eProduct {
	t.Helper()
	var out struct {
		Product e2eProduct `json:"product"`
	}
	c.do("GET", "/api/v1/products/"+ref, token, nil).must(t, http.StatusOK).decode(t, &out)
	return out.Product
}

func (p *productPlatform) stock(t *testing.T, id string) int {
	t.Helper()
	var n int
	if err := p.db.Get(&n, `SELECT stock_quantity FROM products WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	return n
}

func (p *productPlatform) create(t *testing.T, body map[string]any) e2eProduct {
	t.Helper()
	var out struct {
		Product e2eProduct `json:"product"`
	}
	p.api.do("POST", "/api/v1/products", p.admin, body).must(t, http.StatusCreated).decode(t, &out)
	return out.Product
}

// TestProductPlatform drives the product service through the gateway with
// two instances in Consul. The subtests share the platform and run in order.
func TestProductPlatform(t *testing.T) {
	p := startProductPlatform(t)
	api := p.api

	// Made first and checked last: an unconfirmed reservation that the
	// sweeper must release while the other subtests run.
	expiring := p.create(t, map[string]any{"name": "Hourglass", "sku": "E2E-HOURGLASS", "price": "12.00", "stock_quantity": 4})
	expiringOrder := uuid.NewString()
	p.direct(t, 0).do("POST", "/internal/reservations", p.service, map[string]any{"order_id": expiringOrder, "ttl_seconds": 10,
		"items": []map[string]any{{"product_id": expiring.ID, "quantity": 3}}}).must(t, http.StatusCreated)
	reservedAt := time.Now()

	t.Run("demo catalogue through the gateway, on both instances", func(t *testing.T) {
		var page struct {
			Items    []e2eProduct `json:"items"`
			Total    int          `json:"total"`
			Page     int          `json:"page"`
			PageSize int          `json:"page_size"`
		}
		api.do("GET", "/api/v1/products?category=clothing&sort=price&page_size=100", "", nil).must(t, http.StatusOK).decode(t, &page)
		if page.Total != 10 || len(page.Items) != 10 || page.Page != 1 || page.PageSize != 100 {
			t.Fatalf("clothing (t-shirts and shoes): %+v", page)
		}
		for i := 1; i < len(page.Items); i++ {
			prev, _ := money.Parse(page.Items[i-1].Price)
			cur, _ := money.Parse(page.Items[i].Price)
			if prev > cur {
				t.Errorf("not sorted by price: %s before %s", page.Items[i-1].Price, page.Items[i].Price)
			}
		}
		api.do("GET", "/api/v1/products", "", nil).must(t, http.StatusOK).decode(t, &page)
		if page.Total != 51 || page.PageSize != 20 { // the demo's 50 and the hourglass
			t.Errorf("all products: total %d, page size %d", page.Total, page.PageSize)
		}
		tee := p.product(t, api, "organic-cotton-tee", "")
		if tee.Price != "19.99" || len(tee.Variants) != 4 || tee.CostPrice != nil {
			t.Errorf("organic cotton tee: %+v", tee)
		}
		var tree struct {
			Items []struct {
				Slug     string `json:"slug"`
				Children []struct {
					Slug string `json:"slug"`
				} `json:"children"`
			} `json:"items"`
		}
		api.do("GET", "/api/v1/categories", "", nil).must(t, http.StatusOK).decode(t, &tree)
		if len(tree.Items) != 5 || tree.Items[0].Slug != "books" || len(tree.Items[2].Children) != 3 {
			t.Errorf("category tree: %+v", tree)
		}
		for i := range 10 {
			api.do("GET", fmt.Sprintf("/api/v1/products?page=%d", i%3+1), "", nil).must(t, http.StatusOK)
		}
		for i, inst := range p.products {
			if n := scrape(t, inst.addr, "http_requests_total", "route", "/api/v1/products"); n < 2 {
				t.Errorf("product instance %d served %v list requests; the gateway does not balance", i, n)
			}
		}
	})

	t.Run("admin writes; customers get 403 and never the cost price", func(t *testing.T) {
		created := p.create(t, map[string]any{"name": "Espresso Machine", "sku": "E2E-ESPRESSO", "price": "349.00",
			"cost_price": "201.50", "stock_quantity": 8})
		if created.CostPrice == nil || *created.CostPrice != "201.50" {
			t.Errorf("admin's view: %+v", created)
		}
		writes := []struct {
			method, path string
			body         any
		}{
			{"POST", "/api/v1/categories", map[string]any{"name": "Coffee"}},
			{"PATCH", "/api/v1/categories/" + uuid.NewString(), map[string]any{"name": "Tea"}},
			{"DELETE", "/api/v1/categories/" + uuid.NewString(), nil},
			{"POST", "/api/v1/products", map[string]any{"name": "X", "sku": "X-1", "price": "1.00"}},
			{"PATCH", "/api/v1/products/" + created.ID, map[string]any{"price": "0.01"}},
			{"DELETE", "/api/v1/products/" + created.ID, nil},
			{"POST", "/api/v1/products/" + created.ID + "/variants", map[string]any{"name": "V", "sku": "V-1", "price": "1.00"}},
			{"PATCH", "/api/v1/products/" + created.ID + "/variants/" + uuid.NewString(), map[string]any{"price": "0.01"}},
			{"POST", "/api/v1/products/" + created.ID + "/stock", map[string]any{"delta": 100, "reason": "free stock"}},
		}
		for _, w := range writes {
			r := api.do(w.method, w.path, p.customer, w.body)
			if r.Status != http.StatusForbidden || r.errorCode(t) != "forbidden" {
				t.Errorf("customer %s %s: %d %s", w.method, w.path, r.Status, r.Body)
			}
			if r := api.do(w.method, w.path, "", w.body); r.Status != http.StatusUnauthorized {
				t.Errorf("anonymous %s %s: %d %s", w.method, w.path, r.Status, r.Body)
			}
		}
		for _, tok := range []string{"", p.customer} {
			if got := p.product(t, api, created.ID, tok); got.CostPrice != nil || got.Price != "349.00" {
				t.Errorf("view with token %.10q: %+v", tok, got)
			}
			r := api.do("GET", "/api/v1/products?q=espresso", tok, nil).must(t, http.StatusOK)
			if strings.Contains(string(r.Body), "cost_price") || !strings.Contains(string(r.Body), created.ID) {
				t.Errorf("search with token %.10q: %s", tok, r.Body)
			}
		}
		if got := p.product(t, api, created.ID, p.admin); got.CostPrice == nil || *got.CostPrice != "201.50" {
			t.Errorf("admin's read: %+v", got)
		}
	})

	t.Run("a price updated through the gateway is read through the other instance", func(t *testing.T) {
		lamp := p.product(t, api, "studio-wireless-headphones", "")
		// Warm both instances' view of it (one shared cache, read twice).
		for range 2 {
			for i := range p.products {
				if got := p.product(t, p.direct(t, i), lamp.ID, ""); got.Price != "249.00" {
					t.Fatalf("instance %d before: %+v", i, got)
				}
			}
		}
		hits := scrape(t, p.products[0].addr, "catalogue_cache_requests_total", "result", "hit") +
			scrape(t, p.products[1].addr, "catalogue_cache_requests_total", "result", "hit")
		if hits == 0 {
			t.Fatal("no cache hits: the reads were not cached")
		}
		for round, price := range []string{"199.00", "229.50", "189.99"} {
			api.do("PATCH", "/api/v1/products/"+lamp.ID, p.admin, map[string]any{"price": price}).must(t, http.StatusOK)
			for i := range p.products {
				if got := p.product(t, p.direct(t, i), lamp.ID, ""); got.Price != price {
					t.Errorf("round %d: instance %d reads %s after the update to %s returned", round, i, got.Price, price)
				}
				r := p.direct(t, i).do("GET", "/api/v1/products?category=audio&sort=price", "", nil).must(t, http.StatusOK)
				if !strings.Contains(string(r.Body), `"price":"`+price+`"`) {
					t.Errorf("round %d: instance %d lists a stale price: %s", round, i, r.Body)
				}
			}
		}
	})

	t.Run("bad input is a 4xx and writes nothing", func(t *testing.T) {
		var before int
		if err := p.db.Get(&before, `SELECT count(*) + (SELECT count(*) FROM stock_movements) FROM products`); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			method, path string
			body         any
			status       int
			code         string
		}{
			{"POST", "/api/v1/products", map[string]any{"name": "N", "sku": "N-1", "price": "-1.00"}, 422, "validation_failed"},
			{"POST", "/api/v1/products", map[string]any{"name": "N", "sku": "N-1", "price": "1.00", "stock_quantity": -5}, 422, "validation_failed"},
			{"POST", "/api/v1/products", map[string]any{"name": "N", "sku": "N-1", "price": "1.00", "category_id": uuid.NewString()}, 422, "unknown_category"},
			{"POST", "/api/v1/products", map[string]any{"name": "Organic Cotton Tee", "sku": "N-1", "price": "1.00"}, 409, "slug_taken"},
			{"POST", "/api/v1/products", map[string]any{"name": "N", "sku": "DEMO-001", "price": "1.00"}, 409, "sku_taken"},
			{"POST", "/api/v1/products/" + uuid.NewString() + "/stock", map[string]any{"delta": -1, "reason": "x"}, 404, "not_found"},
			{"GET", "/api/v1/products?page_size=1000", nil, 422, "validation_failed"},
			{"GET", "/api/v1/products?min_price=cheap", nil, 422, "validation_failed"},
			{"GET", "/api/v1/products?colour=red", nil, 422, "validation_failed"},
			{"GET", "/api/v1/products?sort=random", nil, 422, "validation_failed"},
		}
		for _, c := range cases {
			r := api.do(c.method, c.path, p.admin, c.body)
			if r.Status != c.status || r.errorCode(t) != c.code {
				t.Errorf("%s %s: %d %s, want %d %s", c.method, c.path, r.Status, r.Body, c.status, c.code)
			}
		}
		var after int
		if err := p.db.Get(&after, `SELECT count(*) + (SELECT count(*) FROM stock_movements) FROM products`); err != nil {
			t.Fatal(err)
		}
		if after != before {
			t.Errorf("rejected requests wrote rows: %d before, %d after", before, after)
		}
		// The internal routes are not reachable through the gateway.
		for _, path := range []string{"/internal/reservations/" + expiringOrder, "/api/v1/internal/reservations/" + expiringOrder} {
			if r := api.do("GET", path, p.service, nil); r.Status != http.StatusNotFound {
				t.Errorf("GET %s through the gateway: %d", path, r.Status)
			}
		}
	})

	t.Run("200 concurrent reservations against 50 units on two instances", func(t *testing.T) {
		item := p.create(t, map[string]any{"name": "Limited Edition Print", "sku": "E2E-PRINT", "price": "40.00", "stock_quantity": 50})
		clients := []*client{p.direct(t, 0), p.direct(t, 1)}
		results := make(chan response, 200)
		var wg sync.WaitGroup
		for i := range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results <- clients[i%2].do("POST", "/internal/reservations", p.service, map[string]any{"order_id": uuid.NewString(),
					"items": []map[string]any{{"product_id": item.ID, "quantity": 1}}})
			}()
		}
		wg.Wait()
		close(results)
		counts := map[int]int{}
		for r := range results {
			counts[r.Status]++
			if r.Status == http.StatusConflict && r.errorCode(t) != "out_of_stock" {
				t.Errorf("409 %s", r.Body)
			}
		}
		if counts[http.StatusCreated] != 50 || counts[http.StatusConflict] != 150 {
			t.Fatalf("statuses %v, want 50×201 and 150×409", counts)
		}
		if n := p.stock(t, item.ID); n != 0 {
			t.Errorf("stock ends at %d", n)
		}
		var ledger, reserved int
		if err := p.db.Get(&ledger, `SELECT coalesce(sum(delta), 0) FROM stock_movements WHERE product_id = $1`, item.ID); err != nil {
			t.Fatal(err)
		}
		if err := p.db.Get(&reserved, `SELECT coalesce(sum(quantity), 0) FROM reservation_items WHERE product_id = $1`, item.ID); err != nil {
			t.Fatal(err)
		}
		if ledger != 0 || reserved != 50 {
			t.Errorf("ledger sums to %d (want 0 available), %d units reserved (want 50)", ledger, reserved)
		}
		if got := p.product(t, api, item.ID, ""); got.StockQuantity != 0 {
			t.Errorf("the gateway shows stock %d", got.StockQuantity)
		}
	})

	t.Run("a reservation whose second line is short changes nothing", func(t *testing.T) {
		a := p.create(t, map[string]any{"name": "Teacup", "sku": "E2E-CUP", "price": "6.00", "stock_quantity": 10})
		b := p.create(t, map[string]any{"name": "Teapot Rare", "sku": "E2E-POT", "price": "30.00", "stock_quantity": 1})
		r := p.direct(t, 1).do("POST", "/internal/reservations", p.service, map[string]any{"order_id": uuid.NewString(),
			"items": []map[string]any{{"product_id": a.ID, "quantity": 2}, {"product_id": b.ID, "quantity": 2}}})
		if r.Status != http.StatusConflict || r.errorCode(t) != "out_of_stock" || !strings.Contains(string(r.Body), b.ID) {
			t.Fatalf("short reservation: %d %s", r.Status, r.Body)
		}
		if p.stock(t, a.ID) != 10 || p.stock(t, b.ID) != 1 {
			t.Errorf("stock changed: %d and %d", p.stock(t, a.ID), p.stock(t, b.ID))
		}
	})

	t.Run("the unconfirmed reservation expires and its stock comes back", func(t *testing.T) {
		waitFor(t, 30*time.Second, "the sweeper to release the reservation", func() error {
			var res struct {
				Reservation struct {
					Status        string `json:"status"`
					ReleaseReason string `json:"release_reason"`
				} `json:"reservation"`
			}
			p.direct(t, 1).do("GET", "/internal/reservations/"+expiringOrder, p.service, nil).must(t, http.StatusOK).decode(t, &res)
			if res.Reservation.Status != "released" || res.Reservation.ReleaseReason != "expired" {
				return fmt.Errorf("reservation %+v", res.Reservation)
			}
			return nil
		})
		if time.Since(reservedAt) < 10*time.Second {
			t.Errorf("released after %s, before its 10 s expiry", time.Since(reservedAt))
		}
		if n := p.stock(t, expiring.ID); n != 4 {
			t.Errorf("stock %d after expiry, want 4", n)
		}
		if got := p.product(t, api, expiring.ID, ""); got.StockQuantity != 4 {
			t.Errorf("the gateway shows stock %d after expiry", got.StockQuantity)
		}
		r := p.direct(t, 0).do("POST", "/internal/reservations/"+expiringOrder+"/commit", p.service, nil)
		if r.Status != http.StatusConflict || r.errorCode(t) != "reservation_released" {
			t.Errorf("commit after expiry: %d %s", r.Status, r.Body)
		}
		// The order service learns of it from the stream.
		waitFor(t, 10*time.Second, "inventory.released on the stream", func() error {
			entries, err := p.redis.XRange(context.Background(), events.DefaultStream, "-", "+").Result()
			if err != nil {
				return err
			}
			for _, e := range entries {
				if e.Values["type"] != events.InventoryReleased {
					continue
				}
				var env events.Envelope
				if err := json.Unmarshal([]byte(e.Values["envelope"].(string)), &env); err != nil {
					return err
				}
				var data struct {
					OrderID string `json:"order_id"`
					Reason  string `json:"reason"`
				}
				if err := env.Decode(&data); err != nil {
					return err
				}
				if data.OrderID == expiringOrder && data.Reason == "expired" && env.Source == "product" {
					return nil
				}
			}
			return fmt.Errorf("not among %d entries", len(entries))
		})
	})
}
