package payment_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mercato-dev/mercato/payment"
	"github.com/mercato-dev/mercato/payment/postgres"
	"github.com/mercato-dev/mercato/payment/sandbox"
	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/logging"
	"github.com/mercato-dev/mercato/shared/metrics"
	"github.com/mercato-dev/mercato/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const (
	jwtSecret     = "0123456789abcdef0123456789abcdef"
	webhookSecret = "webhook-secret-webhook-secret-32"
	testTimeout   = 20 * time.Second
)

// stack is the whole payment service over HTTP: real router, endpoints,
// middlewares and service on a fresh, migrated PostgreSQL database, with the
// sandbox processor on a pool of its own.
type stack struct {
	srv       *httptest.Server
	hits      *atomic.Int64
	db        *sqlx.DB
	sandboxDB *sqlx.DB
	svc       payment.Backend
	tokens    *auth.Tokens
	reg       *prometheus.Registry
	logs      *testkit.LogBuffer
	pool      *sqlx.DB             // the service's own pool
	repo      *postgres.Repository // the service's repository
	sandbox   *sandbox.Sandbox     // the processor, as the service's provider wraps it
	metrics   *payment.Metrics     // the service's, on reg
}

type stackOptions struct {
	dispatch bool          // run the sandbox's webhook dispatcher against this stack
	delay    time.Duration // the sandbox's webhook delay
	// provider, if set, wraps the sandbox as the service's provider.
	provider         func(payment.Provider) payment.Provider
	providerTimeout  time.Duration // the service's Options.ProviderTimeout
	webhookTolerance time.Duration // the service's Options.WebhookTolerance
}

func newStack(t testing.TB, opts stackOptions) *stack {
	t.Helper()
	dbURL := testkit.PostgresURL(t)
	db := open(t, dbURL)
	ctx := testCtx(t)
	if err := postgres.Schema.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	s := newStackOn(t, dbURL, opts)
	s.db = db
	return s
}

func open(t testing.TB, dbURL string) *sqlx.DB {
	t.Helper()
	db, err := sqlx.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newStackOn serves the service on the database at dbURL, which may be
// shared with another stack (several instances of one service).
func newStackOn(t testing.TB, dbURL string, opts stackOptions) *stack {
	t.Helper()
	db, sandboxDB := open(t, dbURL), open(t, dbURL)
	ctx := testCtx(t)
	if err := postgres.Schema.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := sandbox.Migrate(ctx, sandboxDB); err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewTokens([]byte(jwtSecret), 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	repo, sb := postgres.New(db), sandbox.New(sandboxDB, opts.delay)
	var provider payment.Provider = sb
	if opts.provider != nil {
		provider = opts.provider(sb)
	}
	svc, err := payment.NewService(repo, provider,
		payment.Options{WebhookSecret: []byte(webhookSecret), ProviderTimeout: opts.providerTimeout, WebhookTolerance: opts.webhookTolerance})
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.LogBuffer{}
	logger := logging.New(logs, "payment", "debug") // everything, to prove no card reaches it
	reg := metrics.NewRegistry()
	svc = payment.LoggingMiddleware(logger)(svc)
	m := payment.NewMetrics(reg, sandbox.FailureCodes()...)
	svc = payment.InstrumentingMiddleware(m)(svc)
	router := httpkit.Router(logger, reg, metrics.NewHTTP(reg, "payment"), nil)
	payment.MakeHTTPHandler(router, payment.MakeServerEndpoints(svc, tokens), logger)
	hits := new(atomic.Int64)
	handler := httpkit.Handler(logger, router)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s := &stack{srv: srv, hits: hits, db: db, sandboxDB: sandboxDB, svc: svc, tokens: tokens, reg: reg, logs: logs,
		pool: db, repo: repo, sandbox: sb, metrics: m}
	if opts.dispatch {
		s.startDispatcher(t, logger)
	}
	return s
}

// startDispatcher runs the sandbox's webhook dispatcher against s until the
// test ends; stop ends it earlier.
func (s *stack) startDispatcher(t testing.TB, logger log.Logger) (stop func()) {
	t.Helper()
	d := &sandbox.Dispatcher{DB: s.sandboxDB, URL: s.srv.URL + "/api/v1/webhooks/payments/sandbox",
		Secret: []byte(webhookSecret), Client: &http.Client{Timeout: 5 * time.Second}, Logger: logger,
		PollInterval: 20 * time.Millisecond}
	return run(t, d.Run)
}

// run runs loop until the test ends or stop is called, and checks that it
// stops promptly and cleanly.
func run(t testing.TB, loop func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- loop(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("loop returned %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("loop did not stop within 15s")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds, failing the test after testTimeout.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", testTimeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// call sends body (a string as is, []byte as is, anything else as JSON) to
// path (under the server root) with the bearer token and headers, if any.
func (s *stack) call(t *testing.T, method, path, token string, body any, header ...string) response {
	t.Helper()
	r := testkit.Call(t, method, s.srv.URL+path, token, body, header...)
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

func (s *stack) token(t testing.TB, id auth.Identity) string {
	t.Helper()
	tok, err := s.tokens.Issue(id)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (s *stack) serviceToken(t testing.TB) string {
	t.Helper()
	tok, err := s.tokens.ServiceToken("order")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (s *stack) adminToken(t testing.TB) string {
	return s.token(t, auth.Identity{UserID: uuid.NewString(), Email: "root@example.com", Role: auth.RoleAdmin})
}

func (s *stack) customerToken(t testing.TB, userID string) string {
	return s.token(t, auth.Identity{UserID: userID, Email: "ada@example.com", Role: auth.RoleCustomer})
}

// cardYear is a year every test card is valid through.
var cardYear = time.Now().Year() + 3

func chargeBody(orderID, userID, amount, card string) map[string]any {
	return map[string]any{"order_id": orderID, "user_id": userID, "amount": amount, "currency": "USD",
		"card": map[string]any{"number": card, "exp_month": 12, "exp_year": cardYear, "cvc": "123"}}
}

// charge asks for a payment of a new order and returns it.
func (s *stack) charge(t *testing.T, userID, amount, card string) map[string]any {
	t.Helper()
	r := want(t, s.call(t, "POST", "/internal/payments", s.serviceToken(t), chargeBody(uuid.NewString(), userID, amount, card)), http.StatusAccepted)
	return r.body["payment"].(map[string]any)
}

// payment reads a payment from the database through the service.
func (s *stack) payment(t *testing.T, id string) payment.Payment {
	t.Helper()
	p, err := s.svc.GetPayment(testCtx(t), "", id)
	if err != nil {
		t.Fatalf("payment %s: %v", id, err)
	}
	return p
}

// waitStatus waits until payment id has status.
func (s *stack) waitStatus(t *testing.T, id, status string) payment.Payment {
	t.Helper()
	var p payment.Payment
	eventually(t, "payment "+id+" "+status, func() bool {
		p = s.payment(t, id)
		return p.Status == status
	})
	return p
}

// outboxEvent is an event the service committed to its outbox.
type outboxEvent struct {
	Type string
	Data map[string]any
}

// events returns the outbox's events about payment id, oldest first.
func (s *stack) events(t *testing.T, paymentID string) []outboxEvent {
	t.Helper()
	var payloads []string
	if err := s.db.Select(&payloads, `
		SELECT payload::text FROM outbox WHERE payload->'data'->>'payment_id' = $1 ORDER BY created_at`, paymentID); err != nil {
		t.Fatal(err)
	}
	var out []outboxEvent
	for _, p := range payloads {
		var env events.Envelope
		if err := json.Unmarshal([]byte(p), &env); err != nil {
			t.Fatal(err)
		}
		if env.Source != payment.ServiceName {
			t.Errorf("event source %q", env.Source)
		}
		e := outboxEvent{Type: env.Type}
		if err := env.Decode(&e.Data); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func eventTypes(es []outboxEvent) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Type)
	}
	return out
}

// checkData compares an event's data with want, key for key: no key missing,
// none extra.
func checkData(t *testing.T, e outboxEvent, want map[string]any) {
	t.Helper()
	if len(e.Data) != len(want) {
		t.Errorf("%s data %v, want %v", e.Type, e.Data, want)
		return
	}
	for k, v := range want {
		if e.Data[k] != v {
			t.Errorf("%s data %s = %v, want %v", e.Type, k, e.Data[k], v)
		}
	}
}

// webhook posts a webhook event signed with the secret at time at.
func (s *stack) webhook(t *testing.T, evt any, at time.Time) response {
	t.Helper()
	body, err := json.Marshal(evt)
	if err != nil {
		t.Fatal(err)
	}
	return s.call(t, "POST", "/api/v1/webhooks/payments/sandbox", "", body,
		payment.SignatureHeader, payment.SignWebhook([]byte(webhookSecret), body, at))
}

// chargeID is the provider's charge id of payment id.
func (s *stack) chargeID(t *testing.T, id string) string {
	t.Helper()
	var c string
	if err := s.db.Get(&c, `SELECT provider_transaction_id FROM payments WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	return c
}

// metric returns the value of a series of the stack's registry.
func (s *stack) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	var sum float64
series:
	for _, m := range testkit.Series(t, s.reg, name) {
		for i := 0; i+1 < len(labels); i += 2 {
			if m.Labels[labels[i]] != labels[i+1] {
				continue series
			}
		}
		sum += m.Value
	}
	return sum
}

func TestSandboxCards(t *testing.T) {
	s := newStack(t, stackOptions{dispatch: true})
	userID := uuid.NewString()
	tests := []struct {
		card, status, failure string
	}{
		{sandbox.CardSucceeds, payment.StatusCompleted, ""},
		{sandbox.CardDeclined, payment.StatusFailed, "card_declined"},
		{sandbox.CardInsufficientFunds, payment.StatusFailed, "insufficient_funds"},
		{"5555555555554444", payment.StatusCompleted, ""}, // any other valid card
	}
	for _, tc := range tests {
		t.Run(tc.card, func(t *testing.T) {
			r := want(t, s.call(t, "POST", "/internal/payments", s.serviceToken(t),
				chargeBody(uuid.NewString(), userID, "19.99", tc.card)), http.StatusAccepted)
			created := r.body["payment"].(map[string]any)
			id := created["id"].(string)
			if r.header.Get("Location") != "/api/v1/payments/"+id {
				t.Errorf("Location %q", r.header.Get("Location"))
			}
			for k, v := range map[string]any{"status": "pending", "amount": "19.99", "currency": "USD", "user_id": userID,
				"payment_method": "card", "payment_provider": "sandbox", "captured_amount": "0.00", "refunded_amount": "0.00"} {
				if created[k] != v {
					t.Errorf("created payment %s = %v, want %v", k, created[k], v)
				}
			}
			if _, ok := created["processed_at"]; ok {
				t.Errorf("pending payment has processed_at: %s", r.raw)
			}
			card := created["card"].(map[string]any)
			if card["last4"] != tc.card[12:] || card["brand"] != payment.CardBrand(tc.card) || len(card) != 2 {
				t.Errorf("card = %v", card)
			}

			p := s.waitStatus(t, id, tc.status)
			if p.FailureCode != tc.failure || p.ProcessedAt == nil {
				t.Errorf("payment = %+v", p)
			}
			es := s.events(t, id)
			if len(es) != 1 {
				t.Fatalf("events %v, want one", eventTypes(es))
			}
			if tc.failure == "" {
				if p.CapturedAmount != p.Amount || es[0].Type != events.PaymentProcessed {
					t.Errorf("captured %s, event %s", p.CapturedAmount, es[0].Type)
				}
				checkData(t, es[0], map[string]any{"payment_id": id, "order_id": p.OrderID, "user_id": userID,
					"amount": "19.99", "currency": "USD"})
			} else {
				if p.CapturedAmount != 0 || es[0].Type != events.PaymentFailed {
					t.Errorf("captured %s, event %s", p.CapturedAmount, es[0].Type)
				}
				checkData(t, es[0], map[string]any{"payment_id": id, "order_id": p.OrderID, "user_id": userID,
					"failure_code": tc.failure})
			}

			// What the customer sees.
			r = want(t, s.call(t, "GET", "/api/v1/payments/"+id, s.customerToken(t, userID), nil), http.StatusOK)
			got := r.body["payment"].(map[string]any)
			if got["status"] != tc.status || got["processed_at"] == nil || !strings.Contains(r.raw, `"refunds":[]`) {
				t.Errorf("GET payment: %s", r.raw)
			}
			if f, _ := got["failure_code"].(string); f != tc.failure {
				t.Errorf("failure_code %q, want %q", f, tc.failure)
			}
		})
	}
	// The webhooks were delivered once each, and the sandbox knows it. The
	// dispatcher marks a delivery once the service has answered it, which is
	// after the payment's status changed: wait for the mark, not the status.
	eventually(t, "every webhook marked delivered", func() bool {
		var undelivered int
		if err := s.db.Get(&undelivered, `SELECT count(*) FROM sandbox_charges WHERE delivered_at IS NULL`); err != nil {
			t.Fatal(err)
		}
		return undelivered == 0
	})
	for status, n := range map[string]float64{"pending": 4, "completed": 2, "failed": 2} {
		if got := s.metric(t, "payments_total", "status", status); got != n {
			t.Errorf("payments_total{status=%q} = %v, want %v", status, got, n)
		}
	}
}

func TestChargeIdempotentConcurrently(t *testing.T) {
	s := newStack(t, stackOptions{})
	orderID, userID := uuid.NewString(), uuid.NewString()
	body := chargeBody(orderID, userID, "42.00", sandbox.CardSucceeds)
	token := s.serviceToken(t)

	const n = 20
	var wg sync.WaitGroup
	results := make([]response, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = s.call(t, "POST", "/internal/payments", token, body)
		}()
	}
	wg.Wait()
	ids := map[string]bool{}
	statuses := map[int]int{}
	for _, r := range results {
		statuses[r.status]++
		if p, ok := r.body["payment"].(map[string]any); ok {
			ids[p["id"].(string)] = true
		}
	}
	if statuses[http.StatusAccepted] != 1 || statuses[http.StatusOK] != n-1 || len(ids) != 1 {
		t.Errorf("statuses %v, payment ids %v: want one 202, %d 200 and one payment", statuses, ids, n-1)
	}
	var payments, charges int
	if err := s.db.Get(&payments, `SELECT count(*) FROM payments WHERE order_id = $1`, orderID); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Get(&charges, `SELECT count(*) FROM sandbox_charges`); err != nil {
		t.Fatal(err)
	}
	if payments != 1 || charges != 1 {
		t.Errorf("%d payments, %d provider charges; want 1 and 1", payments, charges)
	}

	// Later: the same order, whatever the payment's status, is the same
	// payment; another amount, currency or user is a mismatch.
	r := want(t, s.call(t, "POST", "/internal/payments", token, body), http.StatusOK)
	if r.body["payment"].(map[string]any)["status"] != "pending" {
		t.Errorf("repeat: %s", r.raw)
	}
	for _, change := range []func(map[string]any){
		func(b map[string]any) { b["amount"] = "42.01" },
		func(b map[string]any) { b["currency"] = "EUR" },
		func(b map[string]any) { b["user_id"] = uuid.NewString() },
	} {
		b := chargeBody(orderID, userID, "42.00", sandbox.CardSucceeds)
		change(b)
		r := want(t, s.call(t, "POST", "/internal/payments", token, b), http.StatusConflict)
		if errorCode(r) != "payment_mismatch" {
			t.Errorf("mismatch: %s", r.raw)
		}
	}
	if err := s.db.Get(&charges, `SELECT count(*) FROM sandbox_charges`); err != nil || charges != 1 {
		t.Errorf("%d provider charges after the repeats (%v)", charges, err)
	}
	if got := s.metric(t, "payments_total", "status", "pending"); got != 1 {
		t.Errorf("payments_total{pending} = %v, want 1", got)
	}
}

// webhookRows is everything a webhook could change.
func (s *stack) webhookRows(t *testing.T) string {
	t.Helper()
	var out []string
	for _, q := range []string{
		`SELECT coalesce(json_agg(p ORDER BY id)::text, '') FROM payments p`,
		`SELECT coalesce(json_agg(r ORDER BY id)::text, '') FROM refunds r`,
		`SELECT coalesce(json_agg(w ORDER BY event_id)::text, '') FROM webhook_events w`,
		`SELECT count(*)::text FROM outbox`,
	} {
		var v string
		if err := s.db.Get(&v, q); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return strings.Join(out, "\n")
}

func TestWebhookSecurity(t *testing.T) {
	s := newStack(t, stackOptions{}) // no dispatcher: the test is the processor
	p := s.charge(t, uuid.NewString(), "10.00", sandbox.CardSucceeds)
	id := p["id"].(string)
	chargeID := s.chargeID(t, id)
	evt := payment.WebhookEvent{ID: "evt_" + uuid.NewString(), Type: payment.WebhookChargeSucceeded, ChargeID: chargeID, PaymentID: id}
	body, _ := json.Marshal(evt)
	now := time.Now()
	sign := func(secret string, at time.Time) string { return payment.SignWebhook([]byte(secret), body, at) }

	tests := []struct {
		name      string
		signature string
		body      []byte
		status    int
		code      string
	}{
		{"unsigned", "", body, 401, "invalid_signature"},
		{"malformed signature", "v1=abc", body, 401, "invalid_signature"},
		{"wrong secret", sign("another-secret-another-secret-xx", now), body, 401, "invalid_signature"},
		{"body tampered", sign(webhookSecret, now), bytes.Replace(body, []byte("succeeded"), []byte("failed"), 1), 401, "invalid_signature"},
		{"stale timestamp", sign(webhookSecret, now.Add(-6*time.Minute)), body, 401, "stale_webhook"},
		{"future timestamp", sign(webhookSecret, now.Add(6*time.Minute)), body, 401, "stale_webhook"},
		{"unknown charge", payment.SignWebhook([]byte(webhookSecret), []byte(`{"id":"evt_x","type":"charge.succeeded","charge_id":"ch_nope","payment_id":"`+id+`"}`), now),
			[]byte(`{"id":"evt_x","type":"charge.succeeded","charge_id":"ch_nope","payment_id":"` + id + `"}`), 404, "not_found"},
		{"signed but invalid", payment.SignWebhook([]byte(webhookSecret), []byte(`{"id":"evt_y","type":"charge.maybe"}`), now),
			[]byte(`{"id":"evt_y","type":"charge.maybe"}`), 422, "validation_failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := s.webhookRows(t)
			r := s.call(t, "POST", "/api/v1/webhooks/payments/sandbox", "", tc.body, payment.SignatureHeader, tc.signature)
			if r.status != tc.status || errorCode(r) != tc.code {
				t.Errorf("status %d %q, want %d %q: %s", r.status, errorCode(r), tc.status, tc.code, r.raw)
			}
			if after := s.webhookRows(t); after != before {
				t.Errorf("rejected webhook changed rows:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	if got := s.payment(t, id).Status; got != payment.StatusPending {
		t.Fatalf("status after rejected webhooks: %s", got)
	}

	// The genuine one is applied; its replay, even freshly signed, is not.
	want(t, s.webhook(t, evt, now), http.StatusOK)
	if got := s.payment(t, id).Status; got != payment.StatusCompleted {
		t.Fatalf("status after the webhook: %s", got)
	}
	before := s.webhookRows(t)
	r := want(t, s.webhook(t, evt, time.Now()), http.StatusConflict)
	if errorCode(r) != "webhook_replayed" {
		t.Errorf("replay: %s", r.raw)
	}
	// A conflicting event about the settled charge is acknowledged and
	// changes nothing but the record of events.
	failed := payment.WebhookEvent{ID: "evt_" + uuid.NewString(), Type: payment.WebhookChargeFailed, ChargeID: chargeID, PaymentID: id, FailureCode: "card_declined"}
	want(t, s.webhook(t, failed, time.Now()), http.StatusOK)
	if after := s.webhookRows(t); strings.Split(after, "\n")[0] != strings.Split(before, "\n")[0] {
		t.Errorf("a later event changed the payment:\nbefore %s\nafter  %s", before, after)
	}
	if es := s.events(t, id); !slices.Equal(eventTypes(es), []string{events.PaymentProcessed}) {
		t.Errorf("events %v", eventTypes(es))
	}
	// Unknown provider.
	r = s.call(t, "POST", "/api/v1/webhooks/payments/acme", "", body, payment.SignatureHeader, sign(webhookSecret, now))
	if r.status != 404 {
		t.Errorf("unknown provider: %d %s", r.status, r.raw)
	}
}

// TestWebhookSucceededWithAFailureCode: a failure code means nothing on a
// charge.succeeded and is not checked, so it must not be stored either: one
// that PostgreSQL's JSONB refuses (NUL) made every delivery a 500, and the
// captured payment stayed pending however often the provider sent it.
func TestWebhookSucceededWithAFailureCode(t *testing.T) {
	s := newStack(t, stackOptions{})
	id := s.charge(t, uuid.NewString(), "10.00", sandbox.CardSucceeds)["id"].(string)
	body := []byte(`{"id":"evt_` + uuid.NewString() + `","type":"charge.succeeded","charge_id":"` + s.chargeID(t, id) +
		`","payment_id":"` + id + `","failure_code":"x\u0000y"}`)
	r := s.call(t, "POST", "/api/v1/webhooks/payments/sandbox", "", body,
		payment.SignatureHeader, payment.SignWebhook([]byte(webhookSecret), body, time.Now()))
	want(t, r, http.StatusOK)
	if p := s.payment(t, id); p.Status != payment.StatusCompleted || p.FailureCode != "" || strings.Contains(string(p.ProviderResponse), "failure_code") {
		t.Errorf("payment after the webhook: %+v, provider response %s", p, p.ProviderResponse)
	}
}

// concurrentReplays: the same event delivered many times at once is applied
// exactly once.
func TestWebhookConcurrentDeliveries(t *testing.T) {
	s := newStack(t, stackOptions{})
	p := s.charge(t, uuid.NewString(), "10.00", sandbox.CardSucceeds)
	id := p["id"].(string)
	evt := payment.WebhookEvent{ID: "evt_" + uuid.NewString(), Type: payment.WebhookChargeSucceeded, ChargeID: s.chargeID(t, id), PaymentID: id}
	var wg sync.WaitGroup
	codes := make([]int, 10)
	for i := range codes {
		wg.Add(1)
		go func() { defer wg.Done(); codes[i] = s.webhook(t, evt, time.Now()).status }()
	}
	wg.Wait()
	slices.Sort(codes)
	if codes[0] != 200 || codes[1] != 409 || codes[9] != 409 {
		t.Errorf("statuses %v, want one 200 and nine 409", codes)
	}
	if es := s.events(t, id); len(es) != 1 {
		t.Errorf("events %v", eventTypes(es))
	}
}

func TestRefunds(t *testing.T) {
	s := newStack(t, stackOptions{dispatch: true})
	userID := uuid.NewString()
	id := s.charge(t, userID, "30.00", sandbox.CardSucceeds)["id"].(string)
	s.waitStatus(t, id, payment.StatusCompleted)
	admin := s.adminToken(t)
	path := "/api/v1/payments/" + id + "/refunds"

	// A customer, even the owner, and another service may not refund.
	for _, tok := range []string{s.customerToken(t, userID), s.serviceToken(t)} {
		r := want(t, s.call(t, "POST", path, tok, map[string]any{"amount": "1.00"}), http.StatusForbidden)
		if errorCode(r) != "forbidden" {
			t.Errorf("non-admin refund: %s", r.raw)
		}
	}

	// Partial.
	r := want(t, s.call(t, "POST", path, admin, map[string]any{"amount": "10.00", "reason": " damaged box "}, "Idempotency-Key", "k-1"), http.StatusCreated)
	rf := r.body["refund"].(map[string]any)
	for k, v := range map[string]any{"payment_id": id, "amount": "10.00", "reason": "damaged box", "status": "completed"} {
		if rf[k] != v {
			t.Errorf("refund %s = %v, want %v", k, rf[k], v)
		}
	}
	if !strings.HasPrefix(rf["provider_refund_id"].(string), "re_") || rf["processed_at"] == nil {
		t.Errorf("refund: %s", r.raw)
	}
	if pay := r.body["payment"].(map[string]any); pay["status"] != "partially_refunded" || pay["refunded_amount"] != "10.00" || pay["captured_amount"] != "30.00" {
		t.Errorf("payment after a partial refund: %s", r.raw)
	}
	firstRefund := r.raw

	// The same key and body: the same answer, nothing more refunded.
	r = want(t, s.call(t, "POST", path, admin, map[string]any{"amount": "10.00", "reason": " damaged box "}, "Idempotency-Key", "k-1"), http.StatusCreated)
	if r.body["refund"].(map[string]any)["id"] != rf["id"] || r.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: %s (first %s)", r.raw, firstRefund)
	}
	// The same key with another body, or for another payment: 409.
	other := s.charge(t, userID, "5.00", sandbox.CardSucceeds)["id"].(string)
	s.waitStatus(t, other, payment.StatusCompleted)
	for _, c := range []struct {
		path string
		body map[string]any
	}{
		{path, map[string]any{"amount": "11.00", "reason": "damaged box"}},
		{path, map[string]any{"amount": "10.00", "reason": "other"}},
		{"/api/v1/payments/" + other + "/refunds", map[string]any{"amount": "10.00", "reason": "damaged box"}},
	} {
		r = want(t, s.call(t, "POST", c.path, admin, c.body, "Idempotency-Key", "k-1"), http.StatusConflict)
		if errorCode(r) != "idempotency_mismatch" {
			t.Errorf("key reuse: %s", r.raw)
		}
	}

	// Over what is left: 409, nothing changes.
	r = want(t, s.call(t, "POST", path, admin, map[string]any{"amount": "20.01"}), http.StatusConflict)
	if errorCode(r) != "refund_exceeds_captured" {
		t.Errorf("over-refund: %s", r.raw)
	}
	// The rest: refunded.
	r = want(t, s.call(t, "POST", path, admin, map[string]any{"amount": "20.00"}, "Idempotency-Key", "k-2"), http.StatusCreated)
	if pay := r.body["payment"].(map[string]any); pay["status"] != "refunded" || pay["refunded_amount"] != "30.00" {
		t.Errorf("payment after the full refund: %s", r.raw)
	}
	r = want(t, s.call(t, "POST", path, admin, map[string]any{"amount": "0.01"}), http.StatusConflict)
	if errorCode(r) != "payment_not_captured" {
		t.Errorf("refund of a refunded payment: %s", r.raw)
	}

	p := s.payment(t, id)
	if p.Status != payment.StatusRefunded || p.RefundedAmount != 3000 || len(p.Refunds) != 2 {
		t.Errorf("payment %+v", p)
	}
	es := s.events(t, id)
	if !slices.Equal(eventTypes(es), []string{events.PaymentProcessed, events.PaymentRefunded, events.PaymentRefunded}) {
		t.Fatalf("events %v", eventTypes(es))
	}
	checkData(t, es[1], map[string]any{"payment_id": id, "order_id": p.OrderID, "user_id": userID,
		"amount": "10.00", "refunded_amount": "10.00", "fully_refunded": false, "currency": "USD"})
	checkData(t, es[2], map[string]any{"payment_id": id, "order_id": p.OrderID, "user_id": userID,
		"amount": "20.00", "refunded_amount": "30.00", "fully_refunded": true, "currency": "USD"})

	// A refund with no amount gives back everything left; a pending or
	// failed payment has nothing to refund.
	r = want(t, s.call(t, "POST", "/api/v1/payments/"+other+"/refunds", admin, map[string]any{}), http.StatusCreated)
	if r.body["refund"].(map[string]any)["amount"] != "5.00" || r.body["payment"].(map[string]any)["status"] != "refunded" {
		t.Errorf("refund of the rest: %s", r.raw)
	}
	failed := s.charge(t, userID, "5.00", sandbox.CardDeclined)["id"].(string)
	s.waitStatus(t, failed, payment.StatusFailed)
	r = want(t, s.call(t, "POST", "/api/v1/payments/"+failed+"/refunds", admin, map[string]any{"amount": "1.00"}), http.StatusConflict)
	if errorCode(r) != "payment_not_captured" {
		t.Errorf("refund of a failed payment: %s", r.raw)
	}

	// The sandbox's books agree.
	var sandboxRefunded string
	if err := s.db.Get(&sandboxRefunded, `SELECT sum(refunded_amount)::text FROM sandbox_charges`); err != nil {
		t.Fatal(err)
	}
	if sandboxRefunded != "35.00" {
		t.Errorf("sandbox refunded %s, want 35.00", sandboxRefunded)
	}
	if n := s.metric(t, "refunds_total"); n != 3 {
		t.Errorf("refunds_total = %v, want 3", n)
	}
	if n := s.metric(t, "refunded_amount_cents_total"); n != 3500 {
		t.Errorf("refunded_amount_cents_total = %v, want 3500", n)
	}
	for status, n := range map[string]float64{"partially_refunded": 1, "refunded": 2} {
		if got := s.metric(t, "payments_total", "status", status); got != n {
			t.Errorf("payments_total{status=%q} = %v, want %v", status, got, n)
		}
	}
}

// TestRefundsConcurrently: admins racing to refund one payment never give
// back more than was captured.
func TestRefundsConcurrently(t *testing.T) {
	s := newStack(t, stackOptions{dispatch: true})
	id := s.charge(t, uuid.NewString(), "10.00", sandbox.CardSucceeds)["id"].(string)
	s.waitStatus(t, id, payment.StatusCompleted)
	admin := s.adminToken(t)
	var wg sync.WaitGroup
	codes := make([]int, 8)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = s.call(t, "POST", "/api/v1/payments/"+id+"/refunds", admin, map[string]any{"amount": "3.00"}).status
		}()
	}
	wg.Wait()
	created := 0
	for _, c := range codes {
		switch c {
		case http.StatusCreated:
			created++
		case http.StatusConflict:
		default:
			t.Errorf("status %d", c)
		}
	}
	if p := s.payment(t, id); created != 3 || p.RefundedAmount != 900 || len(p.Refunds) != 3 {
		t.Errorf("%d refunds made, payment %+v", created, p)
	}
}

func TestReadAccess(t *testing.T) {
	s := newStack(t, stackOptions{})
	ada, bob := uuid.NewString(), uuid.NewString()
	a1 := s.charge(t, ada, "1.00", sandbox.CardSucceeds)
	a2 := s.charge(t, ada, "2.00", sandbox.CardSucceeds)
	b1 := s.charge(t, bob, "3.00", sandbox.CardSucceeds)
	adaTok, admin, svc := s.customerToken(t, ada), s.adminToken(t), s.serviceToken(t)

	r := want(t, s.call(t, "GET", "/api/v1/payments", adaTok, nil), http.StatusOK)
	items := r.body["items"].([]any)
	if r.body["total"] != float64(2) || len(items) != 2 || items[0].(map[string]any)["id"] != a2["id"] || items[1].(map[string]any)["id"] != a1["id"] {
		t.Errorf("Ada's list, newest first: %s", r.raw)
	}
	if strings.Contains(r.raw, `"refunds"`) {
		t.Errorf("list items carry refunds: %s", r.raw)
	}
	r = want(t, s.call(t, "GET", "/api/v1/payments?order_id="+b1["order_id"].(string), adaTok, nil), http.StatusOK)
	if r.body["total"] != float64(0) || !strings.Contains(r.raw, `"items":[]`) {
		t.Errorf("Ada filtering on Bob's order: %s", r.raw)
	}
	for _, tok := range []string{admin, svc} {
		r = want(t, s.call(t, "GET", "/api/v1/payments?order_id="+b1["order_id"].(string), tok, nil), http.StatusOK)
		if r.body["total"] != float64(1) || r.body["items"].([]any)[0].(map[string]any)["id"] != b1["id"] {
			t.Errorf("admin/service by order: %s", r.raw)
		}
		r = want(t, s.call(t, "GET", "/api/v1/payments?page=2&page_size=2", tok, nil), http.StatusOK)
		if r.body["total"] != float64(3) || r.body["page"] != float64(2) || len(r.body["items"].([]any)) != 1 {
			t.Errorf("admin/service page 2: %s", r.raw)
		}
	}
	want(t, s.call(t, "GET", "/api/v1/payments/"+a1["id"].(string), adaTok, nil), http.StatusOK)
	want(t, s.call(t, "GET", "/api/v1/payments/"+b1["id"].(string), admin, nil), http.StatusOK)
	// Bob's payment is not Ada's to see: as if it did not exist.
	r = want(t, s.call(t, "GET", "/api/v1/payments/"+b1["id"].(string), adaTok, nil), http.StatusNotFound)
	if errorCode(r) != "not_found" {
		t.Errorf("another's payment: %s", r.raw)
	}
	if _, err := s.svc.PaymentByOrder(testCtx(t), ada, b1["order_id"].(string)); err != payment.ErrNotFound {
		t.Errorf("PaymentByOrder of another's order: %v", err)
	}
	if p, err := s.svc.PaymentByOrder(testCtx(t), "", b1["order_id"].(string)); err != nil || p.ID != b1["id"] {
		t.Errorf("PaymentByOrder = %+v, %v", p, err)
	}
}

// rowCounts counts every table a request could write to.
func (s *stack) rowCounts(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range []string{"payments", "refunds", "webhook_events", "outbox", "sandbox_charges", "sandbox_refunds"} {
		var n int
		if err := s.db.Get(&n, "SELECT count(*) FROM "+table); err != nil {
			t.Fatal(err)
		}
		out[table] = n
	}
	var changed int
	if err := s.db.Get(&changed, "SELECT count(*) FROM payments WHERE updated_at <> created_at"); err != nil {
		t.Fatal(err)
	}
	out["payments updated"] = changed
	return out
}

func TestHTTPBadInput(t *testing.T) {
	s := newStack(t, stackOptions{})
	ada := uuid.NewString()
	pending := s.charge(t, ada, "10.00", sandbox.CardSucceeds)
	pendingID, orderID := pending["id"].(string), pending["order_id"].(string)
	svc, admin, adaTok := s.serviceToken(t), s.adminToken(t), s.customerToken(t, ada)
	expired := s.token(t, auth.Identity{UserID: ada, Role: auth.RoleCustomer})

	charge := func(change func(map[string]any)) string {
		b := chargeBody(uuid.NewString(), ada, "10.00", sandbox.CardSucceeds)
		change(b)
		j, _ := json.Marshal(b)
		return string(j)
	}
	card := func(k string, v any) func(map[string]any) {
		return func(b map[string]any) { b["card"].(map[string]any)[k] = v }
	}
	refunds := "/api/v1/payments/" + pendingID + "/refunds"
	huge := `{"amount":"1.00","reason":"` + strings.Repeat("x", 1<<20) + `"}`

	tests := []struct {
		name         string
		method, path string
		token        string
		body         string
		header       []string
		status       int
		code         string
		field        string // a field the error details must name
	}{
		{"charge: no token", "POST", "/internal/payments", "", charge(func(map[string]any) {}), nil, 401, "unauthenticated", ""},
		{"charge: customer", "POST", "/internal/payments", adaTok, charge(func(map[string]any) {}), nil, 403, "forbidden", ""},
		{"charge: malformed JSON", "POST", "/internal/payments", svc, `{"order_id":`, nil, 400, "malformed_json", ""},
		{"charge: empty body", "POST", "/internal/payments", svc, ``, nil, 400, "empty_body", ""},
		{"charge: not an object", "POST", "/internal/payments", svc, `[1]`, nil, 400, "invalid_type", ""},
		{"charge: unknown field", "POST", "/internal/payments", svc, charge(func(b map[string]any) { b["status"] = "completed" }), nil, 400, "unknown_field", "status"},
		{"charge: amount as a number", "POST", "/internal/payments", svc, charge(func(b map[string]any) { b["amount"] = 10.5 }), nil, 400, "invalid_type", "amount"},
		{"charge: exp_month as a string", "POST", "/internal/payments", svc, charge(card("exp_month", "12")), nil, 400, "invalid_type", "card.exp_month"},
		{"charge: amount 0", "POST", "/internal/payments", svc, charge(func(b map[string]any) { b["amount"] = "0" }), nil, 422, "validation_failed", "amount"},
		{"charge: negative amount", "POST", "/internal/payments", svc, charge(func(b map[string]any) { b["amount"] = "-5.00" }), nil, 422, "validation_failed", "amount"},
		{"charge: bad card", "POST", "/internal/payments", svc, charge(card("number", "4242424242424241")), nil, 422, "validation_failed", "card.number"},
		{"charge: expired card", "POST", "/internal/payments", svc, charge(card("exp_year", 2020)), nil, 422, "validation_failed", "card.exp_year"},
		{"charge: short cvc", "POST", "/internal/payments", svc, charge(card("cvc", "1")), nil, 422, "validation_failed", "card.cvc"},
		{"charge: no card", "POST", "/internal/payments", svc, charge(func(b map[string]any) { delete(b, "card") }), nil, 422, "validation_failed", "card.number"},
		{"charge: bad order id", "POST", "/internal/payments", svc, charge(func(b map[string]any) { b["order_id"] = "1; DROP TABLE payments" }), nil, 422, "validation_failed", "order_id"},
		{"charge: mismatch", "POST", "/internal/payments", svc, string(must(json.Marshal(chargeBody(orderID, ada, "10.01", sandbox.CardSucceeds)))), nil, 409, "payment_mismatch", ""},
		{"charge: not JSON", "POST", "/internal/payments", svc, "order_id=1", []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "unsupported_media_type", ""},

		{"get: no token", "GET", "/api/v1/payments/" + pendingID, "", "", nil, 401, "unauthenticated", ""},
		{"get: expired-looking garbage token", "GET", "/api/v1/payments/" + pendingID, expired + "x", "", nil, 401, "unauthenticated", ""},
		{"get: unknown id", "GET", "/api/v1/payments/" + uuid.NewString(), admin, "", nil, 404, "not_found", ""},
		{"get: not a UUID", "GET", "/api/v1/payments/nope", admin, "", nil, 404, "not_found", ""},
		{"list: no token", "GET", "/api/v1/payments", "", "", nil, 401, "unauthenticated", ""},
		{"list: bad order id", "GET", "/api/v1/payments?order_id=nope", adaTok, "", nil, 422, "validation_failed", "order_id"},
		{"list: page 0", "GET", "/api/v1/payments?page=0", adaTok, "", nil, 422, "validation_failed", "page"},
		{"list: page_size 101", "GET", "/api/v1/payments?page_size=101", adaTok, "", nil, 422, "validation_failed", "page_size"},
		{"list: page not a number", "GET", "/api/v1/payments?page=x", adaTok, "", nil, 422, "validation_failed", "page"},

		{"refund: no token", "POST", refunds, "", `{"amount":"1.00"}`, nil, 401, "unauthenticated", ""},
		{"refund: customer", "POST", refunds, adaTok, `{"amount":"1.00"}`, nil, 403, "forbidden", ""},
		{"refund: pending payment", "POST", refunds, admin, `{"amount":"1.00"}`, nil, 409, "payment_not_captured", ""},
		{"refund: unknown payment", "POST", "/api/v1/payments/" + uuid.NewString() + "/refunds", admin, `{"amount":"1.00"}`, nil, 404, "not_found", ""},
		{"refund: not a UUID", "POST", "/api/v1/payments/x/refunds", admin, `{"amount":"1.00"}`, nil, 404, "not_found", ""},
		{"refund: amount as a number", "POST", refunds, admin, `{"amount":1}`, nil, 400, "invalid_type", "amount"},
		{"refund: zero", "POST", refunds, admin, `{"amount":"0.00"}`, nil, 422, "validation_failed", "amount"},
		{"refund: three places", "POST", refunds, admin, `{"amount":"1.005"}`, nil, 422, "validation_failed", "amount"},
		{"refund: long reason", "POST", refunds, admin, `{"amount":"1.00","reason":"` + strings.Repeat("é", 501) + `"}`, nil, 422, "validation_failed", "reason"},
		{"refund: NUL in reason", "POST", refunds, admin, `{"amount":"1.00","reason":"a\u0000b"}`, nil, 422, "validation_failed", "reason"},
		{"refund: bad idempotency key", "POST", refunds, admin, `{"amount":"1.00"}`, []string{"Idempotency-Key", strings.Repeat("k", 256)}, 422, "validation_failed", "Idempotency-Key"},
		{"refund: unknown field", "POST", refunds, admin, `{"amount":"1.00","currency":"EUR"}`, nil, 400, "unknown_field", "currency"},
		{"refund: empty body", "POST", refunds, admin, ``, nil, 400, "empty_body", ""},
		{"refund: oversized body", "POST", refunds, admin, huge, nil, 413, "body_too_large", ""},

		{"webhook: empty", "POST", "/api/v1/webhooks/payments/sandbox", "", ``, nil, 400, "empty_body", ""},
		{"webhook: unsigned", "POST", "/api/v1/webhooks/payments/sandbox", "", `{"id":"evt_1"}`, nil, 401, "invalid_signature", ""},
		{"webhook: oversized", "POST", "/api/v1/webhooks/payments/sandbox", "", huge, nil, 413, "body_too_large", ""},

		{"method not allowed", "DELETE", "/api/v1/payments/" + pendingID, admin, "", nil, 405, "method_not_allowed", ""},
		{"no such route", "GET", "/api/v1/payments/" + pendingID + "/nothing", admin, "", nil, 404, "not_found", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := s.rowCounts(t)
			var body any
			if tc.body != "" || tc.method == "POST" {
				body = tc.body
			}
			r := s.call(t, tc.method, tc.path, tc.token, body, tc.header...)
			if r.status != tc.status {
				t.Errorf("status %d, want %d: %.300s", r.status, tc.status, r.raw)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			if code := errorCode(r); code != tc.code {
				t.Errorf("error.code %q, want %q: %.300s", code, tc.code, r.raw)
			}
			if tc.field != "" {
				details, _ := r.body["error"].(map[string]any)["details"].(map[string]any)
				if _, ok := details[tc.field]; !ok {
					t.Errorf("error details %v do not name %q", details, tc.field)
				}
			}
			if strings.Contains(r.raw, sandbox.CardSucceeds) || strings.Contains(r.raw, "4242424242424241") {
				t.Errorf("the answer echoes a card number: %s", r.raw)
			}
			if after := s.rowCounts(t); !maps(before, after) {
				t.Errorf("rejected request wrote: before %v, after %v", before, after)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func maps(a, b map[string]int) bool {
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

// TestMalformedIDsAreNotFound calls the service directly on PostgreSQL,
// behind the transport's own checks: an id that is no UUID must be "not
// found", never PostgreSQL's invalid-input error (a 500).
func TestMalformedIDsAreNotFound(t *testing.T) {
	s := newStack(t, stackOptions{})
	ctx := testCtx(t)
	for _, id := range []string{"", "nope", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", "1; DROP TABLE payments"} {
		calls := map[string]error{}
		_, calls["GetPayment"] = s.svc.GetPayment(ctx, "", id)
		_, calls["PaymentByOrder"] = s.svc.PaymentByOrder(ctx, "", id)
		_, calls["Refund"] = s.svc.Refund(ctx, payment.RefundRequest{PaymentID: id, Amount: 100})
		_, calls["CancelOrderPayment"] = s.svc.CancelOrderPayment(ctx, id)
		for method, err := range calls {
			if err != payment.ErrNotFound {
				t.Errorf("%s(%q): err = %v, want ErrNotFound", method, id, err)
			}
		}
		page, err := s.svc.ListPayments(ctx, payment.PaymentQuery{UserID: id, OrderID: id, Page: 1, PageSize: 10})
		if id != "" && (err != nil || page.Total != 0 || page.Items == nil) {
			t.Errorf("ListPayments(%q) = %+v, %v", id, page, err)
		}
	}
}

// textColumns returns every text-like column of every table in the
// database, as "table.column".
func textColumns(t *testing.T, db *sqlx.DB) []string {
	t.Helper()
	var cols []string
	if err := db.Select(&cols, `
		SELECT table_name || '.' || column_name FROM information_schema.columns
		WHERE table_schema = 'public'
		  AND data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'bytea')
		ORDER BY 1`); err != nil {
		t.Fatal(err)
	}
	return cols
}

// TestCardNeverStoredOrLogged runs every path a card takes (charges of each
// sandbox card, webhooks, refunds, a cancellation, validation failures)
// and then looks for the card numbers and CVC in every text column of every
// table and in everything logged at debug level.
func TestCardNeverStoredOrLogged(t *testing.T) {
	s := newStack(t, stackOptions{dispatch: true})
	userID := uuid.NewString()
	cards := []string{sandbox.CardSucceeds, sandbox.CardDeclined, sandbox.CardInsufficientFunds}
	var ids []string
	for _, c := range cards {
		b := chargeBody(uuid.NewString(), userID, "12.34", c)
		b["card"].(map[string]any)["cvc"] = "9876"
		r := want(t, s.call(t, "POST", "/internal/payments", s.serviceToken(t), b), http.StatusAccepted)
		ids = append(ids, r.body["payment"].(map[string]any)["id"].(string))
		// Invalid variants are refused and must not be logged either.
		b["card"].(map[string]any)["exp_year"] = 2001
		want(t, s.call(t, "POST", "/internal/payments", s.serviceToken(t), b), http.StatusUnprocessableEntity)
	}
	s.waitStatus(t, ids[0], payment.StatusCompleted)
	s.waitStatus(t, ids[1], payment.StatusFailed)
	s.waitStatus(t, ids[2], payment.StatusFailed)
	want(t, s.call(t, "POST", "/api/v1/payments/"+ids[0]+"/refunds", s.adminToken(t), map[string]any{"amount": "1.00"}, "Idempotency-Key", "k"), http.StatusCreated)
	if _, err := s.svc.CancelOrderPayment(testCtx(t), s.payment(t, ids[0]).OrderID); err != nil {
		t.Fatal(err)
	}

	cols := textColumns(t, s.db)
	for _, must := range []string{"payments.card_last4", "payments.provider_response", "sandbox_charges.id", "outbox.payload"} {
		if !slices.Contains(cols, must) {
			t.Fatalf("column %s not scanned; columns: %v", must, cols)
		}
	}
	// The numbers, and the CVC's field name: a CVC is four digits that any
	// timestamp or random id may contain by chance, so its name stands in.
	secrets := append([]string{"cvc"}, cards...)
	for _, col := range cols {
		table, column, _ := strings.Cut(col, ".")
		var values []string
		if err := s.db.Select(&values, fmt.Sprintf(`SELECT %q::text FROM %q WHERE %q IS NOT NULL`, column, table, column)); err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			for _, secret := range secrets {
				if strings.Contains(v, secret) {
					t.Errorf("%s holds %s: %q", col, secret, v)
				}
			}
		}
	}
	logs := s.logs.String()
	if !strings.Contains(logs, `"method":"Charge"`) {
		t.Fatalf("the captured log has no service lines:\n%s", logs)
	}
	for _, secret := range append(secrets, "424242424242") {
		if strings.Contains(logs, secret) {
			t.Errorf("logs hold %s:\n%s", secret, logs)
		}
	}
	var last4 string
	if err := s.db.Get(&last4, `SELECT card_brand || ' ' || card_last4 FROM payments WHERE id = $1`, ids[0]); err != nil || last4 != "visa 4242" {
		t.Errorf("stored card %q, %v", last4, err)
	}
}
