package payment

import (
	"net/http"
	"testing"
	"time"

	"github.com/mercato-dev/mercato/shared/httpkit/httpfuzz"
)

// One fuzz target per route of the payment service (httpfuzz.Decoder says what
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

func FuzzChargeRequest(f *testing.F) { fuzz(f, http.MethodPost, "/internal/payments") }

func FuzzChargeUnderAPIPrefixRequest(f *testing.F) {
	fuzz(f, http.MethodPost, "/api/v1/internal/payments")
}

func FuzzListPaymentsRequest(f *testing.F) { fuzz(f, http.MethodGet, "/api/v1/payments") }

func FuzzGetPaymentRequest(f *testing.F) { fuzz(f, http.MethodGet, "/api/v1/payments/{id}") }

func FuzzRefundRequest(f *testing.F) { fuzz(f, http.MethodPost, "/api/v1/payments/{id}/refunds") }

func FuzzWebhookRequest(f *testing.F) {
	fuzz(f, http.MethodPost, "/api/v1/webhooks/payments/{provider}")
}
