// Command load drives a running Mercato platform through its gateway with
// a mix of shoppers at a fixed rate (make load), prints a progress line a
// second and a summary table per scenario and route, draws the latency over
// time into a PNG, optionally writes a JSON report, and checks the
// platform's invariants afterwards. It exits 1 when an invariant fails, 2
// when it cannot run. The work is package load's; this reads flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	_ "github.com/lib/pq" // the databases' driver

	"github.com/mercato-dev/mercato/e2e/load"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "load:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, closeDBs, err := o.config(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "load:", err)
		return 2
	}
	defer closeDBs()
	if cfg, err = cfg.Checked(); err != nil {
		fmt.Fprintln(stderr, "load:", err)
		return 2
	}
	cfg.Progress = progressWriter(stderr)
	fmt.Fprintf(stderr, "load: signing in %d shoppers at %s, then %g req/s for %s (mix %s)\n",
		cfg.Users, cfg.Target, cfg.Rate, cfg.Duration, load.FormatMix(cfg.Mix))
	report, err := load.Run(ctx, cfg)
	if report == nil {
		fmt.Fprintln(stderr, "load:", err)
		return 2
	}
	fmt.Fprintln(stdout)
	report.WriteTable(stdout)
	if werr := o.writeFiles(report, stdout); werr != nil {
		fmt.Fprintln(stderr, "load:", werr)
		return 2
	}
	switch {
	case err != nil:
		fmt.Fprintln(stderr, "load: stopped early:", err)
		return 2
	case !report.OK():
		fmt.Fprintln(stderr, "load: an invariant failed")
		return 1
	}
	return 0
}

func (o *options) writeFiles(r *load.Report, stdout io.Writer) error {
	write := func(path string, what func(io.Writer) error) error {
		if path == "" {
			return nil
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil { //nolint:gosec // G301: a folder of reports
			return err
		}
		f, err := os.Create(path) //nolint:gosec // G304: the file its user named
		if err != nil {
			return err
		}
		if err := what(f); err != nil {
			f.Close()
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "wrote", path)
		return nil
	}
	if err := write(o.png, r.WritePNG); err != nil {
		return err
	}
	return write(o.json, r.WriteJSON)
}

// progressWriter overwrites one line on a terminal, and writes a line a
// second elsewhere (a log, CI).
func progressWriter(w io.Writer) io.Writer {
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return &terminalLine{w: f}
		}
	}
	return w
}

type terminalLine struct{ w io.Writer }

func (t *terminalLine) Write(p []byte) (int, error) {
	line := p
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	if _, err := fmt.Fprintf(t.w, "\r\033[K%s", line); err != nil {
		return 0, err
	}
	return len(p), nil
}
