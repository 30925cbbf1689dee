package notification_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/go-kit/log"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/notification"
	"github.com/mercato-dev/mercato/notification/postgres"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// --- A real SMTP server on loopback -------------------------------------

// smtpServer is an SMTP server (go-smtp) that keeps what it accepts. Its
// accept hook may delay or refuse messages, to play a slow or failing
// server.
type smtpServer struct {
	addr   string
	ln     net.Listener
	server *smtp.Server

	mu       sync.Mutex
	mails    []receivedMail
	accept   func() error // called in DATA before accepting; nil accepts
	received chan struct{}
}

// receivedMail is one accepted message, parsed.
type receivedMail struct {
	From    string
	To      []string
	Header  mail.Header
	Subject string
	Text    string // the text/plain alternative, decoded
	HTML    string // the text/html alternative, decoded
}

// startSMTP serves on addr ("127.0.0.1:0" for a free port; an earlier
// server's address to play it coming back) until the test ends or stop.
func startSMTP(t *testing.T, addr string) *smtpServer {
	t.Helper()
	s := &smtpServer{received: make(chan struct{}, 1000)}
	var ln net.Listener
	var err error
	// A port just closed may take a moment to be free again.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if ln, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("smtp listen on %s: %v", addr, err)
	}
	s.addr, s.ln = ln.Addr().String(), ln
	s.server = smtp.NewServer(smtpBackend{s})
	s.server.Domain = "localhost"
	s.server.ReadTimeout = 10 * time.Second
	s.server.WriteTimeout = 10 * time.Second
	s.server.MaxMessageBytes = 1 << 20
	go s.server.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(s.stop)
	return s
}

// stop closes the listener itself too: Close alone misses one that Serve
// has not started on yet.
func (s *smtpServer) stop() {
	_ = s.ln.Close()
	_ = s.server.Close()
}

func (s *smtpServer) setAccept(f func() error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accept = f
}

func (s *smtpServer) all() []receivedMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]receivedMail(nil), s.mails...)
}

// waitMails waits until at least n messages arrived and returns them all.
func (s *smtpServer) waitMails(t *testing.T, n int, timeout time.Duration) []receivedMail {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if got := s.all(); len(got) >= n {
			return got
		}
		select {
		case <-s.received:
		case <-deadline:
			t.Fatalf("%d emails after %s, want %d: %+v", len(s.all()), timeout, n, subjects(s.all()))
		}
	}
}

func subjects(ms []receivedMail) []string {
	var out []string
	for _, m := range ms {
		out = append(out, strings.Join(m.To, ",")+": "+m.Subject)
	}
	return out
}

type smtpBackend struct{ s *smtpServer }

func (b smtpBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &smtpSession{s: b.s}, nil }

type smtpSession struct {
	s    *smtpServer
	from string
	to   []string
}

func (x *smtpSession) Reset()        { x.from, x.to = "", nil }
func (x *smtpSession) Logout() error { return nil }
func (x *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	x.from = from
	return nil
}
func (x *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.to = append(x.to, to)
	return nil
}

func (x *smtpSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	x.s.mu.Lock()
	accept := x.s.accept
	x.s.mu.Unlock()
	if accept != nil {
		if err := accept(); err != nil {
			return err
		}
	}
	m, err := parseMail(raw)
	if err != nil {
		return &smtp.SMTPError{Code: 554, Message: "unparsable message: " + err.Error()}
	}
	m.From, m.To = x.from, x.to
	x.s.mu.Lock()
	x.s.mails = append(x.s.mails, m)
	x.s.mu.Unlock()
	x.s.received <- struct{}{}
	return nil
}

// parseMail reads a multipart/alternative message into its decoded parts.
func parseMail(raw []byte) (receivedMail, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return receivedMail{}, err
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		return receivedMail{}, err
	}
	m := receivedMail{Header: msg.Header, Subject: subject}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return receivedMail{}, err
	}
	if !strings.HasPrefix(mt, "multipart/") {
		body, err := decodePart(msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
		m.Text = body
		return m, err
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return m, nil
		}
		if err != nil {
			return receivedMail{}, err
		}
		body, err := decodePart(p.Header.Get("Content-Transfer-Encoding"), p)
		if err != nil {
			return receivedMail{}, err
		}
		switch ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct {
		case "text/plain":
			m.Text = body
		case "text/html":
			m.HTML = body
		}
	}
}

func decodePart(encoding string, r io.Reader) (string, error) {
	if strings.EqualFold(encoding, "quoted-printable") {
		r = quotedprintable.NewReader(r)
	}
	b, err := io.ReadAll(r)
	return string(b), err
}

// --- Contacts -------------------------------------------------------------

// fakeContacts plays the user service.
type fakeContacts struct {
	mu       sync.Mutex
	contacts map[string]notification.Contact
	err      error // when set, every lookup fails with it
	lookups  int
}

func newContacts() *fakeContacts {
	return &fakeContacts{contacts: map[string]notification.Contact{}}
}

func (f *fakeContacts) add(c notification.Contact) string {
	id := uuid.NewString()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.contacts[id] = c
	return id
}

func (f *fakeContacts) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeContacts) Contact(_ context.Context, userID string) (notification.Contact, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	if f.err != nil {
		return notification.Contact{}, f.err
	}
	c, ok := f.contacts[userID]
	if !ok {
		return notification.Contact{}, notification.ErrUnknownUser
	}
	return c, nil
}

// --- The pipeline: stream → consumer → log → dispatcher → providers --------

// pipeline runs the notification service's background half against a
// fresh database and a stream of its own on the shared Redis.
type pipeline struct {
	db    *sqlx.DB
	store *postgres.Store
	// dispatchStore is the store as the dispatcher sees it.
	dispatchStore notification.DispatchStore
	rdb           *redis.Client
	stream        string
	contacts      *fakeContacts
	smtp          *smtpServer
	senders       map[notification.Channel]notification.Sender
	cancel        context.CancelFunc
	done          chan struct{}
}

type pipelineOptions struct {
	smtpAddr    string // default: a fresh SMTP server's
	extra       map[notification.Channel]notification.Sender
	maxAttempts int
	// wrap, when set, stands between the dispatcher and the store (a store
	// that fails on cue).
	wrap func(notification.DispatchStore) notification.DispatchStore
}

func newPipeline(t *testing.T, o pipelineOptions) *pipeline {
	t.Helper()
	db := testkit.Postgres(t)
	if err := postgres.Schema.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	p := &pipeline{db: db, store: postgres.New(db), rdb: testkit.Redis(t), stream: "events-" + uuid.NewString(),
		contacts: newContacts()}
	addr := o.smtpAddr
	if addr == "" {
		p.smtp = startSMTP(t, "127.0.0.1:0")
		addr = p.smtp.addr
	}
	email, err := notification.NewEmailSender(notification.EmailConfig{Addr: addr, From: "Mercato <no-reply@mercato.test>", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p.senders = map[notification.Channel]notification.Sender{notification.ChannelEmail: email}
	for ch, s := range o.extra {
		p.senders[ch] = s
	}
	if o.maxAttempts == 0 {
		o.maxAttempts = 5
	}
	p.dispatchStore = p.store
	if o.wrap != nil {
		p.dispatchStore = o.wrap(p.store)
	}
	p.start(t, o.maxAttempts)
	return p
}

// start runs a consumer and a dispatcher until stop or the end of the test.
func (p *pipeline) start(t *testing.T, maxAttempts int) {
	t.Helper()
	renderer, err := notification.NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	var channels []notification.Channel
	for _, ch := range []notification.Channel{notification.ChannelEmail, notification.ChannelSMS, notification.ChannelPush} {
		if p.senders[ch] != nil {
			channels = append(channels, ch)
		}
	}
	h := notification.NewEventHandler(p.store, channels)
	consumer := &events.Consumer{DB: p.db, Redis: p.rdb, Group: notification.ServiceName, Stream: p.stream,
		DeadLetterStream: p.stream + ".dead", Handler: h.Handle,
		Types: h.EventTypes(), Block: 100 * time.Millisecond, MinIdle: 500 * time.Millisecond}
	dispatcher := &notification.Dispatcher{Store: p.dispatchStore, Contacts: p.contacts, Senders: p.senders, Renderer: renderer,
		Workers: 2, PollInterval: 50 * time.Millisecond, AttemptTimeout: 2 * time.Second, MaxAttempts: maxAttempts,
		Backoff: 100 * time.Millisecond, MaxBackoff: 400 * time.Millisecond, Logger: log.NewNopLogger()}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{consumer.Run, dispatcher.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil {
				t.Errorf("background worker: %v", err)
			}
		}()
	}
	go func() { wg.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
}

func (p *pipeline) stop() {
	p.cancel()
	<-p.done
}

// publish puts e on the pipeline's stream the way the outbox relay does.
func (p *pipeline) publish(t *testing.T, e events.Envelope) {
	t.Helper()
	raw, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: p.stream,
		Values: []any{"id", e.ID, "type", e.Type, "envelope", string(raw)}}).Err(); err != nil {
		t.Fatal(err)
	}
}

// event builds an envelope of typ with data.
func event(t *testing.T, typ string, data any) events.Envelope {
	t.Helper()
	e, err := events.New(context.Background(), "test", typ, data)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// logRow is a notification log row as a test reads it.
type logRow struct {
	Channel             string `db:"channel"`
	Template            string `db:"template"`
	Status              string `db:"status"`
	Attempts            int    `db:"attempts"`
	InterruptedAttempts int    `db:"interrupted_attempts"`
	Recipient           string `db:"recipient"`
	ProviderID          string `db:"provider_id"`
	Error               string `db:"error"`
	Sent                bool   `db:"sent"`
}

// rows returns the log rows of userID, ordered by template and channel.
func (p *pipeline) rows(t *testing.T, userID string) []logRow {
	t.Helper()
	var rows []logRow
	if err := p.db.Select(&rows, `
		SELECT channel, template, status, attempts, interrupted_attempts, COALESCE(recipient, '') AS recipient,
		       COALESCE(provider_id, '') AS provider_id, COALESCE(error, '') AS error, sent_at IS NOT NULL AS sent
		FROM notifications WHERE user_id = $1 ORDER BY template, channel`, userID); err != nil {
		t.Fatal(err)
	}
	return rows
}

// waitRows waits until userID's rows satisfy ok, returning them.
func (p *pipeline) waitRows(t *testing.T, userID string, timeout time.Duration, ok func([]logRow) bool) []logRow {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		rows := p.rows(t, userID)
		if ok(rows) {
			return rows
		}
		if time.Now().After(deadline) {
			t.Fatalf("log rows after %s: %+v", timeout, rows)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// settled reports whether no row is pending or retrying any more.
func settled(n int) func([]logRow) bool {
	return func(rows []logRow) bool {
		if len(rows) != n {
			return false
		}
		for _, r := range rows {
			if r.Status == "pending" || r.Status == "retrying" {
				return false
			}
		}
		return true
	}
}

func mustContain(t *testing.T, what, text string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(text, p) {
			t.Errorf("%s lacks %q:\n%s", what, p, text)
		}
	}
}

// allChannels are the channels of an instance with every provider.
var allChannels = []notification.Channel{notification.ChannelEmail, notification.ChannelSMS, notification.ChannelPush}

// orderConfirmed is the order.updated of orderID's move to confirmed.
func orderConfirmed(userID, orderID, number string) map[string]any {
	return map[string]any{"order_id": orderID, "order_number": number, "user_id": userID,
		"status": "confirmed", "previous_status": "pending"}
}

func orderCreated(userID, orderID, number string) map[string]any {
	return map[string]any{
		"order_id": orderID, "order_number": number, "user_id": userID, "total_amount": "64.97", "currency": "USD",
		"items": []map[string]any{
			{"product_id": uuid.NewString(), "name": "Espresso cup <set of 2>", "quantity": 2, "unit_price": "12.50"},
			{"product_id": uuid.NewString(), "variant_id": uuid.NewString(), "name": "Grinder", "quantity": 1, "unit_price": "39.97"},
		},
	}
}
