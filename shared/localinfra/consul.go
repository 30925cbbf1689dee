package localinfra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/google/uuid"
)

// ConsulOptions configures StartConsul.
type ConsulOptions struct {
	// Dir is the agent's working folder and holds its log; created when
	// missing. A dev agent keeps its catalog in memory.
	Dir string
	// HTTPPort serves the HTTP API and UI on 127.0.0.1; 0 picks a free one.
	HTTPPort int
	// Binary is the consul executable; default FindConsul(RepoRoot()).
	Binary string
	// LogFile receives the agent's output; default Dir/consul.log.
	LogFile string
	// ManagementToken is the ACL bootstrap (initial management) token, a
	// UUID; "" picks a random one. ACLs are always on with default policy
	// deny: a client without a token can read nothing and register nothing.
	ManagementToken string
}

// Consul is a single-node Consul dev agent (server + client, in memory).
type Consul struct {
	opts     ConsulOptions
	httpPort int
	proc     *Process
	// serfLAN, serfWAN, server are the other ports, kept for Start.
	serfLAN, serfWAN, server int

	tokens consulTokens
}

// StartConsul starts `consul agent -dev` on 127.0.0.1 and waits until it has
// elected itself leader, i.e. until the catalog accepts registrations. Its
// gossip and RPC ports are free ports rather than the defaults and DNS and
// gRPC are off, so several agents (one per test binary) can run side by side.
// ctx bounds the start-up only. Needs Consul 1.14 or later.
func StartConsul(ctx context.Context, o ConsulOptions) (*Consul, error) {
	err := serverFolder("consul", "ConsulOptions", &o.Dir, &o.LogFile)
	if err != nil {
		return nil, err
	}
	dir := o.Dir
	if o.Binary == "" {
		root, _ := RepoRoot() // outside the repo, PATH or MERCATO_CONSUL_BIN still work
		if o.Binary, err = FindConsul(root); err != nil {
			return nil, err
		}
	} else if !isExecutable(o.Binary) {
		return nil, fmt.Errorf("localinfra: consul %s %w; run `make deps` (scripts/build-consul.sh) to build the pinned Consul v1.14.11 into bin/consul", o.Binary, ErrNotFound)
	}
	if o.ManagementToken == "" {
		o.ManagementToken = uuid.NewString()
	}
	// The token in a file only we may read, not on the command line (ps).
	if err := writeConfig("consul", dir, consulACLFileName, consulACLConfig(o.ManagementToken)); err != nil {
		return nil, err
	}
	// HTTP, serf LAN, serf WAN, server RPC.
	var c *Consul
	err = onFreePorts(4, func(ports []int) (*Process, error) {
		if o.HTTPPort != 0 {
			ports[0] = o.HTTPPort
		}
		c = &Consul{opts: o, httpPort: ports[0]}
		err := c.start(ctx, ports[1], ports[2], ports[3])
		return c.proc, err
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Consul) start(ctx context.Context, serfLAN, serfWAN, server int) error {
	c.serfLAN, c.serfWAN, c.server = serfLAN, serfWAN, server
	//nolint:gosec // G204: the Consul binary localinfra found, with arguments built here
	cmd := exec.Command(c.opts.Binary, "agent", "-dev",
		"-client", "127.0.0.1",
		"-bind", "127.0.0.1",
		"-http-port", strconv.Itoa(c.httpPort),
		"-serf-lan-port", strconv.Itoa(serfLAN),
		"-serf-wan-port", strconv.Itoa(serfWAN),
		"-server-port", strconv.Itoa(server),
		"-dns-port", "-1",
		"-grpc-port", "-1",
		"-grpc-tls-port", "-1",
		"-log-level", "info", // dev mode defaults to debug, which floods the log
		"-hcl", "disable_update_check = true", // no calls home from tests
		"-config-file", filepath.Join(c.opts.Dir, consulACLFileName),
	)
	cmd.Dir = c.opts.Dir
	proc, err := startProcess("consul", c.opts.LogFile, cmd, nil)
	if err != nil {
		return err
	}
	c.proc = proc
	client := &http.Client{Timeout: time.Second}
	return proc.waitReady(ctx, func(ctx context.Context) error {
		if err := c.checkLeader(ctx, client); err != nil {
			return err
		}
		// The management token is usable once the leader has set ACLs up.
		return c.get(ctx, client, "/v1/acl/token/self", c.opts.ManagementToken, nil)
	})
}

// consulACLFileName is the agent's ACL configuration in ConsulOptions.Dir.
const consulACLFileName = "acl.hcl"

// consulACLConfig turns ACLs on, denying whatever no token allows. The agent
// acts (registers its node, updates its checks) with the management token:
// a single-node agent of a local run or a test.
func consulACLConfig(management string) string {
	return fmt.Sprintf(`acl {
  enabled        = true
  default_policy = "deny"
  down_policy    = "extend-cache"
  tokens {
    initial_management = %q
    agent              = %q
  }
}
`, management, management)
}

// checkLeader succeeds once /v1/status/leader names a leader.
func (c *Consul) checkLeader(ctx context.Context, client *http.Client) error {
	var leader string
	if err := c.get(ctx, client, "/v1/status/leader", "", &leader); err != nil {
		return err
	}
	if leader == "" {
		return errors.New("no leader elected yet")
	}
	return nil
}

// get GETs path with token and decodes the JSON answer into v (nil: not
// read); any status but 200 is an error.
func (c *Consul) get(ctx context.Context, client *http.Client, path, token string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.Addr()+path, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("X-Consul-Token", token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	if v == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// ManagementToken is the agent's bootstrap token: it may do anything.
func (c *Consul) ManagementToken() string { return c.opts.ManagementToken }

// Addr is the HTTP API's host:port (what consul/api's Config.Address wants).
func (c *Consul) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.httpPort))
}

// Start starts the agent again after Stop, on the same ports, waits until
// it is leader, and makes again the ACL tokens ServiceToken and ReadToken
// made before, with the same secrets: a dev agent keeps its catalogue in
// memory, so what a persistent agent would have kept is put back, and the
// services, still holding their tokens, register again by themselves.
func (c *Consul) Start(ctx context.Context) error {
	if c.proc != nil && !c.proc.Exited() {
		return fmt.Errorf("localinfra: consul on %s is already running", c.Addr())
	}
	if err := c.start(ctx, c.serfLAN, c.serfWAN, c.server); err != nil {
		return err
	}
	return c.remakeTokens(ctx)
}

// Process is the agent's process of its current (or last) run.
func (c *Consul) Process() *Process { return c.proc }

// Stop makes the agent leave and exit (SIGINT) and waits for it.
func (c *Consul) Stop() error {
	// Consul reports a graceful exit after an interrupt with status 1.
	return c.proc.stop(syscall.SIGINT, 1)
}
