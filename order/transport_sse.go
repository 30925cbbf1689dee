package order

// GET /orders/{id}/events: the order's status as Server-Sent Events.
//
// go-kit has no streaming endpoint (an endpoint returns one response), so
// the stream is a plain http.Handler beside the go-kit routes. It still
// authenticates with the same endpoint middlewares as every route, and
// answers errors with the same table (errorMappings); the Watcher (watch.go)
// does the rest, free of HTTP.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/log"
	"github.com/gorilla/mux"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/defaults"
	"github.com/mercato-dev/mercato/shared/httpkit"
)

// StreamOptions tune the event stream's transport.
type StreamOptions struct {
	Heartbeat time.Duration // a ": ping" comment this often; default 15s
}

// retryMillis is the reconnection delay the stream asks EventSource for.
const retryMillis = 2000

type watchRequest struct {
	ID    string
	After int64 // -1: the current state first
}

// MakeEventsHandler adds GET /api/v1/orders/{id}/events, served by w, to r.
func MakeEventsHandler(r *mux.Router, w *Watcher, tokens *auth.Tokens, logger log.Logger, opts StreamOptions) {
	heartbeat := defaults.Positive(opts.Heartbeat, 15*time.Second)
	watch := endpoint.Chain(auth.Authenticate(tokens), auth.RequireRole(auth.RoleCustomer, auth.RoleAdmin))(
		func(ctx context.Context, request any) (any, error) {
			req := request.(watchRequest)
			id, _ := auth.FromContext(ctx)
			events, err := w.Watch(ctx, caller(id), req.ID, req.After)
			if err != nil {
				return nil, err
			}
			at, _ := auth.AccessTokenFromContext(ctx)
			return watchResponse{events: events, token: at}, nil
		})
	encodeError := httpkit.ErrorEncoder(logger, errorMappings...)
	r.Methods(http.MethodGet).Path(httpkit.APIPrefix + "/orders/{id}/events").HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		// Cancelled when the handler returns, however it does: the
		// Watcher's goroutine for the stream ends with it.
		ctx, cancel := context.WithCancel(auth.HTTPToContext(req.Context(), req))
		defer cancel()
		wr, err := decodeWatchRequest(req)
		if err != nil {
			encodeError(ctx, err, rw)
			return
		}
		resp, err := watch(ctx, wr)
		if err != nil {
			encodeError(ctx, err, rw)
			return
		}
		stream := resp.(watchResponse)
		revoked := func() bool { return tokens.Revoked(ctx, stream.token) != nil }
		serveEvents(rw, stream, heartbeat, revoked)
	})
}

// watchResponse is a stream the Watcher serves, and the access token that
// opened it: the stream lasts no longer than the token's right to it.
type watchResponse struct {
	events <-chan StatusEvent
	token  auth.AccessToken
}

// decodeWatchRequest reads the id and the Last-Event-ID header (or the
// last_event_id parameter, for clients that cannot set headers).
func decodeWatchRequest(r *http.Request) (watchRequest, error) {
	if err := httpkit.CheckRequest(r); err != nil {
		return watchRequest{}, err
	}
	req := watchRequest{ID: mux.Vars(r)["id"], After: -1}
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("last_event_id")
	}
	if last != "" {
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return watchRequest{}, httpkit.BadRequest("invalid_last_event_id", "Last-Event-ID must be an event id from this stream (a non-negative integer)")
		}
		req.After = n
	}
	return req, nil
}

// serveEvents writes the stream until its events close (the Watcher ended
// it), the client goes (the Watcher sees the request's context end), or
// the token that opened it expires or is revoked (a logout; looked up with
// each heartbeat): a stream must not outlive the right to read it. The
// client then reconnects, with a fresh token if it has one.
func serveEvents(w http.ResponseWriter, s watchResponse, heartbeat time.Duration, revoked func() bool) {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // the server's write timeout would cut the stream
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprintf(w, "retry: %d\n\n", retryMillis); err != nil {
		return
	}
	if rc.Flush() != nil {
		return
	}
	ping := time.NewTicker(heartbeat)
	defer ping.Stop()
	expiry := time.NewTimer(time.Until(s.token.ExpiresAt))
	defer expiry.Stop()
	for {
		var err error
		select {
		case <-expiry.C:
			return
		case e, ok := <-s.events:
			if !ok {
				return
			}
			data, _ := json.Marshal(e) // plain strings and times: cannot fail
			_, err = fmt.Fprintf(w, "id: %d\nevent: status\ndata: %s\n\n", e.ID, data)
		case <-ping.C:
			if revoked() {
				return
			}
			_, err = fmt.Fprint(w, ": ping\n\n")
		}
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			return // the client went
		}
	}
}
