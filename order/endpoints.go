package order

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-kit/kit/endpoint"
	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/httpkit"
)

// Endpoints collects one endpoint per Service method. On the server they are
// built by MakeServerEndpoints around a Service; in a client (NewClient) they
// call a remote instance. Either way Endpoints is itself a Service.
//
// As a client, every method acts for the user whose bearer token ctx carries
// (auth.ContextToHTTP forwards it); the userID and Caller arguments are not
// sent, because the server takes the caller's identity from the token only.
type Endpoints struct {
	PlaceOrderEndpoint  endpoint.Endpoint
	ListOrdersEndpoint  endpoint.Endpoint
	GetOrderEndpoint    endpoint.Endpoint
	CancelOrderEndpoint endpoint.Endpoint
	SetStatusEndpoint   endpoint.Endpoint
}

var _ Service = Endpoints{}

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

// caller is the verified user behind a request; auth.Authenticate has put
// it there, so its absence is a wiring mistake answered with 401.
func caller(ctx context.Context) (Caller, error) {
	id, ok := auth.FromContext(ctx)
	if !ok {
		return Caller{}, auth.ErrUnauthenticated
	}
	return Caller{UserID: id.UserID, Admin: id.IsAdmin()}, nil
}

// MakePlaceOrderEndpoint returns the endpoint of Service.PlaceOrder for the caller.
func MakePlaceOrderEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		c, err := caller(ctx)
		if err != nil {
			return nil, err
		}
		req := request.(placeOrderRequest)
		if err := req.validate(time.Now()); err != nil {
			return orderResponse{Err: err, Created: true}, nil
		}
		o, err := s.PlaceOrder(ctx, c.UserID, req.IdempotencyKey, req.checkout())
		return orderResponse{Order: o, Err: err, Created: true}, nil
	}
}

// MakeListOrdersEndpoint returns the endpoint of Service.ListOrders for the caller.
func MakeListOrdersEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		c, err := caller(ctx)
		if err != nil {
			return nil, err
		}
		req := request.(listOrdersRequest)
		if err := req.validate(); err != nil {
			return listOrdersResponse{Err: err}, nil
		}
		p, err := s.ListOrders(ctx, c, ListFilter{Status: req.Status, Page: req.Page, PageSize: req.PageSize})
		return listOrdersResponse{Items: p.Items, Page: p.Page, PageSize: p.PageSize, Total: p.Total, Err: err}, nil
	}
}

// MakeGetOrderEndpoint returns the endpoint of Service.GetOrder for the caller.
func MakeGetOrderEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		c, err := caller(ctx)
		if err != nil {
			return nil, err
		}
		o, err := s.GetOrder(ctx, c, request.(getOrderRequest).ID)
		return orderResponse{Order: o, Err: err}, nil
	}
}

// MakeCancelOrderEndpoint returns the endpoint of Service.CancelOrder for the caller.
func MakeCancelOrderEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		c, err := caller(ctx)
		if err != nil {
			return nil, err
		}
		req := request.(cancelOrderRequest)
		if err := req.validate(); err != nil {
			return orderResponse{Err: err}, nil
		}
		o, err := s.CancelOrder(ctx, c, req.ID, strings.TrimSpace(req.Reason))
		return orderResponse{Order: o, Err: err}, nil
	}
}

// MakeSetStatusEndpoint returns the endpoint of Service.SetStatus.
func MakeSetStatusEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(setStatusRequest)
		if err := req.validate(); err != nil {
			return orderResponse{Err: err}, nil
		}
		o, err := s.SetStatus(ctx, req.ID, req.Status)
		return orderResponse{Order: o, Err: err}, nil
	}
}

// Service implementation, so Endpoints doubles as a client.

func (e Endpoints) PlaceOrder(ctx context.Context, _ string, idempotencyKey string, c Checkout) (Order, error) {
	req := placeOrderRequest{
		IdempotencyKey: idempotencyKey, Items: c.Items, ShippingAddress: c.ShippingAddress,
		BillingAddress: c.BillingAddress, Payment: paymentRequest{Method: "card", Card: c.Card},
	}
	resp, err := e.PlaceOrderEndpoint(ctx, req)
	if err != nil {
		return Order{}, err
	}
	out := resp.(orderResponse)
	return out.Order, out.Err
}

func (e Endpoints) ListOrders(ctx context.Context, _ Caller, f ListFilter) (OrderPage, error) {
	resp, err := e.ListOrdersEndpoint(ctx, listOrdersRequest{Status: f.Status, Page: f.Page, PageSize: f.PageSize})
	if err != nil {
		return OrderPage{}, err
	}
	out := resp.(listOrdersResponse)
	return OrderPage{Items: out.Items, Page: out.Page, PageSize: out.PageSize, Total: out.Total}, out.Err
}

func (e Endpoints) GetOrder(ctx context.Context, _ Caller, id string) (Order, error) {
	resp, err := e.GetOrderEndpoint(ctx, getOrderRequest{ID: id})
	if err != nil {
		return Order{}, err
	}
	out := resp.(orderResponse)
	return out.Order, out.Err
}

func (e Endpoints) CancelOrder(ctx context.Context, _ Caller, id, reason string) (Order, error) {
	resp, err := e.CancelOrderEndpoint(ctx, cancelOrderRequest{ID: id, Reason: reason})
	if err != nil {
		return Order{}, err
	}
	out := resp.(orderResponse)
	return out.Order, out.Err
}

func (e Endpoints) SetStatus(ctx context.Context, id string, status Status) (Order, error) {
	resp, err := e.SetStatusEndpoint(ctx, setStatusRequest{ID: id, Status: status})
	if err != nil {
		return Order{}, err
	}
	out := resp.(orderResponse)
	return out.Order, out.Err
}

// Requests. Each validates itself; a failure is a 422 naming every bad field.

// Bounds of a checkout. They keep one order within what one charge may
// carry and one request within a sensible size.
const (
	maxLines          = 50
	maxQuantity       = 1000
	maxIdempotencyKey = 255
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
	p := problems{}
	switch {
	case len(r.Items) == 0:
		p["items"] = "at least one item is required"
	case len(r.Items) > maxLines:
		p["items"] = "at most " + strconv.Itoa(maxLines) + " lines per order"
	}
	seen := map[string]bool{}
	for i, it := range r.Items {
		field := "items[" + strconv.Itoa(i) + "]"
		if _, err := uuid.Parse(it.ProductID); err != nil {
			p[field+".product_id"] = "must be a UUID"
		}
		if it.VariantID != nil {
			if _, err := uuid.Parse(*it.VariantID); err != nil {
				p[field+".variant_id"] = "must be a UUID or absent"
			}
		}
		if it.Quantity < 1 || it.Quantity > maxQuantity {
			p[field+".quantity"] = "must be between 1 and " + strconv.Itoa(maxQuantity)
		}
		// One line per product (or variant): two lines of the same thing
		// would be one reservation line asked for twice.
		key := strings.ToLower(lineKey(it.ProductID, it.VariantID))
		if seen[key] {
			p[field] = "repeats an earlier line's product and variant; combine the quantities"
		}
		seen[key] = true
	}
	p.address("shipping_address", r.ShippingAddress)
	if r.BillingAddress != nil {
		p.address("billing_address", *r.BillingAddress)
	}
	if r.Payment.Method != "card" {
		p["payment.method"] = `must be "card"`
	}
	p.card("payment.card", r.Payment.Card, now)
	if k := r.IdempotencyKey; k != "" && (len(k) > maxIdempotencyKey || !printableASCII(k)) {
		p["Idempotency-Key"] = "must be 1 to 255 printable ASCII characters"
	}
	return p.err()
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

// Page size bounds of the order list.
const (
	maxPageSize = 100
)

type listOrdersRequest struct {
	Status   Status
	Page     int
	PageSize int
}

func (r listOrdersRequest) validate() error {
	p := problems{}
	if r.Page < 1 {
		p["page"] = "must be at least 1"
	}
	if r.PageSize < 1 || r.PageSize > maxPageSize {
		p["page_size"] = "must be between 1 and 100"
	}
	if r.Status != "" && !r.Status.Valid() {
		p["status"] = "must be one of pending, confirmed, shipped, delivered, cancelled, refunded"
	}
	return p.err()
}

type getOrderRequest struct {
	ID string
}

type cancelOrderRequest struct {
	ID     string `json:"-"` // from the path
	Reason string `json:"reason,omitempty"`
}

func (r cancelOrderRequest) validate() error {
	p := problems{}
	p.text("reason", r.Reason, 500, false)
	return p.err()
}

type setStatusRequest struct {
	ID     string `json:"-"` // from the path
	Status Status `json:"status"`
}

func (r setStatusRequest) validate() error {
	p := problems{}
	if r.Status != StatusShipped && r.Status != StatusDelivered {
		p["status"] = "must be shipped or delivered"
	}
	return p.err()
}

// Responses. Business errors travel in Err (endpoint.Failer), so a client's
// circuit breaker never counts a 404 as a failure.

type orderResponse struct {
	Order   Order `json:"order"`
	Err     error `json:"-"`
	Created bool  `json:"-"` // answer 201 with a Location
}

func (r orderResponse) Failed() error { return r.Err }

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
	return http.Header{"Location": {apiPrefix + "/orders/" + r.Order.ID}}
}

type listOrdersResponse struct {
	Items    []Order `json:"items"`
	Page     int     `json:"page"`
	PageSize int     `json:"page_size"`
	Total    int     `json:"total"`
	Err      error   `json:"-"`
}

func (r listOrdersResponse) Failed() error { return r.Err }

// Validation.

// problems collects field → reason; err turns them into one 422.
type problems map[string]string

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return httpkit.Invalid(p)
}

// text checks a free-text field against its length (in characters), after
// trimming as the service stores it.
func (p problems) text(field, v string, max int, required bool) {
	v = strings.TrimSpace(v)
	switch n := utf8.RuneCountInString(v); {
	case !utf8.ValidString(v):
		p[field] = "must be valid UTF-8"
	case required && n == 0:
		p[field] = "is required"
	case n > max:
		p[field] = "must be at most " + strconv.Itoa(max) + " characters"
	case strings.ContainsRune(v, 0):
		p[field] = "must not contain NUL characters" // PostgreSQL rejects them in JSONB and text
	}
}

// address checks an address with the user service's field limits.
func (p problems) address(field string, a Address) {
	p.text(field+".street", a.Street, 255, true)
	p.text(field+".city", a.City, 100, true)
	p.text(field+".state", a.State, 100, true)
	p.text(field+".zip_code", a.ZipCode, 20, true)
	p.text(field+".country", a.Country, 100, true)
}

// card checks what can be checked of a card without the payment service:
// its shape, its Luhn checksum and that it has not expired. The messages
// never repeat the number.
func (p problems) card(field string, c Card, now time.Time) {
	if n := len(c.Number); n < 12 || n > 19 || !digits(c.Number) || !luhn(c.Number) {
		p[field+".number"] = "must be a valid card number of 12 to 19 digits"
	}
	if c.ExpMonth < 1 || c.ExpMonth > 12 {
		p[field+".exp_month"] = "must be between 1 and 12"
	}
	now = now.UTC()
	switch {
	case c.ExpYear < 2000 || c.ExpYear > now.Year()+50:
		p[field+".exp_year"] = "must be a four-digit year"
	case c.ExpMonth >= 1 && c.ExpMonth <= 12 &&
		(c.ExpYear < now.Year() || (c.ExpYear == now.Year() && c.ExpMonth < int(now.Month()))):
		p[field+".exp_year"] = "the card has expired"
	}
	if n := len(c.CVC); n < 3 || n > 4 || !digits(c.CVC) {
		p[field+".cvc"] = "must be 3 or 4 digits"
	}
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// luhn reports whether a string of digits passes the Luhn checksum every
// card number carries, which catches a mistyped digit before a charge.
func luhn(number string) bool {
	sum := 0
	double := false
	for i := len(number) - 1; i >= 0; i-- {
		d := int(number[i] - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' {
			return false
		}
	}
	return true
}
