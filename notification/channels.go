package notification

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	netmail "net/mail"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	mail "github.com/wneessen/go-mail"
)

// Message is one rendered message for one recipient.
type Message struct {
	// ID is the notification's id: the email's Message-ID and the
	// Idempotency-Key of provider calls, so a resend after a crash is
	// recognisable as the same message.
	ID      string
	To      string // email address, phone number or device token
	Subject string // email subject, push title
	Text    string // plain-text email body, SMS text, push body
	HTML    string // HTML email body; empty for SMS and push
}

// Sender delivers messages on one channel. Send returns the provider's id of
// the accepted message. An error wrapped by Permanent will fail the same way
// however often it is retried (a rejected address, a 4xx answer); any other
// error is worth retrying later.
type Sender interface {
	Send(ctx context.Context, m Message) (providerID string, err error)
}

// permanentError marks a failure that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying.
func Permanent(err error) error { return permanentError{err} }

// IsPermanent reports whether err, or an error it wraps, was marked Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// EmailConfig configures the SMTP channel.
type EmailConfig struct {
	Addr     string // host:port of the SMTP server
	From     string // "Mercato <no-reply@mercato.local>"
	Username string // optional; with Password, SMTP AUTH PLAIN
	Password string
	Timeout  time.Duration // bound on one connection's dial and each command; default 30s
}

// EmailSender sends multipart/alternative (text and HTML) email over SMTP,
// upgrading to TLS with STARTTLS whenever the server offers it.
type EmailSender struct {
	client *mail.Client
	from   string
	domain string // of From, for Message-IDs
}

// NewEmailSender checks cfg and returns the SMTP channel. It does not
// connect: the server may be down now and up when the first message is due.
func NewEmailSender(cfg EmailConfig) (*EmailSender, error) {
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("smtp address %q: %w", cfg.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return nil, fmt.Errorf("smtp address %q: bad port", cfg.Addr)
	}
	from, err := netmail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("smtp from address %q: %w", cfg.From, err)
	}
	_, domain, _ := strings.Cut(from.Address, "@")
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	opts := []mail.Option{
		mail.WithPort(port),
		mail.WithTimeout(cfg.Timeout),
		mail.WithTLSPolicy(mail.TLSOpportunistic),
		mail.WithDialContextFunc(dialSMTP),
	}
	if cfg.Username != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthPlain), mail.WithUsername(cfg.Username), mail.WithPassword(cfg.Password))
	}
	client, err := mail.NewClient(host, opts...)
	if err != nil {
		return nil, fmt.Errorf("smtp client: %w", err)
	}
	return &EmailSender{client: client, from: cfg.From, domain: domain}, nil
}

// Send delivers m on a connection of its own, so concurrent sends never
// share a session. The provider id is the Message-ID, derived from m.ID: a
// resent message carries the same one, which lets mail clients drop the copy.
func (s *EmailSender) Send(ctx context.Context, m Message) (string, error) {
	msg := mail.NewMsg()
	if err := msg.From(s.from); err != nil {
		return "", Permanent(err)
	}
	if err := msg.To(m.To); err != nil {
		return "", Permanent(fmt.Errorf("recipient: %w", err))
	}
	msgID := m.ID + "@" + s.domain
	msg.SetMessageIDWithValue(msgID)
	msg.SetDate()
	msg.Subject(m.Subject)
	msg.SetBodyString(mail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(mail.TypeTextHTML, m.HTML)
	}
	conn := &session{}
	stop := context.AfterFunc(ctx, conn.close)
	defer func() { stop(); conn.close() }() // already closed after a QUIT
	if err := s.client.DialAndSendWithContext(context.WithValue(ctx, sessionKey{}, conn), msg); err != nil {
		if msg.IsDelivered() {
			// The server answered 250 to the message: it has it. What
			// failed is the session's end (RSET, QUIT), and retrying would
			// only send the message again.
			return msgID, nil
		}
		var se *mail.SendError
		// 5xx replies (unknown mailbox, message refused) stay refused;
		// 4xx replies, refused connections and timeouts pass.
		if errors.As(err, &se) && se.ErrorCode() >= 500 && se.ErrorCode() < 600 {
			return "", Permanent(err)
		}
		return "", err
	}
	return msgID, nil
}

// session is the connection one Send dials (dialSMTP), which Send closes
// when its context ends and when it returns: go-mail bounds each command by
// the client's timeout only, not by the call's context, so a server that
// stalls would hold the attempt past the dispatcher's lease; and it leaves a
// session refused before any message (at EHLO, STARTTLS or AUTH) open.
type session struct {
	mu     sync.Mutex
	conn   net.Conn
	closed bool
}

// sessionKey is the context key under which Send hands dialSMTP its session.
type sessionKey struct{}

func (s *session) set(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn = c
	if s.closed {
		_ = c.Close()
	}
}

func (s *session) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.conn != nil {
		_ = s.conn.Close()
	}
}

// dialSMTP dials the SMTP server, leaving the connection with the
// context's session.
func dialSMTP(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if s, ok := ctx.Value(sessionKey{}).(*session); ok && err == nil {
		s.set(conn)
	}
	return conn, err
}

// providerClient is the HTTP client of the provider adapters: a timeout as
// a backstop behind each call's context, and a tuned transport. It follows
// no redirect: net/http turns a POST redirected with 301, 302 or 303 into a
// GET that sends nothing, whose 200 would pass for the provider's
// acceptance; the redirect's own answer is refused instead (callProvider).
func providerClient(timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	return &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   5 * time.Second,
			MaxIdleConns:          32,
			MaxIdleConnsPerHost:   16,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: timeout,
		},
	}
}

// SMSConfig configures the SMS channel: a Twilio-like REST API.
type SMSConfig struct {
	URL        string // API base, e.g. https://sms.example/2010-04-01
	AccountSID string
	AuthToken  string
	From       string // sender number
	Timeout    time.Duration
}

// SMSSender sends text messages: POST {URL}/Accounts/{sid}/Messages.json
// with a form (To, From, Body) and HTTP basic auth (sid, token); the answer's
// "sid" is the provider id.
type SMSSender struct {
	provider
	sid, token string
	from       string
}

// NewSMSSender checks cfg and returns the SMS channel.
func NewSMSSender(cfg SMSConfig) (*SMSSender, error) {
	p, err := newProvider("sms", cfg.URL, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	if cfg.AccountSID == "" || cfg.AuthToken == "" || cfg.From == "" {
		return nil, errors.New("sms: the account sid, auth token and from number are required")
	}
	p.endpoint += "/Accounts/" + url.PathEscape(cfg.AccountSID) + "/Messages.json"
	return &SMSSender{provider: p, sid: cfg.AccountSID, token: cfg.AuthToken, from: cfg.From}, nil
}

func (s *SMSSender) Send(ctx context.Context, m Message) (string, error) {
	form := url.Values{"To": {m.To}, "From": {s.from}, "Body": {m.Text}}
	var out struct {
		SID string `json:"sid"`
	}
	err := s.post(ctx, m, strings.NewReader(form.Encode()), &out, func(req *http.Request) {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		req.SetBasicAuth(s.sid, s.token)
	})
	return out.SID, err
}

// PushConfig configures the push channel: an FCM-like HTTP v1 API.
type PushConfig struct {
	URL     string // the send endpoint, e.g. https://push.example/v1/projects/mercato/messages:send
	Key     string // bearer credential
	Timeout time.Duration
}

// PushSender sends push messages: POST {URL} with
// {"message": {"token", "notification": {"title", "body"}}} and a bearer
// key; the answer's "name" is the provider id.
type PushSender struct {
	provider
	key string
}

// NewPushSender checks cfg and returns the push channel.
func NewPushSender(cfg PushConfig) (*PushSender, error) {
	p, err := newProvider("push", cfg.URL, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	if cfg.Key == "" {
		return nil, errors.New("push: the key is required")
	}
	return &PushSender{provider: p, key: cfg.Key}, nil
}

type pushRequest struct {
	Message pushMessage `json:"message"`
}

type pushMessage struct {
	Token        string           `json:"token"`
	Notification pushNotification `json:"notification"`
}

type pushNotification struct {
	Title string `json:"title"`
	Body  string `json:"body"`
}

func (s *PushSender) Send(ctx context.Context, m Message) (string, error) {
	body, err := json.Marshal(pushRequest{Message: pushMessage{
		Token: m.To, Notification: pushNotification{Title: m.Subject, Body: m.Text},
	}})
	if err != nil {
		return "", Permanent(err)
	}
	var out struct {
		Name string `json:"name"`
	}
	err = s.post(ctx, m, bytes.NewReader(body), &out, func(req *http.Request) {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+s.key)
	})
	return out.Name, err
}

// provider is what the HTTP channels (SMS, push) share: the URL messages are
// posted to and the client that posts them.
type provider struct {
	name     string // the channel, prefixed to errors
	endpoint string
	http     *http.Client
}

// newProvider checks rawURL and returns the provider of channel name.
func newProvider(name, rawURL string, timeout time.Duration) (provider, error) {
	endpoint, err := providerURL(rawURL)
	if err != nil {
		return provider{}, fmt.Errorf("%s url: %w", name, err)
	}
	return provider{name: name, endpoint: endpoint, http: providerClient(timeout)}, nil
}

// post sends body for m, with the headers header sets and m's id as the
// Idempotency-Key, and decodes the answer into out (see callProvider).
func (p provider) post(ctx context.Context, m Message, body io.Reader, out any, header func(*http.Request)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.endpoint, body)
	if err != nil {
		return Permanent(err)
	}
	header(req)
	req.Header.Set("Idempotency-Key", m.ID)
	if err := callProvider(p.http, req, out); err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	return nil
}

// providerURL checks an http(s) URL and drops a trailing slash.
func providerURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%q is not an http(s) URL", raw)
	}
	return strings.TrimSuffix(raw, "/"), nil
}

// callProvider sends req and decodes a 2xx JSON answer into out. A 3xx or
// 4xx answer is permanent, except 408, 409 and 429, which say "later"; 5xx
// answers and transport failures are transient.
func callProvider(client *http.Client, req *http.Request, out any) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		// Accepted: an unreadable answer only costs the provider id, and
		// failing here would send the message again.
		_ = json.Unmarshal(body, out)
		return nil
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500,
		// A request with this Idempotency-Key still in progress (a replay
		// after a crash): a later attempt gets its answer.
		resp.StatusCode == http.StatusConflict:
		return fmt.Errorf("provider answered %d: %s", resp.StatusCode, snippet(body))
	default:
		return Permanent(fmt.Errorf("provider refused the message with %d: %s", resp.StatusCode, snippet(body)))
	}
}

// snippet is the start of a provider's error body, for the log and the
// notification's stored error.
func snippet(b []byte) string {
	return storable(strings.TrimSpace(string(b)), 200)
}

// storable is s as PostgreSQL text can hold it, at most max characters
// (cut with "…"): bytes that are not UTF-8 become U+FFFD and NUL is dropped,
// since PostgreSQL refuses both. What a provider answers (an error body, a
// message id) is stored with the attempt; an answer that could not be
// stored left the attempt unrecorded, and the message was sent again after
// every lease.
func storable(s string, max int) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	return string([]rune(s)[:max-1]) + "…"
}
