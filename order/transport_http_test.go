package order_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/kit/sd"
	"github.com/go-kit/log"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/order"
	"github.com/mercato-dev/mercato/order/postgres"
	"github.com/mercato-dev/mercato/product"
	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/metrics"
	"github.com/mercato-dev/mercato/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// stack is the whole order service over HTTP: real router, endpoints and
// service on a fresh, migrated PostgreSQL database, with the product and
// payment services faked.
type stack struct {
	srv       *httptest.Server
	hits      *atomic.Int64
	db        *sqlx.DB
	tokens    *auth.Tokens
	inventory *fakeInventory
	payments  *fakePayments
	a, b      string // products: a at 19.99 (10 in stock), b at 5.00 (3)
}

func newStack(t testing.TB) *stack {
	t.Helper()
	db := testkit.Postgres(t)
	if err := postgres.Schema.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	inv, pay := newFakeInventory(), newFakePayments()
	s := newStackOn(t, db, inv, pay)
	s.a, s.b = uuid.NewString(), uuid.NewString()
	inv.add(s.a, nil, 10, 1999)
	inv.add(s.b, nil, 3, 500)
	return s
}

// newStackOn serves the service on db and the given upstreams, which may be
// shared with another stack (several instances of one service).
func newStackOn(t testing.TB, db *sqlx.DB, inv *fakeInventory, pay *fakePayments) *stack {
	t.Helper()
	s := newStackUpon(t, db, inv, pay)
	s.inventory, s.payments = inv, pay
	return s
}

// newStackUpon serves the service on db and any upstreams: fakes, or the
// real clients of fake servers.
func newStackUpon(t testing.TB, db *sqlx.DB, inv order.Inventory, pay order.Payments) *stack {
	t.Helper()
	tokens, err := auth.NewTokens([]byte(testSecret), 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := order.NewService(postgres.New(db), inv, pay, tokens, order.Options{
		RequestHashKey: []byte(testSecret), TaxRateBasisPoints: 825, ShippingFee: 499})
	if err != nil {
		t.Fatal(err)
	}
	logger := log.NewNopLogger()
	reg := metrics.NewRegistry()
	svc = order.LoggingMiddleware(logger)(svc)
	svc = order.InstrumentingMiddleware(order.NewMetrics(reg))(svc)
	router := httpkit.Router(logger, reg, metrics.NewHTTP(reg, "order"), nil)
	order.MakeHTTPHandler(router, order.MakeServerEndpoints(svc, tokens), logger)
	hits := new(atomic.Int64)
	handler := httpkit.Handler(logger, router)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return &stack{srv: srv, hits: hits, db: db, tokens: tokens}
}

func (s *stack) token(t testing.TB, userID string, role auth.Role) string {
	t.Helper()
	tok, err := s.tokens.Issue(auth.Identity{UserID: userID, Role: role})
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

// call sends body (a string as is, anything else as JSON) with the token
// and headers (name, value pairs).
func (s *stack) call(t *testing.T, method, path, token string, body any, header ...string) response {
	t.Helper()
	r := testkit.Call(t, method, s.srv.URL+"/api/v1"+path, token, body, header...)
	return response{status: r.Status, header: r.Header, raw: r.Body, body: r.Object(t)}
}

func want(t *testing.T, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
}

func errorCode(r response) string {
	e, _ := r.body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// checkoutBody is a valid POST /orders body: 2 × a and 1 × b.
func (s *stack) checkoutBody() map[string]any {
	return map[string]any{
		"items": []map[string]any{{"product_id": s.a, "quantity": 2}, {"product_id": s.b, "quantity": 1}},
		"shipping_address": map[string]any{"street": " 1 Main St ", "city": "Springfield", "state": "IL",
			"zip_code": "62701", "country": "US"},
		"payment": map[string]any{"method": "card", "card": map[string]any{"number": "4242424242424242",
			"exp_month": 12, "exp_year": time.Now().Year() + 2, "cvc": "123"}},
	}
}

func obj(v any) map[string]any { m, _ := v.(map[string]any); return m }

func TestHTTPCheckoutAndOrderLife(t *testing.T) {
	s := newStack(t)
	ada, eve := uuid.NewString(), uuid.NewString()
	adaTok, eveTok, adminTok := s.token(t, ada, auth.RoleCustomer), s.token(t, eve, auth.RoleCustomer), s.token(t, uuid.NewString(), auth.RoleAdmin)

	r := s.call(t, "POST", "/orders", adaTok, s.checkoutBody())
	want(t, r, http.StatusCreated)
	o := obj(r.body["order"])
	id := o["id"].(string)
	if loc := r.header.Get("Location"); loc != "/api/v1/orders/"+id {
		t.Errorf("Location = %q", loc)
	}
	for k, v := range map[string]any{"status": "pending", "user_id": ada, "subtotal": "44.98", "tax_amount": "3.71",
		"shipping_amount": "4.99", "discount_amount": "0.00", "total_amount": "53.68", "currency": "USD"} {
		if o[k] != v {
			t.Errorf("order.%s = %v, want %v", k, o[k], v)
		}
	}
	items := o["items"].([]any)
	if len(items) != 2 || obj(items[0])["unit_price"] != "19.99" || obj(items[0])["total_price"] != "39.98" ||
		obj(items[0])["variant_id"] != nil || obj(items[0])["sku"] == "" || obj(items[1])["quantity"] != float64(1) {
		t.Errorf("items %v", items)
	}
	if obj(o["shipping_address"])["street"] != "1 Main St" || obj(o["billing_address"])["city"] != "Springfield" {
		t.Errorf("addresses %v / %v", o["shipping_address"], o["billing_address"])
	}
	if p := obj(o["payment"]); p["status"] != "pending" || obj(p["card"])["brand"] != "visa" || obj(p["card"])["last4"] != "4242" {
		t.Errorf("payment %v", p)
	}
	if h := o["status_history"].([]any); len(h) != 1 || obj(h[0])["status"] != "pending" {
		t.Errorf("history %v", h)
	}
	if strings.Contains(r.raw, "4242424242424242") || strings.Contains(r.raw, "cvc") {
		t.Errorf("the response shows the card: %s", r.raw)
	}

	// Reading: the owner and an admin; anyone else is told it does not exist.
	want(t, s.call(t, "GET", "/orders/"+id, adaTok, nil), http.StatusOK)
	want(t, s.call(t, "GET", "/orders/"+id, adminTok, nil), http.StatusOK)
	r = s.call(t, "GET", "/orders/"+id, eveTok, nil)
	want(t, r, http.StatusNotFound)
	if errorCode(r) != "not_found" {
		t.Errorf("eve's read: %s", r.raw)
	}

	// History: own orders, newest first, in the list format.
	second := s.call(t, "POST", "/orders", adaTok, s.checkoutBody())
	want(t, second, http.StatusCreated)
	s.call(t, "POST", "/orders", eveTok, s.checkoutBody())
	r = s.call(t, "GET", "/orders?page_size=1", adaTok, nil)
	want(t, r, http.StatusOK)
	if r.body["total"] != float64(2) || r.body["page"] != float64(1) || r.body["page_size"] != float64(1) ||
		obj(r.body["items"].([]any)[0])["id"] != obj(second.body["order"])["id"] {
		t.Errorf("ada's history: %s", r.raw)
	}
	r = s.call(t, "GET", "/orders", adminTok, nil)
	if r.body["total"] != float64(3) || r.body["page_size"] != float64(20) {
		t.Errorf("admin's list: %s", r.raw)
	}
	r = s.call(t, "GET", "/orders?status=cancelled", adaTok, nil)
	if !strings.Contains(r.raw, `"items":[]`) || r.body["total"] != float64(0) {
		t.Errorf("no cancelled orders: %s", r.raw)
	}

	// Fulfilment is the admin's; a pending order cannot ship.
	r = s.call(t, "POST", "/orders/"+id+"/status", adaTok, map[string]string{"status": "shipped"})
	want(t, r, http.StatusForbidden)
	r = s.call(t, "POST", "/orders/"+id+"/status", adminTok, map[string]string{"status": "shipped"})
	want(t, r, http.StatusConflict)
	if errorCode(r) != "invalid_transition" {
		t.Errorf("ship a pending order: %s", r.raw)
	}

	// Cancel: the owner, once; not someone else.
	want(t, s.call(t, "POST", "/orders/"+id+"/cancel", eveTok, nil), http.StatusNotFound)
	r = s.call(t, "POST", "/orders/"+id+"/cancel", adaTok, map[string]string{"reason": "found it cheaper"})
	want(t, r, http.StatusOK)
	if o := obj(r.body["order"]); o["status"] != "cancelled" || len(o["status_history"].([]any)) != 2 {
		t.Errorf("cancelled: %s", r.raw)
	}
	r = s.call(t, "POST", "/orders/"+id+"/cancel", adaTok, nil)
	want(t, r, http.StatusConflict)
	if errorCode(r) != "invalid_transition" {
		t.Errorf("cancel twice: %s", r.raw)
	}

	// Fulfilment of a confirmed order (as the saga leaves it).
	id2 := obj(second.body["order"])["id"].(string)
	if _, err := s.db.Exec(`UPDATE orders SET status = 'confirmed' WHERE id = $1`, id2); err != nil {
		t.Fatal(err)
	}
	for _, st := range []string{"shipped", "delivered"} {
		r = s.call(t, "POST", "/orders/"+id2+"/status", adminTok, map[string]string{"status": st})
		want(t, r, http.StatusOK)
		if obj(r.body["order"])["status"] != st {
			t.Errorf("status %s: %s", st, r.raw)
		}
	}
	want(t, s.call(t, "POST", "/orders/"+id2+"/cancel", adaTok, nil), http.StatusConflict)

	// Out of stock: 409 naming the line, nothing stored.
	before := s.rowCounts(t)
	body := s.checkoutBody()
	body["items"] = []map[string]any{{"product_id": s.b, "quantity": 3}}
	r = s.call(t, "POST", "/orders", adaTok, body)
	want(t, r, http.StatusConflict)
	if d := obj(obj(r.body["error"])["details"]); errorCode(r) != "out_of_stock" || d["product_id"] != s.b ||
		d["requested"] != float64(3) || d["available"] != float64(0) {
		t.Errorf("out of stock: %s", r.raw)
	}
	if after := s.rowCounts(t); !equalCounts(before, after) {
		t.Errorf("an out-of-stock checkout wrote rows: %v → %v", before, after)
	}
}

func TestHTTPIdempotencyKey(t *testing.T) {
	s := newStack(t)
	ada := uuid.NewString()
	tok := s.token(t, ada, auth.RoleCustomer)

	// 20 at once with one key: one order, one reservation, one charge, and
	// every answer the same order.
	const n = 20
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		bodies = map[string]int{}
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := s.call(t, "POST", "/orders", tok, s.checkoutBody(), "Idempotency-Key", "checkout-1")
			mu.Lock()
			defer mu.Unlock()
			bodies[r.raw]++
			if r.status != http.StatusCreated {
				t.Errorf("status %d: %s", r.status, r.raw)
			}
		}()
	}
	wg.Wait()
	if len(bodies) != 1 {
		t.Errorf("%d different answers to one key: %v", len(bodies), bodies)
	}
	if c := s.rowCounts(t); c["orders"] != 1 || s.inventory.reservationCount() != 1 || len(s.payments.charged()) != 1 {
		t.Errorf("rows %v, %d reservations, %d charges; want 1 of each", c, s.inventory.reservationCount(), len(s.payments.charged()))
	}

	// The same key with another body.
	other := s.checkoutBody()
	other["items"] = []map[string]any{{"product_id": s.a, "quantity": 1}}
	r := s.call(t, "POST", "/orders", tok, other, "Idempotency-Key", "checkout-1")
	want(t, r, http.StatusConflict)
	if errorCode(r) != "idempotency_mismatch" {
		t.Errorf("other body: %s", r.raw)
	}
	// Without a key every POST is an order.
	want(t, s.call(t, "POST", "/orders", tok, s.checkoutBody()), http.StatusCreated)
	if c := s.rowCounts(t); c["orders"] != 2 {
		t.Errorf("%d orders, want 2", c["orders"])
	}
	var stored string
	if err := s.db.Get(&stored, `SELECT outcome::text FROM idempotency_keys`); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stored, "4242424242424242") || !strings.Contains(stored, `"last4": "4242"`) {
		t.Errorf("stored response: %s", stored)
	}
}

// TestHTTPIdempotencyKeyReplaysBusinessErrors: a business error is final
// for its key. A repeat is answered with the same status, headers and body,
// byte for byte, even once the cause is gone, and the key keeps the domain
// error, not an HTTP answer.
func TestHTTPIdempotencyKeyReplaysBusinessErrors(t *testing.T) {
	s := newStack(t)
	tok := s.token(t, uuid.NewString(), auth.RoleCustomer)
	eur, dear, unknown := uuid.NewString(), uuid.NewString(), uuid.NewString()
	s.inventory.add(eur, nil, 5, 1000)
	s.inventory.add(dear, nil, 1000, 99_999_999_99)
	setCurrency := func(cur string) {
		s.inventory.mu.Lock()
		defer s.inventory.mu.Unlock()
		s.inventory.currency[key(eur, nil)] = cur
	}
	reject := func(r *order.RejectedError) {
		s.payments.mu.Lock()
		defer s.payments.mu.Unlock()
		s.payments.reject = r
	}
	setCurrency("EUR")
	lines := func(l ...map[string]any) map[string]any {
		body := s.checkoutBody()
		body["items"] = l
		return body
	}
	for _, tc := range []struct {
		name    string
		body    map[string]any
		before  func()
		after   func() // removes the cause: a fresh attempt would succeed
		status  int
		code    string
		details bool
	}{
		{"out of stock", lines(map[string]any{"product_id": s.b, "quantity": 4}), nil,
			func() { s.inventory.add(s.b, nil, 100, 500) }, http.StatusConflict, "out_of_stock", true},
		{"unknown product", lines(map[string]any{"product_id": unknown, "quantity": 1}), nil,
			func() { s.inventory.add(unknown, nil, 5, 100) }, http.StatusUnprocessableEntity, "unknown_product", true},
		{"mixed currencies", lines(map[string]any{"product_id": s.a, "quantity": 1}, map[string]any{"product_id": eur, "quantity": 1}), nil,
			func() { setCurrency("USD") }, http.StatusUnprocessableEntity, "mixed_currencies", false},
		{"total too large", lines(map[string]any{"product_id": dear, "quantity": 2}), nil,
			func() { s.inventory.add(dear, nil, 1000, 100) }, http.StatusUnprocessableEntity, "order_total_too_large", false},
		{"card refused", s.checkoutBody(), func() { reject(&order.RejectedError{Code: "card_not_supported", Message: "no such card here"}) },
			func() { reject(nil) }, http.StatusUnprocessableEntity, "payment_rejected", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "replay-" + strings.ReplaceAll(tc.name, " ", "-")
			if tc.before != nil {
				tc.before()
			}
			first := s.call(t, "POST", "/orders", tok, tc.body, "Idempotency-Key", key)
			want(t, first, tc.status)
			if errorCode(first) != tc.code || (obj(obj(first.body["error"])["details"]) != nil) != tc.details {
				t.Errorf("first answer: %s", first.raw)
			}
			tc.after()
			again := s.call(t, "POST", "/orders", tok, tc.body, "Idempotency-Key", key)
			if again.status != first.status || again.raw != first.raw ||
				again.header.Get("Content-Type") != first.header.Get("Content-Type") || again.header.Get("Location") != "" {
				t.Errorf("repeat answered %d %q %s\nwant %d %q %s", again.status, again.header.Get("Content-Type"), again.raw,
					first.status, first.header.Get("Content-Type"), first.raw)
			}
			var kept struct {
				Refusal map[string]any `json:"refusal"`
			}
			var raw []byte
			if err := s.db.Get(&raw, `SELECT outcome FROM idempotency_keys WHERE key = $1`, key); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &kept); err != nil || kept.Refusal["code"] != tc.code || len(kept.Refusal) > 3 {
				t.Errorf("kept %s", raw)
			}
			// Without the key the cause is gone indeed.
			want(t, s.call(t, "POST", "/orders", tok, tc.body), http.StatusCreated)
		})
	}
}

// TestHTTPRefusalShowsNothingOfAFailedCleanup: a checkout refused after
// its stock was reserved gives the stock back at once; when that fails,
// expiry does it. The client is told of the refusal alone, the first time
// and on a repeat: the release's failure is for the log, and its text
// tells of the platform's insides.
func TestHTTPRefusalShowsNothingOfAFailedCleanup(t *testing.T) {
	s := newStack(t)
	tok := s.token(t, uuid.NewString(), auth.RoleCustomer)
	eur := uuid.NewString()
	s.inventory.add(eur, nil, 5, 1000)
	s.inventory.mu.Lock()
	s.inventory.currency[key(eur, nil)] = "EUR"
	s.inventory.failRelease = errors.New("product service: dial tcp 10.1.2.3:8082: connect: connection refused")
	s.inventory.mu.Unlock()
	body := s.checkoutBody()
	body["items"] = []map[string]any{{"product_id": s.a, "quantity": 1}, {"product_id": eur, "quantity": 1}}

	first := s.call(t, "POST", "/orders", tok, body, "Idempotency-Key", "cleanup-fails")
	want(t, first, http.StatusUnprocessableEntity)
	if msg, _ := obj(first.body["error"])["message"].(string); errorCode(first) != "mixed_currencies" || strings.Contains(msg, "10.1.2.3") {
		t.Errorf("first answer: %s", first.raw)
	}
	again := s.call(t, "POST", "/orders", tok, body, "Idempotency-Key", "cleanup-fails")
	if again.status != first.status || again.raw != first.raw {
		t.Errorf("repeat answered %d %s\nwant %d %s", again.status, again.raw, first.status, first.raw)
	}
}

// TestHTTPIdempotencyKeyReplaysUpstreamErrors: business errors that come
// from the product service, as its client decodes their bodies, are
// replayed as the client first saw them; an answer of the product service
// that is a failure on our side is not final, and a retry asks again.
func TestHTTPIdempotencyKeyReplaysUpstreamErrors(t *testing.T) {
	var (
		mu     sync.Mutex
		answer string
		status int
		served int
	)
	productSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		served++
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer) // the client hanging up is the test's business
	}))
	t.Cleanup(productSrv.Close)
	answerWith := func(code int, body string) {
		mu.Lock()
		defer mu.Unlock()
		status, answer = code, body
	}
	callCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return served
	}
	db := testkit.Postgres(t)
	if err := postgres.Schema.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	products := product.NewClient(sd.FixedInstancer{productSrv.Listener.Addr().String()}, log.NewNopLogger(),
		discovery.Options{Timeout: 5 * time.Second})
	s := newStackUpon(t, db, order.NewInventory(products), newFakePayments())
	s.a, s.b = uuid.NewString(), uuid.NewString()
	tok := s.token(t, uuid.NewString(), auth.RoleCustomer)

	for _, tc := range []struct {
		name    string
		status  int
		body    string
		code    string
		details map[string]any
	}{
		{"out of stock with its line", http.StatusConflict,
			`{"error":{"code":"out_of_stock","message":"not enough stock: product ` + s.b + ` has 0 available, 1 requested","details":{"product_id":"` + s.b + `","requested":1,"available":0}}}`,
			"out_of_stock", map[string]any{"product_id": s.b, "requested": float64(1), "available": float64(0)}},
		{"out of stock without details", http.StatusConflict,
			`{"error":{"code":"out_of_stock","message":"not enough stock"}}`, "out_of_stock", nil},
		{"unknown product", http.StatusUnprocessableEntity,
			`{"error":{"code":"unknown_product","message":"a product is unknown","details":{"product_id":"` + s.a + `"}}}`,
			"unknown_product", map[string]any{"product_id": s.a}},
		{"reservation mismatch", http.StatusConflict,
			`{"error":{"code":"reservation_mismatch","message":"other items"}}`, "reservation_mismatch", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "upstream-" + strings.ReplaceAll(tc.name, " ", "-")
			answerWith(tc.status, tc.body)
			first := s.call(t, "POST", "/orders", tok, s.checkoutBody(), "Idempotency-Key", key)
			want(t, first, tc.status)
			if d := obj(first.body["error"])["details"]; errorCode(first) != tc.code || !reflect.DeepEqual(obj(d), tc.details) {
				t.Errorf("first answer: %s", first.raw)
			}
			calls := callCount()
			answerWith(http.StatusServiceUnavailable, `{"error":{"code":"service_unavailable","message":"down"}}`)
			again := s.call(t, "POST", "/orders", tok, s.checkoutBody(), "Idempotency-Key", key)
			if again.status != first.status || again.raw != first.raw || callCount() != calls {
				t.Errorf("repeat answered %d %s (%d product calls)\nwant %d %s (%d)", again.status, again.raw, callCount(), first.status, first.raw, calls)
			}
		})
	}

	// The product service refusing our token is our misconfiguration: a 500
	// that is not kept, so the retry asks again once it is fixed.
	answerWith(http.StatusForbidden, `{"error":{"code":"forbidden","message":"you are not allowed to do this"}}`)
	want(t, s.call(t, "POST", "/orders", tok, s.checkoutBody(), "Idempotency-Key", "upstream-forbidden"), http.StatusInternalServerError)
	calls := callCount()
	answerWith(http.StatusConflict, `{"error":{"code":"out_of_stock","message":"not enough stock"}}`)
	r := s.call(t, "POST", "/orders", tok, s.checkoutBody(), "Idempotency-Key", "upstream-forbidden")
	if r.status != http.StatusConflict || errorCode(r) != "out_of_stock" || callCount() == calls {
		t.Errorf("retry after a failure: %d %s (%d product calls, %d before)", r.status, r.raw, callCount(), calls)
	}
}

// rowCounts counts every table a request could write to.
func (s *stack) rowCounts(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range []string{"orders", "order_items", "order_status_history", "idempotency_keys", "outbox"} {
		var n int
		if err := s.db.Get(&n, "SELECT count(*) FROM "+table); err != nil {
			t.Fatal(err)
		}
		out[table] = n
	}
	var changed int
	if err := s.db.Get(&changed, "SELECT count(*) FROM orders WHERE updated_at <> created_at"); err != nil {
		t.Fatal(err)
	}
	out["orders updated"] = changed
	return out
}

func TestHTTPBadInput(t *testing.T) {
	s := newStack(t)
	ada := uuid.NewString()
	tok := s.token(t, ada, auth.RoleCustomer)
	admin := s.token(t, uuid.NewString(), auth.RoleAdmin)
	service, err := s.tokens.ServiceToken("payment")
	if err != nil {
		t.Fatal(err)
	}
	r := s.call(t, "POST", "/orders", tok, s.checkoutBody())
	want(t, r, http.StatusCreated)
	id := obj(r.body["order"])["id"].(string)
	before := s.rowCounts(t)
	reservations := s.inventory.reservationCount()

	// with returns a valid checkout body with one change: path is a
	// dotted path into it, value nil deletes.
	with := func(path string, value any) map[string]any {
		b := s.checkoutBody()
		parts := strings.Split(path, ".")
		m := b
		for _, p := range parts[:len(parts)-1] {
			m = m[p].(map[string]any)
		}
		if value == nil {
			delete(m, parts[len(parts)-1])
		} else {
			m[parts[len(parts)-1]] = value
		}
		return b
	}
	line := func(product string, qty any) map[string]any {
		return map[string]any{"product_id": product, "quantity": qty}
	}
	many := make([]map[string]any, 51)
	for i := range many {
		many[i] = line(uuid.NewString(), 1)
	}
	expiredYear := time.Now().Year() - 1

	tests := []struct {
		name         string
		method, path string
		token        string
		body         any
		header       []string
		status       int
		code         string
		field        string // a field the error details must name
	}{
		{"malformed JSON", "POST", "/orders", tok, `{"items":`, nil, 400, "malformed_json", ""},
		{"not an object", "POST", "/orders", tok, `[1]`, nil, 400, "invalid_type", ""},
		{"empty body", "POST", "/orders", tok, ``, nil, 400, "empty_body", ""},
		{"unknown field", "POST", "/orders", tok, with("discount", "50.00"), nil, 400, "unknown_field", "discount"},
		{"price from the client", "POST", "/orders", tok, with("items", []map[string]any{{"product_id": s.a, "quantity": 1, "unit_price": "0.01"}}), nil, 400, "unknown_field", "unit_price"},
		{"quantity as a string", "POST", "/orders", tok, with("items", []map[string]any{line(s.a, "2")}), nil, 400, "invalid_type", ""},
		{"no items", "POST", "/orders", tok, with("items", []any{}), nil, 422, "validation_failed", "items"},
		{"items missing", "POST", "/orders", tok, with("items", nil), nil, 422, "validation_failed", "items"},
		{"too many lines", "POST", "/orders", tok, with("items", many), nil, 422, "validation_failed", "items"},
		{"product id not a UUID", "POST", "/orders", tok, with("items", []map[string]any{line("mug", 1)}), nil, 422, "validation_failed", "items[0].product_id"},
		{"variant id not a UUID", "POST", "/orders", tok, with("items", []map[string]any{{"product_id": s.a, "variant_id": "m", "quantity": 1}}), nil, 422, "validation_failed", "items[0].variant_id"},
		{"zero quantity", "POST", "/orders", tok, with("items", []map[string]any{line(s.a, 0)}), nil, 422, "validation_failed", "items[0].quantity"},
		{"negative quantity", "POST", "/orders", tok, with("items", []map[string]any{line(s.a, -2)}), nil, 422, "validation_failed", "items[0].quantity"},
		{"huge quantity", "POST", "/orders", tok, with("items", []map[string]any{line(s.a, 1001)}), nil, 422, "validation_failed", "items[0].quantity"},
		{"fractional quantity", "POST", "/orders", tok, with("items", []map[string]any{line(s.a, 1.5)}), nil, 400, "invalid_type", ""},
		{"a product twice", "POST", "/orders", tok, with("items", []map[string]any{line(s.a, 1), line(strings.ToUpper(s.a), 1)}), nil, 422, "validation_failed", "items[1]"},
		{"no shipping address", "POST", "/orders", tok, with("shipping_address", nil), nil, 422, "validation_failed", "shipping_address.street"},
		{"blank city", "POST", "/orders", tok, with("shipping_address.city", "  "), nil, 422, "validation_failed", "shipping_address.city"},
		{"long zip", "POST", "/orders", tok, with("shipping_address.zip_code", strings.Repeat("9", 21)), nil, 422, "validation_failed", "shipping_address.zip_code"},
		{"NUL in street", "POST", "/orders", tok, with("shipping_address.street", "a\u0000b"), nil, 422, "validation_failed", "shipping_address.street"},
		{"bad billing address", "POST", "/orders", tok, with("billing_address", map[string]any{"street": "x"}), nil, 422, "validation_failed", "billing_address.city"},
		{"payment method", "POST", "/orders", tok, with("payment.method", "cash"), nil, 422, "validation_failed", "payment.method"},
		{"no card", "POST", "/orders", tok, with("payment.card", nil), nil, 422, "validation_failed", "payment.card.number"},
		{"card number fails Luhn", "POST", "/orders", tok, with("payment.card.number", "4242424242424241"), nil, 422, "validation_failed", "payment.card.number"},
		{"card number with letters", "POST", "/orders", tok, with("payment.card.number", "4242-4242-4242-4242"), nil, 422, "validation_failed", "payment.card.number"},
		{"card number as a number", "POST", "/orders", tok, with("payment.card.number", 4242424242424242), nil, 400, "invalid_type", ""},
		{"expired card", "POST", "/orders", tok, with("payment.card.exp_year", expiredYear), nil, 422, "validation_failed", "payment.card.exp_year"},
		{"month 13", "POST", "/orders", tok, with("payment.card.exp_month", 13), nil, 422, "validation_failed", "payment.card.exp_month"},
		{"two-digit year", "POST", "/orders", tok, with("payment.card.exp_year", 29), nil, 422, "validation_failed", "payment.card.exp_year"},
		{"short cvc", "POST", "/orders", tok, with("payment.card.cvc", "12"), nil, 422, "validation_failed", "payment.card.cvc"},
		{"idempotency key too long", "POST", "/orders", tok, s.checkoutBody(), []string{"Idempotency-Key", strings.Repeat("k", 256)}, 422, "validation_failed", "Idempotency-Key"},
		{"idempotency key not ASCII", "POST", "/orders", tok, s.checkoutBody(), []string{"Idempotency-Key", "clé"}, 422, "validation_failed", "Idempotency-Key"},
		{"form body", "POST", "/orders", tok, `items=1`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "unsupported_media_type", ""},
		{"huge body", "POST", "/orders", tok, `{"items":[],"x":"` + strings.Repeat("x", 1<<20) + `"}`, nil, 413, "body_too_large", ""},
		{"no token", "POST", "/orders", "", s.checkoutBody(), nil, 401, "unauthenticated", ""},
		{"bad token", "POST", "/orders", "garbage", s.checkoutBody(), nil, 401, "unauthenticated", ""},
		{"service token", "POST", "/orders", service, s.checkoutBody(), nil, 403, "forbidden", ""},
		{"list: bad status", "GET", "/orders?status=lost", tok, nil, nil, 422, "validation_failed", "status"},
		{"list: page 0", "GET", "/orders?page=0", tok, nil, nil, 422, "validation_failed", "page"},
		{"list: page size 101", "GET", "/orders?page_size=101", tok, nil, nil, 422, "validation_failed", "page_size"},
		{"list: page not a number", "GET", "/orders?page=two", tok, nil, nil, 422, "validation_failed", "page"},
		{"list: no token", "GET", "/orders", "", nil, nil, 401, "unauthenticated", ""},
		{"get: id not a UUID", "GET", "/orders/42", tok, nil, nil, 404, "not_found", ""},
		{"get: unknown id", "GET", "/orders/" + uuid.NewString(), tok, nil, nil, 404, "not_found", ""},
		{"cancel: unknown field", "POST", "/orders/" + id + "/cancel", tok, `{"why":"x"}`, nil, 400, "unknown_field", "why"},
		{"cancel: reason too long", "POST", "/orders/" + id + "/cancel", tok, map[string]string{"reason": strings.Repeat("r", 501)}, nil, 422, "validation_failed", "reason"},
		{"cancel: malformed", "POST", "/orders/" + id + "/cancel", tok, `{`, nil, 400, "malformed_json", ""},
		{"cancel: id not a UUID", "POST", "/orders/x/cancel", tok, nil, nil, 404, "not_found", ""},
		{"status: not fulfilment", "POST", "/orders/" + id + "/status", admin, map[string]string{"status": "confirmed"}, nil, 422, "validation_failed", "status"},
		{"status: refunded by hand", "POST", "/orders/" + id + "/status", admin, map[string]string{"status": "refunded"}, nil, 422, "validation_failed", "status"},
		{"status: empty body", "POST", "/orders/" + id + "/status", admin, ``, nil, 400, "empty_body", ""},
		{"status: wrong type", "POST", "/orders/" + id + "/status", admin, `{"status":1}`, nil, 400, "invalid_type", ""},
		{"status: a customer", "POST", "/orders/" + id + "/status", tok, map[string]string{"status": "shipped"}, nil, 403, "forbidden", ""},
		{"status: unknown order", "POST", "/orders/" + uuid.NewString() + "/status", admin, map[string]string{"status": "shipped"}, nil, 404, "not_found", ""},
		{"wrong method", "DELETE", "/orders/" + id, admin, nil, nil, 405, "method_not_allowed", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.call(t, tc.method, tc.path, tc.token, tc.body, tc.header...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %.300s", r.status, tc.status, r.raw)
			}
			if errorCode(r) != tc.code || obj(r.body["error"])["message"] == "" {
				t.Errorf("error %.300s, want code %s", r.raw, tc.code)
			}
			if tc.field != "" {
				if _, ok := obj(obj(r.body["error"])["details"])[tc.field]; !ok {
					t.Errorf("details do not name %s: %.300s", tc.field, r.raw)
				}
			}
			if strings.Contains(r.raw, "4242424242424241") {
				t.Errorf("the error repeats the card number: %s", r.raw)
			}
		})
	}
	if after := s.rowCounts(t); !equalCounts(before, after) {
		t.Errorf("bad input wrote rows: %v → %v", before, after)
	}
	if s.inventory.reservationCount() != reservations || len(s.payments.charged()) != 1 {
		t.Errorf("bad input reached the upstreams: %d reservations, %d charges", s.inventory.reservationCount(), len(s.payments.charged()))
	}
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

// TestHTTPUpstreamDown: with the product service unreachable a checkout is
// a 503 that writes nothing; with the payment service unreachable it is a
// 503 too, and a retry under the same key completes the same order.
func TestHTTPUpstreamDown(t *testing.T) {
	s := newStack(t)
	tok := s.token(t, uuid.NewString(), auth.RoleCustomer)
	s.inventory.setFail(order.ErrUpstreamUnavailable)
	r := s.call(t, "POST", "/orders", tok, s.checkoutBody(), "Idempotency-Key", "k1")
	want(t, r, http.StatusServiceUnavailable)
	if errorCode(r) != "service_unavailable" {
		t.Errorf("product down: %s", r.raw)
	}
	s.inventory.setFail(nil)
	if c := s.rowCounts(t); c["orders"] != 0 || c["outbox"] != 0 {
		t.Errorf("rows after the product service failed: %v", c)
	}

	s.payments.setFail(order.ErrUpstreamUnavailable, false)
	want(t, s.call(t, "POST", "/orders", tok, s.checkoutBody(), "Idempotency-Key", "k1"), http.StatusServiceUnavailable)
	s.payments.setFail(nil, false)
	r = s.call(t, "POST", "/orders", tok, s.checkoutBody(), "Idempotency-Key", "k1")
	want(t, r, http.StatusCreated)
	if p := obj(obj(r.body["order"])["payment"]); p["status"] != "pending" {
		t.Errorf("payment after the retry: %v", p)
	}
	if c := s.rowCounts(t); c["orders"] != 1 || s.inventory.reservationCount() != 1 || len(s.payments.charged()) != 1 {
		t.Errorf("rows %v, %d reservations, %d charges after the retry", c, s.inventory.reservationCount(), len(s.payments.charged()))
	}
}
