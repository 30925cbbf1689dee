package localinfra

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"
)

// searchableTempDir is t.TempDir made enterable by other users: as root,
// PostgreSQL runs as the postgres user, and t.TempDir's root is owner-only.
func searchableTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "localinfra-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestFreePortsAreDistinctAndFree(t *testing.T) {
	ports, err := FreePorts(20)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Fatalf("port %d returned twice in %v", p, ports)
		}
		seen[p] = true
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d is not free: %v", p, err)
		}
		l.Close()
	}
}

func TestVersionLess(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"9.6", "15", true},
		{"15", "9.6", false},
		{"15", "16", true},
		{"16", "16", false},
		{"13", "13.1", true},
	}
	for _, tt := range tests {
		if got := versionLess(tt.a, tt.b); got != tt.want {
			t.Errorf("versionLess(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestRepoRootFindsGoWork(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.work")); err != nil {
		t.Fatalf("RepoRoot() = %s, which has no go.work: %v", root, err)
	}
}

func TestFindConsul(t *testing.T) {
	root := t.TempDir()
	t.Setenv("PATH", t.TempDir()) // no consul on PATH
	t.Setenv("MERCATO_CONSUL_BIN", "")

	_, err := FindConsul(root)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "make deps") {
		t.Fatalf("FindConsul with no consul anywhere: err = %v, want ErrNotFound mentioning make deps", err)
	}

	pinned := filepath.Join(root, "bin", "consul")
	writeExecutable(t, pinned)
	if got, err := FindConsul(root); err != nil || got != pinned {
		t.Fatalf("FindConsul = %q, %v; want the pinned build %q", got, err, pinned)
	}

	onPath := filepath.Join(os.Getenv("PATH"), "consul")
	writeExecutable(t, onPath)
	if got, err := FindConsul(root); err != nil || got != onPath {
		t.Fatalf("FindConsul = %q, %v; want PATH's %q before the pinned build", got, err, onPath)
	}

	t.Setenv("MERCATO_CONSUL_BIN", pinned)
	if got, err := FindConsul(root); err != nil || got != pinned {
		t.Fatalf("FindConsul = %q, %v; want $MERCATO_CONSUL_BIN %q first", got, err, pinned)
	}
	t.Setenv("MERCATO_CONSUL_BIN", filepath.Join(root, "missing"))
	if _, err := FindConsul(root); err == nil {
		t.Fatal("FindConsul accepted a MERCATO_CONSUL_BIN that does not exist")
	}
}

func writeExecutable(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestMissingBinaryNamesTheFix(t *testing.T) {
	ctx := context.Background()
	missing := filepath.Join(t.TempDir(), "nope")
	_, err := StartRedis(ctx, RedisOptions{Dir: t.TempDir(), Binary: missing})
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "make deps") || !strings.Contains(err.Error(), missing) {
		t.Errorf("StartRedis with a missing binary: %v", err)
	}
	_, err = StartPostgres(ctx, PostgresOptions{Dir: t.TempDir(), BinDir: missing, Password: "x"})
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "make deps") || !strings.Contains(err.Error(), "initdb") {
		t.Errorf("StartPostgres with a missing binary: %v", err)
	}
	_, err = StartConsul(ctx, ConsulOptions{Dir: t.TempDir(), Binary: missing})
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "make deps") {
		t.Errorf("StartConsul with a missing binary: %v", err)
	}
}

// TestPostgres: the superuser needs its password; each service role
// reaches its own database and no other; a connection without a password
// is refused, on loopback and on the socket; a restart keeps the data.
func TestPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(searchableTempDir(t), "pg")
	const superPW = "super-password-for-the-test"
	pg, err := StartPostgres(ctx, PostgresOptions{Dir: dir, Fast: true, Password: superPW})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopOrLog(t, pg) })

	for range 2 { // idempotent
		if err := pg.EnsureDatabase(ctx, "shop", "shop", "shop-password"); err != nil {
			t.Fatal(err)
		}
	}
	if err := pg.EnsureDatabase(ctx, "billing", "billing", "billing-password"); err != nil {
		t.Fatal(err)
	}
	db := sqlx.MustConnect("postgres", pg.RoleURL("shop", "shop-password", "shop"))
	db.MustExec(`CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)`)
	db.MustExec(`INSERT INTO items VALUES ($1, $2)`, 1, "teapot")
	var maxConns int
	if err := db.Get(&maxConns, `SELECT current_setting('max_connections')::int`); err != nil {
		t.Fatal(err)
	}
	if maxConns < 300 {
		t.Errorf("max_connections = %d, want >= 300", maxConns)
	}
	db.Close()

	refused := func(what, dsn string) {
		t.Helper()
		db, err := sqlx.Open("postgres", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.PingContext(ctx); err == nil {
			t.Errorf("%s: connected, want refused", what)
		}
	}
	refused("shop's role on billing's database", pg.RoleURL("shop", "shop-password", "billing"))
	refused("shop's role with a wrong password", pg.RoleURL("shop", "wrong", "shop"))
	refused("the superuser without a password, on 127.0.0.1", fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", pg.Port()))
	refused("the superuser without a password, on the socket", "host="+dir+" user=postgres dbname=postgres sslmode=disable")
	refused("shop's role without a password", fmt.Sprintf("postgres://shop@127.0.0.1:%d/shop?sslmode=disable", pg.Port()))

	// A second start on the same folder reuses the cluster (no initdb),
	// with the max_connections of this start.
	if err := pg.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	pg2, err := StartPostgres(ctx, PostgresOptions{Dir: dir, Fast: true, Password: superPW, MaxConnections: 412})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopOrLog(t, pg2) })
	db = sqlx.MustConnect("postgres", pg2.RoleURL("shop", "shop-password", "shop"))
	defer db.Close()
	var name string
	if err := db.Get(&name, `SELECT name FROM items WHERE id = $1`, 1); err != nil || name != "teapot" {
		t.Fatalf("after restart: name = %q, err = %v; want teapot", name, err)
	}
	if err := db.Get(&maxConns, `SELECT current_setting('max_connections')::int`); err != nil || maxConns != 412 {
		t.Errorf("after a restart with MaxConnections 412: max_connections = %d, %v", maxConns, err)
	}
}

// TestPostgresUpgradesATrustCluster: a cluster made with trust
// authentication (before passwords) gets the superuser's password, and
// tables the superuser made are handed to the service's role.
func TestPostgresUpgradesATrustCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(searchableTempDir(t), "pg")
	pg, err := StartPostgres(ctx, PostgresOptions{Dir: dir, Fast: true, Password: "first"})
	if err != nil {
		t.Fatal(err)
	}
	if err := pg.EnsureDatabase(ctx, "shop", "shop", "shop-password"); err != nil {
		t.Fatal(err)
	}
	super := sqlx.MustConnect("postgres", pg.URL("shop"))
	super.MustExec(`CREATE TYPE colour AS ENUM ('red'); CREATE TABLE old_items (id serial PRIMARY KEY, c colour)`)
	super.MustExec(`ALTER ROLE postgres PASSWORD NULL`) // as initdb --auth=trust left it
	super.Close()
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, passwordMarker)); err != nil {
		t.Fatal(err)
	}
	pg2, err := StartPostgres(ctx, PostgresOptions{Dir: dir, Fast: true, Password: "second"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopOrLog(t, pg2) })
	if err := pg2.EnsureDatabase(ctx, "shop", "shop", "shop-password"); err != nil {
		t.Fatal(err)
	}
	db := sqlx.MustConnect("postgres", pg2.RoleURL("shop", "shop-password", "shop"))
	defer db.Close()
	db.MustExec(`INSERT INTO old_items (c) VALUES ('red'); ALTER TABLE old_items ADD COLUMN name text; ALTER TYPE colour ADD VALUE 'blue'`)
}

func TestPostgresRefusesUnreachableFolderAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root hands the folder to the postgres user") // not an integration dependency
	}
	private := t.TempDir() // owner-only root
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := StartPostgres(context.Background(), PostgresOptions{Dir: filepath.Join(private, "pg"), Password: "x"})
	if err == nil || !strings.Contains(err.Error(), "cannot enter "+private) {
		t.Fatalf("err = %v, want it to name %s as unreachable", err, private)
	}
}

// startTestRedis starts a Redis with random passwords, stopped at cleanup.
func startTestRedis(t *testing.T) *Redis {
	t.Helper()
	r, err := StartRedis(context.Background(), RedisOptions{Dir: t.TempDir(), Passwords: RandomRedisPasswords()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopOrLog(t, r) })
	return r
}

func TestRedisKeepsDataAcrossRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startTestRedis(t)
	client := redis.NewClient(r.Options(RedisAdmin))
	defer client.Close()

	if err := client.Set(ctx, "greeting", "hello", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err == nil {
		t.Error("Start on a running server succeeded")
	}
	if err := r.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := client.Ping(ctx).Err(); err == nil {
		t.Fatal("PING succeeded after Stop")
	}
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	if got, err := client.Get(ctx, "greeting").Result(); err != nil || got != "hello" {
		t.Fatalf("GET after restart = %q, %v; want hello", got, err)
	}
}

// TestRedisKeepsTransactionsAcrossRestart: what a MULTI/EXEC or a script
// wrote (the consumers' dead-lettering, the login throttle, the gateway's
// rate limits) is in the data after a restart too. Redis replays its
// append-only file as the default user, and EXEC checks that user's
// permissions again (a Redis bug, fixed after 7.x): with the default user
// denied every command, every transaction in the file was refused on
// replay ("NOPERM ... after processing the command 'exec'" in its log) and
// its writes were gone.
func TestRedisKeepsTransactionsAcrossRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startTestRedis(t)
	client := redis.NewClient(r.Options(RedisAdmin))
	defer client.Close()

	if _, err := client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "in-multi", "kept", 0)
		p.Set(ctx, "in-multi-too", "kept", 0)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	script := `redis.call('SET', KEYS[1], 'kept'); redis.call('SET', KEYS[2], 'kept')`
	if err := client.Eval(ctx, script, []string{"in-script", "in-script-too"}).Err(); err != nil && !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	if err := r.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	for _, key := range []string{"in-multi", "in-multi-too", "in-script", "in-script-too"} {
		if got, err := client.Get(ctx, key).Result(); err != nil || got != "kept" {
			t.Errorf("GET %s after a restart = %q, %v; want what the transaction wrote", key, got, err)
		}
	}
}

func TestStartFailureShowsLogTail(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = StartRedis(context.Background(), RedisOptions{Dir: t.TempDir(), Port: port, Passwords: RandomRedisPasswords()})
	if err == nil || !strings.Contains(err.Error(), "Address already in use") {
		t.Fatalf("StartRedis on a taken port: err = %v, want the log line saying why", err)
	}
}

func TestConsulAgentsSideBySide(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var agents []*Consul
	for range 2 {
		c, err := StartConsul(ctx, ConsulOptions{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := c.Stop(); err != nil {
				t.Errorf("Stop: %v", err)
			}
		})
		agents = append(agents, c)
	}

	client, err := api.NewClient(&api.Config{Address: agents[0].Addr(), Token: agents[0].ManagementToken()})
	if err != nil {
		t.Fatal(err)
	}
	reg := &api.AgentServiceRegistration{ID: "user-test-1", Name: "user", Address: "127.0.0.1", Port: 3001, Tags: []string{"metrics"}}
	if err := client.Agent().ServiceRegister(reg); err != nil {
		t.Fatal(err)
	}
	var entries []*api.CatalogService
	deadline := time.Now().Add(10 * time.Second) // the catalog syncs from the agent asynchronously
	for len(entries) == 0 && time.Now().Before(deadline) {
		if entries, _, err = client.Catalog().Service("user", "", nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(entries) != 1 || entries[0].ServiceID != "user-test-1" || entries[0].ServicePort != 3001 {
		t.Fatalf("catalog entries for user = %+v, want user-test-1 on port 3001", entries)
	}

	// The agents are separate clusters: the second knows nothing of it.
	other, err := api.NewClient(&api.Config{Address: agents[1].Addr(), Token: agents[1].ManagementToken()})
	if err != nil {
		t.Fatal(err)
	}
	services, err := other.Agent().Services()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := services["user-test-1"]; ok {
		t.Error("second agent sees the first agent's service")
	}
}

// TestServersDieWithParent starts Redis from a helper process, SIGKILLs the
// helper, and checks the kernel takes Redis down with it (Pdeathsig).
func TestServersDieWithParent(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperStartRedis$")
	cmd.Env = append(os.Environ(), "LOCALINFRA_HELPER_DIR="+t.TempDir())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Wait() }()         // reaps the killed child
	defer func() { _ = cmd.Process.Kill() }() // it may have exited already

	var pid int
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "redis-pid="); ok {
			pid, _ = strconv.Atoi(n)
			break
		}
	}
	if pid == 0 {
		t.Fatal("helper did not report a Redis pid")
	}
	if !alive(pid) {
		t.Fatalf("redis %d not running while its parent lives", pid)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL) // it may have exited already
			t.Fatalf("redis %d outlived its parent", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestHelperStartRedis(t *testing.T) {
	dir := os.Getenv("LOCALINFRA_HELPER_DIR")
	if dir == "" {
		return // only runs as TestServersDieWithParent's child
	}
	r, err := StartRedis(context.Background(), RedisOptions{Dir: dir, Passwords: RandomRedisPasswords()})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("redis-pid=%d\n", r.proc.cmd.Process.Pid)
	time.Sleep(time.Minute) // until killed
}

// alive reports whether pid exists and is not a zombie awaiting its reaper.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// stopOrLog stops a server at the end of a test, reporting a failed stop.
func stopOrLog(t *testing.T, s interface{ Stop() error }) {
	if err := s.Stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
}
