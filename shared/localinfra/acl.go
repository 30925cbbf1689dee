package localinfra

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/consul/api"
)

// This file is the one definition of who may do what on the platform's Redis
// and Consul: `make run` (mercato-local) and the test helpers (testkit, e2e)
// start their servers with it, so what the tests prove is what runs.

// RedisAdmin is the Redis user of tooling and tests (every command, every
// key). No service runs as it.
const RedisAdmin = "admin"

// RedisGrant is some Redis commands allowed on some keys: one ACL selector,
// so each command reaches only the keys listed with it.
type RedisGrant struct {
	// Commands are ACL command rules: "+xadd", "+xgroup|create".
	Commands []string
	// Keys are ACL key patterns: "~events" (read and write),
	// "%R~auth:revoked:*" (read only). Empty: commands without keys.
	Keys []string
}

// Access is what one program of the platform may do: it registers in Consul
// as Service (and reads the catalogue), and logs in to Redis as the user
// Service with the grants Redis.
type Access struct {
	Service string
	Redis   []RedisGrant
}

// Key patterns, each naming the code that uses the keys. shared cannot
// import the services, so acl_test.go checks the names it can see.
const (
	eventStream      = "events"           // events.DefaultStream
	deadLetterStream = "events.dead"      // events.DefaultDeadLetterStream
	denylistKeys     = "auth:revoked:*"   // auth.DenylistKeyPrefix
	throttleKeys     = "login:fail:*"     // user.ThrottleKeyPrefix
	cacheKeys        = "catalogue:*"      // product.CacheVersionKey and entryKey
	rateLimitKeys    = "rate:ratelimit:*" // redis_rate's "rate:" + gateway's rateKey
)

// PlatformAccess is the table: one entry per service and the gateway, each
// with only what its code does on Redis.
func PlatformAccess() []Access {
	// The grants the services combine.
	// connection is every user's: the handshake and the health checks.
	// go-redis logs in with HELLO (AUTH on RESP2). It also sends CLIENT
	// SETINFO and ignores its refusal (Redis 7.0 does not know it).
	connection := RedisGrant{Commands: []string{"+ping", "+hello", "+auth"}}
	// checkRevoked is the token denylist lookup every token-checking
	// service makes (auth.Denylist.Revoked).
	checkRevoked := RedisGrant{Commands: []string{"+exists"}, Keys: []string{"%R~" + denylistKeys}}
	// publish is the outbox relay's (events.Relay): its XADD, and the
	// trimming of what every consumer group is done with (XINFO GROUPS,
	// XPENDING, XTRIM).
	publish := RedisGrant{Commands: []string{"+xadd", "+xinfo|groups", "+xpending", "+xtrim"}, Keys: []string{"~" + eventStream}}
	// consume is an events.Consumer: its group on the stream (created with
	// MKSTREAM; XINFO GROUPS for its pending and lag gauges), and the
	// dead-letter XADD it makes with the XACK in one MULTI/EXEC. Redis ACLs
	// cannot limit which consumer group a user reads as.
	consume := []RedisGrant{
		{Commands: []string{"+xgroup|create", "+xreadgroup", "+xautoclaim", "+xpending", "+xack", "+xinfo|groups"}, Keys: []string{"~" + eventStream}},
		{Commands: []string{"+xadd"}, Keys: []string{"~" + deadLetterStream}},
		{Commands: []string{"+multi", "+exec", "+discard"}},
	}

	with := func(gs ...[]RedisGrant) []RedisGrant {
		out := []RedisGrant{connection}
		for _, g := range gs {
			out = append(out, g...)
		}
		return out
	}
	return []Access{
		{Service: "user", Redis: with([]RedisGrant{publish,
			// Logout revokes the access token (auth.Denylist.Revoke: SET PX).
			{Commands: []string{"+set", "+exists"}, Keys: []string{"~" + denylistKeys}},
			// Login throttling: two Lua scripts (user/throttle.go) and the
			// commands they call (TIME: every instance judges by Redis's clock).
			{Commands: []string{"+evalsha", "+eval", "+time", "+hmget", "+hincrby", "+hset", "+pexpire", "+del", "+exists"}, Keys: []string{"~" + throttleKeys}},
		})},
		{Service: "product", Redis: with([]RedisGrant{publish, checkRevoked,
			// The catalogue cache (product/cache.go): the version counter
			// and the entries (INCRBY moves a version Redis lost past
			// the ones it had).
			{Commands: []string{"+get", "+set", "+incr", "+incrby"}, Keys: []string{"~" + cacheKeys}},
		})},
		{Service: "order", Redis: with([]RedisGrant{publish, checkRevoked}, consume)},
		{Service: "payment", Redis: with([]RedisGrant{publish, checkRevoked}, consume)},
		{Service: "notification", Redis: with([]RedisGrant{checkRevoked}, consume)},
		{Service: "gateway", Redis: with([]RedisGrant{checkRevoked,
			// The rate limiter: redis_rate's GCRA script (GET, SET, TIME inside).
			{Commands: []string{"+evalsha", "+eval", "+get", "+set", "+time"}, Keys: []string{"~" + rateLimitKeys}},
		})},
	}
}

// RedisUsers lists the Redis users the ACL has: every service's and
// RedisAdmin, sorted.
func RedisUsers() []string {
	users := []string{RedisAdmin}
	for _, a := range PlatformAccess() {
		users = append(users, a.Service)
	}
	sort.Strings(users)
	return users
}

// RedisACLFile renders the ACL file for passwords (user → password; every
// user of RedisUsers must have one). Passwords are stored as SHA-256
// hashes. The default user is off: a client that does not log in can do
// nothing (NOAUTH), and no one can log in as it. Its permissions are all
// the same, because Redis replays its append-only file as the default user
// and EXEC checks that user's permissions again (a Redis bug, fixed after
// 7.x): denied every command, it refused every transaction and script in
// the file on a restart, and their writes (dead letters, throttle and rate
// limit state) were lost.
func RedisACLFile(passwords map[string]string) (string, error) {
	var b strings.Builder
	b.WriteString("user default off ~* &* +@all\n")
	line := func(user, rules string) error {
		pw := passwords[user]
		if pw == "" {
			return fmt.Errorf("localinfra: redis: no password for ACL user %q", user)
		}
		h := sha256.Sum256([]byte(pw))
		fmt.Fprintf(&b, "user %s on #%s resetkeys resetchannels -@all %s\n", user, hex.EncodeToString(h[:]), rules)
		return nil
	}
	if err := line(RedisAdmin, "+@all ~* &*"); err != nil {
		return "", err
	}
	for _, a := range PlatformAccess() {
		var rules []string
		for i, g := range a.Redis {
			r := strings.Join(append(append([]string(nil), g.Commands...), g.Keys...), " ")
			if i > 0 {
				r = "(" + r + ")" // a selector: these commands on these keys only
			}
			rules = append(rules, r)
		}
		if err := line(a.Service, strings.Join(rules, " ")); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

// ConsulPolicy is the ACL policy of service's Consul token: it may register
// (and deregister, and update the checks of) instances of its own name only,
// and read the whole catalogue (its upstreams, their health).
func ConsulPolicy(service string) string {
	return ConsulReadPolicy + fmt.Sprintf("service %q { policy = \"write\" }\n", service)
}

// ConsulReadPolicy reads the catalogue and nothing more: Prometheus's
// discovery, and the part every service's policy starts with.
const ConsulReadPolicy = `service_prefix "" { policy = "read" }
node_prefix "" { policy = "read" }
`

// RandomRedisPasswords returns a fresh random password for each of
// RedisUsers, for servers whose passwords need not outlive them (tests).
func RandomRedisPasswords() map[string]string {
	pw := map[string]string{}
	for _, u := range RedisUsers() {
		b := make([]byte, 16)
		_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
		pw[u] = hex.EncodeToString(b)
	}
	return pw
}

// consulTokens are the ACL tokens a Consul agent made (Consul.token).
type consulTokens struct {
	mu    sync.Mutex
	made  map[string]string // secrets, by policy name
	rules map[string]string // the policies' rules, by policy name, for Start
}

// ServiceToken returns the ACL token of service, with the policy
// ConsulPolicy(service): register instances of that name only, read the
// catalogue. It is made on first use; secretID, when not "", is its secret
// (`make run` keeps them in .local/secrets), else a random one.
func (c *Consul) ServiceToken(ctx context.Context, service, secretID string) (string, error) {
	return c.token(ctx, "service-"+service, ConsulPolicy(service), secretID)
}

// ReadToken returns the token that reads the catalogue and nothing else
// (ConsulReadPolicy): Prometheus's, for its Consul discovery. secretID as
// for ServiceToken.
func (c *Consul) ReadToken(ctx context.Context, secretID string) (string, error) {
	return c.token(ctx, "catalogue-read", ConsulReadPolicy, secretID)
}

// token makes the policy name with rules and a token holding it, once.
func (c *Consul) token(ctx context.Context, name, rules, secretID string) (string, error) {
	c.tokens.mu.Lock()
	defer c.tokens.mu.Unlock()
	if t, ok := c.tokens.made[name]; ok {
		return t, nil
	}
	client, err := api.NewClient(&api.Config{Address: c.Addr(), Token: c.opts.ManagementToken})
	if err != nil {
		return "", fmt.Errorf("localinfra: consul: %w", err)
	}
	q := (&api.WriteOptions{}).WithContext(ctx)
	if _, _, err := client.ACL().PolicyCreate(&api.ACLPolicy{Name: name, Rules: rules}, q); err != nil {
		return "", fmt.Errorf("localinfra: consul: create policy %s: %w", name, err)
	}
	tok, _, err := client.ACL().TokenCreate(&api.ACLToken{SecretID: secretID, Description: name,
		Policies: []*api.ACLTokenPolicyLink{{Name: name}}}, q)
	if err != nil {
		return "", fmt.Errorf("localinfra: consul: create token %s: %w", name, err)
	}
	if c.tokens.made == nil {
		c.tokens.made, c.tokens.rules = map[string]string{}, map[string]string{}
	}
	c.tokens.made[name], c.tokens.rules[name] = tok.SecretID, rules
	return tok.SecretID, nil
}

// remakeTokens makes every token made before again, with its secret, on
// an agent that has forgotten them (Start).
func (c *Consul) remakeTokens(ctx context.Context) error {
	c.tokens.mu.Lock()
	made, rules := c.tokens.made, c.tokens.rules
	c.tokens.made, c.tokens.rules = nil, nil
	c.tokens.mu.Unlock()
	for name, secret := range made {
		if _, err := c.token(ctx, name, rules[name], secret); err != nil {
			return err
		}
	}
	return nil
}
