package localinfra

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/events"
)

// The key patterns name the constants shared can see.
func TestRedisKeyPatternsMatchTheCode(t *testing.T) {
	if eventStream != events.DefaultStream || deadLetterStream != events.DefaultDeadLetterStream {
		t.Errorf("ACL streams %q, %q; events uses %q, %q", eventStream, deadLetterStream, events.DefaultStream, events.DefaultDeadLetterStream)
	}
	if denylistKeys != auth.DenylistKeyPrefix+"*" {
		t.Errorf("ACL denylist keys %q; auth uses the prefix %q", denylistKeys, auth.DenylistKeyPrefix)
	}
}

// redisOp is one thing a service does on Redis (or must not).
type redisOp struct {
	name string
	run  func(ctx context.Context, c *redis.Client) error
}

// The scripts below call the same commands on the same keys as the
// services' own (user/throttle.go, redis_rate's GCRA); the e2e suite runs the
// real ones against the same ACL.
var (
	denylistCheck = redisOp{"EXISTS auth:revoked:*", func(ctx context.Context, c *redis.Client) error {
		return c.Exists(ctx, "auth:revoked:t1").Err()
	}}
	denylistRevoke = redisOp{"SET auth:revoked:* PX", func(ctx context.Context, c *redis.Client) error {
		return c.Set(ctx, "auth:revoked:t1", 1, 60_000_000_000).Err()
	}}
	// publishEvent is the outbox relay's: XADD, and the trimming of what
	// every group is done with.
	publishEvent = redisOp{"XADD events, trim", func(ctx context.Context, c *redis.Client) error {
		if err := c.XAdd(ctx, &redis.XAddArgs{Stream: "events", Values: []any{"type", "payment.processed"}}).Err(); err != nil {
			return err
		}
		if err := c.XInfoGroups(ctx, "events").Err(); err != nil {
			return err
		}
		if err := c.XPending(ctx, "events", "any").Err(); err != nil && !strings.Contains(err.Error(), "NOGROUP") {
			return err
		}
		return c.XTrimMinIDApprox(ctx, "events", "0-1", 0).Err()
	}}
	throttleScript = redisOp{"EVAL on login:fail:*", func(ctx context.Context, c *redis.Client) error {
		return redis.NewScript(`
redis.call('TIME')
redis.call('HMGET', KEYS[1], 'n', 'last')
redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('HSET', KEYS[1], 'last', 1)
redis.call('PEXPIRE', KEYS[1], 1000)
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('DEL', KEYS[1]) end
return 0`).Run(ctx, c, []string{"login:fail:abc:127.0.0.1"}).Err()
	}}
	cacheOps = redisOp{"GET/SET/INCR/INCRBY catalogue:*", func(ctx context.Context, c *redis.Client) error {
		if err := c.Get(ctx, "catalogue:version").Err(); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if err := c.Set(ctx, "catalogue:product:x", "{}", 60_000_000_000).Err(); err != nil {
			return err
		}
		if err := c.IncrBy(ctx, "catalogue:version", 2).Err(); err != nil {
			return err
		}
		return c.Incr(ctx, "catalogue:version").Err()
	}}
	rateLimit = redisOp{"EVAL on rate:ratelimit:*", func(ctx context.Context, c *redis.Client) error {
		return redis.NewScript(`
redis.replicate_commands()
local t = redis.call('TIME')
local v = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], t[1], 'EX', 60)
return 0`).Run(ctx, c, []string{"rate:ratelimit:127.0.0.1"}).Err()
	}}
	setRateLimit = redisOp{"SET rate:ratelimit:*", func(ctx context.Context, c *redis.Client) error {
		return c.Set(ctx, "rate:ratelimit:127.0.0.1", 0, 0).Err()
	}}
	flushAll = redisOp{"FLUSHALL", func(ctx context.Context, c *redis.Client) error { return c.FlushAll(ctx).Err() }}
	keysAll  = redisOp{"KEYS *", func(ctx context.Context, c *redis.Client) error { return c.Keys(ctx, "*").Err() }}
)

// consumeAs is an events.Consumer's whole cycle in group: create the group,
// read, claim, inspect (XPENDING, XINFO GROUPS), dead-letter (XADD and XACK
// in MULTI/EXEC), ack.
func consumeAs(group string) redisOp {
	return redisOp{"consumer group cycle", func(ctx context.Context, c *redis.Client) error {
		if err := c.XGroupCreateMkStream(ctx, "events", group, "0").Err(); err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
			return err
		}
		msgs, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: "c1", Streams: []string{"events", ">"}, Count: 1, Block: -1}).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if err := c.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: "events", Group: group, Consumer: "c1", Start: "0-0", Count: 1}).Err(); err != nil {
			return err
		}
		if err := c.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: "events", Group: group, Start: "-", End: "+", Count: 1}).Err(); err != nil {
			return err
		}
		if err := c.XInfoGroups(ctx, "events").Err(); err != nil { // the pending and lag gauges
			return err
		}
		id := "0-1"
		if len(msgs) > 0 && len(msgs[0].Messages) > 0 {
			id = msgs[0].Messages[0].ID
		}
		_, err = c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.XAdd(ctx, &redis.XAddArgs{Stream: "events.dead", MaxLen: 100, Approx: true, Values: []any{"id", id}})
			p.XAck(ctx, "events", group, id)
			return nil
		})
		return err
	}}
}

func TestRedisACLGivesEachServiceOnlyWhatItNeeds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startTestRedis(t)
	admin := redis.NewClient(r.Options(RedisAdmin))
	defer admin.Close()
	// A message in the stream, so the consumers have something to read.
	if err := publishEvent.run(ctx, admin); err != nil {
		t.Fatalf("admin: %v", err)
	}

	tests := []struct {
		user        string
		may, mayNot []redisOp
	}{
		{"user", []redisOp{denylistCheck, denylistRevoke, publishEvent, throttleScript},
			[]redisOp{cacheOps, rateLimit, consumeAs("user")}},
		{"product", []redisOp{denylistCheck, publishEvent, cacheOps},
			[]redisOp{denylistRevoke, throttleScript, rateLimit, consumeAs("product")}},
		{"order", []redisOp{denylistCheck, publishEvent, consumeAs("order")},
			[]redisOp{denylistRevoke, cacheOps, rateLimit, throttleScript}},
		{"payment", []redisOp{denylistCheck, publishEvent, consumeAs("payment")},
			[]redisOp{denylistRevoke, cacheOps, setRateLimit}},
		// notification publishes nothing: it cannot forge a payment.processed.
		{"notification", []redisOp{denylistCheck, consumeAs("notification")},
			[]redisOp{publishEvent, denylistRevoke, cacheOps, setRateLimit, rateLimit}},
		{"gateway", []redisOp{denylistCheck, rateLimit},
			[]redisOp{publishEvent, denylistRevoke, cacheOps, consumeAs("gateway"), throttleScript}},
	}
	tested := map[string]bool{}
	for _, tt := range tests {
		tested[tt.user] = true
		t.Run(tt.user, func(t *testing.T) {
			c := redis.NewClient(r.Options(tt.user))
			defer c.Close()
			if err := c.Ping(ctx).Err(); err != nil {
				t.Fatalf("PING: %v", err)
			}
			for _, op := range tt.may {
				if err := op.run(ctx, c); err != nil {
					t.Errorf("%s: %v, want allowed", op.name, err)
				}
			}
			for _, op := range append(tt.mayNot, flushAll, keysAll) {
				if err := op.run(ctx, c); !isNoPerm(err) {
					t.Errorf("%s: %v, want NOPERM", op.name, err)
				}
			}
		})
	}

	// Every user of the table was tried.
	for _, u := range RedisUsers() {
		if u != RedisAdmin && !tested[u] {
			t.Errorf("Redis user %q is not tested", u)
		}
	}
}

func isNoPerm(err error) bool {
	return err != nil && strings.Contains(err.Error(), "NOPERM")
}

func TestRedisRefusesClientsThatDoNotLogIn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startTestRedis(t)
	pw := r.opts.Passwords

	anon := redis.NewClient(&redis.Options{Addr: r.Addr(), Protocol: 2})
	defer anon.Close()
	if err := anon.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("PING without AUTH: %v, want NOAUTH", err)
	}
	if err := anon.XAdd(ctx, &redis.XAddArgs{Stream: "events", Values: []any{"type", "payment.processed"}}).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("XADD without AUTH: %v, want NOAUTH", err)
	}
	// The default user is off, even with the password of another.
	def := redis.NewClient(&redis.Options{Addr: r.Addr(), Password: pw["product"]})
	defer def.Close()
	if err := def.Ping(ctx).Err(); err == nil {
		t.Error("the default user logged in")
	}
	wrong := redis.NewClient(&redis.Options{Addr: r.Addr(), Username: "product", Password: pw["order"]})
	defer wrong.Close()
	if err := wrong.Ping(ctx).Err(); err == nil {
		t.Error("product logged in with order's password")
	}
}

func TestConsulTokensRegisterOnlyTheirOwnService(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := StartConsul(ctx, ConsulOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopOrLog(t, c) })
	as := func(token string) *api.Client {
		t.Helper()
		client, err := api.NewClient(&api.Config{Address: c.Addr(), Token: token})
		if err != nil {
			t.Fatal(err)
		}
		return client
	}
	reg := func(name string) *api.AgentServiceRegistration {
		return &api.AgentServiceRegistration{ID: name + "-1", Name: name, Address: "127.0.0.1", Port: 3001,
			Check: &api.AgentServiceCheck{TTL: "1m", Status: api.HealthPassing}}
	}
	for _, a := range PlatformAccess() {
		tok, err := c.ServiceToken(ctx, a.Service, "")
		if err != nil {
			t.Fatal(err)
		}
		if again, err := c.ServiceToken(ctx, a.Service, ""); err != nil || again != tok {
			t.Fatalf("ServiceToken again = %q, %v; want the same token %q", again, err, tok)
		}
		client := as(tok)
		if err := client.Agent().ServiceRegister(reg(a.Service)); err != nil {
			t.Errorf("%s registering itself: %v", a.Service, err)
		}
		other := "payment"
		if a.Service == other {
			other = "order"
		}
		if err := client.Agent().ServiceRegister(reg(other)); !isPermissionDenied(err) {
			t.Errorf("%s registering %s: %v, want permission denied", a.Service, other, err)
		}
		if err := client.Agent().ServiceDeregister(other + "-1"); err == nil {
			t.Errorf("%s deregistered %s", a.Service, other)
		}
	}
	// Reads: every token sees every service (its upstreams), and their health.
	orderToken, _ := c.ServiceToken(ctx, "order", "")
	entries, _, err := as(orderToken).Health().Service("product", "", true, nil)
	if err != nil || len(entries) != 1 {
		t.Errorf("order reading product's passing instances: %d, %v; want 1", len(entries), err)
	}

	read, err := c.ReadToken(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	services, _, err := as(read).Catalog().Services(nil)
	if err != nil || len(services) < len(PlatformAccess()) {
		t.Errorf("the read token lists %d services, %v; want every registered one", len(services), err)
	}
	if err := as(read).Agent().ServiceRegister(reg("prometheus")); !isPermissionDenied(err) {
		t.Errorf("the read token registered a service: %v", err)
	}

	// Anonymous: no registration, and nothing to read.
	anon := as("")
	if err := anon.Agent().ServiceRegister(reg("user")); !isPermissionDenied(err) {
		t.Errorf("anonymous registration: %v, want permission denied", err)
	}
	if services, _, err := anon.Catalog().Services(nil); err == nil && len(services) > 1 {
		t.Errorf("anonymous client lists services %v", services)
	}
	// A made-up token is refused too.
	if err := as("00000000-0000-4000-8000-000000000000").Agent().ServiceRegister(reg("user")); err == nil {
		t.Error("a made-up token registered a service")
	}
}

func isPermissionDenied(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "permission denied")
}
