package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/shared/config"
	"github.com/mercato-dev/mercato/shared/localinfra"
	"github.com/mercato-dev/mercato/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const secret = "0123456789abcdef0123456789abcdef"

// testConfig is the configuration of an instance of service "thing" on the
// given database and Redis.
func testConfig(t *testing.T, databaseURL, redisAddr string) config.Common {
	// "thing" has no Redis ACL user of its own: it logs in as the admin.
	ro := testkit.RedisOptions(t, redisAddr, localinfra.RedisAdmin)
	return config.Common{Service: "thing", DatabaseURL: databaseURL, RedisAddr: redisAddr,
		RedisUsername: ro.Username, RedisPassword: ro.Password,
		ConsulAddr: "127.0.0.1:8500", JWTSecret: secret, LogLevel: "info"}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func migrateThings(ctx context.Context, db *sqlx.DB) error {
	_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS things (id int PRIMARY KEY)`)
	return err
}

// TestStart checks what a main relies on: the database is migrated and the
// checks cover it and Redis; loops run until Close, which waits for them
// before it closes the database they use; a loop's error is logged.
func TestStart(t *testing.T) {
	var logs bytes.Buffer
	in, err := Start(context.Background(), testConfig(t, testkit.PostgresURL(t), testkit.RedisAddr(t)), &logs, Options{Migrate: migrateThings})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.DB.Exec(`INSERT INTO things VALUES (1)`); err != nil {
		t.Errorf("the migration did not run: %v", err)
	}
	if len(in.Checks) != 2 || in.Checks["db"] == nil || in.Checks["redis"] == nil {
		t.Errorf("checks = %v, want db and redis", in.Checks)
	}
	for name, check := range in.Checks {
		if err := check(context.Background()); err != nil {
			t.Errorf("check %s: %v", name, err)
		}
	}
	if in.Consul == nil || in.Logger == nil || in.Registry == nil || in.Redis == nil {
		t.Errorf("instance lacks a dependency: %+v", in)
	}
	if _, ok := in.StartContext().Deadline(); !ok {
		t.Error("the start context has no deadline")
	}

	// A loop that uses the database once it is told to stop: Close must
	// wait for it before closing the pool.
	pinged := make(chan error, 1)
	in.Go("pinger", func(ctx context.Context) error {
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond)
		pinged <- in.DB.Ping()
		return nil
	})
	in.Go("failing loop", func(context.Context) error { return errors.New("boom") })

	if err := in.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case err := <-pinged:
		if err != nil {
			t.Errorf("the loop's ping after shutdown began: %v, want the pool still open", err)
		}
	default:
		t.Error("Close returned before the loop did")
	}
	if err := in.DB.Ping(); err == nil {
		t.Error("the database is still open after Close")
	}
	var rec map[string]any
	line, _, _ := strings.Cut(logs.String(), "\n")
	if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["msg"] != "failing loop stopped" || rec["level"] != "error" || rec["err"] != "boom" {
		t.Errorf("log of the failed loop: %s", logs.String())
	}
	if in.StartContext().Err() == nil {
		t.Error("the start context is still live after Close")
	}
}

// TestStartWaitsForItsDependencies starts an instance while its database
// and its Redis are down, as a new deployment's pods start beside them.
// Exiting at the first refusal, every instance waited out Kubernetes'
// back-off between restarts, which grew past the minutes a rollout waits
// (deploy/k8s/overlays/local). Start asks again until they answer.
func TestStartWaitsForItsDependencies(t *testing.T) {
	pgURL := testkit.PostgresURL(t)
	pg, rdb := testkit.PostgresServer(t), testkit.NewRedis(t)
	cfg := testConfig(t, pgURL, rdb.Addr())
	for _, stop := range []func() error{pg.Stop, rdb.Stop} {
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = pg.Start(context.Background()) }) // for the next tests, whatever happened
	// PostgreSQL back after a second; Redis once Start has waited for it.
	var logs testkit.LogBuffer
	back := make(chan error, 2)
	time.AfterFunc(time.Second, func() { back <- pg.Start(context.Background()) })
	go func() {
		for deadline := time.Now().Add(DefaultStartTimeout); time.Now().Before(deadline) && !strings.Contains(logs.String(), "waiting for redis"); {
			time.Sleep(50 * time.Millisecond)
		}
		back <- rdb.Start(context.Background())
	}()

	in, err := Start(context.Background(), cfg, &logs, Options{Migrate: migrateThings})
	for range 2 {
		if err := <-back; err != nil {
			t.Fatalf("start again: %v", err)
		}
	}
	if err != nil {
		t.Fatalf("Start with PostgreSQL and Redis down at first: %v\n%s", err, logs.String())
	}
	defer in.Close()
	for _, dependency := range []string{"the database", "redis"} {
		if !strings.Contains(logs.String(), "waiting for "+dependency) {
			t.Errorf("no line says Start waited for %s:\n%s", dependency, logs.String())
		}
	}
}

func TestStartFailures(t *testing.T) {
	pg, rdb := testkit.PostgresURL(t), testkit.RedisAddr(t)
	unreachableDB := "postgres://" + closedAddr(t) + "/none?sslmode=disable&connect_timeout=2"
	failingMigration := func(context.Context, *sqlx.DB) error { return errors.New("bad migration") }
	for _, tc := range []struct {
		name string
		cfg  config.Common
		opts Options
		want string
	}{
		{"unreachable database", testConfig(t, unreachableDB, rdb), Options{Migrate: migrateThings, StartTimeout: time.Second}, "database: "},
		{"failing migration", testConfig(t, pg, rdb), Options{Migrate: failingMigration}, "database: bad migration"},
		{"unreachable redis", testConfig(t, pg, closedAddr(t)), Options{Migrate: migrateThings, StartTimeout: time.Second}, "redis at "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, err := Start(context.Background(), tc.cfg, &bytes.Buffer{}, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Start = %v, %v; want an error with %q", in, err, tc.want)
			}
		})
	}

	t.Run("no database, optional redis", func(t *testing.T) {
		in, err := Start(context.Background(), testConfig(t, "", closedAddr(t)), &bytes.Buffer{}, Options{RedisOptional: true})
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		if in.DB != nil || len(in.Checks) != 1 || in.Checks["redis"] == nil {
			t.Errorf("DB %v, checks %v; want no database and a redis check", in.DB, in.Checks)
		}
		if err := in.Checks["redis"](context.Background()); err == nil {
			t.Error("the redis check passes with no Redis")
		}
	})
}

func TestFlags(t *testing.T) {
	newFlags := func(needDB bool) (*FlagSet, *int) {
		fs := NewFlagSet(Command{Name: "thing", What: "Mercato's thing service",
			EnvExample: "MERCATO_THING_COUNT", Addr: "127.0.0.1:0", NeedDB: needDB})
		count := fs.Int("thing-count", 1, "how many things")
		return fs, count
	}

	fs, _ := newFlags(true)
	var usage bytes.Buffer
	fs.SetOutput(&usage)
	if _, err := fs.Parse([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"Usage: thing [flags]", "Mercato's thing service", "MERCATO_<FLAG>", "MERCATO_THING_COUNT", "-thing-count", "-database-url"} {
		if !strings.Contains(usage.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, usage.String())
		}
	}
	for _, line := range strings.Split(usage.String(), "\n") {
		if len(line) > 80 && !strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "\t") {
			t.Errorf("usage line longer than 80 columns: %q", line)
		}
	}

	fs, count := newFlags(true)
	t.Setenv("MERCATO_THING_COUNT", "3")
	if cfg, err := fs.Parse([]string{"-jwt-secret", secret, "-database-url", "postgres://x/y"}); err != nil || *count != 3 || cfg.DatabaseURL != "postgres://x/y" || cfg.Service != "thing" {
		t.Errorf("Parse = %v, count %d, cfg %+v", err, *count, cfg)
	}

	fs, _ = newFlags(true)
	if _, err := fs.Parse([]string{"-jwt-secret", secret}); err == nil || !strings.Contains(err.Error(), "-database-url") {
		t.Errorf("no database: %v, want an error naming -database-url", err)
	}
	fs, _ = newFlags(false)
	if _, err := fs.Parse([]string{"-jwt-secret", secret}); err != nil {
		t.Errorf("no database, none needed: %v", err)
	}
}

func TestHealthcheck(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	check := func(addr string) error {
		fs := NewFlagSet(Command{Name: "thing", What: "Mercato's thing service", Addr: "127.0.0.1:0", NeedDB: true})
		// No secret and no database: a health check needs neither.
		_, err := fs.Parse([]string{"-healthcheck", "-http-addr", addr})
		return err
	}

	if err := check("0.0.0.0:" + port); !errors.Is(err, ErrHealthy) {
		t.Errorf("healthy instance on every interface: %v, want ErrHealthy", err)
	}
	status = http.StatusServiceUnavailable
	if err := check("127.0.0.1:" + port); err == nil || errors.Is(err, ErrHealthy) || !strings.Contains(err.Error(), "503") {
		t.Errorf("instance answering 503: %v, want an error naming 503", err)
	}
	srv.Close()
	if err := check("127.0.0.1:" + port); err == nil || errors.Is(err, ErrHealthy) {
		t.Errorf("no instance: %v, want an error", err)
	}
	if err := check("127.0.0.1:0"); err == nil || !strings.Contains(err.Error(), "fixed -http-addr") {
		t.Errorf("port 0: %v, want an error asking for a fixed address", err)
	}
}

func TestLeave(t *testing.T) {
	leaveGrace = 0
	var paths []string
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.Method+" "+r.URL.Path)
		w.WriteHeader(status)
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	leave := func(withAdmin bool, args ...string) error {
		fs := NewFlagSet(Command{Name: "thing", What: "Mercato's thing service", Addr: "127.0.0.1:0", NeedDB: true})
		if withAdmin {
			fs.String("admin-addr", "127.0.0.1:0", "the gateway's admin listener")
		}
		_, err := fs.Parse(append([]string{"-leave"}, args...))
		return err
	}

	if err := leave(false, "-http-addr", "0.0.0.0:"+port); !errors.Is(err, ErrHealthy) {
		t.Errorf("instance that left: %v, want ErrHealthy", err)
	}
	// The gateway serves /ready, and so /leave, on its admin listener.
	if err := leave(true, "-http-addr", "127.0.0.1:1", "-admin-addr", "127.0.0.1:"+port); !errors.Is(err, ErrHealthy) {
		t.Errorf("leave through -admin-addr: %v, want ErrHealthy", err)
	}
	if want := []string{"POST /leave", "POST /leave"}; !slices.Equal(paths, want) {
		t.Errorf("requests: %v, want %v", paths, want)
	}
	status = http.StatusForbidden
	if err := leave(false, "-http-addr", "127.0.0.1:"+port); err == nil || errors.Is(err, ErrHealthy) || !strings.Contains(err.Error(), "403") {
		t.Errorf("instance answering 403: %v, want an error naming 403", err)
	}
	if err := leave(true, "-admin-addr", "127.0.0.1:0"); err == nil || !strings.Contains(err.Error(), "fixed -admin-addr") {
		t.Errorf("admin port 0: %v, want an error asking for a fixed -admin-addr", err)
	}
}
