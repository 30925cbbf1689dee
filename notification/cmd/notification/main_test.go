package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/go-kit/log"
	"github.com/hashicorp/consul/api"
	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/notification/postgres"
	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/metrics"
	"github.com/mercato-dev/mercato/shared/testkit"
	"github.com/mercato-dev/mercato/user"
	userpg "github.com/mercato-dev/mercato/user/postgres"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const secret = "0123456789abcdef0123456789abcdef"

// inbox is an SMTP server on loopback keeping the envelope and headers of
// what it accepts.
type inbox struct {
	mu    sync.Mutex
	mails []struct {
		to     []string
		header mail.Header
	}
}

func (in *inbox) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{in: in}, nil }

type session struct {
	in *inbox
	to []string
}

func (s *session) Reset()                               { s.to = nil }
func (s *session) Logout() error                        { return nil }
func (s *session) Mail(string, *smtp.MailOptions) error { return nil }
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	m, err := mail.ReadMessage(r)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, m.Body)
	s.in.mu.Lock()
	defer s.in.mu.Unlock()
	s.in.mails = append(s.in.mails, struct {
		to     []string
		header mail.Header
	}{s.to, m.Header})
	return nil
}

func (in *inbox) count() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.mails)
}

// startUserService serves the real user service in-process on its own
// database and registers it in Consul, as its binary would.
func startUserService(t *testing.T, consul *api.Client) user.Service {
	t.Helper()
	db := testkit.Postgres(t)
	if err := userpg.Schema.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewTokens([]byte(secret), 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := user.NewService(userpg.New(db), tokens, user.Options{BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	logger := log.NewNopLogger()
	reg := metrics.NewRegistry()
	router := httpkit.Router(logger, reg, metrics.NewHTTP(reg, "user"), nil)
	user.MakeHTTPHandler(router, user.MakeServerEndpoints(svc, tokens), logger)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: httpkit.Handler(logger, router), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	reg2, err := discovery.Register(t.Context(), consul, discovery.Registration{Service: user.ServiceName, Host: "127.0.0.1", Port: port}, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg2.Deregister() }) // Consul goes away with the test
	// The user service publishes user.created through its outbox.
	relay := &events.Relay{DB: db, Redis: testkit.Redis(t), PollInterval: 50 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = relay.Run(ctx) }() // returns nil once ctx is done
	t.Cleanup(func() { cancel(); <-done })
	return svc
}

// TestRun starts the service as the binary would, with the real user
// service beside it in Consul, and follows a registration through: the
// user service publishes user.created, this service consumes it, looks the
// user up through Consul with a service token and sends the welcome email
// over SMTP; the user then sees it in GET /api/v1/notifications.
func TestRun(t *testing.T) {
	consulAddr := testkit.ConsulAddr(t)
	consul, err := discovery.NewConsulClientWithToken(consulAddr, testkit.ConsulToken(t, consulAddr, ""))
	if err != nil {
		t.Fatal(err)
	}
	users := startUserService(t, consul)

	mails := &inbox{}
	smtpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	smtpSrv := smtp.NewServer(mails)
	smtpSrv.Domain = "localhost"
	go smtpSrv.Serve(smtpLn) //nolint:errcheck // ends with Close
	t.Cleanup(func() { smtpSrv.Close() })

	args := testkit.InstanceArgs(t, consulAddr, secret,
		"-smtp-addr", smtpLn.Addr().String(),
		"-smtp-from", "Mercato Test <hello@mercato.test>",
		"-send-poll-interval", "50ms",
	)
	in := testkit.StartInstance(t, run, consulAddr, "notification", args...)
	instance := in.Entry
	if instance.Service.Port == 0 || instance.Service.ID != fmt.Sprintf("notification-127.0.0.1-%d", instance.Service.Port) {
		t.Errorf("registered as %s port %d", instance.Service.ID, instance.Service.Port)
	}
	base := in.BaseURL

	if _, err := users.Register(context.Background(), user.Registration{Email: "ada@example.com", Password: "password123", FirstName: "Ada", LastName: "Lovelace"}); err != nil {
		t.Fatal(err)
	}
	pair, err := users.Login(context.Background(), "ada@example.com", "password123")
	if err != nil {
		t.Fatal(err)
	}

	for start := time.Now(); mails.count() == 0; time.Sleep(50 * time.Millisecond) {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("no welcome email after 20s\nlogs:\n%s", in.Logs)
		}
	}
	mails.mu.Lock()
	m := mails.mails[0]
	mails.mu.Unlock()
	if strings.Join(m.to, ",") != "ada@example.com" || m.header.Get("Subject") != "Welcome to Mercato, Ada!" || m.header.Get("From") != `"Mercato Test" <hello@mercato.test>` {
		t.Errorf("welcome email: to %v, headers %v", m.to, m.header)
	}

	get := func(path, token string) (int, string) {
		t.Helper()
		r := testkit.Call(t, "GET", base+path, token, nil)
		return r.Status, r.Body
	}
	var list struct {
		Items []struct {
			Channel, Template, Status string
			SentAt                    *time.Time `json:"sent_at"`
		} `json:"items"`
		Total int `json:"total"`
	}
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		code, body := get("/api/v1/notifications", pair.AccessToken)
		if code != http.StatusOK {
			t.Fatalf("GET /api/v1/notifications: %d %s", code, body)
		}
		if err := json.Unmarshal([]byte(body), &list); err != nil {
			t.Fatal(err)
		}
		if list.Total == 1 && list.Items[0].Status == "sent" {
			break
		}
		if time.Since(start) > 20*time.Second { // generous: a loaded CI machine
			t.Fatalf("notification list: %s", body)
		}
	}
	if it := list.Items[0]; it.Channel != "email" || it.Template != "welcome" || it.SentAt == nil {
		t.Errorf("listed %+v", it)
	}
	if code, body := get("/ready", ""); code != http.StatusOK {
		t.Errorf("/ready: %d %s", code, body)
	}
	_, body := get("/metrics", "")
	for _, want := range []string{
		`notification_attempts_total{channel="email",status="sent",template="welcome"} 1`,
		`events_consumed_total{group="notification",service="notification",type="user.created"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if out := in.Logs.String(); strings.Contains(out, pair.AccessToken) {
		t.Error("a token in the logs")
	}

	testkit.StopInstances(t, in)
	entries, _, err := consul.Health().Service("notification", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("still in Consul after shutdown: %s", entries[0].Service.ID)
	}
}

// TestRunDeletesOldInboxRows: the inbox forgets an event handled more than
// the inbox retention ago, as every other consuming service's does. This
// service runs no outbox relay, whose housekeeping does it there, so before
// its own janitor the inbox kept a row per event for ever.
func TestRunDeletesOldInboxRows(t *testing.T) {
	consulAddr := testkit.ConsulAddr(t)
	args := testkit.InstanceArgs(t, consulAddr, secret)
	db, err := sqlx.Connect("postgres", testkit.ArgValue(args, "database-url"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := postgres.Schema.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	db.MustExec(`INSERT INTO inbox (consumer, event_id, processed_at) VALUES
		('notification', '00000000-0000-0000-0000-000000000001', now() - interval '31 days'),
		('notification', '00000000-0000-0000-0000-000000000002', now() - interval '29 days')`)

	in := testkit.StartInstance(t, run, consulAddr, "notification", args...)
	count := func(id string) int {
		var n int
		if err := db.Get(&n, `SELECT count(*) FROM inbox WHERE event_id = $1`, id); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for start := time.Now(); count("00000000-0000-0000-0000-000000000001") != 0; time.Sleep(50 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the inbox row of an event handled 31 days ago is still there 10 s after the start; want it deleted\nlogs:\n%s", in.Logs)
		}
	}
	if count("00000000-0000-0000-0000-000000000002") != 1 {
		t.Error("the inbox row of an event handled 29 days ago was deleted, inside the retention")
	}
}

// TestRunRefusesBadConfig checks that a misconfigured instance stops at once
// with an error that names the setting, before serving anything.
func TestRunRefusesBadConfig(t *testing.T) {
	base := []string{"-http-addr", "127.0.0.1:0", "-jwt-secret", secret, "-database-url", "postgres://127.0.0.1:1/none?sslmode=disable&connect_timeout=2"}
	with := func(extra ...string) []string { return append(base[:len(base):len(base)], extra...) }
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no database", []string{"-jwt-secret", secret}, "-database-url"},
		{"short secret", []string{"-database-url", "postgres://x/y", "-jwt-secret", "short"}, "-jwt-secret"},
		{"smtp address without port", with("-smtp-addr", "localhost"), "-smtp-addr"},
		{"bad from", with("-smtp-from", "nobody"), "-smtp-from"},
		{"sms without credentials", with("-sms-url", "http://127.0.0.1:1"), "-sms-"},
		{"push without key", with("-push-url", "http://127.0.0.1:1"), "-push-"},
		{"zero workers", with("-send-workers", "0"), "-send-workers"},
		{"backoff above its cap", with("-send-backoff", "10m"), "-send-backoff"},
		{"unreachable database", base, "database"},
		{"unknown flag", []string{"-no-such-flag"}, "no-such-flag"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// An unreachable database is asked again until the start-up
			// deadline, or this context, ends.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := run(ctx, tc.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one naming %q", err, tc.want)
			}
		})
	}
	if err := run(context.Background(), []string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: err = %v, want flag.ErrHelp", err)
	}
}
