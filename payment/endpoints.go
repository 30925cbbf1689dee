package payment

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/go-kit/kit/endpoint"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/endpointkit"
	"github.com/mercato-dev/mercato/shared/money"
	"github.com/mercato-dev/mercato/shared/validate"
)

// Endpoints collects one endpoint per Service method, each with its route. On
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
// own, an admin or another service everyone's ("").
func viewer(id auth.Identity) string {
	if id.IsAdmin() || id.Role == auth.RoleService {
		return ""
	}
	return id.UserID
}

// MakeChargeEndpoint returns the endpoint of Service.Charge.
func MakeChargeEndpoint(s Service) endpoint.Endpoint {
	validate := func(r chargeRequest) error { return r.validate(time.Now()) }
	return endpointkit.Validated(validate, func(ctx context.Context, req chargeRequest) (chargeResponse, error) {
		amount, _ := money.Parse(req.Amount)
		p, created, err := s.Charge(ctx, ChargeRequest{
			OrderID: req.OrderID, UserID: req.UserID, Amount: amount, Currency: req.currency(), Card: req.Card,
		})
		return chargeResponse{Payment: p, Created: created}, err
	})
}

// MakeGetPaymentEndpoint returns the endpoint of Service.GetPayment for the caller.
func MakeGetPaymentEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.ServeCaller(func(ctx context.Context, id auth.Identity, req getPaymentRequest) (paymentResponse, error) {
		p, err := s.GetPayment(ctx, viewer(id), req.ID)
		return paymentResponse{Payment: p}, err
	})
}

// MakeListPaymentsEndpoint returns the endpoint of Service.ListPayments for the caller.
func MakeListPaymentsEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.ValidatedCaller(listPaymentsRequest.validate, func(ctx context.Context, id auth.Identity, req listPaymentsRequest) (listPaymentsResponse, error) {
		p, err := s.ListPayments(ctx, PaymentQuery{UserID: viewer(id), OrderID: req.OrderID, Page: req.Page, PageSize: req.PageSize})
		return listPaymentsResponse{Page: p}, err
	})
}

// MakeRefundEndpoint returns the endpoint of Service.Refund.
func MakeRefundEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.Validated(refundRequest.validate, func(ctx context.Context, req refundRequest) (refundResponse, error) {
		var amount money.Amount
		if req.Amount != nil {
			amount, _ = money.Parse(*req.Amount)
		}
		res, err := s.Refund(ctx, RefundRequest{
			PaymentID: req.PaymentID, Amount: amount, Reason: strings.TrimSpace(req.Reason), IdempotencyKey: req.IdempotencyKey,
		})
		return refundResponse{Refund: res.Refund, Payment: res.Payment, Replayed: res.Replayed}, err
	})
}

// MakeHandleWebhookEndpoint returns the endpoint of Service.HandleWebhook.
func MakeHandleWebhookEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.Serve(func(ctx context.Context, d WebhookDelivery) (webhookResponse, error) {
		_, err := s.HandleWebhook(ctx, d)
		return webhookResponse{Received: err == nil}, err
	})
}

// Service implementation, so Endpoints doubles as a client.

func (e Endpoints) Charge(ctx context.Context, r ChargeRequest) (Payment, bool, error) {
	out, err := endpointkit.Call[chargeResponse](ctx, e.ChargeEndpoint, chargeRequest{
		OrderID: r.OrderID, UserID: r.UserID, Amount: r.Amount.String(), Currency: r.Currency, Card: r.Card,
	})
	return out.Payment, out.Created, err
}

func (e Endpoints) GetPayment(ctx context.Context, _ string, id string) (Payment, error) {
	out, err := endpointkit.Call[paymentResponse](ctx, e.GetPaymentEndpoint, getPaymentRequest{ID: id})
	return out.Payment, err
}

// PaymentByOrder finds the order's payment through the list route (an order
// has at most one) and reads it in full, refunds included.
func (e Endpoints) PaymentByOrder(ctx context.Context, userID, orderID string) (Payment, error) {
	if _, ok := validate.ParseUUID(orderID); !ok {
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
	out, err := endpointkit.Call[listPaymentsResponse](ctx, e.ListPaymentsEndpoint, listPaymentsRequest{OrderID: q.OrderID, Page: q.Page, PageSize: q.PageSize})
	return out.Page, err
}

func (e Endpoints) Refund(ctx context.Context, r RefundRequest) (RefundResult, error) {
	req := refundRequest{PaymentID: r.PaymentID, Reason: r.Reason, IdempotencyKey: r.IdempotencyKey}
	if r.Amount != 0 {
		a := r.Amount.String()
		req.Amount = &a
	}
	out, err := endpointkit.Call[refundResponse](ctx, e.RefundEndpoint, req)
	return RefundResult{Refund: out.Refund, Payment: out.Payment, Replayed: out.Replayed}, err
}

// HandleWebhook forwards a delivery as it came; only whether it was accepted
// travels back.
func (e Endpoints) HandleWebhook(ctx context.Context, d WebhookDelivery) (Outcome, error) {
	_, err := endpointkit.Call[webhookResponse](ctx, e.HandleWebhookEndpoint, d)
	return Outcome{}, err
}

// Requests. Each validates itself; a failure is a 422 naming every bad field
// (and never echoing a card number).

// Limits of the columns the requests end up in.
const (
	maxReasonChars  = 500
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
	p := validate.Problems{}
	p.UUID("order_id", r.OrderID)
	p.UUID("user_id", r.UserID)
	p.Amount("amount", r.Amount)
	if !currencyCode.MatchString(r.currency()) {
		p["currency"] = "must be an ISO 4217 code like USD"
	}
	p.Card("card", validate.Card(r.Card), now)
	return p.Err()
}

type getPaymentRequest struct {
	ID string
}

type listPaymentsRequest struct {
	OrderID  string
	Page     int
	PageSize int
}

func (r listPaymentsRequest) validate() error {
	p := validate.Problems{}
	if r.OrderID != "" {
		p.UUID("order_id", r.OrderID)
	}
	p.Page(r.Page, r.PageSize)
	return p.Err()
}

type refundRequest struct {
	PaymentID      string  `json:"-"` // from the path
	IdempotencyKey string  `json:"-"` // from the Idempotency-Key header
	Amount         *string `json:"amount,omitempty"`
	Reason         string  `json:"reason,omitempty"`
}

func (r refundRequest) validate() error {
	p := validate.Problems{}
	if r.Amount != nil {
		p.Amount("amount", *r.Amount)
	}
	p.Text("reason", r.Reason, maxReasonChars, false)
	p.IdempotencyKey("Idempotency-Key", r.IdempotencyKey)
	return p.Err()
}

// Responses. Business errors travel in the embedded endpointkit.Failure
// (endpoint.Failer), so a client's circuit breaker never counts a 404 as a
// failure.

type chargeResponse struct {
	Payment Payment `json:"payment"`
	Created bool    `json:"-"`
	endpointkit.Failure
}

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
	endpointkit.Failure
}

type listPaymentsResponse = endpointkit.PageResponse[Payment]

type refundResponse struct {
	Refund   Refund  `json:"refund"`
	Payment  Payment `json:"payment"` // after the refund
	Replayed bool    `json:"-"`
	endpointkit.Failure
}

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
	Received bool `json:"received"`
	endpointkit.Failure
}
