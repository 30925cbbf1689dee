// Package localinfra runs real PostgreSQL, Redis and Consul servers as child
// processes of the calling program, each in a folder it is given and on
// 127.0.0.1 only. The test helpers (package testkit) start them for
// integration tests, and the `make run` orchestrator starts them for a local
// stack.
//
// Every server is started in its own process group with a parent-death
// signal, so it cannot outlive the program that started it; Stop asks it to
// shut down cleanly and kills the group after a grace period. Start-up waits
// until the server really answers (a SQL ping, a Redis PING, an elected Consul
// leader) for at most 30 s, and a failure reports the tail of the server's
// log file.
//
// Binaries come from the machine: PostgreSQL and Redis from Debian packages,
// Consul from PATH or the pinned build in <repo>/bin/consul. When one is
// missing, the error says which and how to get it (`make deps`).
package localinfra

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// depsHint is appended to every "binary not found" error.
const depsHint = "run `make deps` (scripts/install-deps.sh) to install PostgreSQL/Redis from Debian packages and build Consul"

// ErrNotFound is wrapped by the Find* functions when a binary is missing.
var ErrNotFound = errors.New("not found")

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on right now.
// Another process may take it before the caller binds it; the Start*
// functions retry with new ports when a port they picked themselves turns
// out to be taken.
func FreePort() (int, error) {
	ports, err := FreePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// FreePorts returns n distinct ports on 127.0.0.1, each free for both TCP and
// UDP (Consul's gossip uses both). All are held open until all are chosen,
// so the kernel cannot hand out the same port twice.
func FreePorts(n int) ([]int, error) {
	var held []interface{ Close() error }
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	ports := make([]int, 0, n)
	for attempts := 0; len(ports) < n; attempts++ {
		if attempts > 100*n {
			return nil, errors.New("localinfra: no free port found on 127.0.0.1")
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("localinfra: free port: %w", err)
		}
		held = append(held, l)
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // taken for UDP; keep the TCP listener so we do not get it again
		}
		held = append(held, u)
		ports = append(ports, port)
	}
	return ports, nil
}

// portOrFree returns port, or a free port when port is 0. picked reports
// whether the port was chosen here (and so may be re-chosen after a conflict).
func portOrFree(port int) (p int, picked bool, err error) {
	if port != 0 {
		return port, false, nil
	}
	p, err = FreePort()
	return p, true, err
}

// onPort starts a server with start on port, or on a free one when port is
// 0, and again on another free port (three tries) when the one it picked
// was taken between FreePort and the server binding it. start returns the
// process it started, if any, and whether it became ready.
func onPort(port int, start func(port int) (*Process, error)) error {
	for attempt := 1; ; attempt++ {
		p, picked, err := portOrFree(port)
		if err != nil {
			return err
		}
		proc, err := start(p)
		if err != nil && picked && attempt < 3 && proc != nil && proc.bindConflict() {
			continue
		}
		return err
	}
}

// onFreePorts is onPort for a server that takes n ports, some of which are
// always picked here (a fixed port replaces a picked one in start): so a
// conflict is worth another try (three in all) whatever the caller fixed.
func onFreePorts(n int, start func(ports []int) (*Process, error)) error {
	for attempt := 1; ; attempt++ {
		ports, err := FreePorts(n)
		if err != nil {
			return err
		}
		proc, err := start(ports)
		if err != nil && attempt < 3 && proc != nil && proc.bindConflict() {
			continue
		}
		return err
	}
}

// FindPostgresBin returns the path of a PostgreSQL program such as "initdb",
// "postgres" or "pg_ctl": from the highest version under
// /usr/lib/postgresql/<version>/bin (where Debian installs it, off PATH),
// else from PATH.
func FindPostgresBin(name string) (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Highest major version first; versions are numbers ("9.6", "15", "16").
	sort.Slice(dirs, func(i, j int) bool {
		return versionLess(filepath.Base(filepath.Dir(dirs[j])), filepath.Base(filepath.Dir(dirs[i])))
	})
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if isExecutable(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("localinfra: PostgreSQL program %q %w in /usr/lib/postgresql/*/bin or PATH; %s", name, ErrNotFound, depsHint)
}

// FindRedis returns the path of redis-server: from PATH, else from where
// Debian installs it.
func FindRedis() (string, error) {
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/bin/redis-server", "/usr/sbin/redis-server", "/usr/local/bin/redis-server"} {
		if isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("localinfra: redis-server %w on PATH; %s", ErrNotFound, depsHint)
}

// FindConsul returns the Consul binary to run: $MERCATO_CONSUL_BIN if set,
// else `consul` on PATH, else the pinned build at <repoRoot>/bin/consul.
// repoRoot may be empty when unknown.
func FindConsul(repoRoot string) (string, error) {
	if p := os.Getenv("MERCATO_CONSUL_BIN"); p != "" {
		if !isExecutable(p) {
			return "", fmt.Errorf("localinfra: MERCATO_CONSUL_BIN=%s is not an executable file (unset it to use consul on PATH or bin/consul)", p)
		}
		return p, nil
	}
	if p, err := exec.LookPath("consul"); err == nil {
		return p, nil
	}
	where := "PATH"
	if repoRoot != "" {
		p := filepath.Join(repoRoot, "bin", "consul")
		if isExecutable(p) {
			return p, nil
		}
		where = "PATH or " + p
	}
	return "", fmt.Errorf("localinfra: consul %w on %s (nor MERCATO_CONSUL_BIN); run `make deps` (scripts/build-consul.sh) to build the pinned Consul v1.14.11 into bin/consul", ErrNotFound, where)
}

// RepoRoot walks up from the working directory to the folder holding go.work.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("localinfra: repo root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("localinfra: repo root: no go.work in the working directory or above it")
		}
		dir = parent
	}
}

func isExecutable(path string) bool {
	st, err := os.Stat(path) //nolint:gosec // G703: a path the developer configured, only stat'ed
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// versionLess compares dotted numeric versions ("9.6" < "15").
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// serverFolder makes *dir, the folder a server keeps its data in, absolute,
// and defaults *logFile to <dir>/<name>.log. opts names the options type
// whose Dir is missing, for the error.
func serverFolder(name, opts string, dir, logFile *string) error {
	if *dir == "" {
		return fmt.Errorf("localinfra: %s: %s.Dir is required", name, opts)
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return fmt.Errorf("localinfra: %s: %w", name, err)
	}
	*dir = abs
	if *logFile == "" {
		*logFile = filepath.Join(abs, name+".log")
	}
	return nil
}

// writeConfig creates dir, the folder of server name, when missing and
// writes file there with content, readable by us alone (it may hold a
// secret or its hash).
func writeConfig(name, dir, file, content string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("localinfra: %s: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o600); err != nil {
		return fmt.Errorf("localinfra: %s: %w", name, err)
	}
	return nil
}
