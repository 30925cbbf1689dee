package gateway

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"

	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/kit/sd"

	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/requestid"
)

// maxResponseBytes bounds what the gateway buffers of one upstream answer.
const maxResponseBytes = 10 << 20

// forwardRequest is one client request on its way to an instance. The body
// is buffered so a safe retry can send it again.
type forwardRequest struct {
	Method   string
	Path     string
	RawQuery string
	Header   http.Header
	Body     []byte
}

// forwardResponse is an instance's answer below 500, passed to the client.
type forwardResponse struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

// forwardedHeaders are the request headers an upstream needs; everything
// else (cookies, hop-by-hop headers) stays at the gateway.
var forwardedHeaders = []string{
	"Accept", "Accept-Language", "Authorization", "Content-Type", "Idempotency-Key", "User-Agent", "X-Forwarded-For",
	"Mercato-Signature", // payment webhooks: the payment service verifies it
}

// hopByHop response headers are not passed back to the client.
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Trailer": true,
	"Transfer-Encoding": true, "Upgrade": true, "Content-Length": true,
}

// newForwardFactory returns the sd.Factory making one forwarding endpoint per
// instance. Answers of 5xx become *discovery.UpstreamError so they count
// against the instance's breaker; idempotent requests (GET, HEAD, or with an
// Idempotency-Key) that failed in transit are marked safe to retry.
func newForwardFactory(client *http.Client) sd.Factory {
	return func(instance string) (endpoint.Endpoint, io.Closer, error) {
		base := url.URL{Scheme: "http", Host: instance}
		forward := func(ctx context.Context, request any) (any, error) {
			fr := request.(*forwardRequest)
			u := base
			u.Path, u.RawQuery = fr.Path, fr.RawQuery
			req, err := http.NewRequestWithContext(ctx, fr.Method, u.String(), bytes.NewReader(fr.Body))
			if err != nil {
				return nil, err
			}
			req.Header = fr.Header.Clone()
			req.Header.Set(requestid.Header, requestid.FromContext(ctx))
			resp, err := client.Do(req)
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			if err := discovery.CheckResponse(resp); err != nil {
				return nil, err
			}
			body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
			if err != nil {
				return nil, err
			}
			return &forwardResponse{StatusCode: resp.StatusCode, Header: resp.Header, Body: body}, nil
		}
		idempotent := func(request any) bool {
			fr := request.(*forwardRequest)
			return fr.Method == http.MethodGet || fr.Method == http.MethodHead || fr.Header.Get(discovery.IdempotencyKeyHeader) != ""
		}
		return discovery.MarkRetryable(idempotent)(forward), nil, nil
	}
}

// newForwardRequest captures what the upstream needs of r, with body.
func newForwardRequest(r *http.Request, body []byte) *forwardRequest {
	h := make(http.Header, len(forwardedHeaders))
	for _, k := range forwardedHeaders {
		if v := r.Header.Values(k); len(v) > 0 {
			h[k] = v
		}
	}
	h.Set("X-Forwarded-For", forwardedFor(r))
	return &forwardRequest{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: h, Body: body}
}

// write sends an upstream answer to the client.
func (fr *forwardResponse) write(w http.ResponseWriter) {
	for k, vs := range fr.Header {
		if hopByHop[k] || k == requestid.Header {
			continue // the gateway's own request id header is already set
		}
		w.Header()[k] = vs
	}
	w.WriteHeader(fr.StatusCode)
	_, _ = w.Write(fr.Body)
}
