package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/localinfra"
)

// serviceStopGrace is how long a service instance gets between SIGTERM
// (deregister, drain requests in flight) and SIGKILL: longer than the
// whole of its shutdown (discovery.MaxShutdown, 21 s).
const serviceStopGrace = 25 * time.Second

// layout is where a run keeps its files, all under <root>/.local.
type layout struct {
	root, local, logs string
}

func newLayout(root string) layout {
	local := filepath.Join(root, ".local")
	return layout{root: root, local: local, logs: filepath.Join(local, "logs")}
}

func (l layout) logFile(name string) string { return filepath.Join(l.logs, name+".log") }

// rel shortens a path under the root for progress lines.
func (l layout) rel(path string) string {
	if r, err := filepath.Rel(l.root, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

// platform is one local run: the infrastructure servers, the service
// instances and the gateway, and Prometheus.
type platform struct {
	ui        *ui
	dirs      layout
	opts      options
	consulBin string
	promBin   string // "" when Prometheus is not installed
	// jaegerBin and victoriaLogsBin are "" when not built.
	jaegerBin, victoriaLogsBin string
	alertmanagerBin            string // "" when Alertmanager is not installed

	postgres *localinfra.Postgres
	redis    *localinfra.Redis
	consul   *localinfra.Consul
	catalog  *api.Client // the Consul agent's HTTP API

	jaeger       *localinfra.Jaeger       // nil when not built
	victoriaLogs *localinfra.VictoriaLogs // nil when not built
	shipper      *localinfra.LogShipper   // nil without VictoriaLogs
	alertmanager *localinfra.Alertmanager // nil when not installed
	stopShipper  func()

	mu         sync.Mutex
	apps       []*child    // service instances, then the gateway
	tools      []*child    // the SMTP sink and Prometheus: stopped after the services
	stopMirror func()      // stops the targets mirror; nil when not running
	stopping   atomic.Bool // set once stop begins, so exits are expected
	forced     atomic.Bool // set by killNow: deaths by SIGKILL are expected
}

// start brings everything up in dependency order. On error the caller calls
// stop, which stops whatever did start.
func (p *platform) start(ctx context.Context) error {
	pgDir := filepath.Join(p.dirs.local, "postgres")
	note := ""
	if _, err := os.Stat(filepath.Join(pgDir, "data", "PG_VERSION")); err != nil {
		note = "; first run: creating the cluster with initdb"
	}
	want := map[string]int{} // instances of each service
	for _, s := range p.opts.services {
		want[s.name] = s.instanceCount(p.opts.instances)
	}
	maxConns := localinfra.MaxConnections(want) // every pool full at once
	p.ui.step("starting PostgreSQL on %s (max_connections %d; data in %s%s)", postgresAddr, maxConns, p.dirs.rel(pgDir), note)
	pg, err := localinfra.StartPostgres(ctx, localinfra.PostgresOptions{
		Dir:            pgDir,
		Port:           postgresPort,
		LogFile:        p.dirs.logFile("postgres"),
		Password:       p.opts.secrets.postgresPassword,
		MaxConnections: maxConns,
	})
	if err != nil {
		return err
	}
	p.postgres = pg
	p.ui.step("creating databases and their roles when missing: %s (each owned by the role of its name)", strings.Join(databases, ", "))
	for _, db := range databases {
		if err := pg.EnsureDatabase(ctx, db, db, p.opts.secrets.dbPassword(db)); err != nil {
			return err
		}
	}

	redisDir := filepath.Join(p.dirs.local, "redis")
	p.ui.step("starting Redis on %s (data in %s)", redisAddr, p.dirs.rel(redisDir))
	if p.redis, err = localinfra.StartRedis(ctx, localinfra.RedisOptions{
		Dir:       redisDir,
		Port:      redisPort,
		LogFile:   p.dirs.logFile("redis"),
		Passwords: p.opts.secrets.redisPasswordMap(),
	}); err != nil {
		return err
	}

	p.ui.step("starting Consul dev agent on %s (%s; its catalogue lives in memory; ACLs on, default deny)", consulAddr, p.consulBin)
	sec := p.opts.secrets
	if p.consul, err = localinfra.StartConsul(ctx, localinfra.ConsulOptions{
		Dir:             filepath.Join(p.dirs.local, "consul"),
		HTTPPort:        consulPort,
		Binary:          p.consulBin,
		LogFile:         p.dirs.logFile("consul"),
		ManagementToken: sec.consulToken(consulManagement),
	}); err != nil {
		return err
	}
	// The agent keeps its ACLs in memory too: the tokens are made again, with
	// the secrets of .local/secrets, on every start.
	for _, s := range append([]serviceSpec{gateway}, services...) {
		if _, err := p.consul.ServiceToken(ctx, s.name, sec.consulToken(s.name)); err != nil {
			return err
		}
	}
	if _, err := p.consul.ReadToken(ctx, sec.consulToken(consulPrometheus)); err != nil {
		return err
	}
	if p.catalog, err = discovery.NewConsulClientWithToken(consulAddr, sec.consulToken(consulManagement)); err != nil {
		return err
	}

	// The SMTP sink before the services, so the first emails have somewhere
	// to go; the trace and log stores too, for their first spans and lines.
	if err := p.startMailSink(ctx); err != nil {
		return err
	}
	if err := p.startObservability(ctx); err != nil {
		return err
	}

	// Services before the gateway, so its first requests find instances.
	if len(p.opts.services) > 0 {
		var wave []*child
		for _, s := range p.opts.services {
			started, err := p.startInstances(s, want[s.name])
			wave = append(wave, started...)
			if err != nil {
				return err
			}
		}
		if err := p.waitPassing(ctx, want, wave); err != nil {
			return err
		}
	}
	gw, err := p.startInstances(gateway, 1)
	if err != nil {
		return err
	}
	if err := p.waitPassing(ctx, map[string]int{gateway.name: 1}, gw); err != nil {
		return err
	}

	if p.promBin == "" {
		p.ui.warn("Prometheus is not installed (%s missing): running without metrics collection; `make deps` installs it", debianPrometheus)
		return nil
	}
	if err := p.startAlertmanager(ctx); err != nil {
		return err
	}
	return p.startPrometheus(ctx)
}

// startPrometheus runs Prometheus with targets from Consul: through its own
// Consul discovery when it has it, else through a targets file mirrored
// from Consul while the platform runs.
func (p *platform) startPrometheus(ctx context.Context) error {
	dir := filepath.Join(p.dirs.local, "prometheus")
	consulSD, err := supportsConsulSD(p.promBin)
	if err != nil {
		return err
	}
	targets := ""
	if consulSD {
		p.ui.step("starting Prometheus on %s (config %s; targets from Consul's catalogue)", prometheusAddr, p.dirs.rel(filepath.Join(dir, "prometheus.yml")))
	} else {
		targets = filepath.Join(dir, "targets", "consul.json")
		p.ui.step("starting Prometheus on %s (config %s); this build (%s) lacks Consul discovery,\n    so mercato-local mirrors Consul's catalogue into %s every %s",
			prometheusAddr, p.dirs.rel(filepath.Join(dir, "prometheus.yml")), p.promBin, p.dirs.rel(targets), mirrorInterval)
		m := &targetMirror{catalog: p.catalog, path: targets, ui: p.ui}
		if err := m.sync(ctx); err != nil {
			return err
		}
		mirrorCtx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go m.run(mirrorCtx, done)
		p.mu.Lock()
		p.stopMirror = func() { cancel(); <-done }
		p.mu.Unlock()
	}
	prom, err := startPrometheus(ctx, p.promBin, dir, targets, p.opts.secrets.consulToken(consulPrometheus), p.dirs.logFile("prometheus"), p.alerting())
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.tools = append(p.tools, prom)
	p.mu.Unlock()
	return nil
}

// startInstances starts n instances of s, named <name>-1 … <name>-n (the
// gateway, alone, is just "gateway"). It returns those it started even on
// error, and records them for stop.
func (p *platform) startInstances(s serviceSpec, n int) ([]*child, error) {
	bin := filepath.Join(p.dirs.root, "bin", s.name)
	dbURL := ""
	if s.db != "" {
		dbURL = p.postgres.RoleURL(s.db, p.opts.secrets.dbPassword(s.db), s.db)
	}
	var names []string
	for i := 1; i <= n; i++ {
		names = append(names, instanceName(s, n, i))
	}
	logs := make([]string, len(names))
	for i, name := range names {
		logs[i] = filepath.Base(p.dirs.logFile(name))
	}
	logDir := p.dirs.rel(p.dirs.logs) + string(filepath.Separator)
	if s.httpAddr != "" {
		p.ui.step("starting the %s on %s (log: %s%s)", s.name, s.httpAddr, logDir, strings.Join(logs, ", "))
	} else {
		p.ui.step("starting %s on free ports (logs: %s%s)", plural(n, s.name+" instance", s.name+" instances"), logDir, strings.Join(logs, ", "))
	}
	var started []*child
	for _, name := range names {
		c, err := startChild(name, p.dirs.logFile(name), s.env(dbURL, p.opts.secrets), bin, append(s.args(p.opts.secrets), p.tracingArgs()...)...)
		if err != nil {
			return started, err
		}
		p.shipLog(s.name, c)
		started = append(started, c)
		p.mu.Lock()
		p.apps = append(p.apps, c)
		p.mu.Unlock()
	}
	return started, nil
}

func instanceName(s serviceSpec, n, i int) string {
	if n == 1 && s.instances == 1 {
		return s.name
	}
	return s.name + "-" + strconv.Itoa(i)
}

// waitPassing waits until Consul reports want[name] passing instances of each
// service: registered, and answering their /health check. An instance that
// exits meanwhile fails the wait at once, with the end of its log.
func (p *platform) waitPassing(ctx context.Context, want map[string]int, wave []*child) error {
	names := make([]string, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	sort.Strings(names)
	p.ui.step("waiting for Consul to report %s passing", strings.Join(names, ", "))
	return waitUntil(ctx, p.ui, p.opts.startTimeout, wave, func(ctx context.Context) (bool, string, error) {
		var status []string
		ready := true
		for _, name := range names {
			entries, _, err := p.catalog.Health().Service(name, "", true, (&api.QueryOptions{}).WithContext(ctx))
			if err != nil {
				return false, "asking Consul: " + err.Error(), nil
			}
			status = append(status, fmt.Sprintf("%s %d/%d passing", name, len(entries), want[name]))
			if len(entries) < want[name] {
				ready = false
			}
		}
		return ready, strings.Join(status, ", "), nil
	})
}

// exitedError is a child that ended while we waited for it to come up.
type exitedError struct{ c *child }

func (e *exitedError) Error() string {
	return fmt.Sprintf("%s exited during start-up (%s); last lines of %s:\n%s",
		e.c.name, e.c.exitReason(), e.c.logPath, indent(e.c.LogTail(30)))
}

// progressEvery is how often a long wait says what it is still waiting for.
var progressEvery = 10 * time.Second

// waitUntil polls cond until it reports done, one of watch exits, ctx ends
// (its error is returned as is) or timeout passes. cond also returns a
// status, for the progress line u gets every progressEvery (none when u is
// nil) and the timeout message, and an error that ends the wait.
func waitUntil(ctx context.Context, u *ui, timeout time.Duration, watch []*child, cond func(context.Context) (bool, string, error)) error {
	deadline, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	status := "not checked yet"
	start, said := time.Now(), time.Now()
	for {
		for _, c := range watch {
			if c.Exited() {
				return &exitedError{c}
			}
		}
		probe, cancelProbe := context.WithTimeout(deadline, 3*time.Second)
		done, s, err := cond(probe)
		cancelProbe()
		if err != nil {
			return err
		}
		if s != "" {
			status = s
		}
		if done {
			return nil
		}
		if u != nil && time.Since(said) >= progressEvery {
			said = time.Now()
			u.print(u.out, "    ", "still waiting after %s of %s: %s", time.Since(start).Round(time.Second), timeout, status)
		}
		select {
		case <-deadline.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var b strings.Builder
			fmt.Fprintf(&b, "not ready after %s (%s)", timeout, status)
			for _, c := range watch {
				fmt.Fprintf(&b, "\nlast lines of %s:\n%s", c.logPath, indent(c.LogTail(10)))
			}
			return errors.New(b.String())
		case <-tick.C:
		}
	}
}

// instanceURLs lists the passing instances of service from Consul, sorted.
func (p *platform) instanceURLs(ctx context.Context, service string) []string {
	entries, _, err := p.catalog.Health().Service(service, "", true, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return []string{"(cannot ask Consul: " + err.Error() + ")"}
	}
	var urls []string
	for _, e := range entries {
		urls = append(urls, fmt.Sprintf("http://%s:%d  (%s)", e.Service.Address, e.Service.Port, e.Service.ID))
	}
	sort.Strings(urls)
	return urls
}

// watch reports service instances, tools and servers that exit while the
// platform runs. It does not restart them: the others keep serving (or
// report what they miss), and the log says why.
func (p *platform) watch() {
	p.mu.Lock()
	apps := append(append(p.servers(), p.apps...), p.tools...)
	p.mu.Unlock()
	for _, c := range apps {
		go func() {
			<-c.Done()
			if !p.stopping.Load() {
				p.ui.warn("%s (pid %d) exited unexpectedly (%s); it is not restarted. Last lines of %s:\n%s",
					c.name, c.Pid(), c.exitReason(), c.logPath, indent(c.LogTail(15)))
			}
		}()
	}
}

// stop stops everything that started, in the order that loses nothing:
// service instances and the gateway first (they leave Consul and finish
// their requests), then the SMTP sink, Prometheus and Alertmanager, the log shipper,
// VictoriaLogs and Jaeger, Consul, Redis and PostgreSQL. Problems
// are reported and do not stop the rest from being stopped.
func (p *platform) stop() {
	p.stopping.Store(true)
	p.mu.Lock()
	apps, tools, stopMirror := append([]*child(nil), p.apps...), append([]*child(nil), p.tools...), p.stopMirror
	p.mu.Unlock()

	if len(apps) > 0 {
		p.ui.step("stopping %s (SIGTERM: they deregister from Consul; SIGKILL after %s)", plural(len(apps), "service process", "service processes"), serviceStopGrace)
		// In parallel, so a stuck instance costs one grace period, not one each.
		var wg sync.WaitGroup
		for _, c := range apps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.reportStop(c, serviceStopGrace)
			}()
		}
		wg.Wait()
	}
	for _, c := range tools {
		p.ui.step("stopping %s", c.name)
		p.reportStop(c, serviceStopGrace)
	}
	p.stopAlertmanager()
	if stopMirror != nil {
		stopMirror() // before Consul goes, or it would warn that Consul is unreachable
	}
	p.stopObservability()
	stopServer(p, "Consul", p.consul)
	stopServer(p, "Redis", p.redis)
	stopServer(p, "PostgreSQL", p.postgres)
}

func (p *platform) reportStop(c *child, grace time.Duration) {
	wasRunning := !c.Exited()
	killed, err := c.stop(grace)
	if p.forced.Load() {
		return
	}
	switch {
	case killed:
		p.ui.warn("%s did not stop within %s of SIGTERM; killed", c.name, grace)
	case err != nil && wasRunning:
		p.ui.warn("%s stopped with %v; see %s", c.name, err, c.logPath)
	}
}

// stopServer stops s, one of the servers localinfra started for the
// platform, when it was started.
func stopServer[T any, S interface {
	*T
	Stop() error
}](p *platform, name string, s S) {
	if s == nil {
		return
	}
	p.ui.step("stopping %s", name)
	p.warnIf(s.Stop())
}

func (p *platform) warnIf(err error) {
	if err != nil {
		p.ui.warn("%v", err)
	}
}

// killNow SIGKILLs every child we started ourselves, for a second Ctrl-C.
// The servers localinfra started die with us (parent-death signal).
func (p *platform) killNow() {
	p.stopping.Store(true)
	p.forced.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.apps {
		c.KillGroup()
	}
	for _, c := range p.tools {
		c.KillGroup()
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

func indent(text string) string {
	return "    " + strings.ReplaceAll(text, "\n", "\n    ")
}
