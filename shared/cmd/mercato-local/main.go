// Command mercato-local runs the whole Mercato platform on this machine
// without Docker, and is what `make run` starts: PostgreSQL, Redis and a
// Consul dev agent as child processes (package localinfra), N instances of
// every service on free ports, the API gateway on :3000 and Prometheus on
// :9090. It prints where everything is and keeps it all up until SIGINT
// (Ctrl-C) or SIGTERM, then stops it in order and leaves no process behind.
//
// Data and logs live in the repository's .local/ folder, so PostgreSQL and
// Redis data persist across runs. Only one run per repository is allowed
// (.local/run.lock). Nothing needs a terminal: it runs the same in the
// background with its output sent to a file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mercato-dev/mercato/shared/localinfra"
)

// Fixed addresses of a local run. The gateway, Consul and Prometheus use
// their usual ports (DESIGN §3); PostgreSQL and Redis use uncommon ones so
// they do not collide with servers the machine may already run.
const (
	gatewayPort    = 3000
	consulPort     = 8500
	prometheusPort = 9090
	postgresPort   = 15432
	redisPort      = 16379
)

var (
	gatewayAddr    = hostPort(gatewayPort)
	consulAddr     = hostPort(consulPort)
	prometheusAddr = hostPort(prometheusPort)
	postgresAddr   = hostPort(postgresPort)
	redisAddr      = hostPort(redisPort)
)

// adminEmail is the admin account the user service ensures; its password
// is one of the secrets (secrets.go).
const adminEmail = "admin@mercato.local"

// gatewayAdminAddr is the gateway's admin listener (/ready, /metrics), on
// loopback only.
var gatewayAdminAddr = hostPort(gatewayAdminPort)

const gatewayAdminPort = 3100

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the parsed flags and environment.
type options struct {
	root         string
	instances    int
	services     []serviceSpec
	startTimeout time.Duration
	secrets      secrets
	// composeSecrets, when set, is where -compose-secrets writes the
	// compose platform's secrets (compose.go) instead of running one.
	composeSecrets string
	// alertmanagerConfig, when set, is where -alertmanager-config writes
	// a deployment's Alertmanager configuration instead of running one.
	alertmanagerConfig string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("mercato-local", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.root, "root", "", "repository root holding go.work, bin/ and .local/ (default: found from the working directory)")
	fs.IntVar(&o.instances, "instances", 2, "instances of every service, each on a free port and registered in Consul")
	list := fs.String("services", strings.Join(knownServiceNames(), ","), "comma-separated services to run; empty runs the gateway and infrastructure only")
	fs.DurationVar(&o.startTimeout, "start-timeout", 2*time.Minute, "how long the services and the gateway may take to pass their Consul health checks")
	fs.StringVar(&o.composeSecrets, "compose-secrets", "", "write the secrets of docker-compose.yml into this folder (DIR/secrets, DIR/consul-policies), generating the missing ones, and exit instead of running the platform (make compose-up does)")
	fs.StringVar(&o.alertmanagerConfig, "alertmanager-config", "", "write an Alertmanager configuration (deploy/alertmanager/alertmanager.yml.tmpl; receiver from MERCATO_ALERT_*, default the compose network's Mailpit) into this file, e.g. for a Kubernetes Secret, and exit")
	fs.Usage = func() { usage(fs) }
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q (see -h)", fs.Args())
	}
	if o.instances < 1 {
		return o, fmt.Errorf("-instances must be at least 1, not %d", o.instances)
	}
	var err error
	o.services, err = selectServices(*list)
	return o, err
}

func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprintf(w, `Usage: mercato-local [flags]

Runs the whole Mercato platform on this machine without Docker (this is what
'make run' runs, after building bin/) and keeps it up until Ctrl-C or SIGTERM,
then stops everything:

  PostgreSQL  %-16s data in .local/postgres; databases %s
  Redis       %-16s data in .local/redis
  Consul      %-16s dev agent (catalogue in memory), UI at /ui
  services    free ports        -instances of each of bin/%s, found through Consul
  gateway     %-16s bin/gateway, the public API under /api/v1
  Prometheus  %-16s when %s is installed; targets from Consul,
                               rules from deploy/prometheus/alerts.yml
  Alertmanager %-15s when installed: emails alerts to the SMTP sink
  Jaeger      %-16s OTLP/HTTP in (every process exports its spans), query
              %-16s API out, when bin/jaeger is built (make deps)
  VictoriaLogs %-15s every process's log lines, shipped from .local/logs;
                               UI at /select/vmui, when bin/victoria-logs is built

Logs go to .local/logs/<name>.log (appended). PostgreSQL and Redis data persist
across runs; 'make clean' removes .local. One run per repository at a time.

Secrets and credentials are generated on the first start into
.local/secrets (folder 0700, files 0600) and reach the processes in their
environment, never on a command line. These variables replace a file's:
  MERCATO_JWT_SECRET      token key shared by every service, at least 32 bytes
  MERCATO_ADMIN_PASSWORD  password of %s, which the user service
                          creates (8 to 72 bytes)
  MERCATO_WEBHOOK_SECRET  the payment sandbox's webhook key, at least 32 bytes
  MERCATO_IDEMPOTENCY_HASH_KEY
                          the order service's key for the hashes of
                          Idempotency-Key requests, at least 32 bytes

Environment:
  MERCATO_CONSUL_BIN      Consul binary (default: consul on PATH, else bin/consul)
  MERCATO_ALERT_SMTP_SMARTHOST, MERCATO_ALERT_SMTP_FROM, MERCATO_ALERT_EMAIL_TO,
  MERCATO_ALERT_SMTP_REQUIRE_TLS, MERCATO_ALERT_SMTP_USERNAME,
  MERCATO_ALERT_SMTP_PASSWORD_FILE
                          where Alertmanager emails alerts (default: the SMTP
                          sink, %s, to oncall@mercato.local)

Flags:
`, postgresAddr, strings.Join(databases, ", "), redisAddr, consulAddr,
		strings.Join(knownServiceNames(), ", bin/"), gatewayAddr, prometheusAddr, debianPrometheus, alertmanagerAddr,
		hostPort(otlpPort), jaegerQueryAddr, victoriaLogsAddr, adminEmail, smtpAddr)
	fs.PrintDefaults()
}

func run(args []string, stdout, stderr io.Writer) int {
	keepRunningWithoutReader()
	ui := &ui{out: stdout, errOut: stderr}
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "mercato-local:", err)
		return 2
	}
	if opts.root, err = findRoot(opts.root); err != nil {
		fmt.Fprintln(stderr, "mercato-local:", err)
		return 1
	}
	if opts.composeSecrets != "" {
		if err := writeComposeSecrets(opts.root, opts.composeSecrets, stdout); err != nil {
			fmt.Fprintln(stderr, "mercato-local: -compose-secrets:", err)
			return 1
		}
		return 0
	}
	if opts.alertmanagerConfig != "" {
		if err := writeAlertmanagerConfig(opts.root, opts.alertmanagerConfig, stdout); err != nil {
			fmt.Fprintln(stderr, "mercato-local: -alertmanager-config:", err)
			return 1
		}
		return 0
	}
	dirs := newLayout(opts.root)
	if err := makeLocal(dirs); err != nil {
		fmt.Fprintln(stderr, "mercato-local:", err)
		return 1
	}

	lock, err := acquireLock(filepath.Join(dirs.local, "run.lock"))
	var running *alreadyRunningError
	if errors.As(err, &running) {
		pid := "N"
		if running.pid != 0 {
			pid = strconv.Itoa(running.pid)
		}
		fmt.Fprintf(stderr, "mercato-local: already running (pid %s); stop it with Ctrl-C in its terminal or kill %s\n", pid, pid)
		return 1
	}
	if err != nil {
		fmt.Fprintln(stderr, "mercato-local:", err)
		return 1
	}
	defer lock.release()

	if opts.secrets, err = loadSecrets(filepath.Join(dirs.local, "secrets"), os.Getenv); err != nil {
		fmt.Fprintln(stderr, "mercato-local: secrets:", err)
		return 1
	}
	// Read: from here on no process inherits an override (PostgreSQL,
	// Prometheus, MailDev and the rest are started with our environment);
	// a service gets the secrets it needs from opts.secrets.
	forgetSecretOverrides()

	p := &platform{ui: ui, dirs: dirs, opts: opts}
	if err := preflight(p); err != nil {
		ui.fail("cannot start:\n%s", indent(err.Error()))
		return 1
	}

	// Watch for signals from the start, so Ctrl-C during start-up stops
	// what has started. A second signal, a quarter of a second or more
	// after the first, kills everything at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, stopSignals()...)
	go handleSignals(sigs, signalRepeatGrace, func(sig os.Signal) {
		ui.step("%s received: stopping everything (send it again to kill everything at once)", signalName(sig))
		cancel()
	}, func(sig os.Signal) {
		ui.warn("%s received again: killing everything now", signalName(sig))
		p.killNow()
		lock.release()
		os.Exit(1)
	})

	if err := p.start(ctx); err != nil {
		if ctx.Err() == nil {
			ui.fail("%v", err)
			p.stop()
			return 1
		}
		ui.step("start-up interrupted")
	} else {
		printBanner(ctx, p)
		p.watch()
		<-ctx.Done()
	}
	p.stop()
	ui.step("everything stopped")
	return 0
}

// keepRunningWithoutReader makes a line written to a pipe nobody reads any
// more fail (EPIPE; the ui ignores it) instead of killing mercato-local:
// Ctrl-C on `make run | tee run.log` ends tee too, and the SIGPIPE of the
// next progress line would kill mercato-local before it stopped anything,
// and every child with it by SIGKILL (no deregistering, no draining, no
// PostgreSQL shutdown). A handler, not SIG_IGN, so children start with the
// default.
func keepRunningWithoutReader() { signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE) }

// makeLocal makes .local and its logs. .local must be searchable by every
// user: PostgreSQL runs as its own OS user (when we are root) and must be
// able to reach .local/postgres, also when -compose-secrets made .local
// 0700. What is secret in it has a 0700 folder of its own.
func makeLocal(dirs layout) error {
	if err := os.MkdirAll(dirs.logs, 0o750); err != nil {
		return err
	}
	st, err := os.Stat(dirs.local)
	if err != nil {
		return err
	}
	return os.Chmod(dirs.local, st.Mode().Perm()|0o111) //nolint:gosec // G302: search only (x), no listing; see above
}

// signalRepeatGrace is how long after the first stop signal a second one
// is still the same request, not a person asking again: a process-group
// kill delivers it twice at once (timeout(1) signals its child and its
// group; `kill %1` on `make run &` reaches make, which forwards SIGTERM,
// and mercato-local).
const signalRepeatGrace = 250 * time.Millisecond

// handleSignals calls stop on the first signal from sigs and kill on the
// next one that comes grace or more after it.
func handleSignals(sigs <-chan os.Signal, grace time.Duration, stop, kill func(os.Signal)) {
	stop(<-sigs)
	first := time.Now()
	for sig := range sigs {
		if time.Since(first) >= grace {
			kill(sig)
			return
		}
	}
}

// stopSignals are the signals that stop the platform. SIGHUP (terminal
// closed) is one of them unless it is ignored, as under nohup: catching it
// would undo nohup's intent.
func stopSignals() []os.Signal {
	sigs := []os.Signal{syscall.SIGINT, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) {
		sigs = append(sigs, syscall.SIGHUP)
	}
	return sigs
}

func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "SIGINT (Ctrl-C)"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP (terminal closed)"
	}
	return sig.String()
}

// findRoot returns the repository root: the -root flag, else the folder
// with go.work at or above the working directory, else the one above the
// executable's bin/ (so bin/mercato-local works from anywhere).
func findRoot(flagRoot string) (string, error) {
	if flagRoot != "" {
		root, err := filepath.Abs(flagRoot)
		if err != nil {
			return "", err
		}
		if st, err := os.Stat(root); err != nil || !st.IsDir() {
			return "", fmt.Errorf("-root %s is not a folder", flagRoot)
		}
		return root, nil
	}
	if root, err := localinfra.RepoRoot(); err == nil {
		return root, nil
	}
	if exe, err := os.Executable(); err == nil {
		root := filepath.Dir(filepath.Dir(exe))
		if _, err := os.Stat(filepath.Join(root, "go.work")); err == nil {
			return root, nil
		}
	}
	return "", errors.New("cannot find the repository root (no go.work here or above, nor above the executable); run from inside the repository or pass -root")
}

// preflight checks everything that can be checked before starting anything,
// and reports all problems at once.
func preflight(p *platform) error {
	var errs []error
	for _, s := range append(append([]serviceSpec(nil), p.opts.services...), gateway) {
		bin := filepath.Join(p.dirs.root, "bin", s.name)
		if !isExecutable(bin) {
			errs = append(errs, fmt.Errorf("%s not found: build it with `make build` (`make run` builds, then runs)", p.dirs.rel(bin)))
		}
	}
	if _, err := localinfra.FindPostgresBin("initdb"); err != nil {
		errs = append(errs, err)
	}
	if _, err := localinfra.FindRedis(); err != nil {
		errs = append(errs, err)
	}
	var err error
	if p.consulBin, err = localinfra.FindConsul(p.dirs.root); err != nil {
		errs = append(errs, err)
	}
	p.promBin = findPrometheus()
	p.jaegerBin, _ = localinfra.FindTool(p.dirs.root, "jaeger")
	p.victoriaLogsBin, _ = localinfra.FindTool(p.dirs.root, "victoria-logs")
	if p.promBin != "" {
		p.alertmanagerBin, _ = localinfra.FindAlertmanager()
	}

	ports := []fixedPort{
		{gatewayPort, "the API gateway"},
		{gatewayAdminPort, "the API gateway's admin listener"},
		{consulPort, "Consul's HTTP API and UI"},
		{postgresPort, "PostgreSQL"},
		{redisPort, "Redis"},
	}
	if p.promBin != "" {
		ports = append(ports, fixedPort{prometheusPort, "Prometheus"})
	}
	if p.alertmanagerBin != "" {
		ports = append(ports, fixedPort{alertmanagerPort, "Alertmanager"})
	}
	if p.mailSinkBin() != "" {
		ports = append(ports, fixedPort{smtpPort, "the SMTP sink"}, fixedPort{mailUIPort, "the SMTP sink's web UI"})
	}
	if p.jaegerBin != "" {
		ports = append(ports, fixedPort{otlpPort, "Jaeger's OTLP receiver"}, fixedPort{jaegerQueryPort, "Jaeger's query API"})
	}
	if p.victoriaLogsBin != "" {
		ports = append(ports, fixedPort{victoriaLogsPort, "VictoriaLogs"})
	}
	if err := checkPortsFree(ports); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// ui prints progress for a person, whether on a terminal or in a file.
type ui struct {
	mu          sync.Mutex // lines from several goroutines stay whole
	out, errOut io.Writer
}

func (u *ui) step(format string, args ...any) { u.print(u.out, "==> ", format, args...) }
func (u *ui) warn(format string, args ...any) { u.print(u.errOut, "!!  ", format, args...) }
func (u *ui) fail(format string, args ...any) {
	u.print(u.errOut, "mercato-local: ", format, args...)
}

func (u *ui) print(w io.Writer, prefix, format string, args ...any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	fmt.Fprintf(w, prefix+format+"\n", args...)
}

// printBanner tells a person where everything is.
func printBanner(ctx context.Context, p *platform) {
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "  %-12s %s\n", label, fmt.Sprintf(format, args...))
	}
	rule := strings.Repeat("=", 78)
	fmt.Fprintf(&b, "\n%s\n  Mercato is running (pid %d). Stop it with Ctrl-C or `kill %d`.\n\n", rule, os.Getpid(), os.Getpid())
	line("Storefront", "http://%s/   (the demo shop: browse, check out with the sandbox cards, watch the order live)", gatewayAddr)
	line("API gateway", "http://%s/api/v1   (health http://%s/health)", gatewayAddr, gatewayAddr)
	line("API docs", "http://%s/docs   (the reference, with Try it out; OpenAPI at /api/v1/openapi.json and .yaml)", gatewayAddr)
	line("Gateway admin", "http://%s/metrics, http://%s/ready", gatewayAdminAddr, gatewayAdminAddr)
	line("Consul UI", "http://%s/ui  ACLs on (default deny): log in with the token in %s", consulAddr, p.opts.secrets.where(consulTokenSpec(consulManagement).file))
	if p.mailSinkBin() != "" {
		line("Emails", "http://%s   (MailDev: every email the platform sends; SMTP %s)", mailUIAddr, smtpAddr)
	}
	if p.promBin != "" {
		line("Prometheus", "http://%s   alerts at /classic/alerts (2.x) or /alerts; requests/s by service:", prometheusAddr)
		line("", "%s", graphURL(p.promBin, graphQuery))
		if p.alertmanager != nil {
			line("Alertmanager", "http://%s   (alerts emailed to the SMTP sink; stop an instance to see InstanceDown)", alertmanagerAddr)
		} else {
			line("Alertmanager", "not installed (`make deps` installs it): alerts show in Prometheus only")
		}
	} else {
		line("Prometheus", "not installed (`make deps` installs it)")
	}
	if p.victoriaLogs != nil {
		line("Log search", "http://%s/select/vmui   (VictoriaLogs: every service's log lines; try trace_id:<id>)", victoriaLogsAddr)
	}
	if p.jaeger != nil {
		line("Traces", "http://%s/api/traces/<trace id>   (Jaeger's query API; this build has no UI)", jaegerQueryAddr)
		line("", "e.g. curl -s 'http://%s/api/traces?service=gateway&limit=5'", jaegerQueryAddr)
	}
	for _, s := range p.opts.services {
		for i, u := range p.instanceURLs(ctx, s.name) {
			label := ""
			if i == 0 {
				label = s.name
			}
			line(label, "%s", u)
		}
	}
	sec := p.opts.secrets
	line("PostgreSQL", "%s  databases %s, each owned by the role of its name", postgresAddr, strings.Join(databases, ", "))
	line("", "e.g. PGPASSWORD=$(cat %s) psql -h 127.0.0.1 -p %d -U %s %s", sec.where(dbPasswordSpec(databases[0]).file), postgresPort, databases[0], databases[0])
	line("Redis", "%s  an ACL user per service; the default user is off", redisAddr)
	line("", "e.g. REDISCLI_AUTH=$(cat %s) redis-cli -p %d --user %s", sec.where(redisPasswordSpec(localinfra.RedisAdmin).file), redisPort, localinfra.RedisAdmin)
	line("Logs", "%s%c<name>.log", p.dirs.logs, filepath.Separator)
	line("Admin", "%s / password in %s", sec.adminEmail, sec.where("admin-password"))
	line("Secrets", "%s%c  (folder 0700, files 0600; e.g. cat %s)", sec.dir, filepath.Separator, sec.where("admin-password"))
	if slices.ContainsFunc(p.opts.services, func(s serviceSpec) bool { return s.name == "user" }) {
		fmt.Fprintf(&b, "\n  Try it:\n    curl -s -X POST http://%s/api/v1/auth/register -H 'Content-Type: application/json' "+
			`-d '{"email":"ada@example.com","password":"correct-horse-42","first_name":"Ada","last_name":"Lovelace"}'`+"\n", gatewayAddr)
	} else {
		fmt.Fprintf(&b, "\n  No backend services run (-services \"\"), so API calls have no instance to reach. Try:\n    curl -s http://%s/health\n", gatewayAddr)
	}
	fmt.Fprintf(&b, "%s\n", rule)
	p.ui.mu.Lock()
	defer p.ui.mu.Unlock()
	_, _ = io.WriteString(p.ui.out, b.String()) // the banner is best effort: a closed terminal must not stop the platform
}
