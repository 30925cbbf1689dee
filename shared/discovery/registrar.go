// Package discovery is the Consul side of every Mercato service: registering
// an instance (registrar.go) and calling the instances of an upstream service
// through one load-balanced, retrying, circuit-broken endpoint per method
// (client.go, retry.go, breaker.go), with breaker state as metrics
// (metrics.go).
//
// Contract for per-instance endpoints (the sd.Factory a client passes to
// NewEndpoint): return an error only for transport failures and 5xx answers
// (use CheckResponse, which yields *UpstreamError). Business answers such as
// 400, 404 or 409 are normal responses carrying their error in
// endpoint.Failer. Of the errors, only outages — transport failures,
// timeouts, 502/503/504 — count against the instance's circuit breaker
// (CountsAgainstInstance): a 500 is a bug the request triggered, and
// counting it would let any client that can trigger it take healthy
// instances out of rotation.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/hashicorp/consul/api"

	"github.com/mercato-dev/mercato/shared/wait"
)

const (
	// consulWait bounds Consul blocking queries (the instancer's watch). The
	// agent's default is 5 minutes, which would force a client timeout so long
	// that it could not catch a hung agent.
	consulWait = 30 * time.Second
	// consulTimeout must exceed consulWait plus the jitter (wait/16) Consul
	// adds to blocking queries, or every idle watch would fail.
	consulTimeout = consulWait + consulWait/16 + 10*time.Second
	// consulDialTimeout makes an unreachable agent fail start-up quickly even
	// though a whole request may take consulTimeout.
	consulDialTimeout = 3 * time.Second
	// deregisterTimeout bounds a deregistration: it runs on the way to the
	// drain, which an agent that takes the request and never answers would
	// otherwise hold for consulTimeout, past a pod's grace period.
	deregisterTimeout = 5 * time.Second
	// registerTimeout is how long an instance starting up waits for Consul
	// to take its registration (Register) before it gives up and exits.
	// Within a pod's startup probe (a minute) with the rest of start-up.
	registerTimeout = 30 * time.Second
)

// NewConsulClient returns a client for the Consul agent at addr (host:port or
// a URL). Its HTTP client has a timeout and blocking queries are bounded, so
// no call to Consul can hang forever.
func NewConsulClient(addr string) (*api.Client, error) {
	return NewConsulClientWithToken(addr, "")
}

// NewConsulClientWithToken is NewConsulClient sending the ACL token token
// with every request; "" leaves consul/api's default, CONSUL_HTTP_TOKEN (or
// CONSUL_HTTP_TOKEN_FILE) from the environment, else no token.
func NewConsulClientWithToken(addr, token string) (*api.Client, error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DialContext = (&net.Dialer{Timeout: consulDialTimeout, KeepAlive: 30 * time.Second}).DialContext
	transport.MaxIdleConnsPerHost = 8
	transport.ResponseHeaderTimeout = 0 // blocking queries hold headers for up to consulWait

	cfg := api.DefaultConfig()
	cfg.Address = addr
	if token != "" {
		cfg.Token = token
	}
	cfg.WaitTime = consulWait
	cfg.Transport = transport
	cfg.HttpClient = &http.Client{Transport: transport, Timeout: consulTimeout}
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("consul client for %q: %w", addr, err)
	}
	return client, nil
}

// Registration describes one instance of a service as Consul should see it.
type Registration struct {
	Service string   // service name other services discover, e.g. "user"
	Host    string   // address other instances and Consul's health check dial
	Port    int      // port the instance's HTTP server listens on
	Version string   // build version; empty means "dev"
	Tags    []string // extra tags; "metrics" and "version=<v>" are always added
	// AdminPort, when set, is the port of the instance's admin listener on
	// Host (/health, /ready, /metrics: the gateway's, which keeps them off
	// its public port). Consul's check dials it, and it is registered as
	// the metadata AdminPortMeta, by which Prometheus scrapes it.
	AdminPort int
}

// AdminPortMeta is the service metadata key of Registration.AdminPort.
// Prometheus sees it as __meta_consul_service_metadata_admin_port.
const AdminPortMeta = "admin_port"

// ID is the instance's Consul service ID: <service>-<host>-<port>, unique per
// listening address so several instances can run on one machine.
func (r Registration) ID() string {
	return fmt.Sprintf("%s-%s-%d", r.Service, r.Host, r.Port)
}

func (r Registration) validate() error {
	switch {
	case r.Service == "":
		return errors.New("registration: empty service name")
	case r.Host == "":
		return errors.New("registration: empty host")
	case r.Port <= 0 || r.Port > 65535:
		return fmt.Errorf("registration: port %d out of range", r.Port)
	case r.AdminPort < 0 || r.AdminPort > 65535:
		return fmt.Errorf("registration: admin port %d out of range", r.AdminPort)
	}
	return nil
}

func (r Registration) agentRegistration() *api.AgentServiceRegistration {
	version := r.Version
	if version == "" {
		version = "dev"
	}
	// "metrics" is what Prometheus' consul_sd_configs selects scrape targets by.
	tags := []string{"metrics", "version=" + version}
	for _, t := range r.Tags {
		if t != "metrics" && t != "version="+version {
			tags = append(tags, t)
		}
	}
	meta := map[string]string{"version": version}
	checked := r.Port
	if r.AdminPort != 0 {
		meta[AdminPortMeta] = strconv.Itoa(r.AdminPort)
		checked = r.AdminPort
	}
	base := "http://" + net.JoinHostPort(r.Host, strconv.Itoa(checked))
	return &api.AgentServiceRegistration{
		ID:      r.ID(),
		Name:    r.Service,
		Address: r.Host,
		Port:    r.Port,
		Tags:    tags,
		Meta:    meta,
		Check: &api.AgentServiceCheck{
			CheckID:  "service:" + r.ID(),
			Name:     r.Service + " /health",
			HTTP:     base + "/health",
			Method:   http.MethodGet,
			Interval: "2s",
			Timeout:  "1s",
			// An instance that dies without deregistering (kill -9, OOM) is
			// removed from the catalogue after a minute instead of lingering
			// as critical forever.
			DeregisterCriticalServiceAfter: "1m",
		},
	}
}

// Registrar is a registered instance. Call Deregister on SIGINT/SIGTERM
// before shutting the HTTP server down, so callers stop picking the instance
// while it still answers the requests in flight.
type Registrar struct {
	id           string
	registration *api.AgentServiceRegistration
	agent        *api.Agent
	logger       log.Logger
	// Every is how often Run checks the registration (10 s).
	Every time.Duration
}

// Register registers r with the Consul agent behind client, asking again
// every second while the agent cannot be reached or refuses it (a new
// deployment's Consul may not know the instance's token yet) until ctx is
// done. It then returns the last error, so a service fails at start-up
// instead of running undiscoverable.
func Register(ctx context.Context, client *api.Client, r Registration, logger log.Logger) (*Registrar, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	reg := &Registrar{
		id:           r.ID(),
		registration: r.agentRegistration(),
		agent:        client.Agent(),
		logger:       log.With(logger, "id", r.ID()),
		Every:        10 * time.Second,
	}
	err := wait.Retry(ctx, time.Second, reg.register, func(err error) {
		level.Warn(reg.logger).Log("msg", "not registered in consul yet; asking again in 1s", "err", err)
	})
	if err != nil {
		return nil, fmt.Errorf("register %s in consul: %w", reg.id, err)
	}
	return reg, nil
}

// ID is the Consul service ID of the registered instance.
func (r *Registrar) ID() string { return r.id }

// Run registers the instance again whenever the Consul agent no longer
// has it, checking every r.Every until ctx is done. Consul removes an
// instance whose check stays critical for a minute; one that was frozen
// or cut off for longer (a paused VM, SIGSTOP, a partition) and comes back
// would otherwise serve on, unseen by callers and Prometheus. An agent that
// cannot be reached is asked again at the next check. Stop Run before
// Deregister, or it puts the instance back.
func (r *Registrar) Run(ctx context.Context) error {
	wait.Every(ctx, r.Every, func() { r.registerIfGone(ctx) })
	return nil
}

// registerIfGone registers the instance again when the agent answers that
// it does not have it. The question ends with ctx, so stopping Run does not
// wait on an agent that does not answer.
func (r *Registrar) registerIfGone(ctx context.Context) {
	var status api.StatusError
	if _, _, err := r.agent.Service(r.id, (&api.QueryOptions{}).WithContext(ctx)); !errors.As(err, &status) || status.Code != http.StatusNotFound {
		return
	}
	if err := r.register(ctx); err != nil {
		level.Warn(r.logger).Log("msg", "registering again: consul no longer had this instance", "err", err)
		return
	}
	level.Info(r.logger).Log("msg", "registered again: consul had removed this instance")
}

// register asks the agent to take the registration, giving up when ctx
// is done: an agent that takes the request and never answers would
// otherwise hold it for the client's timeout (consulTimeout), past
// Register's deadline. It logs a success, as go-kit's Registrar did; its
// callers, a failure.
func (r *Registrar) register(ctx context.Context) error {
	if err := r.agent.ServiceRegisterOpts(r.registration, api.ServiceRegisterOpts{}.WithContext(ctx)); err != nil {
		return err
	}
	level.Info(r.logger).Log("action", "register", "service", r.registration.Name,
		"tags", fmt.Sprint(r.registration.Tags), "address", r.registration.Address)
	return nil
}

// Deregister removes the instance (and its check) from Consul, giving up
// after deregisterTimeout.
func (r *Registrar) Deregister() error {
	ctx, cancel := context.WithTimeout(context.Background(), deregisterTimeout)
	defer cancel()
	if err := r.agent.ServiceDeregisterOpts(r.id, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("deregister %s from consul: %w", r.id, err)
	}
	level.Info(r.logger).Log("action", "deregister")
	return nil
}
