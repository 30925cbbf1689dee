package postgres_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/mercato-dev/mercato/notification"
	"github.com/mercato-dev/mercato/notification/postgres"
	"github.com/mercato-dev/mercato/shared/money"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
	"github.com/mercato-dev/mercato/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func newStore(t *testing.T) (*postgres.Store, *sqlx.DB) {
	t.Helper()
	db := testkit.Postgres(t)
	ctx := context.Background()
	if err := postgres.Schema.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	// A second run is a no-op: every instance migrates at start.
	if err := postgres.Schema.Migrate(ctx, db); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	return postgres.New(db), db
}

func inTx(t *testing.T, db *sqlx.DB, fn func(tx *sqlx.Tx) error) {
	t.Helper()
	if err := sharedpg.InTx(context.Background(), db, fn); err != nil {
		t.Fatal(err)
	}
}

// allChannels are the channels of an instance with every provider.
var allChannels = []notification.Channel{notification.ChannelEmail, notification.ChannelSMS, notification.ChannelPush}

func pending(userID, key string, ch notification.Channel) notification.Notification {
	amount := money.Amount(1999)
	return notification.Notification{ID: uuid.NewString(), EventID: uuid.NewString(), EventType: "order.created",
		DedupeKey: key, UserID: userID, Channel: ch, Template: notification.TemplateOrderReceived,
		Details: notification.Details{OrderID: uuid.NewString(), Amount: &amount, Currency: "USD"}, Status: notification.StatusPending}
}

func count(t *testing.T, db *sqlx.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Get(&n, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestNotificationLog(t *testing.T) {
	ctx := context.Background()
	store, db := newStore(t)
	ada := uuid.NewString()

	n := pending(ada, "k1", notification.ChannelEmail)
	dupEvent := pending(ada, "k2", notification.ChannelEmail)
	dupEvent.EventID = n.EventID // the same event again, on the same channel
	dupKey := pending(ada, "k1", notification.ChannelEmail)
	otherChannel := pending(ada, "k1", notification.ChannelSMS)
	otherChannel.EventID = n.EventID
	inTx(t, db, func(tx *sqlx.Tx) error {
		return store.CreateNotifications(ctx, tx, []notification.Notification{n, dupEvent, dupKey, otherChannel})
	})
	if c := count(t, db, `SELECT count(*) FROM notifications`); c != 2 {
		t.Fatalf("%d rows, want 2 (one per channel)", c)
	}

	items, total, err := store.ListNotifications(ctx, ada, 0, 10)
	if err != nil || total != 2 || len(items) != 2 {
		t.Fatalf("list = %d of %d, %v", len(items), total, err)
	}
	var got notification.Notification
	for _, it := range items {
		if it.ID == n.ID {
			got = it
		}
	}
	if got.Details.Amount == nil || *got.Details.Amount != 1999 || got.Details.OrderID != n.Details.OrderID ||
		got.Status != notification.StatusPending || got.CreatedAt.Location() != time.UTC || got.SentAt != nil {
		t.Errorf("stored = %+v", got)
	}
	if items, total, _ := store.ListNotifications(ctx, uuid.NewString(), 0, 10); total != 0 || len(items) != 0 || items == nil {
		t.Errorf("another user's list: %v of %d", items, total)
	}

	// An instance with no SMS provider leaves the SMS row to one that has.
	if c, ok, err := store.ClaimDue(ctx, uuid.NewString(), []notification.Channel{notification.ChannelPush}, time.Minute); ok || err != nil {
		t.Fatalf("claim on push alone = %+v, %v, %v; want nothing due", c, ok, err)
	}

	// Claim, then record each outcome.
	claimID := uuid.NewString()
	c, ok, err := store.ClaimDue(ctx, claimID, []notification.Channel{notification.ChannelEmail}, time.Minute)
	if err != nil || !ok || c.ID != n.ID || c.Attempts != 1 || c.ClaimID != claimID || !c.NextAttemptAt.After(time.Now().Add(50*time.Second)) {
		t.Fatalf("claim = %+v, %v, %v", c, ok, err)
	}
	next := time.Now().Add(time.Hour)
	if err := store.RecordAttempt(ctx, notification.AttemptResult{ID: c.ID, ClaimID: claimID, Status: notification.StatusRetrying,
		Recipient: "ada@example.com", Error: "dial: refused", RetryIn: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := store.RecordAttempt(ctx, notification.AttemptResult{ID: c.ID, ClaimID: claimID, Status: notification.StatusSent}); !errors.Is(err, notification.ErrClaimLost) {
		t.Errorf("second record of one claim: %v, want ErrClaimLost", err)
	}
	var row struct {
		Status    string    `db:"status"`
		Recipient string    `db:"recipient"`
		Error     string    `db:"error"`
		Next      time.Time `db:"next_attempt_at"`
		Claimed   bool      `db:"claimed"`
	}
	if err := db.Get(&row, `SELECT status, recipient, error, next_attempt_at, claim_id IS NOT NULL AS claimed FROM notifications WHERE id = $1`, c.ID); err != nil {
		t.Fatal(err)
	}
	if row.Status != "retrying" || row.Recipient != "ada@example.com" || row.Error != "dial: refused" || row.Next.Sub(next).Abs() > 5*time.Second || row.Claimed {
		t.Errorf("after retrying: %+v", row)
	}

	// The other row is still due; this one is not until next.
	c2, ok, err := store.ClaimDue(ctx, uuid.NewString(), allChannels, time.Minute)
	if err != nil || !ok || c2.ID == c.ID {
		t.Fatalf("second claim = %+v, %v, %v", c2, ok, err)
	}
	if err := store.RecordAttempt(ctx, notification.AttemptResult{ID: c2.ID, ClaimID: c2.ClaimID, Status: notification.StatusSent,
		Recipient: "+4477", ProviderID: "SM1"}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := store.ClaimDue(ctx, uuid.NewString(), allChannels, time.Minute); ok {
		t.Error("claimed a row that is not due")
	}
	if n := count(t, db, `SELECT count(*) FROM notifications WHERE id = $1 AND status = 'sent' AND sent_at IS NOT NULL AND provider_id = 'SM1' AND error IS NULL`, c2.ID); n != 1 {
		t.Error("sent row not recorded as such")
	}
}

// TestConcurrentClaims: claimers running at once never get the same row.
func TestConcurrentClaims(t *testing.T) {
	ctx := context.Background()
	store, db := newStore(t)
	const rows = 40
	var ns []notification.Notification
	for i := range rows {
		ns = append(ns, pending(uuid.NewString(), "k"+uuid.NewString()+string(rune('a'+i%26)), notification.ChannelEmail))
	}
	inTx(t, db, func(tx *sqlx.Tx) error { return store.CreateNotifications(ctx, tx, ns) })

	var (
		mu      sync.Mutex
		claimed = map[string]int{}
		wg      sync.WaitGroup
	)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n, ok, err := store.ClaimDue(ctx, uuid.NewString(), allChannels, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if !ok {
					return
				}
				mu.Lock()
				claimed[n.ID]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(claimed) != rows {
		t.Errorf("%d rows claimed, want %d", len(claimed), rows)
	}
	for id, c := range claimed {
		if c != 1 {
			t.Errorf("row %s claimed %d times", id, c)
		}
	}
}

func TestPreferencesTokensAndOrders(t *testing.T) {
	ctx := context.Background()
	store, db := newStore(t)
	ada := uuid.NewString()

	p, err := store.Preferences(ctx, ada)
	if err != nil || p != notification.DefaultPreferences {
		t.Errorf("defaults = %+v, %v", p, err)
	}
	saved, err := store.SavePreferences(ctx, ada, notification.Preferences{Email: false, SMS: true, Push: false})
	if err != nil || saved.Email || !saved.SMS || saved.Push || saved.UpdatedAt == nil {
		t.Fatalf("saved = %+v, %v", saved, err)
	}
	again, err := store.SavePreferences(ctx, ada, notification.Preferences{Email: true, SMS: true, Push: true})
	if err != nil || !again.Email || !again.UpdatedAt.After(*saved.UpdatedAt) {
		t.Errorf("second save = %+v, %v", again, err)
	}

	var hasPush bool
	inTx(t, db, func(tx *sqlx.Tx) error {
		_, hasPush, err = store.RecipientSettings(ctx, tx, ada)
		return err
	})
	if hasPush {
		t.Error("push token reported before one was set")
	}
	if err := store.SetPushToken(ctx, ada, "one"); err != nil {
		t.Fatal(err)
	}
	if err := store.SetPushToken(ctx, ada, "two"); err != nil {
		t.Fatal(err)
	}
	if tok, err := store.PushToken(ctx, ada); err != nil || tok != "two" {
		t.Errorf("token = %q, %v", tok, err)
	}
	inTx(t, db, func(tx *sqlx.Tx) error {
		_, hasPush, err = store.RecipientSettings(ctx, tx, ada)
		return err
	})
	if !hasPush {
		t.Error("push token not reported")
	}
	if err := store.DeletePushToken(ctx, ada); err != nil {
		t.Fatal(err)
	}
	if err := store.DeletePushToken(ctx, ada); !errors.Is(err, notification.ErrNotFound) {
		t.Errorf("delete twice: %v", err)
	}

	o := notification.OrderSummary{OrderID: uuid.NewString(), OrderNumber: "MRC-1", UserID: ada, Total: 6497, Currency: "USD",
		Items: []notification.OrderLine{{ProductID: uuid.NewString(), Name: "Mug", Quantity: 2, UnitPrice: 1250}}}
	inTx(t, db, func(tx *sqlx.Tx) error { return store.SaveOrderSummary(ctx, tx, o) })
	changed := o
	changed.Total = 1
	inTx(t, db, func(tx *sqlx.Tx) error { return store.SaveOrderSummary(ctx, tx, changed) }) // redelivery: kept as first told
	got, err := store.OrderSummary(ctx, o.OrderID)
	if err != nil || got.Total != 6497 || got.OrderNumber != "MRC-1" || len(got.Items) != 1 || got.Items[0].UnitPrice != 1250 || got.Items[0].Total() != 2500 {
		t.Errorf("order = %+v, %v", got, err)
	}
	if _, err := store.OrderSummary(ctx, uuid.NewString()); !errors.Is(err, notification.ErrNotFound) {
		t.Errorf("missing order: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := store.OrderSummary(cancelled, o.OrderID); err == nil || errors.Is(err, notification.ErrNotFound) {
		t.Errorf("cancelled context: %v, want a failure that is not ErrNotFound", err)
	}
}

func TestSchemaConstraints(t *testing.T) {
	_, db := newStore(t)
	insert := `INSERT INTO notifications (id, event_id, event_type, dedupe_key, user_id, channel, template, status, attempts, interrupted_attempts, sent_at)
		VALUES (gen_random_uuid(), gen_random_uuid(), 'x', gen_random_uuid()::text, gen_random_uuid(), $1, 'welcome', $2, $3, $4, $5)`
	tests := []struct {
		name       string
		args       []any
		constraint string
	}{
		{"unknown channel", []any{"fax", "pending", 0, 0, nil}, "notifications_channel_check"},
		{"unknown status", []any{"email", "lost", 0, 0, nil}, "notifications_status_check"},
		{"more interrupted than attempts", []any{"email", "pending", 1, 2, nil}, "notifications_attempts_check"},
		{"sent without a time", []any{"email", "sent", 1, 0, nil}, "notifications_sent_at_check"},
		{"a time without sent", []any{"email", "failed", 1, 0, time.Now()}, "notifications_sent_at_check"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := db.Exec(insert, tc.args...); !sharedpg.IsCheckViolation(err, tc.constraint) {
				t.Errorf("err = %v, want a violation of %s", err, tc.constraint)
			}
		})
	}
}

// TestClaimReadsItsOwnChannelOnly: a channel's claim reads its own due rows,
// not the others' before them. Each channel's workers claim their own
// (notification.Dispatcher); by next_attempt_at alone, an SMS claim read
// every due email first, the whole backlog while an SMTP server hangs.
func TestClaimReadsItsOwnChannelOnly(t *testing.T) {
	ctx := context.Background()
	store, db := newStore(t)
	// 20,000 emails due for a minute, then one text message.
	db.MustExec(`INSERT INTO notifications (id, event_id, event_type, dedupe_key, user_id, channel, template, next_attempt_at)
		SELECT gen_random_uuid(), gen_random_uuid(), 'user.created', 'k' || i, gen_random_uuid(), 'email', 'welcome',
			now() - interval '1 minute'
		FROM generate_series(1, 20000) AS i`)
	sms := pending(uuid.NewString(), "k-sms", notification.ChannelSMS)
	inTx(t, db, func(tx *sqlx.Tx) error { return store.CreateNotifications(ctx, tx, []notification.Notification{sms}) })
	db.MustExec(`ANALYZE notifications`)

	var plan []string
	if err := db.SelectContext(ctx, &plan, `EXPLAIN (ANALYZE, BUFFERS, TIMING OFF)
		SELECT id FROM notifications
		WHERE status IN ('pending', 'retrying') AND next_attempt_at <= now() AND channel = ANY($1)
		ORDER BY next_attempt_at LIMIT 1`, pq.Array([]string{"sms"})); err != nil {
		t.Fatal(err)
	}
	text := strings.Join(plan, "\n")
	if !strings.Contains(text, "notifications_due_by_channel_idx") || strings.Contains(text, "Rows Removed by Filter") {
		t.Errorf("an SMS claim behind 20,000 due emails reads them:\n%s", text)
	}
	c, ok, err := store.ClaimDue(ctx, uuid.NewString(), []notification.Channel{notification.ChannelSMS}, time.Minute)
	if err != nil || !ok || c.ID != sms.ID {
		t.Errorf("SMS claim = %+v, %v, %v; want the text message", c, ok, err)
	}
}
