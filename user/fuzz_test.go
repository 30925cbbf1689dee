package user

import (
	"net/http"
	"testing"

	"github.com/mercato-dev/mercato/shared/httpkit/httpfuzz"
)

// One fuzz target per route of the user service (httpfuzz.Decoder says what
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

func FuzzRegisterRequest(f *testing.F) { fuzz(f, http.MethodPost, "/api/v1/auth/register") }

func FuzzLoginRequest(f *testing.F) { fuzz(f, http.MethodPost, "/api/v1/auth/login") }

func FuzzRefreshRequest(f *testing.F) { fuzz(f, http.MethodPost, "/api/v1/auth/refresh") }

func FuzzLogoutRequest(f *testing.F) { fuzz(f, http.MethodPost, "/api/v1/auth/logout") }

func FuzzGetProfileRequest(f *testing.F) { fuzz(f, http.MethodGet, "/api/v1/users/me") }

func FuzzUpdateProfileRequest(f *testing.F) { fuzz(f, http.MethodPatch, "/api/v1/users/me") }

func FuzzListAddressesRequest(f *testing.F) {
	fuzz(f, http.MethodGet, "/api/v1/users/me/addresses")
}

func FuzzAddAddressRequest(f *testing.F) { fuzz(f, http.MethodPost, "/api/v1/users/me/addresses") }

func FuzzUpdateAddressRequest(f *testing.F) {
	fuzz(f, http.MethodPatch, "/api/v1/users/me/addresses/{id}")
}

func FuzzDeleteAddressRequest(f *testing.F) {
	fuzz(f, http.MethodDelete, "/api/v1/users/me/addresses/{id}")
}

func FuzzListUsersRequest(f *testing.F) { fuzz(f, http.MethodGet, "/api/v1/users") }

func FuzzGetUserRequest(f *testing.F) { fuzz(f, http.MethodGet, "/api/v1/internal/users/{id}") }
