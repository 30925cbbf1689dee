package order

import (
	"context"
	"net/http"

	"github.com/go-kit/log"
	"github.com/gorilla/mux"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/httpkit"
)

// errorMappings is the one table from domain errors to HTTP: the error
// encoder answers with it, and the middlewares tell business errors (and a
// checkout's result label) by it.
var errorMappings = []httpkit.ErrorMapping{
	{Err: ErrNotFound, Status: http.StatusNotFound, Code: "not_found"},
	{Err: ErrInvalidTransition, Status: http.StatusConflict, Code: "invalid_transition"},
	{Err: ErrIdempotencyMismatch, Status: http.StatusConflict, Code: "idempotency_mismatch"},
	{Err: ErrIdempotencyInProgress, Status: http.StatusConflict, Code: "idempotency_in_progress"},
	{Err: ErrOutOfStock, Status: http.StatusConflict, Code: "out_of_stock"},
	{Err: ErrUnknownProduct, Status: http.StatusUnprocessableEntity, Code: "unknown_product"},
	{Err: ErrReservationMismatch, Status: http.StatusConflict, Code: "reservation_mismatch"},
	{Err: ErrReservationReleased, Status: http.StatusConflict, Code: "reservation_released"},
	{Err: ErrPaymentRejected, Status: http.StatusUnprocessableEntity, Code: "payment_rejected"},
	{Err: ErrMixedCurrencies, Status: http.StatusUnprocessableEntity, Code: "mixed_currencies"},
	{Err: ErrTotalTooLarge, Status: http.StatusUnprocessableEntity, Code: "order_total_too_large"},
	{Err: ErrTooManyStreams, Status: http.StatusTooManyRequests, Code: "too_many_streams"},
	{Err: ErrUpstreamUnavailable, Status: http.StatusServiceUnavailable, Code: "service_unavailable",
		Message: ErrUpstreamUnavailable.Error()},
}

// errorResponse is the error as the client sees it: status, code, message
// and the details of a line or a refused card (ErrorDetails of *ItemError,
// *RejectedError, and of the *Refusal an Idempotency-Key replays), so a
// repeat is shown byte for byte as the first answer was.
func errorResponse(err error) *httpkit.Error {
	return httpkit.ToError(context.Background(), log.NewNopLogger(), err, errorMappings...)
}

// isBusinessError reports whether err is an expected answer (a domain error
// or a client mistake, answered with a 4xx) rather than a failure worth an
// error-level log line. The middleware asks it here, where the error table is.
func isBusinessError(err error) bool { return httpkit.IsClientError(err, errorMappings...) }

// checkoutResult is the result label of order_checkouts_total for a
// checkout that ended with err: "success", the error code of a business
// error as the client sees it, or "error" for a failure.
func checkoutResult(err error) string {
	switch {
	case err == nil:
		return "success"
	case isBusinessError(err):
		return errorResponse(err).Code
	}
	return "error"
}

// MakeHTTPHandler adds the order service's routes to r.
func MakeHTTPHandler(r *mux.Router, e Endpoints, logger log.Logger) {
	routes := httpkit.NewRoutes(r, httpkit.APIPrefix, logger, errorMappings, auth.HTTPToContext)

	routes.Handle(http.MethodPost, "/orders", e.PlaceOrderEndpoint, decodePlaceOrderRequest)
	routes.Handle(http.MethodGet, "/orders", e.ListOrdersEndpoint, decodeListOrdersRequest)
	routes.Handle(http.MethodGet, "/orders/{id}", e.GetOrderEndpoint, httpkit.DecodeIDRequest[getOrderRequest])
	routes.Handle(http.MethodPost, "/orders/{id}/cancel", e.CancelOrderEndpoint, httpkit.DecodeRequest(decodeCancelOrderRequest))
	routes.Handle(http.MethodPost, "/orders/{id}/status", e.SetStatusEndpoint, httpkit.DecodeRequest(decodeSetStatusRequest))
}

// Server decoders.

func decodePlaceOrderRequest(_ context.Context, r *http.Request) (any, error) {
	var req placeOrderRequest
	if err := httpkit.DecodeJSON(r, &req); err != nil {
		return nil, err
	}
	req.IdempotencyKey = r.Header.Get(discovery.IdempotencyKeyHeader)
	return req, nil
}

// decodeCancelOrderRequest takes an optional body: {"reason": "..."} or none.
func decodeCancelOrderRequest(r *http.Request, req *cancelOrderRequest) error {
	return httpkit.PathAndBody(r, "id", &req.ID, req, httpkit.DecodeOptionalJSON)
}

func decodeSetStatusRequest(r *http.Request, req *setStatusRequest) error {
	return httpkit.PathAndBody(r, "id", &req.ID, req, httpkit.DecodeJSON)
}

// decodeListOrdersRequest reads ?page=&page_size=&status=, defaulting to the
// first page of 20; the endpoint checks the bounds.
func decodeListOrdersRequest(_ context.Context, r *http.Request) (any, error) {
	q := r.URL.Query()
	page, size, err := httpkit.DecodePage(q)
	if err != nil {
		return nil, err
	}
	return listOrdersRequest{Page: page, PageSize: size, Status: Status(q.Get("status"))}, nil
}
