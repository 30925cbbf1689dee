package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// fixedPort is a port the platform must bind, and what binds it.
type fixedPort struct {
	port int
	what string // e.g. "the API gateway"
}

// checkPortsFree binds each port on 127.0.0.1 for a moment and reports every
// one that is taken, naming the process that holds it when /proc tells. A
// clear message up front beats a server failing on "address already in use"
// halfway through start-up.
func checkPortsFree(ports []fixedPort) error {
	var errs []error
	for _, p := range ports {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)))
		if err == nil {
			ln.Close()
			continue
		}
		owner := portOwner(p.port)
		if owner == "" {
			owner = "another process"
		}
		msg := fmt.Sprintf("port %d (for %s) is taken by %s", p.port, p.what, owner)
		// Debian's package starts a system Prometheus on :9090 where systemd
		// runs; ours would name .local/prometheus in its command line.
		if p.port == prometheusPort && strings.Contains(owner, "prometheus") && !strings.Contains(owner, ".local/prometheus") {
			msg += "; a system Prometheus service (from the Debian package) may be running: stop it, e.g. `systemctl stop prometheus`"
		}
		errs = append(errs, errors.New(msg))
	}
	return errors.Join(errs...)
}

// portOwner describes the process listening on TCP port, e.g.
// "pid 123 (prometheus --config.file=...)", or returns "" when it cannot
// tell (no /proc, or a process we may not inspect).
func portOwner(port int) string {
	inodes := listeningInodes(port)
	if len(inodes) == 0 {
		return ""
	}
	procDirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range procDirs {
		fds, _ := filepath.Glob(dir + "/fd/*")
		for _, fd := range fds {
			target, err := os.Readlink(fd)
			if err != nil || !strings.HasPrefix(target, "socket:[") {
				continue
			}
			if inodes[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] {
				return fmt.Sprintf("pid %s (%s)", filepath.Base(dir), commandLine(dir))
			}
		}
	}
	return ""
}

// listeningInodes returns the socket inodes listening on TCP port, from
// /proc/net/tcp and tcp6 (columns: sl local_address rem_address st ... inode).
func listeningInodes(port int) map[string]bool {
	const listenState = "0A"
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table) //nolint:gosec // G304: a /proc/net table
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != listenState {
				continue
			}
			i := strings.LastIndexByte(fields[1], ':')
			p, err := strconv.ParseUint(fields[1][i+1:], 16, 16)
			if err == nil && int(p) == port {
				inodes[fields[9]] = true
			}
		}
		f.Close()
	}
	return inodes
}

// commandLine returns a process's command line, shortened for a message.
func commandLine(procDir string) string {
	b, err := os.ReadFile(procDir + "/cmdline") //nolint:gosec // G304: a /proc entry
	if err != nil || len(b) == 0 {
		b, _ = os.ReadFile(procDir + "/comm") //nolint:gosec // G304: a /proc entry
	}
	s := strings.TrimSpace(strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " "))
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	if s == "" {
		s = "unknown command"
	}
	return s
}
