package snapshot

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/mercato-dev/mercato/deploy/dashboards"
)

// fakePrometheus answers the HTTP API calls dashboards-snapshot makes:
// build info and range queries, with made-up series shaped like the
// query's (buckets for a heat map, NaN gaps for a quantile, nothing for
// the rate limit).
type fakePrometheus struct {
	mu      sync.Mutex
	queries []string
	params  []string
	fail    bool // answer every query with a PromQL error
}

func (f *fakePrometheus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/api/v1/status/buildinfo":
		fmt.Fprint(w, `{"status":"success","data":{"version":"2.42.0","revision":"","branch":"","buildUser":"","buildDate":"","goVersion":"go1.26"}}`)
		return
	case "/api/v1/query_range":
	default:
		http.NotFound(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	q := r.Form.Get("query")
	f.mu.Lock()
	f.queries = append(f.queries, q)
	f.params = append(f.params, r.Form.Get("start")+" "+r.Form.Get("end")+" "+r.Form.Get("step"))
	f.mu.Unlock()
	if f.fail {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"1:1: parse error: unexpected character"}`)
		return
	}
	start, _ := strconv.ParseFloat(r.Form.Get("start"), 64)
	end, _ := strconv.ParseFloat(r.Form.Get("end"), 64)
	step, _ := strconv.ParseFloat(r.Form.Get("step"), 64)
	var result model.Matrix
	switch {
	case strings.Contains(q, "gateway_rate_limited_total"):
	case strings.Contains(q, "by (le)"):
		cum := 0.0
		for i, le := range []string{"0.005", "0.01", "0.025", "0.05", "0.1", "+Inf"} {
			cum += float64(10 - i)
			result = append(result, series(model.Metric{"le": model.LabelValue(le)}, start, end, step, func(int) float64 { return cum }))
		}
	default:
		for i, svc := range []string{"order", "product"} {
			result = append(result, series(model.Metric{"service": model.LabelValue(svc), "instance": model.LabelValue(svc + "-1"), "code": "200"}, start, end, step, func(n int) float64 {
				if strings.Contains(q, "histogram_quantile") && n%10 == 3 {
					return math.NaN()
				}
				return float64(i+1) * (1 + math.Sin(float64(n)/10))
			}))
		}
	}
	data, err := json.Marshal(map[string]any{"status": "success", "data": map[string]any{"resultType": "matrix", "result": result}})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	_, _ = w.Write(data) // the client reports a short answer
}

func series(m model.Metric, start, end, step float64, value func(n int) float64) *model.SampleStream {
	s := &model.SampleStream{Metric: m}
	for n, t := 0, start; t <= end; n, t = n+1, t+step {
		s.Values = append(s.Values, model.SamplePair{Timestamp: model.TimeFromUnixNano(int64(t * 1e9)), Value: model.SampleValue(value(n))})
	}
	return s
}

func TestRunDrawsEveryPanel(t *testing.T) {
	fake := &fakePrometheus{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	out := t.TempDir()
	if dir := os.Getenv("SNAPSHOT_TEST_OUT"); dir != "" {
		out = dir // to look at the images
	}
	var progress bytes.Buffer
	end := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	all := dashboards.All()
	err := Run(context.Background(), all, Options{Prometheus: srv.URL, Range: 15 * time.Minute, End: end, Out: out, Service: "order", Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}

	index, err := os.ReadFile(filepath.Join(out, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	panels, queries := 0, 0
	for _, d := range all {
		if !strings.Contains(progress.String(), d.Title+": ") {
			t.Errorf("no progress line for %s:\n%s", d.Title, progress.String())
		}
		for _, p := range d.Panels() {
			panels++
			queries += len(p.Queries)
			rel := d.UID + "/" + dashboards.Slug(p.Title) + ".png"
			f, err := os.Open(filepath.Join(out, rel))
			if err != nil {
				t.Error(err)
				continue
			}
			img, err := png.Decode(f)
			f.Close()
			if err != nil {
				t.Errorf("%s: %v", rel, err)
				continue
			}
			if b := img.Bounds(); b.Dx() != width*dpi/72 || b.Dy() < statHeight*dpi/72 {
				t.Errorf("%s: %v, want %d pixels wide and at least %d high", rel, b, width*dpi/72, statHeight*dpi/72)
			}
			if !bytes.Contains(index, []byte("]("+rel+")")) {
				t.Errorf("README.md does not show %s", rel)
			}
		}
	}
	if got := strings.Count(progress.String(), "\n"); got != len(all) {
		t.Errorf("%d progress lines, want one per dashboard (%d):\n%s", got, len(all), progress.String())
	}

	if len(fake.queries) != queries {
		t.Errorf("Prometheus got %d queries, want one per panel query (%d)", len(fake.queries), queries)
	}
	want := fmt.Sprintf("%d %d 5", end.Add(-15*time.Minute).Unix(), end.Unix())
	for i, q := range fake.queries {
		if strings.Contains(q, "$") {
			t.Errorf("a variable reached Prometheus: %s", q)
		}
		if strings.Contains(q, "$__rate_interval") || strings.Contains(q, "[1m]") {
			t.Errorf("rate window not Grafana's for a 5 s step (20s): %s", q)
		}
		if strings.Contains(q, "instance=~") && !strings.Contains(q, `service="order", instance=~".+"`) && !strings.Contains(q, `"order_service_duration_seconds_bucket", instance=~".+"`) {
			t.Errorf("the Service detail's variables not filled with order and every instance: %s", q)
		}
		if got := fake.params[i]; !strings.HasPrefix(strings.ReplaceAll(got, ".000", ""), want) {
			t.Errorf("start end step = %s, want %s", got, want)
		}
	}
	t.Logf("%d panels, %d queries:\n%s", panels, queries, progress.String())
}

func TestRunSaysWhenPrometheusIsUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()
	err := Run(context.Background(), dashboards.All(), Options{Prometheus: addr, Range: time.Minute, Out: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "cannot reach Prometheus at "+addr) {
		t.Fatalf("err = %v, want it to say Prometheus at %s cannot be reached", err, addr)
	}
}

func TestRunNamesTheFailingPanel(t *testing.T) {
	srv := httptest.NewServer(&fakePrometheus{fail: true})
	defer srv.Close()
	err := Run(context.Background(), dashboards.All(), Options{Prometheus: srv.URL, Range: time.Minute, Out: t.TempDir()})
	first := dashboards.All()[0]
	if err == nil || !strings.Contains(err.Error(), first.Title+" / "+first.Panels()[0].Title) || !strings.Contains(err.Error(), "parse error") {
		t.Fatalf("err = %v, want the first panel named and Prometheus's error", err)
	}
}

func TestBucketGridDifferencesCumulativeCounts(t *testing.T) {
	at := func(v float64) []model.SamplePair {
		return []model.SamplePair{{Timestamp: 1000, Value: model.SampleValue(v)}}
	}
	g := newBucketGrid([]Series{
		{Labels: model.Metric{"le": "+Inf"}, Points: at(10)},
		{Labels: model.Metric{"le": "0.1"}, Points: at(3)},
		{Labels: model.Metric{"le": "1"}, Points: at(9)},
	})
	if c, r := g.Dims(); c != 1 || r != 3 {
		t.Fatalf("dims %d×%d, want 1×3", c, r)
	}
	for r, want := range []float64{3, 6, 1} {
		if got := g.Z(0, r); got != want {
			t.Errorf("bucket %s: %v, want %v", g.les[r], got, want)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, c := range []struct {
		unit string
		v    float64
		want string
	}{
		{"percentunit", 0.99512, "99.51 %"},
		{"s", 0.0423, "42.3 ms"},
		{"s", 2.5, "2.5 s"},
		{"s", 0.00005, "50 µs"},
		{"bytes", 52428800, "50 MiB"},
		{"reqps", 12.345, "12.35 req/s"},
		{"opm", 0.5, "0.5 /min"},
		{"short", 12000, "12k"},
		{"none", 0, "0"},
	} {
		if got := format(c.unit, c.v); got != c.want {
			t.Errorf("format(%s, %v) = %q, want %q", c.unit, c.v, got, c.want)
		}
	}
}

func TestStepAndRateInterval(t *testing.T) {
	for r, want := range map[time.Duration][2]time.Duration{
		15 * time.Minute: {5 * time.Second, 20 * time.Second},
		time.Hour:        {20 * time.Second, 25 * time.Second},
		time.Minute:      {5 * time.Second, 20 * time.Second},
	} {
		step := stepFor(r)
		if step != want[0] || rateInterval(step) != want[1] {
			t.Errorf("range %s: step %s, rate interval %s; want %s, %s", r, step, rateInterval(step), want[0], want[1])
		}
	}
}
