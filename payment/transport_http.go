package payment

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"

	httptransport "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"
	"github.com/gorilla/mux"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/validate"
)

// chargePath is the internal charge route of the contract with the order
// service. The gateway never exposes /internal/… nor /api/v1/internal/….
const chargePath = "/internal/payments"

// errorMappings is the one table from domain errors to HTTP. The client uses
// it backwards, to turn an error body into the domain error again.
var errorMappings = []httpkit.ErrorMapping{
	{Err: ErrNotFound, Status: http.StatusNotFound, Code: "not_found"},
	{Err: ErrPaymentMismatch, Status: http.StatusConflict, Code: "payment_mismatch"},
	{Err: ErrRefundExceedsCaptured, Status: http.StatusConflict, Code: "refund_exceeds_captured"},
	{Err: ErrPaymentNotCaptured, Status: http.StatusConflict, Code: "payment_not_captured"},
	{Err: ErrIdempotencyMismatch, Status: http.StatusConflict, Code: "idempotency_mismatch"},
	{Err: ErrInvalidSignature, Status: http.StatusUnauthorized, Code: "invalid_signature"},
	{Err: ErrStaleWebhook, Status: http.StatusUnauthorized, Code: "stale_webhook"},
	{Err: ErrWebhookReplayed, Status: http.StatusConflict, Code: "webhook_replayed"},
	// The provider's failure is not the client's: 502, like an upstream's.
	{Err: ErrProviderFailed, Status: http.StatusBadGateway, Code: "payment_provider_error", Message: "the payment provider failed; retry later"},
}

// isBusinessError reports whether err is an expected answer (a domain error
// or a client mistake, answered with a 4xx) rather than a failure worth an
// error-level log line. The logging middleware asks it, so that the service
// layer needs to know nothing of status codes.
func isBusinessError(err error) bool { return httpkit.IsClientError(err, errorMappings...) }

// MakeHTTPHandler adds the payment service's routes to r.
func MakeHTTPHandler(r *mux.Router, e Endpoints, logger log.Logger) {
	routes := httpkit.NewRoutes(r, "", logger, errorMappings, auth.HTTPToContext)

	routes.Handle(http.MethodPost, chargePath, e.ChargeEndpoint, httpkit.DecodeJSONRequest[chargeRequest])
	// The same route where the platform's other internal routes live (the
	// user service's /api/v1/internal/users/{id}), for callers that follow
	// that convention.
	routes.Handle(http.MethodPost, httpkit.APIPrefix+chargePath, e.ChargeEndpoint, httpkit.DecodeJSONRequest[chargeRequest])
	routes.Handle(http.MethodGet, httpkit.APIPrefix+"/payments", e.ListPaymentsEndpoint, decodeListPaymentsRequest)
	routes.Handle(http.MethodGet, httpkit.APIPrefix+"/payments/{id}", e.GetPaymentEndpoint, httpkit.DecodeIDRequest[getPaymentRequest])
	routes.Handle(http.MethodPost, httpkit.APIPrefix+"/payments/{id}/refunds", e.RefundEndpoint, httpkit.DecodeRequest(decodeRefundRequest))
	routes.Handle(http.MethodPost, httpkit.APIPrefix+"/webhooks/payments/{provider}", e.HandleWebhookEndpoint, decodeWebhook)
}

// Server decoders.

// decodeListPaymentsRequest reads ?order_id=&page=&page_size=, defaulting to
// the first page of 20; the endpoint checks the values.
func decodeListPaymentsRequest(_ context.Context, r *http.Request) (any, error) {
	q := r.URL.Query()
	page, size, err := httpkit.DecodePage(q)
	if err != nil {
		return nil, err
	}
	return listPaymentsRequest{OrderID: q.Get("order_id"), Page: page, PageSize: size}, nil
}

func decodeRefundRequest(r *http.Request, req *refundRequest) error {
	req.IdempotencyKey = r.Header.Get(discovery.IdempotencyKeyHeader)
	return httpkit.PathAndBody(r, "id", &req.PaymentID, req, httpkit.DecodeJSON)
}

// decodeWebhook keeps the body byte for byte, as the signature covers it,
// and decodes the event from it. A body that is no valid event is not
// answered here: the service answers it once the signature is checked.
func decodeWebhook(_ context.Context, r *http.Request) (any, error) {
	body, err := httpkit.ReadBody(r)
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return nil, httpkit.BadRequest("empty_body", "the request body is empty")
	}
	evt, invalid := parseWebhookEvent(body)
	return WebhookDelivery{Provider: mux.Vars(r)["provider"], Signature: r.Header.Get(SignatureHeader), Body: body,
		Event: evt, Invalid: invalid}, nil
}

// parseWebhookEvent decodes and validates a webhook body, answering a 422
// for one that is no event this service knows.
func parseWebhookEvent(body []byte) (WebhookEvent, error) {
	// Not strict about unknown fields: a provider adds fields to its events
	// over time, and nothing is answered about a body before its signature
	// proves who sent it.
	var evt WebhookEvent
	if err := json.Unmarshal(body, &evt); err != nil {
		return WebhookEvent{}, httpkit.Invalid(map[string]string{"body": "must be a JSON webhook event"})
	}
	p := map[string]string{}
	if evt.ID == "" || len(evt.ID) > 255 || !validate.PrintableASCII(evt.ID) {
		p["id"] = "is required: at most 255 printable ASCII characters"
	}
	if evt.ChargeID == "" || len(evt.ChargeID) > 255 || !validate.PrintableASCII(evt.ChargeID) {
		p["charge_id"] = "is required: at most 255 printable ASCII characters"
	}
	if _, ok := parseID(evt.PaymentID); !ok {
		p["payment_id"] = "must be a UUID"
	}
	switch evt.Type {
	case WebhookChargeSucceeded:
		// Means nothing on a success, so it is neither checked nor kept:
		// the event is stored as parsed (provider_response), where a code
		// PostgreSQL refuses (NUL) would fail every delivery.
		evt.FailureCode = ""
	case WebhookChargeFailed:
		if evt.FailureCode == "" || len(evt.FailureCode) > 50 || !validate.PrintableASCII(evt.FailureCode) {
			p["failure_code"] = "is required for charge.failed, at most 50 characters"
		}
	default:
		p["type"] = "must be charge.succeeded or charge.failed"
	}
	if len(p) > 0 {
		return WebhookEvent{}, httpkit.Invalid(p)
	}
	return evt, nil
}

// Client encoders and decoders, used by NewClient.

func setBody(r *http.Request, b []byte) {
	r.ContentLength = int64(len(b))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	r.Body, _ = r.GetBody()
}

func encodeChargeRequest(_ context.Context, r *http.Request, request any) error {
	r.URL.Path = chargePath
	return discovery.SetJSONBody(r, request)
}

func encodeGetPaymentRequest(_ context.Context, r *http.Request, request any) error {
	r.URL.Path = httpkit.APIPrefix + "/payments/" + url.PathEscape(request.(getPaymentRequest).ID)
	return nil
}

func encodeListPaymentsRequest(_ context.Context, r *http.Request, request any) error {
	req := request.(listPaymentsRequest)
	r.URL.Path = httpkit.APIPrefix + "/payments"
	q := url.Values{"page": {strconv.Itoa(req.Page)}, "page_size": {strconv.Itoa(req.PageSize)}}
	if req.OrderID != "" {
		q.Set("order_id", req.OrderID)
	}
	r.URL.RawQuery = q.Encode()
	return nil
}

func encodeRefundRequest(_ context.Context, r *http.Request, request any) error {
	req := request.(refundRequest)
	r.URL.Path = httpkit.APIPrefix + "/payments/" + url.PathEscape(req.PaymentID) + "/refunds"
	if req.IdempotencyKey != "" {
		r.Header.Set(discovery.IdempotencyKeyHeader, req.IdempotencyKey)
	}
	return discovery.SetJSONBody(r, req)
}

func encodeWebhook(_ context.Context, r *http.Request, request any) error {
	d := request.(WebhookDelivery)
	r.URL.Path = httpkit.APIPrefix + "/webhooks/payments/" + url.PathEscape(d.Provider)
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(SignatureHeader, d.Signature)
	setBody(r, d.Body)
	return nil
}

// decodeResponse decodes an instance's answer into T with
// discovery.DecodeResponse; each after completes a success from the response.
func decodeResponse[T any](fail func(error) T, after ...func(*T, *http.Response)) httptransport.DecodeResponseFunc {
	return discovery.DecodeResponse(ServiceName, errorMappings, fail, after...)
}
