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
			return w.Watch(ctx, caller(id), req.ID, req.After)
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
		serveEvents(rw, resp.(<-chan StatusEvent), heartbeat)
	})
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

// serveEvents writes the stream until events closes (the Watcher ended it)
// or the client goes (the Watcher sees the request's context end).
func serveEvents(w http.ResponseWriter, events <-chan StatusEvent, heartbeat time.Duration) {
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
	for {
		var err error
		select {
		case e, ok := <-events:
			if !ok {
				return
			}
			data, _ := json.Marshal(e) // plain strings and times: cannot fail
			_, err = fmt.Fprintf(w, "id: %d\nevent: status\ndata: %s\n\n", e.ID, data)
		case <-ping.C:
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
