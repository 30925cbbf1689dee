package discovery

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/shared/testkit"
)

func TestAgentRegistration(t *testing.T) {
	r := Registration{Service: "user", Host: "127.0.0.1", Port: 41234, Version: "1.2.3", Tags: []string{"metrics", "blue"}}
	got := r.agentRegistration()
	if got.ID != "user-127.0.0.1-41234" || got.Name != "user" || got.Address != "127.0.0.1" || got.Port != 41234 {
		t.Errorf("identity = %s %s %s:%d", got.ID, got.Name, got.Address, got.Port)
	}
	if want := []string{"metrics", "version=1.2.3", "blue"}; !slices.Equal(got.Tags, want) {
		t.Errorf("tags = %v, want %v (no duplicate metrics tag)", got.Tags, want)
	}
	if got.Meta["version"] != "1.2.3" {
		t.Errorf("meta = %v", got.Meta)
	}
	c := got.Check
	if c == nil || c.HTTP != "http://127.0.0.1:41234/health" || c.Interval != "2s" || c.Timeout != "1s" || c.DeregisterCriticalServiceAfter != "1m" {
		t.Errorf("check = %+v", c)
	}
	if v := (Registration{Service: "user", Host: "::1", Port: 1}).agentRegistration(); v.Check.HTTP != "http://[::1]:1/health" || !slices.Contains(v.Tags, "version=dev") {
		t.Errorf("IPv6/default version: check %s tags %v", v.Check.HTTP, v.Tags)
	}
	if _, ok := got.Meta[AdminPortMeta]; ok {
		t.Errorf("meta %v has an admin port the registration has not", got.Meta)
	}
}

// An instance with an admin listener is checked there, and says where it is
// for Prometheus; its public port stays the one callers are sent to.
func TestAgentRegistrationWithAdminPort(t *testing.T) {
	got := Registration{Service: "gateway", Host: "127.0.0.1", Port: 3000, AdminPort: 3100}.agentRegistration()
	if got.Port != 3000 || got.Meta[AdminPortMeta] != "3100" || got.Check.HTTP != "http://127.0.0.1:3100/health" {
		t.Errorf("port %d, meta %v, check %s", got.Port, got.Meta, got.Check.HTTP)
	}
}

func TestRegistrationValidation(t *testing.T) {
	for _, r := range []Registration{
		{Host: "127.0.0.1", Port: 1},
		{Service: "user", Port: 1},
		{Service: "user", Host: "127.0.0.1"},
		{Service: "user", Host: "127.0.0.1", Port: 70000},
		{Service: "user", Host: "127.0.0.1", Port: 1, AdminPort: 70000},
	} {
		if _, err := Register(t.Context(), nil, r, testLogger()); err == nil {
			t.Errorf("Register(%+v) accepted an invalid registration", r)
		}
	}
}

func TestRegisterFailsWhenConsulIsUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there any more

	client, err := NewConsulClient(addr)
	if err != nil {
		t.Fatalf("NewConsulClient: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	start := time.Now()
	reg, err := Register(ctx, client, Registration{Service: "user", Host: "127.0.0.1", Port: 4001}, testLogger())
	if err == nil {
		t.Fatalf("Register against %s succeeded (%v)", addr, reg)
	}
	if !strings.Contains(err.Error(), "user-127.0.0.1-4001") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("error %q should name the instance and the cause", err)
	}
	if d := time.Since(start); d > 2*time.Second+consulDialTimeout {
		t.Errorf("failing took %s, past its context's 2s", d)
	}
}

// TestRegisterWaitsForItsToken registers with a token Consul does not know
// yet, as a new deployment's instances do until consul-acl-init has made
// the tokens (deploy/k8s/overlays/local). Failing at the first 403, every
// instance exited, and Kubernetes' back-off between restarts grew past the
// minutes a rollout waits. The registration is taken once the token exists.
func TestRegisterWaitsForItsToken(t *testing.T) {
	consul := testkit.NewConsul(t)
	secret := uuid.NewString()
	client, err := NewConsulClientWithToken(consul.Addr(), secret)
	if err != nil {
		t.Fatal(err)
	}
	const service, made = "late", 1500 * time.Millisecond
	tokenErr := make(chan error, 1)
	time.AfterFunc(made, func() { _, err := consul.ServiceToken(context.Background(), service, secret); tokenErr <- err })
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	start := time.Now()
	reg, err := Register(ctx, client, Registration{Service: service, Host: "127.0.0.1", Port: 4002}, testLogger())
	if err != nil {
		t.Fatalf("Register with a token made %s later: %v", made, err)
	}
	t.Cleanup(func() { _ = reg.Deregister() })
	if err := <-tokenErr; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < made {
		t.Errorf("registered after %s, before its token existed (%s)", d, made)
	}
	if _, _, err := client.Agent().Service(reg.ID(), nil); err != nil {
		t.Errorf("the agent does not have %s: %v", reg.ID(), err)
	}
}

func TestNewConsulClientBoundsEveryCall(t *testing.T) {
	if consulTimeout <= consulWait+consulWait/16 {
		t.Fatalf("client timeout %s would cut idle blocking queries of %s", consulTimeout, consulWait)
	}
	if _, err := NewConsulClient("http://127.0.0.1:8500"); err != nil {
		t.Errorf("URL address: %v", err)
	}
	if _, err := NewConsulClient("ftp://127.0.0.1:8500"); err == nil {
		t.Error("unknown scheme accepted")
	}
}
