package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/e2e/load"
	"github.com/mercato-dev/mercato/shared/localinfra"
)

// options are the command's flags.
type options struct {
	target      string
	allowRemote bool
	rate        float64
	duration    time.Duration
	users       int
	mix         string
	cards       string
	timeout     time.Duration
	maxWorkers  int
	settle      time.Duration
	png, json   string
	label       string

	invariants bool
	restock    bool
	secrets    string // folder of make run's secrets
	postgres   string // host:port of make run's PostgreSQL
	adminEmail string
}

// cardNames name the sandbox cards in -cards.
var cardNames = map[string]string{"ok": load.CardOK, "declined": load.CardDeclined, "no-funds": load.CardInsufficientFunds}

const usage = `Usage: make load [LOAD_FLAGS='...']   (or: go run ./e2e/cmd/load [flags])

Sends a mix of shoppers to a running Mercato gateway (make run's by default)
at a fixed rate, open-loop: requests leave on schedule whether or not the
earlier ones were answered, so a slow platform shows as latency and errors.
Before the first request it registers and signs in -users shoppers and, as
the admin, tops up the stock of the products checkouts buy. While it runs it
prints a progress line a second (answers/s, p50, p99, errors by code); then a
table per scenario and route (requests, rate, p50/p90/p99/max, errors by
code), writes the latency-over-time PNG (and -json), waits for every order it
placed to reach a final state and checks the invariants from make run's
databases. Exit status: 0 all held, 1 an invariant failed, 2 it could not run.

Scenarios (-mix): browse (category listings with filters and sorts, the
category tree), search (full text), product (detail), account (register,
log in), checkout (orders paid with the sandbox cards, some declined),
orders (history and single orders). Default mix: %s.

Secrets never go on the command line: the databases are read with make run's
roles, their passwords from -secrets (or whole URLs in MERCATO_LOAD_PRODUCT_DB,
MERCATO_LOAD_ORDER_DB, MERCATO_LOAD_PAYMENT_DB); the admin's password from
MERCATO_ADMIN_PASSWORD or -secrets/admin-password.

Flags:
`

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	root, err := localinfra.RepoRoot()
	if err != nil {
		root = "."
	}
	o := &options{}
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, usage, load.FormatMix(load.DefaultMix()))
		fs.PrintDefaults()
	}
	fs.StringVar(&o.target, "target", load.DefaultTarget, "the gateway's base URL; only loopback addresses unless -allow-remote")
	fs.BoolVar(&o.allowRemote, "allow-remote", false, "allow a -target that is not a loopback address (only ever at a platform you run)")
	fs.Float64Var(&o.rate, "rate", load.DefaultRate, fmt.Sprintf("requests per second over all scenarios (at most %d)", load.MaxRate))
	fs.DurationVar(&o.duration, "duration", load.DefaultDuration, fmt.Sprintf("how long requests are sent (at most %s)", load.MaxDuration))
	fs.IntVar(&o.users, "users", load.DefaultUsers, fmt.Sprintf("shoppers registered and signed in before the run; each has the gateway's per-user rate limit (make run: 600/min) to itself (at most %d)", load.MaxUsers))
	fs.StringVar(&o.mix, "mix", "", `scenario weights, "checkout" for one alone or "browse=3,checkout=1" (default the shopper mix above)`)
	fs.StringVar(&o.cards, "cards", "ok=8,declined=1,no-funds=1", "the checkouts' sandbox cards by weight: ok (4242…, confirmed), declined (…0002), no-funds (…9995); both refused cards end cancelled")
	fs.DurationVar(&o.timeout, "timeout", load.DefaultTimeout, "deadline of each request")
	fs.IntVar(&o.maxWorkers, "max-workers", load.DefaultWorkers, "requests in flight at most; when reached, requests leave late and the table says the rate was not kept")
	fs.DurationVar(&o.settle, "settle", load.DefaultSettle, "how long to wait after the run for every order placed to reach a final state")
	fs.StringVar(&o.png, "png", filepath.Join(root, ".local", "load", "latency.png"), "the latency-over-time chart (empty: none)")
	fs.StringVar(&o.json, "json", "", "write the whole report (table, timeline, orders, invariants) as JSON to this file")
	fs.StringVar(&o.label, "label", "", "a name for the run, in the chart's title and the JSON")
	fs.BoolVar(&o.invariants, "invariants", true, "check the stock, money and order invariants in the databases after the run")
	fs.BoolVar(&o.restock, "restock", true, "as the admin, top up the stock of the products checkouts buy before the run (through the stock ledger)")
	fs.StringVar(&o.secrets, "secrets", filepath.Join(root, ".local", "secrets"), "make run's secrets folder: the databases' and the admin's passwords")
	fs.StringVar(&o.postgres, "postgres", "127.0.0.1:15432", "make run's PostgreSQL (host:port)")
	fs.StringVar(&o.adminEmail, "admin-email", "admin@mercato.local", "the admin who restocks (make run's)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q (flags only; -h lists them)", fs.Args())
	}
	return o, nil
}

// config is the run's load.Config: the flags, the databases opened and the
// admin's credentials read. closeDBs closes what it opened.
func (o *options) config(stderr io.Writer) (cfg load.Config, closeDBs func(), err error) {
	closeDBs = func() {}
	cfg = load.Config{Target: o.target, AllowRemote: o.allowRemote, Rate: o.rate, Duration: o.duration, Users: o.users,
		Timeout: o.timeout, MaxWorkers: o.maxWorkers, Settle: o.settle, Label: o.label}
	if o.rate <= 0 || o.duration <= 0 || o.users <= 0 || o.settle <= 0 {
		return cfg, closeDBs, errors.New("-rate, -duration, -users and -settle must be above zero")
	}
	if o.mix != "" {
		if cfg.Mix, err = load.ParseMix(o.mix); err != nil {
			return cfg, closeDBs, err
		}
	}
	if cfg.Cards, err = parseCards(o.cards); err != nil {
		return cfg, closeDBs, err
	}
	if o.restock {
		pw, err := o.secret("MERCATO_ADMIN_PASSWORD", "admin-password")
		if err != nil {
			fmt.Fprintf(stderr, "load: not restocking (%v); checkouts may sell products out (409 out_of_stock)\n", err)
		} else {
			cfg.Admin = &load.Credentials{Email: o.adminEmail, Password: pw}
		}
	}
	if o.invariants {
		dbs := &load.Databases{}
		var opened []*sqlx.DB
		closeDBs = func() {
			for _, db := range opened {
				db.Close()
			}
		}
		for svc, dst := range map[string]**sqlx.DB{"product": &dbs.Product, "order": &dbs.Order, "payment": &dbs.Payment} {
			u, err := o.databaseURL(svc)
			if err != nil {
				closeDBs()
				return cfg, func() {}, fmt.Errorf("%v (or -invariants=false to run without the checks)", err)
			}
			db, err := sqlx.Open("postgres", u)
			if err != nil {
				closeDBs()
				return cfg, func() {}, err
			}
			db.SetMaxOpenConns(2)
			opened = append(opened, db)
			*dst = db
		}
		cfg.Databases = dbs
	}
	return cfg, closeDBs, nil
}

// databaseURL is the URL of service svc's database: MERCATO_LOAD_<SVC>_DB,
// else make run's, with its role's password from the secrets folder.
func (o *options) databaseURL(svc string) (string, error) {
	if u := os.Getenv("MERCATO_LOAD_" + strings.ToUpper(svc) + "_DB"); u != "" {
		return u, nil
	}
	db := svc + "_db"
	pw, err := o.secret("", "postgres-"+db+"-password")
	if err != nil {
		return "", fmt.Errorf("the %s database: %w", svc, err)
	}
	if _, _, err := net.SplitHostPort(o.postgres); err != nil {
		return "", fmt.Errorf("-postgres %q: want host:port", o.postgres)
	}
	u := url.URL{Scheme: "postgres", User: url.UserPassword(db, pw), Host: o.postgres, Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String(), nil
}

// secret is the environment variable env when set, else file in the
// secrets folder.
func (o *options) secret(env, file string) (string, error) {
	if v := os.Getenv(env); env != "" && v != "" {
		return v, nil
	}
	b, err := os.ReadFile(filepath.Join(o.secrets, file)) //nolint:gosec // G304: a file of make run's secrets folder
	if err != nil {
		return "", fmt.Errorf("no %s in %s (is make run's platform there?)", file, o.secrets)
	}
	return strings.TrimSpace(string(b)), nil
}

func parseCards(s string) (map[string]int, error) {
	cards := map[string]int{}
	for part := range strings.SplitSeq(s, ",") {
		name, weight, _ := strings.Cut(strings.TrimSpace(part), "=")
		card, ok := cardNames[name]
		var w int
		if _, err := fmt.Sscan(weight, &w); !ok || err != nil || w < 0 {
			return nil, fmt.Errorf("-cards %q: want name=weight pairs, names ok, declined, no-funds", s)
		}
		cards[card] = w
	}
	return cards, nil
}
