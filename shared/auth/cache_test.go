package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/mercato-dev/mercato/shared/testkit"
)

var cacheKey = []byte("cache-test-key-that-is-32-bytes!!")

// A remembered token verifies until its expiry and not after; a forged one
// is never remembered; the cache holds at most its size.
func TestVerifiedCache(t *testing.T) {
	base, _ := NewTokens(cacheKey, time.Minute)
	now := time.Now()
	base.now = func() time.Time { return now }
	tokens := base.WithVerifiedCache(2)
	tok, _ := tokens.Issue(Identity{UserID: "u1", Role: RoleCustomer})
	for range 2 {
		if id, err := tokens.Verify(tok); err != nil || id.UserID != "u1" {
			t.Fatalf("Verify = %+v, %v", id, err)
		}
	}
	if _, ok := tokens.cache.get(tok); !ok {
		t.Fatal("a verified token is not remembered")
	}
	now = now.Add(time.Minute + time.Second)
	if _, err := tokens.Verify(tok); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("remembered token past its expiry: %v, want ErrTokenExpired", err)
	}
	if _, ok := tokens.cache.get(tok); ok {
		t.Fatal("an expired token stays remembered")
	}

	forged := tok[:len(tok)-2] + "xx"
	if _, err := tokens.Verify(forged); err == nil {
		t.Fatal("a forged token verified")
	}
	if _, ok := tokens.cache.get(forged); ok {
		t.Fatal("a forged token is remembered")
	}
	for i := range 5 {
		more, _ := tokens.Issue(Identity{UserID: fmt.Sprint("u", i), Role: RoleCustomer})
		if _, err := tokens.Verify(more); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(tokens.cache.tokens); n > 2 {
		t.Fatalf("the cache holds %d tokens, more than its 2", n)
	}
}

// Concurrent look-ups share pipelines and each gets its own answer; a
// revocation is seen by every look-up that starts after it, cache or not.
func TestDenylistLookupsTogether(t *testing.T) {
	ctx := context.Background()
	base, _ := NewTokens(cacheKey, time.Minute)
	tokens := base.WithVerifiedCache(100).WithDenylist(NewDenylist(testkit.Redis(t), log.NewNopLogger()))
	var toks []string
	var ats []AccessToken
	for i := range 40 {
		tok, _ := tokens.Issue(Identity{UserID: fmt.Sprint("u", i), Role: RoleCustomer})
		_, at, err := tokens.Check(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		toks, ats = append(toks, tok), append(ats, at)
	}
	for i := 0; i < len(ats); i += 3 {
		if err := tokens.denylist.Revoke(ctx, ats[i]); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for round := range 5 {
		for i, tok := range toks {
			wg.Go(func() {
				_, _, err := tokens.Check(ctx, tok)
				if revoked := i%3 == 0; revoked != errors.Is(err, ErrTokenRevoked) || (!revoked && err != nil) {
					t.Errorf("round %d, token %d (revoked %v): %v", round, i, revoked, err)
				}
			})
		}
	}
	wg.Wait()
}
