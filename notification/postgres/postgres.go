// Package postgres is the PostgreSQL store of the notification service: the
// notification log, preferences, push tokens and order summaries, with the
// schema migrations it owns embedded.
package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/mercato-dev/mercato/notification"
	"github.com/mercato-dev/mercato/shared/events"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
)

// Store implements notification.Repository, EventStore and DispatchStore on
// PostgreSQL.
type Store struct {
	db *sqlx.DB
}

var (
	_ notification.Repository    = (*Store)(nil)
	_ notification.EventStore    = (*Store)(nil)
	_ notification.DispatchStore = (*Store)(nil)
)

// New returns a store on db, whose schema Schema.Migrate has brought up
// to date.
func New(db *sqlx.DB) *Store { return &Store{db: db} }

type notificationRow struct {
	ID                  string         `db:"id"`
	EventID             string         `db:"event_id"`
	EventType           string         `db:"event_type"`
	DedupeKey           string         `db:"dedupe_key"`
	UserID              string         `db:"user_id"`
	Channel             string         `db:"channel"`
	Template            string         `db:"template"`
	Details             []byte         `db:"details"`
	Status              string         `db:"status"`
	Attempts            int            `db:"attempts"`
	InterruptedAttempts int            `db:"interrupted_attempts"`
	NextAttemptAt       time.Time      `db:"next_attempt_at"`
	ClaimID             sql.NullString `db:"claim_id"`
	Recipient           sql.NullString `db:"recipient"`
	ProviderID          sql.NullString `db:"provider_id"`
	Error               sql.NullString `db:"error"`
	CreatedAt           time.Time      `db:"created_at"`
	UpdatedAt           time.Time      `db:"updated_at"`
	SentAt              sql.NullTime   `db:"sent_at"`
}

// notificationColumns reads a notification row of "notifications n".
const notificationColumns = `n.id, n.event_id, n.event_type, n.dedupe_key, n.user_id, n.channel, n.template,
	n.details::text AS details, n.status, n.attempts, n.interrupted_attempts, n.next_attempt_at, n.claim_id,
	n.recipient, n.provider_id, n.error, n.created_at, n.updated_at, n.sent_at`

func (r notificationRow) notification() (notification.Notification, error) {
	n := notification.Notification{
		ID: r.ID, EventID: r.EventID, EventType: r.EventType, DedupeKey: r.DedupeKey, UserID: r.UserID,
		Channel: notification.Channel(r.Channel), Template: r.Template, Status: notification.Status(r.Status),
		Attempts: r.Attempts, InterruptedAttempts: r.InterruptedAttempts, NextAttemptAt: r.NextAttemptAt.UTC(),
		ClaimID: r.ClaimID.String, Recipient: r.Recipient.String, ProviderID: r.ProviderID.String,
		Error: r.Error.String, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
	n.SentAt = sharedpg.TimePtr(r.SentAt)
	if err := json.Unmarshal(r.Details, &n.Details); err != nil {
		return notification.Notification{}, fmt.Errorf("notification %s: details: %w", r.ID, err)
	}
	return n, nil
}

// The HTTP API's side.

func (s *Store) ListNotifications(ctx context.Context, userID string, offset, limit int) ([]notification.Notification, int, error) {
	rows, total, err := sharedpg.Page[notificationRow](ctx, s.db, notificationColumns, `notifications n WHERE n.user_id = $1`,
		`n.created_at DESC, n.id DESC`, offset, limit, userID)
	if err != nil {
		return nil, 0, fmt.Errorf("list notifications: %w", err)
	}
	out, err := sharedpg.TryConvert(rows, notificationRow.notification)
	if err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

type preferencesRow struct {
	Email     bool      `db:"email"`
	SMS       bool      `db:"sms"`
	Push      bool      `db:"push"`
	UpdatedAt time.Time `db:"updated_at"`
}

func (r preferencesRow) preferences() notification.Preferences {
	at := r.UpdatedAt.UTC()
	return notification.Preferences{Email: r.Email, SMS: r.SMS, Push: r.Push, UpdatedAt: &at}
}

func preferences(ctx context.Context, q sqlx.QueryerContext, userID string) (notification.Preferences, error) {
	var row preferencesRow
	err := sqlx.GetContext(ctx, q, &row, `SELECT email, sms, push, updated_at FROM preferences WHERE user_id = $1`, userID)
	if errors.Is(err, sql.ErrNoRows) {
		return notification.DefaultPreferences, nil
	}
	if err != nil {
		return notification.Preferences{}, fmt.Errorf("preferences: %w", err)
	}
	return row.preferences(), nil
}

func (s *Store) Preferences(ctx context.Context, userID string) (notification.Preferences, error) {
	return preferences(ctx, s.db, userID)
}

func (s *Store) SavePreferences(ctx context.Context, userID string, p notification.Preferences) (notification.Preferences, error) {
	var row preferencesRow
	err := s.db.GetContext(ctx, &row, `
		INSERT INTO preferences (user_id, email, sms, push) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_id) DO UPDATE SET email = $2, sms = $3, push = $4, updated_at = now()
		RETURNING email, sms, push, updated_at`, userID, p.Email, p.SMS, p.Push)
	if err != nil {
		return notification.Preferences{}, fmt.Errorf("save preferences: %w", err)
	}
	return row.preferences(), nil
}

func (s *Store) SetPushToken(ctx context.Context, userID, token string) error {
	_, err := s.db.ExecContext(ctx, `
		INSERT INTO push_tokens (user_id, token) VALUES ($1, $2)
		ON CONFLICT (user_id) DO UPDATE SET token = $2, updated_at = now()`, userID, token)
	if err != nil {
		return fmt.Errorf("set push token: %w", err)
	}
	return nil
}

func (s *Store) DeletePushToken(ctx context.Context, userID string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM push_tokens WHERE user_id = $1`, userID)
	if err != nil {
		return fmt.Errorf("delete push token: %w", err)
	}
	return sharedpg.Affected(res, notification.ErrNotFound)
}

// The event consumer's side: everything in the consumer's transaction.

func (s *Store) SaveOrderSummary(ctx context.Context, tx events.Tx, o notification.OrderSummary) error {
	items, err := json.Marshal(o.Items)
	if err != nil {
		return err
	}
	// A summary never changes: a redelivered order.created finds it there.
	_, err = tx.ExecContext(ctx, `
		INSERT INTO order_summaries (order_id, order_number, user_id, total_amount, currency, items)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (order_id) DO NOTHING`,
		o.OrderID, o.OrderNumber, o.UserID, o.Total, o.Currency, string(items))
	if err != nil {
		return fmt.Errorf("save order summary: %w", err)
	}
	return nil
}

func (s *Store) RecipientSettings(ctx context.Context, tx events.Tx, userID string) (notification.Preferences, bool, error) {
	p, err := preferences(ctx, tx, userID)
	if err != nil {
		return notification.Preferences{}, false, err
	}
	var hasPush bool
	if err := sqlx.GetContext(ctx, tx, &hasPush, `SELECT EXISTS (SELECT 1 FROM push_tokens WHERE user_id = $1)`, userID); err != nil {
		return notification.Preferences{}, false, fmt.Errorf("push token: %w", err)
	}
	return p, hasPush, nil
}

func (s *Store) CreateNotifications(ctx context.Context, tx events.Tx, ns []notification.Notification) error {
	for _, n := range ns {
		details, err := json.Marshal(n.Details)
		if err != nil {
			return err
		}
		// DO NOTHING without a target covers both unique keys: this event
		// was already recorded on this channel, or another event asked for
		// the same message.
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO notifications (id, event_id, event_type, dedupe_key, user_id, channel, template, details, status, error)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT DO NOTHING`,
			n.ID, n.EventID, n.EventType, n.DedupeKey, n.UserID, string(n.Channel), n.Template,
			string(details), string(n.Status), sharedpg.NullString(n.Error)); err != nil {
			return fmt.Errorf("insert notification: %w", err)
		}
	}
	return nil
}

// The dispatcher's side.

func (s *Store) ClaimDue(ctx context.Context, claimID string, channels []notification.Channel, lease time.Duration) (notification.Notification, bool, error) {
	names := make([]string, len(channels))
	for i, ch := range channels {
		names[i] = string(ch)
	}
	var row notificationRow
	// A row still carrying a claim was left by an attempt that never
	// recorded its outcome: it counts as interrupted.
	err := s.db.GetContext(ctx, &row, `
		WITH due AS (
			SELECT id, claim_id IS NOT NULL AS interrupted FROM notifications
			WHERE status IN ('pending', 'retrying') AND next_attempt_at <= now() AND channel = ANY($3)
			ORDER BY next_attempt_at
			LIMIT 1
			FOR UPDATE SKIP LOCKED)
		UPDATE notifications n SET
			attempts = n.attempts + 1,
			interrupted_attempts = n.interrupted_attempts + CASE WHEN due.interrupted THEN 1 ELSE 0 END,
			claim_id = $1,
			next_attempt_at = now() + make_interval(secs => $2),
			updated_at = now()
		FROM due WHERE n.id = due.id
		RETURNING `+notificationColumns, claimID, lease.Seconds(), pq.Array(names))
	if errors.Is(err, sql.ErrNoRows) {
		return notification.Notification{}, false, nil
	}
	if err != nil {
		return notification.Notification{}, false, fmt.Errorf("claim due notification: %w", err)
	}
	n, err := row.notification()
	if err != nil {
		return notification.Notification{}, false, err
	}
	return n, true, nil
}

func (s *Store) RecordAttempt(ctx context.Context, r notification.AttemptResult) error {
	// The next attempt's time by the database's clock, which ClaimDue
	// compares with: an instance's own clock may be seconds off.
	var next sql.NullFloat64
	if r.Status == notification.StatusRetrying {
		next = sql.NullFloat64{Float64: r.RetryIn.Seconds(), Valid: true}
	}
	res, err := s.db.ExecContext(ctx, `
		UPDATE notifications SET
			status = $3,
			recipient = COALESCE($4, recipient),
			provider_id = $5,
			error = $6,
			next_attempt_at = COALESCE(now() + make_interval(secs => $7), next_attempt_at),
			sent_at = CASE WHEN $8 THEN now() END,
			claim_id = NULL,
			updated_at = now()
		WHERE id = $1 AND claim_id = $2`,
		r.ID, r.ClaimID, string(r.Status), sharedpg.NullString(r.Recipient), sharedpg.NullString(r.ProviderID), sharedpg.NullString(r.Error), next,
		r.Status == notification.StatusSent)
	if err != nil {
		return fmt.Errorf("record attempt: %w", err)
	}
	return sharedpg.Affected(res, notification.ErrClaimLost)
}

func (s *Store) OrderSummary(ctx context.Context, orderID string) (notification.OrderSummary, error) {
	var (
		o     notification.OrderSummary
		items []byte
	)
	err := s.db.QueryRowxContext(ctx, `
		SELECT order_id, order_number, user_id, total_amount, currency, items::text
		FROM order_summaries WHERE order_id = $1`, orderID).
		Scan(&o.OrderID, &o.OrderNumber, &o.UserID, &o.Total, &o.Currency, &items)
	if err != nil {
		return notification.OrderSummary{}, sharedpg.NotFound(err, notification.ErrNotFound)
	}
	if err := json.Unmarshal(items, &o.Items); err != nil {
		return notification.OrderSummary{}, fmt.Errorf("order %s: items: %w", orderID, err)
	}
	return o, nil
}

func (s *Store) PushToken(ctx context.Context, userID string) (string, error) {
	var token string
	err := s.db.GetContext(ctx, &token, `SELECT token FROM push_tokens WHERE user_id = $1`, userID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("push token: %w", err)
	}
	return token, nil
}
