// Package mercato is a Go client of Mercato's REST API, generated from
// docs/openapi.yaml by oapi-codegen (mercato.gen.go; `make generate`
// regenerates it, and TestGeneratedClientIsCurrent fails when it is stale),
// with the few helpers below.
//
// Every operation of the document is a method named after its operationId,
// taking the request body (and query or Idempotency-Key parameters, where
// the operation has them) and returning the parsed answer: JSON200 (or
// JSON201) on success, JSON4xx or JSONDefault (the API's error body)
// otherwise, and HTTPResponse for the status and headers.
//
// A PATCH body's field that null clears (a category's parent_id, a product's
// compare_price, ...) is a nullable.Nullable (github.com/oapi-codegen/nullable):
// left zero it is not sent and keeps its value, Set(v) sends v, SetNull()
// sends null; the other fields are pointers, nil for absent.
//
//	api, _ := mercato.New("http://127.0.0.1:3000")
//	login, err := api.LoginWithResponse(ctx, mercato.Credentials{Email: "ada@example.com", Password: "correct-horse"})
//	// login.JSON200.AccessToken, or login.StatusCode() and login.JSON401.Error.Code
//	order, err := api.PlaceOrderWithResponse(ctx, &mercato.PlaceOrderParams{IdempotencyKey: &key}, checkout,
//		mercato.BearerToken(login.JSON200.AccessToken))
package mercato

import (
	"context"
	"net/http"
	"strings"
)

// New returns a client of the API served by the gateway at gatewayURL
// ("http://127.0.0.1:3000"); the API's paths are under /api/v1.
func New(gatewayURL string, opts ...ClientOption) (*ClientWithResponses, error) {
	return NewClientWithResponses(strings.TrimSuffix(gatewayURL, "/")+"/api/v1", opts...)
}

// WithToken sends token as the bearer token of every request of the client.
func WithToken(token string) ClientOption {
	return WithRequestEditorFn(BearerToken(token))
}

// BearerToken sends token as the bearer token of one request: pass it to a
// call, after its arguments.
func BearerToken(token string) RequestEditorFn {
	return func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}

// RequestID sends id as the request's X-Request-ID, which the answer echoes
// and every log line of the request carries.
func RequestID(id string) RequestEditorFn {
	return func(_ context.Context, r *http.Request) error {
		r.Header.Set("X-Request-ID", id)
		return nil
	}
}
