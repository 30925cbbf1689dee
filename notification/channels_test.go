package notification_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/notification"
	"github.com/mercato-dev/mercato/shared/events"
)

// provider is an httptest server playing an SMS or push provider: it
// records every request and answers from a script (the last answer
// repeats).
type provider struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []providerRequest
	answers  []providerAnswer
}

type providerRequest struct {
	Method, Path, ContentType, Authorization, IdempotencyKey string
	User, Password                                           string
	Body                                                     string
}

type providerAnswer struct {
	status int
	body   string
}

func newProvider(t *testing.T, answers ...providerAnswer) *provider {
	p := &provider{answers: answers}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		user, pass, _ := r.BasicAuth()
		p.mu.Lock()
		p.requests = append(p.requests, providerRequest{Method: r.Method, Path: r.URL.Path,
			ContentType: r.Header.Get("Content-Type"), Authorization: r.Header.Get("Authorization"),
			IdempotencyKey: r.Header.Get("Idempotency-Key"), User: user, Password: pass, Body: string(body)})
		a := p.answers[min(len(p.requests), len(p.answers))-1]
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body) // a test provider: the client reads what it can
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *provider) got() []providerRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]providerRequest(nil), p.requests...)
}

func newSMS(t *testing.T, p *provider) *notification.SMSSender {
	t.Helper()
	s, err := notification.NewSMSSender(notification.SMSConfig{URL: p.srv.URL + "/2010-04-01/", AccountSID: "AC123",
		AuthToken: "sms-secret", From: "+15550001111", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newPush(t *testing.T, p *provider) *notification.PushSender {
	t.Helper()
	s, err := notification.NewPushSender(notification.PushConfig{URL: p.srv.URL + "/v1/projects/mercato/messages:send",
		Key: "push-key", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSMSRequest(t *testing.T) {
	p := newProvider(t, providerAnswer{201, `{"sid":"SM42","status":"queued"}`})
	id, err := newSMS(t, p).Send(context.Background(), notification.Message{ID: "n-1", To: "+447700900123", Text: "Mercato: order MRC-1 has shipped."})
	if err != nil || id != "SM42" {
		t.Fatalf("Send = %q, %v", id, err)
	}
	r := p.got()[0]
	if r.Method != "POST" || r.Path != "/2010-04-01/Accounts/AC123/Messages.json" || r.User != "AC123" || r.Password != "sms-secret" ||
		r.ContentType != "application/x-www-form-urlencoded" || r.IdempotencyKey != "n-1" {
		t.Errorf("request %+v", r)
	}
	form, err := url.ParseQuery(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := url.Values{"To": {"+447700900123"}, "From": {"+15550001111"}, "Body": {"Mercato: order MRC-1 has shipped."}}
	if form.Encode() != want.Encode() {
		t.Errorf("form %v, want %v", form, want)
	}
}

func TestPushRequest(t *testing.T) {
	p := newProvider(t, providerAnswer{200, `{"name":"projects/mercato/messages/0:1"}`})
	id, err := newPush(t, p).Send(context.Background(), notification.Message{ID: "n-2", To: "device-token-1", Subject: "Order MRC-1 has shipped", Text: "Mercato: order MRC-1 has shipped."})
	if err != nil || id != "projects/mercato/messages/0:1" {
		t.Fatalf("Send = %q, %v", id, err)
	}
	r := p.got()[0]
	if r.Method != "POST" || r.Path != "/v1/projects/mercato/messages:send" || r.Authorization != "Bearer push-key" ||
		r.ContentType != "application/json" || r.IdempotencyKey != "n-2" {
		t.Errorf("request %+v", r)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(r.Body), &body); err != nil {
		t.Fatal(err)
	}
	want := `{"message":{"notification":{"body":"Mercato: order MRC-1 has shipped.","title":"Order MRC-1 has shipped"},"token":"device-token-1"}}`
	if got, _ := json.Marshal(body); string(got) != want {
		t.Errorf("body %s, want %s", got, want)
	}
}

// TestProviderErrors: which answers are worth another attempt.
func TestProviderErrors(t *testing.T) {
	tests := []struct {
		status    int
		permanent bool
	}{
		{400, true}, {401, true}, {403, true}, {404, true}, {422, true},
		// 409: a request with this Idempotency-Key is still in progress
		// (a replay after a crash): its answer comes on a later attempt.
		{408, false}, {409, false}, {429, false}, {500, false}, {502, false}, {503, false},
	}
	for _, tc := range tests {
		p := newProvider(t, providerAnswer{tc.status, `{"message":"no"}`})
		for name, s := range map[string]notification.Sender{"sms": newSMS(t, p), "push": newPush(t, p)} {
			_, err := s.Send(context.Background(), notification.Message{ID: "n", To: "x", Text: "t"})
			if err == nil || notification.IsPermanent(err) != tc.permanent || !strings.Contains(err.Error(), `{"message":"no"}`) {
				t.Errorf("%s %d: err = %v, permanent %v; want permanent %v", name, tc.status, err, notification.IsPermanent(err), tc.permanent)
			}
		}
	}
	gone := newProvider(t, providerAnswer{200, `{}`})
	gone.srv.Close()
	if _, err := newSMS(t, gone).Send(context.Background(), notification.Message{ID: "n", To: "x", Text: "t"}); err == nil || notification.IsPermanent(err) {
		t.Errorf("unreachable provider: %v, want a transient error", err)
	}
}

// TestProviderRedirectIsNotFollowed: net/http follows a 301, 302 or 303 to
// a POST with a GET of the new location, which sends nothing; a 200 to that
// GET was taken for the provider's acceptance, and the message was lost as
// sent. A redirect is the endpoint's misconfiguration: refused, with its
// status, and nothing else asked.
func TestProviderRedirectIsNotFollowed(t *testing.T) {
	var gets atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			gets.Add(1)
			_, _ = w.Write([]byte(`{"sid":"SM-from-a-GET"}`))
			return
		}
		http.Redirect(w, r, "/moved", http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	sms, err := notification.NewSMSSender(notification.SMSConfig{URL: srv.URL, AccountSID: "AC1", AuthToken: "tok", From: "+15550001111", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	id, err := sms.Send(context.Background(), notification.Message{ID: "n", To: "+447700900123", Text: "t"})
	if err == nil || !notification.IsPermanent(err) || !strings.Contains(err.Error(), "302") || gets.Load() != 0 {
		t.Errorf("Send to an endpoint that redirects = %q, %v (permanent %v), %d GETs; want a permanent error naming 302 and no GET",
			id, err, notification.IsPermanent(err), gets.Load())
	}
}

func TestSenderConfig(t *testing.T) {
	if _, err := notification.NewSMSSender(notification.SMSConfig{URL: "ftp://x", AccountSID: "a", AuthToken: "b", From: "c"}); err == nil {
		t.Error("SMS with an ftp URL accepted")
	}
	if _, err := notification.NewSMSSender(notification.SMSConfig{URL: "http://127.0.0.1:1", AccountSID: "a"}); err == nil {
		t.Error("SMS without credentials accepted")
	}
	if _, err := notification.NewPushSender(notification.PushConfig{URL: "http://127.0.0.1:1"}); err == nil {
		t.Error("push without a key accepted")
	}
	if _, err := notification.NewEmailSender(notification.EmailConfig{Addr: "127.0.0.1", From: "a@b.c"}); err == nil {
		t.Error("SMTP address without a port accepted")
	}
	if _, err := notification.NewEmailSender(notification.EmailConfig{Addr: "127.0.0.1:25", From: "not an address"}); err == nil {
		t.Error("bad From accepted")
	}
}

// TestProviderRetries runs SMS and push through the dispatcher: a provider
// answering 5xx is tried again with backoff until it accepts; one answering
// 4xx is not tried again.
func TestProviderRetries(t *testing.T) {
	sms := newProvider(t, providerAnswer{503, `{"message":"busy"}`}, providerAnswer{500, `{"message":"oops"}`}, providerAnswer{201, `{"sid":"SM1"}`})
	push := newProvider(t, providerAnswer{400, `{"error":{"status":"INVALID_ARGUMENT"}}`})
	p := newPipeline(t, pipelineOptions{extra: map[notification.Channel]notification.Sender{
		notification.ChannelSMS: newSMS(t, sms), notification.ChannelPush: newPush(t, push)}})
	ada := p.contacts.add(notification.Contact{Email: "ada@example.com", FirstName: "Ada", Phone: "+447700900123"})
	if err := p.store.SetPushToken(context.Background(), ada, "ada-device"); err != nil {
		t.Fatal(err)
	}
	p.publish(t, event(t, events.OrderUpdated, map[string]any{"order_id": uuid.NewString(), "order_number": "MRC-9", "user_id": ada, "status": "shipped"}))
	rows := p.waitRows(t, ada, 10*time.Second, settled(3))
	byChannel := map[string]logRow{}
	for _, r := range rows {
		byChannel[r.Channel] = r
	}
	if r := byChannel["sms"]; r.Status != "sent" || r.Attempts != 3 || r.ProviderID != "SM1" || r.Recipient != "+447700900123" {
		t.Errorf("sms row %+v", r)
	}
	if r := byChannel["push"]; r.Status != "failed" || r.Attempts != 1 || !strings.Contains(r.Error, "400") || r.Recipient != "ada-device" {
		t.Errorf("push row %+v", r)
	}
	if r := byChannel["email"]; r.Status != "sent" {
		t.Errorf("email row %+v", r)
	}
	time.Sleep(300 * time.Millisecond) // a retry of the 4xx would come within this
	if n := len(sms.got()); n != 3 {
		t.Errorf("SMS provider got %d requests, want 3", n)
	}
	if n := len(push.got()); n != 1 {
		t.Errorf("push provider got %d requests, want 1", n)
	}
	// Every attempt at one message carries the same idempotency key.
	for _, r := range sms.got() {
		if r.IdempotencyKey != sms.got()[0].IdempotencyKey || r.IdempotencyKey == "" {
			t.Errorf("idempotency keys differ: %+v", sms.got())
		}
	}
}

// TestHungSMTPServerHoldsUpNoOtherChannel: an SMTP server that takes
// connections and never answers holds every email attempt for its whole
// timeout; text messages are sent meanwhile, not queued behind the emails.
func TestHungSMTPServerHoldsUpNoOtherChannel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); conns.Wait() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				defer c.Close()
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, _ = io.Copy(io.Discard, c) // no greeting, no answer
			}()
		}
	}()

	sms := newProvider(t, providerAnswer{201, `{"sid":"SM1"}`})
	p := newPipeline(t, pipelineOptions{smtpAddr: ln.Addr().String(), maxAttempts: 100,
		extra: map[notification.Channel]notification.Sender{notification.ChannelSMS: newSMS(t, sms)}})
	// More emails than workers, every one held for the attempt's 2 s.
	for i := range 4 {
		id := p.contacts.add(notification.Contact{Email: fmt.Sprintf("user%d@example.com", i), FirstName: "U"})
		p.publish(t, event(t, events.UserCreated, map[string]any{"user_id": id}))
		p.waitRows(t, id, 5*time.Second, func(rows []logRow) bool { return len(rows) == 1 })
	}
	ada := p.contacts.add(notification.Contact{Email: "ada@example.com", FirstName: "Ada", Phone: "+447700900123"})
	p.publish(t, event(t, events.OrderUpdated, map[string]any{"order_id": uuid.NewString(), "order_number": "MRC-9", "user_id": ada, "status": "shipped"}))
	begin := time.Now()
	p.waitRows(t, ada, 1500*time.Millisecond, func(rows []logRow) bool {
		for _, r := range rows {
			if r.Channel == "sms" && r.Status == "sent" {
				return true
			}
		}
		return false
	})
	t.Logf("text message sent %v after its event, the SMTP server hung", time.Since(begin).Round(time.Millisecond))
}

// TestPreferencesRespected: switched-off channels are skipped, except email
// for transactional messages; SMS needs a phone number and push a device.
func TestPreferencesRespected(t *testing.T) {
	sms := newProvider(t, providerAnswer{201, `{"sid":"SM1"}`})
	push := newProvider(t, providerAnswer{200, `{"name":"m/1"}`})
	p := newPipeline(t, pipelineOptions{extra: map[notification.Channel]notification.Sender{
		notification.ChannelSMS: newSMS(t, sms), notification.ChannelPush: newPush(t, push)}})
	ctx := context.Background()

	quiet := p.contacts.add(notification.Contact{Email: "quiet@example.com", FirstName: "Quinn", Phone: "+15550002222"})
	if _, err := p.store.SavePreferences(ctx, quiet, notification.Preferences{Email: false, SMS: false, Push: true}); err != nil {
		t.Fatal(err)
	}
	if err := p.store.SetPushToken(ctx, quiet, "quinn-device"); err != nil {
		t.Fatal(err)
	}
	plain := p.contacts.add(notification.Contact{Email: "plain@example.com", FirstName: "Pat"}) // defaults, no phone, no device

	for _, u := range []string{quiet, plain} {
		p.publish(t, event(t, events.UserCreated, map[string]any{"user_id": u}))
		p.publish(t, event(t, events.OrderUpdated, map[string]any{"order_id": uuid.NewString(), "order_number": "MRC-" + u[:4], "user_id": u, "status": "shipped"}))
	}

	type outcome struct{ template, channel, status, error string }
	check := func(user string, want []outcome) {
		t.Helper()
		rows := p.waitRows(t, user, 10*time.Second, settled(len(want)))
		for i, r := range rows {
			if got := (outcome{r.Template, r.Channel, r.Status, r.Error}); got != want[i] {
				t.Errorf("row %d = %+v, want %+v", i, got, want[i])
			}
		}
	}
	check(quiet, []outcome{
		{"order_shipped", "email", "sent", ""}, // transactional: email despite the preference
		{"order_shipped", "push", "sent", ""},
		{"order_shipped", "sms", "skipped", "switched off in the user's preferences"},
		{"welcome", "email", "skipped", "switched off in the user's preferences"},
	})
	check(plain, []outcome{
		{"order_shipped", "email", "sent", ""},
		{"order_shipped", "push", "skipped", "no push token registered"},
		{"order_shipped", "sms", "skipped", "the user has no phone number"},
		{"welcome", "email", "sent", ""},
	})

	var to []string
	for _, m := range p.smtp.all() {
		to = append(to, m.To[0]+" "+m.Subject)
	}
	if len(to) != 3 || strings.Contains(strings.Join(to, ";"), "quiet@example.com Welcome") {
		t.Errorf("emails: %v", to)
	}
	if n := len(sms.got()); n != 0 {
		t.Errorf("%d SMS sent", n)
	}
	if got := push.got(); len(got) != 1 || !strings.Contains(got[0].Body, `"token":"quinn-device"`) {
		t.Errorf("push requests: %+v", got)
	}
}

// What a provider answers is stored with the attempt whatever it holds: an
// error body cut in the middle of a character, NUL, a message id longer than
// provider_id's 255 characters. Before, PostgreSQL refused the text, the
// attempt went unrecorded, and the message was sent again after every lease
// (a refused push, a delivered one too).
func TestProviderAnswersAreStoredWhateverTheyHold(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer providerAnswer
		status string
	}{
		{"a refusal cut mid-character", providerAnswer{400, `{"e":"` + strings.Repeat("x", 193) + "é\x00" + strings.Repeat("y", 50) + `"}`}, "failed"},
		{"an id with NUL, too long", providerAnswer{200, `{"name":"m\u0000` + strings.Repeat("z", 300) + `"}`}, "sent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			push := newProvider(t, tc.answer)
			p := newPipeline(t, pipelineOptions{extra: map[notification.Channel]notification.Sender{
				notification.ChannelPush: newPush(t, push)}})
			ada := p.contacts.add(notification.Contact{Email: "ada@example.com", FirstName: "Ada"})
			if err := p.store.SetPushToken(context.Background(), ada, "ada-device"); err != nil {
				t.Fatal(err)
			}
			p.publish(t, event(t, events.OrderUpdated, map[string]any{"order_id": uuid.NewString(), "order_number": "MRC-9", "user_id": ada, "status": "shipped"}))
			// Well within the lease (9 s here), after which an unrecorded
			// attempt is taken over and sent again.
			rows := p.waitRows(t, ada, 6*time.Second, func(rows []logRow) bool {
				for _, r := range rows {
					if r.Channel == "push" {
						return r.Status != "pending" && r.Status != "retrying"
					}
				}
				return false
			})
			for _, r := range rows {
				if r.Channel == "push" && (r.Status != tc.status || r.Attempts != 1 || !utf8.ValidString(r.Error+r.ProviderID) || len([]rune(r.ProviderID)) > 255) {
					t.Fatalf("push row %+v, want %s after one attempt", r, tc.status)
				}
			}
			if n := len(push.got()); n != 1 {
				t.Fatalf("the provider got %d requests, want 1", n)
			}
		})
	}
}

// TestOptOutStopsQueuedMessages: a message still queued when the user
// switches its channel off (retried through a provider outage, here) is not
// sent once the provider is back: preferences count when the message goes
// out, as the push token and phone number do, not only when it was queued.
func TestOptOutStopsQueuedMessages(t *testing.T) {
	sms := newProvider(t, providerAnswer{503, `{"message":"busy"}`})
	p := newPipeline(t, pipelineOptions{maxAttempts: 50, extra: map[notification.Channel]notification.Sender{
		notification.ChannelSMS: newSMS(t, sms)}})
	ada := p.contacts.add(notification.Contact{Email: "ada@example.com", FirstName: "Ada", Phone: "+447700900123"})
	p.publish(t, event(t, events.OrderUpdated, map[string]any{"order_id": uuid.NewString(), "order_number": "MRC-OPT", "user_id": ada, "status": "shipped"}))
	p.waitRows(t, ada, 10*time.Second, func(rows []logRow) bool {
		for _, r := range rows {
			if r.Channel == "sms" && r.Status == "retrying" {
				return true
			}
		}
		return false
	})

	// The user switches SMS off during the outage; then the provider is back.
	p.stop()
	if _, err := p.store.SavePreferences(context.Background(), ada, notification.Preferences{Email: true, SMS: false, Push: true}); err != nil {
		t.Fatal(err)
	}
	sms.mu.Lock()
	sms.answers = []providerAnswer{{201, `{"sid":"SM-after-opt-out"}`}}
	sms.mu.Unlock()
	before := len(sms.got())
	p.start(t, 50)

	rows := p.waitRows(t, ada, 10*time.Second, settled(2))
	for _, r := range rows {
		if r.Channel == "sms" && (r.Status != "skipped" || r.Sent || r.Error != "switched off in the user's preferences") {
			t.Errorf("sms row after the opt-out: %+v, want skipped", r)
		}
	}
	if n := len(sms.got()) - before; n != 0 {
		t.Errorf("%d SMS requests after the user switched SMS off, want none", n)
	}
}
