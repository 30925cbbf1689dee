package gateway

import (
	"errors"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/mercato-dev/mercato/shared/discovery"
)

// Long-lived streams (Server-Sent Events: GET /api/v1/orders/{id}/events)
// go through the same authentication, rate limit, retries before the
// headers and breakers as every request, but:
//   - through a client with no overall timeout (Config.Client's bounds an
//     answer's body, and would cut the stream): the transport's
//     ResponseHeaderTimeout still bounds the wait for the headers;
//   - with the server's write deadline lifted for that request;
//   - flushed event by event: httputil.ReverseProxy flushes a
//     text/event-stream answer at once by itself;
//   - with the client's Last-Event-ID header passed on as the
//     last_event_id parameter, in place of one the query holds: the order
//     service, too, takes the header before the parameter, and a browser
//     reconnecting an EventSource whose URL has one sends the header with
//     the id it got to (the gateway forwards only the headers every route
//     needs).
// The stream ends when the client goes, the instance ends it (its idle
// timeout, its shutdown) or the gateway's shutdown begins (CloseStreams).

// errStreamsClosed is the cause of a stream's end at CloseStreams: one that
// had no answer yet is 503, to be retried elsewhere (upstreamError), where
// a client that went away is 499.
var errStreamsClosed = errors.New("the gateway is shutting down")

// isStream reports whether r is one of rt's stream requests.
func (rt Route) isStream(r *http.Request) bool { return matches(rt.Streams, r) }

// newStreamProxies returns a proxy per upstream that has stream routes,
// forwarding through a copy of client without its overall timeout.
func (g *Gateway) newStreamProxies(routes []Route, cfg Config, upstream discovery.Options) map[string]*httputil.ReverseProxy {
	streaming := http.Client{}
	if cfg.Client != nil {
		streaming = *cfg.Client
	}
	streaming.Timeout = 0
	factory := newForwardFactory(&streaming)
	proxies := map[string]*httputil.ReverseProxy{}
	for _, rt := range routes {
		if len(rt.Streams) > 0 && proxies[rt.Upstream] == nil {
			forward := discovery.NewEndpoint(cfg.Instancer(rt.Upstream), rt.Upstream, factory, g.logger, upstream)
			proxies[rt.Upstream] = g.newProxy(rt.Upstream, forward)
		}
	}
	return proxies
}

// prepareStream lifts w's write deadline and carries Last-Event-ID into
// the query: the rest of the query as sent (see newProxy), without any
// last_event_id of its own, and the header's appended.
func prepareStream(w http.ResponseWriter, r *http.Request) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		return
	}
	var pairs []string
	for pair := range strings.SplitSeq(r.URL.RawQuery, "&") {
		if key, _, _ := strings.Cut(pair, "="); pair != "" && key != "last_event_id" {
			pairs = append(pairs, pair)
		}
	}
	r.URL.RawQuery = strings.Join(append(pairs, "last_event_id="+url.QueryEscape(last)), "&")
}
