package testkit

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/mercato-dev/mercato/shared/localinfra"
)

// PostgresURL creates a fresh, empty database with a unique name on the
// test binary's PostgreSQL server, owned by a role of the same name with a
// random password (a service's role: it owns its database and may connect
// to no other), and returns its URL with that role (lib/pq format). The
// database and its role are dropped, connections and all, when the test
// ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	servers.pgOnce.Do(startPostgres)
	if servers.pgErr != nil {
		t.Fatalf("testkit: PostgreSQL: %v%s", servers.pgErr, overrideHint(EnvPostgresURL, "a running server's URL"))
	}
	name := databaseName(t.Name())
	quoted := pq.QuoteIdentifier(name)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	password := randomHex(16)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		// FORCE: a pool the test forgot to close must not keep it alive.
		if _, err := servers.pgAdmin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoted+" WITH (FORCE)"); err != nil {
			t.Errorf("testkit: drop database %s: %v", name, err)
		}
		if _, err := servers.pgAdmin.ExecContext(ctx, "DROP ROLE IF EXISTS "+quoted); err != nil {
			t.Errorf("testkit: drop role %s: %v", name, err)
		}
	})
	if err := localinfra.EnsureDatabase(ctx, servers.pgAdmin, name, name, password); err != nil {
		t.Fatalf("testkit: %v", err)
	}
	u, err := withDatabase(servers.pgAdminURL, name)
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	pu, _ := url.Parse(u) // withDatabase parsed it
	pu.User = url.UserPassword(name, password)
	return pu.String()
}

// Postgres creates a fresh database like PostgresURL and returns an open
// sqlx pool to it, closed when the test ends.
func Postgres(t testing.TB) *sqlx.DB {
	t.Helper()
	dsn := PostgresURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	db, err := sqlx.ConnectContext(ctx, "postgres", dsn)
	if err != nil {
		t.Fatalf("testkit: connect to %s: %v", redacted(dsn), err)
	}
	t.Cleanup(func() { db.Close() }) // registered after the drop, so runs before it
	return db
}

func startPostgres() {
	s := &servers
	if env := os.Getenv(EnvPostgresURL); env != "" {
		s.pgAdminURL = env
	} else {
		dir, err := serverDir("postgres")
		if err != nil {
			s.pgErr = err
			return
		}
		// Fast: durability is pointless for throw-away test data.
		pg, err := localinfra.StartPostgres(context.Background(), localinfra.PostgresOptions{Dir: dir, Fast: true, Password: randomHex(16)})
		if err != nil {
			s.pgErr = err
			return
		}
		s.mu.Lock()
		s.pg = pg
		s.mu.Unlock()
		s.pgAdminURL = pg.URL("postgres")
	}
	if _, err := withDatabase(s.pgAdminURL, "x"); err != nil {
		s.pgErr = err
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	admin, err := sqlx.ConnectContext(ctx, "postgres", s.pgAdminURL)
	if err != nil {
		s.pgErr = fmt.Errorf("connect to %s: %w", redacted(s.pgAdminURL), err)
		return
	}
	admin.SetMaxOpenConns(4)
	s.mu.Lock()
	s.pgAdmin = admin
	s.mu.Unlock()
}

// databaseName turns a test name into a unique, valid database name
// (lower case, at most 63 bytes).
func databaseName(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	name := b.String()
	if len(name) > 40 {
		name = name[:40]
	}
	return "test_" + name + "_" + randomHex(4)
}

// redacted is dsn with its password hidden, for messages.
func redacted(dsn string) string {
	if u, err := url.Parse(dsn); err == nil {
		return u.Redacted()
	}
	return "(a PostgreSQL URL)"
}

// withDatabase returns the URL dsn with its database replaced by name.
func withDatabase(dsn, name string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("%s must be a postgres:// URL, got %q", EnvPostgresURL, dsn)
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}

// PostgresServer is the test binary's PostgreSQL server (the one
// PostgresURL's databases are on), for a test that stops and starts it to
// see the services ride out an outage. It fails t when the server is one
// MERCATO_TEST_POSTGRES_URL names, which testkit cannot restart. A test
// that stops it must not run in parallel with others using PostgreSQL.
func PostgresServer(t testing.TB) *localinfra.Postgres {
	t.Helper()
	servers.pgOnce.Do(startPostgres)
	if servers.pgErr != nil {
		t.Fatalf("testkit: PostgreSQL: %v%s", servers.pgErr, overrideHint(EnvPostgresURL, "a running server's URL"))
	}
	servers.mu.Lock()
	defer servers.mu.Unlock()
	if servers.pg == nil {
		t.Fatalf("testkit: PostgreSQL is the server %s names, which this test must stop and start; unset it", EnvPostgresURL)
	}
	return servers.pg
}

// FreezePostgres SIGSTOPs the test binary's PostgreSQL server (see
// PostgresServer), the postmaster and every backend (each leads a process
// group of its own, which a signal to the postmaster's misses): it keeps
// taking connections, in the kernel's backlog, and answers nothing, as a
// hung server or host does. The returned thaw SIGCONTs them; it also runs
// when the test ends, and may be called more than once.
func FreezePostgres(t testing.TB) (thaw func()) {
	t.Helper()
	root := PostgresServer(t).Process().Pid()
	pids := []int{root}
	signal := func(sig syscall.Signal) {
		for _, pid := range pids {
			_ = syscall.Kill(pid, sig) // ESRCH: a backend that has exited
		}
	}
	var once sync.Once
	thaw = func() { once.Do(func() { signal(syscall.SIGCONT) }) }
	t.Cleanup(thaw)
	// The postmaster first, so that it forks no backend after the look.
	if err := syscall.Kill(root, syscall.SIGSTOP); err != nil {
		t.Fatalf("testkit: freeze PostgreSQL: %v", err)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("testkit: freeze PostgreSQL: %v", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(root) {
			if err := syscall.Kill(pid, syscall.SIGSTOP); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return thaw
}

// MigrateInterrupted runs migrate on db as an instance's start does while a
// long transaction (a report, a backup's pg_dump) holds its snapshot, which
// every concurrent index build waits for: migrate stops at the first such
// build when its context ends, as it does at the start-up deadline. Then it
// runs migrate again, as the instance's next start does, once the
// transaction has ended, and fails t unless that succeeds and leaves every
// index of the database valid.
func MigrateInterrupted(t testing.TB, db *sqlx.DB, migrate func(context.Context, *sqlx.DB) error) {
	t.Helper()
	ctx := context.Background()
	long, err := db.BeginTxx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := long.ExecContext(ctx, `SELECT 1`); err != nil { // takes the snapshot
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	interrupted := migrate(short, db)
	cancel()
	_ = long.Rollback()
	if interrupted == nil {
		t.Fatal("testkit: migrate finished beside a long transaction; the migrations build no index concurrently")
	}
	if err := migrate(ctx, db); err != nil {
		t.Fatalf("testkit: migrate after an interrupted one: %v", err)
	}
	var invalid []string
	if err := db.SelectContext(ctx, &invalid, `SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid`); err != nil {
		t.Fatal(err)
	}
	if len(invalid) > 0 {
		t.Errorf("testkit: migrated again after %q, with INVALID indexes %v, which no query uses and nothing rebuilds", interrupted, invalid)
	}
}
