// Package app is what every Mercato service's main has in common: the
// process around its run function (signals, exit codes), the flag set with
// its usage text and the common settings, Start, which builds what every
// instance runs on — logger, metrics registry, PostgreSQL brought up to the
// service's schema, Redis, Consul (the client and the upstreams'
// instancers), readiness checks — and runs the instance's background loops
// (the outbox relay and event consumers among them) until shutdown, and Serve, which serves the instance's routes registered
// in Consul. Each main keeps its own flags and its own wiring:
//
//	func main() { app.Main("order", run) }
//
//	func run(ctx context.Context, args []string, logOutput io.Writer) error {
//		fs := app.NewFlagSet(app.Command{Name: order.ServiceName, What: "Mercato's order service",
//			EnvExample: "MERCATO_DATABASE_URL", Addr: "127.0.0.1:3003", NeedDB: true})
//		... the service's own flags on fs ...
//		cfg, err := fs.Parse(args)
//		if err != nil {
//			return err
//		}
//		in, err := app.Start(ctx, cfg, logOutput, app.Options{Migrate: postgres.Schema.Migrate})
//		if err != nil {
//			return err
//		}
//		defer in.Close()
//		... the service; in.RelayOutbox(), in.Consume(name, component, consumer)
//		    and in.Go(name, loop) for its background loops ...
//		router := in.Router()
//		... the service's routes on router ...
//		return in.Serve(ctx, router)
//	}
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mercato-dev/mercato/shared/config"
	"github.com/mercato-dev/mercato/shared/discovery"
)

// RunFunc is a service's main without the process: it serves until ctx is
// done, writing its logs to logOutput. Tests call it in-process.
type RunFunc func(ctx context.Context, args []string, logOutput io.Writer) error

// Main runs run as the process command: with the command line's arguments
// and logs on stdout, until SIGINT or SIGTERM cancels its context, which
// drains the server and stops the background loops. -h exits 0 (the usage
// is printed by the flag set), and so do a passing -healthcheck and a
// -leave the instance took; any other error is printed on stderr as
// "<command>: <error>" and exits 1.
func Main(command string, run RunFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp), errors.Is(err, ErrHealthy):
		os.Exit(0)
	case err != nil:
		fmt.Fprintln(os.Stderr, command+":", err)
		os.Exit(1)
	}
}

// Command says what a service's command is, for its flag set: the usage
// text and the common settings (config.Common) every instance has.
type Command struct {
	// Name is the command's, and the service's: what it registers in
	// Consul as and logs as.
	Name string
	// What is what the command runs, for the usage text ("Mercato's order
	// service").
	What string
	// EnvExample is the environment variable the usage text shows as an
	// example of a flag's.
	EnvExample string
	// Addr is the default listen address (the seed's port for the service).
	Addr string
	// NeedDB makes the database URL a required setting.
	NeedDB bool
}

// FlagSet is a command's flag set with the common settings registered on
// it: a main declares its own flags on it, then calls Parse.
type FlagSet struct {
	*flag.FlagSet
	cfg         config.Common
	needDB      bool
	healthcheck bool
	leave       bool
}

// NewFlagSet returns the flag set of c, which returns its errors (-h
// included, as flag.ErrHelp) instead of exiting, with -healthcheck and the common settings
// registered (config.Common.Register). Its usage text says what the command
// runs, how every flag maps to an environment variable, with c.EnvExample
// as the example variable, and then lists the flags.
func NewFlagSet(c Command) *FlagSet {
	fs := &FlagSet{FlagSet: flag.NewFlagSet(c.Name, flag.ContinueOnError), needDB: c.NeedDB}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s [flags]\n\n"+
			"Runs one instance of %s.\n\n"+
			"Every flag can also be set in the environment as %s_<FLAG> (upper case,\n"+
			"dashes as underscores), e.g. %s. A flag on the command\n"+
			"line wins.\n\nFlags:\n", c.Name, c.What, config.EnvPrefix, c.EnvExample)
		fs.PrintDefaults()
	}
	fs.BoolVar(&fs.healthcheck, "healthcheck", false, "check the /health of the instance listening on -http-addr, then exit: 0 when it answers 200 (a container HEALTHCHECK with no shell or curl)")
	fs.BoolVar(&fs.leave, "leave", false, "ask the instance on this host to leave Consul and report not ready, wait "+leaveGrace.String()+" for callers to notice, then exit 0: a Kubernetes preStop hook, ahead of the SIGTERM that drains it")
	fs.cfg.Register(fs.FlagSet, c.Name, c.Addr)
	return fs
}

// Secret declares a secret setting of the command (a key, a password) and
// returns where its value goes: MERCATO_<NAME> or -<name>-file PATH in a
// real process, -<name> in args only for a test running the main
// in-process (config.SecretVar says why). Every secret flag of a main is
// declared with it.
func (fs *FlagSet) Secret(name, usage string) *string {
	p := new(string)
	config.SecretVar(fs.FlagSet, p, name, usage)
	return p
}

// Parse parses args into fs, then the environment for flags args does not
// set (config.Parse), checks the common settings (the database URL too
// when the command needs a database) and returns them. With -healthcheck
// it checks the instance instead (checkHealth), and with -leave makes it
// leave Consul (leaveConsul), returning ErrHealthy or why not.
func (fs *FlagSet) Parse(args []string) (config.Common, error) {
	if err := config.Parse(fs.FlagSet, args); err != nil {
		return config.Common{}, err
	}
	if fs.healthcheck {
		return fs.cfg, checkHealth(fs.cfg.HTTPAddr)
	}
	if fs.leave {
		return fs.cfg, fs.leaveConsul()
	}
	return fs.cfg, fs.cfg.Validate(fs.needDB)
}

// ErrHealthy is Parse's answer when -healthcheck found the instance
// healthy, or -leave saw it leave; Main exits 0 on it.
var ErrHealthy = errors.New("healthy")

// leaveGrace is how long -leave waits after the instance has left Consul:
// long enough for the gateway's Consul watches and a Kubernetes Service's
// endpoints to drop it, so the SIGTERM that follows drains a quiet instance.
var leaveGrace = 5 * time.Second

// checkHealth asks the instance listening on addr (-http-addr: on every
// interface, it asks 127.0.0.1) for its /health, within 3 s.
func checkHealth(addr string) error {
	url, err := localURL("-healthcheck", "-http-addr", addr, "/health")
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Get(url)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s", url, resp.Status)
	}
	return ErrHealthy
}

// leaveConsul posts discovery.LeavePath to the listener that serves
// /ready: -admin-addr where the command has one (the gateway), else
// -http-addr; then waits leaveGrace.
func (fs *FlagSet) leaveConsul() error {
	name, addr := "-http-addr", fs.cfg.HTTPAddr
	if f := fs.Lookup("admin-addr"); f != nil {
		name, addr = "-admin-addr", f.Value.String()
	}
	url, err := localURL("-leave", name, addr, discovery.LeavePath)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Post(url, "application/json", nil)
	if err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("leave: %s answered %s", url, resp.Status)
	}
	time.Sleep(leaveGrace)
	return ErrHealthy
}

// localURL is path on the instance of this host listening on addr (on
// every interface: 127.0.0.1), which must have a fixed port.
func localURL(what, flagName, addr, path string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "0" {
		return "", fmt.Errorf("%s needs the instance's fixed %s, not %q", what, flagName, addr)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + path, nil
}
