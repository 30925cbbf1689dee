package discovery

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
	"github.com/mercato-dev/mercato/shared/requestid"
	"github.com/mercato-dev/mercato/shared/tracing"
)

// NewHTTPClient returns the http.Client a service's client shares by every
// instance and method of an upstream: connections are pooled per host
// anyway, and a client per instance would only multiply idle connections.
// The timeout is a backstop; calls carry the deadline of their context and
// of Options.Timeout.
func NewHTTPClient() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          256,
			MaxIdleConnsPerHost:   64, // the default, 2, would redial under any real load
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 10 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
	}
}

// Always is the idempotent argument of HTTPFactory for requests that are
// always safe to send again: reads, and writes the upstream deduplicates.
func Always(any) bool { return true }

// HTTPFactory is the sd.Factory of one method of an upstream, for
// NewEndpoint: each instance ("host:port" or a URL) gets a go-kit HTTP client
// endpoint that sends method with enc and decodes with dec, over client. The
// caller's bearer token (auth.ContextToHTTP), the request id
// (requestid.ToHTTP), the trace context of the attempt's span
// (tracing.ClientRequest) and then before travel with every call.
//
// idempotent says which requests may be sent again to another instance after
// a timeout, a broken connection or a 502-504 (MarkRetryable): nil means
// none, so such failures are retried only where nothing was sent; Always
// means every request. Callers pick it per method, e.g. Always for GETs.
func HTTPFactory(client *http.Client, method string, enc httptransport.EncodeRequestFunc, dec httptransport.DecodeResponseFunc, idempotent func(request any) bool, before ...httptransport.RequestFunc) sd.Factory {
	before = append([]httptransport.RequestFunc{auth.ContextToHTTP, requestid.ToHTTP, traceToHTTP}, before...)
	return func(instance string) (endpoint.Endpoint, io.Closer, error) {
		// A URL has its scheme; a host:port, whose host may be a name
		// that starts with "http" too (httpd-1.internal), has none.
		if !strings.HasPrefix(instance, "http://") && !strings.HasPrefix(instance, "https://") {
			instance = "http://" + instance
		}
		tgt, err := url.Parse(instance)
		if err != nil {
			return nil, nil, fmt.Errorf("discovery: instance %q: %w", instance, err)
		}
		e := httptransport.NewClient(method, tgt, enc, dec,
			httptransport.SetClient(client),
			httptransport.ClientBefore(before...),
			httptransport.ClientAfter(traceResponse),
		).Endpoint()
		if idempotent != nil {
			e = MarkRetryable(idempotent)(e)
		}
		// No closer: the shared transport drops idle connections to an
		// instance that left after IdleConnTimeout.
		return e, nil, nil
	}
}

// Client is one upstream service as its callers' client.go sees it: the
// instancer that knows its instances, the logger and Options of its
// pipeline, and the http.Client every route shares. A service's NewClient
// builds one and makes the endpoint of each of its routes with Endpoint.
type Client struct {
	instancer sd.Instancer
	upstream  string
	logger    log.Logger
	opts      Options
	http      *http.Client
}

// NewClient returns the Client of upstream over the instances instancer
// reports (one shared Consul instancer, from NewInstancer), calling them
// through httpClient (NewHTTPClient, or one tuned like it).
func NewClient(instancer sd.Instancer, upstream string, logger log.Logger, opts Options, httpClient *http.Client) *Client {
	return &Client{instancer: instancer, upstream: upstream, logger: logger, opts: opts, http: httpClient}
}

// Endpoint returns the load-balanced endpoint of one route (NewEndpoint over
// HTTPFactory): method, with enc and dec, to every instance in turn, each
// behind its instance's breaker. A GET or HEAD may be sent again to another
// instance after a timeout, a broken connection or a 502-504; so may any
// request for which idempotent returns true (Always: every one). Otherwise
// (idempotent nil or false) a failure is retried only where nothing was
// sent, so a write never happens twice.
func (c *Client) Endpoint(method string, enc httptransport.EncodeRequestFunc, dec httptransport.DecodeResponseFunc, idempotent func(request any) bool) endpoint.Endpoint {
	if method == http.MethodGet || method == http.MethodHead {
		idempotent = Always
	}
	return newEndpoint(c.instancer, c.upstream, method, HTTPFactory(c.http, method, enc, dec, idempotent), c.logger, c.opts)
}

func traceToHTTP(ctx context.Context, r *http.Request) context.Context {
	tracing.ClientRequest(ctx, r)
	return ctx
}

func traceResponse(ctx context.Context, resp *http.Response) context.Context {
	tracing.ClientResponse(ctx, resp.StatusCode)
	return ctx
}
