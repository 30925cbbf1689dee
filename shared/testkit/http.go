package testkit

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Response is an HTTP answer, read whole.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

// Object decodes the body as a JSON object, nil when the body is empty. A
// body that is not one fails t.
func (r Response) Object(t testing.TB) map[string]any {
	t.Helper()
	if r.Body == "" {
		return nil
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(r.Body), &out); err != nil {
		t.Fatalf("testkit: %d answer is not a JSON object: %q", r.Status, r.Body)
	}
	return out
}

// NewRequest builds a request as a client of the API sends it: body, when
// not nil or "", goes as is if it is a string or []byte and as JSON
// otherwise, with Content-Type application/json; token, when not "", goes
// as a bearer token; header holds more headers, as name, value pairs.
func NewRequest(t testing.TB, method, url, token string, body any, header ...string) *http.Request {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		if b != "" {
			rd = strings.NewReader(b)
		}
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("testkit: request body: %v", err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return req
}

// Do sends req and reads the answer whole. A request that gets no answer
// fails t.
func Do(t testing.TB, req *http.Request) Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req) //nolint:gosec // G704: tests call the servers they started
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("testkit: %s %s: reading the answer: %v", req.Method, req.URL, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

// Call sends the request NewRequest builds and reads the answer whole.
func Call(t testing.TB, method, url, token string, body any, header ...string) Response {
	t.Helper()
	return Do(t, NewRequest(t, method, url, token, body, header...))
}
