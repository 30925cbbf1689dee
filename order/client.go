package order

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/kit/sd"
	httptransport "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/requestid"
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
	// One http.Client for every instance and method: connections are pooled
	// per host anyway. The timeout is a backstop; calls carry the deadline of
	// their context and of opts.Timeout.
	httpClient := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          256,
			MaxIdleConnsPerHost:   64, // the default, 2, would redial under any real load
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 25 * time.Second, // placing an order may take a while
			ExpectContinueTimeout: time.Second,
		},
	}
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
	factory := func(instance string) (endpoint.Endpoint, io.Closer, error) {
		if !strings.HasPrefix(instance, "http") {
			instance = "http://" + instance
		}
		tgt, err := url.Parse(instance)
		if err != nil {
			return nil, nil, fmt.Errorf("order client: instance %q: %w", instance, err)
		}
		e := httptransport.NewClient(method, tgt, enc, dec,
			httptransport.SetClient(c.http),
			httptransport.ClientBefore(auth.ContextToHTTP, requestIDToHTTP),
		).Endpoint()
		switch {
		case method == http.MethodGet:
			e = discovery.MarkRetryable(nil)(e)
		case idempotent != nil:
			e = discovery.MarkRetryable(idempotent)(e)
		}
		// No closer: the shared transport drops idle connections to an
		// instance that left after IdleConnTimeout.
		return e, nil, nil
	}
	return discovery.NewEndpoint(c.instancer, ServiceName, factory, c.logger, c.opts)
}

// requestIDToHTTP forwards the request id, so the upstream's log lines join
// the caller's.
func requestIDToHTTP(ctx context.Context, r *http.Request) context.Context {
	if id := requestid.FromContext(ctx); id != "" {
		r.Header.Set(requestid.Header, id)
	}
	return ctx
}
