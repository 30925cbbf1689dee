package order_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/order"
	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/money"
)

const testSecret = "0123456789abcdef0123456789abcdef"

// world is a service on fakes.
type world struct {
	svc       order.Service
	saga      *order.Saga
	repo      *fakeRepo
	inventory *fakeInventory
	payments  *fakePayments
	tokens    *auth.Tokens
	// Two products: a at 19.99 with 10 in stock, b at 5.00 with 3.
	a, b string
}

func newWorld(t *testing.T, opts order.Options) *world {
	t.Helper()
	repo := newFakeRepo()
	w := newWorldOn(t, repo, opts)
	w.repo = repo
	return w
}

// newWorldOn is a world whose service and saga keep their orders in repo
// (w.repo stays nil unless repo is the fake).
func newWorldOn(t *testing.T, repo order.Repository, opts order.Options) *world {
	t.Helper()
	tokens, err := auth.NewTokens([]byte(testSecret), 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{inventory: newFakeInventory(), payments: newFakePayments(), tokens: tokens,
		a: uuid.NewString(), b: uuid.NewString()}
	w.inventory.add(w.a, nil, 10, 1999)
	w.inventory.add(w.b, nil, 3, 500)
	if opts.RequestHashKey == nil {
		opts.RequestHashKey = []byte(testSecret)
	}
	w.svc, err = order.NewService(repo, w.inventory, w.payments, tokens, opts)
	if err != nil {
		t.Fatal(err)
	}
	w.saga = order.NewSaga(repo, w.inventory, w.payments, tokens, nopLogger(), nil)
	return w
}

var visa = order.Card{Number: "4242424242424242", ExpMonth: 12, ExpYear: time.Now().Year() + 2, CVC: "123"}

func address() order.Address {
	return order.Address{Street: "1 Main St", City: "Springfield", State: "IL", ZipCode: "62701", Country: "US"}
}

func (w *world) checkout(lines ...order.LineRequest) order.Checkout {
	if len(lines) == 0 {
		lines = []order.LineRequest{{ProductID: w.a, Quantity: 2}, {ProductID: w.b, Quantity: 1}}
	}
	return order.Checkout{Items: lines, ShippingAddress: address(), Card: visa}
}

func (w *world) place(t *testing.T, userID string) order.Order {
	t.Helper()
	o, err := w.svc.PlaceOrder(context.Background(), userID, "", w.checkout())
	if err != nil {
		t.Fatalf("PlaceOrder: %v", err)
	}
	return o
}

// deliver hands a genuine event to the saga as the consumer would: the
// payment service has the payment a payment event reports as it says.
func (w *world) deliver(t *testing.T, typ string, data any) error {
	t.Helper()
	e, err := events.New(context.Background(), "test", typ, data)
	if err != nil {
		t.Fatal(err)
	}
	switch typ {
	case events.PaymentProcessed:
		var d events.PaymentProcessedPayload
		if err := e.Decode(&d); err != nil {
			t.Fatal(err)
		}
		w.payments.record(order.PaymentRecord{ID: d.PaymentID, OrderID: d.OrderID, UserID: d.UserID,
			Status: order.PaymentCaptured, Captured: d.Amount, Currency: d.Currency})
	case events.PaymentFailed:
		var d events.PaymentFailedPayload
		if err := e.Decode(&d); err != nil {
			t.Fatal(err)
		}
		w.payments.record(order.PaymentRecord{ID: d.PaymentID, OrderID: d.OrderID, UserID: d.UserID,
			Status: order.PaymentFailed, FailureCode: d.FailureCode})
	case events.PaymentRefunded:
		var d events.PaymentRefundedPayload
		if err := e.Decode(&d); err != nil {
			t.Fatal(err)
		}
		status := order.PaymentPartiallyRefunded
		if d.FullyRefunded {
			status = order.PaymentRefunded
		}
		w.payments.record(order.PaymentRecord{ID: d.PaymentID, OrderID: d.OrderID, UserID: d.UserID,
			Status: status, Refunded: d.RefundedAmount, Currency: d.Currency})
	}
	return w.forge(t, typ, data)
}

// forge hands an event to the saga as the consumer would, whatever the
// payment service has.
func (w *world) forge(t *testing.T, typ string, data any) error {
	t.Helper()
	e, err := events.New(context.Background(), "test", typ, data)
	if err != nil {
		t.Fatal(err)
	}
	return w.saga.Handle(context.Background(), nil, e)
}

func (w *world) order(t *testing.T, id string) order.Order {
	t.Helper()
	o, err := w.repo.OrderByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestPlaceOrder(t *testing.T) {
	w := newWorld(t, order.Options{TaxRateBasisPoints: 825, ShippingFee: 499})
	userID := uuid.NewString()
	// b before a: the order keeps the customer's line order, whatever order
	// the product service answers in.
	c := w.checkout(order.LineRequest{ProductID: w.b, Quantity: 1}, order.LineRequest{ProductID: w.a, Quantity: 2})
	o, err := w.svc.PlaceOrder(context.Background(), userID, "", c)
	if err != nil {
		t.Fatal(err)
	}

	// 2 × 19.99 + 5.00 = 44.98; tax 8.25% = 3.71085 → 3.71; shipping 4.99.
	want := map[string]money.Amount{"subtotal": 4498, "tax": 371, "shipping": 499, "discount": 0, "total": 5368}
	got := map[string]money.Amount{"subtotal": o.Subtotal, "tax": o.TaxAmount, "shipping": o.ShippingAmount,
		"discount": o.DiscountAmount, "total": o.TotalAmount}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("totals = %v, want %v", got, want)
	}
	if o.Status != order.StatusPending || o.UserID != userID || o.Currency != "USD" {
		t.Errorf("order = %+v", o)
	}
	if !regexp.MustCompile(`^MER-\d{8}-[2-9A-HJKMNP-Z]{6}$`).MatchString(o.OrderNumber) ||
		!strings.HasPrefix(o.OrderNumber, "MER-"+time.Now().UTC().Format("20060102")) {
		t.Errorf("order number %q", o.OrderNumber)
	}
	if len(o.Items) != 2 || o.Items[0].ProductID != w.b || o.Items[0].UnitPrice != 500 || o.Items[0].TotalPrice != 500 ||
		o.Items[1].ProductID != w.a || o.Items[1].Quantity != 2 || o.Items[1].UnitPrice != 1999 || o.Items[1].TotalPrice != 3998 ||
		o.Items[1].Name != "Product "+w.a[:8] || o.Items[1].SKU != "SKU-"+w.a[:8] {
		t.Errorf("items = %+v", o.Items)
	}
	if o.BillingAddress != o.ShippingAddress {
		t.Errorf("billing %+v should default to shipping %+v", o.BillingAddress, o.ShippingAddress)
	}
	if o.Payment == nil || o.Payment.Status != order.PaymentPending || o.Payment.ID != paymentID(o.ID) ||
		o.Payment.Card == nil || *o.Payment.Card != (order.CardSummary{Brand: "visa", Last4: "4242"}) {
		t.Errorf("payment = %+v", o.Payment)
	}

	// Stock held, the card charged the total.
	if w.inventory.available(w.a) != 8 || w.inventory.available(w.b) != 2 || w.inventory.status(o.ID) != "reserved" {
		t.Errorf("stock a=%d b=%d, reservation %q", w.inventory.available(w.a), w.inventory.available(w.b), w.inventory.status(o.ID))
	}
	ch := w.payments.charged()[o.ID]
	if ch.Amount != 5368 || ch.Currency != "USD" || ch.UserID != userID || ch.Card != visa {
		t.Errorf("charge = %+v", ch)
	}

	// order.created, with the lines.
	if got := w.repo.eventTypes(); !slices.Equal(got, []string{events.OrderCreated}) {
		t.Fatalf("events %v", got)
	}
	var created struct {
		OrderID     string `json:"order_id"`
		OrderNumber string `json:"order_number"`
		UserID      string `json:"user_id"`
		TotalAmount string `json:"total_amount"`
		Currency    string `json:"currency"`
		Items       []struct {
			ProductID string  `json:"product_id"`
			VariantID *string `json:"variant_id"`
			Name      string  `json:"name"`
			Quantity  int     `json:"quantity"`
			UnitPrice string  `json:"unit_price"`
		} `json:"items"`
	}
	if err := w.repo.events[0].Decode(&created); err != nil {
		t.Fatal(err)
	}
	if created.OrderID != o.ID || created.OrderNumber != o.OrderNumber || created.UserID != userID ||
		created.TotalAmount != "53.68" || created.Currency != "USD" || len(created.Items) != 2 ||
		created.Items[1].UnitPrice != "19.99" || created.Items[1].Quantity != 2 || created.Items[1].VariantID != nil {
		t.Errorf("order.created = %+v", created)
	}
	// The card is nowhere: not in the order, the outbox or anything else kept.
	if dump := w.repo.dump(); strings.Contains(dump, visa.Number) || strings.Contains(dump, `"cvc"`) {
		t.Errorf("the card number is stored: %s", dump)
	}
	if s := fmt.Sprintf("%v %+v %#v", c, c, c); strings.Contains(s, visa.Number) || strings.Contains(s, "CVC") || !strings.Contains(s, "card(redacted)") {
		t.Errorf("formatting a checkout shows the card: %s", s)
	}
}

func TestPlaceOrderBusinessErrors(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, order.Options{})
	userID := uuid.NewString()

	// Out of stock: nothing reserved, stored or charged; the error names the line.
	_, err := w.svc.PlaceOrder(ctx, userID, "", w.checkout(order.LineRequest{ProductID: w.a, Quantity: 1}, order.LineRequest{ProductID: w.b, Quantity: 4}))
	var item *order.ItemError
	if !errors.Is(err, order.ErrOutOfStock) || !errors.As(err, &item) || item.ProductID != w.b || item.Requested != 4 || item.Available != 3 {
		t.Errorf("out of stock: err = %#v", err)
	}
	// Unknown product.
	if _, err := w.svc.PlaceOrder(ctx, userID, "", w.checkout(order.LineRequest{ProductID: uuid.NewString(), Quantity: 1})); !errors.Is(err, order.ErrUnknownProduct) {
		t.Errorf("unknown product: err = %v", err)
	}
	// The product service is down.
	w.inventory.setFail(fmt.Errorf("%w: product: no instances", order.ErrUpstreamUnavailable))
	if _, err := w.svc.PlaceOrder(ctx, userID, "", w.checkout()); !errors.Is(err, order.ErrUpstreamUnavailable) {
		t.Errorf("product down: err = %v", err)
	}
	w.inventory.setFail(nil)
	if w.repo.count() != 0 || len(w.payments.charged()) != 0 || w.inventory.available(w.a) != 10 || w.inventory.available(w.b) != 3 {
		t.Fatalf("a failed checkout left %d orders, %d charges, stock a=%d b=%d", w.repo.count(), len(w.payments.charged()),
			w.inventory.available(w.a), w.inventory.available(w.b))
	}

	// Prices in two currencies: the reservation is given back at once.
	eur := uuid.NewString()
	w.inventory.add(eur, nil, 5, 1000)
	w.inventory.currency[key(eur, nil)] = "EUR"
	if _, err := w.svc.PlaceOrder(ctx, userID, "", w.checkout(order.LineRequest{ProductID: w.a, Quantity: 1}, order.LineRequest{ProductID: eur, Quantity: 1})); !errors.Is(err, order.ErrMixedCurrencies) {
		t.Errorf("mixed currencies: err = %v", err)
	}
	if w.inventory.available(w.a) != 10 || w.inventory.available(eur) != 5 || w.repo.count() != 0 {
		t.Errorf("mixed currencies kept stock: a=%d eur=%d, %d orders", w.inventory.available(w.a), w.inventory.available(eur), w.repo.count())
	}

	// A total beyond one charge.
	dear := uuid.NewString()
	w.inventory.add(dear, nil, 1000, 99_999_999_99)
	if _, err := w.svc.PlaceOrder(ctx, userID, "", w.checkout(order.LineRequest{ProductID: dear, Quantity: 2})); !errors.Is(err, order.ErrTotalTooLarge) {
		t.Errorf("huge total: err = %v", err)
	}

	// The payment service refuses the card: the order is cancelled at once,
	// and its order.cancelled releases the stock through the saga.
	w.payments.reject = &order.RejectedError{Code: "card_not_supported", Message: "no"}
	_, err = w.svc.PlaceOrder(ctx, userID, "", w.checkout())
	var rejected *order.RejectedError
	if !errors.Is(err, order.ErrPaymentRejected) || !errors.As(err, &rejected) || rejected.Code != "card_not_supported" {
		t.Fatalf("rejected card: err = %v", err)
	}
	if w.repo.count() != 1 {
		t.Fatalf("%d orders", w.repo.count())
	}
	orders, _, _ := w.repo.ListOrders(ctx, "", "", 0, 10)
	o := orders[0]
	if o.Status != order.StatusCancelled {
		t.Errorf("order after a rejected card: %s", o.Status)
	}
	if got := w.repo.eventTypes(); !slices.Equal(got, []string{events.OrderCreated, events.OrderUpdated, events.OrderCancelled}) {
		t.Errorf("events %v", got)
	}
	cancelled := w.repo.eventsOf(events.OrderCancelled)[0]
	if err := w.saga.Handle(ctx, nil, cancelled); err != nil {
		t.Fatal(err)
	}
	if w.inventory.status(o.ID) != "released" || w.inventory.available(w.a) != 10 {
		t.Errorf("stock not released: %s, a=%d", w.inventory.status(o.ID), w.inventory.available(w.a))
	}
}

func TestIdempotencyKey(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, order.Options{})
	ada, bob := uuid.NewString(), uuid.NewString()
	c := w.checkout()

	first, err := w.svc.PlaceOrder(ctx, ada, "key-1", c)
	if err != nil {
		t.Fatal(err)
	}
	again, err := w.svc.PlaceOrder(ctx, ada, "key-1", c)
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := json.Marshal(first)
	b2, _ := json.Marshal(again)
	if string(b1) != string(b2) {
		t.Errorf("repeat answered\n%s\nwant\n%s", b2, b1)
	}
	// Another body under the same key is refused; another user's key is theirs.
	other := c
	other.Items = []order.LineRequest{{ProductID: w.a, Quantity: 1}}
	if _, err := w.svc.PlaceOrder(ctx, ada, "key-1", other); !errors.Is(err, order.ErrIdempotencyMismatch) {
		t.Errorf("other body: err = %v", err)
	}
	otherCard := c
	otherCard.Card.CVC = "999"
	if _, err := w.svc.PlaceOrder(ctx, ada, "key-1", otherCard); !errors.Is(err, order.ErrIdempotencyMismatch) {
		t.Errorf("other card: err = %v", err)
	}
	// The same content spelled differently (billing given as the shipping
	// address) is the same request.
	explicit := c
	addr := c.ShippingAddress
	explicit.BillingAddress = &addr
	if o, err := w.svc.PlaceOrder(ctx, ada, "key-1", explicit); err != nil || o.ID != first.ID {
		t.Errorf("billing spelled out: %v, %v", o.ID, err)
	}
	bobs, err := w.svc.PlaceOrder(ctx, bob, "key-1", c)
	if err != nil || bobs.ID == first.ID || bobs.UserID != bob {
		t.Errorf("bob's key-1: %+v, %v", bobs, err)
	}
	if n := w.repo.count(); n != 2 || w.inventory.reservationCount() != 2 || len(w.payments.charged()) != 2 {
		t.Errorf("%d orders, %d reservations, %d charges; want 2 each", n, w.inventory.reservationCount(), len(w.payments.charged()))
	}
	if dump := w.repo.dump(); strings.Contains(dump, visa.Number) {
		t.Error("the card number is stored with the idempotency key")
	}
}

func TestIdempotencyKeyConcurrentDuplicates(t *testing.T) {
	w := newWorld(t, order.Options{})
	user := uuid.NewString()
	c := w.checkout()
	const n = 20
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ids  = map[string]int{}
		errs []error
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, err := w.svc.PlaceOrder(context.Background(), user, "same-key", c)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			ids[o.ID]++
		}()
	}
	wg.Wait()
	if len(errs) > 0 || len(ids) != 1 {
		t.Fatalf("answers by order id %v, errors %v; want one order for all %d", ids, errs, n)
	}
	if w.repo.count() != 1 || w.inventory.reservationCount() != 1 || w.payments.calls != 1 {
		t.Errorf("%d orders, %d reservations, %d charge calls; want 1 each", w.repo.count(), w.inventory.reservationCount(), w.payments.calls)
	}
}

func TestIdempotencyKeyResumesAfterAFailure(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, order.Options{})
	user := uuid.NewString()
	c := w.checkout()

	// The payment service takes the charge but the answer is lost.
	w.payments.setFail(fmt.Errorf("%w: payment: timeout", order.ErrUpstreamUnavailable), true)
	if _, err := w.svc.PlaceOrder(ctx, user, "k", c); !errors.Is(err, order.ErrUpstreamUnavailable) {
		t.Fatalf("err = %v", err)
	}
	if w.repo.count() != 1 {
		t.Fatalf("%d orders after the failure; the order stays, pending", w.repo.count())
	}
	// The retry carries on with the same order: no second reservation,
	// and the payment service answers the same charge again.
	w.payments.setFail(nil, false)
	o, err := w.svc.PlaceOrder(ctx, user, "k", c)
	if err != nil {
		t.Fatal(err)
	}
	if w.repo.count() != 1 || w.inventory.reservationCount() != 1 || len(w.payments.charged()) != 1 ||
		o.Payment == nil || o.Payment.Status != order.PaymentPending {
		t.Errorf("after the retry: %d orders, %d reservations, %d charges, payment %+v",
			w.repo.count(), w.inventory.reservationCount(), len(w.payments.charged()), o.Payment)
	}

	// A business answer is final for its key: the same error comes back
	// even once the stock is there, details included.
	big := w.checkout(order.LineRequest{ProductID: w.a, Quantity: 9})
	_, err1 := w.svc.PlaceOrder(ctx, user, "k2", big)
	w.inventory.add(w.a, nil, 100, 1999)
	_, err2 := w.svc.PlaceOrder(ctx, user, "k2", big)
	var e2 *order.Refusal
	if !errors.Is(err1, order.ErrOutOfStock) || !errors.As(err2, &e2) || !errors.Is(err2, order.ErrOutOfStock) ||
		e2.Code != "out_of_stock" || e2.Error() != err1.Error() ||
		e2.Details["product_id"] != w.a || e2.Details["available"] != float64(8) || e2.Details["requested"] != float64(9) {
		t.Errorf("first %v; repeat %#v", err1, err2)
	}
}

// TestIdempotencyKeyResumesAfterTheReservation: the order insert fails after
// the stock was reserved; the retry reuses that reservation (same order id)
// instead of holding the stock twice.
func TestIdempotencyKeyResumesAfterTheReservation(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, order.Options{})
	user := uuid.NewString()
	w.repo.failCreate = errors.New("database down")
	if _, err := w.svc.PlaceOrder(ctx, user, "k", w.checkout()); err == nil {
		t.Fatal("the failed insert succeeded")
	}
	if w.inventory.reservationCount() != 1 || w.inventory.available(w.a) != 8 || w.repo.count() != 0 {
		t.Fatalf("after the failure: %d reservations, a=%d, %d orders", w.inventory.reservationCount(), w.inventory.available(w.a), w.repo.count())
	}
	w.repo.failCreate = nil
	o, err := w.svc.PlaceOrder(ctx, user, "k", w.checkout())
	if err != nil {
		t.Fatal(err)
	}
	if w.inventory.reservationCount() != 1 || w.inventory.available(w.a) != 8 || w.repo.count() != 1 ||
		w.inventory.status(o.ID) != "reserved" || len(w.payments.charged()) != 1 {
		t.Errorf("after the retry: %d reservations, a=%d, %d orders, reservation %q, %d charges",
			w.inventory.reservationCount(), w.inventory.available(w.a), w.repo.count(), w.inventory.status(o.ID), len(w.payments.charged()))
	}
	// The reservation expired before the retry: that key's order cannot be
	// placed any more, and nothing is held.
	w.repo.failCreate = errors.New("database down")
	if _, err := w.svc.PlaceOrder(ctx, user, "k2", w.checkout()); err == nil {
		t.Fatal("the failed insert succeeded")
	}
	w.repo.failCreate = nil
	for id, r := range w.inventory.reservations {
		if r.status == "reserved" && id != o.ID {
			w.inventory.expire(id)
		}
	}
	if _, err := w.svc.PlaceOrder(ctx, user, "k2", w.checkout()); !errors.Is(err, order.ErrReservationReleased) {
		t.Errorf("retry after expiry: %v", err)
	}
	if w.repo.count() != 1 || w.inventory.available(w.a) != 8 {
		t.Errorf("%d orders, a=%d", w.repo.count(), w.inventory.available(w.a))
	}
}

func TestIdempotencyKeyHeldByAnother(t *testing.T) {
	w := newWorld(t, order.Options{IdempotencyWait: 50 * time.Millisecond})
	user := uuid.NewString()
	c := w.checkout()
	// The first request holds the key while the product service is slow.
	w.inventory.block = make(chan struct{})
	first := make(chan error, 1)
	go func() {
		_, err := w.svc.PlaceOrder(context.Background(), user, "busy", c)
		first <- err
	}()
	<-w.inventory.entered
	start := time.Now()
	if _, err := w.svc.PlaceOrder(context.Background(), user, "busy", c); !errors.Is(err, order.ErrIdempotencyInProgress) {
		t.Errorf("err = %v, want ErrIdempotencyInProgress", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("waited %s for a 50ms wait", d)
	}
	close(w.inventory.block)
	if err := <-first; err != nil {
		t.Fatalf("first request: %v", err)
	}
	if w.repo.count() != 1 || w.inventory.reservationCount() != 1 {
		t.Errorf("%d orders, %d reservations; want 1", w.repo.count(), w.inventory.reservationCount())
	}
}

// TestIdempotencyKeyAfterAKeyRotation: keys stored while request hashes
// were made with another key (before the upgrade, the JWT secret) still
// answer their request, and an unfinished one resumes its order instead of
// a 409 that could make the client place it again under a new key; another
// body is still refused. New keys are hashed with the new key only.
func TestIdempotencyKeyAfterAKeyRotation(t *testing.T) {
	ctx := context.Background()
	oldKey, newKey := []byte(testSecret), []byte("another-key-for-request-hashes-32b")
	w := newWorld(t, order.Options{RequestHashKey: oldKey})
	user := uuid.NewString()
	c := w.checkout()
	first, err := w.svc.PlaceOrder(ctx, user, "done", c)
	if err != nil {
		t.Fatal(err)
	}
	// An attempt that stopped half-way: the charge's answer was lost.
	w.payments.setFail(fmt.Errorf("%w: payment: timeout", order.ErrUpstreamUnavailable), true)
	if _, err := w.svc.PlaceOrder(ctx, user, "unfinished", c); !errors.Is(err, order.ErrUpstreamUnavailable) {
		t.Fatalf("err = %v", err)
	}
	w.payments.setFail(nil, false)

	rotate := func(opts order.Options) order.Service {
		t.Helper()
		svc, err := order.NewService(w.repo, w.inventory, w.payments, w.tokens, opts)
		if err != nil {
			t.Fatal(err)
		}
		return svc
	}
	rotated := rotate(order.Options{RequestHashKey: newKey, PreviousRequestHashKey: oldKey})
	again, err := rotated.PlaceOrder(ctx, user, "done", c)
	b1, _ := json.Marshal(first)
	b2, _ := json.Marshal(again)
	if err != nil || string(b1) != string(b2) {
		t.Errorf("repeat after the rotation: %v\n%s\nwant\n%s", err, b2, b1)
	}
	resumed, err := rotated.PlaceOrder(ctx, user, "unfinished", c)
	if err != nil || resumed.Payment == nil || w.repo.count() != 2 || w.inventory.reservationCount() != 2 || len(w.payments.charged()) != 2 {
		t.Errorf("resumed after the rotation: %+v, %v; %d orders, %d reservations, %d charges",
			resumed.Payment, err, w.repo.count(), w.inventory.reservationCount(), len(w.payments.charged()))
	}
	other := c
	other.Items = []order.LineRequest{{ProductID: w.a, Quantity: 1}}
	if _, err := rotated.PlaceOrder(ctx, user, "done", other); !errors.Is(err, order.ErrIdempotencyMismatch) {
		t.Errorf("other body after the rotation: err = %v", err)
	}
	if _, err := rotated.PlaceOrder(ctx, user, "new", c); err != nil {
		t.Fatal(err)
	}
	if _, err := rotate(order.Options{RequestHashKey: oldKey}).PlaceOrder(ctx, user, "new", c); !errors.Is(err, order.ErrIdempotencyMismatch) {
		t.Errorf("a new key checked with the old hash key: err = %v; want it hashed with the new key only", err)
	}
	// Without the previous key, keys stored under it can only be refused.
	if _, err := rotate(order.Options{RequestHashKey: newKey}).PlaceOrder(ctx, user, "done", c); !errors.Is(err, order.ErrIdempotencyMismatch) {
		t.Errorf("no previous key: err = %v", err)
	}
}

func TestStateMachine(t *testing.T) {
	all := []order.Status{order.StatusPending, order.StatusConfirmed, order.StatusShipped, order.StatusDelivered, order.StatusCancelled, order.StatusRefunded}
	allowed := map[string]bool{
		"pending→confirmed": true, "pending→cancelled": true,
		"confirmed→shipped": true, "confirmed→cancelled": true, "confirmed→refunded": true,
		"shipped→delivered": true, "shipped→refunded": true,
		"delivered→refunded": true,
	}
	for _, from := range all {
		for _, to := range all {
			name := string(from) + "→" + string(to)
			if got := from.CanBecome(to); got != allowed[name] {
				t.Errorf("%s: CanBecome = %v, want %v", name, got, allowed[name])
			}
		}
	}
	if order.Status("lost").Valid() || !order.StatusRefunded.Valid() {
		t.Error("Valid")
	}
}

func TestCancelAndStatus(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, order.Options{})
	ada, eve := uuid.NewString(), uuid.NewString()
	o := w.place(t, ada)
	asAda, asEve, asAdmin := order.Caller{UserID: ada}, order.Caller{UserID: eve}, order.Caller{UserID: uuid.NewString(), Admin: true}

	if _, err := w.svc.GetOrder(ctx, asEve, o.ID); !errors.Is(err, order.ErrNotFound) {
		t.Errorf("eve reads ada's order: %v", err)
	}
	if _, err := w.svc.CancelOrder(ctx, asEve, o.ID, ""); !errors.Is(err, order.ErrNotFound) {
		t.Errorf("eve cancels ada's order: %v", err)
	}
	for _, id := range []string{"", "nope", uuid.NewString()} {
		if _, err := w.svc.GetOrder(ctx, asAdmin, id); !errors.Is(err, order.ErrNotFound) {
			t.Errorf("GetOrder(%q): %v", id, err)
		}
	}
	// Fulfilment of a pending order is not allowed.
	if _, err := w.svc.SetStatus(ctx, o.ID, order.StatusShipped); !errors.Is(err, order.ErrInvalidTransition) {
		t.Errorf("ship pending: %v", err)
	}
	got, err := w.svc.CancelOrder(ctx, asAda, o.ID, "changed my mind")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != order.StatusCancelled || len(got.StatusHistory) != 2 || got.StatusHistory[1].Reason != "changed my mind" {
		t.Errorf("cancelled order %+v", got)
	}
	if _, err := w.svc.CancelOrder(ctx, asAda, o.ID, ""); !errors.Is(err, order.ErrInvalidTransition) {
		t.Errorf("cancel twice: %v", err)
	}
	var updated map[string]string
	if err := w.repo.eventsOf(events.OrderUpdated)[0].Decode(&updated); err != nil || updated["status"] != "cancelled" ||
		updated["previous_status"] != "pending" || updated["order_number"] != o.OrderNumber || updated["user_id"] != ada {
		t.Errorf("order.updated %v %v", updated, err)
	}
	var cancelled map[string]string
	if err := w.repo.eventsOf(events.OrderCancelled)[0].Decode(&cancelled); err != nil ||
		cancelled["order_id"] != o.ID || cancelled["user_id"] != ada || cancelled["reason"] != "changed my mind" {
		t.Errorf("order.cancelled %v %v", cancelled, err)
	}

	// Fulfilment: confirmed → shipped → delivered; nothing after that but a refund.
	p := w.place(t, ada)
	w.repo.setStatus(p.ID, order.StatusConfirmed)
	for _, s := range []order.Status{order.StatusShipped, order.StatusDelivered} {
		if got, err := w.svc.SetStatus(ctx, p.ID, s); err != nil || got.Status != s {
			t.Fatalf("SetStatus(%s) = %s, %v", s, got.Status, err)
		}
	}
	for _, tc := range []struct {
		name string
		do   func() error
	}{
		{"ship twice", func() error { _, err := w.svc.SetStatus(ctx, p.ID, order.StatusShipped); return err }},
		{"admin cancels delivered", func() error { _, err := w.svc.CancelOrder(ctx, asAdmin, p.ID, ""); return err }},
		{"set confirmed", func() error { _, err := w.svc.SetStatus(ctx, p.ID, order.StatusConfirmed); return err }},
	} {
		if err := tc.do(); !errors.Is(err, order.ErrInvalidTransition) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	// An admin cancels anyone's confirmed order.
	q := w.place(t, ada)
	w.repo.setStatus(q.ID, order.StatusConfirmed)
	if got, err := w.svc.CancelOrder(ctx, asAdmin, q.ID, ""); err != nil || got.Status != order.StatusCancelled ||
		got.StatusHistory[len(got.StatusHistory)-1].Reason != "cancelled by an admin" {
		t.Errorf("admin cancel: %+v, %v", got.StatusHistory, err)
	}
}

func TestListOrders(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, order.Options{})
	now := time.Now()
	w.repo.now = func() time.Time { now = now.Add(time.Second); return now }
	ada, bob := uuid.NewString(), uuid.NewString()
	a1, a2, b1 := w.place(t, ada), w.place(t, ada), w.place(t, bob)
	w.repo.setStatus(a1.ID, order.StatusConfirmed)

	ids := func(p order.OrderPage) []string {
		var out []string
		for _, o := range p.Items {
			out = append(out, o.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		caller order.Caller
		f      order.ListFilter
		want   []string
		total  int
	}{
		{"own, newest first", order.Caller{UserID: ada}, order.ListFilter{Page: 1, PageSize: 10}, []string{a2.ID, a1.ID}, 2},
		{"admin sees all", order.Caller{UserID: ada, Admin: true}, order.ListFilter{Page: 1, PageSize: 10}, []string{b1.ID, a2.ID, a1.ID}, 3},
		{"by status", order.Caller{UserID: ada}, order.ListFilter{Status: order.StatusConfirmed, Page: 1, PageSize: 10}, []string{a1.ID}, 1},
		{"second page", order.Caller{UserID: ada}, order.ListFilter{Page: 2, PageSize: 1}, []string{a1.ID}, 2},
		{"past the end", order.Caller{UserID: ada}, order.ListFilter{Page: 3, PageSize: 1}, nil, 2},
		{"a service token's id", order.Caller{UserID: "service:payment"}, order.ListFilter{Page: 1, PageSize: 10}, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := w.svc.ListOrders(ctx, tc.caller, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(p), tc.want) || p.Total != tc.total || p.Page != tc.f.Page || p.PageSize != tc.f.PageSize {
				t.Errorf("page %v total %d, want %v total %d", ids(p), p.Total, tc.want, tc.total)
			}
		})
	}
}

func TestSagaPaymentProcessed(t *testing.T) {
	w := newWorld(t, order.Options{})
	o := w.place(t, uuid.NewString())
	processed := map[string]any{"payment_id": paymentID(o.ID), "order_id": o.ID, "user_id": o.UserID,
		"amount": o.TotalAmount.String(), "currency": "USD"}

	// The payment service cannot confirm the event, then the product
	// service is down: the event fails and will be retried for as long as
	// that lasts (Transient, never dead-lettered for it); the order has not
	// moved.
	w.payments.setReadFail(fmt.Errorf("%w: payment get payment: no instances", order.ErrUpstreamUnavailable))
	if err := w.deliver(t, events.PaymentProcessed, processed); !events.IsTransient(err) {
		t.Fatalf("payment service down: err = %v, want a transient error", err)
	}
	if got := w.order(t, o.ID); got.Status != order.StatusPending || w.inventory.status(o.ID) == "committed" {
		t.Fatalf("status %s, reservation %s without the payment service's confirmation", got.Status, w.inventory.status(o.ID))
	}
	w.payments.setReadFail(nil)
	w.inventory.setFail(fmt.Errorf("%w: product down", order.ErrUpstreamUnavailable))
	if err := w.deliver(t, events.PaymentProcessed, processed); !events.IsTransient(err) {
		t.Fatalf("product service down: err = %v, want a transient error", err)
	}
	if got := w.order(t, o.ID); got.Status != order.StatusPending {
		t.Fatalf("status %s after a failed commit", got.Status)
	}
	w.inventory.setFail(nil)

	for range 2 { // the second delivery changes nothing
		if err := w.deliver(t, events.PaymentProcessed, processed); err != nil {
			t.Fatal(err)
		}
	}
	got := w.order(t, o.ID)
	if got.Status != order.StatusConfirmed || got.Payment.Status != order.PaymentCaptured || got.Payment.Card.Last4 != "4242" ||
		w.inventory.status(o.ID) != "committed" || len(got.StatusHistory) != 2 || got.StatusHistory[1].Reason != "payment captured" {
		t.Errorf("after payment.processed: %s, payment %+v, reservation %s, history %+v", got.Status, got.Payment, w.inventory.status(o.ID), got.StatusHistory)
	}
	if types := w.repo.eventTypes(); !slices.Equal(types, []string{events.OrderCreated, events.OrderUpdated}) {
		t.Errorf("events %v", types)
	}
}

func TestSagaPaymentAfterTheReservationExpired(t *testing.T) {
	w := newWorld(t, order.Options{})
	o := w.place(t, uuid.NewString())
	w.inventory.expire(o.ID)
	if err := w.deliver(t, events.PaymentProcessed, map[string]any{"payment_id": paymentID(o.ID), "order_id": o.ID,
		"user_id": o.UserID, "amount": o.TotalAmount.String(), "currency": "USD"}); err != nil {
		t.Fatal(err)
	}
	got := w.order(t, o.ID)
	if got.Status != order.StatusCancelled || got.Payment.Status != order.PaymentCaptured {
		t.Errorf("status %s, payment %+v", got.Status, got.Payment)
	}
	// order.cancelled makes the payment service refund the capture.
	if types := w.repo.eventTypes(); !slices.Equal(types, []string{events.OrderCreated, events.OrderUpdated, events.OrderCancelled}) {
		t.Errorf("events %v", types)
	}
}

func TestSagaPaymentCapturedAfterCancel(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, order.Options{})
	o := w.place(t, uuid.NewString())
	if _, err := w.svc.CancelOrder(ctx, order.Caller{UserID: o.UserID}, o.ID, ""); err != nil {
		t.Fatal(err)
	}
	processed := map[string]any{"payment_id": paymentID(o.ID), "order_id": o.ID, "user_id": o.UserID,
		"amount": o.TotalAmount.String(), "currency": "USD"}
	for range 2 {
		if err := w.deliver(t, events.PaymentProcessed, processed); err != nil {
			t.Fatal(err)
		}
	}
	// Cancelled stays cancelled, nothing is committed, and the payment
	// service hears of the cancellation again (once), now that there is a
	// capture to refund.
	got := w.order(t, o.ID)
	if got.Status != order.StatusCancelled || w.inventory.status(o.ID) == "committed" {
		t.Errorf("status %s, reservation %s", got.Status, w.inventory.status(o.ID))
	}
	if n := len(w.repo.eventsOf(events.OrderCancelled)); n != 2 {
		t.Errorf("%d order.cancelled events, want 2 (the cancel and the capture after it)", n)
	}
}

func TestSagaFailuresExpiryAndRefunds(t *testing.T) {
	w := newWorld(t, order.Options{})
	user := uuid.NewString()

	failed := w.place(t, user)
	if err := w.deliver(t, events.PaymentFailed, map[string]any{"payment_id": paymentID(failed.ID), "order_id": failed.ID,
		"user_id": user, "failure_code": "card_declined"}); err != nil {
		t.Fatal(err)
	}
	if got := w.order(t, failed.ID); got.Status != order.StatusCancelled || got.Payment.Status != order.PaymentFailed ||
		got.Payment.FailureCode != "card_declined" || got.StatusHistory[1].Reason != "payment_failed: card_declined" {
		t.Errorf("after payment.failed: %s %+v %+v", got.Status, got.Payment, got.StatusHistory)
	}

	// Expiry cancels a pending order only; our own releases are ignored.
	expired, confirmed := w.place(t, user), w.place(t, user)
	w.repo.setStatus(confirmed.ID, order.StatusConfirmed)
	for _, d := range []map[string]string{
		{"order_id": expired.ID, "reason": "expired"},
		{"order_id": confirmed.ID, "reason": "expired"},
		{"order_id": failed.ID, "reason": "released"},
		{"order_id": uuid.NewString(), "reason": "expired"}, // not ours: dropped
		{"order_id": "garbage", "reason": "expired"},
	} {
		if err := w.deliver(t, events.InventoryReleased, d); err != nil {
			t.Fatal(err)
		}
	}
	if got := w.order(t, expired.ID); got.Status != order.StatusCancelled || !strings.HasPrefix(got.StatusHistory[1].Reason, "reservation_expired") {
		t.Errorf("expired: %s %+v", got.Status, got.StatusHistory)
	}
	if got := w.order(t, confirmed.ID); got.Status != order.StatusConfirmed {
		t.Errorf("confirmed order changed on expiry: %s", got.Status)
	}

	// Refunds: partial, then full.
	for _, tc := range []struct {
		refunded string
		full     bool
		status   order.Status
		payment  string
	}{
		{"10.00", false, order.StatusConfirmed, order.PaymentPartiallyRefunded},
		{"7.00", false, order.StatusConfirmed, order.PaymentPartiallyRefunded}, // late and smaller: keeps 10.00
		{confirmed.TotalAmount.String(), true, order.StatusRefunded, order.PaymentRefunded},
	} {
		if err := w.deliver(t, events.PaymentRefunded, map[string]any{"payment_id": paymentID(confirmed.ID),
			"order_id": confirmed.ID, "user_id": user, "amount": "1.00", "refunded_amount": tc.refunded, "fully_refunded": tc.full}); err != nil {
			t.Fatal(err)
		}
		got := w.order(t, confirmed.ID)
		wantRefunded := tc.refunded
		if tc.refunded == "7.00" {
			wantRefunded = "10.00"
		}
		if got.Status != tc.status || got.Payment.Status != tc.payment || got.Payment.RefundedAmount.String() != wantRefunded {
			t.Errorf("after refund of %s: %s, payment %+v", tc.refunded, got.Status, got.Payment)
		}
	}

	// order.cancelled releases the stock; a failing release is retried.
	w.inventory.setFail(errors.New("product down"))
	if err := w.deliver(t, events.OrderCancelled, map[string]string{"order_id": failed.ID, "user_id": user, "reason": "x"}); err == nil {
		t.Error("release failure swallowed")
	}
	w.inventory.setFail(nil)
	if err := w.deliver(t, events.OrderCancelled, map[string]string{"order_id": failed.ID, "user_id": user, "reason": "x"}); err != nil {
		t.Fatal(err)
	}
	if w.inventory.status(failed.ID) != "released" {
		t.Errorf("reservation %s", w.inventory.status(failed.ID))
	}
	// A payload that cannot be decoded is an error (dead-lettered after retries).
	e := events.Envelope{ID: uuid.NewString(), Type: events.PaymentFailed, Data: []byte(`[1]`)}
	if err := w.saga.Handle(context.Background(), nil, e); err == nil {
		t.Error("undecodable payload accepted")
	}
}

func TestNewServiceRefusesBadOptions(t *testing.T) {
	tokens, _ := auth.NewTokens([]byte(testSecret), time.Minute)
	for _, opts := range []order.Options{
		{RequestHashKey: []byte("short")},
		{RequestHashKey: []byte(testSecret), TaxRateBasisPoints: -1},
		{RequestHashKey: []byte(testSecret), TaxRateBasisPoints: 10_001},
		{RequestHashKey: []byte(testSecret), ShippingFee: -1},
	} {
		if _, err := order.NewService(newFakeRepo(), newFakeInventory(), newFakePayments(), tokens, opts); err == nil {
			t.Errorf("NewService(%+v) accepted", opts)
		}
	}
}

func nopLogger() log.Logger { return log.NewNopLogger() }
