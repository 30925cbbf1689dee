package auth

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var key = []byte(strings.Repeat("k", 32))

func TestIssueVerify(t *testing.T) {
	tokens, err := NewTokens(key, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{UserID: "u1", Email: "a@b.c", Role: RoleAdmin}
	tok, err := tokens.Issue(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tokens.Verify(tok)
	if err != nil || got != want {
		t.Fatalf("Verify = %+v, %v; want %+v", got, err, want)
	}
}

func TestVerifyRejects(t *testing.T) {
	tokens, _ := NewTokens(key, time.Minute)
	other, _ := NewTokens([]byte(strings.Repeat("o", 32)), time.Minute)
	valid, _ := tokens.Issue(Identity{UserID: "u1", Role: RoleCustomer})
	forged, _ := other.Issue(Identity{UserID: "u1", Role: RoleAdmin})

	expiredTokens, _ := NewTokens(key, time.Minute)
	expiredTokens.now = func() time.Time { return time.Now().Add(-time.Hour) }
	expired, _ := expiredTokens.Issue(Identity{UserID: "u1", Role: RoleCustomer})

	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "u1", "role": "admin", "iss": "mercato",
		"exp": time.Now().Add(time.Hour).Unix()})
	noneTok, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	badRole, _ := tokens.Issue(Identity{UserID: "u1", Role: "root"})

	tests := []struct {
		name, token string
		want        error
	}{
		{"garbage", "not.a.token", ErrUnauthenticated},
		{"other key", forged, ErrUnauthenticated},
		{"alg none", noneTok, ErrUnauthenticated},
		{"expired", expired, ErrTokenExpired},
		{"unknown role", badRole, ErrUnauthenticated},
		{"tampered", valid[:len(valid)-2] + "xx", ErrUnauthenticated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tokens.Verify(tc.token); !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNewTokensRejectsShortKey(t *testing.T) {
	if _, err := NewTokens([]byte("short"), time.Minute); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestMiddleware(t *testing.T) {
	tokens, _ := NewTokens(key, time.Minute)
	customer, _ := tokens.Issue(Identity{UserID: "c", Role: RoleCustomer})
	admin, _ := tokens.Issue(Identity{UserID: "a", Role: RoleAdmin})
	var seen Identity
	ep := Authenticate(tokens)(RequireRole(RoleAdmin)(func(ctx context.Context, _ any) (any, error) {
		seen, _ = FromContext(ctx)
		return "ok", nil
	}))
	call := func(token string) error {
		r, _ := http.NewRequest("GET", "/", nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		_, err := ep(HTTPToContext(context.Background(), r), nil)
		return err
	}
	if err := call(""); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("no token: %v", err)
	}
	if err := call(customer); !errors.Is(err, ErrForbidden) {
		t.Errorf("customer: %v", err)
	}
	if err := call(admin); err != nil || seen.UserID != "a" {
		t.Errorf("admin: %v, identity %+v", err, seen)
	}
	if ErrForbidden.StatusCode() != 403 || ErrTokenExpired.StatusCode() != 401 {
		t.Error("status codes")
	}
}

func TestServiceTokenAndTokenContext(t *testing.T) {
	tokens, _ := NewTokens(key, time.Minute)
	tok, err := tokens.ServiceToken("order")
	if err != nil {
		t.Fatal(err)
	}
	id, err := tokens.Verify(tok)
	if err != nil || id.Role != RoleService || id.UserID != "service:order" {
		t.Fatalf("service token verified as %+v, %v", id, err)
	}
	// A token put in the context is what ContextToHTTP sends.
	r, _ := http.NewRequest("GET", "/", nil)
	ContextToHTTP(NewTokenContext(context.Background(), tok), r)
	if BearerToken(r.Header) != tok {
		t.Fatalf("Authorization = %q", r.Header.Get("Authorization"))
	}
	// RequireRole accepts any of its roles.
	ep := Authenticate(tokens)(RequireRole(RoleAdmin, RoleService)(func(context.Context, any) (any, error) { return "ok", nil }))
	if _, err := ep(NewTokenContext(context.Background(), tok), nil); err != nil {
		t.Fatalf("service refused: %v", err)
	}
	customer, _ := tokens.Issue(Identity{UserID: "c", Role: RoleCustomer})
	if _, err := ep(NewTokenContext(context.Background(), customer), nil); !errors.Is(err, ErrForbidden) {
		t.Fatalf("customer let through: %v", err)
	}
}
