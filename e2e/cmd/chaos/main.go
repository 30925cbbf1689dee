// Command chaos runs the chaos suite (make chaos): the e2e platform — two
// gateways, two instances of every service, its own PostgreSQL, Redis,
// Consul and SMTP sink — under the load generator's shopper mix while the
// faults of issue 16 are injected one after another, then the invariants.
// The platform is the e2e tests' (package e2e starts it with testing's
// helpers), so this command runs e2e's TestChaos with -chaos.full and
// passes the flags on; the work is package chaos's. Exit status: 0 every
// invariant held, 1 one failed or a fault did not recover, 2 it could not
// run.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/mercato-dev/mercato/shared/localinfra"
)

const usage = `Usage: make chaos [CHAOS_FLAGS='...']   (or: go run ./e2e/cmd/chaos [flags])

Starts the e2e platform (two gateways, two instances of user, product,
order, payment and notification, a PostgreSQL, Redis, Consul agent and SMTP
sink of its own, all on random loopback ports), seeds the demo catalogue,
sends make load's shopper mix at -rate requests per second spread over both
gateways in turn, and injects, with 10 s of steady load between them:
SIGKILL of a random instance of each service and of a gateway (restarted at
once where it was, as a supervisor would); SIGSTOP of a product instance for
20 s, then SIGCONT; Redis down 10 s; PostgreSQL fast shutdown, 10 s down;
the Consul agent down 20 s; the SMTP sink down 30 s; the payment sandbox
answering slower than every timeout for 20 s (its charges table locked).
-short runs the short variant of make test instead: SIGKILL of an order
instance, Redis, PostgreSQL and the SMTP outage.

Then it waits for the platform to settle and checks every invariant of
issue 16 from the databases, Redis, Consul and /metrics, prints the
timeline (each fault, requests, errors, error rate and worst p99 of a
second while it lasted, time to recover) and a verdict per invariant, and
writes -json and -png. About 8 minutes (-short: 3), at most 10.

Flags:
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	rate := fs.Float64("rate", 25, "requests per second of the shopper mix, over both gateways (1 to 200)")
	jsonFile := fs.String("json", ".local/chaos/chaos.json", "write the report as JSON to this file (\"\": none)")
	pngFile := fs.String("png", ".local/chaos/chaos.png", "draw requests, errors and latency over time, the faults marked, to this PNG (\"\": none)")
	short := fs.Bool("short", false, "the short variant (make test's) instead of every fault")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return 0
	} else if err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "chaos: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *rate < 1 || *rate > 200 {
		fmt.Fprintf(stderr, "chaos: -rate %g: want 1 to 200 requests per second\n", *rate)
		return 2
	}
	root, err := localinfra.RepoRoot()
	if err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 2
	}
	testArgs := []string{"test", "-count=1", "-run", "^TestChaos$", "-timeout", "12m", "-v", ".", "-args",
		"-chaos.full=" + strconv.FormatBool(!*short), "-chaos.rate", strconv.FormatFloat(*rate, 'g', -1, 64)}
	for flagName, path := range map[string]string{"-chaos.json": *jsonFile, "-chaos.png": *pngFile} {
		if path != "" {
			abs, err := filepath.Abs(path)
			if err == nil {
				err = os.MkdirAll(filepath.Dir(abs), 0o750)
			}
			if err != nil {
				fmt.Fprintln(stderr, "chaos:", err)
				return 2
			}
			testArgs = append(testArgs, flagName, abs)
		}
	}
	cmd := exec.Command("go", testArgs...) //nolint:gosec // G204: go test of this repo, with arguments built here
	cmd.Dir = filepath.Join(root, "e2e")
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return 1
		}
		fmt.Fprintln(stderr, "chaos: running the suite:", err)
		return 2
	}
	if *jsonFile != "" || *pngFile != "" {
		fmt.Fprintf(stdout, "chaos: wrote %s %s\n", *jsonFile, *pngFile)
	}
	return 0
}
