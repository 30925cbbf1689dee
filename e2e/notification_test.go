package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/localinfra"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// sink is the SMTP server of the notification platform: it keeps what it
// accepts, and its hold switch makes it take a message in and then hang
// before answering, like a slow server at the worst moment.
type sink struct {
	ln  net.Listener
	srv *smtp.Server

	mu      sync.Mutex
	mails   []sunkMail
	hold    bool
	holding chan struct{} // a message is being held
	release chan error    // what the held message is answered
}

type sunkMail struct {
	to      string
	subject string
	body    string
	at      time.Time // when it was accepted
}

func startSink(t *testing.T) *sink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{holding: make(chan struct{}, 1), release: make(chan error, 1)}
	s.serve(ln)
	t.Cleanup(func() { s.stop() })
	return s
}

func (s *sink) serve(ln net.Listener) {
	s.ln = ln
	s.srv = smtp.NewServer(s)
	s.srv.Domain = "localhost"
	s.srv.ReadTimeout, s.srv.WriteTimeout = 30*time.Second, 30*time.Second
	go s.srv.Serve(ln) //nolint:errcheck // ends with Close
}

// stop takes the sink down: connections refused until start (the chaos
// suite's SMTP outage). Sessions in flight end first: cutting one between
// taking a message in and its 250 reply makes a duplicate that no client
// can avoid (RFC 1047), and the outage is there to test the platform's
// retries, not that.
func (s *sink) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx) // closes the listener; a session still held past 10 s is the test's to end
}

// start brings a stopped sink back on its address, with what it held.
func (s *sink) start() error {
	ln, err := net.Listen("tcp", s.ln.Addr().String())
	if err != nil {
		return err
	}
	s.serve(ln)
	return nil
}

func (s *sink) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: s}, nil }

func (s *sink) find(subject string) []sunkMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []sunkMail
	for _, m := range s.mails {
		if m.subject == subject {
			out = append(out, m)
		}
	}
	return out
}

func (s *sink) setHold(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hold = on
}

type sinkSession struct {
	s  *sink
	to string
}

func (x *sinkSession) Reset()                               { x.to = "" }
func (x *sinkSession) Logout() error                        { return nil }
func (x *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (x *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.to = to
	return nil
}

func (x *sinkSession) Data(r io.Reader) error {
	m, err := mail.ReadMessage(r)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(m.Body)
	subject, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	x.s.mu.Lock()
	hold := x.s.hold
	x.s.hold = false
	x.s.mu.Unlock()
	if hold {
		x.s.holding <- struct{}{}
		if err := <-x.s.release; err != nil {
			return err
		}
	}
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	x.s.mails = append(x.s.mails, sunkMail{to: x.to, subject: subject, body: string(body), at: time.Now()})
	return nil
}

func (s *sink) waitMail(t *testing.T, subject string) sunkMail {
	t.Helper()
	var got []sunkMail
	waitFor(t, 30*time.Second, "email "+subject, func() error {
		if got = s.find(subject); len(got) == 0 {
			return errors.New("not received")
		}
		return nil
	})
	return got[0]
}

type notificationPlatform struct {
	*userPlatform
	notificationDB  *sqlx.DB
	notificationURL string
	notification    *proc
	sink            *sink
}

func startNotificationPlatform(t *testing.T) *notificationPlatform {
	p := &notificationPlatform{userPlatform: startUserPlatform(t), sink: startSink(t)}
	p.notificationURL = testkit.PostgresURL(t)
	db, err := sqlx.Open("postgres", p.notificationURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	p.notificationDB = db
	p.notification = p.startNotification(t)
	waitPassing(t, p.consul, "notification", 1)
	return p
}

func (p *notificationPlatform) startNotification(t *testing.T) *proc {
	return start(t, "notification", "-consul-addr", p.consul, "-database-url", p.notificationURL,
		"-redis-addr", p.eventsRedis.Addr(), "-jwt-secret", jwtSecret, "-smtp-addr", p.sink.ln.Addr().String(),
		"-send-poll-interval", "100ms", "-send-timeout", "2s", "-send-backoff", "200ms", "-send-max-backoff", "1s")
}

// publish puts an event on the stream as another service's outbox relay
// would (the order and payment services, which this test does not run).
func (p *notificationPlatform) publish(t *testing.T, typ string, data any) {
	t.Helper()
	rdb := redis.NewClient(p.eventsRedis.Options(localinfra.RedisAdmin))
	defer rdb.Close()
	testkit.Publish(t, rdb, "e2e", typ, data)
}

func (p *notificationPlatform) register(t *testing.T, email, first string) (string, string) {
	t.Helper()
	var reg struct {
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	p.api.do("POST", "/api/v1/auth/register", "", map[string]any{"email": email, "password": "password123",
		"first_name": first, "last_name": "Test"}).must(t, 201).decode(t, &reg)
	var pair tokenPair
	p.api.do("POST", "/api/v1/auth/login", "", map[string]any{"email": email, "password": "password123"}).must(t, 200).decode(t, &pair)
	return reg.User.ID, pair.AccessToken
}

// TestNotificationsEndToEnd: a registration through the gateway brings the
// welcome email; an order and its confirmation bring the order emails with the
// lines; the user reads the log and sets preferences through the gateway,
// and bad input is answered with JSON errors.
func TestNotificationsEndToEnd(t *testing.T) {
	p := startNotificationPlatform(t)
	adaID, ada := p.register(t, "ada@example.com", "Ada")

	welcome := p.sink.waitMail(t, "Welcome to Mercato, Ada!")
	if welcome.to != "ada@example.com" {
		t.Errorf("welcome went to %q", welcome.to)
	}

	orderID := uuid.NewString()
	p.publish(t, events.OrderCreated, map[string]any{"order_id": orderID, "order_number": "MRC-E2E1", "user_id": adaID,
		"total_amount": "49.98", "currency": "USD", "items": []map[string]any{
			{"product_id": uuid.NewString(), "name": "Teapot", "quantity": 2, "unit_price": "24.99"}}})
	p.publish(t, events.OrderUpdated, map[string]any{"order_id": orderID, "order_number": "MRC-E2E1", "user_id": adaID,
		"status": "confirmed", "previous_status": "pending"})
	confirmed := p.sink.waitMail(t, "Order MRC-E2E1 confirmed")
	if confirmed.to != "ada@example.com" || !strings.Contains(confirmed.body, "2 x Teapot") || !strings.Contains(confirmed.body, "Total: 49.98 USD") {
		t.Errorf("confirmation to %q:\n%s", confirmed.to, confirmed.body)
	}

	var list struct {
		Items []struct {
			Template string `json:"template"`
			Channel  string `json:"channel"`
			Status   string `json:"status"`
		} `json:"items"`
		Total int `json:"total"`
	}
	waitFor(t, 10*time.Second, "three sent notifications in the list", func() error {
		p.api.do("GET", "/api/v1/notifications", ada, nil).must(t, 200).decode(t, &list)
		sent := 0
		for _, it := range list.Items {
			if it.Status == "sent" && it.Channel == "email" {
				sent++
			}
		}
		if list.Total != 3 || sent != 3 {
			return fmt.Errorf("%d listed, %d sent", list.Total, sent)
		}
		return nil
	})

	r := p.api.do("PUT", "/api/v1/notifications/preferences", ada, map[string]any{"email": false, "sms": false, "push": true}).must(t, 200)
	if !strings.Contains(string(r.Body), `"email":false`) {
		t.Errorf("preferences: %s", r.Body)
	}
	for _, bad := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"PUT", "/api/v1/notifications/preferences", `{"email":1}`, 400, "invalid_type"},
		{"PUT", "/api/v1/notifications/preferences", `{"email":true}`, 422, "validation_failed"},
		{"PUT", "/api/v1/notifications/push-token", `{"token":""}`, 422, "validation_failed"},
		{"GET", "/api/v1/notifications?page=0", ``, 422, "validation_failed"},
	} {
		r := p.api.raw(bad.method, bad.path, ada, []byte(bad.body)).must(t, bad.status)
		if code := r.errorCode(t); code != bad.code {
			t.Errorf("%s %s %s: code %q, want %q", bad.method, bad.path, bad.body, code, bad.code)
		}
	}
	if r := p.api.do("GET", "/api/v1/notifications", "", nil).must(t, 401); r.errorCode(t) != "unauthenticated" {
		t.Errorf("no token: %s", r.Body)
	}
}

// TestNotificationSurvivesACrashMidSend kills the service while the SMTP
// server holds a message it has read but not yet accepted: after a restart
// the email is still sent, once, and the log shows the interrupted attempt.
func TestNotificationSurvivesACrashMidSend(t *testing.T) {
	p := startNotificationPlatform(t)
	adaID, _ := p.register(t, "ada@example.com", "Ada")
	p.sink.waitMail(t, "Welcome to Mercato, Ada!")

	p.sink.setHold(true)
	p.publish(t, events.OrderUpdated, map[string]any{"order_id": uuid.NewString(), "order_number": "MRC-CRASH",
		"user_id": adaID, "status": "shipped", "previous_status": "confirmed"})
	select {
	case <-p.sink.holding:
	case <-time.After(30 * time.Second):
		t.Fatal("the shipping email never reached the SMTP server")
	}
	p.notification.kill()                           // mid-send: the server has the message, the log has no outcome
	p.sink.release <- errors.New("connection lost") // the dead client never hears back; nothing accepted
	if got := p.sink.find("Order MRC-CRASH has shipped"); len(got) != 0 {
		t.Fatalf("accepted before the restart: %v", got)
	}

	p.notification = p.startNotification(t)
	mail := p.sink.waitMail(t, "Order MRC-CRASH has shipped")
	if mail.to != "ada@example.com" {
		t.Errorf("sent to %q", mail.to)
	}
	var row struct {
		Status      string `db:"status"`
		Attempts    int    `db:"attempts"`
		Interrupted int    `db:"interrupted_attempts"`
		Error       string `db:"error"`
	}
	waitFor(t, 10*time.Second, "the log row to say sent", func() error {
		err := p.notificationDB.Get(&row, `SELECT status, attempts, interrupted_attempts, COALESCE(error, '') AS error
			FROM notifications WHERE template = 'order_shipped' AND channel = 'email'`)
		if err == nil && row.Status != "sent" {
			err = fmt.Errorf("status %s", row.Status)
		}
		return err
	})
	if row.Attempts != 2 || row.Interrupted != 1 || !strings.Contains(row.Error, "duplicate") {
		t.Errorf("log row %+v", row)
	}
	time.Sleep(time.Second)
	if got := p.sink.find("Order MRC-CRASH has shipped"); len(got) != 1 {
		t.Errorf("%d shipping emails, want 1", len(got))
	}
}
