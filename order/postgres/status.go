package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/lib/pq"

	"github.com/mercato-dev/mercato/order"
)

// Live order status: the history rows the streams send, and the
// notifications that wake them (see order/watch.go for the design).

// NotifyChannel is the channel the history table's trigger notifies with
// the order id of each new row (migration 00003).
const NotifyChannel = "order_status"

type statusEventRow struct {
	ID             int64          `db:"id"`
	OrderID        string         `db:"order_id"`
	Status         string         `db:"status"`
	PreviousStatus sql.NullString `db:"previous_status"`
	Reason         sql.NullString `db:"reason"`
	CreatedAt      time.Time      `db:"created_at"`
}

func (r *Repository) StatusEvents(ctx context.Context, id string, after int64, latest bool) ([]order.StatusEvent, error) {
	const columns = `SELECT id, order_id, status, previous_status, reason, created_at FROM order_status_history `
	var (
		rows []statusEventRow
		err  error
	)
	if latest {
		err = r.db.SelectContext(ctx, &rows, columns+`WHERE order_id = $1 ORDER BY id DESC LIMIT 1`, id)
	} else {
		err = r.db.SelectContext(ctx, &rows, columns+`WHERE order_id = $1 AND id > $2 ORDER BY id`, id, after)
	}
	if err != nil {
		return nil, fmt.Errorf("status history: %w", err)
	}
	out := make([]order.StatusEvent, len(rows))
	for i, row := range rows {
		out[i] = order.StatusEvent{ID: row.ID, OrderID: row.OrderID, Status: order.Status(row.Status), At: row.CreatedAt.UTC()}
		if row.PreviousStatus.Valid {
			s := order.Status(row.PreviousStatus.String)
			out[i].PreviousStatus = &s
		}
		if row.Reason.Valid {
			out[i].Reason = &row.Reason.String
		}
	}
	return out, nil
}

// Listen follows NotifyChannel on the database at dsn until ctx is done,
// waking w's streams of each order it names, and every stream after the
// connection was lost and made again (notifications may have been missed
// meanwhile). It closes w when it returns, ending the streams.
func Listen(ctx context.Context, dsn string, w *order.Watcher, logger log.Logger) error {
	defer w.Close()
	l := pq.NewListener(dsn, time.Second, 30*time.Second, func(ev pq.ListenerEventType, err error) {
		if err != nil {
			level.Warn(logger).Log("msg", "status notification listener", "event", int(ev), "err", err)
		}
	})
	defer l.Close()
	// Listen waits for the first connection, however long the database is
	// down; closing the listener when ctx ends is what stops that wait.
	stop := context.AfterFunc(ctx, func() { l.Close() }) //nolint:errcheck // shutting down
	defer stop()
	if err := l.Listen(NotifyChannel); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("listen %s: %w", NotifyChannel, err)
	}
	// The instance serves streams before this first LISTEN is in place (at
	// start-up, and for the listener's back-off while the database comes
	// back); rows committed meanwhile notified nobody here. pq sends no nil
	// for a first connection as it does for a reconnection, so wake every
	// stream now.
	w.NotifyAll()
	for {
		select {
		case <-ctx.Done():
			return nil
		case n := <-l.Notify:
			if n == nil { // reconnected
				w.NotifyAll()
				continue
			}
			w.Notify(n.Extra)
		case <-time.After(time.Minute):
			go l.Ping() //nolint:errcheck // a dead connection shows up as a reconnect
		}
	}
}
