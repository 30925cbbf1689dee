package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mercato-dev/mercato/shared/localinfra"
)

// The programs BenchmarkGateway compares the gateway with and loads it by,
// both Debian packages that make deps installs (scripts/install-deps.sh).

func nginxBinary(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatal("nginx not found: make deps installs it (Debian package nginx-light)")
	return ""
}

func wrkBinary(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("wrk")
	if err != nil {
		t.Fatal("wrk not found: make deps installs it (Debian package wrk)")
	}
	return path
}

func freeAddr(t testing.TB) string {
	t.Helper()
	port, err := localinfra.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(port)
}

// nginxConfig is a reverse proxy on listen to upstreams, round robin, over
// keepalive connections (HTTP/1.1, Connection cleared), without access log,
// with workers nginx processes, everything it writes under dir.
const nginxConfig = `worker_processes %[1]s;
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path %[2]s/body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
	upstream product {
%[3]s		keepalive 64;
	}
	server {
		listen %[4]s;
		location / {
			proxy_pass http://product;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
`

// startNginx runs nginx with workers worker processes in front of
// upstreams on a free loopback port, and returns its address. It is
// stopped by its PID (SIGQUIT, then SIGKILL) when t ends.
func startNginx(t testing.TB, binary, workers string, upstreams []string) string {
	t.Helper()
	dir := t.TempDir()
	addr := freeAddr(t)
	var servers strings.Builder
	for _, u := range upstreams {
		fmt.Fprintf(&servers, "\t\tserver %s;\n", u)
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConfig, workers, dir, servers.String(), addr), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf)
	out, err := os.Create(filepath.Join(dir, "stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); out.Close(); close(done) }()
	t.Cleanup(func() {
		// SIGQUIT is nginx's graceful stop: the master stops its workers.
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("--- nginx (%s workers) error.log ---\n%s", workers, tail(string(log), 4000))
		}
	})
	waitFor(t, 10*time.Second, "nginx "+workers+" listening", func() error {
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited during start-up:\n%s", log)
		default:
		}
		return getOK("http://"+addr+"/health", nil)
	})
	return addr
}

// wrkResult is one wrk run's figures.
type wrkResult struct {
	rps      float64
	p50, p99 time.Duration
	requests int
}

var (
	wrkRate     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkRequests = regexp.MustCompile(`(\d+) requests in`)
	wrkPercent  = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
)

// runWrk loads c for d with 2 threads and gatewayBenchConnections
// connections, and fails t if any answer was not a 2xx or 3xx or any
// socket failed: wrk's output has a line for each when it happens.
func runWrk(t testing.TB, c benchCase, d time.Duration) wrkResult {
	t.Helper()
	args := []string{"-t2", "-c" + strconv.Itoa(gatewayBenchConnections), "-d" + strconv.Itoa(int(d.Seconds())) + "s", "--latency"}
	for k, v := range c.headers {
		args = append(args, "-H", k+": "+v)
	}
	out, err := exec.Command(wrkBinary(t), append(args, c.url)...).CombinedOutput()
	text := string(out)
	if err != nil {
		t.Fatalf("%s: wrk: %v\n%s", c.name, err, text)
	}
	if strings.Contains(text, "Non-2xx or 3xx responses") || strings.Contains(text, "Socket errors") {
		t.Errorf("%s: not every request was answered 200:\n%s", c.name, text)
	}
	var r wrkResult
	m := wrkRate.FindStringSubmatch(text)
	n := wrkRequests.FindStringSubmatch(text)
	if m == nil || n == nil {
		t.Fatalf("%s: wrk's output has no figures:\n%s", c.name, text)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	r.requests, _ = strconv.Atoi(n[1])
	for _, p := range wrkPercent.FindAllStringSubmatch(text, -1) {
		v, _ := strconv.ParseFloat(p[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[p[3]]
		lat := time.Duration(v * float64(unit))
		if p[1] == "50" {
			r.p50 = lat
		} else {
			r.p99 = lat
		}
	}
	if r.requests == 0 || r.p50 == 0 || r.p99 == 0 {
		t.Fatalf("%s: wrk sent no request or gave no percentiles:\n%s", c.name, text)
	}
	return r
}

// medianResult is the round with the median throughput.
func medianResult(rs []wrkResult) wrkResult {
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b wrkResult) int { return int(a.rps - b.rps) })
	return sorted[len(sorted)/2]
}

// loadAverage is the machine's one-minute load average, 0 if unknown.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
