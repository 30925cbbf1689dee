package payment

import (
	"net/http"

	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/kit/sd"
	httptransport "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"

	"github.com/mercato-dev/mercato/shared/discovery"
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
	c := client{instancer: instancer, logger: logger, opts: opts, http: discovery.NewHTTPClient()}
	return Endpoints{
		// Charge is idempotent by order id, so it may go to another
		// instance after a timeout like a read.
		ChargeEndpoint: c.endpoint(http.MethodPost, encodeChargeRequest, discovery.Always,
			decodeResponse(func(err error) chargeResponse { return chargeResponse{Err: err} },
				func(r *chargeResponse, resp *http.Response) { r.Created = resp.StatusCode == http.StatusAccepted })),
		GetPaymentEndpoint: c.endpoint(http.MethodGet, encodeGetPaymentRequest, discovery.Always,
			decodeResponse(func(err error) paymentResponse { return paymentResponse{Err: err} })),
		ListPaymentsEndpoint: c.endpoint(http.MethodGet, encodeListPaymentsRequest, discovery.Always,
			decodeResponse(func(err error) listPaymentsResponse { return listPaymentsResponse{Err: err} })),
		// A refund is safe to repeat only under an Idempotency-Key.
		RefundEndpoint: c.endpoint(http.MethodPost, encodeRefundRequest,
			func(r any) bool { return r.(refundRequest).IdempotencyKey != "" },
			decodeResponse(func(err error) refundResponse { return refundResponse{Err: err} },
				func(r *refundResponse, resp *http.Response) {
					r.Replayed = resp.Header.Get("Idempotent-Replayed") == "true"
				})),
		// A webhook's event id makes a repeat harmless (webhook_replayed).
		HandleWebhookEndpoint: c.endpoint(http.MethodPost, encodeWebhook, discovery.Always,
			decodeResponse(func(err error) webhookResponse { return webhookResponse{Err: err} })),
	}
}

type client struct {
	instancer sd.Instancer
	logger    log.Logger
	opts      discovery.Options
	http      *http.Client
}

// endpoint builds the load-balanced endpoint of one method; requests for
// which idempotent is true may be retried on another instance after a
// timeout, a broken connection or a 502-504.
func (c client) endpoint(method string, enc httptransport.EncodeRequestFunc, idempotent func(any) bool, dec httptransport.DecodeResponseFunc) endpoint.Endpoint {
	return discovery.NewEndpoint(c.instancer, ServiceName, discovery.HTTPFactory(c.http, method, enc, dec, idempotent), c.logger, c.opts)
}
