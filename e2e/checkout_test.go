package e2e

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/consul/api"
	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/clients/go/mercato"
	"github.com/mercato-dev/mercato/e2e/load"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/localinfra"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// Sandbox cards (API.md).
const (
	cardOK                = "4242424242424242"
	cardDeclined          = "4000000000000002"
	cardInsufficientFunds = "4000000000009995"
)

// checkoutWebhookSecret signs the sandbox processor's webhooks.
const checkoutWebhookSecret = "e2e-webhook-secret-that-is-long-enough"

// checkoutHashKey keys the order service's hashes of Idempotency-Key requests.
const checkoutHashKey = "e2e-idempotency-hash-key-long-enough"

// checkoutPlatform is the whole checkout: Consul, PostgreSQL with a database
// per service, one Redis (events, caches, rate limits), the gateway and two
// instances each of user, product, order and payment, all real binaries.
type checkoutPlatform struct {
	owner  testing.TB // the test the platform lives as long as
	consul string
	rdb    *redis.Client
	// The platform's own Redis and Consul, which the chaos suite stops
	// and starts; gateways are every gateway (gateway is the first).
	redisSrv  *localinfra.Redis
	consulSrv *localinfra.Consul
	gateways  []*proc
	db        map[string]*sqlx.DB // by service
	dbURL     map[string]string   // the databases' URLs, by service
	args      map[string][]string // each service's command line, for restarts
	procs     map[string][]*proc
	gateway   *proc
	http      *http.Client // to the gateway
	admin     string       // the admin's access token

	products map[string]checkoutProduct // by name
}

type checkoutProduct struct {
	ID      string
	Initial int // stock when created
}

// checkoutOptions are the knobs the tests and the benchmark turn.
type checkoutOptions struct {
	reservationTTL string // -reservation-ttl of the order service
	webhookDelay   string // -webhook-delay of the payment service
	logLevel       string
	// observe, when set, has every process export its spans to its Jaeger
	// and its log lines shipped to its VictoriaLogs; notification runs the
	// notification service too, sending to sink.
	observe      *observability
	notification bool
	sink         *sink
	extraArgs    map[string][]string // more flags per service (the storefront's test: -seed-demo)
	gateways     int                 // how many gateways run (default 1)
}

func startCheckoutPlatform(t testing.TB, opts checkoutOptions) *checkoutPlatform {
	t.Helper()
	// A Consul agent of its own: instances other tests killed are never
	// routed to.
	consulSrv := testkit.NewConsul(t)
	p := &checkoutPlatform{owner: t, consul: consulSrv.Addr(), consulSrv: consulSrv, db: map[string]*sqlx.DB{}, args: map[string][]string{},
		procs: map[string][]*proc{}, products: map[string]checkoutProduct{},
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}
	// A Redis of its own: other tests' streams and consumer groups stay apart.
	redisSrv := testkit.NewRedis(t)
	p.redisSrv = redisSrv
	p.rdb = redis.NewClient(redisSrv.Options(localinfra.RedisAdmin))
	t.Cleanup(func() { p.rdb.Close() })
	urls := map[string]string{}
	p.dbURL = urls
	dbServices := []string{"user", "product", "order", "payment"}
	if opts.notification {
		dbServices = append(dbServices, "notification")
	}
	for _, svc := range dbServices {
		urls[svc] = testkit.PostgresURL(t)
		db, err := sqlx.Open("postgres", urls[svc])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		p.db[svc] = db
	}
	logLevel := cmp.Or(opts.logLevel, "info")
	opts.reservationTTL = cmp.Or(opts.reservationTTL, "15m")
	opts.webhookDelay = cmp.Or(opts.webhookDelay, "200ms")
	common := func(svc string) []string {
		return append([]string{"-consul-addr", p.consul, "-redis-addr", redisSrv.Addr(), "-jwt-secret", jwtSecret,
			"-database-url", urls[svc], "-log-level", logLevel}, opts.observe.args()...)
	}

	// The gateway first: the payment service posts its webhooks to it.
	p.args["gateway"] = append([]string{"-consul-addr", p.consul, "-redis-addr", redisSrv.Addr(),
		"-jwt-secret", jwtSecret, "-rate-limit", "1000000", "-rate-burst", "100000", "-log-level", logLevel}, opts.observe.args()...)
	for range max(1, opts.gateways) {
		gw := start(t, "gateway", p.args["gateway"]...)
		opts.observe.ship(gw)
		p.gateways = append(p.gateways, gw)
	}
	p.gateway = p.gateways[0]

	p.args["user"] = append(common("user"), "-bcrypt-cost", "4", "-admin-email", "admin@mercato.test", "-admin-password", "admin-password-1")
	p.args["product"] = append(common("product"), "-sweep-interval", "1s")
	p.args["payment"] = append(common("payment"), "-webhook-url", "http://"+p.gateway.addr+"/api/v1/webhooks/payments/sandbox",
		"-webhook-secret", checkoutWebhookSecret, "-webhook-delay", opts.webhookDelay)
	p.args["order"] = append(common("order"), "-tax-rate-bps", "825", "-shipping-fee", "4.99",
		"-reservation-ttl", opts.reservationTTL, "-event-claim-idle", "3s", "-idempotency-hash-key", checkoutHashKey)
	svcs := []string{"user", "product", "payment", "order"}
	if opts.notification {
		p.args["notification"] = append(common("notification"), "-smtp-addr", opts.sink.ln.Addr().String(),
			"-send-poll-interval", "100ms", "-send-timeout", "2s", "-send-backoff", "200ms", "-send-max-backoff", "1s")
		svcs = append(svcs, "notification")
	}
	for _, svc := range svcs {
		p.args[svc] = append(p.args[svc], opts.extraArgs[svc]...)
		for range 2 {
			pr := start(t, svc, p.args[svc]...)
			opts.observe.ship(pr)
			p.procs[svc] = append(p.procs[svc], pr)
		}
		waitPassing(t, p.consul, svc, 2)
	}

	var admin tokenPair
	p.call(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": "admin@mercato.test", "password": "admin-password-1"}).
		must(t, http.StatusOK).decode(t, &admin)
	p.admin = admin.AccessToken
	return p
}

// checkoutResponse is an answer of the gateway, with the request it
// answers.
type checkoutResponse struct {
	Status int
	Header http.Header
	Body   []byte

	req     *http.Request
	reqBody []byte
}

func (r checkoutResponse) must(t testing.TB, status int) checkoutResponse {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %.500s", r.Status, status, r.Body)
	}
	return r
}

func (r checkoutResponse) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %.300s: %v", r.Body, err)
	}
}

// errorCode is error.code of the API's JSON error body; anything else fails.
func (r checkoutResponse) errorCode(t testing.TB) string {
	t.Helper()
	var b struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &b); err != nil || b.Error.Code == "" || b.Error.Message == "" {
		t.Fatalf("status %d: want a JSON error body, got %.300q", r.Status, r.Body)
	}
	return b.Error.Code
}

// call sends body to the gateway: []byte and string as they are, anything
// else as JSON, nil as nothing; header holds name, value pairs. The exchange
// is checked against docs/openapi.yaml (checkAgainstOpenAPI).
func (p *checkoutPlatform) call(t testing.TB, method, path, token string, body any, header ...string) checkoutResponse {
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		raw = b
	case string:
		raw = []byte(b)
	default:
		raw = mustJSON(t, b)
	}
	r, err := p.send(method, path, token, raw, header...)
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstOpenAPI(t, r.req, r.reqBody, r.Status, r.Header, r.Body)
	return r
}

// send is call without a test to fail, for goroutines.
func (p *checkoutPlatform) send(method, path, token string, body []byte, header ...string) (checkoutResponse, error) {
	req, err := http.NewRequest(method, "http://"+p.gateway.addr+path, bytes.NewReader(body))
	if err != nil {
		return checkoutResponse{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return checkoutResponse{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return checkoutResponse{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return checkoutResponse{Status: resp.StatusCode, Header: resp.Header, Body: b, req: req, reqBody: body}, nil
}

// restart starts instance i of svc again, as a crashed instance is by its
// supervisor, and waits until both instances pass their checks.
func (p *checkoutPlatform) restart(t *testing.T, svc string, i int) {
	t.Helper()
	p.procs[svc][i] = launch(t, p.owner, svc, p.args[svc]...)
	p.waitInstances(t, svc)
}

// waitInstances waits until the passing instances of svc in Consul are
// exactly the running ones: the new ones checked, the killed ones failed.
// Until then callers may still be sent to a dead address, which is the
// crash itself, not what the tests after it are about.
func (p *checkoutPlatform) waitInstances(t *testing.T, svc string) {
	t.Helper()
	consul, err := api.NewClient(&api.Config{Address: p.consul, Token: testkit.ConsulToken(t, p.consul, "")})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, pr := range p.procs[svc] {
		want = append(want, pr.addr)
	}
	sort.Strings(want)
	waitFor(t, 30*time.Second, "the running "+svc+" instances, and only them, passing in Consul", func() error {
		entries, _, err := consul.Health().Service(svc, "", true, nil)
		if err != nil {
			return err
		}
		var got []string
		for _, e := range entries {
			got = append(got, fmt.Sprintf("%s:%d", e.Service.Address, e.Service.Port))
		}
		sort.Strings(got)
		if !reflect.DeepEqual(got, want) {
			return fmt.Errorf("passing %v, running %v", got, want)
		}
		return nil
	})
	// The services' own watches of Consul follow within a moment.
	time.Sleep(500 * time.Millisecond)
}

// seed creates a product through the admin API.
func (p *checkoutPlatform) seed(t testing.TB, name, price string, stock int) checkoutProduct {
	t.Helper()
	var out struct {
		Product struct {
			ID string `json:"id"`
		} `json:"product"`
	}
	sku := strings.ToUpper(strings.ReplaceAll(name, " ", "-")) + "-" + uuid.NewString()[:6]
	p.call(t, "POST", "/api/v1/products", p.admin, map[string]any{"name": name, "sku": sku, "price": price,
		"stock_quantity": stock, "short_description": "e2e " + name}).must(t, http.StatusCreated).decode(t, &out)
	pr := checkoutProduct{ID: out.Product.ID, Initial: stock}
	p.products[name] = pr
	return pr
}

// customer registers someone new and returns their id and access token.
func (p *checkoutPlatform) customer(t testing.TB) (string, string) {
	t.Helper()
	email := "c-" + uuid.NewString()[:8] + "@example.com"
	var reg struct {
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	p.call(t, "POST", "/api/v1/auth/register", "", map[string]any{"email": email, "password": "correct-horse",
		"first_name": "Grace", "last_name": "Hopper"}).must(t, http.StatusCreated).decode(t, &reg)
	var tp tokenPair
	p.call(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": email, "password": "correct-horse"}).
		must(t, http.StatusOK).decode(t, &tp)
	return reg.User.ID, tp.AccessToken
}

// checkoutOrder is the API's order, the fields the tests look at.
type checkoutOrder struct {
	ID          string `json:"id"`
	OrderNumber string `json:"order_number"`
	UserID      string `json:"user_id"`
	Status      string `json:"status"`
	Items       []struct {
		ProductID  string `json:"product_id"`
		Quantity   int    `json:"quantity"`
		UnitPrice  string `json:"unit_price"`
		TotalPrice string `json:"total_price"`
		Name       string `json:"name"`
	} `json:"items"`
	Subtotal       string `json:"subtotal"`
	TaxAmount      string `json:"tax_amount"`
	ShippingAmount string `json:"shipping_amount"`
	DiscountAmount string `json:"discount_amount"`
	TotalAmount    string `json:"total_amount"`
	Currency       string `json:"currency"`
	Payment        *struct {
		ID             string `json:"id"`
		Status         string `json:"status"`
		RefundedAmount string `json:"refunded_amount"`
		Card           struct {
			Brand string `json:"brand"`
			Last4 string `json:"last4"`
		} `json:"card"`
	} `json:"payment"`
	StatusHistory []struct {
		Status string `json:"status"`
		Reason string `json:"reason"`
	} `json:"status_history"`
}

type checkoutLine struct {
	product  checkoutProduct
	quantity int
}

func checkoutBody(card string, lines ...checkoutLine) map[string]any {
	var items []map[string]any
	for _, l := range lines {
		items = append(items, map[string]any{"product_id": l.product.ID, "quantity": l.quantity})
	}
	return map[string]any{
		"items": items,
		"shipping_address": map[string]any{"street": "1 Infinite Loop", "city": "Cupertino", "state": "CA",
			"zip_code": "95014", "country": "US"},
		"payment": map[string]any{"method": "card", "card": map[string]any{"number": card, "exp_month": 12,
			"exp_year": time.Now().Year() + 3, "cvc": "123"}},
	}
}

// place posts an order and returns it as answered (201).
func (p *checkoutPlatform) place(t testing.TB, token, card string, lines ...checkoutLine) checkoutOrder {
	t.Helper()
	var out struct {
		Order checkoutOrder `json:"order"`
	}
	r := p.call(t, "POST", "/api/v1/orders", token, checkoutBody(card, lines...))
	r.must(t, http.StatusCreated).decode(t, &out)
	if out.Order.Status != "pending" || out.Order.ID == "" {
		t.Fatalf("placed order %+v", out.Order)
	}
	return out.Order
}

func (p *checkoutPlatform) order(t testing.TB, token, id string) checkoutOrder {
	t.Helper()
	var out struct {
		Order checkoutOrder `json:"order"`
	}
	p.call(t, "GET", "/api/v1/orders/"+id, token, nil).must(t, http.StatusOK).decode(t, &out)
	return out.Order
}

// waitStatus waits until the order has status and returns it.
func (p *checkoutPlatform) waitStatus(t testing.TB, token, id, status string, timeout time.Duration) checkoutOrder {
	t.Helper()
	var o checkoutOrder
	waitFor(t, timeout, "order "+id+" to be "+status, func() error {
		o = p.order(t, token, id)
		if o.Status != status {
			return fmt.Errorf("status %s, history %+v", o.Status, o.StatusHistory)
		}
		return nil
	})
	return o
}

// stock reads a product's available stock where it is kept.
func (p *checkoutPlatform) stock(t testing.TB, pr checkoutProduct) int {
	t.Helper()
	var n int
	if err := p.db["product"].Get(&n, `SELECT stock_quantity FROM products WHERE id = $1`, pr.ID); err != nil {
		t.Fatal(err)
	}
	return n
}

// payment is an order's payment as the payment service keeps it.
type checkoutPayment struct {
	ID       string `db:"id"`
	OrderID  string `db:"order_id"`
	Status   string `db:"status"`
	Amount   string `db:"amount"`
	Captured string `db:"captured_amount"`
	Refunded string `db:"refunded_amount"`
	ChargeID string `db:"charge_id"`
}

func (p *checkoutPlatform) payment(t *testing.T, orderID string) checkoutPayment {
	t.Helper()
	var pay checkoutPayment
	if err := p.db["payment"].Get(&pay, `
		SELECT id, order_id, status, amount::text AS amount, captured_amount::text AS captured_amount,
		       refunded_amount::text AS refunded_amount, coalesce(provider_transaction_id, '') AS charge_id
		FROM payments WHERE order_id = $1`, orderID); err != nil {
		t.Fatalf("payment of order %s: %v", orderID, err)
	}
	return pay
}

// streamEvents returns the events on the stream that mention orderID, by type.
func (p *checkoutPlatform) streamEvents(t *testing.T, orderID string) map[string][]events.Envelope {
	t.Helper()
	entries, err := p.rdb.XRange(context.Background(), events.DefaultStream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]events.Envelope{}
	for _, e := range entries {
		var env events.Envelope
		if err := json.Unmarshal([]byte(e.Values["envelope"].(string)), &env); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(env.Data), orderID) {
			out[env.Type] = append(out[env.Type], env)
		}
	}
	return out
}

// checkInvariants waits (bounded) until the three invariants of the
// checkout hold across the product, order and payment databases, and fails
// with the violations if they do not:
//
//  1. stock: for every product, available + reserved + sold = the stock it
//     was given (initial and admin adjustments), and what is sold is exactly
//     what the orders that went through hold;
//  2. money: for every order, what its payment captured minus what was
//     refunded equals its total minus its refunds if it is confirmed,
//     shipped or delivered, and zero otherwise — and so in sum;
//  3. every order is final (confirmed, shipped, delivered, cancelled,
//     refunded), or pending with a live reservation.
func (p *checkoutPlatform) checkInvariants(t *testing.T) {
	t.Helper()
	waitFor(t, 45*time.Second, "the checkout invariants", func() error {
		return errors.Join(p.stockInvariant(t), p.moneyInvariant(t), p.orderInvariant(t))
	})
}

func (p *checkoutPlatform) stockInvariant(t *testing.T) error {
	t.Helper()
	type row struct {
		ID        string `db:"id"`
		Available int    `db:"available"`
		Given     int    `db:"given"`
		Reserved  int    `db:"reserved"`
		Sold      int    `db:"sold"`
	}
	var rows []row
	if err := p.db["product"].Select(&rows, `
		SELECT p.id, p.stock_quantity AS available,
		  coalesce((SELECT sum(delta) FROM stock_movements m WHERE m.product_id = p.id AND m.variant_id IS NULL
		            AND m.reason IN ('initial', 'adjust')), 0) AS given,
		  coalesce((SELECT sum(i.quantity) FROM reservation_items i JOIN inventory_reservations r USING (order_id)
		            WHERE i.product_id = p.id AND r.status = 'reserved'), 0) AS reserved,
		  coalesce((SELECT sum(i.quantity) FROM reservation_items i JOIN inventory_reservations r USING (order_id)
		            WHERE i.product_id = p.id AND r.status = 'committed'), 0) AS sold
		FROM products p`); err != nil {
		t.Fatal(err)
	}
	// What the orders that went through hold, per product.
	var lines []struct {
		ProductID string `db:"product_id"`
		Quantity  int    `db:"quantity"`
	}
	if err := p.db["order"].Select(&lines, `
		SELECT i.product_id, sum(i.quantity) AS quantity FROM order_items i JOIN orders o ON o.id = i.order_id
		WHERE o.status IN ('confirmed', 'shipped', 'delivered', 'refunded') GROUP BY i.product_id`); err != nil {
		t.Fatal(err)
	}
	ordered := map[string]int{}
	for _, l := range lines {
		ordered[l.ProductID] = l.Quantity
	}
	var errs []error
	for _, r := range rows {
		if r.Available+r.Reserved+r.Sold != r.Given {
			errs = append(errs, fmt.Errorf("product %s: available %d + reserved %d + sold %d != given %d",
				r.ID, r.Available, r.Reserved, r.Sold, r.Given))
		}
		if r.Sold != ordered[r.ID] {
			errs = append(errs, fmt.Errorf("product %s: %d sold, but the orders that went through hold %d", r.ID, r.Sold, ordered[r.ID]))
		}
	}
	if len(rows) == 0 {
		errs = append(errs, errors.New("no products"))
	}
	return errors.Join(errs...)
}

// moneyInvariant is the load generator's money check (load.Databases.Money).
func (p *checkoutPlatform) moneyInvariant(t *testing.T) error {
	t.Helper()
	dbs := load.Databases{Product: p.db["product"], Order: p.db["order"], Payment: p.db["payment"]}
	if inv := dbs.Money(context.Background()); !inv.OK {
		return errors.New(inv.Name + ": " + inv.Detail)
	}
	return nil
}

func (p *checkoutPlatform) orderInvariant(t *testing.T) error {
	t.Helper()
	var pending []string
	if err := p.db["order"].Select(&pending, `SELECT id FROM orders WHERE status = 'pending'`); err != nil {
		t.Fatal(err)
	}
	var errs []error
	for _, id := range pending {
		var live bool
		err := p.db["product"].Get(&live, `SELECT status = 'reserved' AND expires_at > now() FROM inventory_reservations
			WHERE order_id = $1`, id)
		if err != nil || !live {
			errs = append(errs, fmt.Errorf("order %s is pending without a live reservation (%v)", id, err))
		}
	}
	var bad int
	if err := p.db["order"].Get(&bad, `SELECT count(*) FROM orders WHERE status NOT IN
		('pending', 'confirmed', 'shipped', 'delivered', 'cancelled', 'refunded')`); err != nil || bad != 0 {
		errs = append(errs, fmt.Errorf("%d orders in an unknown status (%v)", bad, err))
	}
	return errors.Join(errs...)
}

// rowCounts counts the rows a checkout request could write, across services.
func (p *checkoutPlatform) rowCounts(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for svc, tables := range map[string][]string{
		"order":   {"orders", "order_items", "order_status_history", "idempotency_keys", "outbox"},
		"payment": {"payments", "refunds", "webhook_events"},
		"product": {"inventory_reservations", "stock_movements"},
	} {
		for _, table := range tables {
			var n int
			if err := p.db[svc].Get(&n, "SELECT count(*) FROM "+table); err != nil {
				t.Fatal(err)
			}
			out[svc+"."+table] = n
		}
	}
	return out
}

func signWebhook(secret string, body []byte, at time.Time) string {
	ts := strconv.FormatInt(at.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// TestCheckout drives one platform through the checkout saga: the happy
// path, declines, idempotency, refunds, cancellation, webhook forgeries, bad
// input and crashes, checking the invariants after each. The subtests share
// the platform and run in order.
func TestCheckout(t *testing.T) {
	// Reservations expire after 20s (the last subtest waits for one), and
	// the sandbox confirms a charge 1s after taking it: long enough for the
	// crash tests to kill instances between the two.
	p := startCheckoutPlatform(t, checkoutOptions{reservationTTL: "20s", webhookDelay: "1s"})
	mug := p.seed(t, "Enamel Mug", "19.99", 100)
	tee := p.seed(t, "Cotton Tee", "5.00", 50)
	p.seed(t, "Rare Print", "120.00", 2)
	for _, svc := range []string{"user", "product", "order", "payment"} {
		waitPassing(t, p.consul, svc, 2)
	}

	t.Run("register, browse, order with 4242: confirmed, stock sold, payment captured, events on the stream", func(t *testing.T) {
		_, token := p.customer(t)
		// Browse, as anyone.
		var list struct {
			Items []struct {
				ID    string `json:"id"`
				Price string `json:"price"`
			} `json:"items"`
		}
		p.call(t, "GET", "/api/v1/products?q=mug", "", nil).must(t, http.StatusOK).decode(t, &list)
		if len(list.Items) != 1 || list.Items[0].ID != mug.ID || list.Items[0].Price != "19.99" {
			t.Fatalf("search for mug: %+v", list)
		}
		p.call(t, "GET", "/api/v1/products/"+mug.ID, "", nil).must(t, http.StatusOK)

		o := p.place(t, token, cardOK, checkoutLine{mug, 2}, checkoutLine{tee, 1})
		// 2 × 19.99 + 5.00 = 44.98; tax 8.25% = 3.71; shipping 4.99.
		if o.Subtotal != "44.98" || o.TaxAmount != "3.71" || o.ShippingAmount != "4.99" || o.DiscountAmount != "0.00" ||
			o.TotalAmount != "53.68" || o.Currency != "USD" || len(o.Items) != 2 || o.Items[0].UnitPrice != "19.99" ||
			o.Items[0].Name != "Enamel Mug" || o.Payment == nil || o.Payment.Card.Last4 != "4242" {
			t.Fatalf("placed order %+v", o)
		}
		confirmed := p.waitStatus(t, token, o.ID, "confirmed", 30*time.Second)
		if confirmed.Payment.Status != "captured" || len(confirmed.StatusHistory) != 2 {
			t.Errorf("confirmed order %+v", confirmed)
		}
		if got := p.stock(t, mug); got != mug.Initial-2 {
			t.Errorf("mug stock %d, want %d", got, mug.Initial-2)
		}
		if got := p.stock(t, tee); got != tee.Initial-1 {
			t.Errorf("tee stock %d, want %d", got, tee.Initial-1)
		}
		pay := p.payment(t, o.ID)
		if pay.Status != "completed" || pay.Captured != "53.68" || pay.Refunded != "0.00" {
			t.Errorf("payment %+v", pay)
		}
		// The customer sees it through the payment API too.
		var payments struct {
			Items []struct {
				Status string `json:"status"`
				Amount string `json:"amount"`
			} `json:"items"`
		}
		p.call(t, "GET", "/api/v1/payments?order_id="+o.ID, token, nil).must(t, http.StatusOK).decode(t, &payments)
		if len(payments.Items) != 1 || payments.Items[0].Status != "completed" || payments.Items[0].Amount != "53.68" {
			t.Errorf("GET /payments: %+v", payments)
		}
		waitFor(t, 10*time.Second, "order.created, payment.processed, order.updated on the stream", func() error {
			evs := p.streamEvents(t, o.ID)
			var updated []string
			for _, e := range evs[events.OrderUpdated] {
				var d struct{ Status string }
				_ = e.Decode(&d)
				updated = append(updated, d.Status)
			}
			if len(evs[events.OrderCreated]) != 1 || len(evs[events.PaymentProcessed]) != 1 || !reflect.DeepEqual(updated, []string{"confirmed"}) {
				return fmt.Errorf("created %d, processed %d, updated to %v", len(evs[events.OrderCreated]), len(evs[events.PaymentProcessed]), updated)
			}
			return nil
		})
		p.checkInvariants(t)
	})

	t.Run("the generated Go client: register, log in, check out, see it confirmed, notified", func(t *testing.T) {
		// What a storefront in Go, or the compose and Kubernetes smoke tests, do
		// with clients/go/mercato.
		ctx := context.Background()
		api := newAPIClient(t, p.gateway.addr)
		email := "go-" + uuid.NewString()[:8] + "@example.com"
		reg, err := api.RegisterWithResponse(ctx, mercato.Registration{Email: email, Password: "correct-horse", FirstName: "Go", LastName: "Pher"})
		mustStatus(t, "register", reg, reg.Body, err, http.StatusCreated)
		login, err := api.LoginWithResponse(ctx, mercato.Credentials{Email: email, Password: "correct-horse"})
		mustStatus(t, "login", login, login.Body, err, http.StatusOK)
		customer := newAPIClient(t, p.gateway.addr, mercato.WithToken(login.JSON200.AccessToken))

		q := "mug"
		found, err := customer.ListProductsWithResponse(ctx, &mercato.ListProductsParams{Q: &q})
		mustStatus(t, "search", found, found.Body, err, http.StatusOK)
		if len(found.JSON200.Items) != 1 || found.JSON200.Items[0].Id != mug.ID {
			t.Fatalf("search for mug: %s", found.Body)
		}
		key := "go-client-" + uuid.NewString()
		address := mercato.OrderAddressInput{Street: "1 Main St", City: "Springfield", State: "IL", ZipCode: "62701", Country: "US"}
		placed, err := customer.PlaceOrderWithResponse(ctx, &mercato.PlaceOrderParams{IdempotencyKey: &key}, mercato.Checkout{
			Items:           []mercato.CheckoutLine{{ProductId: mug.ID, Quantity: 1}},
			ShippingAddress: address,
			Payment: mercato.PaymentInput{Method: mercato.PaymentInputMethodCard,
				Card: mercato.CardInput{Number: cardOK, ExpMonth: 12, ExpYear: 2030, Cvc: "123"}},
		}, mercato.RequestID("go-client-checkout"))
		mustStatus(t, "check out", placed, placed.Body, err, http.StatusCreated)
		if placed.HTTPResponse.Header.Get("X-Request-ID") != "go-client-checkout" || placed.JSON201.Order.Status != mercato.OrderStatusPending {
			t.Fatalf("placed: %v %s", placed.HTTPResponse.Header, placed.Body)
		}
		id := placed.JSON201.Order.Id
		waitFor(t, 30*time.Second, "the order confirmed", func() error {
			got, err := customer.GetOrderWithResponse(ctx, id)
			if err != nil || got.JSON200 == nil {
				return fmt.Errorf("%v %d", err, got.StatusCode())
			}
			if s := got.JSON200.Order.Status; s != mercato.OrderStatusConfirmed {
				return fmt.Errorf("status %s", s)
			}
			return nil
		})
		mine, err := customer.ListOrdersWithResponse(ctx, &mercato.ListOrdersParams{})
		mustStatus(t, "list orders", mine, mine.Body, err, http.StatusOK)
		if mine.JSON200.Total != 1 || mine.JSON200.Items[0].Id != id {
			t.Errorf("the customer's orders: %s", mine.Body)
		}
		other, err := api.GetOrderWithResponse(ctx, id)
		mustStatus(t, "an order without a token", other, other.Body, err, http.StatusUnauthorized)
		if other.JSON401 == nil || other.JSON401.Error.Code != "unauthenticated" {
			t.Errorf("without a token: %s", other.Body)
		}
		p.checkInvariants(t)
	})

	t.Run("declined and insufficient funds: cancelled, stock back, nothing captured", func(t *testing.T) {
		_, token := p.customer(t)
		for card, code := range map[string]string{cardDeclined: "card_declined", cardInsufficientFunds: "insufficient_funds"} {
			before := p.stock(t, mug)
			o := p.place(t, token, card, checkoutLine{mug, 3})
			cancelled := p.waitStatus(t, token, o.ID, "cancelled", 30*time.Second)
			if last := cancelled.StatusHistory[len(cancelled.StatusHistory)-1]; last.Reason != "payment_failed: "+code ||
				cancelled.Payment == nil || cancelled.Payment.Status != "failed" {
				t.Errorf("%s: %+v", code, cancelled)
			}
			waitFor(t, 15*time.Second, "the stock to come back", func() error {
				if got := p.stock(t, mug); got != before {
					return fmt.Errorf("mug stock %d, want %d", got, before)
				}
				return nil
			})
			if pay := p.payment(t, o.ID); pay.Status != "failed" || pay.Captured != "0.00" {
				t.Errorf("%s: payment %+v", code, pay)
			}
		}
		p.checkInvariants(t)
	})

	t.Run("the same POST /orders 20 times at once with one key: one order, one reservation, one charge", func(t *testing.T) {
		userID, token := p.customer(t)
		raw := mustJSON(t, checkoutBody(cardOK, checkoutLine{tee, 2}))
		const n = 20
		var (
			wg  sync.WaitGroup
			mu  sync.Mutex
			ids = map[string]int{}
		)
		before := make([]float64, 2)
		for i, o := range p.procs["order"] {
			before[i] = scrape(t, o.addr, "http_requests_total", "route", "/api/v1/orders", "method", "POST")
		}
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := p.send("POST", "/api/v1/orders", token, raw, "Idempotency-Key", "twenty-"+userID)
				var out struct {
					Order checkoutOrder `json:"order"`
				}
				if err != nil || r.Status != http.StatusCreated {
					t.Errorf("status %d: %s (%v)", r.Status, r.Body, err)
					return
				}
				if err := json.Unmarshal(r.Body, &out); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				ids[out.Order.ID]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		if len(ids) != 1 {
			t.Fatalf("answers by order id: %v", ids)
		}
		var orderID string
		for id := range ids {
			orderID = id
		}
		// Both instances took part: the key held across them.
		for i, o := range p.procs["order"] {
			if served := scrape(t, o.addr, "http_requests_total", "route", "/api/v1/orders", "method", "POST") - before[i]; served < 1 {
				t.Errorf("order instance %d served %v of the %d requests", i, served, n)
			}
		}
		var orders, reservations, payments int
		if err := p.db["order"].Get(&orders, `SELECT count(*) FROM orders WHERE user_id = $1`, userID); err != nil {
			t.Fatal(err)
		}
		if err := p.db["product"].Get(&reservations, `SELECT count(*) FROM inventory_reservations WHERE order_id = $1`, orderID); err != nil {
			t.Fatal(err)
		}
		if err := p.db["payment"].Get(&payments, `SELECT count(*) FROM payments WHERE user_id = $1`, userID); err != nil {
			t.Fatal(err)
		}
		if orders != 1 || reservations != 1 || payments != 1 {
			t.Errorf("%d orders, %d reservations, %d payments; want 1 each", orders, reservations, payments)
		}
		p.waitStatus(t, token, orderID, "confirmed", 30*time.Second)
		// The same key with another body.
		other := checkoutBody(cardOK, checkoutLine{tee, 3})
		r := p.call(t, "POST", "/api/v1/orders", token, mustJSON(t, other), "Idempotency-Key", "twenty-"+userID)
		if r.Status != http.StatusConflict || r.errorCode(t) != "idempotency_mismatch" {
			t.Errorf("other body: %d %s", r.Status, r.Body)
		}
		p.checkInvariants(t)
	})

	t.Run("refunds: partial then full, over-refund and non-admin refused", func(t *testing.T) {
		_, token := p.customer(t)
		o := p.place(t, token, cardOK, checkoutLine{mug, 1})
		o = p.waitStatus(t, token, o.ID, "confirmed", 30*time.Second) // total 19.99 + 1.65 + 4.99 = 26.63
		if o.TotalAmount != "26.63" {
			t.Fatalf("total %s", o.TotalAmount)
		}
		path := "/api/v1/payments/" + o.Payment.ID + "/refunds"
		if r := p.call(t, "POST", path, token, map[string]string{"amount": "1.00", "reason": "mine"}); r.Status != http.StatusForbidden {
			t.Errorf("customer refund: %d %s", r.Status, r.Body)
		}
		p.call(t, "POST", path, p.admin, map[string]string{"amount": "10.00", "reason": "scratched"}).must(t, http.StatusCreated)
		r := p.call(t, "POST", path, p.admin, map[string]string{"amount": "16.64", "reason": "too much"})
		if r.Status != http.StatusConflict || r.errorCode(t) != "refund_exceeds_captured" {
			t.Errorf("over-refund: %d %s", r.Status, r.Body)
		}
		waitFor(t, 15*time.Second, "the partial refund on the order", func() error {
			got := p.order(t, token, o.ID)
			if got.Status != "confirmed" || got.Payment.Status != "partially_refunded" || got.Payment.RefundedAmount != "10.00" {
				return fmt.Errorf("%s, payment %+v", got.Status, got.Payment)
			}
			return nil
		})
		p.checkInvariants(t)
		p.call(t, "POST", path, p.admin, map[string]string{"amount": "16.63", "reason": "the rest"}).must(t, http.StatusCreated)
		refunded := p.waitStatus(t, token, o.ID, "refunded", 15*time.Second)
		if refunded.Payment.Status != "refunded" || refunded.Payment.RefundedAmount != "26.63" {
			t.Errorf("refunded order: %+v", refunded.Payment)
		}
		if pay := p.payment(t, o.ID); pay.Status != "refunded" || pay.Refunded != "26.63" {
			t.Errorf("payment %+v", pay)
		}
		p.checkInvariants(t)
	})

	t.Run("cancelling a paid order refunds it and gives the stock back", func(t *testing.T) {
		_, token := p.customer(t)
		before := p.stock(t, tee)
		o := p.place(t, token, cardOK, checkoutLine{tee, 4})
		p.waitStatus(t, token, o.ID, "confirmed", 30*time.Second)
		p.call(t, "POST", "/api/v1/orders/"+o.ID+"/cancel", token, map[string]string{"reason": "changed my mind"}).must(t, http.StatusOK)
		waitFor(t, 20*time.Second, "the refund and the stock", func() error {
			pay := p.payment(t, o.ID)
			if pay.Status != "refunded" || pay.Refunded != o.TotalAmount || p.stock(t, tee) != before {
				return fmt.Errorf("payment %+v, tee stock %d (want %d)", pay, p.stock(t, tee), before)
			}
			return nil
		})
		if got := p.order(t, token, o.ID); got.Status != "cancelled" {
			t.Errorf("status %s", got.Status)
		}
		// Shipped orders are not the customer's to cancel.
		o2 := p.place(t, token, cardOK, checkoutLine{tee, 1})
		p.waitStatus(t, token, o2.ID, "confirmed", 30*time.Second)
		p.call(t, "POST", "/api/v1/orders/"+o2.ID+"/status", p.admin, map[string]string{"status": "shipped"}).must(t, http.StatusOK)
		if r := p.call(t, "POST", "/api/v1/orders/"+o2.ID+"/cancel", token, nil); r.Status != http.StatusConflict || r.errorCode(t) != "invalid_transition" {
			t.Errorf("cancel a shipped order: %d %s", r.Status, r.Body)
		}
		p.call(t, "POST", "/api/v1/orders/"+o2.ID+"/status", p.admin, map[string]string{"status": "delivered"}).must(t, http.StatusOK)
		p.checkInvariants(t)
	})

	t.Run("webhook forgeries: unsigned, wrong signature, stale, replayed — refused, nothing changed", func(t *testing.T) {
		_, token := p.customer(t)
		o := p.place(t, token, cardOK, checkoutLine{mug, 1})
		p.waitStatus(t, token, o.ID, "confirmed", 30*time.Second)
		pay := p.payment(t, o.ID)
		var eventID string
		if err := p.db["payment"].Get(&eventID, `SELECT event_id FROM webhook_events ORDER BY received_at DESC LIMIT 1`); err != nil {
			t.Fatal(err)
		}
		// A forged failure of the captured charge.
		forged := mustJSON(t, map[string]string{"id": "evt_" + uuid.NewString(), "type": "charge.failed",
			"charge_id": pay.ChargeID, "payment_id": pay.ID, "failure_code": "card_declined"})
		replayed := mustJSON(t, map[string]string{"id": eventID, "type": "charge.failed",
			"charge_id": pay.ChargeID, "payment_id": pay.ID, "failure_code": "card_declined"})
		before := p.rowCounts(t)
		const hook = "/api/v1/webhooks/payments/sandbox"
		for _, tc := range []struct {
			name   string
			body   []byte
			header []string
			status int
			code   string
		}{
			{"unsigned", forged, nil, 401, "invalid_signature"},
			{"wrong secret", forged, []string{"Mercato-Signature", signWebhook("another-secret-another-secret-another", forged, time.Now())}, 401, "invalid_signature"},
			{"signature of another body", forged, []string{"Mercato-Signature", signWebhook(checkoutWebhookSecret, replayed, time.Now())}, 401, "invalid_signature"},
			{"stale", forged, []string{"Mercato-Signature", signWebhook(checkoutWebhookSecret, forged, time.Now().Add(-10*time.Minute))}, 401, "stale_webhook"},
			{"replayed", replayed, []string{"Mercato-Signature", signWebhook(checkoutWebhookSecret, replayed, time.Now())}, 409, "webhook_replayed"},
		} {
			r := p.call(t, "POST", hook, "", tc.body, tc.header...)
			if r.Status != tc.status || r.errorCode(t) != tc.code {
				t.Errorf("%s: %d %s, want %d %s", tc.name, r.Status, r.Body, tc.status, tc.code)
			}
		}
		if after := p.rowCounts(t); !reflect.DeepEqual(before, after) {
			t.Errorf("forged webhooks wrote rows: %v → %v", before, after)
		}
		if got := p.payment(t, o.ID); got != pay {
			t.Errorf("payment changed: %+v → %+v", pay, got)
		}
		if got := p.order(t, token, o.ID); got.Status != "confirmed" {
			t.Errorf("order %s", got.Status)
		}
		p.checkInvariants(t)
	})

	t.Run("forged payment events on the stream: dead-lettered with the reason at once, nothing changed", func(t *testing.T) {
		user, token := p.customer(t)
		processed := func(paymentID, orderID, amount string) map[string]string {
			return map[string]string{"payment_id": paymentID, "order_id": orderID, "user_id": user, "amount": amount, "currency": "USD"}
		}
		// A declined card: its payment exists (pending, then failed a second
		// later); a forged capture of it arrives well before the webhook.
		stockBefore := p.stock(t, tee)
		declined := p.place(t, token, cardDeclined, checkoutLine{tee, 2})
		declinedPay := p.payment(t, declined.ID)
		type forgery struct {
			name   string
			event  events.Envelope
			reason string
		}
		forged := []forgery{
			{"a declined payment's id claiming processed", testkit.Publish(t, p.rdb, "payment", events.PaymentProcessed,
				processed(declinedPay.ID, declined.ID, declined.TotalAmount)), "payment " + declinedPay.ID + " is "},
			{"an unknown payment id", testkit.Publish(t, p.rdb, "payment", events.PaymentProcessed,
				processed(uuid.NewString(), declined.ID, declined.TotalAmount)), "it has no payment"},
		}
		cancelled := p.waitStatus(t, token, declined.ID, "cancelled", 30*time.Second)
		if cancelled.Payment.Status != "failed" || len(cancelled.StatusHistory) != 2 {
			t.Errorf("declined order %+v", cancelled)
		}
		// The reservation is released after the cancellation commits (as in
		// "declined and insufficient funds" above): wait for it.
		waitFor(t, 15*time.Second, "the stock to come back", func() error {
			if got := p.stock(t, tee); got != stockBefore {
				return fmt.Errorf("tee stock %d, want %d back", got, stockBefore)
			}
			return nil
		})

		// A captured payment: forged with another amount, and as failed.
		paid := p.place(t, token, cardOK, checkoutLine{tee, 1})
		confirmed := p.waitStatus(t, token, paid.ID, "confirmed", 30*time.Second)
		paidPay := p.payment(t, paid.ID)
		forged = append(forged,
			forgery{"an amount mismatch", testkit.Publish(t, p.rdb, "payment", events.PaymentProcessed, processed(paidPay.ID, paid.ID, "0.01")),
				"captured " + paid.TotalAmount + " USD, not 0.01 USD"},
			forgery{"a captured payment claiming failed", testkit.Publish(t, p.rdb, "payment", events.PaymentFailed, map[string]string{
				"payment_id": paidPay.ID, "order_id": paid.ID, "user_id": user, "failure_code": "card_declined"}), "is captured, not failed"})

		// Each at its first delivery (the order service retries others 20
		// times, 3 s apart), with the reason.
		dead := map[string]map[string]any{}
		waitFor(t, 20*time.Second, "the forged events in the dead-letter stream", func() error {
			entries, err := p.rdb.XRange(context.Background(), events.DefaultDeadLetterStream, "-", "+").Result()
			if err != nil {
				return err
			}
			for _, e := range entries {
				if id, ok := e.Values["id"].(string); ok {
					dead[id] = e.Values
				}
			}
			for _, f := range forged {
				if _, ok := dead[f.event.ID]; !ok {
					return fmt.Errorf("%s not dead-lettered", f.name)
				}
			}
			return nil
		})
		for _, f := range forged {
			d := dead[f.event.ID]
			if reason, _ := d["error"].(string); d["group"] != "order" || d["attempts"] != "1" || d["type"] != f.event.Type ||
				!strings.Contains(reason, "not confirmed by the payment service") || !strings.Contains(reason, f.reason) {
				t.Errorf("%s: dead-letter entry %v, want one at the first attempt saying %q", f.name, d, f.reason)
			}
		}
		if got := p.order(t, token, declined.ID); got.Status != "cancelled" || got.Payment.Status != "failed" || len(got.StatusHistory) != 2 {
			t.Errorf("declined order changed: %+v", got)
		}
		if got := p.order(t, token, paid.ID); got.Status != "confirmed" || got.Payment.Status != "captured" ||
			len(got.StatusHistory) != len(confirmed.StatusHistory) {
			t.Errorf("paid order changed: %+v", got)
		}
		if got := p.payment(t, paid.ID); got != paidPay {
			t.Errorf("payment changed: %+v → %+v", paidPay, got)
		}
		p.checkInvariants(t)
	})

	t.Run("bad input on every endpoint is a 4xx JSON error and writes nothing", func(t *testing.T) {
		_, token := p.customer(t)
		_, other := p.customer(t)
		o := p.place(t, token, cardOK, checkoutLine{tee, 1})
		p.waitStatus(t, token, o.ID, "confirmed", 30*time.Second)
		before := p.rowCounts(t)
		stockBefore := p.stock(t, p.products["Rare Print"])
		rare := p.products["Rare Print"]
		with := func(mutate func(map[string]any)) string {
			b := checkoutBody(cardOK, checkoutLine{tee, 1})
			mutate(b)
			return string(mustJSON(t, b))
		}
		card := func(b map[string]any) map[string]any { return b["payment"].(map[string]any)["card"].(map[string]any) }
		tests := []struct {
			name, method, path, token, body string
			header                          []string
			want                            int
			code                            string
		}{
			{"malformed JSON", "POST", "/api/v1/orders", token, `{"items":`, nil, 400, "malformed_json"},
			{"unknown field", "POST", "/api/v1/orders", token, with(func(b map[string]any) { b["total_amount"] = "0.01" }), nil, 400, "unknown_field"},
			{"a price from the client", "POST", "/api/v1/orders", token, with(func(b map[string]any) {
				b["items"] = []map[string]any{{"product_id": tee.ID, "quantity": 1, "unit_price": "0.01"}}
			}), nil, 400, "unknown_field"},
			{"no items", "POST", "/api/v1/orders", token, with(func(b map[string]any) { b["items"] = []any{} }), nil, 422, "validation_failed"},
			{"quantity 0", "POST", "/api/v1/orders", token, with(func(b map[string]any) {
				b["items"] = []map[string]any{{"product_id": tee.ID, "quantity": 0}}
			}), nil, 422, "validation_failed"},
			{"product id not a UUID", "POST", "/api/v1/orders", token, with(func(b map[string]any) {
				b["items"] = []map[string]any{{"product_id": "tee", "quantity": 1}}
			}), nil, 422, "validation_failed"},
			{"unknown product", "POST", "/api/v1/orders", token, with(func(b map[string]any) {
				b["items"] = []map[string]any{{"product_id": uuid.NewString(), "quantity": 1}}
			}), nil, 422, "unknown_product"},
			{"more than in stock", "POST", "/api/v1/orders", token, with(func(b map[string]any) {
				b["items"] = []map[string]any{{"product_id": rare.ID, "quantity": 3}}
			}), nil, 409, "out_of_stock"},
			{"no address", "POST", "/api/v1/orders", token, with(func(b map[string]any) { delete(b, "shipping_address") }), nil, 422, "validation_failed"},
			{"card fails Luhn", "POST", "/api/v1/orders", token, with(func(b map[string]any) { card(b)["number"] = "4242424242424241" }), nil, 422, "validation_failed"},
			{"expired card", "POST", "/api/v1/orders", token, with(func(b map[string]any) { card(b)["exp_year"] = time.Now().Year() - 1 }), nil, 422, "validation_failed"},
			{"cash", "POST", "/api/v1/orders", token, with(func(b map[string]any) { b["payment"].(map[string]any)["method"] = "cash" }), nil, 422, "validation_failed"},
			{"no token", "POST", "/api/v1/orders", "", with(func(map[string]any) {}), nil, 401, "unauthenticated"},
			{"long idempotency key", "POST", "/api/v1/orders", token, with(func(map[string]any) {}), []string{"Idempotency-Key", strings.Repeat("k", 300)}, 422, "validation_failed"},
			{"list: bad status", "GET", "/api/v1/orders?status=lost", token, "", nil, 422, "validation_failed"},
			{"list: page size", "GET", "/api/v1/orders?page_size=1000", token, "", nil, 422, "validation_failed"},
			{"get: not a UUID", "GET", "/api/v1/orders/1", token, "", nil, 404, "not_found"},
			{"get: someone else's", "GET", "/api/v1/orders/" + o.ID, other, "", nil, 404, "not_found"},
			{"cancel: someone else's", "POST", "/api/v1/orders/" + o.ID + "/cancel", other, "", nil, 404, "not_found"},
			{"cancel: unknown field", "POST", "/api/v1/orders/" + o.ID + "/cancel", token, `{"refund":"all"}`, nil, 400, "unknown_field"},
			{"status: by a customer", "POST", "/api/v1/orders/" + o.ID + "/status", token, `{"status":"shipped"}`, nil, 403, "forbidden"},
			{"status: not fulfilment", "POST", "/api/v1/orders/" + o.ID + "/status", p.admin, `{"status":"cancelled"}`, nil, 422, "validation_failed"},
			{"status: malformed", "POST", "/api/v1/orders/" + o.ID + "/status", p.admin, `{"status":`, nil, 400, "malformed_json"},
			{"refund: not an amount", "POST", "/api/v1/payments/" + o.Payment.ID + "/refunds", p.admin, `{"amount":"ten"}`, nil, 422, "validation_failed"},
			{"refund: negative", "POST", "/api/v1/payments/" + o.Payment.ID + "/refunds", p.admin, `{"amount":"-1.00"}`, nil, 422, "validation_failed"},
			{"refund: as a number", "POST", "/api/v1/payments/" + o.Payment.ID + "/refunds", p.admin, `{"amount":1}`, nil, 400, "invalid_type"},
			{"webhook: empty", "POST", "/api/v1/webhooks/payments/sandbox", "", ``, nil, 400, "empty_body"},
			{"internal routes are not exposed", "POST", "/api/v1/internal/payments", token, `{}`, nil, 404, "not_found"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := p.call(t, tc.method, tc.path, tc.token, []byte(tc.body), tc.header...)
				if r.Status != tc.want {
					t.Fatalf("status %d, want %d: %.300s", r.Status, tc.want, r.Body)
				}
				if code := r.errorCode(t); code != tc.code {
					t.Errorf("code %q, want %q: %.300s", code, tc.code, r.Body)
				}
			})
		}
		if after := p.rowCounts(t); !reflect.DeepEqual(before, after) {
			t.Errorf("bad input wrote rows: %v → %v", before, after)
		}
		if got := p.stock(t, rare); got != stockBefore {
			t.Errorf("rare print stock %d → %d", stockBefore, got)
		}
		p.checkInvariants(t)
	})

	t.Run("crash: the payment instances killed between the charge and its webhook", func(t *testing.T) {
		_, token := p.customer(t)
		var placed []checkoutOrder
		for range 4 {
			placed = append(placed, p.place(t, token, cardOK, checkoutLine{tee, 1}))
		}
		for _, pay := range p.procs["payment"] {
			pay.kill()
		}
		// The crash fell between the steps: every charge was taken, none
		// confirmed yet (the sandbox waits a second before its webhook).
		for _, o := range placed {
			if pay := p.payment(t, o.ID); pay.Status != "pending" {
				t.Fatalf("payment of %s is %s at the crash; the test needs it pending", o.ID, pay.Status)
			}
		}
		for i := range p.procs["payment"] {
			p.procs["payment"][i] = launch(t, p.owner, "payment", p.args["payment"]...)
		}
		p.waitInstances(t, "payment")
		for _, o := range placed {
			p.waitStatus(t, token, o.ID, "confirmed", 45*time.Second)
		}
		p.checkInvariants(t)
	})

	t.Run("crash: an order instance killed holding unacknowledged payment events", func(t *testing.T) {
		_, token := p.customer(t)
		var placed []checkoutOrder
		for range 4 {
			placed = append(placed, p.place(t, token, cardOK, checkoutLine{mug, 1}))
		}
		// With the product service down, payment.processed cannot commit the
		// reservations: the handlers fail and the events stay pending with
		// the consumers that read them.
		for _, pr := range p.procs["product"] {
			pr.kill()
		}
		failed := func() float64 {
			var n float64
			for _, o := range p.procs["order"] {
				n += scrape(t, o.addr, "events_failed_total", "type", events.PaymentProcessed)
			}
			return n
		}
		before := failed()
		waitFor(t, 30*time.Second, "payment.processed handlers to fail", func() error {
			if n := failed() - before; n < float64(len(placed)) {
				return fmt.Errorf("%v failures", n)
			}
			return nil
		})
		for _, o := range placed {
			if got := p.order(t, token, o.ID); got.Status != "pending" {
				t.Fatalf("order %s is %s with the product service down", o.ID, got.Status)
			}
		}
		// An order instance dies holding pending events; the other takes
		// them over (XAUTOCLAIM after -event-claim-idle) once the product
		// service is back.
		victim := p.holdingPendingEvents(t)
		p.procs["order"][victim].kill()
		for i := range p.procs["product"] {
			p.procs["product"][i] = launch(t, p.owner, "product", p.args["product"]...)
		}
		p.waitInstances(t, "product")
		for _, o := range placed {
			p.waitStatus(t, token, o.ID, "confirmed", 45*time.Second)
		}
		p.restart(t, "order", victim)
		var committed int
		ids := make([]string, len(placed))
		for i, o := range placed {
			ids[i] = o.ID
		}
		if err := p.db["product"].Get(&committed, `SELECT count(*) FROM inventory_reservations
			WHERE status = 'committed' AND order_id::text = ANY(string_to_array($1, ','))`, strings.Join(ids, ",")); err != nil {
			t.Fatal(err)
		}
		if committed != len(placed) {
			t.Errorf("%d of %d reservations committed", committed, len(placed))
		}
		p.checkInvariants(t)
	})

	t.Run("crash point: order stored, charge never made (payment service down): the reservation expires, the order is cancelled", func(t *testing.T) {
		_, token := p.customer(t)
		before := p.stock(t, mug)
		for _, pay := range p.procs["payment"] {
			pay.kill()
		}
		// The order service answers 503 service_unavailable; the gateway
		// passes a 5xx on as 502 upstream_error.
		r := p.call(t, "POST", "/api/v1/orders", token, checkoutBody(cardOK, checkoutLine{mug, 5}))
		code := r.errorCode(t)
		if passedOn := r.Status == http.StatusBadGateway && code == "upstream_error"; !passedOn &&
			(r.Status != http.StatusServiceUnavailable || code != "service_unavailable") {
			t.Fatalf("checkout with the payment service down: %d %s", r.Status, r.Body)
		}
		for i := range p.procs["payment"] {
			p.procs["payment"][i] = launch(t, p.owner, "payment", p.args["payment"]...)
		}
		p.waitInstances(t, "payment")
		var list struct {
			Items []checkoutOrder `json:"items"`
		}
		p.call(t, "GET", "/api/v1/orders", token, nil).must(t, http.StatusOK).decode(t, &list)
		if len(list.Items) != 1 || list.Items[0].Status != "pending" || list.Items[0].Payment != nil {
			t.Fatalf("orders after the failed charge: %+v", list.Items)
		}
		id := list.Items[0].ID
		if got := p.stock(t, mug); got != before-5 {
			t.Errorf("stock while pending %d, want %d", got, before-5)
		}
		p.checkInvariants(t) // pending with a live reservation is fine
		cancelled := p.waitStatus(t, token, id, "cancelled", 45*time.Second)
		if last := cancelled.StatusHistory[len(cancelled.StatusHistory)-1]; !strings.HasPrefix(last.Reason, "reservation_expired") {
			t.Errorf("reason %q", last.Reason)
		}
		if got := p.stock(t, mug); got != before {
			t.Errorf("stock %d after expiry, want %d", got, before)
		}
		var payments int
		if err := p.db["payment"].Get(&payments, `SELECT count(*) FROM payments WHERE order_id = $1`, id); err != nil || payments != 0 {
			t.Errorf("%d payments of the uncharged order (%v)", payments, err)
		}
		p.checkInvariants(t)
	})
}

// holdingPendingEvents returns the index of an order instance whose
// consumer holds unacknowledged events in the "order" group. Consumers are
// named "<hostname>-<pid>" (events.Consumer's default).
func (p *checkoutPlatform) holdingPendingEvents(t *testing.T) int {
	t.Helper()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	pending, err := p.rdb.XPending(context.Background(), events.DefaultStream, "order").Result()
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range p.procs["order"] {
		if pending.Consumers[host+"-"+strconv.Itoa(o.cmd.Process.Pid)] > 0 {
			return i
		}
	}
	t.Fatalf("no order instance holds pending events: %+v", pending)
	return -1
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
