package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	stdlog "log"
	"mime"
	"net/http"
	"net/http/httputil"
	"sync"

	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/kit/sd"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/requestid"
	"github.com/mercato-dev/mercato/shared/tracing"
)

// The gateway streams answers, as production gateways do (httputil's
// ReverseProxy, Envoy): the answer's headers, Content-Length included, go to
// the client as they come from the instance, and its body is copied through
// as it arrives, flushed at once when its length is unknown (chunked JSON,
// server-sent events). Buffering whole answers would cost memory in
// proportion to answer size times requests in flight and would need a cap,
// and a cap means refusing large answers. What streaming gives up is
// recovery after the headers: retries and the breaker see an attempt up to
// its answer's headers (a 502-504 is still retried when safe and still counts
// against the instance); an answer that breaks off later, or that takes
// longer to relay than Config.Client's timeout allows (the copy goes at the
// API client's pace, and that timeout bounds the body too), aborts the API
// client's connection, so it sees an incomplete answer, never a truncated
// one passed off as whole.

// newProxy returns the handler that forwards one upstream's requests through
// forward, the upstream's load-balanced, retrying, breaker-guarded endpoint
// (newForwardFactory's per instance). The request must carry its body in
// GetBody (see withBufferedBody), so that a retry can send it again.
func (g *Gateway) newProxy(upstream string, forward endpoint.Endpoint) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.Header = forwardedHeaders(pr.In.Header)
			// The query as the client sent it: ReverseProxy drops the pairs
			// that do not parse, so a filter the client believes it sent
			// (?status=pending;x) would silently vanish, where the service
			// answers 400 malformed_query. The gateway itself reads no query
			// parameter, so it cannot read one differently from the service.
			pr.Out.URL.RawQuery = pr.In.URL.RawQuery
			pr.SetXForwarded()
			if proto, ok := forwardedProto(pr.In.Context()); ok {
				// SetXForwarded's is the gateway's own connection's scheme,
				// http behind a load balancer that ends TLS.
				pr.Out.Header.Set("X-Forwarded-Proto", proto)
			}
			pr.Out.Header.Set(requestid.Header, requestid.FromContext(pr.In.Context()))
			pr.Out.Host = "" // the instance's, chosen per attempt
		},
		Transport:  endpointTransport(forward),
		BufferPool: copyBuffers,
		ModifyResponse: func(resp *http.Response) error {
			resp.Header.Del(requestid.Header) // the gateway's own is already set
			return awaitRevocation(resp.Request.Context())
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if revoked := awaitRevocation(r.Context()); revoked != nil {
				httpkit.WriteError(w, httpkit.ToError(r.Context(), g.logger, revoked))
				return
			}
			httpkit.WriteError(w, g.upstreamError(r.Context(), upstream, err))
		},
		// What ReverseProxy reports itself: an answer's body that broke off.
		ErrorLog: stdlog.New(log.NewStdlibAdapter(level.Warn(log.With(g.logger, "upstream", upstream))), "", 0),
	}
}

// copyBuffers are the buffers ReverseProxy copies answers' bodies through:
// without a pool it allocates 32 KiB per request, which was most of the
// gateway's allocated bytes under load.
var copyBuffers = &bufferPool{pool: sync.Pool{New: func() any { return make([]byte, 32<<10) }}}

type bufferPool struct{ pool sync.Pool }

func (p *bufferPool) Get() []byte { return p.pool.Get().([]byte) }

//nolint:staticcheck // SA6002: the slice header's allocation is 24 bytes, the buffer's 32 KiB
func (p *bufferPool) Put(b []byte) { p.pool.Put(b) }

// endpointTransport lets ReverseProxy send its requests through a go-kit
// endpoint that takes an *http.Request and returns an *http.Response.
type endpointTransport endpoint.Endpoint

func (t endpointTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t(r.Context(), r)
	if err != nil {
		return nil, err
	}
	return resp.(*http.Response), nil
}

// forwardedHeaderNames are the request headers an upstream needs; everything
// else (cookies, hop-by-hop headers) stays at the gateway. X-Forwarded-For
// is extended with the client's address, X-Request-ID replaced by the
// gateway's.
var forwardedHeaderNames = []string{
	"Accept", "Accept-Language", "Authorization", "Content-Type", "Idempotency-Key", "User-Agent", "X-Forwarded-For",
	"Mercato-Signature", // payment webhooks: the payment service verifies it
}

func forwardedHeaders(in http.Header) http.Header {
	h := make(http.Header, len(forwardedHeaderNames)+3)
	for _, k := range forwardedHeaderNames {
		if v := in.Values(k); len(v) > 0 {
			h[k] = v
		}
	}
	return h
}

// newForwardFactory returns the sd.Factory making one forwarding endpoint per
// instance: it sends a copy of the *http.Request it is given to the instance
// and returns the instance's *http.Response with the body unread. Answers of
// 5xx become *discovery.UpstreamError, of which 502-504 count against the
// instance's breaker (discovery.CountsAgainstInstance); idempotent requests
// (GET, HEAD, or with an Idempotency-Key, which only Route.Idempotent's
// keep) that failed in transit are marked safe to retry.
func newForwardFactory(client *http.Client) sd.Factory {
	return func(instance string) (endpoint.Endpoint, io.Closer, error) {
		forward := func(ctx context.Context, request any) (any, error) {
			return forwardTo(ctx, client, instance, request.(*http.Request))
		}
		idempotent := func(request any) bool { return discovery.IsIdempotent(request.(*http.Request)) }
		return discovery.MarkRetryable(idempotent)(forward), nil, nil
	}
}

// forwardTo makes one attempt of r at instance. ctx, the retry loop's, bounds
// the attempt until the answer's headers arrive; the loop cancels it as soon
// as it returns, while the body is still to be copied. So the outbound
// request runs on r's own context (the client's, which ends with the client's
// request) and the client's timeout, and follows ctx only until the headers
// are in. The body's Close releases it.
func forwardTo(ctx context.Context, client *http.Client, instance string, r *http.Request) (*http.Response, error) {
	reqCtx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(ctx, cancel)
	out := r.Clone(reqCtx)
	out.URL.Scheme, out.URL.Host, out.RequestURI = "http", instance, ""
	tracing.ClientRequest(ctx, out) // the attempt's span, which the instance continues
	out.Body = nil
	if r.ContentLength != 0 && r.GetBody != nil {
		body, err := r.GetBody()
		if err != nil {
			cancel()
			return nil, err
		}
		out.Body = body
	}
	resp, err := client.Do(out) //nolint:gosec // G704: the instance comes from Consul's passing instances, never from the request
	if !stop() {
		// ctx ended first: the loop has given up on this attempt.
		if err == nil {
			resp.Body.Close()
		}
		cancel()
		return nil, ctx.Err()
	}
	if err != nil {
		cancel()
		return nil, err
	}
	tracing.ClientResponse(ctx, resp.StatusCode)
	if resp.StatusCode >= 500 && isDomainAnswer(resp) {
		// Relayed as it is: not retried, and no outage of the instance.
		resp.Body = cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
		return resp, nil
	}
	if err := discovery.CheckResponse(resp); err != nil {
		resp.Body.Close()
		cancel()
		return nil, err
	}
	resp.Body = cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// maxErrorBody bounds how much of a 5xx answer isDomainAnswer reads: a
// Mercato error body is a few hundred bytes.
const maxErrorBody = 4 << 10

// isDomainAnswer reports whether resp, a 5xx answer, is the service's answer
// to the request, which the client is owed as it is: a Mercato error whose
// code is the service's own, such as the payment service's 502
// payment_provider_error (the provider failed a refund; the instance is
// fine). It is not when it is a 500 (a bug, whatever its code: the gateway
// answers 502 upstream_error), when the code says the instance cannot serve
// now (503 service_unavailable) or when the body is not a Mercato error at
// all (a proxy's page, an empty body). It reads the start of the body and
// puts it back.
func isDomainAnswer(resp *http.Response) bool {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode == http.StatusInternalServerError || mt != "application/json" {
		return false
	}
	start, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(start), resp.Body), resp.Body}
	if err != nil {
		return false
	}
	var body struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(start, &body) != nil {
		return false
	}
	return body.Error.Code != "" && body.Error.Code != httpkit.Unavailable("").Code
}

// cancelOnClose is an answer's body that releases its request's context
// when closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
