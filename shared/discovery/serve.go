package discovery

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/hashicorp/consul/api"

	"github.com/mercato-dev/mercato/shared/config"
	"github.com/mercato-dev/mercato/shared/httpkit"
)

// ListenAndServe is the tail of every service's main: it listens on
// cfg.HTTPAddr, registers the instance in Consul (through consul) with the
// listener's real port (-http-addr may ask for port 0), and serves handler
// until ctx is done. On shutdown it leaves Consul before draining, so no
// new calls are routed to an instance that is going away. The listener is
// closed on every error before serving.
func ListenAndServe(ctx context.Context, cfg config.Common, consul *api.Client, handler http.Handler, logger log.Logger) error {
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return err
	}
	host, port, err := cfg.Advertise(ln.Addr())
	if err != nil {
		ln.Close()
		return err
	}
	registrar, err := Register(consul, Registration{
		Service: cfg.Service, Host: host, Port: port, Version: cfg.Version}, logger)
	if err != nil {
		ln.Close()
		return err
	}

	// Serve until ctx is done; leave Consul before draining.
	return httpkit.Serve(ctx, httpkit.NewServer(handler), ln, logger, 15*time.Second, func() {
		if err := registrar.Deregister(); err != nil {
			level.Warn(logger).Log("msg", "deregister", "err", err)
		}
	})
}
