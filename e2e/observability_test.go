package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/consul/api"

	"github.com/mercato-dev/mercato/e2e/deployed"
	"github.com/mercato-dev/mercato/shared/localinfra"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// observability is a test platform's Jaeger and VictoriaLogs, and the
// shipper of its processes' log files.
type observability struct {
	jaeger  *localinfra.Jaeger
	logs    *localinfra.VictoriaLogs
	shipper *localinfra.LogShipper
}

func startObservability(t *testing.T) *observability {
	t.Helper()
	o := &observability{jaeger: testkit.NewJaeger(t), logs: testkit.NewVictoriaLogs(t)}
	o.shipper = localinfra.NewLogShipper(o.logs.URL())
	o.shipper.PollInterval = 200 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { o.shipper.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	// Spans reach Jaeger within 200 ms rather than the SDK's 5 s: the
	// processes inherit the environment.
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
	return o
}

// args point a process at the Jaeger; none without observability.
func (o *observability) args() []string {
	if o == nil {
		return nil
	}
	return []string{"-otlp-endpoint", o.jaeger.OTLPEndpoint()}
}

// ship sends pr's log lines to the VictoriaLogs, as mercato-local does.
func (o *observability) ship(pr *proc) {
	if o != nil {
		o.shipper.Add(pr.name, pr.name+"@"+pr.addr, pr.log, 0)
	}
}

// TestTraceAndLogsOfACheckout: one checkout through the gateway is one
// trace in Jaeger, from POST /orders at the gateway through the order,
// user, product and payment services to the notification service's
// consumer of order.created; the payment's webhook starts a trace of its
// own, linked to it, that carries the confirmation on to the order and
// notification consumers. Every log line of the checkout carries the
// trace id, and VictoriaLogs finds lines of at least four services by it.
// A call that meets a dead instance shows both of its attempts.
func TestTraceAndLogsOfACheckout(t *testing.T) {
	obs := startObservability(t)
	mail := startSink(t)
	p := startCheckoutPlatform(t, checkoutOptions{observe: obs, notification: true, sink: mail})
	ctx := context.Background()

	pr := p.seed(t, "Traced Teapot", "24.99", 5)
	_, token := p.customer(t)
	requestID := "e2e-checkout-" + uuid.NewString()
	var placed struct {
		Order checkoutOrder `json:"order"`
	}
	p.call(t, "POST", "/api/v1/orders", token, checkoutBody(cardOK, checkoutLine{pr, 1}),
		"X-Request-ID", requestID, "Idempotency-Key", uuid.NewString()).must(t, http.StatusCreated).decode(t, &placed)
	order := p.waitStatus(t, token, placed.Order.ID, "confirmed", 30*time.Second)
	mail.waitMail(t, "Order "+order.OrderNumber+" confirmed")

	// The checkout's trace, found by the request id the client sent.
	checkout := deployed.WaitTrace(t, "the checkout's trace in Jaeger", func(ctx context.Context) ([]localinfra.JaegerTrace, error) {
		return obs.jaeger.Find(ctx, "gateway", map[string]string{"mercato.request_id": requestID}, 5)
	}, deployed.HasSpans(
		"gateway", "POST /api/v1/orders",
		"gateway", "POST order",
		"order", "POST /api/v1/orders",
		"order", "POST product",
		"product", "POST /internal/reservations",
		"order", "POST payment",
		"payment", "POST /internal/payments",
		"order", "publish order.created",
		"notification", "process order.created",
	))
	t.Logf("the checkout's trace:\n%s", deployed.RenderTrace(checkout))
	root := deployed.SpanOf(checkout, "gateway", "POST /api/v1/orders")
	if deployed.ParentOf(*root) != "" {
		t.Errorf("the gateway's span has a parent %s: a client's trace context must not be continued", deployed.ParentOf(*root))
	}
	for _, s := range checkout.Spans {
		if s.TraceID != checkout.TraceID {
			t.Errorf("span %s of %s is in trace %s", s.OperationName, checkout.Service(s), s.TraceID)
		}
	}

	// The webhook's trace links to the checkout's and carries the
	// confirmation to the order and notification services.
	webhook := deployed.WaitTrace(t, "the webhook's trace, linked to the checkout's", func(ctx context.Context) ([]localinfra.JaegerTrace, error) {
		return obs.jaeger.Find(ctx, "notification", nil, 50)
	}, func(tr localinfra.JaegerTrace) error {
		if err := deployed.HasSpans("gateway", "POST /api/v1/webhooks/payments/", "payment", "POST /api/v1/webhooks/payments/{provider}",
			"order", "process payment.processed", "notification", "process order.updated")(tr); err != nil {
			return err
		}
		for _, s := range tr.Spans {
			for _, r := range s.References {
				if r.RefType == "FOLLOWS_FROM" && r.TraceID == checkout.TraceID {
					return nil
				}
			}
		}
		return fmt.Errorf("trace %s has no link to the checkout's %s", tr.TraceID, checkout.TraceID)
	})
	t.Logf("the webhook's trace, linked to the checkout's:\n%s", deployed.RenderTrace(webhook))

	// Every service's lines of the checkout, by its trace id.
	var lines []map[string]string
	waitFor(t, 30*time.Second, "log lines of four services in VictoriaLogs", func() error {
		var err error
		if lines, err = obs.logs.Query(ctx, "trace_id:"+checkout.TraceID); err != nil {
			return err
		}
		services := map[string]bool{}
		for _, l := range lines {
			services[l["service"]] = true
		}
		if len(services) < 4 {
			return fmt.Errorf("lines from %v", services)
		}
		return nil
	})
	for _, l := range lines {
		if l["trace_id"] != checkout.TraceID || l["span_id"] == "" || l["request_id"] != requestID {
			t.Errorf("log line %v: want the trace id, a span id and the request id", l)
		}
	}
	if byRequest, err := obs.logs.Query(ctx, `request_id:"`+requestID+`"`); err != nil || len(byRequest) < len(lines) {
		t.Errorf("by request id: %d lines (%v), want at least the %d of the trace", len(byRequest), err, len(lines))
	}
	// What the README tells an operator: from the order id to its line,
	// whose trace id is the checkout's.
	placedLines, err := obs.logs.Query(ctx, `order_id:"`+order.ID+`" AND PlaceOrder`)
	if err != nil || len(placedLines) != 1 || placedLines[0]["trace_id"] != checkout.TraceID {
		t.Errorf("the order's PlaceOrder line: %v (%v), want one with trace_id %s", placedLines, err, checkout.TraceID)
	}

	// A product instance that died is still passing in Consul: a read that
	// meets it first is retried on a live one, and both attempts show.
	dead, err := localinfra.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	consul, err := api.NewClient(&api.Config{Address: p.consul, Token: testkit.ConsulToken(t, p.consul, "")})
	if err != nil {
		t.Fatal(err)
	}
	if err := consul.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "product-dead", Name: "product",
		Address: "127.0.0.1", Port: dead, Check: &api.AgentServiceCheck{TTL: "10m", Status: api.HealthPassing}}); err != nil {
		t.Fatal(err)
	}
	var retried localinfra.JaegerTrace
	waitFor(t, 60*time.Second, "a product read retried after the dead instance", func() error {
		id := "e2e-retry-" + uuid.NewString()
		p.call(t, "GET", "/api/v1/products/"+pr.ID, "", nil, "X-Request-ID", id).must(t, http.StatusOK)
		traces, err := obs.jaeger.Find(ctx, "gateway", map[string]string{"mercato.request_id": id}, 1)
		for range 50 {
			if err == nil && len(traces) == 1 {
				break
			}
			time.Sleep(100 * time.Millisecond)
			traces, err = obs.jaeger.Find(ctx, "gateway", map[string]string{"mercato.request_id": id}, 1)
		}
		if err != nil || len(traces) != 1 {
			return fmt.Errorf("trace of %s: %v", id, err)
		}
		attempts := map[string]localinfra.JaegerSpan{}
		for _, s := range traces[0].Spans {
			if s.OperationName == "GET product" {
				attempts[s.Tag("mercato.attempt")] = s
			}
		}
		if len(attempts) < 2 {
			return fmt.Errorf("%d attempt spans", len(attempts))
		}
		retried = traces[0]
		return nil
	})
	var first, second localinfra.JaegerSpan
	for _, s := range retried.Spans {
		switch {
		case s.OperationName == "GET product" && s.Tag("mercato.attempt") == "1":
			first = s
		case s.OperationName == "GET product" && s.Tag("mercato.attempt") == "2":
			second = s
		}
	}
	if first.Tag("error") != "true" || first.Tag("server.port") != fmt.Sprint(dead) || second.Tag("error") == "true" {
		t.Errorf("attempts: first %v, second %v; want the first failed at the dead port %d, the second a success", first.Tags, second.Tags, dead)
	}
	if deployed.ParentOf(first) != deployed.ParentOf(second) || deployed.ParentOf(first) == "" {
		t.Errorf("attempts under %q and %q, want siblings under the gateway's request", deployed.ParentOf(first), deployed.ParentOf(second))
	}
	t.Logf("a retried read:\n%s", deployed.RenderTrace(retried))
}
