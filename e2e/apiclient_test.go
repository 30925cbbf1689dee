package e2e

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/mercato-dev/mercato/clients/go/mercato"
)

// newAPIClient is the generated Go client (clients/go/mercato) of the
// gateway at addr, as a storefront written in Go uses it; every exchange is
// checked against docs/openapi.yaml like the hand-written clients' are.
func newAPIClient(t testing.TB, addr string, opts ...mercato.ClientOption) *mercato.ClientWithResponses {
	t.Helper()
	hc := &http.Client{Timeout: 30 * time.Second, Transport: openAPITransport{t: t, next: http.DefaultTransport}}
	api, err := mercato.New("http://"+addr, append([]mercato.ClientOption{mercato.WithHTTPClient(hc)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// openAPITransport sends a request and checks the exchange against the
// document (checkAgainstOpenAPI).
type openAPITransport struct {
	t    testing.TB
	next http.RoundTripper
}

func (o openAPITransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var sent []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		sent = b
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	resp, err := o.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(got))
	checkAgainstOpenAPI(o.t, req, sent, resp.StatusCode, resp.Header, got)
	return resp, nil
}

// mustStatus fails the test unless the generated client's call succeeded
// with status want.
func mustStatus(t testing.TB, what string, resp interface{ StatusCode() int }, body []byte, err error, want int) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if resp.StatusCode() != want {
		t.Fatalf("%s: status %d, want %d: %.300s", what, resp.StatusCode(), want, body)
	}
}
