// Package notification is the notification service of Mercato: it turns
// domain events (a registration, an order, a payment, a refund) into email,
// SMS and push messages, keeps a log of every message and each user's
// channel preferences, and lets users read both.
//
// The go-kit layers sit in their own files: service.go (this file: the
// interface the HTTP API serves, domain types and errors, the
// implementation), endpoints.go, transport_http.go and middleware.go. Delivery has two halves: consumer.go records, inside the
// event consumer's transaction, which notifications an event asks for;
// dispatcher.go sends them outside any transaction, retrying with backoff,
// through the channels of channels.go, with the templates of templates.go
// and the contact data of contacts.go. The PostgreSQL store lives in
// package notification/postgres.
package notification

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/shared/money"
	"github.com/mercato-dev/mercato/shared/paging"
)

// ServiceName is the name the service registers in Consul under and the
// consumer group it reads the event stream as.
const ServiceName = "notification"

// Service is what the notification service offers its users over HTTP. Every
// method acts for the user whose id the transport took from the verified
// token.
type Service interface {
	// ListNotifications pages through what was sent (or tried) to the user,
	// newest first.
	ListNotifications(ctx context.Context, userID string, page, pageSize int) (NotificationPage, error)

	GetPreferences(ctx context.Context, userID string) (Preferences, error)
	UpdatePreferences(ctx context.Context, userID string, p Preferences) (Preferences, error)

	// SetPushToken registers the device token push messages go to (one per
	// user: the latest device wins); DeletePushToken forgets it.
	SetPushToken(ctx context.Context, userID, token string) error
	DeletePushToken(ctx context.Context, userID string) error
}

// Channel is a way a message reaches a user.
type Channel string

const (
	ChannelEmail Channel = "email"
	ChannelSMS   Channel = "sms"
	ChannelPush  Channel = "push"
)

// Status is where a notification is in its life.
type Status string

const (
	// StatusPending: recorded, not yet attempted (or an attempt is in flight).
	StatusPending Status = "pending"
	// StatusRetrying: an attempt failed transiently; another is due at
	// NextAttemptAt.
	StatusRetrying Status = "retrying"
	// StatusSent: the provider accepted the message.
	StatusSent Status = "sent"
	// StatusFailed: a permanent failure, or every attempt failed.
	StatusFailed Status = "failed"
	// StatusSkipped: nothing was sent, on purpose (switched off in the
	// preferences, no phone number, no push token).
	StatusSkipped Status = "skipped"
)

// Template names: one per kind of message.
const (
	TemplateWelcome        = "welcome"
	TemplateOrderReceived  = "order_received"
	TemplateOrderConfirmed = "order_confirmed"
	TemplatePaymentFailed  = "payment_failed"
	TemplateOrderShipped   = "order_shipped"
	TemplateOrderDelivered = "order_delivered"
	TemplateOrderCancelled = "order_cancelled"
	TemplateRefundIssued   = "refund_issued"
)

// templateSpec says where a template may go and whether the user can opt out.
type templateSpec struct {
	// transactional messages (about an order, a payment, a refund) always go
	// by email whatever the preferences say: the user must learn what
	// happened to their money.
	transactional bool
	channels      []Channel
	// needsOrder marks templates that list the order's lines: the
	// dispatcher waits a little for the order.created summary.
	needsOrder bool
}

var allChannels = []Channel{ChannelEmail, ChannelSMS, ChannelPush}

var templateSpecs = map[string]templateSpec{
	// A welcome is not worth a text message, and a new user has no device
	// registered yet.
	TemplateWelcome:        {channels: []Channel{ChannelEmail}},
	TemplateOrderReceived:  {transactional: true, channels: allChannels, needsOrder: true},
	TemplateOrderConfirmed: {transactional: true, channels: allChannels, needsOrder: true},
	TemplatePaymentFailed:  {transactional: true, channels: allChannels},
	TemplateOrderShipped:   {transactional: true, channels: allChannels},
	TemplateOrderDelivered: {transactional: true, channels: allChannels},
	TemplateOrderCancelled: {transactional: true, channels: allChannels},
	TemplateRefundIssued:   {transactional: true, channels: allChannels},
}

// Notification is one message to one user on one channel, and the log of
// its delivery.
type Notification struct {
	ID        string    `json:"id"`
	EventID   string    `json:"-"`
	EventType string    `json:"event_type"`
	DedupeKey string    `json:"-"` // names the message, e.g. order_confirmed:<order id>
	UserID    string    `json:"-"`
	Channel   Channel   `json:"channel"`
	Template  string    `json:"template"`
	Details   Details   `json:"-"`
	Status    Status    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	// SentAt is when the provider accepted the message.
	SentAt *time.Time `json:"sent_at,omitempty"`

	// Delivery bookkeeping, for operators rather than users.
	Attempts int `json:"-"`
	// InterruptedAttempts counts attempts that ended without an outcome (the
	// process stopped mid-send). If one of them had reached the provider,
	// the user may have the message twice; the log says so.
	InterruptedAttempts int       `json:"-"`
	NextAttemptAt       time.Time `json:"-"`
	ClaimID             string    `json:"-"` // set while an attempt is in flight
	Recipient           string    `json:"-"` // address, number or device token used
	ProviderID          string    `json:"-"` // the provider's id of the accepted message
	Error               string    `json:"-"`
	UpdatedAt           time.Time `json:"-"`
}

// Details are what the event told about the message's subject, kept with the
// notification so it can be rendered whenever it is sent.
type Details struct {
	OrderID        string        `json:"order_id,omitempty"`
	OrderNumber    string        `json:"order_number,omitempty"`
	PaymentID      string        `json:"payment_id,omitempty"`
	Amount         *money.Amount `json:"amount,omitempty"`
	RefundedAmount *money.Amount `json:"refunded_amount,omitempty"`
	FullyRefunded  bool          `json:"fully_refunded,omitempty"`
	Currency       string        `json:"currency,omitempty"`
	Reason         string        `json:"reason,omitempty"`
	FailureCode    string        `json:"failure_code,omitempty"`
}

// NotificationPage is one page of a user's notifications, newest first.
type NotificationPage = paging.Page[Notification]

// Preferences are the channels a user wants messages on. Transactional
// messages go by email even when Email is false.
type Preferences struct {
	Email bool `json:"email"`
	SMS   bool `json:"sms"`
	Push  bool `json:"push"`
	// UpdatedAt is nil while the user has never changed the defaults.
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
}

// DefaultPreferences apply until a user changes them: every channel on. SMS
// and push still need a phone number or a registered device, and a
// configured provider.
var DefaultPreferences = Preferences{Email: true, SMS: true, Push: true}

// switchedOff is why a message allows refused is skipped.
const switchedOff = "switched off in the user's preferences"

// allows reports whether the preferences let template go out on ch. The
// consumer asks when it queues a message and the dispatcher again when it
// sends one, so a channel switched off meanwhile stays off.
func (p Preferences) allows(ch Channel, spec templateSpec) bool {
	switch ch {
	case ChannelEmail:
		return p.Email || spec.transactional
	case ChannelSMS:
		return p.SMS
	case ChannelPush:
		return p.Push
	}
	return false
}

// OrderLine is one line of an order as order.created described it.
type OrderLine struct {
	ProductID string       `json:"product_id"`
	VariantID string       `json:"variant_id,omitempty"`
	Name      string       `json:"name"`
	Quantity  int          `json:"quantity"`
	UnitPrice money.Amount `json:"unit_price"`
}

// Total is the line's price.
func (l OrderLine) Total() money.Amount { return l.UnitPrice * money.Amount(l.Quantity) }

// OrderSummary is what the service keeps of an order.created event: the
// order confirmation, sent on payment.processed, lists the lines and totals
// that payment events do not carry.
type OrderSummary struct {
	OrderID     string       `json:"order_id"`
	OrderNumber string       `json:"order_number"`
	UserID      string       `json:"user_id"`
	Total       money.Amount `json:"total_amount"`
	Currency    string       `json:"currency"`
	Items       []OrderLine  `json:"items"`
}

// Domain errors. The transport maps them to status codes with errors.Is.
var (
	ErrNotFound = errors.New("not found")
)

// Repository stores what the HTTP API reads and writes.
type Repository interface {
	ListNotifications(ctx context.Context, userID string, offset, limit int) ([]Notification, int, error)
	// Preferences returns DefaultPreferences for a user who never set any.
	Preferences(ctx context.Context, userID string) (Preferences, error)
	SavePreferences(ctx context.Context, userID string, p Preferences) (Preferences, error)
	SetPushToken(ctx context.Context, userID, token string) error
	// DeletePushToken reports ErrNotFound when the user had none.
	DeletePushToken(ctx context.Context, userID string) error
}

type service struct {
	repo Repository
}

// NewService returns the service backed by repo.
func NewService(repo Repository) Service {
	return &service{repo: repo}
}

func (s *service) ListNotifications(ctx context.Context, userID string, page, pageSize int) (NotificationPage, error) {
	if page < 1 || pageSize < 1 {
		return NotificationPage{}, fmt.Errorf("notification: page %d, size %d: both must be positive", page, pageSize)
	}
	userID, ok := parseID(userID)
	if !ok {
		return NotificationPage{Items: []Notification{}, Page: page, PageSize: pageSize}, nil
	}
	items, total, err := s.repo.ListNotifications(ctx, userID, (page-1)*pageSize, pageSize)
	if err != nil {
		return NotificationPage{}, err
	}
	return NotificationPage{Items: items, Page: page, PageSize: pageSize, Total: total}, nil
}

func (s *service) GetPreferences(ctx context.Context, userID string) (Preferences, error) {
	userID, ok := parseID(userID)
	if !ok {
		return Preferences{}, ErrNotFound
	}
	return s.repo.Preferences(ctx, userID)
}

func (s *service) UpdatePreferences(ctx context.Context, userID string, p Preferences) (Preferences, error) {
	userID, ok := parseID(userID)
	if !ok {
		return Preferences{}, ErrNotFound
	}
	return s.repo.SavePreferences(ctx, userID, p)
}

func (s *service) SetPushToken(ctx context.Context, userID, token string) error {
	userID, ok := parseID(userID)
	if !ok {
		return ErrNotFound
	}
	return s.repo.SetPushToken(ctx, userID, strings.TrimSpace(token))
}

func (s *service) DeletePushToken(ctx context.Context, userID string) error {
	userID, ok := parseID(userID)
	if !ok {
		return ErrNotFound
	}
	return s.repo.DeletePushToken(ctx, userID)
}

// parseID returns id in canonical form, or false when it is no UUID: such an
// id names no row (a service token's "service:<name>" subject, say), and
// passing it on would only make PostgreSQL reject the query.
func parseID(id string) (string, bool) {
	u, err := uuid.Parse(id)
	if err != nil {
		return "", false
	}
	return u.String(), true
}
