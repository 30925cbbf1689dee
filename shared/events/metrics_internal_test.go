package events

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestBacklogGauges(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, "order")
	m.backlog(3, 12.5)
	m.groupBacklog("order", "events", 2, 7)
	m.groupBacklog("order", "events", 1, -1) // lag unknown: kept
	want := `
# HELP events_consumer_lag Stream entries not yet delivered to the consumer group (XINFO GROUPS lag).
# TYPE events_consumer_lag gauge
events_consumer_lag{group="order",service="order",stream="events"} 7
# HELP events_consumer_pending Stream entries delivered to the consumer group and not yet acknowledged (XINFO GROUPS pending).
# TYPE events_consumer_pending gauge
events_consumer_pending{group="order",service="order",stream="events"} 1
# HELP outbox_backlog Outbox rows not yet published.
# TYPE outbox_backlog gauge
outbox_backlog{service="order"} 3
# HELP outbox_oldest_event_age_seconds Seconds the oldest unpublished outbox row has waited; 0 when the outbox is drained.
# TYPE outbox_oldest_event_age_seconds gauge
outbox_oldest_event_age_seconds{service="order"} 12.5
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"outbox_backlog", "outbox_oldest_event_age_seconds", "events_consumer_pending", "events_consumer_lag"); err != nil {
		t.Error(err)
	}

	var none *Metrics // records nothing, and does not panic
	none.backlog(1, 1)
	none.groupBacklog("g", "s", 1, 1)
	(&Metrics{}).groupBacklog("g", "s", 1, 1) // nil fields too
}
