package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// failingBody sends some bytes of a body, then fails with err.
type failingBody struct {
	sent bool
	err  error
}

func (b *failingBody) Read(p []byte) (int, error) {
	if !b.sent {
		b.sent = true
		return copy(p, `{"email":`), nil
	}
	return 0, b.err
}

// Only a body over the limit is 413; a body that cannot be read for another
// reason gets its own answer, and the log says what happened. None reaches
// the upstream.
func TestRequestBodyFailures(t *testing.T) {
	up := newUpstream(t, http.StatusOK)
	logs := &testkit.LogBuffer{}
	f := newGatewayWith(t, gatewayOptions{rdb: testkit.Redis(t), limit: generous, logger: logTo(logs)}, up.hostPort())

	tests := []struct {
		name       string
		body       io.Reader
		cancelled  bool // the client's context is done
		wantStatus int
		wantCode   string
		wantLog    string
	}{
		{"at the limit", strings.NewReader(strings.Repeat("x", httpkit.MaxBodyBytes)), false, 200, "", ""},
		{"over the limit", strings.NewReader(strings.Repeat("x", httpkit.MaxBodyBytes+1)), false,
			413, "body_too_large", "request body over the limit"},
		{"client hung up mid-body", &failingBody{err: io.ErrUnexpectedEOF}, false,
			400, "incomplete_body", "the client hung up before sending the whole request body"},
		{"connection reset", &failingBody{err: &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}}, false,
			400, "incomplete_body", "the client hung up before sending the whole request body"},
		{"read timeout", &failingBody{err: &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}}, false,
			408, "request_timeout", "did not arrive before the server's read timeout"},
		{"unreadable", &failingBody{err: errors.New("malformed chunked encoding")}, false,
			400, "unreadable_body", "the request body could not be read"},
		{"client gone", &failingBody{err: context.Canceled}, true,
			499, "client_closed_request", "the client went away while sending the request body"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := up.count()
			r := httptest.NewRequest("POST", "/api/v1/auth/register", tc.body)
			if tc.cancelled {
				ctx, cancel := context.WithCancel(r.Context())
				cancel()
				r = r.WithContext(ctx)
			}
			rec := httptest.NewRecorder()
			f.handler.ServeHTTP(rec, r)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.wantStatus, rec.Body)
			}
			if tc.wantCode == "" {
				if up.count() != before+1 {
					t.Fatal("not forwarded")
				}
				return
			}
			if code := errorCode(t, rec); code != tc.wantCode {
				t.Fatalf("code %s, want %s", code, tc.wantCode)
			}
			if up.count() != before {
				t.Fatal("a body that could not be read was forwarded")
			}
			waitForLog(t, logs, tc.wantLog)
		})
	}
}

// Over a real connection: a client that stalls mid-body until the server's
// read timeout gets 408, not 413; one that hangs up mid-body is logged as
// such.
func TestRequestBodyOverARealConnection(t *testing.T) {
	up := newUpstream(t, http.StatusOK)
	logs := &testkit.LogBuffer{}
	f := newGatewayWith(t, gatewayOptions{rdb: testkit.Redis(t), limit: generous, logger: logTo(logs)}, up.hostPort())
	srv := httptest.NewUnstartedServer(f.handler)
	srv.Config.ReadTimeout = 500 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	partial := func(t *testing.T) net.Conn {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		fmt.Fprintf(conn, "POST /api/v1/auth/register HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"email\":")
		return conn
	}

	t.Run("stalled client is 408", func(t *testing.T) {
		conn := partial(t)
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("status %d, want 408", resp.StatusCode)
		}
		waitForLog(t, logs, "did not arrive before the server's read timeout")
	})
	t.Run("client hanging up is logged", func(t *testing.T) {
		conn := partial(t)
		conn.Close()
		waitForLog(t, logs, "the client hung up before sending the whole request body")
	})
	if up.count() != 0 {
		t.Fatalf("upstream saw %d requests, want none", up.count())
	}
}
