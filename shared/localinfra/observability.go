package localinfra

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Jaeger and VictoriaLogs, the trace and log stores of a local run and of
// the end-to-end tests: the pinned builds in <repo>/bin (scripts/build-jaeger.sh,
// scripts/build-victorialogs.sh, which `make deps` runs), each on 127.0.0.1
// only, its data in memory (Jaeger) or in its folder (VictoriaLogs).

// observabilityHint is appended to their "binary not found" errors.
const observabilityHint = "run `make deps` (scripts/build-jaeger.sh and scripts/build-victorialogs.sh build the pinned Jaeger and VictoriaLogs into bin/)"

// FindTool returns the executable name of the repository's bin/ (where
// `make deps` builds it), else name on PATH.
func FindTool(repoRoot, name string) (string, error) {
	if repoRoot != "" {
		if p := filepath.Join(repoRoot, "bin", name); isExecutable(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("localinfra: %s %w in bin/ or on PATH; %s", name, ErrNotFound, observabilityHint)
}

// findTool is FindTool from the working directory's repository, or binary
// itself when given.
func findTool(binary, name string) (string, error) {
	if binary != "" {
		if !isExecutable(binary) {
			return "", fmt.Errorf("localinfra: %s %s %w; %s", name, binary, ErrNotFound, observabilityHint)
		}
		return binary, nil
	}
	root, _ := RepoRoot() // outside the repo, PATH still works
	return FindTool(root, name)
}

// JaegerOptions configures StartJaeger. Zero ports pick free ones.
type JaegerOptions struct {
	Dir       string // holds the configuration and, by default, the log
	OTLPPort  int    // OTLP/HTTP receiver (4318 by convention)
	QueryPort int    // query API and (placeholder) UI (16686 by convention)
	Binary    string // default: FindTool(RepoRoot(), "jaeger")
	LogFile   string // default Dir/jaeger.log
}

// Jaeger is a Jaeger v2 all-in-one: OTLP/HTTP in, traces kept in memory,
// the query API (/api/traces, /api/services) out.
type Jaeger struct {
	opts JaegerOptions
	proc *Process
}

// StartJaeger starts Jaeger and waits until its query API answers. ctx
// bounds the start-up only.
func StartJaeger(ctx context.Context, o JaegerOptions) (*Jaeger, error) {
	if err := serverFolder("jaeger", "JaegerOptions", &o.Dir, &o.LogFile); err != nil {
		return nil, err
	}
	bin, err := findTool(o.Binary, "jaeger")
	if err != nil {
		return nil, err
	}
	o.Binary = bin
	var j *Jaeger
	err = onFreePorts(3, func(ports []int) (*Process, error) {
		j = &Jaeger{opts: o}
		if o.OTLPPort == 0 {
			j.opts.OTLPPort = ports[0]
		}
		if o.QueryPort == 0 {
			j.opts.QueryPort = ports[1]
		}
		err := j.start(ctx, ports[2])
		return j.proc, err
	})
	if err != nil {
		return nil, err
	}
	return j, nil
}

func (j *Jaeger) start(ctx context.Context, grpcPort int) error {
	config := filepath.Join(j.opts.Dir, "jaeger.yaml")
	if err := writeConfig("jaeger", j.opts.Dir, "jaeger.yaml", jaegerConfig(j.opts.OTLPPort, j.opts.QueryPort, grpcPort)); err != nil {
		return err
	}
	cmd := exec.Command(j.opts.Binary, "--config", "file:"+config) //nolint:gosec // G204: the Jaeger binary localinfra found, with a configuration written here
	cmd.Dir = j.opts.Dir
	proc, err := startProcess("jaeger", j.opts.LogFile, cmd, nil)
	if err != nil {
		return err
	}
	j.proc = proc
	return proc.waitReady(ctx, httpOK(j.QueryURL()+"/api/services"))
}

// jaegerConfig is the all-in-one configuration: OTLP/HTTP on otlpPort, the
// memory store, the query API on queryPort (its gRPC side, which nothing
// here uses, on grpcPort), no tracing of itself, and none of the other
// receivers or extensions, whose fixed ports would clash between runs.
func jaegerConfig(otlpPort, queryPort, grpcPort int) string {
	return fmt.Sprintf(`# Written by localinfra on every start.
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    # Jaeger would trace itself to an OTLP collector on localhost:4317,
    # which is not there: it would retry, and hang its shutdown.
    enable_tracing: false
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:%d
    grpc:
      endpoint: 127.0.0.1:%d
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:%d
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`, queryPort, grpcPort, otlpPort)
}

// OTLPEndpoint is where services send their spans: -otlp-endpoint's value.
func (j *Jaeger) OTLPEndpoint() string {
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(j.opts.OTLPPort))
}

// QueryURL is the base of the query API: QueryURL()+"/api/traces/<id>".
func (j *Jaeger) QueryURL() string {
	return "http://" + j.Addr()
}

// Addr is the query API's host:port.
func (j *Jaeger) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(j.opts.QueryPort)) }

// Process is Jaeger's process.
func (j *Jaeger) Process() *Process { return j.proc }

// Stop stops Jaeger (its traces, in memory, go with it).
func (j *Jaeger) Stop() error { return j.proc.stop(syscall.SIGTERM) }

// VictoriaLogsOptions configures StartVictoriaLogs.
type VictoriaLogsOptions struct {
	Dir     string // holds the data (Dir/data) and, by default, the log
	Port    int    // HTTP: ingestion, queries and the web UI; 0 picks a free one
	Binary  string // default: FindTool(RepoRoot(), "victoria-logs")
	LogFile string // default Dir/victoria-logs.log
	// Retention is how long log lines are kept (VictoriaLogs's
	// -retentionPeriod, at least a day); default 7 days.
	Retention time.Duration
}

// VictoriaLogs is a single-node VictoriaLogs server.
type VictoriaLogs struct {
	httpServer // URL: ingestion under /insert, queries under /select/logsql, the web UI at /select/vmui
	opts       VictoriaLogsOptions
}

// StartVictoriaLogs starts VictoriaLogs and waits until it answers /health.
// ctx bounds the start-up only.
func StartVictoriaLogs(ctx context.Context, o VictoriaLogsOptions) (*VictoriaLogs, error) {
	if err := serverFolder("victoria-logs", "VictoriaLogsOptions", &o.Dir, &o.LogFile); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("localinfra: victoria-logs: %w", err)
	}
	bin, err := findTool(o.Binary, "victoria-logs")
	if err != nil {
		return nil, err
	}
	o.Binary = bin
	if o.Retention < 24*time.Hour {
		o.Retention = 7 * 24 * time.Hour
	}
	v := &VictoriaLogs{httpServer: httpServer{name: "victoria-logs"}, opts: o}
	err = v.start(ctx, o.Port, o.LogFile, "/health", func(addr string) *exec.Cmd {
		//nolint:gosec // G204: the VictoriaLogs binary localinfra found, with arguments built here
		cmd := exec.Command(o.Binary,
			"-httpListenAddr", addr,
			"-storageDataPath", filepath.Join(o.Dir, "data"),
			"-retentionPeriod", strconv.Itoa(int(o.Retention.Hours()))+"h",
			"-loggerOutput", "stdout",
		)
		cmd.Dir = o.Dir
		return cmd
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// httpOK is a readiness probe: url answers 200.
func httpOK(url string) func(context.Context) error {
	return HTTPReady(&http.Client{Timeout: 2 * time.Second}, url)
}

// HTTPReady is a readiness probe for Child.WaitReady (and this package's
// servers): url answers 200 to a GET through client.
func HTTPReady(client *http.Client, url string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// JaegerTrace is one trace as Jaeger's query API returns it.
type JaegerTrace struct {
	TraceID   string                   `json:"traceID"`
	Spans     []JaegerSpan             `json:"spans"`
	Processes map[string]JaegerProcess `json:"processes"`
}

// JaegerSpan is a span of a JaegerTrace; times are in microseconds.
type JaegerSpan struct {
	TraceID       string      `json:"traceID"`
	SpanID        string      `json:"spanID"`
	OperationName string      `json:"operationName"`
	References    []JaegerRef `json:"references"`
	StartTime     int64       `json:"startTime"`
	Duration      int64       `json:"duration"`
	Tags          []JaegerTag `json:"tags"`
	ProcessID     string      `json:"processID"`
}

// JaegerRef is a span's parent (CHILD_OF) or link (FOLLOWS_FROM).
type JaegerRef struct {
	RefType string `json:"refType"`
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

// JaegerTag is an attribute of a span or process.
type JaegerTag struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

// JaegerProcess is the process (service) that made spans.
type JaegerProcess struct {
	ServiceName string `json:"serviceName"`
}

// Tag returns the value of the span's tag key, as text, or "".
func (s JaegerSpan) Tag(key string) string {
	for _, t := range s.Tags {
		if t.Key == key {
			return fmt.Sprint(t.Value)
		}
	}
	return ""
}

// Service is the service that made span s.
func (t JaegerTrace) Service(s JaegerSpan) string { return t.Processes[s.ProcessID].ServiceName }

// JaegerAPI is a client of a Jaeger's query API at URL: a Jaeger
// started here (Jaeger.QueryURL) or one deployed elsewhere, say
// http://127.0.0.1:16686.
type JaegerAPI struct{ URL string }

// Trace returns the trace with id as Jaeger has it so far.
func (j *Jaeger) Trace(ctx context.Context, id string) (JaegerTrace, error) {
	return JaegerAPI{URL: j.QueryURL()}.Trace(ctx, id)
}

// Find returns the traces of the last hour that have a span of service
// with every one of tags (at most limit of them, newest first).
func (j *Jaeger) Find(ctx context.Context, service string, tags map[string]string, limit int) ([]JaegerTrace, error) {
	return JaegerAPI{URL: j.QueryURL()}.Find(ctx, service, tags, limit)
}

// Trace returns the trace with id as Jaeger has it so far.
func (a JaegerAPI) Trace(ctx context.Context, id string) (JaegerTrace, error) {
	var body struct {
		Data []JaegerTrace `json:"data"`
	}
	if err := getJSON(ctx, a.URL+"/api/traces/"+url.PathEscape(id), &body); err != nil {
		return JaegerTrace{}, err
	}
	if len(body.Data) != 1 {
		return JaegerTrace{}, fmt.Errorf("localinfra: jaeger has %d traces with id %s", len(body.Data), id)
	}
	return body.Data[0], nil
}

// Find returns the traces of the last hour that have a span of service
// with every one of tags (at most limit of them, newest first).
func (a JaegerAPI) Find(ctx context.Context, service string, tags map[string]string, limit int) ([]JaegerTrace, error) {
	q := url.Values{"service": {service}, "lookback": {"1h"}, "limit": {strconv.Itoa(limit)}}
	if len(tags) > 0 {
		b, _ := json.Marshal(tags) // a map of strings always marshals
		q.Set("tags", string(b))
	}
	var body struct {
		Data []JaegerTrace `json:"data"`
	}
	if err := getJSON(ctx, a.URL+"/api/traces?"+q.Encode(), &body); err != nil {
		return nil, err
	}
	return body.Data, nil
}

// VictoriaLogsAPI is a client of a VictoriaLogs' HTTP API at URL: one
// started here (VictoriaLogs.URL) or one deployed elsewhere.
type VictoriaLogsAPI struct{ URL string }

// Query runs the LogsQL query over every log line VictoriaLogs holds and
// returns the matching records, each a map of field to value.
func (v *VictoriaLogs) Query(ctx context.Context, query string) ([]map[string]string, error) {
	return VictoriaLogsAPI{URL: v.URL()}.Query(ctx, query)
}

// Query runs the LogsQL query over every log line VictoriaLogs holds and
// returns the matching records, each a map of field to value.
func (a VictoriaLogsAPI) Query(ctx context.Context, query string) ([]map[string]string, error) {
	resp, err := postQuery(ctx, a.URL+"/select/logsql/query", query)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("localinfra: victoria-logs query %q: %s: %s", query, resp.Status, msg)
	}
	var records []map[string]string
	dec := json.NewDecoder(resp.Body)
	for dec.More() {
		var r map[string]string
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("localinfra: victoria-logs query %q: %w", query, err)
		}
		records = append(records, r)
	}
	return records, nil
}

// postQuery POSTs query as the form field "query", the way Prometheus and
// VictoriaLogs take one, and returns the answer whatever its status.
func postQuery(ctx context.Context, endpoint, query string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint,
		strings.NewReader(url.Values{"query": {query}}.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return (&http.Client{Timeout: 30 * time.Second}).Do(req)
}

// getJSON GETs url and decodes its 200 answer into v.
func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("localinfra: GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
