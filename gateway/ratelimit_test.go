package gateway

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// defaultLimit is cmd/gateway's per-client limit.
var defaultLimit = redis_rate.Limit{Rate: DefaultRatePerMinute, Burst: DefaultRateBurst, Period: time.Minute}

// failingLogins is a user-service instance whose logins fail with status
// (a request that trips a bug, as a NUL byte in the email once did) while
// everything else works.
func failingLogins(t *testing.T, status int) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/auth/login" {
			failure := httpkit.Internal() // what a service answers for a bug
			if status == http.StatusServiceUnavailable {
				failure = httpkit.Unavailable("a server this request needs is unavailable")
			}
			httpkit.WriteError(w, failure)
			return
		}
		httpkit.WriteJSON(w, http.StatusOK, map[string]string{"id": "u1"})
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Host
}

// One anonymous client sends its whole allowance of requests that fail
// upstream, as fast as it can; another user's requests, during the attack
// and after it, keep succeeding: no breaker opens. On the settings before
// (500s counted, 20 calls in 10 s enough to open a breaker at 50 % errors)
// the user got 503 within the first few dozen failed logins.
func TestOneClientCannotOpenBreakersForOthers(t *testing.T) {
	for _, status := range []int{
		http.StatusInternalServerError, // a bug: not an instance failure at all
		http.StatusServiceUnavailable,  // an outage, but one client's cannot reach the volume threshold
	} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			f := newGateway(t, testkit.Redis(t), defaultLimit, failingLogins(t, status), failingLogins(t, status))
			token, _ := f.tokens.Issue(auth.Identity{UserID: "victim-" + rand.Text(), Role: auth.RoleCustomer})
			attacker := newClientAddr()
			wantAttack := http.StatusBadGateway
			if status == http.StatusServiceUnavailable {
				wantAttack = http.StatusServiceUnavailable
			}
			victim := func(when string) {
				t.Helper()
				if rec := f.do(t, "GET", "/api/v1/users/me", token, ""); rec.Code != http.StatusOK {
					t.Fatalf("%s: the other user got %d %s", when, rec.Code, rec.Body)
				}
			}

			sent := 0
			for ; sent < 10*DefaultRateBurst; sent++ {
				rec := f.doFrom(t, attacker, "POST", "/api/v1/auth/login", "", `{"email":"a\u0000@b.c","password":"x"}`)
				if rec.Code == http.StatusTooManyRequests {
					break
				}
				if rec.Code != wantAttack {
					t.Fatalf("attack request %d: %d %s, want %d", sent, rec.Code, rec.Body, wantAttack)
				}
				if sent%10 == 9 {
					victim(fmt.Sprintf("after %d failed logins", sent+1))
				}
			}
			if sent < DefaultRateBurst || sent == 10*DefaultRateBurst {
				t.Fatalf("the attacker got %d requests through before its first 429; want its burst (%d) and a few", sent, DefaultRateBurst)
			}
			for i := range 20 {
				victim(fmt.Sprintf("after the attack, request %d", i))
			}
		})
	}
}

// Requests with a bad token draw on their address's allowance: once it is
// spent they get 429, not 401, and so do the address's anonymous requests.
func TestBadTokensCountAgainstTheAddress(t *testing.T) {
	up := newUpstream(t, http.StatusOK)
	limit := redis_rate.Limit{Rate: 10, Burst: 10, Period: time.Minute}
	f := newGateway(t, testkit.Redis(t), limit, up.hostPort())
	forger := newClientAddr()
	// A token signed with another key: a forgery.
	other, _ := auth.NewTokens([]byte("another-key-that-is-32-bytes-long!"), time.Minute)
	bad, _ := other.Issue(auth.Identity{UserID: "u1", Role: auth.RoleAdmin})

	codes := map[int]int{}
	for range 30 {
		codes[f.doFrom(t, forger, "GET", "/api/v1/users/me", bad, "").Code]++
	}
	if codes[http.StatusUnauthorized] != 10 || codes[http.StatusTooManyRequests] != 20 {
		t.Fatalf("30 forged-token requests: %v, want 10 × 401 and 20 × 429", codes)
	}
	if rec := f.doFrom(t, forger, "POST", "/api/v1/auth/login", "", `{}`); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("anonymous request from the same address: %d, want 429 (one allowance)", rec.Code)
	}
	if rec := f.doFrom(t, newClientAddr(), "GET", "/api/v1/users/me", bad, ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("forged token from another address: %d, want 401", rec.Code)
	}
	if up.count() != 0 {
		t.Fatalf("%d forged-token requests reached the upstream", up.count())
	}
}

// Webhooks have an allowance of their own, per address: a flood of
// anonymous requests does not delay them, and a flood of them does not eat
// the anonymous allowance.
func TestWebhooksHaveTheirOwnAllowance(t *testing.T) {
	up := newUpstream(t, http.StatusOK)
	f := newGatewayWith(t, gatewayOptions{
		rdb:          testkit.Redis(t),
		limit:        redis_rate.Limit{Rate: 5, Burst: 5, Period: time.Minute},
		webhookLimit: redis_rate.Limit{Rate: 8, Burst: 8, Period: time.Minute},
	}, up.hostPort())
	count := func(remote, method, path string, n int) map[int]int {
		codes := map[int]int{}
		for range n {
			codes[f.doFrom(t, remote, method, path, "", `{}`).Code]++
		}
		return codes
	}
	const webhook = "/api/v1/webhooks/payments/sandbox"

	t.Run("anonymous flood, then webhooks", func(t *testing.T) {
		addr := newClientAddr()
		if c := count(addr, "POST", "/api/v1/auth/login", 10); c[http.StatusOK] != 5 || c[http.StatusTooManyRequests] != 5 {
			t.Fatalf("anonymous: %v, want 5 × 200 and 5 × 429", c)
		}
		if c := count(addr, "POST", webhook, 10); c[http.StatusOK] != 8 || c[http.StatusTooManyRequests] != 2 {
			t.Fatalf("webhooks after the anonymous allowance was spent: %v, want 8 × 200 and 2 × 429", c)
		}
	})
	t.Run("webhook flood, then anonymous", func(t *testing.T) {
		addr := newClientAddr()
		if c := count(addr, "POST", webhook, 10); c[http.StatusOK] != 8 || c[http.StatusTooManyRequests] != 2 {
			t.Fatalf("webhooks: %v, want 8 × 200 and 2 × 429", c)
		}
		if c := count(addr, "POST", "/api/v1/auth/login", 10); c[http.StatusOK] != 5 || c[http.StatusTooManyRequests] != 5 {
			t.Fatalf("anonymous after the webhook allowance was spent: %v, want 5 × 200 and 5 × 429", c)
		}
	})
}

func TestBreakerOptionsAreAboveOneClient(t *testing.T) {
	opts := breakerOptions(discovery.Options{}, map[RateClass]redis_rate.Limit{ClientRate: defaultLimit, WebhookRate: defaultLimit})
	// 100 at once, then 10 a second for 10 s, each up to 3 attempts.
	if opts.RequestVolumeThreshold != 601 || opts.ErrorPercentThreshold != 50 || opts.SleepWindow != 2*time.Second {
		t.Fatalf("breaker options %+v", opts)
	}
}

// Behind a load balancer (the AWS overlay's ALB) every request comes from
// one of its few addresses. With the balancer's range trusted, each client
// is counted at the address the balancer appended to X-Forwarded-For, which
// is also the last address the service gets (the user service's login
// throttle reads it); what the client itself put in X-Forwarded-For moves
// nothing. Before, one client's flood spent every other anonymous client's
// allowance, and the login throttle counted the balancer.
func TestClientsBehindATrustedProxy(t *testing.T) {
	up := newUpstream(t, http.StatusOK)
	limit := redis_rate.Limit{Rate: 3, Burst: 3, Period: time.Minute}
	ip := func() string { return netip.MustParseAddrPort(newClientAddr()).Addr().String() }
	balancer := "10.0.3.7:41000"
	f := newGatewayWith(t, gatewayOptions{rdb: testkit.Redis(t), limit: limit,
		trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16")}}, up.hostPort())

	flooder, other := ip(), ip()
	codes := map[int]int{}
	for i := range 6 {
		// The flooder forges a new address of its own each time; the
		// balancer appends the one it really comes from.
		codes[f.doFrom(t, balancer, "GET", "/api/v1/products", "", "", "X-Forwarded-For", ip()+", "+flooder).Code]++
		if i == 0 {
			up.mu.Lock()
			got := up.requests[0].Header.Get("X-Forwarded-For")
			up.mu.Unlock()
			if !strings.HasSuffix(got, ", "+flooder) || strings.Contains(got, "10.0.3.7") {
				t.Fatalf("the service got X-Forwarded-For %q, want it to end with the client, %s, and no balancer", got, flooder)
			}
		}
	}
	if codes[http.StatusOK] != 3 || codes[http.StatusTooManyRequests] != 3 {
		t.Fatalf("one client through the balancer: %v, want 3 × 200 and 3 × 429", codes)
	}
	if rec := f.doFrom(t, balancer, "GET", "/api/v1/products", "", "", "X-Forwarded-For", other); rec.Code != http.StatusOK {
		t.Fatalf("another client through the same balancer: %d, want 200", rec.Code)
	}

	// A client that is not behind the balancer cannot claim an address.
	direct := newClientAddr()
	codes = map[int]int{}
	for range 4 {
		codes[f.doFrom(t, direct, "GET", "/api/v1/products", "", "", "X-Forwarded-For", ip()).Code]++
	}
	if codes[http.StatusOK] != 3 || codes[http.StatusTooManyRequests] != 1 {
		t.Fatalf("a direct client forging X-Forwarded-For: %v, want 3 × 200 and 1 × 429", codes)
	}
}

// An IPv6 client has a whole /64 to send from: a new address per request
// still draws on one allowance, and a client in the next /64 keeps its own.
// Counted per address, every one of the six requests was a 200.
func TestIPv6ClientsAreCountedPerSlash64(t *testing.T) {
	up := newUpstream(t, http.StatusOK)
	limit := redis_rate.Limit{Rate: 3, Burst: 3, Period: time.Minute}
	f := newGateway(t, testkit.Redis(t), limit, up.hostPort())
	block := netip.MustParseAddrPort(newClientAddr()).Addr().As16()

	codes := map[int]int{}
	for range 6 {
		addr := block
		_, _ = rand.Read(addr[8:]) // another interface id in the same /64
		codes[f.doFrom(t, netip.AddrPortFrom(netip.AddrFrom16(addr), 1000).String(), "GET", "/api/v1/products", "", "").Code]++
	}
	if codes[http.StatusOK] != 3 || codes[http.StatusTooManyRequests] != 3 {
		t.Fatalf("six addresses of one /64: %v, want 3 × 200 and 3 × 429", codes)
	}
	block[7]++ // the next /64
	if rec := f.doFrom(t, netip.AddrPortFrom(netip.AddrFrom16(block), 1000).String(), "GET", "/api/v1/products", "", ""); rec.Code != http.StatusOK {
		t.Fatalf("a client in the next /64: %d, want 200", rec.Code)
	}
}
