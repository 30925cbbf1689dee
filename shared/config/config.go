// Package config declares the settings every Mercato process shares. Each is
// a flag with an environment fallback: -http-addr or MERCATO_HTTP_ADDR.
package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"strconv"

	"github.com/peterbourgon/ff/v3"
)

// EnvPrefix prefixes the environment variable of every flag.
const EnvPrefix = "MERCATO"

// Common holds the settings of every service instance.
type Common struct {
	Service       string
	HTTPAddr      string // where to listen; port 0 picks a free one, which is what gets registered
	AdvertiseHost string // host registered in Consul; defaults to the listen host (127.0.0.1 for 0.0.0.0)
	ConsulAddr    string
	DatabaseURL   string
	RedisAddr     string
	JWTSecret     string
	LogLevel      string
	Version       string
}

// Register declares the common flags on fs, with defaultAddr as the listen
// address (the seed's port for the service).
func (c *Common) Register(fs *flag.FlagSet, service, defaultAddr string) {
	c.Service = service
	fs.StringVar(&c.HTTPAddr, "http-addr", defaultAddr, "address to listen on (port 0: any free port)")
	fs.StringVar(&c.AdvertiseHost, "advertise-host", "", "host other services reach this instance on (default: the listen host)")
	fs.StringVar(&c.ConsulAddr, "consul-addr", "127.0.0.1:8500", "Consul agent HTTP address")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "PostgreSQL URL of this service's database")
	fs.StringVar(&c.RedisAddr, "redis-addr", "127.0.0.1:6379", "Redis address (events, cache, rate limits)")
	fs.StringVar(&c.JWTSecret, "jwt-secret", "", "HS256 key for access tokens, at least 32 bytes, the same on every service")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.Version, "version", "dev", "version reported in Consul tags and logs")
}

// Parse parses args into fs, then the MERCATO_* environment for flags not
// given on the command line.
func Parse(fs *flag.FlagSet, args []string) error {
	return ff.Parse(fs, args, ff.WithEnvVarPrefix(EnvPrefix))
}

// Validate reports missing settings, naming the flag and its variable.
func (c *Common) Validate(needDB bool) error {
	var errs []error
	if needDB && c.DatabaseURL == "" {
		errs = append(errs, errors.New("-database-url (MERCATO_DATABASE_URL) is required"))
	}
	if len(c.JWTSecret) < 32 {
		errs = append(errs, errors.New("-jwt-secret (MERCATO_JWT_SECRET) must be at least 32 bytes"))
	}
	return errors.Join(errs...)
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
		host = "127.0.0.1"
	}
	return host, port, nil
}
