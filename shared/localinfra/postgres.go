package localinfra

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// PostgresOptions configures StartPostgres.
type PostgresOptions struct {
	// Dir is this server's folder, created when missing: the cluster lives in
	// Dir/data (initialised on first start) and the Unix socket in Dir. Keep
	// the path short (Unix socket paths are limited to 107 bytes). When we
	// run as root, Dir is handed to the "postgres" OS user, which must be
	// able to reach it (every parent searchable).
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// Fast trades durability for speed (fsync, synchronous_commit and
	// full_page_writes off): for tests, never for data you want to keep.
	Fast bool
	// LogFile receives initdb's and the server's output; default
	// Dir/postgres.log.
	LogFile string
	// BinDir holds initdb and postgres; default: see FindPostgresBin.
	BinDir string
}

// Postgres is a running PostgreSQL server. Connect as user "postgres"
// without a password (trust authentication, 127.0.0.1 only).
type Postgres struct {
	opts  PostgresOptions // with defaults applied and Dir absolute
	port  int
	proc  *process
	admin *sqlx.DB // to the "postgres" database, for CreateDatabase
}

// StartPostgres initialises a cluster in o.Dir/data if there is none, starts
// the server and waits until it accepts connections. ctx bounds the start-up
// only; the server runs until Stop (or until this process dies). As root, initdb and
// postgres run as the "postgres" OS user (PostgreSQL refuses to run as root);
// otherwise as the current user.
func StartPostgres(ctx context.Context, o PostgresOptions) (*Postgres, error) {
	err := serverFolder("postgres", "PostgresOptions", &o.Dir, &o.LogFile)
	if err != nil {
		return nil, err
	}
	dir := o.Dir
	initdb, postgres, err := postgresBins(o.BinDir)
	if err != nil {
		return nil, err
	}
	cred, err := postgresCredential()
	if err != nil {
		return nil, err
	}
	if err := preparePostgresDir(dir, cred); err != nil {
		return nil, err
	}
	dataDir := filepath.Join(dir, "data")
	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		_, statErr := os.Stat(dataDir)
		if err := runInitdb(ctx, initdb, dataDir, o, cred); err != nil {
			// initdb cleans up after its own errors but not after being
			// killed; a half-made cluster would make every later start fail.
			if errors.Is(statErr, os.ErrNotExist) {
				os.RemoveAll(dataDir)
			}
			return nil, err
		}
	}

	for attempt := 1; ; attempt++ {
		port, picked, err := portOrFree(o.Port)
		if err != nil {
			return nil, err
		}
		p := &Postgres{opts: o, port: port}
		err = p.start(ctx, postgres, dataDir, cred)
		if err == nil {
			return p, nil
		}
		if picked && attempt < 3 && p.proc != nil && p.proc.bindConflict() {
			continue
		}
		return nil, err
	}
}

func (p *Postgres) start(ctx context.Context, bin, dataDir string, cred *syscall.Credential) error {
	args := []string{
		"-D", dataDir,
		"-k", p.opts.Dir,
		"-p", strconv.Itoa(p.port),
		"-c", "listen_addresses=127.0.0.1",
		// Each service instance keeps a pool of ~20, tests open many
		// databases at once, and `make run` runs two instances of each.
		"-c", "max_connections=300",
	}
	if p.opts.Fast {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	cmd := exec.Command(bin, args...) //nolint:gosec // G204: the PostgreSQL binary localinfra found, with arguments built here
	cmd.Dir = p.opts.Dir              // a folder the postgres user can enter
	proc, err := startProcess("postgres", p.opts.LogFile, cmd, cred)
	if err != nil {
		return err
	}
	p.proc = proc
	admin, err := sqlx.Open("postgres", p.URL("postgres"))
	if err != nil {
		proc.kill()
		return fmt.Errorf("localinfra: postgres: %w", err)
	}
	admin.SetMaxOpenConns(2)
	if err := proc.waitReady(ctx, admin.PingContext); err != nil {
		admin.Close()
		return err
	}
	p.admin = admin
	return nil
}

// Port is the server's TCP port on 127.0.0.1.
func (p *Postgres) Port() int { return p.port }

// URL returns a lib/pq connection URL for database dbname as user postgres.
func (p *Postgres) URL(dbname string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.port, url.PathEscape(dbname))
}

// CreateDatabase creates database name unless it exists.
func (p *Postgres) CreateDatabase(ctx context.Context, name string) error {
	// CREATE DATABASE has no IF NOT EXISTS; treating duplicate_database as
	// success is also race-free when two callers create the same name.
	_, err := p.admin.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name))
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && pqErr.Code == "42P04" {
		return nil
	}
	if err != nil {
		return fmt.Errorf("localinfra: create database %s: %w", name, err)
	}
	return nil
}

// Stop shuts the server down with a fast shutdown (SIGINT: active sessions
// are rolled back, the cluster is left consistent) and waits for it.
func (p *Postgres) Stop() error {
	if p.admin != nil {
		p.admin.Close()
	}
	return p.proc.stop(syscall.SIGINT)
}

func postgresBins(binDir string) (initdb, postgres string, err error) {
	if binDir != "" {
		initdb, postgres = filepath.Join(binDir, "initdb"), filepath.Join(binDir, "postgres")
		for _, b := range []string{initdb, postgres} {
			if !isExecutable(b) {
				return "", "", fmt.Errorf("localinfra: PostgreSQL program %s %w; %s", b, ErrNotFound, depsHint)
			}
		}
		return initdb, postgres, nil
	}
	if initdb, err = FindPostgresBin("initdb"); err != nil {
		return "", "", err
	}
	// postgres must come from the same installation as initdb.
	postgres = filepath.Join(filepath.Dir(initdb), "postgres")
	if !isExecutable(postgres) {
		return "", "", fmt.Errorf("localinfra: PostgreSQL program %s %w; %s", postgres, ErrNotFound, depsHint)
	}
	return initdb, postgres, nil
}

// postgresCredential returns the "postgres" OS user when we are root (the
// server refuses to run as root) and nil, meaning the current user, otherwise.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("localinfra: postgres: running as root needs the \"postgres\" OS user that Debian's postgresql package creates: %w; %s", err, depsHint)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("localinfra: postgres: uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("localinfra: postgres: gid %q: %w", u.Gid, err)
	}
	// Empty Groups drops root's supplementary groups.
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// preparePostgresDir creates dir, gives it to the server's user and checks
// that the user can reach it, which fails confusingly later otherwise.
func preparePostgresDir(dir string, cred *syscall.Credential) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("localinfra: postgres: %w", err)
	}
	if cred == nil {
		return nil
	}
	if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
		return fmt.Errorf("localinfra: postgres: give %s to the postgres user: %w", dir, err)
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		if err := checkSearchable(d, cred); err != nil {
			return err
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// checkSearchable reports an error when cred's user may not enter dir.
func checkSearchable(dir string, cred *syscall.Credential) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("localinfra: postgres: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	mode := fi.Mode().Perm()
	switch {
	case st.Uid == cred.Uid:
		if mode&0o100 != 0 {
			return nil
		}
	case st.Gid == cred.Gid || slices.Contains(cred.Groups, st.Gid):
		if mode&0o010 != 0 {
			return nil
		}
	default:
		if mode&0o001 != 0 {
			return nil
		}
	}
	return fmt.Errorf("localinfra: postgres: the server runs as OS user postgres (uid %d), which cannot enter %s (mode %v, owner uid %d); "+
		"put its folder under a path every user can search, or `chmod o+x %s`", cred.Uid, dir, mode, st.Uid, dir)
}

// runInitdb creates a cluster with a passwordless superuser "postgres"
// reachable only from this machine.
func runInitdb(ctx context.Context, bin, dataDir string, o PostgresOptions, cred *syscall.Credential) error {
	args := []string{
		"-D", dataDir,
		"-U", "postgres",
		"--auth=trust",
		"--encoding=UTF8",
		// C: identical sorting everywhere, and no dependency on the
		// machine's generated locales.
		"--locale=C",
	}
	if o.Fast {
		args = append(args, "--no-sync")
	}
	cmd := exec.Command(bin, args...) //nolint:gosec // G204: the PostgreSQL binary localinfra found, with arguments built here
	cmd.Dir = o.Dir
	proc, err := startProcess("initdb", o.LogFile, cmd, cred)
	if err != nil {
		return err
	}
	// initdb takes seconds; allow generously for a busy 2-core machine.
	timer := time.NewTimer(2 * startTimeout)
	defer timer.Stop()
	select {
	case <-proc.done:
		if proc.waitErr != nil {
			return proc.failure(fmt.Errorf("failed: %v", proc.waitErr))
		}
		return nil
	case <-ctx.Done():
		proc.kill()
		return proc.failure(ctx.Err())
	case <-timer.C:
		proc.kill()
		return proc.failure(fmt.Errorf("did not finish within %s", 2*startTimeout))
	}
}
