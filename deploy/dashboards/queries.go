package dashboards

import (
	"maps"
	"regexp"
	"strings"
)

// Intervals are the values of Grafana's built-in interval variables in an
// expanded query.
type Intervals struct {
	Rate  string // $__rate_interval
	Range string // $__range
}

// CheckIntervals are the intervals of deploy/grafana/queries.json: a rate
// window of 1m (four scrapes at the platform's 5 s interval, and then
// some) and a range of 5m, both short enough for a test's platform.
var CheckIntervals = Intervals{Rate: "1m", Range: "5m"}

// Expanded is one query of a panel with its variables filled in, as the
// live-data test evaluates it and dashboards-snapshot draws it.
type Expanded struct {
	Dashboard string            `json:"dashboard"`
	Panel     string            `json:"panel"`
	Expr      string            `json:"expr"`
	Vars      map[string]string `json:"vars"`
	Legend    string            `json:"legend,omitempty"`
}

var variableRef = regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)`)

// Expand fills the variables of expr: the dashboard's from vars, Grafana's
// $__rate_interval and $__range from in. A variable it does not know is
// left as it is (and the query then fails to parse).
func Expand(expr string, vars map[string]string, in Intervals) string {
	return variableRef.ReplaceAllStringFunc(expr, func(ref string) string {
		name := strings.Trim(ref, "${}")
		switch name {
		case "__rate_interval":
			return in.Rate
		case "__range":
			return in.Range
		}
		if v, ok := vars[name]; ok {
			return v
		}
		return ref
	})
}

// Bindings are the sets of variable values for which p has data: one per
// service p applies to when d has a service variable, with every other
// variable at its "All" value; a single empty set when d has no variables.
// The service variable's values come from p.Services (every service when
// nil).
func (d Dashboard) Bindings(p Panel) []map[string]string {
	base := map[string]string{}
	hasService := false
	for _, v := range d.Variables {
		if v.Name == "service" {
			hasService = true
			continue
		}
		base[v.Name] = v.AllValue
	}
	if !hasService {
		return []map[string]string{base}
	}
	services := p.Services
	if services == nil {
		services = Services
	}
	out := make([]map[string]string, 0, len(services))
	for _, s := range services {
		b := maps.Clone(base)
		b["service"] = s
		out = append(out, b)
	}
	return out
}

// CheckQueries lists every query of every dashboard with its variables
// filled in for each binding that matters (deploy/grafana/queries.json).
func CheckQueries(ds []Dashboard) []Expanded {
	var out []Expanded
	for _, d := range ds {
		for _, row := range d.Rows {
			for _, p := range row.Panels {
				for _, vars := range d.Bindings(p) {
					for _, q := range p.Queries {
						out = append(out, Expanded{
							Dashboard: d.Title, Panel: p.Title,
							Expr: Expand(q.Expr, vars, CheckIntervals), Vars: vars, Legend: q.Legend,
						})
					}
				}
			}
		}
	}
	return out
}

// Panels returns every panel of d in order.
func (d Dashboard) Panels() []Panel {
	var out []Panel
	for _, row := range d.Rows {
		out = append(out, row.Panels...)
	}
	return out
}

// Slug is a file-name form of a title: lower case, words joined by "-".
func Slug(title string) string {
	fields := strings.FieldsFunc(strings.ToLower(title), func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < '0' || r > '9')
	})
	return strings.Join(fields, "-")
}
