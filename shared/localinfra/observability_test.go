package localinfra

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mercato-dev/mercato/shared/tracing"
)

func eventuallyTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// A span exported over OTLP is in Jaeger's query API, with its service.
func TestJaegerTakesOTLPAndAnswersQueries(t *testing.T) {
	ctx := context.Background()
	j, err := StartJaeger(ctx, JaegerOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := j.Stop(); err != nil {
			t.Error(err)
		}
	}()
	p, err := tracing.New(ctx, tracing.Config{Service: "thing", Endpoint: j.OTLPEndpoint(), SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, span := p.Tracer(tracing.Scope).Start(ctx, "GET /things/{id}")
	span.End()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	id := span.SpanContext().TraceID().String()
	var tr JaegerTrace
	eventuallyTrue(t, "the trace in Jaeger", func() bool {
		tr, err = j.Trace(ctx, id)
		return err == nil
	})
	if len(tr.Spans) != 1 || tr.Spans[0].OperationName != "GET /things/{id}" || tr.Service(tr.Spans[0]) != "thing" {
		t.Errorf("trace %+v, want the one span of service thing", tr)
	}
}

// The shipper sends the complete lines appended to a file after its
// offset, JSON as it is and anything else as a message, each naming its
// instance; while the store is down it keeps its place and sends the
// lines once the store is back.
func TestLogShipperKeepsItsPlaceThroughAnOutage(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "not-yet-there")
	v, err := StartVictoriaLogs(ctx, VictoriaLogsOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Stop() })

	logPath := filepath.Join(t.TempDir(), "order-1.log")
	before := "{\"msg\":\"from an earlier run\",\"marker\":\"m1\"}\n"
	if err := os.WriteFile(logPath, []byte(before), 0o600); err != nil {
		t.Fatal(err)
	}
	s := NewLogShipper(v.URL())
	s.Add("order", "order-1", logPath, int64(len(before)))
	appendLog := func(text string) {
		f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(text); err != nil {
			t.Fatal(err)
		}
	}
	appendLog(`{"ts":"` + time.Now().UTC().Format(time.RFC3339Nano) + `","service":"order","level":"info","msg":"placed","marker":"m1"}` + "\n" +
		"order: a plain line m1\n" + `{"msg":"half a line","marker":"m1"`)
	if err := s.Ship(ctx); err != nil {
		t.Fatal(err)
	}
	var got []map[string]string
	eventuallyTrue(t, "two lines in VictoriaLogs", func() bool {
		got, err = v.Query(ctx, "instance:order-1")
		return err == nil && len(got) == 2
	})
	msgs := got[0]["_msg"] + "|" + got[1]["_msg"]
	if !strings.Contains(msgs, "placed") || !strings.Contains(msgs, "order: a plain line m1") || strings.Contains(msgs, "earlier run") {
		t.Errorf("stored %v; want the JSON line and the plain one, not the earlier run's nor the half line", got)
	}

	// The store goes away: shipping fails and loses nothing.
	port := v.port
	if err := v.Stop(); err != nil {
		t.Fatal(err)
	}
	appendLog(`}` + "\n" + `{"msg":"during the outage","marker":"m1"}` + "\n")
	if err := s.Ship(ctx); err == nil {
		t.Fatal("shipping to a stopped VictoriaLogs succeeded")
	}
	if v, err = StartVictoriaLogs(ctx, VictoriaLogsOptions{Dir: dir, Port: port}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Stop() })
	if err := s.Ship(ctx); err != nil {
		t.Fatal(err)
	}
	eventuallyTrue(t, "the lines written during the outage", func() bool {
		got, err = v.Query(ctx, "instance:order-1")
		return err == nil && len(got) == 4
	})
}
