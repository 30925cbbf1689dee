package order

import (
	"net/http"
	"testing"
	"time"

	"github.com/mercato-dev/mercato/shared/httpkit/httpfuzz"
)

// One fuzz target per route of the order service (httpfuzz.Decoder says what
// each asserts); fuzz_postgres_test.go fuzzes some through PostgreSQL.

func fuzz(f *testing.F, method, path string) {
	httpfuzz.Decoder(f, ServiceName, MakeHTTPHandler, checkRequest, method, path)
}

// checkRequest is what the endpoints check before calling the service
// (some checks need the time: a card's expiry).
func checkRequest(request any) error {
	switch r := request.(type) {
	case interface{ validate() error }:
		return r.validate()
	case interface{ validate(time.Time) error }:
		return r.validate(time.Now())
	}
	return nil
}

func FuzzPlaceOrderRequest(f *testing.F) { fuzz(f, http.MethodPost, "/api/v1/orders") }

func FuzzListOrdersRequest(f *testing.F) { fuzz(f, http.MethodGet, "/api/v1/orders") }

func FuzzGetOrderRequest(f *testing.F) { fuzz(f, http.MethodGet, "/api/v1/orders/{id}") }

func FuzzCancelOrderRequest(f *testing.F) {
	fuzz(f, http.MethodPost, "/api/v1/orders/{id}/cancel")
}

func FuzzSetStatusRequest(f *testing.F) { fuzz(f, http.MethodPost, "/api/v1/orders/{id}/status") }
