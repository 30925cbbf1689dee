package deployed

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mercato-dev/mercato/shared/localinfra"
)

// Traces and log lines of a deployed platform, through Jaeger's query API
// and VictoriaLogs' HTTP API as the host reaches them.

// CheckoutSpans are spans every checkout's trace holds, as service, span
// name pairs: the gateway's request, the order service's, the product
// reservation, the payment charge and the notification consumer of
// order.created.
var CheckoutSpans = []string{
	"gateway", "POST /api/v1/orders",
	"order", "POST /api/v1/orders",
	"product", "POST /internal/reservations",
	"payment", "POST /internal/payments",
	"notification", "process order.created",
}

// CheckoutTrace waits for the trace of the checkout the gateway served
// under the X-Request-ID requestID to hold CheckoutSpans, and returns it.
// Spans reach Jaeger in the services' export batches (every 5 s by
// default), the notification consumer's after the relay published the event.
func CheckoutTrace(t testing.TB, jaegerURL, requestID string) localinfra.JaegerTrace {
	t.Helper()
	jaeger := localinfra.JaegerAPI{URL: jaegerURL}
	return WaitTrace(t, "the trace of checkout "+requestID+" in Jaeger", func(ctx context.Context) ([]localinfra.JaegerTrace, error) {
		return jaeger.Find(ctx, "gateway", map[string]string{"mercato.request_id": requestID}, 5)
	}, HasSpans(CheckoutSpans...))
}

// WaitTrace waits up to a minute until find returns a trace for which
// complete holds, and returns it.
func WaitTrace(t testing.TB, what string, find func(context.Context) ([]localinfra.JaegerTrace, error), complete func(localinfra.JaegerTrace) error) localinfra.JaegerTrace {
	t.Helper()
	var found localinfra.JaegerTrace
	WaitFor(t, time.Minute, what, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		traces, err := find(ctx)
		if err != nil {
			return false, err.Error()
		}
		if len(traces) == 0 {
			return false, "no trace yet"
		}
		var missing []string
		for _, tr := range traces {
			if err := complete(tr); err != nil {
				missing = append(missing, err.Error())
				continue
			}
			found = tr
			return true, ""
		}
		return false, strings.Join(missing, "; ")
	})
	return found
}

// LogServices runs the LogsQL query on the VictoriaLogs at vlogsURL and
// counts the lines it returns by their service field.
func LogServices(vlogsURL, query string) (map[string]int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lines, err := localinfra.VictoriaLogsAPI{URL: vlogsURL}.Query(ctx, query)
	if err != nil {
		return nil, err
	}
	services := map[string]int{}
	for _, l := range lines {
		services[l["service"]]++
	}
	return services, nil
}

// WaitLogServices waits up to two minutes for the LogsQL query to return,
// on the VictoriaLogs at vlogsURL, lines of at least n services, and
// returns their counts by service.
func WaitLogServices(t testing.TB, vlogsURL, query string, n int) map[string]int {
	t.Helper()
	var services map[string]int
	WaitFor(t, 2*time.Minute, fmt.Sprintf("lines of %d services in VictoriaLogs for %s", n, query), func() (bool, string) {
		var err error
		services, err = LogServices(vlogsURL, query)
		delete(services, "")
		return err == nil && len(services) >= n, fmt.Sprintf("%v, %v", services, err)
	})
	return services
}

// HasSpans is a trace check: a span named name from service for each
// service, name pair.
func HasSpans(pairs ...string) func(localinfra.JaegerTrace) error {
	return func(tr localinfra.JaegerTrace) error {
		var missing []string
		for i := 0; i+1 < len(pairs); i += 2 {
			if SpanOf(tr, pairs[i], pairs[i+1]) == nil {
				missing = append(missing, pairs[i]+": "+pairs[i+1])
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("trace %s lacks %s", tr.TraceID, strings.Join(missing, ", "))
		}
		return nil
	}
}

// SpanOf is the first span of tr named name from service, or nil.
func SpanOf(tr localinfra.JaegerTrace, service, name string) *localinfra.JaegerSpan {
	for i, s := range tr.Spans {
		if tr.Service(s) == service && s.OperationName == name {
			return &tr.Spans[i]
		}
	}
	return nil
}

// ParentOf is the span's parent in its trace, "" for a root.
func ParentOf(s localinfra.JaegerSpan) string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" && r.TraceID == s.TraceID {
			return r.SpanID
		}
	}
	return ""
}

// RenderTrace writes the trace as an indented tree: start offset and
// duration in milliseconds, service, span name.
func RenderTrace(tr localinfra.JaegerTrace) string {
	children := map[string][]localinfra.JaegerSpan{}
	ids := map[string]bool{}
	var start int64
	for _, s := range tr.Spans {
		ids[s.SpanID] = true
		if start == 0 || s.StartTime < start {
			start = s.StartTime
		}
	}
	for _, s := range tr.Spans {
		p := ParentOf(s)
		if !ids[p] {
			p = ""
		}
		children[p] = append(children[p], s)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "trace %s, %d spans\n", tr.TraceID, len(tr.Spans))
	var walk func(parent string, depth int)
	walk = func(parent string, depth int) {
		kids := children[parent]
		sort.Slice(kids, func(i, j int) bool { return kids[i].StartTime < kids[j].StartTime })
		for _, s := range kids {
			fmt.Fprintf(&b, "%8.1f ms %8.1f ms  %s%-12s %s\n", float64(s.StartTime-start)/1000, float64(s.Duration)/1000,
				strings.Repeat("  ", depth), tr.Service(s), s.OperationName)
			walk(s.SpanID, depth+1)
		}
	}
	walk("", 0)
	return b.String()
}
