package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/go-kit/log"
	"github.com/hashicorp/consul/api"

	"github.com/mercato-dev/mercato/shared/config"
	"github.com/mercato-dev/mercato/shared/httpkit"
)

// shutdownTimeout bounds the draining of in-flight requests on shutdown.
const shutdownTimeout = 15 * time.Second

// MaxShutdown is the longest an instance's shutdown takes from SIGTERM to
// the end of its drain: leaving Consul (deregisterTimeout, an agent that
// does not answer), drainDelay, then draining (shutdownTimeout). Whatever
// sends the SIGTERM must wait longer than this before a SIGKILL, or the
// requests still draining are cut off unanswered (mercato-local, compose's
// stop_grace_period; Kubernetes' grace period also covers the preStop).
const MaxShutdown = deregisterTimeout + drainDelay + shutdownTimeout

// Admin is an instance's admin listener: Handler (httpkit.AdminRouter)
// served on Addr, apart from the public port.
type Admin struct {
	Addr    string // where to listen; port 0 picks a free one, which is what gets registered
	Handler http.Handler
}

// reachableAt refuses an admin listener on loopback for an instance
// registered at an address that is not: Consul checks, and Prometheus
// scrapes, the admin port at the registered host, where nothing would
// answer. A host name is taken at its word.
func reachableAt(admin net.Addr, host string) error {
	tcp, ok := admin.(*net.TCPAddr)
	if ip := net.ParseIP(host); !ok || !tcp.IP.IsLoopback() || ip == nil || ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("-admin-addr %s listens on loopback only, but the instance is registered at %s, where Consul checks it and Prometheus scrapes it: listen on %s or on every interface (0.0.0.0)",
		admin, host, host)
}

// ListenAndServe is the tail of every service's main: it listens on
// cfg.HTTPAddr, registers the instance in Consul (through consul) with the
// listener's real port (-http-addr may ask for port 0), and serves handler
// until ctx is done. On shutdown it leaves Consul before draining, and
// serves on for drainDelay while callers notice, so no new calls are
// routed to an instance that is going away; a POST /leave
// from the instance's own host (a Kubernetes preStop hook) makes it leave
// earlier, and /ready answer 503 from then on (leaver). The listener is
// closed on every error before serving.
func ListenAndServe(ctx context.Context, cfg config.Common, consul *api.Client, handler http.Handler, logger log.Logger) error {
	return ListenAndServeWithAdmin(ctx, cfg, consul, handler, nil, logger)
}

// ListenAndServeWithAdmin is ListenAndServe that also serves admin, when not
// nil, on a listener of its own, registered as the instance's
// Registration.AdminPort (Consul checks it, Prometheus scrapes it). The
// admin listener keeps serving until the public one has drained, so Consul
// and Prometheus see the instance until it has left.
func ListenAndServeWithAdmin(ctx context.Context, cfg config.Common, consul *api.Client, handler http.Handler, admin *Admin, logger log.Logger) error {
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return err
	}
	host, port, err := cfg.Advertise(ln.Addr())
	if err != nil {
		ln.Close()
		return err
	}
	reg := Registration{Service: cfg.Service, Host: host, Port: port, Version: cfg.Version}
	var adminLn net.Listener
	if admin != nil {
		if adminLn, err = net.Listen("tcp", admin.Addr); err != nil {
			ln.Close()
			return err
		}
		if _, reg.AdminPort, err = cfg.Advertise(adminLn.Addr()); err == nil {
			err = reachableAt(adminLn.Addr(), host)
		}
		if err != nil {
			ln.Close()
			adminLn.Close()
			return err
		}
	}
	registerCtx, cancel := context.WithTimeout(ctx, registerTimeout)
	registrar, err := Register(registerCtx, consul, reg, logger)
	cancel()
	if err != nil {
		ln.Close()
		if adminLn != nil {
			adminLn.Close()
		}
		return err
	}

	// Back in Consul if Consul drops it while it runs (Registrar.Run);
	// stopped before it leaves, so it stays gone.
	keepCtx, stopKeeping := context.WithCancel(ctx)
	defer stopKeeping()
	kept := make(chan struct{})
	go func() { _ = registrar.Run(keepCtx); close(kept) }()

	// The Consul check and /ready are on the admin listener when there is
	// one, so POST /leave is too.
	leaving := &leaver{logger: logger, leave: func() error {
		stopKeeping()
		<-kept
		return registrar.Deregister()
	}}
	var adminHandler http.Handler
	if admin != nil {
		adminHandler = leaving.wrap(admin.Handler)
	} else {
		handler = leaving.wrap(handler)
	}

	adminDone := make(chan error, 1)
	adminCtx, stopAdmin := context.WithCancel(context.WithoutCancel(ctx))
	if adminLn != nil {
		go func() {
			adminDone <- httpkit.Serve(adminCtx, httpkit.NewServer(adminHandler), adminLn, log.With(logger, "listener", "admin"), shutdownTimeout, nil)
		}()
	} else {
		adminDone <- nil
	}

	// Serve until ctx is done; leave Consul, and let callers notice,
	// before draining.
	err = httpkit.Serve(ctx, httpkit.NewServer(handler), ln, logger, shutdownTimeout, leaving.leaveBeforeDrain)
	stopAdmin()
	return errors.Join(err, <-adminDone)
}
