package localinfra

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
	// MaxConnections is PostgreSQL's max_connections; default 300, for the
	// many databases tests open at once. See MaxConnections for a platform's.
	MaxConnections int
	// Password is the superuser's ("postgres"), required. Every connection,
	// on the Unix socket and on 127.0.0.1, authenticates with a password
	// (scram-sha-256; pg_hba has no trust line). A cluster made before
	// passwords were required gets this one on its first start.
	Password string
}

// Postgres is a running PostgreSQL server. The superuser "postgres" (URL)
// creates roles and databases (EnsureDatabase); services connect as their
// own role, which owns its database and nothing else.
type Postgres struct {
	opts  PostgresOptions // with defaults applied and Dir absolute
	port  int
	proc  *Process
	admin *sqlx.DB // to the "postgres" database, for EnsureDatabase

	// What Start needs to start the server again after Stop.
	bin, dataDir string
	cred         *syscall.Credential
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
	if o.Password == "" {
		return nil, errors.New("localinfra: postgres: PostgresOptions.Password (the superuser's) is required")
	}
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
		if err := initCluster(ctx, initdb, dataDir, o, cred); err != nil {
			return nil, err
		}
	} else if err := upgradeTrustCluster(ctx, postgres, dataDir, o, cred); err != nil {
		return nil, err
	}
	if err := writeOwned(filepath.Join(dir, "pg_hba.conf"), hbaConf, cred); err != nil {
		return nil, err
	}

	var p *Postgres
	err = onPort(o.Port, func(port int) (*Process, error) {
		p = &Postgres{opts: o, port: port, bin: postgres, dataDir: dataDir, cred: cred}
		err := p.start(ctx, postgres, dataDir, cred)
		return p.proc, err
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Postgres) start(ctx context.Context, bin, dataDir string, cred *syscall.Credential) error {
	args := []string{
		"-D", dataDir,
		"-k", p.opts.Dir,
		"-p", strconv.Itoa(p.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "hba_file=" + filepath.Join(p.opts.Dir, "pg_hba.conf"),
		"-c", "password_encryption=scram-sha-256",
		"-c", "max_connections=" + strconv.Itoa(cmp.Or(p.opts.MaxConnections, 300)),
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
		proc.Kill()
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

// URL returns a lib/pq connection URL for database dbname as the superuser
// "postgres", with its password.
func (p *Postgres) URL(dbname string) string {
	return p.RoleURL("postgres", p.opts.Password, dbname)
}

// RoleURL returns a lib/pq connection URL for database dbname as role with
// password.
func (p *Postgres) RoleURL(role, password, dbname string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(role, password), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)),
		Path: "/" + dbname, RawQuery: "sslmode=disable"}
	return u.String()
}

// EnsureDatabase makes role a login role with password (creating it, or
// setting its password) and database name exist, owned by role, with
// CONNECT revoked from PUBLIC: no other role (but a superuser) may connect
// to it. What the superuser owned in it (a service's tables from before it
// had a role of its own) is handed to role.
func (p *Postgres) EnsureDatabase(ctx context.Context, name, role, password string) error {
	if err := EnsureDatabase(ctx, p.admin, name, role, password); err != nil {
		return err
	}
	db, err := sqlx.Open("postgres", p.URL(name))
	if err != nil {
		return fmt.Errorf("localinfra: database %s: %w", name, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, strings.Replace(handOverSQL, "$OWNER", pq.QuoteLiteral(role), 1)); err != nil {
		return fmt.Errorf("localinfra: hand database %s over to %s: %w", name, role, err)
	}
	return nil
}

// handOverSQL gives role ($OWNER) the schemas, tables, sequences, views, types
// and functions the superuser owns in the current database, outside the
// system's schemas.
const handOverSQL = `
DO $$
DECLARE r record; target text := $OWNER;
BEGIN
  FOR r IN SELECT format('ALTER %s %s OWNER TO %I',
      CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END,
      c.oid::regclass, target) AS stmt
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relowner = 'postgres'::regrole AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
      AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')))
  UNION ALL SELECT format('ALTER TYPE %s OWNER TO %I', t.oid::regtype, target)
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE t.typowner = 'postgres'::regrole AND t.typtype IN ('e', 'd', 'c') AND t.typrelid = 0
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  UNION ALL SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, target)
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE p.proowner = 'postgres'::regrole AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  UNION ALL SELECT format('ALTER SCHEMA %I OWNER TO %I', n.nspname, target)
    FROM pg_namespace n
    WHERE n.nspowner = 'postgres'::regrole AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'public')
      AND n.nspname NOT LIKE 'pg_%'
  LOOP
    EXECUTE r.stmt;
  END LOOP;
END $$`

// EnsureDatabase is Postgres.EnsureDatabase without the hand-over, on the
// server admin is connected to as a role that may create roles and
// databases (a test server of one's own: MERCATO_TEST_POSTGRES_URL).
func EnsureDatabase(ctx context.Context, admin *sqlx.DB, name, role, password string) error {
	r, db := pq.QuoteIdentifier(role), pq.QuoteIdentifier(name)
	pw := pq.QuoteLiteral(password)
	if _, err := admin.ExecContext(ctx, "CREATE ROLE "+r+" LOGIN PASSWORD "+pw); err != nil {
		var pqErr *pq.Error
		if !errors.As(err, &pqErr) || pqErr.Code != "42710" { // duplicate_object
			return fmt.Errorf("localinfra: create role %s: %w", role, err)
		}
		if _, err := admin.ExecContext(ctx, "ALTER ROLE "+r+" LOGIN PASSWORD "+pw); err != nil {
			return fmt.Errorf("localinfra: set the password of role %s: %w", role, err)
		}
	}
	// CREATE DATABASE has no IF NOT EXISTS; treating duplicate_database as
	// success is also race-free when two callers create the same name.
	_, err := admin.ExecContext(ctx, "CREATE DATABASE "+db+" OWNER "+r)
	var pqErr *pq.Error
	if err != nil && (!errors.As(err, &pqErr) || pqErr.Code != "42P04") {
		return fmt.Errorf("localinfra: create database %s: %w", name, err)
	}
	for _, stmt := range []string{
		"ALTER DATABASE " + db + " OWNER TO " + r,
		"REVOKE ALL ON DATABASE " + db + " FROM PUBLIC",
	} {
		if _, err := admin.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("localinfra: database %s: %w", name, err)
		}
	}
	return nil
}

// Start starts the server again after Stop, on the same port and data
// folder, and waits until it accepts connections (what a restart after an
// outage looks like to clients; the chaos suite uses it).
func (p *Postgres) Start(ctx context.Context) error {
	if p.proc != nil && !p.proc.Exited() {
		return fmt.Errorf("localinfra: postgres on port %d is already running", p.port)
	}
	return p.start(ctx, p.bin, p.dataDir, p.cred)
}

// Process is the server's process of its current (or last) run.
func (p *Postgres) Process() *Process { return p.proc }

// Stop shuts the server down with a fast shutdown (SIGINT: active sessions
// are rolled back, the cluster is left consistent) and waits for it.
func (p *Postgres) Stop() error {
	if p.admin != nil {
		p.admin.Close()
		p.admin = nil
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

// hbaConf is the server's pg_hba.conf: a password (scram-sha-256) for every
// connection, on the Unix socket and on loopback; nothing else.
const hbaConf = `# Written by localinfra on every start: no trust, passwords only.
local all all scram-sha-256
host  all all 127.0.0.1/32 scram-sha-256
host  all all ::1/128 scram-sha-256
`

// passwordMarker, in the server's folder, says the cluster's superuser has
// a password (made by this version, or upgraded).
const passwordMarker = "superuser-has-password"

// writeOwned writes a file only the server's user (cred; nil: ours) reads.
func writeOwned(path, content string, cred *syscall.Credential) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return fmt.Errorf("localinfra: postgres: %w", err)
	}
	if cred != nil {
		if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("localinfra: postgres: %w", err)
		}
	}
	return nil
}

// upgradeTrustCluster gives the superuser of a cluster initialised with
// trust authentication (before passwords were required) its password: the
// server is started once on its Unix socket alone (in a folder only we can
// enter), with trust there, for ALTER ROLE, and stopped.
func upgradeTrustCluster(ctx context.Context, bin, dataDir string, o PostgresOptions, cred *syscall.Credential) error {
	marker := filepath.Join(o.Dir, passwordMarker)
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	hba := filepath.Join(o.Dir, "pg_hba.conf")
	if err := writeOwned(hba, "local all postgres trust\n", cred); err != nil {
		return err
	}
	cmd := exec.Command(bin, "-D", dataDir, "-k", o.Dir, "-c", "listen_addresses=", "-c", "hba_file="+hba) //nolint:gosec // G204: the PostgreSQL binary localinfra found
	cmd.Dir = o.Dir
	proc, err := startProcess("postgres (setting the superuser's password)", o.LogFile, cmd, cred)
	if err != nil {
		return err
	}
	dsn := "host=" + o.Dir + " user=postgres dbname=postgres sslmode=disable"
	db, err := sqlx.Open("postgres", dsn)
	if err == nil {
		defer db.Close()
		err = proc.waitReady(ctx, db.PingContext)
	}
	if err == nil {
		_, err = db.ExecContext(ctx, "ALTER ROLE postgres PASSWORD "+pq.QuoteLiteral(o.Password))
		db.Close()
	}
	if stopErr := proc.stop(syscall.SIGINT); err == nil {
		err = stopErr
	}
	if err != nil {
		return fmt.Errorf("localinfra: postgres: set the superuser's password: %w", err)
	}
	return os.WriteFile(marker, nil, 0o600)
}

// initCluster runs initdb in a folder beside dataDir and renames it to
// dataDir once initdb has finished, so dataDir/PG_VERSION means a whole
// cluster. initdb writes PG_VERSION first and cleans up after its own
// errors, but not after being killed: with its caller (kill -9 of
// mercato-local, a second Ctrl-C) it would leave a cluster without even its
// "postgres" database, which every later start would fail on. What such an
// initdb left is removed first.
func initCluster(ctx context.Context, initdb, dataDir string, o PostgresOptions, cred *syscall.Credential) error {
	staging := dataDir + ".initdb"
	if err := os.RemoveAll(staging); err != nil {
		return fmt.Errorf("localinfra: postgres: %w", err)
	}
	if err := runInitdb(ctx, initdb, staging, o, cred); err != nil {
		os.RemoveAll(staging)
		return err
	}
	if err := os.Rename(staging, dataDir); err != nil {
		return fmt.Errorf("localinfra: postgres: %w", err)
	}
	return nil
}

// runInitdb creates a cluster whose superuser "postgres" has o.Password,
// reachable only from this machine and only with a password.
func runInitdb(ctx context.Context, bin, dataDir string, o PostgresOptions, cred *syscall.Credential) error {
	// initdb reads the password from a file, not its command line (ps).
	pwFile := filepath.Join(o.Dir, "initdb-password")
	if err := writeOwned(pwFile, o.Password+"\n", cred); err != nil {
		return err
	}
	defer os.Remove(pwFile)
	args := []string{
		"-D", dataDir,
		"-U", "postgres",
		"--auth=scram-sha-256",
		"--pwfile=" + pwFile,
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
	case <-proc.Done():
		if proc.waitErr != nil {
			return proc.failure(fmt.Errorf("failed: %v", proc.waitErr))
		}
		return os.WriteFile(filepath.Join(o.Dir, passwordMarker), nil, 0o600)
	case <-ctx.Done():
		proc.Kill()
		return proc.failure(ctx.Err())
	case <-timer.C:
		proc.Kill()
		return proc.failure(fmt.Errorf("did not finish within %s", 2*startTimeout))
	}
}
