package notification_test

import (
	"net/http"
	"testing"

	"github.com/mercato-dev/mercato/shared/httpkit/httpfuzz"
)

// Routes fuzzed through the real service and PostgreSQL: the list whose
// page overflowed into a negative OFFSET, and a write of free text.

func FuzzListNotificationsWithPostgres(f *testing.F) {
	s := newStack(f)
	token, _ := s.userToken(f)
	httpfuzz.Fuzz(f, s.srv.Config.Handler, httpfuzz.Route{Method: http.MethodGet, Path: "/api/v1/notifications", Header: httpfuzz.Bearer(token)})
}

func FuzzSetPushTokenWithPostgres(f *testing.F) {
	s := newStack(f)
	token, _ := s.userToken(f)
	httpfuzz.Fuzz(f, s.srv.Config.Handler, httpfuzz.Route{Method: http.MethodPut, Path: "/api/v1/notifications/push-token", Header: httpfuzz.Bearer(token)},
		httpfuzz.Input{Body: `{"token":"abc","platform":"ios"}`})
}
