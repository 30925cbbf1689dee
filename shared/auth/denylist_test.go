package auth_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

var testKey = []byte(strings.Repeat("k", 32))

// TestDenylist: a revoked token is refused by Check and by Authenticate with
// token_revoked, others are not, and the entry lives as long as the token
// would have.
func TestDenylist(t *testing.T) {
	ctx := context.Background()
	rdb := testkit.Redis(t)
	base, _ := auth.NewTokens(testKey, 10*time.Minute)
	tokens := base.WithDenylist(auth.NewDenylist(rdb, log.NewNopLogger()))
	revoked, _ := tokens.Issue(auth.Identity{UserID: "u1", Role: auth.RoleCustomer})
	kept, _ := tokens.Issue(auth.Identity{UserID: "u1", Role: auth.RoleCustomer})

	_, at, err := tokens.Check(ctx, revoked)
	if err != nil || at.ID == "" || time.Until(at.ExpiresAt) <= 0 {
		t.Fatalf("Check before revocation = %+v, %v; want an id and a future expiry", at, err)
	}
	_, other, _ := tokens.Check(ctx, kept)
	if other.ID == at.ID {
		t.Fatalf("two tokens share the id %q", at.ID)
	}
	if err := auth.NewDenylist(rdb, log.NewNopLogger()).Revoke(ctx, at); err != nil {
		t.Fatalf("Revoke: %v", err)
	}

	if _, _, err := tokens.Check(ctx, revoked); !errors.Is(err, auth.ErrTokenRevoked) {
		t.Errorf("Check of the revoked token: %v, want ErrTokenRevoked", err)
	}
	if _, _, err := tokens.Check(ctx, kept); err != nil {
		t.Errorf("Check of another token of the same user: %v", err)
	}
	if _, err := base.Verify(revoked); err != nil {
		t.Errorf("Verify (signature only) of the revoked token: %v", err)
	}
	var seen auth.AccessToken
	ep := auth.Authenticate(tokens)(func(ctx context.Context, _ any) (any, error) {
		seen, _ = auth.AccessTokenFromContext(ctx)
		return nil, nil
	})
	if _, err := ep(auth.NewTokenContext(ctx, revoked), nil); !errors.Is(err, auth.ErrTokenRevoked) {
		t.Errorf("Authenticate let the revoked token through: %v", err)
	}
	if _, err := ep(auth.NewTokenContext(ctx, kept), nil); err != nil || seen != other {
		t.Errorf("Authenticate(kept) = %v, stored %+v, want %+v", err, seen, other)
	}
	if auth.ErrTokenRevoked.StatusCode() != 401 || auth.ErrTokenRevoked.ErrorCode() != "token_revoked" {
		t.Errorf("ErrTokenRevoked is %d %s", auth.ErrTokenRevoked.StatusCode(), auth.ErrTokenRevoked.ErrorCode())
	}

	// The entry outlives the token by a minute: a verifier whose clock runs
	// behind still takes the token after its expiry.
	// left is read first: the entry's TTL, read after, is then at most left
	// and a minute (and the millisecond Redis rounds to).
	left := time.Until(at.ExpiresAt)
	ttl, err := rdb.PTTL(ctx, auth.DenylistKeyPrefix+at.ID).Result()
	if err != nil || ttl <= left+50*time.Second || ttl > left+time.Minute+time.Millisecond {
		t.Errorf("entry TTL = %v, %v; want the token's remaining lifetime (%v) and a minute", ttl, err, left.Round(time.Second))
	}
	// Nothing to keep for tokens that are long dead or have no id.
	for _, dead := range []auth.AccessToken{{ID: "expired-jti", ExpiresAt: time.Now().Add(-2 * time.Minute)}, {ExpiresAt: time.Now().Add(time.Minute)}} {
		if err := auth.NewDenylist(rdb, log.NewNopLogger()).Revoke(ctx, dead); err != nil {
			t.Errorf("Revoke(%+v): %v", dead, err)
		}
	}
	if n, _ := rdb.Exists(ctx, auth.DenylistKeyPrefix+"expired-jti", auth.DenylistKeyPrefix).Result(); n != 0 {
		t.Errorf("%d entries written for dead tokens", n)
	}
}

// TestDenylistRedisDown: looking up fails open (logged), recording fails
// with ErrRevocationUnavailable, a 503.
func TestDenylistRedisDown(t *testing.T) {
	ctx := context.Background()
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer down.Close()
	var logged bytes.Buffer
	d := auth.NewDenylist(down, log.NewLogfmtLogger(&logged))
	base, _ := auth.NewTokens(testKey, time.Minute)
	tokens := base.WithDenylist(d)
	tok, _ := tokens.Issue(auth.Identity{UserID: "u1", Role: auth.RoleCustomer})

	id, at, err := tokens.Check(ctx, tok)
	if err != nil || id.UserID != "u1" {
		t.Errorf("Check with Redis down = %+v, %v; want the token let through", id, err)
	}
	if !strings.Contains(logged.String(), "token denylist unavailable") {
		t.Errorf("the failure was not logged: %q", logged.String())
	}
	err = d.Revoke(ctx, at)
	if !errors.Is(err, auth.ErrRevocationUnavailable) || auth.ErrRevocationUnavailable.StatusCode() != 503 {
		t.Errorf("Revoke with Redis down: %v, want ErrRevocationUnavailable (503)", err)
	}
}
