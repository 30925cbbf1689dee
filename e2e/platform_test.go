// Package e2e runs the real binaries — services and gateway — against real
// PostgreSQL, Redis and Consul, and talks to them the way a client does:
// through the gateway's public API.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/localinfra"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// binDir holds the binaries built once for the whole test run.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mercato-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	binDir = dir
	if err := build(dir, services...); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building the binaries:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	// 150 MB of binaries a run: Main exits, so a defer would leave them.
	testkit.Main(m, func() { os.RemoveAll(dir) })
}

func build(dir string, pkgs ...string) error {
	root, err := localinfra.RepoRoot()
	if err != nil {
		return err
	}
	cmd := exec.Command("go", append([]string{"build", "-o", dir + "/"}, pkgs...)...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// services are the binaries the tests run, built once per test run.
var services = []string{
	"./user/cmd/user", "./gateway/cmd/gateway", "./product/cmd/product",
	"./order/cmd/order", "./payment/cmd/payment", "./notification/cmd/notification",
}

// jwtSecret is shared by every process of a test platform.
const jwtSecret = "e2e-secret-that-is-long-enough-for-hs256"

// proc is one running binary.
type proc struct {
	name string
	addr string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// start runs binary with args, listening on a free port, and waits for its
// /health. It is killed at cleanup if still running.
func start(t testing.TB, binary string, args ...string) *proc {
	t.Helper()
	return launch(t, t, binary, args...)
}

// launch is start with two tests: t fails if the binary does not come up,
// owner outlives it — the process is killed (and its log shown on failure)
// when owner ends. A subtest restarting a crashed instance passes itself as
// t and the platform's test as owner.
func launch(t, owner testing.TB, binary string, args ...string) *proc {
	t.Helper()
	port, err := localinfra.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return launchAt(t, owner, "127.0.0.1:"+strconv.Itoa(port), binary, args...)
}

// launchAt is launch on addr: the chaos suite restarts a killed instance
// where it was, as a supervisor would, so clients holding its address
// (the load generator's gateways) find it again.
func launchAt(t, owner testing.TB, addr, binary string, args ...string) *proc {
	t.Helper()
	p := &proc{name: binary, addr: addr, done: make(chan struct{})}
	p.log = filepath.Join(owner.TempDir(), binary+".log")
	logFile, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	// The binary logs in to Redis and Consul as the service it is, as under
	// `make run`.
	args = append(args, testkit.ServiceCredentials(t, binary, testkit.ArgValue(args, "redis-addr"), testkit.ArgValue(args, "consul-addr"))...)
	args, env := secretsToEnv(args)
	p.cmd = exec.Command(filepath.Join(binDir, binary), append([]string{"-http-addr", p.addr}, args...)...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", binary, err)
	}
	go func() { _ = p.cmd.Wait(); logFile.Close(); close(p.done) }() // a killed process's exit status is expected
	owner.Cleanup(func() {
		p.kill()
		if owner.Failed() {
			out, _ := os.ReadFile(p.log)
			owner.Logf("--- %s log (%s) ---\n%s", binary, p.addr, tail(string(out), 4000))
		}
	})
	waitFor(t, 30*time.Second, binary+" /health", func() error {
		select {
		case <-p.done:
			out, _ := os.ReadFile(p.log)
			t.Fatalf("%s exited during start-up:\n%s", binary, tail(string(out), 4000))
		default:
		}
		resp, err := http.Get("http://" + p.addr + "/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	return p
}

// secretFlags are the services' secret settings (config.SecretVar): a
// binary refuses them on its command line, where every user of the host
// would see them.
var secretFlags = []string{"jwt-secret", "database-url", "redis-password", "consul-token",
	"admin-password", "webhook-secret", "idempotency-hash-key", "smtp-password", "sms-auth-token", "push-key"}

// secretsToEnv moves the secret flags out of args into the environment, as
// MERCATO_<NAME>=value, the way `make run` passes them: the tests write
// them as flags for brevity.
func secretsToEnv(args []string) (rest, env []string) {
	for i := 0; i < len(args); i++ {
		name := strings.TrimPrefix(args[i], "-")
		if slices.Contains(secretFlags, name) && i+1 < len(args) {
			env = append(env, "MERCATO_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))+"="+args[i+1])
			i++
			continue
		}
		rest = append(rest, args[i])
	}
	return rest, env
}

// kill ends the process at once, as a crash would.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitPassing waits until Consul reports exactly n passing instances of service.
func waitPassing(t testing.TB, consulAddr, service string, n int) []*api.ServiceEntry {
	t.Helper()
	client, err := api.NewClient(&api.Config{Address: consulAddr, Token: testkit.ConsulToken(t, consulAddr, "")})
	if err != nil {
		t.Fatal(err)
	}
	var entries []*api.ServiceEntry
	waitFor(t, 30*time.Second, fmt.Sprintf("%d passing %s instances in Consul", n, service), func() error {
		entries, _, err = client.Health().Service(service, "", true, nil)
		if err != nil {
			return err
		}
		if len(entries) != n {
			return fmt.Errorf("%d passing", len(entries))
		}
		return nil
	})
	return entries
}

// adminAddr is the address of gw's admin listener (/metrics, /ready), as its
// registration in Consul says; its public port serves neither.
func adminAddr(t testing.TB, consulAddr string, gw *proc) string {
	t.Helper()
	client, err := api.NewClient(&api.Config{Address: consulAddr, Token: testkit.ConsulToken(t, consulAddr, "")})
	if err != nil {
		t.Fatal(err)
	}
	entries, _, err := client.Health().Service("gateway", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if net.JoinHostPort(e.Service.Address, strconv.Itoa(e.Service.Port)) == gw.addr {
			if port := e.Service.Meta[discovery.AdminPortMeta]; port != "" {
				return net.JoinHostPort(e.Service.Address, port)
			}
			t.Fatalf("gateway %s registered without an admin port: %v", gw.addr, e.Service.Meta)
		}
	}
	t.Fatalf("gateway %s is not in Consul", gw.addr)
	return ""
}

// client speaks JSON to the gateway.
type client struct {
	t    *testing.T
	base string
	http *http.Client
}

func newClient(t *testing.T, gatewayAddr string) *client {
	return &client{t: t, base: "http://" + gatewayAddr, http: &http.Client{Timeout: 15 * time.Second}}
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// errorCode returns error.code of a JSON error body, failing the test when
// the body is not the API's error format.
func (r response) errorCode(t *testing.T) string {
	t.Helper()
	var b struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &b); err != nil || b.Error.Code == "" || b.Error.Message == "" {
		t.Fatalf("status %d: want a JSON error body, got %q", r.Status, r.Body)
	}
	return b.Error.Code
}

// raw sends body as is.
func (c *client) raw(method, path, token string, body []byte, header ...string) response {
	c.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, c.base+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	checkAgainstOpenAPI(c.t, req, body, resp.StatusCode, resp.Header, b)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// do sends v as JSON (nil: no body).
func (c *client) do(method, path, token string, v any) response {
	c.t.Helper()
	var body []byte
	if v != nil {
		var err error
		if body, err = json.Marshal(v); err != nil {
			c.t.Fatal(err)
		}
	}
	return c.raw(method, path, token, body)
}

// must fails the test unless the response has status want.
func (r response) must(t *testing.T, want int) response {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status %d, want %d: %s", r.Status, want, r.Body)
	}
	return r
}

// scrape returns the value of the metric series whose name and labels match
// (all given label pairs), summed, from addr's /metrics.
func scrape(t *testing.T, addr, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			if !strings.Contains(line, labels[i]+`="`+labels[i+1]+`"`) {
				match = false
			}
		}
		if !match {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// decodeItems accepts a list either bare or in the API's list envelope.
func decodeItems(body []byte, v any) error {
	var env struct {
		Items json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(body, &env); err == nil && env.Items != nil {
		return json.Unmarshal(env.Items, v)
	}
	return json.Unmarshal(body, v)
}
