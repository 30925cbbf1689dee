package testkit_test

import (
	"context"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/consul/api"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/shared/localinfra"
	"github.com/mercato-dev/mercato/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func TestPostgresGivesEachTestAFreshDatabase(t *testing.T) {
	var (
		mu    sync.Mutex
		names []string
	)
	t.Run("group", func(t *testing.T) {
		for i := range 4 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				db := testkit.Postgres(t)
				var name string
				if err := db.Get(&name, `SELECT current_database()`); err != nil {
					t.Fatal(err)
				}
				// Same table in every database: they must not see each other.
				db.MustExec(`CREATE TABLE orders (id bigint PRIMARY KEY, total_cents bigint NOT NULL)`)
				db.MustExec(`INSERT INTO orders VALUES ($1, $2)`, 1, 1999)
				var total int64
				if err := db.Get(&total, `SELECT total_cents FROM orders WHERE id = 1`); err != nil || total != 1999 {
					t.Fatalf("total = %d, %v; want 1999", total, err)
				}
				mu.Lock()
				names = append(names, name)
				mu.Unlock()
			})
		}
	})

	if len(names) != 4 {
		t.Fatalf("got %d database names, want 4", len(names))
	}
	valid := regexp.MustCompile(`^test_[a-z0-9_]+_[0-9a-f]{8}$`)
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] || !valid.MatchString(n) || len(n) > 63 {
			t.Errorf("database name %q is repeated or not a valid unique name", n)
		}
		seen[n] = true
	}

	// The subtests have finished, so their cleanups dropped their databases.
	admin := sqlx.MustConnect("postgres", testkit.PostgresURL(t))
	defer admin.Close()
	var left int
	if err := admin.Get(&left, `SELECT count(*) FROM pg_database WHERE datname = ANY($1)`, pq.Array(names)); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d of the subtests' databases still exist after their cleanup", left)
	}
}

func TestPostgresDropsDatabaseStillInUse(t *testing.T) {
	var leaked *sqlx.DB
	t.Run("leaky", func(t *testing.T) {
		// Left open past the test: DROP ... WITH (FORCE) must cope.
		leaked = sqlx.MustConnect("postgres", testkit.PostgresURL(t))
		leaked.MustExec(`SELECT 1`)
	})
	if leaked != nil {
		defer leaked.Close()
	}
	if t.Failed() {
		t.Fatal("cleanup failed to drop a database with an open connection")
	}
}

func TestRedisSharedServer(t *testing.T) {
	ctx := context.Background()
	client := testkit.Redis(t)
	key := "testkit:" + t.Name()
	if err := client.Set(ctx, key, "v1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := client.Get(ctx, key).Result(); err != nil || got != "v1" {
		t.Fatalf("GET = %q, %v; want v1", got, err)
	}
	if addr := testkit.RedisAddr(t); addr != client.Options().Addr {
		t.Errorf("RedisAddr = %s, client uses %s; want the same shared server", addr, client.Options().Addr)
	}
}

func TestStreamEnd(t *testing.T) {
	ctx := context.Background()
	client := testkit.Redis(t)
	stream := "testkit:" + t.Name() + ":" + uuid.NewString()
	if end := testkit.StreamEnd(t, client, stream); end != "0" {
		t.Fatalf("end of a stream that does not exist = %q, want 0", end)
	}
	var last string
	for i := range 3 {
		id, err := client.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: map[string]any{"n": i}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		last = id
	}
	if end := testkit.StreamEnd(t, client, stream); end != last {
		t.Fatalf("StreamEnd = %q, want the last entry %s", end, last)
	}
	after, err := client.XRange(ctx, stream, "("+last, "+").Result()
	if err != nil || len(after) != 0 {
		t.Fatalf("entries after the end: %v %v", after, err)
	}
}

func TestNewRedisStreamSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	srv := testkit.NewRedis(t)
	if srv.Addr() == testkit.RedisAddr(t) {
		t.Fatal("NewRedis returned the shared server")
	}
	client := redis.NewClient(testkit.RedisOptions(t, srv.Addr(), localinfra.RedisAdmin))
	defer client.Close()

	id, err := client.XAdd(ctx, &redis.XAddArgs{Stream: "events", Values: map[string]any{"type": "order.created"}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	msgs, err := client.XRange(ctx, "events", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].ID != id || msgs[0].Values["type"] != "order.created" {
		t.Fatalf("after restart the stream holds %+v, want the one entry %s", msgs, id)
	}
}

func TestConsulRegisterAndRead(t *testing.T) {
	client, err := api.NewClient(&api.Config{Address: testkit.ConsulAddr(t), Token: testkit.ConsulToken(t, testkit.ConsulAddr(t), "")})
	if err != nil {
		t.Fatal(err)
	}
	reg := &api.AgentServiceRegistration{
		ID:      "product-127.0.0.1-3002",
		Name:    "product",
		Address: "127.0.0.1",
		Port:    3002,
		Tags:    []string{"metrics", "v1"},
	}
	if err := client.Agent().ServiceRegister(reg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Agent().ServiceDeregister(reg.ID) }) // the agent stops with the test binary anyway

	entries, _, err := client.Health().Service("product", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Service.ID != reg.ID || entries[0].Service.Port != 3002 {
		t.Fatalf("health entries for product = %+v, want %s on port 3002", entries, reg.ID)
	}
}

// TestPostgresServerRestarts: the shared server stops and starts again
// with its databases, and fresh databases are made on it afterwards.
func TestPostgresServerRestarts(t *testing.T) {
	db := testkit.Postgres(t)
	db.MustExec(`CREATE TABLE kept (id int)`)
	db.MustExec(`INSERT INTO kept VALUES (7)`)
	pg := testkit.PostgresServer(t)
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := pg.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var id int
	if err := db.Get(&id, `SELECT id FROM kept`); err != nil || id != 7 {
		t.Fatalf("after the restart: %d, %v; want 7", id, err)
	}
	testkit.Postgres(t).MustExec(`SELECT 1`)
}
