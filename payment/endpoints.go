package payment

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-kit/kit/endpoint"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/money"
)

// Endpoints collects one endpoint per Service method that has a route. On
// the server they are built by MakeServerEndpoints around a Service; in a
// client (NewClient) they call a remote instance. Either way Endpoints is
// itself a Service.
//
// As a client, the read methods act for the caller whose bearer token ctx
// carries (auth.ContextToHTTP forwards it): their userID argument is not
// sent, because the server takes the caller's identity from the token only.
// Charge needs a token of role service (auth.Tokens.ServiceToken) or admin.
type Endpoints struct {
	ChargeEndpoint        endpoint.Endpoint
	GetPaymentEndpoint    endpoint.Endpoint
	ListPaymentsEndpoint  endpoint.Endpoint
	RefundEndpoint        endpoint.Endpoint
	HandleWebhookEndpoint endpoint.Endpoint
}

var _ Service = Endpoints{}

// MakeServerEndpoints returns the endpoints of s, with authentication and
// authorisation applied here and nowhere else. The webhook has no token: its
// signature is checked by the service.
func MakeServerEndpoints(s Service, tokens *auth.Tokens) Endpoints {
	user := auth.Authenticate(tokens)
	internal := endpoint.Chain(user, auth.RequireRole(auth.RoleService, auth.RoleAdmin))
	admin := endpoint.Chain(user, auth.RequireRole(auth.RoleAdmin))
	return Endpoints{
		ChargeEndpoint:        internal(MakeChargeEndpoint(s)),
		GetPaymentEndpoint:    user(MakeGetPaymentEndpoint(s)),
		ListPaymentsEndpoint:  user(MakeListPaymentsEndpoint(s)),
		RefundEndpoint:        admin(MakeRefundEndpoint(s)),
		HandleWebhookEndpoint: MakeHandleWebhookEndpoint(s),
	}
}

// viewer is whose payments the verified caller may see: a customer their
// own, an admin or another service everyone's (""). auth.Authenticate has
// put the identity there, so its absence is a wiring mistake answered 401.
func viewer(ctx context.Context) (string, error) {
	id, ok := auth.FromContext(ctx)
	if !ok {
		return "", auth.ErrUnauthenticated
	}
	if id.IsAdmin() || id.Role == auth.RoleService {
		return "", nil
	}
	return id.UserID, nil
}

// MakeChargeEndpoint returns the endpoint of Service.Charge.
func MakeChargeEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(chargeRequest)
		if err := req.validate(time.Now()); err != nil {
			return chargeResponse{Err: err}, nil
		}
		amount, _ := money.Parse(req.Amount)
		p, created, err := s.Charge(ctx, ChargeRequest{
			OrderID: req.OrderID, UserID: req.UserID, Amount: amount, Currency: req.currency(), Card: req.Card,
		})
		return chargeResponse{Payment: p, Created: created, Err: err}, nil
	}
}

// MakeGetPaymentEndpoint returns the endpoint of Service.GetPayment for the caller.
func MakeGetPaymentEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		userID, err := viewer(ctx)
		if err != nil {
			return nil, err
		}
		p, err := s.GetPayment(ctx, userID, request.(getPaymentRequest).ID)
		return paymentResponse{Payment: p, Err: err}, nil
	}
}

// MakeListPaymentsEndpoint returns the endpoint of Service.ListPayments for the caller.
func MakeListPaymentsEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		userID, err := viewer(ctx)
		if err != nil {
			return nil, err
		}
		req := request.(listPaymentsRequest)
		if err := req.validate(); err != nil {
			return listPaymentsResponse{Err: err}, nil
		}
		p, err := s.ListPayments(ctx, PaymentQuery{UserID: userID, OrderID: req.OrderID, Page: req.Page, PageSize: req.PageSize})
		return listPaymentsResponse{Items: p.Items, Page: p.Page, PageSize: p.PageSize, Total: p.Total, Err: err}, nil
	}
}

// MakeRefundEndpoint returns the endpoint of Service.Refund.
func MakeRefundEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(refundRequest)
		if err := req.validate(); err != nil {
			return refundResponse{Err: err}, nil
		}
		var amount money.Amount
		if req.Amount != nil {
			amount, _ = money.Parse(*req.Amount)
		}
		res, err := s.Refund(ctx, RefundRequest{
			PaymentID: req.PaymentID, Amount: amount, Reason: strings.TrimSpace(req.Reason), IdempotencyKey: req.IdempotencyKey,
		})
		return refundResponse{Refund: res.Refund, Payment: res.Payment, Replayed: res.Replayed, Err: err}, nil
	}
}

// MakeHandleWebhookEndpoint returns the endpoint of Service.HandleWebhook.
func MakeHandleWebhookEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		_, err := s.HandleWebhook(ctx, request.(WebhookDelivery))
		return webhookResponse{Received: err == nil, Err: err}, nil
	}
}

// Service implementation, so Endpoints doubles as a client.

func (e Endpoints) Charge(ctx context.Context, r ChargeRequest) (Payment, bool, error) {
	resp, err := e.ChargeEndpoint(ctx, chargeRequest{
		OrderID: r.OrderID, UserID: r.UserID, Amount: r.Amount.String(), Currency: r.Currency, Card: r.Card,
	})
	if err != nil {
		return Payment{}, false, err
	}
	out := resp.(chargeResponse)
	return out.Payment, out.Created, out.Err
}

func (e Endpoints) GetPayment(ctx context.Context, _ string, id string) (Payment, error) {
	resp, err := e.GetPaymentEndpoint(ctx, getPaymentRequest{ID: id})
	if err != nil {
		return Payment{}, err
	}
	out := resp.(paymentResponse)
	return out.Payment, out.Err
}

// PaymentByOrder finds the order's payment through the list route (an order
// has at most one) and reads it in full, refunds included.
func (e Endpoints) PaymentByOrder(ctx context.Context, userID, orderID string) (Payment, error) {
	if _, ok := parseID(orderID); !ok {
		return Payment{}, ErrNotFound
	}
	page, err := e.ListPayments(ctx, PaymentQuery{OrderID: orderID, Page: 1, PageSize: 1})
	if err != nil {
		return Payment{}, err
	}
	if len(page.Items) == 0 {
		return Payment{}, ErrNotFound
	}
	return e.GetPayment(ctx, userID, page.Items[0].ID)
}

func (e Endpoints) ListPayments(ctx context.Context, q PaymentQuery) (PaymentPage, error) {
	resp, err := e.ListPaymentsEndpoint(ctx, listPaymentsRequest{OrderID: q.OrderID, Page: q.Page, PageSize: q.PageSize})
	if err != nil {
		return PaymentPage{}, err
	}
	out := resp.(listPaymentsResponse)
	return PaymentPage{Items: out.Items, Page: out.Page, PageSize: out.PageSize, Total: out.Total}, out.Err
}

func (e Endpoints) Refund(ctx context.Context, r RefundRequest) (RefundResult, error) {
	req := refundRequest{PaymentID: r.PaymentID, Reason: r.Reason, IdempotencyKey: r.IdempotencyKey}
	if r.Amount != 0 {
		a := r.Amount.String()
		req.Amount = &a
	}
	resp, err := e.RefundEndpoint(ctx, req)
	if err != nil {
		return RefundResult{}, err
	}
	out := resp.(refundResponse)
	return RefundResult{Refund: out.Refund, Payment: out.Payment, Replayed: out.Replayed}, out.Err
}

// HandleWebhook forwards a delivery as it came; only whether it was accepted
// travels back.
func (e Endpoints) HandleWebhook(ctx context.Context, d WebhookDelivery) (Outcome, error) {
	resp, err := e.HandleWebhookEndpoint(ctx, d)
	if err != nil {
		return Outcome{}, err
	}
	return Outcome{}, resp.(webhookResponse).Err
}

// ErrNotRemote is returned by Endpoints for methods that have no route.
var ErrNotRemote = errors.New("payment: this method is not available over HTTP")

// CancelOrderPayment is driven by the order.cancelled event, not by a call.
func (e Endpoints) CancelOrderPayment(context.Context, string) (Outcome, error) {
	return Outcome{}, ErrNotRemote
}

// Requests. Each validates itself; a failure is a 422 naming every bad field
// (and never echoing a card number).

// Limits of the columns the requests end up in.
const (
	maxAmount       = money.Amount(99_999_999_99) // NUMERIC(10,2)
	maxReasonChars  = 500
	maxIdemKeyBytes = 255
	defaultCurrency = "USD"
)

type chargeRequest struct {
	OrderID  string      `json:"order_id"`
	UserID   string      `json:"user_id"`
	Amount   string      `json:"amount"` // parsed in validate, so a bad one is a 422 naming the field
	Currency string      `json:"currency,omitempty"`
	Card     CardDetails `json:"card"`
}

func (r chargeRequest) currency() string {
	if r.Currency == "" {
		return defaultCurrency
	}
	return r.Currency
}

var currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)

func (r chargeRequest) validate(now time.Time) error {
	p := problems{}
	p.uuid("order_id", r.OrderID)
	p.uuid("user_id", r.UserID)
	p.amount("amount", r.Amount)
	if !currencyCode.MatchString(r.currency()) {
		p["currency"] = "must be an ISO 4217 code like USD"
	}
	p.card("card", r.Card, now)
	return p.err()
}

type getPaymentRequest struct {
	ID string
}

// Page size bounds of the payment list.
const (
	maxPageSize = 100
)

type listPaymentsRequest struct {
	OrderID  string
	Page     int
	PageSize int
}

func (r listPaymentsRequest) validate() error {
	p := problems{}
	if r.OrderID != "" {
		p.uuid("order_id", r.OrderID)
	}
	if r.Page < 1 {
		p["page"] = "must be at least 1"
	}
	if r.PageSize < 1 || r.PageSize > maxPageSize {
		p["page_size"] = "must be between 1 and 100"
	}
	return p.err()
}

type refundRequest struct {
	PaymentID      string  `json:"-"` // from the path
	IdempotencyKey string  `json:"-"` // from the Idempotency-Key header
	Amount         *string `json:"amount,omitempty"`
	Reason         string  `json:"reason,omitempty"`
}

func (r refundRequest) validate() error {
	p := problems{}
	if r.Amount != nil {
		p.amount("amount", *r.Amount)
	}
	p.text("reason", r.Reason, maxReasonChars)
	if k := r.IdempotencyKey; k != "" && (len(k) > maxIdemKeyBytes || !printableASCII(k)) {
		p["Idempotency-Key"] = "must be 1 to 255 printable ASCII characters"
	}
	return p.err()
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// Responses. Business errors travel in Err (endpoint.Failer), so a client's
// circuit breaker never counts a 404 as a failure.

type chargeResponse struct {
	Payment Payment `json:"payment"`
	Created bool    `json:"-"`
	Err     error   `json:"-"`
}

func (r chargeResponse) Failed() error { return r.Err }

// StatusCode is 202 for a new payment (the outcome comes later), 200 for the
// order's existing one.
func (r chargeResponse) StatusCode() int {
	if r.Created {
		return http.StatusAccepted
	}
	return http.StatusOK
}

func (r chargeResponse) Headers() http.Header {
	return http.Header{"Location": {"/api/v1/payments/" + r.Payment.ID}}
}

type paymentResponse struct {
	Payment Payment `json:"payment"`
	Err     error   `json:"-"`
}

func (r paymentResponse) Failed() error { return r.Err }

type listPaymentsResponse struct {
	Items    []Payment `json:"items"`
	Page     int       `json:"page"`
	PageSize int       `json:"page_size"`
	Total    int       `json:"total"`
	Err      error     `json:"-"`
}

func (r listPaymentsResponse) Failed() error { return r.Err }

type refundResponse struct {
	Refund   Refund  `json:"refund"`
	Payment  Payment `json:"payment"` // after the refund
	Replayed bool    `json:"-"`
	Err      error   `json:"-"`
}

func (r refundResponse) Failed() error   { return r.Err }
func (r refundResponse) StatusCode() int { return http.StatusCreated }

// Headers tells a retried request that it got the first one's answer, as
// processors' APIs do.
func (r refundResponse) Headers() http.Header {
	if r.Replayed {
		return http.Header{"Idempotent-Replayed": {"true"}}
	}
	return nil
}

type webhookResponse struct {
	Received bool  `json:"received"`
	Err      error `json:"-"`
}

func (r webhookResponse) Failed() error { return r.Err }

// Validation.

// problems collects field → reason; err turns them into one 422.
type problems map[string]string

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return httpkit.Invalid(p)
}

func (p problems) uuid(field, v string) {
	if _, ok := parseID(v); !ok {
		p[field] = "must be a UUID"
	}
}

// amount checks a positive decimal amount with at most two places that fits
// the NUMERIC(10,2) columns.
func (p problems) amount(field, v string) {
	a, err := money.Parse(v)
	switch {
	case err != nil:
		p[field] = `must be a decimal string with at most two places, like "19.99"`
	case a <= 0:
		p[field] = "must be greater than 0"
	case a > maxAmount:
		p[field] = "must be at most 99999999.99"
	}
}

func (p problems) text(field, v string, max int) {
	switch {
	case !utf8.ValidString(v):
		p[field] = "must be valid UTF-8"
	case utf8.RuneCountInString(strings.TrimSpace(v)) > max:
		p[field] = "must be at most " + strconv.Itoa(max) + " characters"
	case strings.ContainsRune(v, 0):
		p[field] = "must not contain NUL characters" // PostgreSQL rejects them with a 500-worthy error
	}
}

// card checks what a processor would reject before charging. A card is
// valid through the last day of its expiry month.
func (p problems) card(field string, c CardDetails, now time.Time) {
	switch n := len(c.Number); {
	case n < 12 || n > 19 || !allDigits(c.Number):
		p[field+".number"] = "must be 12 to 19 digits"
	case !LuhnValid(c.Number):
		p[field+".number"] = "is not a valid card number"
	}
	if c.ExpMonth < 1 || c.ExpMonth > 12 {
		p[field+".exp_month"] = "must be between 1 and 12"
	}
	year, month := now.Year(), int(now.Month())
	switch {
	case c.ExpYear < year || c.ExpYear > year+30:
		p[field+".exp_year"] = "must be this year or one of the next 30"
	case c.ExpYear == year && c.ExpMonth >= 1 && c.ExpMonth < month:
		p[field+".exp_month"] = "the card has expired"
	}
	if n := len(c.CVC); n < 3 || n > 4 || !allDigits(c.CVC) {
		p[field+".cvc"] = "must be 3 or 4 digits"
	}
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
