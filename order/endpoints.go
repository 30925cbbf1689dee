package order

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/kit/endpoint"
	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/endpointkit"
	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/validate"
)

// Endpoints collects one endpoint per Service method, built by
// MakeServerEndpoints around a Service. Unlike user's, product's and
// payment's, they do not double as a client: only the gateway calls the order
// service, and it proxies HTTP, so a client would be code nothing runs.
type Endpoints struct {
	PlaceOrderEndpoint  endpoint.Endpoint
	ListOrdersEndpoint  endpoint.Endpoint
	GetOrderEndpoint    endpoint.Endpoint
	CancelOrderEndpoint endpoint.Endpoint
	SetStatusEndpoint   endpoint.Endpoint
}

// MakeServerEndpoints returns the endpoints of s, with authentication and
// authorisation applied here and nowhere else. Orders belong to people:
// service tokens are refused.
func MakeServerEndpoints(s Service, tokens *auth.Tokens) Endpoints {
	user := endpoint.Chain(auth.Authenticate(tokens), auth.RequireRole(auth.RoleCustomer, auth.RoleAdmin))
	admin := endpoint.Chain(auth.Authenticate(tokens), auth.RequireRole(auth.RoleAdmin))
	return Endpoints{
		PlaceOrderEndpoint:  user(MakePlaceOrderEndpoint(s)),
		ListOrdersEndpoint:  user(MakeListOrdersEndpoint(s)),
		GetOrderEndpoint:    user(MakeGetOrderEndpoint(s)),
		CancelOrderEndpoint: user(MakeCancelOrderEndpoint(s)),
		SetStatusEndpoint:   admin(MakeSetStatusEndpoint(s)),
	}
}

// caller is the verified user behind a request, in the service's terms.
func caller(id auth.Identity) Caller { return Caller{UserID: id.UserID, Admin: id.IsAdmin()} }

// MakePlaceOrderEndpoint returns the endpoint of Service.PlaceOrder for the caller.
func MakePlaceOrderEndpoint(s Service) endpoint.Endpoint {
	validate := func(r placeOrderRequest) error { return r.validate(time.Now()) }
	return endpointkit.ValidatedCaller(validate, func(ctx context.Context, id auth.Identity, req placeOrderRequest) (orderResponse, error) {
		o, err := s.PlaceOrder(ctx, id.UserID, req.IdempotencyKey, req.checkout())
		return orderResponse{Order: o, Created: true}, err
	})
}

// MakeListOrdersEndpoint returns the endpoint of Service.ListOrders for the caller.
func MakeListOrdersEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.ValidatedCaller(listOrdersRequest.validate, func(ctx context.Context, id auth.Identity, req listOrdersRequest) (listOrdersResponse, error) {
		p, err := s.ListOrders(ctx, caller(id), ListFilter(req))
		return listOrdersResponse{Page: p}, err
	})
}

// MakeGetOrderEndpoint returns the endpoint of Service.GetOrder for the caller.
func MakeGetOrderEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.ServeCaller(func(ctx context.Context, id auth.Identity, req getOrderRequest) (orderResponse, error) {
		o, err := s.GetOrder(ctx, caller(id), req.ID)
		return orderResponse{Order: o}, err
	})
}

// MakeCancelOrderEndpoint returns the endpoint of Service.CancelOrder for the caller.
func MakeCancelOrderEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.ValidatedCaller(cancelOrderRequest.validate, func(ctx context.Context, id auth.Identity, req cancelOrderRequest) (orderResponse, error) {
		o, err := s.CancelOrder(ctx, caller(id), req.ID, strings.TrimSpace(req.Reason))
		return orderResponse{Order: o}, err
	})
}

// MakeSetStatusEndpoint returns the endpoint of Service.SetStatus.
func MakeSetStatusEndpoint(s Service) endpoint.Endpoint {
	return endpointkit.Validated(setStatusRequest.validate, func(ctx context.Context, req setStatusRequest) (orderResponse, error) {
		o, err := s.SetStatus(ctx, req.ID, req.Status)
		return orderResponse{Order: o}, err
	})
}

// Requests. Each validates itself; a failure is a 422 naming every bad field.

// Bounds of a checkout. They keep one order within what one charge may
// carry and one request within a sensible size.
const (
	maxLines    = 50
	maxQuantity = 1000
)

type placeOrderRequest struct {
	IdempotencyKey  string         `json:"-"` // from the Idempotency-Key header
	Items           []LineRequest  `json:"items"`
	ShippingAddress Address        `json:"shipping_address"`
	BillingAddress  *Address       `json:"billing_address,omitempty"`
	Payment         paymentRequest `json:"payment"`
}

type paymentRequest struct {
	Method string `json:"method"`
	Card   Card   `json:"card"`
}

func (r placeOrderRequest) validate(now time.Time) error {
	p := validate.Problems{}
	switch {
	case len(r.Items) == 0:
		p["items"] = "at least one item is required"
	case len(r.Items) > maxLines:
		p["items"] = "at most " + strconv.Itoa(maxLines) + " lines per order"
	}
	seen := map[string]bool{}
	for i, it := range r.Items {
		field := "items[" + strconv.Itoa(i) + "]"
		p.Line(field, it.ProductID, it.VariantID, it.Quantity, maxQuantity)
		// One line per product (or variant): two lines of the same thing
		// would be one reservation line asked for twice.
		key := strings.ToLower(lineKey(it.ProductID, it.VariantID))
		if seen[key] {
			p[field] = "repeats an earlier line's product and variant; combine the quantities"
		}
		seen[key] = true
	}
	checkAddress(p, "shipping_address", r.ShippingAddress)
	if r.BillingAddress != nil {
		checkAddress(p, "billing_address", *r.BillingAddress)
	}
	if r.Payment.Method != "card" {
		p["payment.method"] = `must be "card"`
	}
	p.Card("payment.card", validate.Card(r.Payment.Card), now)
	p.IdempotencyKey("Idempotency-Key", r.IdempotencyKey)
	return p.Err()
}

// checkout is the request in the service's terms, trimmed as it is stored.
func (r placeOrderRequest) checkout() Checkout {
	c := Checkout{Items: make([]LineRequest, len(r.Items)), ShippingAddress: normalizeAddress(r.ShippingAddress), Card: r.Payment.Card}
	for i, it := range r.Items {
		// Canonical UUIDs, so "ABC…" and "abc…" are the same product here
		// and at the product service.
		it.ProductID = uuid.MustParse(it.ProductID).String()
		if it.VariantID != nil {
			v := uuid.MustParse(*it.VariantID).String()
			it.VariantID = &v
		}
		c.Items[i] = it
	}
	if r.BillingAddress != nil {
		b := normalizeAddress(*r.BillingAddress)
		c.BillingAddress = &b
	}
	return c
}

type listOrdersRequest struct {
	Status   Status
	Page     int
	PageSize int
}

func (r listOrdersRequest) validate() error {
	p := validate.Problems{}
	p.Page(r.Page, r.PageSize)
	if r.Status != "" && !r.Status.Valid() {
		p["status"] = "must be one of pending, confirmed, shipped, delivered, cancelled, refunded"
	}
	return p.Err()
}

type getOrderRequest struct {
	ID string
}

type cancelOrderRequest struct {
	ID     string `json:"-"` // from the path
	Reason string `json:"reason,omitempty"`
}

func (r cancelOrderRequest) validate() error {
	p := validate.Problems{}
	p.Text("reason", r.Reason, 500, false)
	return p.Err()
}

type setStatusRequest struct {
	ID     string `json:"-"` // from the path
	Status Status `json:"status"`
}

func (r setStatusRequest) validate() error {
	p := validate.Problems{}
	if r.Status != StatusShipped && r.Status != StatusDelivered {
		p["status"] = "must be shipped or delivered"
	}
	return p.Err()
}

// Responses. Business errors travel in the embedded endpointkit.Failure
// (endpoint.Failer), so a client's circuit breaker never counts a 404 as a
// failure.

type orderResponse struct {
	Order Order `json:"order"`
	endpointkit.Failure
	Created bool `json:"-"` // answer 201 with a Location
}

func (r orderResponse) StatusCode() int {
	if r.Created {
		return http.StatusCreated
	}
	return http.StatusOK
}

func (r orderResponse) Headers() http.Header {
	if !r.Created {
		return nil
	}
	return http.Header{"Location": {httpkit.APIPrefix + "/orders/" + r.Order.ID}}
}

type listOrdersResponse = endpointkit.PageResponse[Order]

// Validation: the order service's own checks, on top of validate.Problems.

// checkAddress checks an address with the user service's field limits.
func checkAddress(p validate.Problems, field string, a Address) {
	p.Text(field+".street", a.Street, 255, true)
	p.Text(field+".city", a.City, 100, true)
	p.Text(field+".state", a.State, 100, true)
	p.Text(field+".zip_code", a.ZipCode, 20, true)
	p.Text(field+".country", a.Country, 100, true)
}
