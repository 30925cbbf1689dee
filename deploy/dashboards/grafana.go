package dashboards

import (
	"cmp"
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/gauge"
	"github.com/grafana/grafana-foundation-sdk/go/heatmap"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// datasource is the reference every panel, query and variable carries, so
// the provisioned Prometheus serves them whatever the default datasource is.
var datasource = common.DataSourceRef{Type: ptr("prometheus"), Uid: ptr(DatasourceUID)}

// JSON renders d as the dashboard JSON Grafana provisions.
func JSON(d Dashboard) ([]byte, error) {
	built, err := Grafana(d)
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(built, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Grafana builds d with the foundation SDK's typed builders, in the
// dashboard schema Grafana 11 provisions from files (the SDK's dashboardv2
// is Grafana 12's new schema, which compose's Grafana 11.3 does not read).
//
//nolint:staticcheck // SA1019: see above
func Grafana(d Dashboard) (dashboard.Dashboard, error) {
	b := dashboard.NewDashboardBuilder(d.Title).
		Uid(d.UID).
		Description(d.Description).
		Tags([]string{"mercato"}).
		Timezone(common.TimeZoneBrowser).
		Time("now-1h", "now").
		Refresh("30s").
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Link(dashboard.NewDashboardLinkBuilder("Mercato").
			Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{"mercato"}).
			AsDropdown(true).
			KeepTime(true).
			IncludeVars(true))
	for _, v := range d.Variables {
		b.WithVariable(variable(v))
	}
	id := uint32(0)
	for _, row := range d.Rows {
		id++
		b.WithRow(dashboard.NewRowBuilder(row.Title).Id(id))
		for _, p := range row.Panels {
			id++
			pb, err := panel(p, id)
			if err != nil {
				return dashboard.Dashboard{}, fmt.Errorf("%s: %s: %w", d.UID, p.Title, err)
			}
			b.WithPanel(pb)
		}
	}
	built, err := b.Build()
	if err != nil {
		return dashboard.Dashboard{}, fmt.Errorf("%s: %w", d.UID, err)
	}
	return built, nil
}

func variable(v Variable) *dashboard.QueryVariableBuilder {
	b := dashboard.NewQueryVariableBuilder(v.Name).
		Label(v.Label).
		Datasource(datasource).
		Query(dashboard.StringOrMap{String: ptr(v.Query)}).
		Definition(v.Query).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc)
	if v.AllValue != "" {
		all := dashboard.VariableOption{
			Selected: ptr(true),
			Text:     dashboard.StringOrArrayOfString{String: ptr("All")},
			Value:    dashboard.StringOrArrayOfString{String: ptr("$__all")},
		}
		b.IncludeAll(true).AllValue(v.AllValue).Multi(true).Current(all)
	}
	return b
}

// panelBuilder is what the SDK's panel builders of every kind have in
// common; each method returns the builder itself.
type panelBuilder[B any] interface {
	cog.Builder[dashboard.Panel]
	Id(id uint32) B
	Title(title string) B
	Description(description string) B
	Datasource(datasource common.DataSourceRef) B
	Span(w uint32) B
	Height(h uint32) B
	Unit(unit string) B
	Min(min float64) B
	Max(max float64) B
	Thresholds(thresholds cog.Builder[dashboard.ThresholdsConfig]) B
	WithTarget(target cog.Builder[variants.Dataquery]) B
}

func panel(p Panel, id uint32) (cog.Builder[dashboard.Panel], error) {
	if len(p.Queries) == 0 {
		return nil, fmt.Errorf("no query")
	}
	switch p.Kind {
	case TimeSeries:
		b := withCommon(timeseries.NewPanelBuilder(), p, id).
			Legend(common.NewVizLegendOptionsBuilder().
				ShowLegend(true).
				DisplayMode(common.LegendDisplayModeTable).
				Placement(common.LegendPlacementBottom).
				Calcs([]string{"lastNotNull", "max"})).
			Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeMulti).Sort(common.SortOrderDescending)).
			FillOpacity(10).
			ShowPoints(common.VisibilityModeNever)
		return b, nil
	case Stat:
		return withCommon(stat.NewPanelBuilder(), p, id).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
			TextMode(common.BigValueTextModeValueAndName).
			ColorMode(common.BigValueColorModeValue).
			GraphMode(common.BigValueGraphModeArea), nil
	case Gauge:
		return withCommon(gauge.NewPanelBuilder(), p, id).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
			ShowThresholdMarkers(true), nil
	case Heatmap:
		return withCommon(heatmap.NewPanelBuilder(), p, id).
			Calculate(false).
			YAxis(heatmap.NewYAxisConfigBuilder().Unit(p.Unit)).
			Color(heatmap.NewHeatmapColorOptionsBuilder().
				Mode(heatmap.HeatmapColorModeScheme).
				Scheme("Oranges").
				Scale(heatmap.HeatmapColorScaleExponential).
				Exponent(0.5).
				Steps(64)).
			Tooltip(heatmap.NewHeatmapTooltipBuilder().Mode(common.TooltipDisplayModeSingle).YHistogram(true)).
			CellGap(1), nil
	}
	return nil, fmt.Errorf("unknown kind %q", p.Kind)
}

func withCommon[B panelBuilder[B]](b B, p Panel, id uint32) B {
	b.Id(id).Title(p.Title).Description(p.Description).Datasource(datasource).
		Span(cmp.Or(p.Width, 8)).Height(cmp.Or(p.Height, 8))
	if p.Unit != "" {
		b.Unit(p.Unit)
	}
	if p.Min != nil {
		b.Min(*p.Min)
	}
	if p.Max != nil {
		b.Max(*p.Max)
	}
	if len(p.Thresholds) > 0 {
		steps := make([]dashboard.Threshold, len(p.Thresholds))
		for i, s := range p.Thresholds {
			steps[i] = dashboard.Threshold{Color: s.Color, Value: ptr(s.Value)}
		}
		steps[0].Value = nil // the base: from minus infinity
		b.Thresholds(dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps(steps))
	}
	for i, q := range p.Queries {
		t := prometheus.NewDataqueryBuilder().
			RefId(string(rune('A' + i))).
			Datasource(datasource).
			Expr(q.Expr).
			LegendFormat(q.Legend)
		switch {
		case p.Kind == Heatmap:
			t.Format(prometheus.PromQueryFormatHeatmap)
		case q.Instant:
			t.Instant()
		default:
			t.Range()
		}
		b.WithTarget(t)
	}
	return b
}
