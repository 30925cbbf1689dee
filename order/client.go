package order

import (
	"net/http"
	"time"

	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/kit/sd"
	httptransport "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"

	"github.com/mercato-dev/mercato/shared/discovery"
)

// NewClient returns the order service as seen from another process: every
// method is load-balanced over the instances instancer reports (one shared
// Consul instancer, from discovery.NewInstancer), with per-instance circuit
// breakers and safe retries (discovery.NewEndpoint). Business errors come
// back as the domain errors (ErrNotFound, …) or *httpkit.Error, 5xx answers
// as *discovery.UpstreamError, no instance at all as discovery.ErrNoInstances.
//
// The caller's bearer token (auth.HTTPToContext put it in ctx) and request id
// travel with every call. PlaceOrder with an idempotency key is retried on
// another instance after a timeout, since the key makes a repeat harmless.
func NewClient(instancer sd.Instancer, logger log.Logger, opts discovery.Options) Service {
	httpClient := discovery.NewHTTPClient()
	httpClient.Transport.(*http.Transport).ResponseHeaderTimeout = 25 * time.Second // placing an order may take a while
	c := client{instancer: instancer, logger: logger, opts: opts, http: httpClient}
	orderResp := decodeResponse(func(err error) orderResponse { return orderResponse{Err: err} })
	keyed := func(request any) bool { return request.(placeOrderRequest).IdempotencyKey != "" }
	return Endpoints{
		PlaceOrderEndpoint:  c.endpoint(http.MethodPost, encodePlaceOrderRequest, orderResp, keyed),
		ListOrdersEndpoint:  c.endpoint(http.MethodGet, encodeListOrdersRequest, decodeResponse(func(err error) listOrdersResponse { return listOrdersResponse{Err: err} }), nil),
		GetOrderEndpoint:    c.endpoint(http.MethodGet, encodeGetOrderRequest, orderResp, nil),
		CancelOrderEndpoint: c.endpoint(http.MethodPost, encodeCancelOrderRequest, orderResp, nil),
		SetStatusEndpoint:   c.endpoint(http.MethodPost, encodeSetStatusRequest, orderResp, nil),
	}
}

type client struct {
	instancer sd.Instancer
	logger    log.Logger
	opts      discovery.Options
	http      *http.Client
}

// endpoint builds the load-balanced endpoint of one method. idempotent says
// which POST requests may be sent again; GETs always may.
func (c client) endpoint(method string, enc httptransport.EncodeRequestFunc, dec httptransport.DecodeResponseFunc, idempotent func(any) bool) endpoint.Endpoint {
	if method == http.MethodGet {
		idempotent = discovery.Always
	}
	return discovery.NewEndpoint(c.instancer, ServiceName, discovery.HTTPFactory(c.http, method, enc, dec, idempotent), c.logger, c.opts)
}
