package discovery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	httptransport "github.com/go-kit/kit/transport/http"

	"github.com/mercato-dev/mercato/shared/httpkit"
)

// The client half of HTTPFactory: the body and response codecs every
// service's client shares. Each service keeps the encoders that build its
// routes' paths and queries, and its errorMappings.

// SetJSONBody sets body, marshalled to JSON, as r's body, with its
// Content-Type and ContentLength, and a GetBody so a retry can resend it.
func SetJSONBody(r *http.Request, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	r.Header.Set("Content-Type", "application/json")
	r.ContentLength = int64(len(b))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	r.Body, _ = r.GetBody()
	return nil
}

// DecodeResponse decodes an instance's answer into T. A 5xx is an
// *UpstreamError (it counts against the instance's breaker); a 4xx is a
// business answer, returned as the response fail builds around the error
// DecodeErrorBody makes of it, so it never does. A 204 is the zero T. Each
// after, when given, completes the decoded T from the response (its status,
// a header).
func DecodeResponse[T any](service string, mappings []httpkit.ErrorMapping, fail func(error) T, after ...func(*T, *http.Response)) httptransport.DecodeResponseFunc {
	return func(_ context.Context, resp *http.Response) (any, error) {
		if err := CheckResponse(resp); err != nil {
			return nil, err
		}
		if resp.StatusCode >= http.StatusBadRequest {
			return fail(DecodeErrorBody(resp, service, mappings)), nil
		}
		var out T
		if resp.StatusCode != http.StatusNoContent {
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				return nil, fmt.Errorf("decode %d response: %w", resp.StatusCode, err)
			}
		}
		for _, a := range after {
			if a != nil {
				a(&out, resp)
			}
		}
		return out, nil
	}
}

// DecodeErrorBody turns an error body back into the domain error of the
// first of mappings with its code and status, or an *httpkit.Error that
// re-encodes as the same status, code and details (401/403 from auth, 422
// validation, …) when it is not one of them. A body that is not one of ours
// is an *httpkit.Error "upstream_error" naming service, with the status.
func DecodeErrorBody(resp *http.Response, service string, mappings []httpkit.ErrorMapping) error {
	var body struct {
		Error httpkit.Error `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body); err != nil || body.Error.Code == "" {
		return httpkit.NewError(resp.StatusCode, "upstream_error", fmt.Sprintf("%s service answered %d", service, resp.StatusCode))
	}
	for _, m := range mappings {
		if m.Code == body.Error.Code && m.Status == resp.StatusCode {
			return m.Err
		}
	}
	e := body.Error
	e.Status = resp.StatusCode
	return &e
}
