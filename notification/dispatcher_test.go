package notification_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/notification"
	"github.com/mercato-dev/mercato/notification/postgres"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// TestEmailsOverSMTP sends the welcome, order-received and order
// confirmation emails through the whole pipeline to a real SMTP server, and
// checks what arrives: recipient, sender, subject, both alternatives, the
// order's lines and totals.
func TestEmailsOverSMTP(t *testing.T) {
	p := newPipeline(t, pipelineOptions{})
	ada := p.contacts.add(notification.Contact{Email: "ada@example.com", FirstName: "Ada", LastName: "Lovelace"})

	p.publish(t, event(t, events.UserCreated, map[string]any{"user_id": ada, "email": "stale@example.com", "first_name": "Ada", "last_name": "Lovelace"}))
	welcome := p.smtp.waitMails(t, 1, 10*time.Second)[0]
	// The address comes from the user service, not the event.
	if strings.Join(welcome.To, ",") != "ada@example.com" || welcome.From != "no-reply@mercato.test" {
		t.Errorf("welcome envelope: from %q to %v", welcome.From, welcome.To)
	}
	if welcome.Subject != "Welcome to Mercato, Ada!" {
		t.Errorf("welcome subject = %q", welcome.Subject)
	}
	if got := welcome.Header.Get("To"); got != "<ada@example.com>" {
		t.Errorf("welcome To header = %q", got)
	}
	mustContain(t, "welcome text", welcome.Text, "Hello Ada,", "Your account is ready.")
	mustContain(t, "welcome HTML", welcome.HTML, "<h1", "Welcome to Mercato, Ada!", "Hello Ada,")

	orderID := uuid.NewString()
	p.publish(t, event(t, events.OrderCreated, orderCreated(ada, orderID, "MRC-1001")))
	p.publish(t, event(t, events.OrderUpdated, orderConfirmed(ada, orderID, "MRC-1001")))
	mails := p.smtp.waitMails(t, 3, 10*time.Second)
	bySubject := map[string]receivedMail{}
	for _, m := range mails {
		bySubject[m.Subject] = m
	}
	received, ok1 := bySubject["We received your order MRC-1001"]
	confirmed, ok2 := bySubject["Order MRC-1001 confirmed"]
	if !ok1 || !ok2 {
		t.Fatalf("subjects: %v", subjects(mails))
	}
	for _, m := range []receivedMail{received, confirmed} {
		if strings.Join(m.To, ",") != "ada@example.com" {
			t.Errorf("%q went to %v", m.Subject, m.To)
		}
		mustContain(t, m.Subject+" text", m.Text,
			"2 x Espresso cup <set of 2>  12.50 USD each  25.00 USD",
			"1 x Grinder  39.97 USD each  39.97 USD",
			"Total: 64.97 USD")
		// Product names are escaped in HTML, never markup.
		mustContain(t, m.Subject+" HTML", m.HTML,
			"<td>Espresso cup &lt;set of 2&gt;</td><td align=\"right\">2</td><td align=\"right\">12.50 USD</td><td align=\"right\">25.00 USD</td>",
			"<td>Grinder</td>", "<th align=\"right\">64.97 USD</th>")
	}
	mustContain(t, "confirmation text", confirmed.Text, "Your payment of 64.97 USD went through and order MRC-1001 is confirmed.")

	rows := p.waitRows(t, ada, 5*time.Second, settled(3))
	for _, r := range rows {
		if r.Status != "sent" || r.Attempts != 1 || !r.Sent || r.Recipient != "ada@example.com" || r.Error != "" || r.Channel != "email" {
			t.Errorf("log row %+v", r)
		}
	}
	// The provider id is the Message-ID the email carries.
	var ids []string
	if err := p.db.Select(&ids, `SELECT '<' || provider_id || '>' FROM notifications WHERE template = 'welcome'`); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != welcome.Header.Get("Message-Id") {
		t.Errorf("provider ids %v, Message-Id %q", ids, welcome.Header.Get("Message-Id"))
	}
}

// TestOneEmailPerEventAndMessage delivers one event three times, and two
// different events that mean the same message: one email each.
func TestOneEmailPerEventAndMessage(t *testing.T) {
	p := newPipeline(t, pipelineOptions{})
	ada := p.contacts.add(notification.Contact{Email: "ada@example.com", FirstName: "Ada"})

	created := event(t, events.UserCreated, map[string]any{"user_id": ada})
	for range 3 {
		p.publish(t, created)
	}
	orderID := uuid.NewString()
	p.publish(t, event(t, events.OrderUpdated, map[string]any{"order_id": orderID, "order_number": "MRC-7", "user_id": ada, "status": "cancelled", "previous_status": "pending"}))
	p.publish(t, event(t, events.OrderCancelled, map[string]any{"order_id": orderID, "user_id": ada, "reason": "payment failed"}))
	// A marker after them: once its email is in, the stream before it has
	// been consumed, so any duplicate would have had its chance.
	p.publish(t, event(t, events.OrderUpdated, map[string]any{"order_id": orderID, "order_number": "MRC-7", "user_id": ada, "status": "delivered"}))

	p.waitRows(t, ada, 10*time.Second, settled(3))
	time.Sleep(300 * time.Millisecond) // several dispatcher polls
	mails := p.smtp.all()
	got := map[string]int{}
	for _, m := range mails {
		got[m.Subject]++
	}
	want := map[string]int{"Welcome to Mercato, Ada!": 1, "Order MRC-7 was cancelled": 1, "Order MRC-7 was delivered": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("emails %v, want %v", got, want)
	}
	var inbox int
	if err := p.db.Get(&inbox, `SELECT count(*) FROM inbox WHERE consumer = 'notification'`); err != nil {
		t.Fatal(err)
	}
	if inbox != 4 { // user.created once, order.updated twice, order.cancelled
		t.Errorf("inbox holds %d events, want 4", inbox)
	}
}

// TestSMTPOutageCatchesUp sends while the SMTP server is down: every email
// is retried with backoff and arrives, once, when the server is back.
func TestSMTPOutageCatchesUp(t *testing.T) {
	down := startSMTP(t, "127.0.0.1:0")
	addr := down.addr
	down.stop()

	p := newPipeline(t, pipelineOptions{smtpAddr: addr, maxAttempts: 1000})
	var users []string
	for i := range 5 {
		id := p.contacts.add(notification.Contact{Email: fmt.Sprintf("user%d@example.com", i), FirstName: "U"})
		users = append(users, id)
		p.publish(t, event(t, events.UserCreated, map[string]any{"user_id": id}))
	}
	// Every email fails and is retried, more than once, while the server is down.
	for _, id := range users {
		p.waitRows(t, id, 10*time.Second, func(rows []logRow) bool {
			return len(rows) == 1 && rows[0].Status == "retrying" && rows[0].Attempts >= 2 && strings.Contains(rows[0].Error, "dial")
		})
	}

	back := startSMTP(t, addr)
	mails := back.waitMails(t, 5, 15*time.Second)
	var to []string
	for _, m := range mails {
		to = append(to, m.To...)
	}
	for i := range 5 {
		if want := fmt.Sprintf("user%d@example.com", i); !strings.Contains(strings.Join(to, " "), want) {
			t.Errorf("no email to %s; got %v", want, to)
		}
	}
	for _, id := range users {
		rows := p.waitRows(t, id, 5*time.Second, settled(1))
		if rows[0].Status != "sent" || rows[0].Error != "" {
			t.Errorf("row after the outage: %+v", rows[0])
		}
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(back.all()); n != 5 {
		t.Errorf("%d emails, want 5", n)
	}
}

// TestSMTPRefusals: a permanent refusal fails at once; a temporary one is
// retried until the attempts run out, then fails; an unknown user fails.
func TestSMTPRefusals(t *testing.T) {
	p := newPipeline(t, pipelineOptions{maxAttempts: 3})
	refused := p.contacts.add(notification.Contact{Email: "refused@example.com", FirstName: "R"})
	busy := p.contacts.add(notification.Contact{Email: "busy@example.com", FirstName: "B"})
	p.smtp.setAccept(func() error {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
	})
	p.publish(t, event(t, events.UserCreated, map[string]any{"user_id": busy}))
	rows := p.waitRows(t, busy, 10*time.Second, settled(1))
	if r := rows[0]; r.Status != "failed" || r.Attempts != 3 || r.Sent || !strings.Contains(r.Error, "gave up after 3 attempts") || !strings.Contains(r.Error, "451") {
		t.Errorf("after 451s: %+v", r)
	}

	p.smtp.setAccept(func() error {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"}
	})
	p.publish(t, event(t, events.UserCreated, map[string]any{"user_id": refused}))
	rows = p.waitRows(t, refused, 10*time.Second, settled(1))
	if r := rows[0]; r.Status != "failed" || r.Attempts != 1 || !strings.Contains(r.Error, "550") || r.Recipient != "refused@example.com" {
		t.Errorf("after a 550: %+v", r)
	}

	ghost := uuid.NewString()
	p.publish(t, event(t, events.UserCreated, map[string]any{"user_id": ghost}))
	rows = p.waitRows(t, ghost, 10*time.Second, settled(1))
	if r := rows[0]; r.Status != "failed" || r.Attempts != 1 || !strings.Contains(r.Error, "unknown user") {
		t.Errorf("unknown user: %+v", r)
	}
	if n := len(p.smtp.all()); n != 0 {
		t.Errorf("%d emails accepted", n)
	}
}

// TestUserServiceDown: contact lookups that fail are retried; the email goes
// out once the user service answers again.
func TestUserServiceDown(t *testing.T) {
	p := newPipeline(t, pipelineOptions{maxAttempts: 100})
	ada := p.contacts.add(notification.Contact{Email: "ada@example.com", FirstName: "Ada"})
	p.contacts.setErr(errors.New("user service: no instances"))
	p.publish(t, event(t, events.UserCreated, map[string]any{"user_id": ada}))
	p.waitRows(t, ada, 10*time.Second, func(rows []logRow) bool {
		return len(rows) == 1 && rows[0].Status == "retrying" && rows[0].Attempts >= 2 && strings.Contains(rows[0].Error, "no instances")
	})
	p.contacts.setErr(nil)
	if m := p.smtp.waitMails(t, 1, 10*time.Second); m[0].To[0] != "ada@example.com" {
		t.Errorf("sent to %v", m[0].To)
	}
	rows := p.waitRows(t, ada, 5*time.Second, settled(1))
	if rows[0].Status != "sent" {
		t.Errorf("row: %+v", rows[0])
	}
}

// TestConfirmationBeforeOrder: order.updated may overtake order.created
// (two instances of the consumer). The confirmation waits for the order's
// lines and total; if they never come it goes out without them.
func TestConfirmationBeforeOrder(t *testing.T) {
	p := newPipeline(t, pipelineOptions{maxAttempts: 4})
	ada := p.contacts.add(notification.Contact{Email: "ada@example.com", FirstName: "Ada"})

	late := uuid.NewString()
	p.publish(t, event(t, events.OrderUpdated, orderConfirmed(ada, late, "")))
	p.waitRows(t, ada, 10*time.Second, func(rows []logRow) bool {
		return len(rows) == 1 && rows[0].Status == "retrying" && strings.Contains(rows[0].Error, "waiting for order.created")
	})
	p.publish(t, event(t, events.OrderCreated, orderCreated(ada, late, "MRC-2002")))
	confirmed := waitSubject(t, p.smtp, "Order MRC-2002 confirmed")
	mustContain(t, "late confirmation", confirmed.Text, "Your payment of 64.97 USD went through", "2 x Espresso cup <set of 2>", "Total: 64.97 USD")

	never := uuid.NewString()
	bob := p.contacts.add(notification.Contact{Email: "bob@example.com", FirstName: "Bob"})
	p.publish(t, event(t, events.OrderUpdated, orderConfirmed(bob, never, "")))
	fallback := waitSubject(t, p.smtp, "Order "+strings.ToUpper(never[:8])+" confirmed")
	mustContain(t, "fallback confirmation", fallback.Text, "Your payment went through", "Your order's lines are in your account")
	rows := p.waitRows(t, bob, 5*time.Second, settled(1))
	if rows[0].Status != "sent" || rows[0].Attempts != 4 {
		t.Errorf("fallback row: %+v", rows[0])
	}
}

// TestNoConfirmationForACancelledOrder: a payment captured for an order
// cancelled meanwhile confirms nothing (the saga refunds it): the user is
// told of the cancellation, never that the order is confirmed.
func TestNoConfirmationForACancelledOrder(t *testing.T) {
	p := newPipeline(t, pipelineOptions{})
	ada := p.contacts.add(notification.Contact{Email: "ada@example.com", FirstName: "Ada"})

	orderID := uuid.NewString()
	p.publish(t, event(t, events.OrderCreated, orderCreated(ada, orderID, "MRC-3003")))
	p.publish(t, event(t, events.OrderUpdated, map[string]any{"order_id": orderID, "order_number": "MRC-3003", "user_id": ada,
		"status": "cancelled", "previous_status": "pending"}))
	p.publish(t, event(t, events.PaymentProcessed, map[string]any{
		"payment_id": uuid.NewString(), "order_id": orderID, "user_id": ada, "amount": "64.97", "currency": "USD"}))
	p.publish(t, event(t, events.OrderCancelled, map[string]any{"order_id": orderID, "user_id": ada, "reason": "payment captured after the order was cancelled"}))
	// The events are handled in order: by the cancellation's email,
	// payment.processed was handled too.
	waitSubject(t, p.smtp, "Order MRC-3003 was cancelled")
	time.Sleep(300 * time.Millisecond) // several dispatcher polls
	rows := p.rows(t, ada)
	for _, m := range p.smtp.all() {
		if strings.Contains(m.Subject, "confirmed") {
			t.Errorf("a cancelled order's user got %q", m.Subject)
		}
	}
	for _, r := range rows {
		if r.Template == notification.TemplateOrderConfirmed {
			t.Errorf("a confirmation was logged for a cancelled order: %+v", r)
		}
	}
}

// TestOrderNamedByItsNumber: events that carry no order number
// (order.cancelled, payment.failed, payment.refunded) name the order by the
// number of its summary when order.created left one, as the customer knows
// it, not by the start of its id.
func TestOrderNamedByItsNumber(t *testing.T) {
	p := newPipeline(t, pipelineOptions{})
	ada := p.contacts.add(notification.Contact{Email: "ada@example.com", FirstName: "Ada"})

	orderID := uuid.NewString()
	p.publish(t, event(t, events.OrderCreated, orderCreated(ada, orderID, "MRC-4004")))
	waitSubject(t, p.smtp, "We received your order MRC-4004")
	p.publish(t, event(t, events.PaymentFailed, map[string]any{"payment_id": uuid.NewString(), "order_id": orderID, "user_id": ada,
		"failure_code": "card_declined"}))
	p.publish(t, event(t, events.OrderCancelled, map[string]any{"order_id": orderID, "user_id": ada, "reason": "payment failed"}))
	waitSubject(t, p.smtp, "Payment for order MRC-4004 failed")
	waitSubject(t, p.smtp, "Order MRC-4004 was cancelled")
}

// TestRefundEmailSaysItsCurrency: the refund message reads its currency
// from payment.refunded itself (it does not wait for the order's summary),
// so the event must carry it.
func TestRefundEmailSaysItsCurrency(t *testing.T) {
	p := newPipeline(t, pipelineOptions{})
	ada := p.contacts.add(notification.Contact{Email: "ada@example.com", FirstName: "Ada"})

	orderID := uuid.NewString()
	p.publish(t, event(t, events.PaymentRefunded, events.PaymentRefundedPayload{
		PaymentID: uuid.NewString(), OrderID: orderID, UserID: ada,
		Amount: 500, RefundedAmount: 1250, FullyRefunded: false, Currency: "EUR"}))
	refund := waitSubject(t, p.smtp, "Refund for order "+strings.ToUpper(orderID[:8]))
	mustContain(t, "refund text", refund.Text, "We refunded 5.00 EUR for order "+strings.ToUpper(orderID[:8])+" (12.50 EUR refunded so far).")
}

func waitSubject(t *testing.T, s *smtpServer, subject string) receivedMail {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range s.all() {
			if m.Subject == subject {
				return m
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no email %q; got %v", subject, subjects(s.all()))
	return receivedMail{}
}

// TestInterruptedAttemptIsTakenOver plays a process that claimed a
// notification and died before recording anything: once the claim's lease
// runs out, another dispatcher sends it, and the log says a duplicate is
// possible.
func TestInterruptedAttemptIsTakenOver(t *testing.T) {
	db := testkit.Postgres(t)
	if err := postgres.Schema.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	store := postgres.New(db)
	h := notification.NewEventHandler(store, []notification.Channel{notification.ChannelEmail})
	contacts := newContacts()
	ada := contacts.add(notification.Contact{Email: "ada@example.com", FirstName: "Ada"})
	inTx(t, db, func(tx *sqlx.Tx) error {
		return h.Handle(context.Background(), tx, event(t, events.UserCreated, map[string]any{"user_id": ada}))
	})

	// The crashed process: claimed with a short lease, never recorded.
	n, ok, err := store.ClaimDue(context.Background(), uuid.NewString(), allChannels, 300*time.Millisecond)
	if err != nil || !ok || n.Attempts != 1 || n.InterruptedAttempts != 0 {
		t.Fatalf("claim = %+v, %v, %v", n, ok, err)
	}
	if _, ok, _ := store.ClaimDue(context.Background(), uuid.NewString(), allChannels, time.Second); ok {
		t.Fatal("a claimed notification was claimed again within its lease")
	}

	srv := startSMTP(t, "127.0.0.1:0")
	email, err := notification.NewEmailSender(notification.EmailConfig{Addr: srv.addr, From: "no-reply@mercato.test"})
	if err != nil {
		t.Fatal(err)
	}
	renderer, err := notification.NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	d := &notification.Dispatcher{Store: store, Contacts: contacts, Renderer: renderer,
		Senders:      map[notification.Channel]notification.Sender{notification.ChannelEmail: email},
		PollInterval: 50 * time.Millisecond, AttemptTimeout: 2 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dispatcher: %v", err)
		}
	}()

	mails := srv.waitMails(t, 1, 10*time.Second)
	if mails[0].Header.Get("Message-Id") != "<"+n.ID+"@mercato.test>" {
		t.Errorf("Message-Id %q, want the notification's", mails[0].Header.Get("Message-Id"))
	}
	var row logRow
	deadline := time.Now().Add(20 * time.Second)
	for row.Status != "sent" && time.Now().Before(deadline) {
		if err := db.Get(&row, `SELECT channel, template, status, attempts, interrupted_attempts, COALESCE(error, '') AS error,
			sent_at IS NOT NULL AS sent FROM notifications WHERE id = $1`, n.ID); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if row.Status != "sent" || row.Attempts != 2 || row.InterruptedAttempts != 1 ||
		!strings.Contains(row.Error, "sent on attempt 2 after 1 attempt(s) that ended without an outcome") {
		t.Errorf("row = %+v", row)
	}
	// The late outcome of the dead attempt is refused: another owns the row.
	err = store.RecordAttempt(context.Background(), notification.AttemptResult{ID: n.ID, ClaimID: n.ClaimID, Status: notification.StatusFailed, Error: "late"})
	if !errors.Is(err, notification.ErrClaimLost) {
		t.Errorf("late record: %v, want ErrClaimLost", err)
	}
}

// TestOutcomeRecordedAfterAStoreOutage plays a database that goes away
// between a send and the record of its outcome: the dispatcher tries the
// record again while its claim holds, so the email is sent once, not again
// when the lease runs out.
func TestOutcomeRecordedAfterAStoreOutage(t *testing.T) {
	store := &recordFails{failures: 2}
	p := newPipeline(t, pipelineOptions{wrap: func(s notification.DispatchStore) notification.DispatchStore {
		store.DispatchStore = s
		return store
	}})
	ada := p.contacts.add(notification.Contact{Email: "ada@example.com", FirstName: "Ada"})
	p.publish(t, event(t, events.UserCreated, map[string]any{"user_id": ada}))

	// The lease is 9 s (2 × the 2 s attempt timeout + 5 s): without the
	// retries, the email is sent again at each lease's end, and recorded on
	// the third attempt.
	row := p.waitRows(t, ada, 30*time.Second, settled(1))[0]
	if row.Status != "sent" || row.Attempts != 1 || row.InterruptedAttempts != 0 {
		t.Errorf("row = %+v, want sent on its first attempt", row)
	}
	if mails := p.smtp.all(); len(mails) != 1 {
		t.Errorf("%d emails sent, want 1", len(mails))
	}
	if n := store.calls.Load(); n != 3 {
		t.Errorf("%d calls of RecordAttempt, want 2 failed and 1 stored", n)
	}
}

// recordFails is a store whose first failures records of an outcome fail,
// as they do while the database restarts.
type recordFails struct {
	notification.DispatchStore
	failures int64
	calls    atomic.Int64
}

func (s *recordFails) RecordAttempt(ctx context.Context, r notification.AttemptResult) error {
	if s.calls.Add(1) <= s.failures {
		return errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
	}
	return s.DispatchStore.RecordAttempt(ctx, r)
}

func inTx(t *testing.T, db *sqlx.DB, fn func(tx *sqlx.Tx) error) {
	t.Helper()
	tx, err := db.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback() // the test fails on err either way
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestAttemptsWithoutAnOutcomeEnd plays a notification whose every attempt
// stops mid-send (a process that crashes on it, a store that cannot record
// the outcome): once it has had MaxAttempts it is failed, not sent once more
// every lease for ever.
func TestAttemptsWithoutAnOutcomeEnd(t *testing.T) {
	p := newPipeline(t, pipelineOptions{maxAttempts: 3})
	p.stop()
	ada := p.contacts.add(notification.Contact{Email: "ada@example.com", FirstName: "Ada"})
	h := notification.NewEventHandler(p.store, []notification.Channel{notification.ChannelEmail})
	inTx(t, p.db, func(tx *sqlx.Tx) error {
		return h.Handle(context.Background(), tx, event(t, events.UserCreated, map[string]any{"user_id": ada}))
	})
	const lease = 50 * time.Millisecond
	for range 3 {
		if _, ok, err := p.store.ClaimDue(context.Background(), uuid.NewString(), allChannels, lease); err != nil || !ok {
			t.Fatalf("claim: %v, %v", ok, err)
		}
		time.Sleep(2 * lease)
	}

	p.start(t, 3)
	row := p.waitRows(t, ada, 10*time.Second, settled(1))[0]
	if row.Status != "failed" || row.Sent || row.Attempts != 4 || row.InterruptedAttempts != 3 {
		t.Errorf("row = %+v, want failed after 3 attempts that ended without an outcome", row)
	}
	mustContain(t, "error", row.Error, "gave up after 3 attempts", "ended without an outcome")
	if mails := p.smtp.all(); len(mails) != 0 {
		t.Errorf("sent %d emails after MaxAttempts", len(mails))
	}
}

// TestRetryWaitsByTheDatabasesClock plays an instance whose clock runs a
// minute behind the database's: a failed attempt's retry still waits its
// backoff, since next_attempt_at is compared with the database's clock
// (ClaimDue's now()). Before, the instance wrote its own clock's time plus
// the backoff, already past by the database's, so every retry of an outage
// came at once and the notification spent its attempts within a second.
func TestRetryWaitsByTheDatabasesClock(t *testing.T) {
	store := &clockBehind{by: time.Minute}
	p := newPipeline(t, pipelineOptions{maxAttempts: 100, wrap: func(s notification.DispatchStore) notification.DispatchStore {
		store.DispatchStore = s
		return store
	}})
	store.mu.Lock()
	store.db = p.db // read under mu
	store.mu.Unlock()
	ada := p.contacts.add(notification.Contact{Email: "ada@example.com", FirstName: "Ada"})
	p.contacts.setErr(errors.New("user service: no instances"))
	p.publish(t, event(t, events.UserCreated, map[string]any{"user_id": ada}))
	p.waitRows(t, ada, 10*time.Second, func(rows []logRow) bool { return len(rows) == 1 && rows[0].Status == "retrying" })
	p.stop()
	// The pipeline's backoff is 100 ms less up to a quarter of jitter.
	if left := store.firstWait(); left < 50*time.Millisecond || left > 200*time.Millisecond {
		t.Errorf("the first retry was due %v after its failure was recorded, by the database's clock; want its backoff, about 100ms", left)
	}
}

// clockBehind stands for the store of an instance whose clock runs by
// behind the database's: the times it computes itself are that much early.
// It notes, by the database's clock, how long after the first retrying
// outcome was recorded its retry is due.
type clockBehind struct {
	notification.DispatchStore
	by   time.Duration
	db   *sqlx.DB
	mu   sync.Mutex
	wait *time.Duration
}

func (s *clockBehind) RecordAttempt(ctx context.Context, r notification.AttemptResult) error {
	if !r.NextAttemptAt.IsZero() {
		r.NextAttemptAt = r.NextAttemptAt.Add(-s.by)
	}
	if err := s.DispatchStore.RecordAttempt(ctx, r); err != nil || r.Status != notification.StatusRetrying {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wait == nil {
		var secs float64
		if err := s.db.GetContext(ctx, &secs, `SELECT EXTRACT(EPOCH FROM next_attempt_at - now())::float8 FROM notifications WHERE id = $1`, r.ID); err != nil {
			return err
		}
		w := time.Duration(secs * float64(time.Second))
		s.wait = &w
	}
	return nil
}

func (s *clockBehind) firstWait() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wait == nil {
		return 0
	}
	return *s.wait
}
