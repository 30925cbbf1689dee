package user_test

import (
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/httpkit/httpfuzz"
)

// The routes that failed with a 500 before (a NUL in the login email, a
// page whose OFFSET overflowed) fuzzed through the real service and
// PostgreSQL: httpfuzz's seeds hold both.

func FuzzLoginWithPostgres(f *testing.F) {
	s := newStack(f)
	httpfuzz.Fuzz(f, s.srv.Config.Handler, httpfuzz.Route{Method: http.MethodPost, Path: "/api/v1/auth/login"},
		httpfuzz.Input{Body: `{"email":"ada@example.com","password":"password123"}`})
}

func FuzzListUsersWithPostgres(f *testing.F) {
	s := newStack(f)
	admin, err := s.tokens.Issue(auth.Identity{UserID: uuid.NewString(), Email: "root@example.com", Role: auth.RoleAdmin})
	if err != nil {
		f.Fatal(err)
	}
	httpfuzz.Fuzz(f, s.srv.Config.Handler, httpfuzz.Route{Method: http.MethodGet, Path: "/api/v1/users", Header: httpfuzz.Bearer(admin)})
}
