package app

import (
	"github.com/go-kit/log"

	"github.com/mercato-dev/mercato/shared/events"
)

// RelayOutbox runs the outbox relay as the "outbox relay" loop: it publishes
// the events the service commits to its database on the Redis stream,
// logging as component "outbox_relay", recorded in the event metrics, each
// event published inside a span of the trace that enqueued it. It listens
// for the outbox's commit notifications, so an event is published as soon as
// it commits, and only for its own instance's commits: the other instances'
// relays poll for rows an instance left when it died.
func (in *Instance) RelayOutbox() {
	in.Go("outbox relay", (&events.Relay{DB: in.DB, Redis: in.Redis,
		ListenURL: in.cfg.DatabaseURL, ApplicationName: in.applicationName,
		Logger: log.With(in.Logger, "component", "outbox_relay"), Metrics: in.eventMetrics(), Tracer: in.Tracing}).Run)
}

// Consume runs c as the loop name (see Go) on the instance's database, which
// holds the inbox, and Redis, logging as component, recorded in the event
// metrics, and each event handled inside a span continuing its producer's
// trace. c says what to handle and how (Types, Handler, its tuning); an
// empty Group is the service's own consumer group.
func (in *Instance) Consume(name, component string, c events.Consumer) {
	c.DB, c.Redis = in.DB, in.Redis
	if c.Group == "" {
		c.Group = in.cfg.Service
	}
	c.Logger = log.With(in.Logger, "component", component)
	c.Metrics = in.eventMetrics()
	c.Tracer = in.Tracing
	in.Go(name, c.Run)
}

// eventMetrics returns the instance's event metrics, registered on its
// registry the first time a relay or consumer needs them, so an instance
// without either (the gateway) exposes none.
func (in *Instance) eventMetrics() *events.Metrics {
	if in.events == nil {
		in.events = events.NewMetrics(in.Registry, in.cfg.Service)
	}
	return in.events
}
