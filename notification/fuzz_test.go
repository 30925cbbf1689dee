package notification

import (
	"net/http"
	"testing"

	"github.com/mercato-dev/mercato/shared/httpkit/httpfuzz"
)

// One fuzz target per route of the notification service (httpfuzz.Decoder says what
// each asserts); fuzz_postgres_test.go fuzzes some through PostgreSQL.

func fuzz(f *testing.F, method, path string) {
	httpfuzz.Decoder(f, ServiceName, MakeHTTPHandler, checkRequest, method, path)
}

// checkRequest is what the endpoints check before calling the service.
func checkRequest(request any) error {
	if r, ok := request.(interface{ validate() error }); ok {
		return r.validate()
	}
	return nil
}

func FuzzListNotificationsRequest(f *testing.F) {
	fuzz(f, http.MethodGet, "/api/v1/notifications")
}

func FuzzGetPreferencesRequest(f *testing.F) {
	fuzz(f, http.MethodGet, "/api/v1/notifications/preferences")
}

func FuzzUpdatePreferencesRequest(f *testing.F) {
	fuzz(f, http.MethodPut, "/api/v1/notifications/preferences")
}

func FuzzSetPushTokenRequest(f *testing.F) {
	fuzz(f, http.MethodPut, "/api/v1/notifications/push-token")
}

func FuzzDeletePushTokenRequest(f *testing.F) {
	fuzz(f, http.MethodDelete, "/api/v1/notifications/push-token")
}
