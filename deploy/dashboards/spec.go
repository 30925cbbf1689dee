// Package dashboards defines Mercato's Grafana dashboards as code. Each
// dashboard is a Dashboard value (rows of panels, each with its PromQL
// queries); Grafana renders it as the grafana-foundation-sdk builds it
// (grafana.go), and the same values give the list of queries the live-data
// test evaluates (queries.go) and the panels dashboards-snapshot draws.
// Every metric a query names is in the Catalogue.
package dashboards

// Kind is how Grafana draws a panel.
type Kind string

// The kinds of panel the dashboards use.
const (
	TimeSeries Kind = "timeseries"
	Stat       Kind = "stat"
	Gauge      Kind = "gauge"
	Heatmap    Kind = "heatmap"
)

// DatasourceUID is the uid of the Prometheus datasource every panel uses;
// deploy/grafana/provisioning/datasources/prometheus.yml provisions it.
const DatasourceUID = "prometheus"

// Services are the Consul service names: the values of the service label
// Prometheus adds to every series, and of the Service detail's service
// variable.
var Services = []string{"gateway", "user", "product", "order", "payment", "notification"}

// Dashboard is one Grafana dashboard.
type Dashboard struct {
	UID         string // also the file name: deploy/grafana/dashboards/<uid>.json
	Title       string
	Description string
	Variables   []Variable
	Rows        []Row
}

// Variable is a dashboard variable whose values come from Prometheus.
type Variable struct {
	Name  string
	Label string
	Query string // label_values(...), Grafana's Prometheus variable query
	// AllValue, when set, adds "All" (and multiple choice) to the variable:
	// the regular expression that stands for every value. A query uses such a
	// variable with =~.
	AllValue string
}

// Row is a titled band of panels.
type Row struct {
	Title  string
	Panels []Panel
}

// Panel is one panel and its queries.
type Panel struct {
	Title       string
	Description string // what to read from it; Grafana shows it as the panel's (i)
	Kind        Kind
	Unit        string // a Grafana unit: reqps, s, percentunit, bytes, short, opm, none
	Width       uint32 // of 24 columns; 0 means 8
	Height      uint32 // 0 means 8
	Queries     []Query
	// Thresholds colour a stat or gauge: the base colour, then each step
	// from its value up.
	Thresholds []Step
	Min, Max   *float64
	// Services, on a dashboard with a service variable, are the values for
	// which the panel has data (the services that export what it shows);
	// nil means every service. The live-data test fills the variable with
	// these.
	Services []string
}

// Query is one PromQL query of a panel, written with Grafana's variables
// ($service, $instance, $__rate_interval, $__range).
type Query struct {
	Expr   string
	Legend string // Grafana's legend format: {{label}} stands for a label's value
	// Instant asks Grafana for the value at the end of the range only (a stat
	// over $__range).
	Instant bool
}

// Step is one threshold: from Value up, the panel is Color. The first step
// of a panel is its base colour; its Value is ignored.
type Step struct {
	Value float64
	Color string
}

// All returns Mercato's dashboards.
func All() []Dashboard {
	return []Dashboard{Overview(), ServiceDetail(), Events(), Business()}
}

func ptr[T any](v T) *T { return &v }
