package discovery

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/mercato-dev/mercato/shared/httpkit"
)

// LeavePath is where an instance takes POST requests to leave Consul ahead
// of its shutdown: the route of a Kubernetes preStop hook (app's -leave),
// served beside /ready.
const LeavePath = "/leave"

// leaver takes an instance out of Consul on POST /leave or at shutdown,
// whichever comes first. After it, /ready answers 503, so a Kubernetes
// Service stops sending new requests too, while the instance still serves
// those in flight and any a caller's stale list still sends.
type leaver struct {
	mu     sync.Mutex
	gone   bool // deregistered
	leave  func() error
	left   atomic.Bool
	logger log.Logger
}

// Leave deregisters the instance unless it already has. A deregistration
// that failed (the agent unreachable, or answering an error) is tried again
// at the next call, so the shutdown makes up for a preStop's that failed.
func (l *leaver) Leave() error {
	_, err := l.leaveNow()
	return err
}

// leaveNow is Leave, also reporting whether this call is the one that took
// the instance out of Consul.
func (l *leaver) leaveNow() (now bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.left.Store(true)
	if l.gone {
		return false, nil
	}
	if err := l.leave(); err != nil {
		level.Warn(l.logger).Log("msg", "deregister", "err", err)
		return false, err
	}
	l.gone = true
	return true, nil
}

// drainDelay is how long an instance that leaves Consul only at its
// shutdown (no preStop's POST /leave before the SIGTERM: docker compose,
// make run, systemd) goes on serving before it drains: callers learn that
// it left through their Consul watches a moment later, and until then
// send it calls, on keep-alive connections too. Draining closes those;
// a POST written on one just then fails unanswered (EOF), and is not
// retried elsewhere, since nothing tells the caller it was not applied.
// A preStop's leave has waited longer already (app's -leave).
const drainDelay = time.Second

// leaveBeforeDrain leaves Consul at shutdown and, when that is what took
// the instance out, waits drainDelay for its callers to notice.
func (l *leaver) leaveBeforeDrain() {
	if now, _ := l.leaveNow(); now {
		level.Info(l.logger).Log("msg", "left consul; draining after callers notice", "delay", drainDelay)
		time.Sleep(drainDelay)
	}
}

// wrap serves POST /leave, from loopback only (the hook runs in the
// instance's own network namespace), and /ready as not ready once the
// instance has left; every other request goes to next.
func (l *leaver) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == LeavePath:
			l.serveLeave(w, r)
		case r.URL.Path == "/ready" && l.left.Load():
			httpkit.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{
				"ready": false, "checks": map[string]string{"consul": "left: shutting down"}})
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func (l *leaver) serveLeave(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		httpkit.WriteError(w, httpkit.NewError(http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this route"))
		return
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		httpkit.WriteError(w, httpkit.NewError(http.StatusForbidden, "forbidden", "leave is only taken from the instance's own host"))
		return
	}
	level.Info(l.logger).Log("msg", "leaving consul ahead of shutdown")
	if err := l.Leave(); err != nil {
		// -leave fails, rather than report an instance still in Consul as
		// gone; the shutdown tries again.
		httpkit.WriteError(w, httpkit.Unavailable("could not leave consul: "+err.Error()))
		return
	}
	httpkit.WriteJSON(w, http.StatusOK, map[string]string{"status": "left"})
}
