package mercato_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mercato-dev/mercato/clients/go/mercato"
)

// The helpers put the API's paths under /api/v1 and send the token and
// request id; the generated code parses success and error answers. (The
// end-to-end tests use the client against the real platform.)
func TestClientAgainstAFakeGateway(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == "POST" && r.URL.Path == "/api/v1/auth/login":
			var c mercato.Credentials
			_ = json.NewDecoder(r.Body).Decode(&c)
			if c.Password != "correct-horse" {
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"error":{"code":"invalid_credentials","message":"wrong"}}`))
				return
			}
			_, _ = w.Write([]byte(`{"access_token":"tok","refresh_token":"ref","token_type":"Bearer","expires_in":900}`))
		case r.Method == "GET" && r.URL.Path == "/api/v1/users/me" && r.Header.Get("Authorization") == "Bearer tok" &&
			r.Header.Get("X-Request-ID") == "req-1":
			_, _ = w.Write([]byte(`{"user":{"id":"0b8a4a4e-0f7c-4c45-9d49-1f2b8c9d0e11","email":"ada@example.com","first_name":"Ada",` +
				`"last_name":"Lovelace","role":"customer","is_active":true,"is_verified":false,` +
				`"created_at":"2026-12-02T10:00:00Z","updated_at":"2026-12-02T10:00:00Z"}}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"code":"not_found","message":"no such route"}}`))
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	api, err := mercato.New(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}

	bad, err := api.LoginWithResponse(ctx, mercato.Credentials{Email: "ada@example.com", Password: "wrong"})
	if err != nil || bad.StatusCode() != http.StatusUnauthorized || bad.JSON401 == nil || bad.JSON401.Error.Code != "invalid_credentials" {
		t.Fatalf("wrong password: %v %+v", err, bad)
	}
	login, err := api.LoginWithResponse(ctx, mercato.Credentials{Email: "ada@example.com", Password: "correct-horse"})
	if err != nil || login.JSON200 == nil || login.JSON200.AccessToken != "tok" {
		t.Fatalf("login: %v %s", err, login.Body)
	}
	signedIn, err := mercato.New(srv.URL, mercato.WithToken(login.JSON200.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	me, err := signedIn.GetProfileWithResponse(ctx, mercato.RequestID("req-1"))
	if err != nil || me.JSON200 == nil || me.JSON200.User.Email != "ada@example.com" || me.JSON200.User.Role != mercato.Customer {
		t.Fatalf("profile: %v %s", err, me.Body)
	}
}
