package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/afex/hystrix-go/hystrix"
	"github.com/go-kit/kit/sd/lb"
)

// response builds what http.Client returns for a request with method (and an
// Idempotency-Key when key is set) answered with status.
func response(method string, key bool, status int) *http.Response {
	req, _ := http.NewRequest(method, "http://10.0.0.7:4001/users/1", nil)
	if key {
		req.Header.Set(IdempotencyKeyHeader, "order-42")
	}
	return &http.Response{
		StatusCode: status,
		Body:       io.NopCloser(strings.NewReader(`{"error":{"code":"x"}}`)),
		Request:    req,
	}
}

func connRefused() error {
	return &url.Error{Op: "Get", URL: "http://10.0.0.7:4001/users/1", Err: &net.OpError{
		Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED),
	}}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func clientTimeout() error {
	return &url.Error{Op: "Get", URL: "http://10.0.0.7:4001/users/1", Err: timeoutErr{}}
}

func TestRetryClassification(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		retry bool
	}{
		{"connection refused", connRefused(), true},
		{"breaker open", fmt.Errorf("user@x: %w", hystrix.ErrCircuitOpen), true},
		{"breaker at max concurrency", hystrix.ErrMaxConcurrency, true},
		{"503 on GET", CheckResponse(response(http.MethodGet, false, 503)), true},
		{"502 on HEAD", CheckResponse(response(http.MethodHead, false, 502)), true},
		{"504 on GET", CheckResponse(response(http.MethodGet, false, 504)), true},
		{"503 on POST without key", CheckResponse(response(http.MethodPost, false, 503)), false},
		{"503 on POST with key", CheckResponse(response(http.MethodPost, true, 503)), true},
		{"500 on GET", CheckResponse(response(http.MethodGet, false, 500)), false},
		{"timeout marked by an idempotent endpoint", Retryable(clientTimeout()), true},
		{"timeout not marked", clientTimeout(), false},
		{"hystrix timeout: request may have arrived", hystrix.ErrTimeout, false},
		{"caller cancelled", context.Canceled, false},
		{"no instances", fmt.Errorf("%w: %w", ErrNoInstances, lb.ErrNoEndpoints), false},
		{"unknown error", errors.New("boom"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil {
				t.Fatal("test error is nil")
			}
			keep, replacement := retryCallback(3, func() {})(1, tc.err)
			if keep != tc.retry {
				t.Errorf("retry(%v) = %v, want %v", tc.err, keep, tc.retry)
			}
			if replacement != nil {
				t.Errorf("replacement = %v, want nil (the original error must survive)", replacement)
			}
			if keep, _ := retryCallback(3, func() {})(3, tc.err); keep {
				t.Errorf("retried after the last attempt")
			}
		})
	}
}

func TestCheckResponse(t *testing.T) {
	for _, tc := range []struct {
		name      string
		resp      *http.Response
		wantErr   bool
		retryable bool
	}{
		{"200", response(http.MethodGet, false, 200), false, false},
		{"404 is a business answer, not an error", response(http.MethodGet, false, 404), false, false},
		{"409 on POST", response(http.MethodPost, true, 409), false, false},
		{"500", response(http.MethodGet, false, 500), true, false},
		{"503 GET", response(http.MethodGet, false, 503), true, true},
		{"503 POST", response(http.MethodPost, false, 503), true, false},
		{"503 POST with key", response(http.MethodPost, true, 503), true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckResponse(tc.resp)
			if (err != nil) != tc.wantErr {
				t.Fatalf("CheckResponse = %v, want error %v", err, tc.wantErr)
			}
			if IsRetryable(err) != tc.retryable {
				t.Errorf("IsRetryable = %v, want %v", IsRetryable(err), tc.retryable)
			}
			if err == nil {
				return
			}
			var up *UpstreamError
			if !errors.As(err, &up) {
				t.Fatalf("%v is not an *UpstreamError", err)
			}
			if up.StatusCode != tc.resp.StatusCode || up.Instance != "10.0.0.7:4001" {
				t.Errorf("UpstreamError = %+v, want status %d from 10.0.0.7:4001", up, tc.resp.StatusCode)
			}
			if !strings.Contains(err.Error(), `"code":"x"`) {
				t.Errorf("error %q does not quote the body", err)
			}
		})
	}
}

func TestMarkRetryable(t *testing.T) {
	type req struct{ key string }
	keyed := func(r any) bool { return r.(req).key != "" }
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name       string
		idempotent func(any) bool
		ctx        context.Context
		request    req
		err        error
		want       bool
	}{
		{"timeout, always idempotent", nil, context.Background(), req{}, clientTimeout(), true},
		{"timeout, keyed request", keyed, context.Background(), req{"k"}, clientTimeout(), true},
		{"timeout, request without key", keyed, context.Background(), req{}, clientTimeout(), false},
		{"502 from a keyed request", keyed, context.Background(), req{"k"}, &UpstreamError{Instance: "a", StatusCode: 502, Err: errors.New("x")}, true},
		{"500 stays final", nil, context.Background(), req{}, &UpstreamError{Instance: "a", StatusCode: 500, Err: errors.New("x")}, false},
		{"caller cancelled", nil, cancelled, req{}, clientTimeout(), false},
		{"plain error", nil, context.Background(), req{}, errors.New("decode: bad json"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := func(context.Context, any) (any, error) { return nil, tc.err }
			_, err := MarkRetryable(tc.idempotent)(next)(tc.ctx, tc.request)
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v does not wrap %v", err, tc.err)
			}
			if got := IsRetryable(err); got != tc.want {
				t.Errorf("IsRetryable = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRetryErrorUnwraps(t *testing.T) {
	final := &UpstreamError{Instance: "10.0.0.8:4001", StatusCode: 500, Err: errors.New("db down")}
	var err error = &RetryError{Upstream: "user", RetryError: lb.RetryError{
		RawErrors: []error{hystrix.ErrCircuitOpen, final},
		Final:     final,
	}}
	var up *UpstreamError
	if !errors.As(err, &up) || up != final {
		t.Errorf("errors.As(*UpstreamError) = %v, want the final error", up)
	}
	if errors.Is(err, hystrix.ErrCircuitOpen) {
		t.Error("an earlier attempt's error leaks through errors.Is; only the final one should")
	}
	var kit lb.RetryError
	if !errors.As(err, &kit) || len(kit.RawErrors) != 2 {
		t.Errorf("errors.As(lb.RetryError) = %+v, want both attempts", kit)
	}
	if !strings.HasPrefix(err.Error(), "user: ") || !strings.Contains(err.Error(), "circuit open") {
		t.Errorf("message %q should name the upstream and earlier attempts", err)
	}
	if Retryable(nil) != nil {
		t.Error("Retryable(nil) != nil")
	}
}
