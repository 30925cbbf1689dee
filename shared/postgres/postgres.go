// Package postgres opens sqlx connection pools, applies a service's embedded
// migrations with goose at start-up, and holds the row helpers every
// repository shares (NotFound, Affected, NullString, Convert).
package postgres

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	neturl "net/url"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"github.com/pressly/goose/v3/lock"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/mercato-dev/mercato/shared/tracing"
)

// PoolOptions sizes the connection pool. Zero values take the defaults.
type PoolOptions struct {
	MaxOpen     int           // default 20
	MaxIdle     int           // default 10
	MaxLifetime time.Duration // default 30m
	MaxIdleTime time.Duration // default 5m
	// ApplicationName names the pool's connections (PostgreSQL's
	// application_name, as pg_stat_activity shows it), in place of any the
	// URL sets. The outbox's commit notifications carry it, so that a relay
	// wakes for its own instance's commits only (events.Relay).
	ApplicationName string
}

// Open connects to url, sizes the pool and checks the connection within ctx.
// Every call on the pool ends when its context does, a server that hangs
// notwithstanding.
func Open(ctx context.Context, url string, opts PoolOptions) (*sqlx.DB, error) {
	if opts.ApplicationName != "" {
		var err error
		if url, err = withApplicationName(url, opts.ApplicationName); err != nil {
			return nil, fmt.Errorf("postgres: %w", err)
		}
	}
	cfg, err := pq.NewConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	// Calls end at their context's end even on a server that does not
	// answer (connector).
	db := sqlx.NewDb(sql.OpenDB(connector{cfg}), "postgres")
	db.SetMaxOpenConns(cmp.Or(opts.MaxOpen, 20))
	db.SetMaxIdleConns(cmp.Or(opts.MaxIdle, 10))
	db.SetConnMaxLifetime(cmp.Or(opts.MaxLifetime, 30*time.Minute))
	db.SetConnMaxIdleTime(cmp.Or(opts.MaxIdleTime, 5*time.Minute))
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: ping: %w", err)
	}
	return db, nil
}

// withApplicationName is the connection string conn (a postgres:// URL or
// key=value pairs) with application_name set to name, in place of any conn
// sets (in key=value pairs, a later key wins).
func withApplicationName(conn, name string) (string, error) {
	if strings.HasPrefix(conn, "postgres://") || strings.HasPrefix(conn, "postgresql://") {
		u, err := neturl.Parse(conn)
		if err != nil {
			// url's error quotes the URL, password and all.
			return "", errors.New("the database URL does not parse")
		}
		q := u.Query()
		q.Set("application_name", name)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	quoted := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(name)
	return conn + " application_name='" + quoted + "'", nil
}

// Migrate applies the goose migrations found at the root of migrations (files
// named like 00001_init.sql), recording them in table. A Postgres advisory
// lock serialises instances that start at the same time. Several migration
// sets may share one database as long as each uses its own table.
func Migrate(ctx context.Context, db *sqlx.DB, migrations fs.FS, table string) error {
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(lockID(table)))
	if err != nil {
		return fmt.Errorf("postgres: migrate lock: %w", err)
	}
	store, err := database.NewStore(goose.DialectPostgres, table)
	if err != nil {
		return fmt.Errorf("postgres: migrate store: %w", err)
	}
	provider, err := goose.NewProvider("", db.DB, migrations,
		goose.WithStore(store), goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("postgres: migrations: %w", err)
	}
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("postgres: migrate %s: %w", table, err)
	}
	return nil
}

// MigrateDir is Migrate for the migrations in folder dir of files, such as
// an embed.FS of migrations/*.sql and dir "migrations".
func MigrateDir(ctx context.Context, db *sqlx.DB, files fs.FS, dir, table string) error {
	sub, err := fs.Sub(files, dir)
	if err != nil {
		return fmt.Errorf("postgres: migrations %s: %w", dir, err)
	}
	return Migrate(ctx, db, sub, table)
}

// lockID derives a stable advisory lock id per migration table, so different
// migration sets in one database do not wait on each other.
func lockID(table string) int64 {
	var h int64 = 5381
	for _, c := range table {
		h = h*33 + int64(c)
	}
	return h
}

// Postgres error codes the services map to domain errors.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
	codeCheckViolation      = "23514"
)

// IsUniqueViolation reports whether err is a unique-constraint violation,
// optionally on the named constraint.
func IsUniqueViolation(err error, constraint ...string) bool {
	return hasCode(err, codeUniqueViolation, constraint)
}

// IsForeignKeyViolation reports whether err is a foreign-key violation.
func IsForeignKeyViolation(err error, constraint ...string) bool {
	return hasCode(err, codeForeignKeyViolation, constraint)
}

// IsCheckViolation reports whether err is a CHECK-constraint violation.
func IsCheckViolation(err error, constraint ...string) bool {
	return hasCode(err, codeCheckViolation, constraint)
}

func hasCode(err error, code string, constraint []string) bool {
	var pqErr *pq.Error
	if !errors.As(err, &pqErr) || string(pqErr.Code) != code {
		return false
	}
	return len(constraint) == 0 || pqErr.Constraint == constraint[0]
}

// InTx runs fn in a transaction, committing when fn returns nil and rolling
// back otherwise. Inside a trace the transaction is a span, named after
// the function that called InTx ("tx Orders.Create").
func InTx(ctx context.Context, db *sqlx.DB, fn func(tx *sqlx.Tx) error) error {
	return inTx(ctx, db, nil, fn)
}

// snapshot is the transaction of InSnapshot.
var snapshot = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}

// InSnapshot runs fn, which only reads, in a read-only REPEATABLE READ
// transaction, so that all its statements see the database as it was at
// the first: a read made of several statements (a page and its total, a row
// and the rows that belong to it) never mixes the states before and after a
// concurrent change, as READ COMMITTED statements in turn would.
func InSnapshot(ctx context.Context, db *sqlx.DB, fn func(tx *sqlx.Tx) error) error {
	return inTx(ctx, db, snapshot, fn)
}

// Page reads, in one snapshot (InSnapshot), a page of the rows of from (a
// table and its WHERE, on args) in orderBy's order, offset and limit after
// args, and how many rows from holds in all: the total then counts the very
// rows the page was taken from, never fewer than it lists.
func Page[Row any](ctx context.Context, db *sqlx.DB, columns, from, orderBy string, offset, limit int, args ...any) ([]Row, int, error) {
	var (
		rows  []Row
		total int
	)
	page := fmt.Sprintf(`SELECT %s FROM %s ORDER BY %s OFFSET $%d LIMIT $%d`, columns, from, orderBy, len(args)+1, len(args)+2)
	// inTx itself, for the span to be named after Page's caller.
	err := inTx(ctx, db, snapshot, func(tx *sqlx.Tx) error {
		if err := tx.GetContext(ctx, &total, `SELECT count(*) FROM `+from, args...); err != nil {
			return fmt.Errorf("count: %w", err)
		}
		return tx.SelectContext(ctx, &rows, page, slices.Concat(args, []any{offset, limit})...)
	})
	return rows, total, err
}

// deleteBatch bounds one DELETE, so clean-up never holds many locks at once.
const deleteBatch = 5000

// DeleteOlder deletes the rows of table whose column is more than retention
// before the database's clock, a batch at a time, and reports how many it
// deleted. key is the table's primary key ("id", or "user_id, key"). Rows
// another instance's clean-up holds are skipped, so that instances running
// the same clean-up share it instead of waiting on each other. The names are
// the caller's constants, never input.
func DeleteOlder(ctx context.Context, db sqlx.ExecerContext, table, key, column string, retention time.Duration) (int64, error) {
	var total int64
	for {
		res, err := db.ExecContext(ctx, fmt.Sprintf(`
			DELETE FROM %[1]s WHERE (%[2]s) IN (
				SELECT %[2]s FROM %[1]s
				WHERE %[3]s < now() - make_interval(secs => $1)
				LIMIT $2
				FOR UPDATE SKIP LOCKED)`, table, key, column),
			retention.Seconds(), deleteBatch)
		if err != nil {
			return total, fmt.Errorf("delete old %s rows: %w", table, err)
		}
		n, _ := res.RowsAffected() // lib/pq always reports it
		total += n
		if n < deleteBatch {
			return total, nil
		}
	}
}

func inTx(ctx context.Context, db *sqlx.DB, opts *sql.TxOptions, fn func(tx *sqlx.Tx) error) (err error) {
	ctx, span := tracing.Start(ctx, "tx", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(semconv.DBSystemNamePostgreSQL))
	defer func() { tracing.End(span, err) }()
	if span.IsRecording() {
		span.SetName("tx " + callerName())
	}
	tx, err := db.BeginTxx(ctx, opts)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	// Every failure of the commit is one: sql.ErrTxDone too, which means
	// ctx ended and database/sql rolled the transaction back.
	return tx.Commit()
}

// callerName is the function that called InTx, InSnapshot or Page, without its
// package path: "Orders.Create" for "…/order/postgres.(*Orders).Create".
func callerName() string {
	pc, _, _, ok := runtime.Caller(3) // callerName, inTx, InTx, its caller
	fn := runtime.FuncForPC(pc)
	if !ok || fn == nil {
		return "unknown"
	}
	name := fn.Name()
	name = name[strings.LastIndexByte(name, '/')+1:] // postgres.(*Orders).Create
	if i := strings.IndexByte(name, '.'); i >= 0 {
		name = name[i+1:] // (*Orders).Create
	}
	return strings.NewReplacer("(*", "", ")", "").Replace(name)
}
