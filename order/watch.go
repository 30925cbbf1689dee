package order

// Live order status: the Watcher behind GET /orders/{id}/events.
//
// How a stream learns of a transition: every row of order_status_history
// is the truth, and a wake-up tells the instance that an order has new
// rows. The wake-ups come from PostgreSQL: a trigger on the history table
// runs pg_notify('order_status', order id) in the transaction that writes
// the row, so the notification is delivered when (and only if) it commits,
// to every instance listening on the order database, whichever instance
// committed it (order/postgres.Listen). Redis's order stream would do too,
// but its events reach Redis only when the outbox relay has published them,
// and each instance would have to read every event of every type; the
// notification is as transactional as the row and costs nothing when
// nobody listens. A stream never trusts the wake-up's content: it reads the
// history rows after the last id it sent, so a wake-up lost while the
// listener reconnects (it then wakes every stream) or two merged into one
// lose nothing. A stream subscribes before its first read, so a row
// committed between that read and the live feed wakes it again; reading
// "after the last id" drops what was already sent. Rows of one order are
// written under the order's row lock, so their ids are in commit order.

import (
	"context"
	"sync"
	"time"

	"github.com/go-kit/kit/metrics"

	"github.com/mercato-dev/mercato/shared/defaults"
	"github.com/mercato-dev/mercato/shared/validate"
	"github.com/mercato-dev/mercato/shared/wait"
)

// StatusEvent is one row of an order's status history as a stream sends it.
type StatusEvent struct {
	ID             int64     `json:"-"` // the history row's id: the stream's event id
	OrderID        string    `json:"order_id"`
	Status         Status    `json:"status"`
	PreviousStatus *Status   `json:"previous_status"`
	Reason         *string   `json:"reason"`
	At             time.Time `json:"at"`
}

// StatusHistory reads the status history rows the streams send.
type StatusHistory interface {
	// OrderByID returns the order (the stream checks its owner).
	OrderByID(ctx context.Context, id string) (Order, error)
	// StatusEvents returns the history rows of order id with an id above
	// after, oldest first; with latest, only the newest row (after ignored).
	StatusEvents(ctx context.Context, id string, after int64, latest bool) ([]StatusEvent, error)
}

// ErrTooManyStreams refuses a stream to a user who has the most open.
var ErrTooManyStreams error = streamLimitError{}

type streamLimitError struct{}

func (streamLimitError) Error() string {
	return "too many open status streams for this user; close one or retry later"
}
func (streamLimitError) RetryAfter() time.Duration { return 10 * time.Second }

// WatchOptions bound the streams. Zero values take the defaults.
type WatchOptions struct {
	MaxPerUser  int           // open streams per user; default 5
	IdleTimeout time.Duration // a stream with nothing to send this long ends; default 10m
}

// Watcher follows orders' status for the streams open on this instance.
type Watcher struct {
	history StatusHistory
	opts    WatchOptions
	open    metrics.Gauge // order_status_streams_open

	mu      sync.Mutex
	closed  bool
	done    chan struct{}
	subs    map[string]map[wait.Signal]struct{} // order id → the wake-ups of its streams
	perUser map[string]int
}

// NewWatcher returns a Watcher reading history, counting its open streams
// in open (nil for none).
func NewWatcher(history StatusHistory, open metrics.Gauge, opts WatchOptions) *Watcher {
	opts.MaxPerUser = defaults.Positive(opts.MaxPerUser, 5)
	opts.IdleTimeout = defaults.Positive(opts.IdleTimeout, 10*time.Minute)
	if open != nil {
		open.Set(0) // exported from the start
	}
	return &Watcher{history: history, opts: opts, open: open, done: make(chan struct{}),
		subs: map[string]map[wait.Signal]struct{}{}, perUser: map[string]int{}}
}

// Notify wakes the streams of order id: it has new history rows.
func (w *Watcher) Notify(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for wake := range w.subs[id] {
		wake.Notify()
	}
}

// NotifyAll wakes every stream (the feed may have lost wake-ups).
func (w *Watcher) NotifyAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, subs := range w.subs {
		for wake := range subs {
			wake.Notify()
		}
	}
}

// Close ends every stream and refuses new ones: the instance is shutting
// down, and the HTTP server's graceful shutdown must not wait for streams.
func (w *Watcher) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		close(w.done)
	}
}

// Watch streams order id's status to caller, who must own it or be an
// admin (else ErrNotFound): with after < 0 the current state first, else
// every history row with an id above after; then each new row as it
// commits. The channel closes when ctx ends, at the idle timeout, at Close,
// or when reading the history fails.
func (w *Watcher) Watch(ctx context.Context, caller Caller, id string, after int64) (<-chan StatusEvent, error) {
	id, ok := validate.ParseUUID(id)
	if !ok {
		return nil, ErrNotFound
	}
	o, err := w.history.OrderByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if !caller.Admin && o.UserID != caller.UserID {
		return nil, ErrNotFound
	}
	wake, err := w.subscribe(caller.UserID, id)
	if err != nil {
		return nil, err
	}
	out := make(chan StatusEvent)
	go func() {
		defer close(out)
		defer w.unsubscribe(caller.UserID, id, wake)
		w.follow(ctx, id, after, wake, out)
	}()
	return out, nil
}

// follow sends the first rows, then the rows each wake-up brings, until the
// stream ends.
func (w *Watcher) follow(ctx context.Context, id string, after int64, wake <-chan struct{}, out chan<- StatusEvent) {
	idle := time.NewTimer(w.opts.IdleTimeout)
	defer idle.Stop()
	latest := after < 0
	for {
		rows, err := w.history.StatusEvents(ctx, id, after, latest)
		if err != nil {
			return // the client reconnects with Last-Event-ID
		}
		latest = false
		for _, e := range rows {
			select {
			case out <- e:
				after = e.ID
			case <-ctx.Done():
				return
			case <-w.done:
				return
			}
		}
		if len(rows) > 0 {
			idle.Reset(w.opts.IdleTimeout)
		}
		select {
		case <-wake:
		case <-idle.C:
			return
		case <-ctx.Done():
			return
		case <-w.done:
			return
		}
	}
}

func (w *Watcher) subscribe(userID, id string) (wait.Signal, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, ErrUpstreamUnavailable // shutting down: the client retries elsewhere
	}
	if w.perUser[userID] >= w.opts.MaxPerUser {
		return nil, ErrTooManyStreams
	}
	w.perUser[userID]++
	wake := wait.NewSignal()
	if w.subs[id] == nil {
		w.subs[id] = map[wait.Signal]struct{}{}
	}
	w.subs[id][wake] = struct{}{}
	if w.open != nil {
		w.open.Add(1)
	}
	return wake, nil
}

func (w *Watcher) unsubscribe(userID, id string, wake wait.Signal) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.perUser[userID]--; w.perUser[userID] <= 0 {
		delete(w.perUser, userID)
	}
	if delete(w.subs[id], wake); len(w.subs[id]) == 0 {
		delete(w.subs, id)
	}
	if w.open != nil {
		w.open.Add(-1)
	}
}
