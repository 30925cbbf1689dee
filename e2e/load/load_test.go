package load

import (
	"bytes"
	"context"
	"image/png"
	"strings"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

func TestCheckTargetRefusesWhatIsNotALoopbackGateway(t *testing.T) {
	for _, tc := range []struct {
		target string
		remote bool
		ok     bool
	}{
		{"http://127.0.0.1:3000", false, true},
		{"http://localhost:3000", false, true},
		{"http://127.0.0.2:3000", false, true},
		{"http://[::1]:3000", false, true},
		{"https://127.0.0.1", false, true},
		{"http://10.0.0.5:3000", false, false},
		{"http://example.com", false, false},
		{"http://example.com", true, true},
		{"http://127.0.0.1:3000/api/v1", false, false},
		{"ftp://127.0.0.1", false, false},
		{"127.0.0.1:3000", false, false},
	} {
		err := checkTarget(tc.target, tc.remote)
		if (err == nil) != tc.ok {
			t.Errorf("checkTarget(%q, remote %v) = %v, want ok %v", tc.target, tc.remote, err, tc.ok)
		}
	}
}

func TestConfigBoundsEveryKnob(t *testing.T) {
	c, err := Config{}.Checked()
	if err != nil || c.Rate != DefaultRate || c.Duration != DefaultDuration || c.Target != DefaultTarget || len(c.Mix) != len(Scenarios) {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	for name, bad := range map[string]Config{
		"rate":     {Rate: MaxRate + 1},
		"duration": {Duration: MaxDuration + time.Second},
		"users":    {Users: MaxUsers + 1},
		"mix":      {Mix: map[Scenario]int{"teleport": 1}},
		"no mix":   {Mix: map[Scenario]int{Browse: 0}},
		"card":     {Cards: map[string]int{"4111111111111111": 1}},
		"remote":   {Target: "http://192.168.1.1:3000"},
	} {
		if _, err := bad.Checked(); err == nil {
			t.Errorf("%s: %+v accepted", name, bad)
		}
	}
}

func TestParseMix(t *testing.T) {
	mix, err := ParseMix("checkout")
	if err != nil || len(mix) != 1 || mix[Checkout] != 1 {
		t.Errorf("checkout alone: %v %v", mix, err)
	}
	mix, err = ParseMix("browse=3, checkout=1")
	if err != nil || mix[Browse] != 3 || mix[Checkout] != 1 || FormatMix(mix) != "browse=3,checkout=1" {
		t.Errorf("weights: %v %v", mix, err)
	}
	for _, bad := range []string{"", "shop", "browse=-1", "browse=x", "browse,browse"} {
		if _, err := ParseMix(bad); err == nil {
			t.Errorf("ParseMix(%q) accepted", bad)
		}
	}
	r := rates(100, map[Scenario]int{Browse: 3, Checkout: 1, Orders: 0})
	if r[Browse] != 75 || r[Checkout] != 25 || len(r) != 2 {
		t.Errorf("rates: %v", r)
	}
}

func TestRouteAndErrorCode(t *testing.T) {
	id := "0b7c9a4e-6d1f-4c8e-9a55-2f9a3c1d7e10"
	for url, want := range map[string]string{
		"http://g/api/v1/products?q=mug":           "GET /products",
		"http://g/api/v1/products/" + id:           "GET /products/{id}",
		"http://g/api/v1/orders/" + id + "/cancel": "GET /orders/{id}/cancel",
	} {
		if got := routeOf("GET", url); got != want {
			t.Errorf("routeOf(%s) = %q, want %q", url, got, want)
		}
	}
	for _, tc := range []struct {
		r    vegeta.Result
		want string
	}{
		{vegeta.Result{Code: 201}, ""},
		{vegeta.Result{Code: 409, Error: "409 Conflict", Body: []byte(`{"error":{"code":"out_of_stock","message":"m"}}`)}, "409 out_of_stock"},
		{vegeta.Result{Code: 502, Error: "502 Bad Gateway", Body: []byte(`<html>`)}, "502"},
		{vegeta.Result{Error: "Post \"http://g\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"}, "timeout"},
		{vegeta.Result{Error: "dial tcp 127.0.0.1:1: connect: connection refused"}, "connection refused"},
	} {
		if got := errorCode(&tc.r); got != tc.want {
			t.Errorf("errorCode(%d %q) = %q, want %q", tc.r.Code, tc.r.Error, got, tc.want)
		}
	}
}

func TestWeightedPicksOnlyWhatHasWeight(t *testing.T) {
	w := newWeighted(map[string]int{"a": 3, "b": 1, "never": 0})
	seen := map[string]int{}
	for range 4000 {
		seen[w.pick()]++
	}
	if seen["never"] != 0 || seen["a"] < 2500 || seen["b"] < 700 {
		t.Errorf("picks: %v", seen)
	}
	if ExpectedStatus("4242") != "confirmed" || ExpectedStatus("0002") != "cancelled" || ExpectedStatus("9995") != "cancelled" || ExpectedStatus("1111") != "" {
		t.Error("ExpectedStatus does not follow the sandbox cards")
	}
}

// TestReportOfCollectedResults feeds the collector results as vegeta
// would and reads them back as the table, the timeline and the chart.
func TestReportOfCollectedResults(t *testing.T) {
	start := time.Now()
	col := newCollector(start)
	for i := range 100 {
		at := start.Add(time.Duration(i) * 20 * time.Millisecond)
		col.add(Product, &vegeta.Result{Method: "GET", URL: "http://g/api/v1/products/0b7c9a4e-6d1f-4c8e-9a55-2f9a3c1d7e10",
			Code: 200, Timestamp: at, Latency: time.Duration(i+1) * time.Millisecond})
		if i%10 == 0 {
			col.add(Checkout, &vegeta.Result{Method: "POST", URL: "http://g/api/v1/orders", Code: 409, Error: "409 Conflict",
				Body: []byte(`{"error":{"code":"out_of_stock","message":"m"}}`), Timestamp: at, Latency: 5 * time.Millisecond})
		}
	}
	if line := col.progress(start.Add(time.Second), 2*time.Second); !strings.Contains(line, "110.0 answers/s") ||
		!strings.Contains(line, "409 out_of_stock ×10") {
		t.Errorf("progress line %q", line)
	}
	r := &Report{Target: "http://g", Rate: 55, DurationSeconds: 2, Users: 1, Mix: "product=10,checkout=1"}
	col.report(r)
	if r.Total.Requests != 110 || len(r.Scenarios) != 2 || r.Scenarios[0].Scenario != Product || r.Scenarios[1].Total.Errors["409 out_of_stock"] != 10 {
		t.Fatalf("report: %+v", r)
	}
	if p := r.Scenarios[0].Routes[0]; p.Route != "GET /products/{id}" || p.Max != 100 || p.P50 < 45 || p.P50 > 55 {
		t.Errorf("product route: %+v", p)
	}
	if len(r.Timeline) != 2 || r.Timeline[0].Requests != 55 || r.Timeline[0].Errors != 5 || r.Timeline[1].Scenarios[Product].Requests != 50 {
		t.Errorf("timeline: %+v", r.Timeline)
	}
	var table bytes.Buffer
	r.WriteTable(&table)
	for _, want := range []string{"GET /products/{id}", "POST /orders", "409 out_of_stock ×10", "orders acknowledged: 0"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	var img bytes.Buffer
	if err := r.WritePNG(&img); err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(&img); err != nil {
		t.Errorf("chart: %v", err)
	}
}

func TestSettleWaitsForFinalStatesAndReportsTheRest(t *testing.T) {
	orders := []Order{{ID: "a", Status: "pending", Expected: "confirmed"}, {ID: "b", Status: "pending", Expected: "cancelled"}}
	calls := 0
	status := func(_ context.Context, open []Order) (map[string]string, error) {
		calls++
		if calls < 3 {
			return map[string]string{"a": "confirmed"}, nil
		}
		return map[string]string{"b": "cancelled"}, nil
	}
	got, err := settle(context.Background(), orders, status, time.Minute)
	if err != nil || got[0].Status != "confirmed" || got[1].Status != "cancelled" || calls != 3 {
		t.Fatalf("settle: %+v %v after %d calls", got, err, calls)
	}
	if inv := acknowledgedFinal(got, time.Minute); !inv.OK {
		t.Errorf("final orders: %+v", inv)
	}
	stuck, _ := settle(context.Background(), []Order{{ID: "c", Status: "pending", Expected: "confirmed"}},
		func(context.Context, []Order) (map[string]string, error) { return map[string]string{}, nil }, 300*time.Millisecond)
	if inv := acknowledgedFinal(stuck, 300*time.Millisecond); inv.OK || !strings.Contains(inv.Detail, "c (card ) is pending") {
		t.Errorf("a stuck order: %+v", inv)
	}
}

// TestTargetsAreTakenInTurn: with Targets, requests go to each gateway in
// turn, and a target that is not loopback is refused like Target.
func TestTargetsAreTakenInTurn(t *testing.T) {
	c, err := Config{Targets: []string{"http://127.0.0.1:1/", "http://127.0.0.1:2"}}.Checked()
	if err != nil {
		t.Fatal(err)
	}
	s := &shop{api: c.Target + "/api/v1"}
	for _, tg := range c.Targets {
		s.spread = append(s.spread, tg+"/api/v1")
	}
	seen := map[string]int{}
	for range 10 {
		seen[s.next()]++
	}
	if seen["http://127.0.0.1:1/api/v1"] != 5 || seen["http://127.0.0.1:2/api/v1"] != 5 {
		t.Errorf("requests by target: %v, want 5 each", seen)
	}
	if _, err := (Config{Targets: []string{"http://example.com"}}).Checked(); err == nil {
		t.Error("a remote target among Targets was accepted")
	}
}
