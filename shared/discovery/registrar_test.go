package discovery

import (
	"net"
	"slices"
	"strings"
	"testing"
	"time"
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
		if _, err := Register(nil, r, testLogger()); err == nil {
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
	start := time.Now()
	reg, err := Register(client, Registration{Service: "user", Host: "127.0.0.1", Port: 4001}, testLogger())
	if err == nil {
		t.Fatalf("Register against %s succeeded (%v)", addr, reg)
	}
	if !strings.Contains(err.Error(), "user-127.0.0.1-4001") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("error %q should name the instance and the cause", err)
	}
	if d := time.Since(start); d > consulDialTimeout {
		t.Errorf("failing took %s", d)
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
