package payment

import (
	"net/http"

	"github.com/go-kit/kit/sd"
	"github.com/go-kit/log"

	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/endpointkit"
)

// NewClient returns the payment service as seen from another process (the
// order service): every method is load-balanced over the instances
// instancer reports (one shared Consul instancer, from
// discovery.NewInstancer), with per-instance circuit breakers and safe
// retries (discovery.NewEndpoint). Business errors come back as the domain
// errors (ErrNotFound, ErrPaymentMismatch, …) or *httpkit.Error, 5xx answers
// as *discovery.UpstreamError, no instance at all as discovery.ErrNoInstances.
//
// The caller's bearer token (auth.HTTPToContext or auth.NewTokenContext put
// it in ctx) and request id travel with every call. Charge wants a service
// token: auth.NewTokenContext(ctx, tokens.ServiceToken("order")).
func NewClient(instancer sd.Instancer, logger log.Logger, opts discovery.Options) Service {
	// Reads may go to another instance after a timeout, a broken connection
	// or a 502-504; each write says when it may.
	c := discovery.NewClient(instancer, ServiceName, logger, opts, discovery.NewHTTPClient())
	return Endpoints{
		// Charge is idempotent by order id, so it may go to another
		// instance after a timeout like a read.
		ChargeEndpoint: c.Endpoint(http.MethodPost, encodeChargeRequest,
			decodeResponse(endpointkit.Fail[chargeResponse],
				func(r *chargeResponse, resp *http.Response) { r.Created = resp.StatusCode == http.StatusAccepted }),
			discovery.Always),
		GetPaymentEndpoint: c.Endpoint(http.MethodGet, encodeGetPaymentRequest,
			decodeResponse(endpointkit.Fail[paymentResponse]), nil),
		ListPaymentsEndpoint: c.Endpoint(http.MethodGet, encodeListPaymentsRequest,
			decodeResponse(endpointkit.Fail[listPaymentsResponse]), nil),
		// A refund is safe to repeat only under an Idempotency-Key.
		RefundEndpoint: c.Endpoint(http.MethodPost, encodeRefundRequest,
			decodeResponse(endpointkit.Fail[refundResponse],
				func(r *refundResponse, resp *http.Response) {
					r.Replayed = resp.Header.Get("Idempotent-Replayed") == "true"
				}),
			func(r any) bool { return r.(refundRequest).IdempotencyKey != "" }),
		// A webhook's event id makes a repeat harmless (webhook_replayed).
		HandleWebhookEndpoint: c.Endpoint(http.MethodPost, encodeWebhook,
			decodeResponse(endpointkit.Fail[webhookResponse]), discovery.Always),
	}
}
