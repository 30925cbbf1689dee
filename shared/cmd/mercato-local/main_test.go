package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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

	"go.yaml.in/yaml/v3"

	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/localinfra"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// promFile is the shape of the generated configuration, parsed generically
// (as Prometheus reads the file) rather than into the types that wrote it.
type promFile struct {
	Global struct {
		ScrapeInterval string `yaml:"scrape_interval"`
	} `yaml:"global"`
	ScrapeConfigs []struct {
		JobName         string `yaml:"job_name"`
		ConsulSDConfigs []struct {
			Server string `yaml:"server"`
		} `yaml:"consul_sd_configs"`
		FileSDConfigs []struct {
			Files []string `yaml:"files"`
		} `yaml:"file_sd_configs"`
		RelabelConfigs []map[string]any `yaml:"relabel_configs"`
	} `yaml:"scrape_configs"`
}

func parsePromConfig(t *testing.T, consulAddr, targetsFile string) (promFile, []byte) {
	t.Helper()
	body, err := prometheusConfig(consulAddr, "", targetsFile, alerting{})
	if err != nil {
		t.Fatal(err)
	}
	var cfg promFile
	// Misspelt keys are promtool's to catch (TestPrometheusConfigPassesPromtool).
	if err := yaml.Unmarshal(body, &cfg); err != nil {
		t.Fatalf("not valid YAML: %v\n%s", err, body)
	}
	if cfg.Global.ScrapeInterval != "5s" {
		t.Errorf("scrape_interval = %q, want 5s", cfg.Global.ScrapeInterval)
	}
	if len(cfg.ScrapeConfigs) != 1 {
		t.Fatalf("%d scrape configs, want 1:\n%s", len(cfg.ScrapeConfigs), body)
	}
	checkRelabelling(t, cfg.ScrapeConfigs[0].RelabelConfigs, body)
	return cfg, body
}

// checkRelabelling wants only targets tagged metrics kept, and the labels
// service (from the Consul service name) and instance set.
func checkRelabelling(t *testing.T, rules []map[string]any, body []byte) {
	t.Helper()
	var keep bool
	targets := map[string]string{} // target_label -> source label
	var admin bool
	for _, r := range rules {
		src, _ := r["source_labels"].([]any)
		if r["target_label"] == "__address__" {
			admin = len(src) == 2 && src[0] == "__meta_consul_service_address" && src[1] == adminPortLabel &&
				r["separator"] == ";" && r["regex"] == adminAddressRule.Regex && r["replacement"] == "$1:$2"
			continue
		}
		if len(src) != 1 {
			t.Fatalf("relabel rule %v: want one source label", r)
		}
		switch {
		case r["action"] == "keep":
			keep = src[0] == "__meta_consul_tags" && r["regex"] == metricsTagRegex
		case r["target_label"] != nil:
			targets[r["target_label"].(string)] = src[0].(string)
		}
	}
	if !keep {
		t.Errorf("no rule keeping only targets tagged metrics:\n%s", body)
	}
	if !admin {
		t.Errorf("no rule scraping an instance's admin port where it registered one:\n%s", body)
	}
	if targets["service"] != "__meta_consul_service" {
		t.Errorf("service label from %q, want __meta_consul_service", targets["service"])
	}
	if targets["instance"] != "__meta_consul_service_id" {
		t.Errorf("instance label from %q, want __meta_consul_service_id", targets["instance"])
	}
}

// TestAdminAddressRule applies the rule as Prometheus does (source labels
// joined by the separator, the regex anchored): the gateway, which has an
// admin port, is scraped there; a service without one keeps its address.
func TestAdminAddressRule(t *testing.T) {
	re := regexp.MustCompile("^(?:" + adminAddressRule.Regex + ")$")
	for joined, want := range map[string]string{
		"127.0.0.1;3100": "127.0.0.1:3100",
		"127.0.0.1;":     "", // no match: __address__ stays host:port
	} {
		got := ""
		if m := re.FindStringSubmatchIndex(joined); m != nil {
			got = string(re.ExpandString(nil, adminAddressRule.Replacement, joined, m))
		}
		if got != want {
			t.Errorf("%q → %q, want %q", joined, got, want)
		}
	}
}

func TestPrometheusConfigConsulSD(t *testing.T) {
	cfg, body := parsePromConfig(t, "127.0.0.1:8500", "")
	job := cfg.ScrapeConfigs[0]
	if len(job.ConsulSDConfigs) != 1 || job.ConsulSDConfigs[0].Server != "127.0.0.1:8500" {
		t.Errorf("consul_sd_configs = %+v, want one with server 127.0.0.1:8500:\n%s", job.ConsulSDConfigs, body)
	}
	if len(job.FileSDConfigs) != 0 {
		t.Errorf("unexpected file_sd_configs:\n%s", body)
	}
}

func TestPrometheusConfigFileSDFallback(t *testing.T) {
	cfg, body := parsePromConfig(t, "127.0.0.1:8500", "/x/targets/consul.json")
	job := cfg.ScrapeConfigs[0]
	if len(job.FileSDConfigs) != 1 || !slices.Equal(job.FileSDConfigs[0].Files, []string{"/x/targets/consul.json"}) {
		t.Errorf("file_sd_configs = %+v, want the targets file:\n%s", job.FileSDConfigs, body)
	}
	if len(job.ConsulSDConfigs) != 0 {
		t.Errorf("consul_sd_configs in the fallback:\n%s", body)
	}
}

// TestMetricsTagRegex checks the keep rule against the tag list as
// Prometheus builds it (",tag1,tag2,") and anchors it (^(?:regex)$).
func TestMetricsTagRegex(t *testing.T) {
	re := regexp.MustCompile("^(?:" + metricsTagRegex + ")$")
	for tags, want := range map[string]bool{
		",metrics,version=dev,": true,
		",version=dev,metrics,": true,
		",version=dev,":         false,
		",metricsx,":            false,
		",":                     false,
	} {
		if got := re.MatchString(tags); got != want {
			t.Errorf("tags %q: kept = %v, want %v", tags, got, want)
		}
	}
}

// TestPrometheusConfigPassesPromtool has Prometheus' own checker read both
// variants. promtool ships with Prometheus (`make deps` installs both); its
// absence fails the test. A promtool built without Consul discovery
// (Debian's) cannot judge the consul_sd variant; then the test checks that
// mercato-local detects it and uses the file_sd fallback.
func TestPrometheusConfigPassesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (Debian package prometheus; `make deps` installs it): %v", err)
	}
	dir := t.TempDir()
	targets := filepath.Join(dir, "consul.json")
	// A targets file as targetMirror writes it, so promtool checks it too.
	if err := os.WriteFile(targets, []byte(`[{"targets":["127.0.0.1:4000"],"labels":{"__meta_consul_service":"user","__meta_consul_service_id":"user-127.0.0.1-4000","__meta_consul_tags":",metrics,"}},{"targets":["127.0.0.1:3000"],"labels":{"__meta_consul_service":"gateway","__meta_consul_service_id":"gateway-127.0.0.1-3000","__meta_consul_tags":",metrics,","__meta_consul_service_address":"127.0.0.1","__meta_consul_service_metadata_admin_port":"3100"}}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := localinfra.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	// With the repository's rules, which promtool checks as well.
	alerts := alerting{ruleFiles: []string{filepath.Join(root, alertRules)}, alertmanager: alertmanagerAddr}
	check := func(t *testing.T, targetsFile string) (string, error) {
		body, err := prometheusConfig("127.0.0.1:8500", "", targetsFile, alerts)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(body), "rule_files:") || !strings.Contains(string(body), alertmanagerAddr) {
			t.Errorf("no rule_files or alerting to %s:\n%s", alertmanagerAddr, body)
		}
		path := filepath.Join(dir, "prometheus.yml")
		if err := os.WriteFile(path, body, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(promtool, "check", "config", path).CombinedOutput()
		return string(out) + "\n--- config ---\n" + string(body), err
	}
	t.Run("file_sd", func(t *testing.T) {
		if out, err := check(t, targets); err != nil {
			t.Fatalf("promtool check config: %v\n%s", err, out)
		}
	})
	// The consul_sd variant either passes promtool, or promtool lacks Consul
	// discovery (Debian's) — and then supportsConsulSD must say so, since
	// that is what makes mercato-local fall back to file_sd.
	t.Run("consul_sd or the detected fallback", func(t *testing.T) {
		out, err := check(t, "")
		supported, serr := supportsConsulSD(promtool)
		if serr != nil {
			t.Fatal(serr)
		}
		switch {
		case err == nil && !supported:
			t.Fatalf("promtool accepts consul_sd_configs, yet supportsConsulSD reports no support")
		case err != nil && !strings.Contains(out, "consul_sd_configs not found"):
			t.Fatalf("promtool check config: %v\n%s", err, out)
		case err != nil && supported:
			t.Fatalf("promtool lacks Consul discovery, yet supportsConsulSD reports support:\n%s", out)
		}
	})
}

func TestConsulTagListFormat(t *testing.T) {
	// targetMirror must present tags as consul_sd does, or the keep rule
	// would drop every mirrored target.
	re := regexp.MustCompile("^(?:" + metricsTagRegex + ")$")
	if tags := consulTagList([]string{"version=dev", "metrics"}); !re.MatchString(tags) {
		t.Errorf("mirrored tag list %q is not kept", tags)
	}
}

func TestLockRefusesSecondHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.lock")
	first, err := acquireLock(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("lock file holds %q (%v), want our pid %d", b, err, os.Getpid())
	}

	// flock belongs to the open file, so a second open in this process is
	// refused just as another process would be.
	second, err := acquireLock(path)
	var running *alreadyRunningError
	if !errors.As(err, &running) {
		if second != nil {
			second.release()
		}
		t.Fatalf("second acquire: got %v, want alreadyRunningError", err)
	}
	if running.pid != os.Getpid() {
		t.Errorf("refusal names pid %d, want the holder's %d", running.pid, os.Getpid())
	}

	first.release()
	first.release() // idempotent
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file still there after release: %v", err)
	}
	third, err := acquireLock(path)
	if err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	third.release()
}

func TestServiceTable(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range append(slices.Clone(services), gateway) {
		if seen[s.name] {
			t.Errorf("service %q listed twice", s.name)
		}
		seen[s.name] = true
		if s.db != "" && !slices.Contains(databases, s.db) {
			t.Errorf("service %s uses database %s, which is not in databases", s.name, s.db)
		}
		if s.db != "" && localinfra.ServiceConnections[s.name] == 0 {
			t.Errorf("service %s has a database but no localinfra.ServiceConnections: PostgreSQL would keep no room for its pool", s.name)
		}
	}
}

func TestSelectServices(t *testing.T) {
	got, err := selectServices(" user ,")
	if err != nil || len(got) != 1 || got[0].name != "user" {
		t.Errorf(`selectServices(" user ,") = %v, %v; want [user]`, got, err)
	}
	if got, err := selectServices(""); err != nil || len(got) != 0 {
		t.Errorf(`selectServices("") = %v, %v; want none`, got, err)
	}
	if _, err := selectServices("user,nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown service: err = %v, want one naming it", err)
	}
}

func TestInstanceArgs(t *testing.T) {
	sec := secrets{jwtSecret: "jwt-key", adminEmail: "a@b", adminPassword: "admin-pw", hashKey: "order-hash-key", webhookSecret: "webhook-key"}
	args := strings.Join(services[0].args(sec), " ")
	for _, want := range []string{"-http-addr 127.0.0.1:0", "-consul-addr 127.0.0.1:8500", "-redis-addr 127.0.0.1:16379", "-admin-email a@b"} {
		if !strings.Contains(args, want) {
			t.Errorf("user args %q lack %q", args, want)
		}
	}
	gw := strings.Join(gateway.args(sec), " ")
	if !strings.Contains(gw, "-http-addr 127.0.0.1:3000") || !strings.Contains(gw, "-admin-addr 127.0.0.1:3100") || strings.Contains(gw, "-database-url") {
		t.Errorf("gateway args = %q", gw)
	}
	// No secret on any command line; each in the environment of the
	// services that need it, and only those.
	needs := map[string][]string{
		"MERCATO_JWT_SECRET=jwt-key":                   {"user", "product", "payment", "order", "notification", "gateway"},
		"MERCATO_DATABASE_URL=postgres://u:db-pw@h/db": {"user", "product", "payment", "order", "notification"},
		"MERCATO_ADMIN_PASSWORD=admin-pw":              {"user"},
		"MERCATO_WEBHOOK_SECRET=webhook-key":           {"payment"},
		"MERCATO_IDEMPOTENCY_HASH_KEY=order-hash-key":  {"order"},
	}
	for _, s := range append(slices.Clone(services), gateway) {
		args := strings.Join(s.args(sec), " ")
		for _, secret := range []string{"jwt-key", "admin-pw", "order-hash-key", "webhook-key", "db-pw"} {
			if strings.Contains(args, secret) {
				t.Errorf("%s args %q show a secret", s.name, args)
			}
		}
		env := s.env("postgres://u:db-pw@h/db", sec)
		for kv, who := range needs {
			if got, want := slices.Contains(env, kv), slices.Contains(who, s.name); got != want {
				t.Errorf("%s env has %s: %v, want %v", s.name, kv, got, want)
			}
		}
	}
}

// TestLocalFolderSearchable: PostgreSQL runs as its own OS user when we are
// root and must enter .local to reach .local/postgres, whether .local is made
// by this run or was left 0700 by -compose-secrets (make compose-up). The
// run stops at preflight (the temporary root has no bin/), after .local is
// made.
func TestLocalFolderSearchable(t *testing.T) {
	for name, before := range map[string]func(root string) error{
		"fresh": func(string) error { return nil },
		"compose secrets": func(root string) error {
			return writeComposeSecrets(root, filepath.Join(root, ".local", "compose"), io.Discard)
		},
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			repo, err := localinfra.RepoRoot()
			if err != nil {
				t.Fatal(err)
			}
			// -compose-secrets renders the repository's Alertmanager template.
			tmpl := filepath.Join(root, "deploy", "alertmanager")
			if err := os.MkdirAll(tmpl, 0o750); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(repo, "deploy", "alertmanager", "alertmanager.yml.tmpl"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(tmpl, "alertmanager.yml.tmpl"), b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := before(root); err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			if code := run([]string{"-root", root}, io.Discard, &stderr); code != 1 {
				t.Fatalf("run = %d, want 1 (no binaries); stderr:\n%s", code, stderr.String())
			}
			st, err := os.Stat(filepath.Join(root, ".local"))
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm()&0o001 == 0 {
				t.Errorf(".local is %v: other users (PostgreSQL's) cannot enter it", st.Mode().Perm())
			}
			if st, err := os.Stat(filepath.Join(root, ".local", "secrets")); err != nil || st.Mode().Perm() != 0o700 {
				t.Errorf(".local/secrets: %v, %v; want 0700", st.Mode(), err)
			}
		})
	}
}

// TestServiceStopGraceCoversTheDrain: a service instance gets the whole
// of its shutdown (leaving Consul, the drain delay, the drain) before the
// SIGKILL, so a request still draining is answered.
func TestServiceStopGraceCoversTheDrain(t *testing.T) {
	if serviceStopGrace <= discovery.MaxShutdown {
		t.Errorf("serviceStopGrace %s, but an instance's shutdown may take %s (discovery.MaxShutdown)", serviceStopGrace, discovery.MaxShutdown)
	}
}

// TestRepeatedSignalIsOneStop: a process-group kill delivers the signal
// twice at once (timeout(1) sends it to its child and to its group; `kill
// %1` on `make run &` reaches make, which forwards it, and mercato-local),
// which must stop the platform in order, not kill it; a signal sent again
// later kills everything.
func TestRepeatedSignalIsOneStop(t *testing.T) {
	sigs := make(chan os.Signal, 2)
	stopped, killed := make(chan os.Signal, 1), make(chan os.Signal, 1)
	const grace = 300 * time.Millisecond
	go handleSignals(sigs, grace, func(s os.Signal) { stopped <- s }, func(s os.Signal) { killed <- s })
	sigs <- syscall.SIGTERM
	sigs <- syscall.SIGTERM
	if s := <-stopped; s != syscall.SIGTERM {
		t.Fatalf("stopped on %v", s)
	}
	select {
	case s := <-killed:
		t.Fatalf("the same SIGTERM delivered twice killed everything (%v) instead of stopping it in order", s)
	case <-time.After(grace + 100*time.Millisecond):
	}
	sigs <- syscall.SIGINT
	select {
	case s := <-killed:
		if s != syscall.SIGINT {
			t.Errorf("killed on %v, want SIGINT", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a signal sent again after the grace did not kill everything")
	}
}

// TestOutputReaderGoneIsNoKill: `make run | tee run.log` and Ctrl-C end tee
// as well, so mercato-local's next line goes to a pipe nobody reads. That
// must not kill it (SIGPIPE) before it has stopped what it started. This
// run, a process of its own with its output on such a pipe, stops at
// preflight (the temporary root has no bin/) and must end as it does then:
// status 1, the lock released.
func TestOutputReaderGoneIsNoKill(t *testing.T) {
	if root := os.Getenv("MERCATO_LOCAL_TEST_ROOT"); root != "" {
		os.Exit(run([]string{"-root", root}, os.Stdout, os.Stderr))
	}
	root := t.TempDir()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	// The reader is gone before the first line.
	r.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestOutputReaderGoneIsNoKill$") //nolint:gosec // G204: this test binary
	cmd.Env = append(os.Environ(), "MERCATO_LOCAL_TEST_ROOT="+root)
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Run()
	w.Close()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
		t.Fatalf("run with its output's reader gone ended with %v, want exit status 1 (preflight: no bin/)", err)
	}
	if _, err := os.Stat(filepath.Join(root, ".local", "run.lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run.lock left behind (%v): the run did not reach its end", err)
	}
}

// TestLongWaitSaysWhatItWaitsFor: the wait for Consul's health checks may
// take minutes (-start-timeout); a person watching must see what it is
// still waiting for, not a silent terminal.
func TestLongWaitSaysWhatItWaitsFor(t *testing.T) {
	defer func(every time.Duration) { progressEvery = every }(progressEvery)
	progressEvery = 300 * time.Millisecond
	var out bytes.Buffer
	u := &ui{out: &out, errOut: &out}
	err := waitUntil(context.Background(), u, 1200*time.Millisecond, nil, func(context.Context) (bool, string, error) {
		return false, "order 1/2 passing", nil
	})
	if err == nil || !strings.Contains(err.Error(), "not ready after") {
		t.Fatalf("waitUntil = %v, want the timeout", err)
	}
	if n := strings.Count(out.String(), "still waiting after"); n < 2 || !strings.Contains(out.String(), "order 1/2 passing") {
		t.Errorf("a 1.2 s wait said %q (%d progress lines), want a line every 300 ms naming what it waits for", out.String(), n)
	}
}

// TestServerDeathIsReported: PostgreSQL, Redis or Consul dying under a
// running platform must be said, with the end of its log, as a service
// instance's death is; the services' errors alone do not say why.
func TestServerDeathIsReported(t *testing.T) {
	dir := t.TempDir()
	r, err := localinfra.StartRedis(context.Background(), localinfra.RedisOptions{
		Dir: filepath.Join(dir, "redis"), LogFile: filepath.Join(dir, "redis.log"), Passwords: localinfra.RandomRedisPasswords(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Stop() }()
	var out testkit.LogBuffer
	p := &platform{ui: &ui{out: &out, errOut: &out}, dirs: newLayout(dir), redis: r}
	p.watch()
	r.Process().Kill()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(out.String(), "redis (pid"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Redis was killed under a running platform and mercato-local said %q", out.String())
		}
	}
	if want := fmt.Sprintf("redis (pid %d) exited unexpectedly (signal: killed)", r.Process().Pid()); !strings.Contains(out.String(), want) {
		t.Errorf("said %q, want %q", out.String(), want)
	}
}
