// Package app is the first half of every Mercato service's main: the process
// around its run function (signals, exit codes), the flag set with its usage
// text, and Start, which builds what every instance runs on — logger,
// metrics registry, PostgreSQL brought up to the service's schema, Redis,
// Consul (the client and the upstreams' instancers), readiness checks — and
// runs the instance's background loops until shutdown. Each main keeps its own flags and its own wiring:
//
//	func main() { app.Main("order", run) }
//
//	func run(ctx context.Context, args []string, logOutput io.Writer) error {
//		var (
//			cfg config.Common
//			fs  = app.NewFlagSet("order", "Mercato's order service", "MERCATO_DATABASE_URL")
//			... the service's own flags on fs ...
//		)
//		cfg.Register(fs, order.ServiceName, "127.0.0.1:3003")
//		if err := app.Parse(fs, args, &cfg, true); err != nil {
//			return err
//		}
//		in, err := app.Start(ctx, cfg, logOutput, app.Options{Migrate: postgres.Migrate})
//		if err != nil {
//			return err
//		}
//		defer in.Close()
//		... the service, in.Go(name, loop) for each background loop ...
//		return discovery.ListenAndServe(ctx, cfg, in.Consul, handler, in.Logger)
//	}
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/mercato-dev/mercato/shared/config"
)

// RunFunc is a service's main without the process: it serves until ctx is
// done, writing its logs to logOutput. Tests call it in-process.
type RunFunc func(ctx context.Context, args []string, logOutput io.Writer) error

// Main runs run as the process command: with the command line's arguments
// and logs on stdout, until SIGINT or SIGTERM cancels its context, which
// drains the server and stops the background loops. -h exits 0 (the usage
// is printed by the flag set); any other error is printed on stderr as
// "<command>: <error>" and exits 1.
func Main(command string, run RunFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case err != nil:
		fmt.Fprintln(os.Stderr, command+":", err)
		os.Exit(1)
	}
}

// NewFlagSet returns the flag set of command, which returns its errors (-h
// included, as flag.ErrHelp) instead of exiting. Its usage text says what
// the command runs ("Mercato's order service"), how every flag maps to an
// environment variable, with example as the example variable, and then
// lists the flags.
func NewFlagSet(command, what, example string) *flag.FlagSet {
	fs := flag.NewFlagSet(command, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s [flags]\n\n"+
			"Runs one instance of %s.\n\n"+
			"Every flag can also be set in the environment as %s_<FLAG> (upper case,\n"+
			"dashes as underscores), e.g. %s. A flag on the command\n"+
			"line wins.\n\nFlags:\n", command, what, config.EnvPrefix, example)
		fs.PrintDefaults()
	}
	return fs
}

// Parse parses args into fs, then the environment for flags args does not
// set (config.Parse), and checks the common settings cfg was registered
// with: the database URL too when needDB.
func Parse(fs *flag.FlagSet, args []string, cfg *config.Common, needDB bool) error {
	if err := config.Parse(fs, args); err != nil {
		return err
	}
	return cfg.Validate(needDB)
}
