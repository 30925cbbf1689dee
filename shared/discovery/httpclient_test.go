package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-kit/kit/sd"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/requestid"
)

func TestHTTPFactory(t *testing.T) {
	type seen struct{ method, path, requestID, authorization, extra string }
	var (
		mu   sync.Mutex
		last seen
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		last = seen{r.Method, r.URL.Path, r.Header.Get(requestid.Header), r.Header.Get("Authorization"), r.Header.Get("X-Extra")}
		mu.Unlock()
		if r.URL.Path == "/unavailable" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	instance := strings.TrimPrefix(srv.URL, "http://")

	enc := func(path string) func(context.Context, *http.Request, any) error {
		return func(_ context.Context, r *http.Request, _ any) error {
			r.URL.Path = path
			return nil
		}
	}
	dec := func(_ context.Context, resp *http.Response) (any, error) {
		if err := CheckResponse(resp); err != nil {
			return nil, err
		}
		return resp.StatusCode, nil
	}
	extra := func(ctx context.Context, r *http.Request) context.Context {
		r.Header.Set("X-Extra", "yes")
		return ctx
	}
	client := NewHTTPClient()
	ctx := requestid.NewContext(auth.NewTokenContext(context.Background(), "tok"), "req-1")

	t.Run("forwards method, path, request id and token", func(t *testing.T) {
		e, closer, err := HTTPFactory(client, http.MethodPost, enc("/things"), dec, nil, extra)(instance)
		if err != nil || closer != nil {
			t.Fatalf("factory = _, %v, %v; want no closer, no error", closer, err)
		}
		resp, err := e(ctx, struct{}{})
		if err != nil || resp != http.StatusNoContent {
			t.Fatalf("call = %v, %v; want 204", resp, err)
		}
		mu.Lock()
		defer mu.Unlock()
		want := seen{http.MethodPost, "/things", "req-1", "Bearer tok", "yes"}
		if last != want {
			t.Errorf("upstream saw %+v, want %+v", last, want)
		}
	})

	// An instance registered under a name (-advertise-host) that starts
	// with "http" is still a host:port, not a URL.
	t.Run("host name starting with http", func(t *testing.T) {
		var host string
		named := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			host = r.URL.Scheme + "://" + r.URL.Host
			return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody, Request: r}, nil
		})}
		e, _, err := HTTPFactory(named, http.MethodGet, enc("/things"), dec, nil)("httpd-1.internal:4001")
		if err != nil {
			t.Fatalf("factory: %v", err)
		}
		if _, err := e(ctx, struct{}{}); err != nil || host != "http://httpd-1.internal:4001" {
			t.Errorf("call = %v, sent to %q; want http://httpd-1.internal:4001", err, host)
		}
	})

	for _, tc := range []struct {
		name       string
		method     string
		idempotent func(any) bool
		retryable  bool
	}{
		{"GET always", http.MethodGet, Always, true},
		{"POST always", http.MethodPost, Always, true},
		{"POST never", http.MethodPost, nil, false},
	} {
		t.Run(tc.name+" on 503", func(t *testing.T) {
			e, _, err := HTTPFactory(client, tc.method, enc("/unavailable"), dec, tc.idempotent)("http://" + instance)
			if err != nil {
				t.Fatalf("factory: %v", err)
			}
			_, err = e(ctx, struct{}{})
			var upErr *UpstreamError
			if !errors.As(err, &upErr) || upErr.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("err = %v, want an *UpstreamError 503", err)
			}
			if got := IsRetryable(err); got != tc.retryable {
				t.Errorf("IsRetryable(%v) = %v, want %v", err, got, tc.retryable)
			}
		})
	}
}

// TestClientEndpoint checks the retry rule Client.Endpoint applies: GETs,
// and writes its idempotent argument accepts, go to the other instance when
// the first drops the connection after taking the request; other writes
// are never sent twice.
func TestClientEndpoint(t *testing.T) {
	for _, tc := range []struct {
		name       string
		method     string
		idempotent func(any) bool
		wantSafe   bool
	}{
		{"GET", http.MethodGet, nil, true},
		{"POST", http.MethodPost, nil, false},
		{"POST the rule refuses", http.MethodPost, func(any) bool { return false }, false},
		{"POST Always", http.MethodPost, Always, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// hangup reads the request, then drops the connection: the
			// request may well have had its effect.
			var hangups atomic.Int64
			hangup := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				hangups.Add(1)
				if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
					conn.Close()
				}
			}))
			t.Cleanup(hangup.Close)
			good := newBackend(t, 0)

			instances := []string{hangup.Listener.Addr().String(), good.addr()}
			// A volume the test never reaches keeps the breakers out of it.
			c := NewClient(sd.FixedInstancer(instances), "client-"+tc.name, testLogger(), Options{RequestVolumeThreshold: 1000}, NewHTTPClient())
			enc := func(_ context.Context, r *http.Request, _ any) error {
				r.URL.Path = "/thing"
				return nil
			}
			dec := func(_ context.Context, resp *http.Response) (any, error) {
				if err := CheckResponse(resp); err != nil {
					return nil, err
				}
				var out thingResponse
				return out, json.NewDecoder(resp.Body).Decode(&out)
			}
			e := c.Endpoint(tc.method, enc, dec, tc.idempotent)
			ready(t, e, good)
			hangups.Store(0)

			failures := 0
			for range 4 {
				resp, err := e(context.Background(), struct{}{})
				switch {
				case err != nil:
					failures++
				case resp.(thingResponse).Server != good.addr():
					t.Errorf("answered by %q, want the good instance", resp.(thingResponse).Server)
				}
			}
			if hangups.Load() == 0 {
				t.Fatal("round robin never chose the instance that hangs up")
			}
			if tc.wantSafe && failures != 0 {
				t.Errorf("%d of 4 calls failed: a safe request was not retried on the other instance", failures)
			}
			if !tc.wantSafe && (failures != int(hangups.Load()) || good.hits.Load() != int64(4-failures)) {
				t.Errorf("%d failures, %d hang-ups, %d good hits: an unsafe request was sent twice", failures, hangups.Load(), good.hits.Load())
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
