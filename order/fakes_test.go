package order_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/mercato-dev/mercato/order"
	"github.com/mercato-dev/mercato/shared/defaults"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/money"
)

// fakeRepo is an in-memory Repository that keeps the rules the PostgreSQL
// one enforces: unique ids and numbers, the row lock of Transition (one
// mutex), leases on idempotency keys. events records the outbox.
type fakeRepo struct {
	mu     sync.Mutex
	orders map[string]order.Order
	keys   map[string]*fakeKey // user/key
	events []events.Envelope
	now    func() time.Time
	// failCreate, while set, fails CreateOrder (a database outage, or a
	// crash, between the reservation and the order insert).
	failCreate error
}

type fakeKey struct {
	rec         order.IdempotencyRecord
	lockedUntil time.Time
	createdAt   time.Time
}

func newFakeRepo() *fakeRepo {
	return &fakeRepo{orders: map[string]order.Order{}, keys: map[string]*fakeKey{}, now: time.Now}
}

var _ order.Repository = (*fakeRepo)(nil)

func (r *fakeRepo) CreateOrder(_ context.Context, o order.Order, created events.Envelope) (order.Order, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failCreate != nil {
		return order.Order{}, r.failCreate
	}
	if _, ok := r.orders[o.ID]; ok {
		return order.Order{}, order.ErrOrderExists
	}
	for _, other := range r.orders {
		if other.OrderNumber == o.OrderNumber {
			return order.Order{}, order.ErrOrderNumberTaken
		}
	}
	o.CreatedAt, o.UpdatedAt = r.now(), r.now()
	o.StatusHistory = []order.StatusChange{{Status: o.Status, Reason: "order placed", At: o.CreatedAt}}
	r.orders[o.ID] = o
	r.events = append(r.events, created)
	return o, nil
}

func (r *fakeRepo) OrderByID(_ context.Context, id string) (order.Order, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o, ok := r.orders[id]
	if !ok {
		return order.Order{}, order.ErrNotFound
	}
	return o, nil
}

func (r *fakeRepo) ListOrders(_ context.Context, userID string, status order.Status, offset, limit int) ([]order.Order, int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []order.Order
	for _, o := range r.orders {
		if (userID == "" || o.UserID == userID) && (status == "" || o.Status == status) {
			o.StatusHistory = nil
			all = append(all, o)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].CreatedAt.After(all[j].CreatedAt) })
	total := len(all)
	offset = min(offset, total)
	return all[offset:min(offset+limit, total)], total, nil
}

func (r *fakeRepo) Transition(_ context.Context, _ events.Tx, id string, decide func(order.Order) (*order.Change, error)) (order.Order, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o, ok := r.orders[id]
	if !ok {
		return order.Order{}, order.ErrNotFound
	}
	c, err := decide(o)
	if err != nil || c == nil {
		return o, err
	}
	if c.Status != "" && c.Status != o.Status {
		o.StatusHistory = append(append([]order.StatusChange(nil), o.StatusHistory...),
			order.StatusChange{Status: c.Status, Reason: c.Reason, At: r.now()})
		o.Status = c.Status
	}
	if c.Payment != nil {
		p := *c.Payment
		o.Payment = &p
	}
	o.UpdatedAt = r.now()
	r.orders[id] = o
	r.events = append(r.events, c.Events...)
	return o, nil
}

func (r *fakeRepo) ClaimIdempotencyKey(_ context.Context, userID, key string, hash []byte, orderID string, lease time.Duration) (order.IdempotencyRecord, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k, ok := r.keys[userID+"/"+key]
	if !ok {
		k = &fakeKey{rec: order.IdempotencyRecord{UserID: userID, Key: key, RequestHash: hash, OrderID: orderID},
			lockedUntil: r.now().Add(lease), createdAt: r.now()}
		r.keys[userID+"/"+key] = k
		return k.rec, true, nil
	}
	if !k.rec.Done && bytes.Equal(k.rec.RequestHash, hash) && !k.lockedUntil.After(r.now()) {
		k.lockedUntil = r.now().Add(lease)
		rec := k.rec
		rec.Attempted = true
		return rec, true, nil
	}
	return k.rec, false, nil
}

// FinishIdempotencyKey keeps the outcome as the PostgreSQL repository does,
// through JSON, so a repeat sees what a stored one looks like.
func (r *fakeRepo) FinishIdempotencyKey(_ context.Context, userID, key string, outcome order.Outcome) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	k, ok := r.keys[userID+"/"+key]
	if !ok {
		return order.ErrNotFound
	}
	b, err := json.Marshal(outcome)
	if err != nil {
		return err
	}
	var stored order.Outcome
	if err := json.Unmarshal(b, &stored); err != nil {
		return err
	}
	k.rec.Done, k.rec.Outcome = true, stored
	return nil
}

func (r *fakeRepo) ReleaseIdempotencyKey(_ context.Context, userID, key string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if k, ok := r.keys[userID+"/"+key]; ok && !k.rec.Done {
		k.lockedUntil = r.now()
	}
	return nil
}

func (r *fakeRepo) eventTypes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, e.Type)
	}
	return out
}

// eventsOf returns the events of one type, in order.
func (r *fakeRepo) eventsOf(typ string) []events.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []events.Envelope
	for _, e := range r.events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func (r *fakeRepo) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.orders)
}

// dump is everything the repository holds, as JSON: what a leak of the card
// number would show up in.
func (r *fakeRepo) dump() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var keys []order.IdempotencyRecord
	for _, k := range r.keys {
		keys = append(keys, k.rec)
	}
	b, _ := json.Marshal(map[string]any{"orders": r.orders, "keys": keys, "events": r.events})
	return string(b)
}

// setStatus forces an order's status, for tests that start mid-saga.
func (r *fakeRepo) setStatus(id string, s order.Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.orders[id]
	o.Status = s
	r.orders[id] = o
}

// fakeInventory is the product service's reservations in memory, with the
// contract's rules: all-or-nothing, idempotent per order id, mismatch on
// other items, commit of a released reservation refused.
type fakeInventory struct {
	mu           sync.Mutex
	stock        map[string]int          // product/variant → available
	price        map[string]money.Amount // product/variant → unit price
	currency     map[string]string       // product/variant → currency; USD when unset
	reservations map[string]*fakeReservation
	reserves     int   // Reserve calls that created a reservation
	fail         error // returned by every call while set
	failCommit   error // returned by Commit while set
	failRelease  error // returned by Release while set
	releases     []string
	// block, when set, holds Reserve until it is closed; entered receives
	// once per blocked call.
	block   chan struct{}
	entered chan struct{}
}

type fakeReservation struct {
	lines  []order.LineRequest
	status string // reserved, committed, released
	ttl    time.Duration
}

func newFakeInventory() *fakeInventory {
	return &fakeInventory{stock: map[string]int{}, price: map[string]money.Amount{}, currency: map[string]string{},
		reservations: map[string]*fakeReservation{}, entered: make(chan struct{}, 100)}
}

func key(productID string, variantID *string) string {
	return productID + "/" + defaults.Deref(variantID)
}

func (f *fakeInventory) add(productID string, variantID *string, stock int, price money.Amount) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stock[key(productID, variantID)] = stock
	f.price[key(productID, variantID)] = price
}

func (f *fakeInventory) available(productID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stock[key(productID, nil)]
}

func (f *fakeInventory) setFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

func (f *fakeInventory) Reserve(_ context.Context, orderID string, lines []order.LineRequest, ttl time.Duration) (order.Reservation, error) {
	f.mu.Lock()
	block := f.block
	f.mu.Unlock()
	if block != nil {
		f.entered <- struct{}{}
		<-block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return order.Reservation{}, f.fail
	}
	if r, ok := f.reservations[orderID]; ok {
		b1, _ := json.Marshal(r.lines)
		b2, _ := json.Marshal(lines)
		if !bytes.Equal(b1, b2) {
			return order.Reservation{}, order.ErrReservationMismatch
		}
		return f.reservation(orderID, r), nil
	}
	for _, l := range lines {
		k := key(l.ProductID, l.VariantID)
		avail, known := f.stock[k]
		if !known {
			return order.Reservation{}, &order.ItemError{Err: order.ErrUnknownProduct, ProductID: l.ProductID}
		}
		if avail < l.Quantity {
			return order.Reservation{}, &order.ItemError{Err: order.ErrOutOfStock, ProductID: l.ProductID,
				Requested: l.Quantity, Available: avail}
		}
	}
	for _, l := range lines {
		f.stock[key(l.ProductID, l.VariantID)] -= l.Quantity
	}
	r := &fakeReservation{lines: lines, status: "reserved", ttl: ttl}
	f.reservations[orderID] = r
	f.reserves++
	return f.reservation(orderID, r), nil
}

// reservation answers like the product service: lines sorted by product.
func (f *fakeInventory) reservation(orderID string, r *fakeReservation) order.Reservation {
	res := order.Reservation{OrderID: orderID, Live: r.status == "reserved", ExpiresAt: time.Now().Add(r.ttl)}
	for _, l := range r.lines {
		k := key(l.ProductID, l.VariantID)
		cur := f.currency[k]
		if cur == "" {
			cur = "USD"
		}
		res.Items = append(res.Items, order.ReservedItem{ProductID: l.ProductID, VariantID: l.VariantID,
			SKU: "SKU-" + l.ProductID[:8], Name: "Product " + l.ProductID[:8], Quantity: l.Quantity,
			UnitPrice: f.price[k], Currency: cur})
	}
	sort.Slice(res.Items, func(i, j int) bool { return res.Items[i].ProductID < res.Items[j].ProductID })
	return res
}

func (f *fakeInventory) Commit(_ context.Context, orderID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	if f.failCommit != nil {
		return f.failCommit
	}
	r, ok := f.reservations[orderID]
	switch {
	case !ok:
		return order.ErrNotFound
	case r.status == "released":
		return order.ErrReservationReleased
	}
	r.status = "committed"
	return nil
}

func (f *fakeInventory) Release(_ context.Context, orderID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	if f.failRelease != nil {
		return f.failRelease
	}
	f.releases = append(f.releases, orderID)
	r, ok := f.reservations[orderID]
	if !ok || r.status == "released" {
		return nil
	}
	r.status = "released"
	for _, l := range r.lines {
		f.stock[key(l.ProductID, l.VariantID)] += l.Quantity
	}
	return nil
}

// expire releases a reservation as the product service's sweeper does.
func (f *fakeInventory) expire(orderID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.reservations[orderID]
	r.status = "released"
	for _, l := range r.lines {
		f.stock[key(l.ProductID, l.VariantID)] += l.Quantity
	}
}

func (f *fakeInventory) status(orderID string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.reservations[orderID]; ok {
		return r.status
	}
	return ""
}

func (f *fakeInventory) reservationCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reserves
}

// fakePayments is the payment service's charge call: idempotent per order
// id, mismatch on another amount.
type fakePayments struct {
	mu      sync.Mutex
	charges map[string]order.Charge
	calls   int
	fail    error // returned while set, after recording the charge when failAfter
	// failAfter makes a failing call fail after taking the charge, like a
	// timeout whose request did arrive.
	failAfter bool
	reject    *order.RejectedError
	// records are the payments as the payment service has them, by id, for
	// Payment; readFail fails Payment while set.
	records  map[string]order.PaymentRecord
	readFail error
}

func newFakePayments() *fakePayments {
	return &fakePayments{charges: map[string]order.Charge{}, records: map[string]order.PaymentRecord{}}
}

// record makes the payment service have p, as it does before it writes an
// event about p.
func (f *fakePayments) record(p order.PaymentRecord) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.records[p.ID] = p
}

func (f *fakePayments) Payment(_ context.Context, id string) (order.PaymentRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.readFail != nil {
		return order.PaymentRecord{}, f.readFail
	}
	p, ok := f.records[id]
	if !ok {
		return order.PaymentRecord{}, order.ErrUnknownPayment
	}
	return p, nil
}

func (f *fakePayments) setReadFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.readFail = err
}

func (f *fakePayments) Charge(_ context.Context, c order.Charge) (order.ChargeResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.reject != nil {
		return order.ChargeResult{}, f.reject
	}
	if f.fail != nil && !f.failAfter {
		return order.ChargeResult{}, f.fail
	}
	if prev, ok := f.charges[c.OrderID]; ok {
		if prev.Amount != c.Amount {
			return order.ChargeResult{}, errors.New("payment_mismatch")
		}
	} else {
		f.charges[c.OrderID] = c
	}
	if f.fail != nil {
		return order.ChargeResult{}, f.fail
	}
	return order.ChargeResult{PaymentID: paymentID(c.OrderID), Status: "pending",
		Card: order.CardSummary{Brand: "visa", Last4: c.Card.Number[len(c.Card.Number)-4:]}}, nil
}

// paymentID is the payment id fakePayments gives an order's charge.
func paymentID(orderID string) string { return "9" + orderID[1:] }

func (f *fakePayments) charged() map[string]order.Charge {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]order.Charge{}
	for k, v := range f.charges {
		out[k] = v
	}
	return out
}

func (f *fakePayments) setFail(err error, after bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail, f.failAfter = err, after
}
