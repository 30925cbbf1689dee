package notification

import (
	"net/http"
	"testing"
	"time"

	"github.com/mercato-dev/mercato/shared/httpkit/httpfuzz"
)

// Fuzz tests of every route's decoder and request checks (one target per
// route, so `make fuzz` fuzzes each): whatever arrives, the answer is a
// value or a 4xx JSON error, never a 5xx nor a panic. The endpoints are
// stubs that only validate (httpfuzz.Stubbed); fuzz_postgres_test.go sends
// the same inputs through the real service and PostgreSQL.

// checkRequest is what the endpoints check before calling the service.
func checkRequest(request any) error {
	switch r := request.(type) {
	case interface{ validate() error }:
		return r.validate()
	case interface{ validate(time.Time) error }:
		return r.validate(time.Now())
	}
	return nil
}

func fuzzRoute(f *testing.F, method, path string, seeds ...httpfuzz.Input) {
	h := httpfuzz.Stubbed(ServiceName, MakeHTTPHandler, checkRequest)
	httpfuzz.Fuzz(f, h, httpfuzz.Route{Method: method, Path: path}, seeds...)
}

func FuzzListNotificationsRequest(f *testing.F) {
	fuzzRoute(f, http.MethodGet, "/api/v1/notifications")
}

func FuzzGetPreferencesRequest(f *testing.F) {
	fuzzRoute(f, http.MethodGet, "/api/v1/notifications/preferences")
}

func FuzzUpdatePreferencesRequest(f *testing.F) {
	fuzzRoute(f, http.MethodPut, "/api/v1/notifications/preferences")
}

func FuzzSetPushTokenRequest(f *testing.F) {
	fuzzRoute(f, http.MethodPut, "/api/v1/notifications/push-token")
}

func FuzzDeletePushTokenRequest(f *testing.F) {
	fuzzRoute(f, http.MethodDelete, "/api/v1/notifications/push-token")
}
