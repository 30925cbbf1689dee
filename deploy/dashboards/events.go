package dashboards

// Events is the event pipeline: each service's transactional outbox, the
// Redis stream and every consumer group.
func Events() Dashboard {
	return Dashboard{
		UID:         "mercato-events",
		Title:       "Mercato / Events",
		Description: "Outboxes, the events stream and its consumer groups: is every event published, handled, and in time?",
		Rows: []Row{
			{Title: "Outbox (producers)", Panels: []Panel{
				{
					Title:       "Outbox backlog",
					Description: "Outbox rows not yet published, per service. The relay publishes as each commit notifies it (polling every second besides), so this sits near 0; a backlog that grows means the relay cannot reach Redis or is failing.",
					Kind:        TimeSeries, Unit: "short", Width: 12,
					Queries: []Query{{Expr: `max by (service) (outbox_backlog)`, Legend: "{{service}}"}},
				},
				{
					Title:       "Oldest unsent event",
					Description: "Age of the oldest unpublished outbox row, per service (0 when the outbox is empty): how late the slowest event will be. Anything beyond a few seconds is a stuck relay.",
					Kind:        TimeSeries, Unit: "s", Width: 12,
					Queries: []Query{{Expr: `max by (service) (outbox_oldest_event_age_seconds)`, Legend: "{{service}}"}},
				},
			}},
			{Title: "Throughput", Panels: []Panel{
				{
					Title:       "Published by type",
					Description: "Events published to the stream per second, by producing service and event type.",
					Kind:        TimeSeries, Unit: "short", Width: 12,
					Queries: []Query{{Expr: `sum by (service, type) (rate(events_published_total[$__rate_interval]))`, Legend: "{{service}} {{type}}"}},
				},
				{
					Title:       "Consumed by group",
					Description: "Events each consumer group handled and acknowledged per second, by type. Every type a group subscribes to should follow its published line.",
					Kind:        TimeSeries, Unit: "short", Width: 12,
					Queries: []Query{{Expr: `sum by (group, type) (rate(events_consumed_total[$__rate_interval]))`, Legend: "{{group}} {{type}}"}},
				},
				{
					Title:       "Failed handler attempts",
					Description: "Handler attempts that failed and were left for redelivery, per second, by group (0 for a group that never failed). A few during an outage of a dependency are normal; they are retried.",
					Kind:        TimeSeries, Unit: "short", Width: 12,
					Queries: []Query{{Expr: `sum by (group) (rate(events_failed_total[$__rate_interval])) or sum by (group) (rate(events_consumed_total[$__rate_interval])) * 0`, Legend: "{{group}}"}},
				},
				{
					Title:       "Dead-lettered",
					Description: "Events moved to the dead-letter stream after the last attempt, per second, by group (0 for a group that never dead-lettered). Any at all needs a person: the event's effect did not happen.",
					Kind:        TimeSeries, Unit: "short", Width: 12,
					Queries: []Query{{Expr: `sum by (group) (rate(events_dead_lettered_total[$__rate_interval])) or sum by (group) (rate(events_consumed_total[$__rate_interval])) * 0`, Legend: "{{group}}"}},
				},
			}},
			{Title: "Consumer groups", Panels: []Panel{
				{
					Title:       "Pending entries per group",
					Description: "Entries delivered to the group and not yet acknowledged (XINFO GROUPS pending): being handled, or held by a consumer that died until they are reclaimed. Every instance of a service reports its group's figure; the panel takes the largest.",
					Kind:        TimeSeries, Unit: "short", Width: 12,
					Queries: []Query{{Expr: `max by (group, stream) (events_consumer_pending)`, Legend: "{{group}} ({{stream}})"}},
				},
				{
					Title:       "Lag per group",
					Description: "Entries in the stream not yet delivered to the group (XINFO GROUPS lag): how far behind the group reads. It should return to 0 between bursts; a rising line is a group that cannot keep up or has stopped.",
					Kind:        TimeSeries, Unit: "short", Width: 12,
					Queries: []Query{{Expr: `max by (group, stream) (events_consumer_lag)`, Legend: "{{group}} ({{stream}})"}},
				},
			}},
		},
	}
}
