// Package testkit gives integration tests real PostgreSQL, Redis and Consul
// servers. Each test binary (one per package) starts the servers it needs
// lazily, once, on free ports in a temporary folder, and Main stops them and
// removes the folder after the tests:
//
//	func TestMain(m *testing.M) { testkit.Main(m) }
//
//	func TestRepository(t *testing.T) {
//		db := testkit.Postgres(t) // a fresh database, dropped after the test
//		...
//	}
//
// Environment variables point the helpers at servers that are already
// running instead (CI, or a developer's own):
//
//	MERCATO_TEST_POSTGRES_URL  a URL whose user may CREATE ROLE and CREATE
//	                           DATABASE; fresh roles and databases are
//	                           created on that server
//	MERCATO_TEST_REDIS_ADDR    host:port of a Redis server
//	MERCATO_TEST_CONSUL_ADDR   host:port of a Consul agent's HTTP API
//
// A dependency that cannot be started or reached fails the test with the
// reason and the fix; it never skips, so a green run means the integration
// tests really ran.
package testkit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx" // also registers the "postgres" driver for sqlx
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/shared/localinfra"
)

// Environment variables that replace the local servers.
const (
	EnvPostgresURL = "MERCATO_TEST_POSTGRES_URL"
	EnvRedisAddr   = "MERCATO_TEST_REDIS_ADDR"
	EnvConsulAddr  = "MERCATO_TEST_CONSUL_ADDR"
)

// opTimeout bounds each database or Redis call testkit makes itself.
const opTimeout = 30 * time.Second

// servers are the test binary's shared servers. This is the one piece of
// package-level state: TestMain has no other way to reach what the tests
// started.
var servers struct {
	mu   sync.Mutex
	main bool   // Main is running, so someone will clean up
	dir  string // temporary root for every server's folder; "" until needed

	pgOnce     sync.Once
	pg         *localinfra.Postgres // nil when EnvPostgresURL is used
	pgAdmin    *sqlx.DB             // creates and drops the per-test databases
	pgAdminURL string
	pgErr      error

	redis  sharedServer
	consul sharedServer

	// redisPasswords are the ACL users' passwords of every Redis server
	// testkit started, by address.
	redisPasswords map[string]map[string]string
	// consuls are the Consul agents testkit started, by address, which make
	// the ACL tokens.
	consuls map[string]*localinfra.Consul
}

// server is a local server testkit starts: localinfra's Redis or Consul.
type server interface {
	Addr() string
	Stop() error
}

// sharedServer is one of the test binary's shared servers reached by an
// address: the one an environment variable names, or a local one started on
// first use and stopped by Main.
type sharedServer struct {
	once    sync.Once
	started server // nil when the environment names the server; guarded by servers.mu
	addr    string
	err     error
}

// address returns the server's address, taken from env or else from a
// server start starts the first time it is asked for; name and hint word a
// failure, which fails t.
func (s *sharedServer) address(t testing.TB, name, env, hint string, start func() (server, error)) string {
	t.Helper()
	s.once.Do(func() {
		if v := os.Getenv(env); v != "" {
			s.addr = v
			return
		}
		srv, err := start()
		if err != nil {
			s.err = err
			return
		}
		servers.mu.Lock()
		s.started = srv
		servers.mu.Unlock()
		s.addr = srv.Addr()
	})
	if s.err != nil {
		t.Fatalf("testkit: %s: %v%s", name, s.err, overrideHint(env, hint))
	}
	return s.addr
}

// private starts a server for one test alone and stops it when the test
// ends; name words a failure, which fails t.
func private[S server](t testing.TB, name string, start func() (S, error)) S {
	t.Helper()
	srv, err := start()
	if err != nil {
		t.Fatalf("testkit: %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("testkit: %v", err)
		}
	})
	return srv
}

// inFolder is start run in a new folder of testkit's for server name
// (serverDir).
func inFolder[S any](name string, start func(dir string) (S, error)) func() (S, error) {
	return func() (S, error) {
		dir, err := serverDir(name)
		if err != nil {
			var none S
			return none, err
		}
		return start(dir)
	}
}

// Main runs the tests, then stops every server testkit started and removes
// their folder, runs cleanups (what TestMain made for the run: a defer
// would not run, since Main exits), and exits with m.Run's code. Call it
// from TestMain. An interrupt (Ctrl-C) also stops the servers and runs the
// cleanups before exiting.
func Main(m *testing.M, cleanups ...func()) {
	cleanUp := func() {
		for _, c := range cleanups {
			c()
		}
	}
	servers.mu.Lock()
	servers.main = true
	servers.mu.Unlock()

	interrupted := make(chan os.Signal, 1)
	signal.Notify(interrupted, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig, ok := <-interrupted
		if !ok {
			return
		}
		fmt.Fprintf(os.Stderr, "testkit: %v: stopping test servers\n", sig)
		if err := shutdown(); err != nil {
			fmt.Fprintln(os.Stderr, "testkit:", err)
		}
		cleanUp()
		os.Exit(1)
	}()

	code := m.Run()
	signal.Stop(interrupted)
	close(interrupted)
	if err := shutdown(); err != nil {
		// Reported, not failed: every test has already passed or failed on
		// its own merits, and the servers are killed either way.
		fmt.Fprintln(os.Stderr, "testkit: stopping test servers:", err)
	}
	cleanUp()
	os.Exit(code)
}

// shutdown stops the shared servers (private ones stop in their tests'
// cleanups) and removes the temporary folder.
func shutdown() error {
	servers.mu.Lock()
	defer servers.mu.Unlock()
	var errs []error
	if servers.consul.started != nil {
		errs = append(errs, servers.consul.started.Stop())
	}
	if servers.redis.started != nil {
		errs = append(errs, servers.redis.started.Stop())
	}
	if servers.pgAdmin != nil {
		servers.pgAdmin.Close()
	}
	if servers.pg != nil {
		errs = append(errs, servers.pg.Stop())
	}
	if servers.dir != "" {
		errs = append(errs, os.RemoveAll(servers.dir))
	}
	return errors.Join(errs...)
}

// serverDir returns a new folder for one server under the binary's
// temporary root. Only Main removes the root, so without Main nothing may
// be started.
func serverDir(name string) (string, error) {
	servers.mu.Lock()
	defer servers.mu.Unlock()
	if !servers.main {
		return "", errors.New("starting a local server needs `func TestMain(m *testing.M) { testkit.Main(m) }` in this package, so the server is stopped and its folder removed after the tests")
	}
	if servers.dir == "" {
		dir, err := os.MkdirTemp("", "mercato-testkit-")
		if err != nil {
			return "", err
		}
		// PostgreSQL runs as another OS user when we are root and must be
		// able to enter its folder; MkdirTemp makes it owner-only.
		if err := os.Chmod(dir, 0o755); err != nil { //nolint:gosec // G302: see above; it holds nothing secret
			return "", err
		}
		servers.dir = dir
	}
	return os.MkdirTemp(servers.dir, name+"-")
}

// RedisAddr returns the host:port of the test binary's shared Redis server.
// Tests share it, so they should use unique key and stream names.
func RedisAddr(t testing.TB) string {
	t.Helper()
	return servers.redis.address(t, "Redis", EnvRedisAddr, "a running server's host:port",
		func() (server, error) { return inFolder("redis", startPrivateRedis)() })
}

// Redis returns a client of the shared Redis server (see RedisAddr), logged
// in as localinfra.RedisAdmin, checked with PING and closed when the test
// ends.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	addr := RedisAddr(t)
	client := redis.NewClient(RedisOptions(t, addr, localinfra.RedisAdmin))
	t.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatalf("testkit: Redis at %s: %v", addr, err)
	}
	return client
}

// StreamEnd returns the ID of stream's last entry ("0" when it has none).
// A test that counts what it publishes reads from there on, with
// XRange(ctx, stream, "("+end, "+"): the shared server keeps what earlier
// tests and earlier rounds (go test -count=N) left on the stream.
func StreamEnd(t testing.TB, rdb *redis.Client, stream string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	last, err := rdb.XRevRangeN(ctx, stream, "+", "-", 1).Result()
	if err != nil {
		t.Fatalf("testkit: the end of stream %q: %v", stream, err)
	}
	if len(last) == 0 {
		return "0"
	}
	return last[0].ID
}

// FreezeRedis SIGSTOPs r (one from NewRedis): it keeps taking connections,
// in the kernel's backlog, and answers nothing, as a hung server does. It
// is thawed (SIGCONT) when the test ends.
func FreezeRedis(t testing.TB, r *localinfra.Redis) {
	t.Helper()
	freeze(t, "Redis", r.Process())
}

// freeze SIGSTOPs p, the server what, until the test ends.
func freeze(t testing.TB, what string, p *localinfra.Process) {
	t.Helper()
	pid := p.Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("testkit: freeze %s: %v", what, err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	// The signal is delivered asynchronously: until every thread has
	// stopped, the server may still answer a request sent right after.
	for deadline := time.Now().Add(opTimeout); !stopped(pid); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("testkit: freeze %s: pid %d has not stopped after %s", what, pid, opTimeout)
		}
	}
}

// stopped says whether every thread of pid is stopped (state T in
// /proc/<pid>/task/<tid>/stat).
func stopped(pid int) bool {
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(stats) == 0 {
		return false
	}
	for _, f := range stats {
		b, err := os.ReadFile(f) //nolint:gosec // a path under /proc of a server this test started
		if err != nil {
			return false
		}
		// "<tid> (<comm>) <state> ...": comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
			return false
		}
	}
	return true
}

// NewRedis starts a Redis server for this test alone, so the test may Stop
// and Start it; it is stopped and its data removed when the test ends. It is
// always a local server, even when MERCATO_TEST_REDIS_ADDR is set.
func NewRedis(t testing.TB) *localinfra.Redis {
	t.Helper()
	return private(t, "Redis", inFolder("redis", startPrivateRedis))
}

// startPrivateRedis starts a Redis server with the platform's ACL
// (localinfra.PlatformAccess) and random passwords, which RedisOptions and
// ServiceCredentials hand out.
func startPrivateRedis(dir string) (*localinfra.Redis, error) {
	pw := localinfra.RandomRedisPasswords()
	r, err := localinfra.StartRedis(context.Background(), localinfra.RedisOptions{Dir: dir, Passwords: pw})
	if err != nil {
		return nil, err
	}
	servers.mu.Lock()
	defer servers.mu.Unlock()
	if servers.redisPasswords == nil {
		servers.redisPasswords = map[string]map[string]string{}
	}
	servers.redisPasswords[r.Addr()] = pw
	return r, nil
}

// RedisOptions are the client options of user (a service's name, or
// localinfra.RedisAdmin) on the Redis server at addr: with its password
// when testkit started that server, else (MERCATO_TEST_REDIS_ADDR) the
// address alone.
func RedisOptions(t testing.TB, addr, user string) *redis.Options {
	t.Helper()
	o := &redis.Options{Addr: addr}
	servers.mu.Lock()
	defer servers.mu.Unlock()
	if pw, ok := servers.redisPasswords[addr]; ok {
		if pw[user] == "" {
			t.Fatalf("testkit: Redis at %s has no ACL user %q (users: %s)", addr, user, strings.Join(localinfra.RedisUsers(), ", "))
		}
		o.Username, o.Password = user, pw[user]
	}
	return o
}

// ConsulAddr returns the host:port of the test binary's Consul dev agent
// (HTTP API), for consul/api's Config.Address. Tests share it, so they
// should use unique service names or IDs.
func ConsulAddr(t testing.TB) string {
	t.Helper()
	return servers.consul.address(t, "Consul", EnvConsulAddr, "a running agent's host:port",
		func() (server, error) { return inFolder("consul", startPrivateConsul)() })
}

// NewConsul starts a private Consul dev agent for this test and stops it at
// cleanup. A test that starts a whole platform uses one, so instances that
// earlier tests killed (still "passing" until their check fails) can never
// be routed to.
func NewConsul(t testing.TB) *localinfra.Consul {
	t.Helper()
	return private(t, "Consul", inFolder("consul", startPrivateConsul))
}

// FreezeConsul SIGSTOPs c (one from NewConsul): it keeps taking
// connections, in the kernel's backlog, and answers nothing, as a hung
// agent does. It is thawed (SIGCONT) when the test ends.
func FreezeConsul(t testing.TB, c *localinfra.Consul) {
	t.Helper()
	freeze(t, "Consul", c.Process())
}

// startPrivateConsul starts an agent with ACLs on (default deny) and a
// random management token; ConsulToken and ServiceCredentials hand out its
// tokens.
func startPrivateConsul(dir string) (*localinfra.Consul, error) {
	c, err := localinfra.StartConsul(context.Background(), localinfra.ConsulOptions{Dir: dir})
	if err != nil {
		return nil, err
	}
	servers.mu.Lock()
	defer servers.mu.Unlock()
	if servers.consuls == nil {
		servers.consuls = map[string]*localinfra.Consul{}
	}
	servers.consuls[c.Addr()] = c
	return c, nil
}

// ConsulToken returns an ACL token of the Consul agent at addr: service's
// own (localinfra.ConsulPolicy: register that name, read the catalogue), or
// with service "" the management token, for tests that register services
// of any name. It is "" for an agent testkit did not start
// (MERCATO_TEST_CONSUL_ADDR).
func ConsulToken(t testing.TB, addr, service string) string {
	t.Helper()
	servers.mu.Lock()
	c := servers.consuls[addr]
	servers.mu.Unlock()
	if c == nil {
		return ""
	}
	if service == "" {
		return c.ManagementToken()
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	tok, err := c.ServiceToken(ctx, service, "")
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	return tok
}

// overrideHint suggests the environment variable when it is not in use.
func overrideHint(env, value string) string {
	if os.Getenv(env) != "" {
		return ""
	}
	return fmt.Sprintf("\n(or set %s to %s)", env, value)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}

// ServiceCredentials are the secret flags service needs to log in to the
// servers testkit started at redisAddr and consulAddr (either may be ""):
// -redis-password of its own Redis ACL user, -consul-token of its own
// Consul token. They are flags, which a main
// run in-process accepts; a test that starts a binary passes them in the
// environment instead. Servers testkit did not start get none.
func ServiceCredentials(t testing.TB, service, redisAddr, consulAddr string) []string {
	t.Helper()
	var flags []string
	if redisAddr != "" {
		if o := RedisOptions(t, redisAddr, service); o.Password != "" {
			flags = append(flags, "-redis-password", o.Password)
		}
	}
	if consulAddr != "" {
		if tok := ConsulToken(t, consulAddr, service); tok != "" {
			flags = append(flags, "-consul-token", tok)
		}
	}
	return flags
}

// ArgValue returns the value of flag name in args ("-name value",
// "-name=value", with one or two dashes), or "".
func ArgValue(args []string, name string) string {
	for i, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}
