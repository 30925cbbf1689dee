package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// A revoked token is refused with 401 token_revoked on a read, forwarded
// while the denylist was asked, and nothing of the instance's answer
// reaches the client; on a write it is refused before anything is
// forwarded; a token revoked on no list goes through. A read whose
// instance is down still says token_revoked, not 503.
func TestRevokedTokens(t *testing.T) {
	rdb := testkit.Redis(t)
	up := newUpstream(t, http.StatusOK)
	f := newGatewayWith(t, gatewayOptions{rdb: rdb, limit: generous, denylist: true}, up.hostPort())
	down := newGatewayWith(t, gatewayOptions{rdb: rdb, limit: generous, denylist: true}, "127.0.0.1:1")
	id := auth.Identity{UserID: fmt.Sprint("revoked-", time.Now().UnixNano()), Role: auth.RoleCustomer}
	kept, _ := f.tokens.Issue(id)
	revoked, _ := f.tokens.Issue(id)
	// Verified once before the logout: the verified-token cache must not
	// hide the revocation.
	if rec := f.do(t, "GET", "/api/v1/users/me", revoked, ""); rec.Code != http.StatusOK {
		t.Fatalf("before the logout: %d %s", rec.Code, rec.Body)
	}
	_, at, err := f.tokens.VerifyAccess(revoked)
	if err != nil {
		t.Fatal(err)
	}
	if err := auth.NewDenylist(rdb, log.NewNopLogger()).Revoke(context.Background(), at); err != nil {
		t.Fatal(err)
	}

	before := up.count()
	rec := f.do(t, "GET", "/api/v1/users/me", revoked, "")
	if rec.Code != http.StatusUnauthorized || errorCode(t, rec) != "token_revoked" {
		t.Fatalf("read with a revoked token: %d %s, want 401 token_revoked", rec.Code, rec.Body)
	}
	if body := rec.Body.String(); strings.Contains(body, "served_by") {
		t.Fatalf("the instance's answer reached the client: %s", body)
	}
	if up.count() > before+1 {
		t.Fatalf("one read reached the instance %d times", up.count()-before)
	}
	before = up.count()
	if rec := f.do(t, "POST", "/api/v1/users/me", revoked, `{}`); rec.Code != http.StatusUnauthorized || errorCode(t, rec) != "token_revoked" {
		t.Fatalf("write with a revoked token: %d %s, want 401 token_revoked", rec.Code, rec.Body)
	}
	if up.count() != before {
		t.Fatal("a write with a revoked token reached the instance")
	}
	if rec := down.do(t, "GET", "/api/v1/users/me", revoked, ""); rec.Code != http.StatusUnauthorized || errorCode(t, rec) != "token_revoked" {
		t.Fatalf("read with a revoked token, instance down: %d %s, want 401 token_revoked", rec.Code, rec.Body)
	}
	for _, method := range []string{"GET", "POST"} {
		if rec := f.do(t, method, "/api/v1/users/me", kept, `{}`); rec.Code != http.StatusOK {
			t.Fatalf("%s with a token not revoked: %d %s", method, rec.Code, rec.Body)
		}
	}
}
