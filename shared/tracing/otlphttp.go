package tracing

// The OTLP/HTTP transport under OpenTelemetry's own OTLP exporter
// (otlptrace.New does the span-to-protobuf conversion): one POST of the
// binary protobuf ExportTraceServiceRequest to the traces URL per batch,
// retried with backoff while the collector is busy or unreachable.
//
// Why not otlptracehttp: it imports gRPC (for its TLS credentials option)
// and the collector's generated gRPC and grpc-gateway stubs, which add
// 5 MB to every binary and pushed the images past their 30 MB
// (docs/deployment.md). The request is one repeated field of messages the
// exporter has already built, so it is written with protowire here.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/sethvargo/go-retry"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// otlpHTTP is an otlptrace.Client posting to url.
type otlpHTTP struct {
	url    string
	client *http.Client
}

var _ otlptrace.Client = (*otlpHTTP)(nil)

func newOTLPHTTP(url string) *otlpHTTP {
	// Ten seconds a request, as otlptracehttp's default.
	return &otlpHTTP{url: url, client: &http.Client{Timeout: 10 * time.Second}}
}

func (c *otlpHTTP) Start(context.Context) error { return nil }

func (c *otlpHTTP) Stop(context.Context) error {
	c.client.CloseIdleConnections()
	return nil
}

// UploadTraces posts one batch. A 429, 502, 503 or 504 or a transport error
// is retried (100 ms doubling, at most five tries, within ctx: the batch
// processor's export timeout); any other non-2xx is the collector refusing
// the batch, and is not.
func (c *otlpHTTP) UploadTraces(ctx context.Context, spans []*tracepb.ResourceSpans) error {
	body, err := exportRequest(spans)
	if err != nil {
		return err
	}
	backoff := retry.WithMaxRetries(4, retry.NewExponential(100*time.Millisecond))
	return retry.Do(ctx, backoff, func(ctx context.Context) error {
		return c.post(ctx, body)
	})
}

func (c *otlpHTTP) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := c.client.Do(req)
	if err != nil {
		return retry.RetryableError(fmt.Errorf("tracing: export: %w", err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusBadGateway,
		resp.StatusCode == http.StatusServiceUnavailable, resp.StatusCode == http.StatusGatewayTimeout:
		return retry.RetryableError(fmt.Errorf("tracing: export: collector answered %s", resp.Status))
	default:
		return fmt.Errorf("tracing: export: collector answered %s", resp.Status)
	}
}

// exportRequest is the ExportTraceServiceRequest of spans in protobuf's
// wire format: field 1, resource_spans, repeated.
func exportRequest(spans []*tracepb.ResourceSpans) ([]byte, error) {
	var b []byte
	for _, rs := range spans {
		m, err := proto.Marshal(rs)
		if err != nil {
			return nil, fmt.Errorf("tracing: export: %w", err)
		}
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, m)
	}
	return b, nil
}
