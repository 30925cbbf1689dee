// Package config declares the settings every Mercato process shares. Each is
// a flag with an environment fallback: -http-addr or MERCATO_HTTP_ADDR.
package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/peterbourgon/ff/v3"

	"github.com/mercato-dev/mercato/shared/logging"
)

// EnvPrefix prefixes the environment variable of every flag.
const EnvPrefix = "MERCATO"

// BuildVersion is the -version default: "dev", or the version a release
// build stamps with -ldflags "-X github.com/mercato-dev/mercato/shared/config.BuildVersion=v1.2.3"
// (the Dockerfile does).
var BuildVersion = "dev"

// Common holds the settings of every service instance.
type Common struct {
	Service       string
	HTTPAddr      string // where to listen; port 0 picks a free one, which is what gets registered
	AdvertiseHost string // host registered in Consul; defaults to the listen host (for 0.0.0.0, the host's own address)
	ConsulAddr    string
	ConsulToken   string // ACL token the instance registers and reads the catalogue with (secret)
	DatabaseURL   string // with the service role's password (secret)
	RedisAddr     string
	RedisUsername string // the service's Redis ACL user ("" with RedisPassword: "default")
	RedisPassword string // (secret)
	RedisTLS      bool   // TLS to Redis (ElastiCache in-transit encryption)
	RedisCAFile   string // PEM roots to verify Redis's certificate with; "" : the system's
	JWTSecret     string // (secret)
	LogLevel      string
	Version       string

	OTLPEndpoint     string  // OTLP/HTTP collector traces are exported to; "" exports none
	TraceSampleRatio float64 // share of new traces recorded (tracing.Config)

	PprofAddr string // where Go's runtime profiles are served; "" : nowhere
}

// Register declares the common flags on fs, with defaultAddr as the listen
// address (the seed's port for the service).
func (c *Common) Register(fs *flag.FlagSet, service, defaultAddr string) {
	c.Service = service
	fs.StringVar(&c.HTTPAddr, "http-addr", defaultAddr, "address to listen on (port 0: any free port)")
	fs.StringVar(&c.AdvertiseHost, "advertise-host", "", "host other services reach this instance on (default: the listen host; for 0.0.0.0, this host's first non-loopback IPv4 address, a container's own)")
	fs.StringVar(&c.ConsulAddr, "consul-addr", "127.0.0.1:8500", "Consul agent HTTP address")
	SecretVar(fs, &c.ConsulToken, "consul-token", "Consul ACL token of this service (default: CONSUL_HTTP_TOKEN, else none)")
	SecretVar(fs, &c.DatabaseURL, "database-url", "PostgreSQL URL of this service's database, with its role's password")
	fs.StringVar(&c.RedisAddr, "redis-addr", "127.0.0.1:6379", "Redis address (events, cache, rate limits)")
	fs.StringVar(&c.RedisUsername, "redis-username", service, "Redis ACL user of this service")
	SecretVar(fs, &c.RedisPassword, "redis-password", "password of the Redis ACL user (none: no AUTH)")
	fs.BoolVar(&c.RedisTLS, "redis-tls", false, "connect to Redis over TLS (1.2 or later), verifying its certificate and host name")
	fs.StringVar(&c.RedisCAFile, "redis-ca-file", "", "PEM file of the CA certificates Redis's certificate is verified with, with -redis-tls (default: the system's)")
	SecretVar(fs, &c.JWTSecret, "jwt-secret", "HS256 key for access tokens, at least 32 bytes, the same on every service")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.Version, "version", BuildVersion, "version reported in Consul tags and logs")
	fs.StringVar(&c.OTLPEndpoint, "otlp-endpoint", "", "OTLP/HTTP collector to export traces to, host:port or URL, e.g. http://127.0.0.1:4318 (empty: none)")
	fs.Float64Var(&c.TraceSampleRatio, "trace-sample-ratio", 1, "share of new traces recorded, 0 to 1; a request or event that comes with a trace follows its caller's decision")
	fs.StringVar(&c.PprofAddr, "pprof-addr", "", "address serving Go's runtime profiles (/debug/pprof/) on a listener of their own, e.g. 127.0.0.1:6060, for the benchmarks' profiles; empty: none")
}

// Parse parses args into fs, then the MERCATO_* environment for flags not
// given on the command line, then reads the secrets given as files
// (SecretVar). A secret flag on this process's own command line (os.Args)
// is an error; in args alone, as a test running a main in-process passes
// them, it is taken.
func Parse(fs *flag.FlagSet, args []string) error {
	return parse(fs, args, os.Args[1:])
}

func parse(fs *flag.FlagSet, args, cmdline []string) error {
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix(EnvPrefix)); err != nil {
		return err
	}
	return resolveSecrets(fs, cmdline)
}

// Validate reports missing settings, naming the flag and its variable.
func (c *Common) Validate(needDB bool) error {
	var errs []error
	if needDB && c.DatabaseURL == "" {
		errs = append(errs, errors.New("-database-url (MERCATO_DATABASE_URL) is required"))
	}
	if !(c.TraceSampleRatio >= 0 && c.TraceSampleRatio <= 1) { // NaN too
		errs = append(errs, errors.New("-trace-sample-ratio (MERCATO_TRACE_SAMPLE_RATIO) must be between 0 and 1"))
	}
	if !logging.KnownLevel(c.LogLevel) {
		errs = append(errs, errors.New("-log-level (MERCATO_LOG_LEVEL) must be debug, info, warn or error"))
	}
	if c.RedisCAFile != "" && !c.RedisTLS {
		errs = append(errs, errors.New("-redis-ca-file (MERCATO_REDIS_CA_FILE) needs -redis-tls (MERCATO_REDIS_TLS)"))
	}
	if len(c.JWTSecret) < 32 {
		errs = append(errs, errors.New("-jwt-secret (MERCATO_JWT_SECRET) must be at least 32 bytes"))
	}
	return errors.Join(errs...)
}

// RedisTLSConfig is the TLS configuration of the Redis client: nil without
// -redis-tls; with it, TLS 1.2 or later, verified against -redis-ca-file's
// certificates or the system's.
func (c *Common) RedisTLSConfig() (*tls.Config, error) {
	if !c.RedisTLS {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.RedisCAFile != "" {
		pem, err := os.ReadFile(c.RedisCAFile)
		if err != nil {
			return nil, fmt.Errorf("-redis-ca-file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-redis-ca-file %s: no PEM certificate in it", c.RedisCAFile)
		}
	}
	return cfg, nil
}

// Advertise returns the host and port to register for a listener bound to
// addr (the listener's real address, so port 0 works).
func (c *Common) Advertise(addr net.Addr) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return "", 0, fmt.Errorf("config: listener port %q: %w", portStr, err)
	}
	if c.AdvertiseHost != "" {
		return c.AdvertiseHost, port, nil
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = ownAddress()
	}
	return host, port, nil
}

// interfaceAddrs lists this host's addresses (a variable for tests).
var interfaceAddrs = net.InterfaceAddrs

// ownAddress is the address to advertise for a listener on every
// interface: the host's first non-loopback IPv4 address, which in a
// container (compose, Kubernetes) is the one its peers reach it on; else
// 127.0.0.1.
func ownAddress() string {
	addrs, err := interfaceAddrs()
	if err != nil {
		return "127.0.0.1"
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP.String()
		}
	}
	return "127.0.0.1"
}
