package config

import (
	"flag"
	"math"
	"net"
	"strings"
	"testing"
)

func TestParseFlagsAndEnvironment(t *testing.T) {
	t.Setenv("MERCATO_DATABASE_URL", "postgres://from-env")
	t.Setenv("MERCATO_HTTP_ADDR", "127.0.0.1:9999")
	var c Common
	fs := flag.NewFlagSet("svc", flag.ContinueOnError)
	c.Register(fs, "svc", "127.0.0.1:3001")
	// A flag given on the command line wins over the environment.
	if err := Parse(fs, []string{"-http-addr", "127.0.0.1:0", "-jwt-secret", strings.Repeat("k", 32)}); err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:0" || c.DatabaseURL != "postgres://from-env" || c.Service != "svc" {
		t.Fatalf("parsed %+v", c)
	}
	if err := c.Validate(true); err != nil {
		t.Fatal(err)
	}
}

func TestValidateNamesTheSetting(t *testing.T) {
	c := Common{JWTSecret: "short"}
	err := c.Validate(true)
	if err == nil || !strings.Contains(err.Error(), "MERCATO_DATABASE_URL") || !strings.Contains(err.Error(), "MERCATO_JWT_SECRET") {
		t.Fatalf("Validate = %v", err)
	}
	if err := (&Common{JWTSecret: strings.Repeat("k", 32)}).Validate(false); err != nil {
		t.Fatalf("gateway config without a database refused: %v", err)
	}
	if err := (&Common{JWTSecret: strings.Repeat("k", 32), TraceSampleRatio: 1.5}).Validate(false); err == nil || !strings.Contains(err.Error(), "MERCATO_TRACE_SAMPLE_RATIO") {
		t.Fatalf("a sample ratio of 1.5: %v", err)
	}
	if err := (&Common{JWTSecret: strings.Repeat("k", 32), RedisCAFile: "ca.pem"}).Validate(false); err == nil || !strings.Contains(err.Error(), "MERCATO_REDIS_TLS") {
		t.Fatalf("a Redis CA file without TLS: %v", err)
	}
}

// Tracing is off unless an endpoint is given, and records every new trace
// when it is on.
func TestTracingDefaults(t *testing.T) {
	var c Common
	fs := flag.NewFlagSet("svc", flag.ContinueOnError)
	c.Register(fs, "svc", "127.0.0.1:3001")
	t.Setenv("MERCATO_OTLP_ENDPOINT", "http://jaeger:4318")
	if err := Parse(fs, nil); err != nil {
		t.Fatal(err)
	}
	if c.OTLPEndpoint != "http://jaeger:4318" || c.TraceSampleRatio != 1 {
		t.Errorf("endpoint %q, ratio %v", c.OTLPEndpoint, c.TraceSampleRatio)
	}
}

func TestAdvertise(t *testing.T) {
	tests := []struct {
		listen, advertise, wantHost string
		wantPort                    int
	}{
		{"127.0.0.1:4001", "", "127.0.0.1", 4001},
		{"0.0.0.0:4002", "", "172.18.0.5", 4002},
		{"[::]:4003", "", "172.18.0.5", 4003},
		{"0.0.0.0:4004", "user-1.internal", "user-1.internal", 4004},
	}
	// A container's interfaces: loopback, link-local IPv6, then its own.
	interfaceAddrs = func() ([]net.Addr, error) {
		return []net.Addr{
			&net.IPNet{IP: net.ParseIP("127.0.0.1"), Mask: net.CIDRMask(8, 32)},
			&net.IPNet{IP: net.ParseIP("fe80::1"), Mask: net.CIDRMask(64, 128)},
			&net.IPNet{IP: net.ParseIP("172.18.0.5"), Mask: net.CIDRMask(16, 32)},
		}, nil
	}
	t.Cleanup(func() { interfaceAddrs = net.InterfaceAddrs })
	for _, tc := range tests {
		addr, _ := net.ResolveTCPAddr("tcp", tc.listen)
		c := Common{AdvertiseHost: tc.advertise}
		host, port, err := c.Advertise(addr)
		if err != nil || host != tc.wantHost || port != tc.wantPort {
			t.Errorf("Advertise(%s, %q) = %s:%d, %v", tc.listen, tc.advertise, host, port, err)
		}
	}
	// With loopback only, 0.0.0.0 advertises 127.0.0.1.
	interfaceAddrs = func() ([]net.Addr, error) {
		return []net.Addr{&net.IPNet{IP: net.ParseIP("127.0.0.1"), Mask: net.CIDRMask(8, 32)}}, nil
	}
	addr, _ := net.ResolveTCPAddr("tcp", "0.0.0.0:4005")
	if host, _, _ := (&Common{}).Advertise(addr); host != "127.0.0.1" {
		t.Errorf("Advertise(0.0.0.0) on a loopback-only host = %s, want 127.0.0.1", host)
	}
}

// A log level the logger does not know is refused, not taken for info: an
// operator who set MERCATO_LOG_LEVEL=warning (or DEBUG) would otherwise
// get info lines and no word of why.
func TestValidateRefusesAnUnknownLogLevel(t *testing.T) {
	for _, lvl := range []string{"warning", "DEBUG", "Error", "trace", "inf"} {
		c := Common{JWTSecret: strings.Repeat("k", 32), LogLevel: lvl}
		if err := c.Validate(false); err == nil || !strings.Contains(err.Error(), "MERCATO_LOG_LEVEL") {
			t.Errorf("-log-level %q: Validate = %v, want an error naming MERCATO_LOG_LEVEL", lvl, err)
		}
	}
	// Nor is a sample ratio of NaN (ParseFloat reads "NaN"), which no
	// comparison with 0 and 1 catches.
	if err := (&Common{JWTSecret: strings.Repeat("k", 32), TraceSampleRatio: math.NaN()}).Validate(false); err == nil || !strings.Contains(err.Error(), "MERCATO_TRACE_SAMPLE_RATIO") {
		t.Errorf("a sample ratio of NaN: Validate = %v", err)
	}
	for _, lvl := range []string{"", "debug", "info", "warn", "error"} {
		c := Common{JWTSecret: strings.Repeat("k", 32), LogLevel: lvl}
		if err := c.Validate(false); err != nil {
			t.Errorf("-log-level %q refused: %v", lvl, err)
		}
	}
}
