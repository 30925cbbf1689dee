package snapshot

import (
	"encoding/binary"
	"fmt"
	"image/color"
	"math"
	"os"
	"sort"
	"strconv"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/palette/brewer"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/mercato-dev/mercato/deploy/dashboards"
)

// Image sizes, in points (1/72 inch), drawn at 96 dots per inch.
const (
	width       = 720
	plotHeight  = 300
	statHeight  = 200
	legendRow   = 13
	legendCols  = 2
	legendLimit = 24 // entries shown; the rest are counted
	dpi         = 96
)

// palette12 is Grafana's classic series palette.
var palette12 = []color.Color{
	rgb(0x7EB26D), rgb(0xEAB839), rgb(0x6ED0E0), rgb(0xEF843C), rgb(0xE24D42), rgb(0x1F78C1),
	rgb(0xBA43A9), rgb(0x705DA0), rgb(0x508642), rgb(0xCCA300), rgb(0x447EBC), rgb(0xC15C17),
}

// thresholdColors are the Grafana colour names the dashboards' thresholds use.
var thresholdColors = map[string]color.Color{
	"green": rgb(0x37872D), "orange": rgb(0xFF9830), "red": rgb(0xC4162A),
}

// rgb is the colour of a hexadecimal 0xRRGGBB.
func rgb(v uint32) color.Color {
	b := binary.BigEndian.AppendUint32(nil, v)
	return color.RGBA{R: b[1], G: b[2], B: b[3], A: 0xff}
}

func renderFile(path string, p dashboards.Panel, lines []Series, r v1.Range) error {
	var c *vgimg.Canvas
	var err error
	switch p.Kind {
	case dashboards.Stat, dashboards.Gauge:
		c = renderStat(p, lines)
	case dashboards.Heatmap:
		c, err = renderHeatmap(p, lines, r)
	default:
		c, err = renderTimeSeries(p, lines, r)
	}
	if err != nil {
		return err
	}
	f, err := os.Create(path) //nolint:gosec // G304: a file under the -out folder its user chose
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func newCanvas(h vg.Length) (*vgimg.Canvas, draw.Canvas) {
	c := vgimg.NewWith(vgimg.UseWH(width, h), vgimg.UseDPI(dpi), vgimg.UseBackgroundColor(color.White))
	return c, draw.New(c)
}

func newPlot(p dashboards.Panel, r v1.Range) *plot.Plot {
	pl := plot.New()
	pl.Title.Text = p.Title
	pl.Title.TextStyle.Font.Size = 13
	pl.X.Min, pl.X.Max = float64(r.Start.Unix()), float64(r.End.Unix())
	layout := "15:04"
	if r.End.Sub(r.Start) < 10*time.Minute {
		layout = "15:04:05"
	}
	pl.X.Tick.Marker = plot.TimeTicks{Format: layout, Time: func(t float64) time.Time { return time.Unix(int64(t), 0) }}
	pl.Y.Tick.Marker = unitTicks{p.Unit}
	pl.Add(plotter.NewGrid())
	return pl
}

// renderTimeSeries draws each series as a line (broken where it has no
// value) with a legend below the plot.
func renderTimeSeries(p dashboards.Panel, lines []Series, r v1.Range) (*vgimg.Canvas, error) {
	pl := newPlot(p, r)
	legend := make([]legendEntry, 0, len(lines))
	ymin, ymax := math.Inf(1), math.Inf(-1)
	for i, s := range lines {
		style := draw.LineStyle{Color: palette12[i%len(palette12)], Width: vg.Points(1.5)}
		if i >= len(palette12) {
			style.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		for _, segment := range segments(s.Points) {
			l, err := plotter.NewLine(segment)
			if err != nil {
				return nil, err
			}
			l.LineStyle = style
			pl.Add(l)
			for _, xy := range segment {
				ymin, ymax = math.Min(ymin, xy.Y), math.Max(ymax, xy.Y)
			}
		}
		legend = append(legend, legendEntry{s.Name + "  " + lastValue(p.Unit, s), style})
	}
	if math.IsInf(ymin, 0) {
		ymin, ymax = 0, 1
		pl.Title.Text += " (no data)"
	}
	pl.Y.Min, pl.Y.Max = math.Min(0, ymin), ymax
	if pl.Y.Max <= pl.Y.Min {
		pl.Y.Max = pl.Y.Min + 1
	}
	if p.Max != nil {
		pl.Y.Max = math.Max(pl.Y.Max, *p.Max)
	}
	rows := (min(len(legend), legendLimit+1) + legendCols - 1) / legendCols
	legendH := vg.Length(rows*legendRow + 8)
	c, dc := newCanvas(plotHeight + legendH)
	pl.Draw(draw.Crop(dc, 0, 0, legendH, 0))
	drawLegend(draw.Crop(dc, 8, -8, 0, -plotHeight), legend)
	return c, nil
}

// segments splits samples into runs without NaN or infinite values.
func segments(points []model.SamplePair) []plotter.XYs {
	var out []plotter.XYs
	var cur plotter.XYs
	for _, sp := range points {
		v := float64(sp.Value)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			if len(cur) > 0 {
				out = append(out, cur)
			}
			cur = nil
			continue
		}
		cur = append(cur, plotter.XY{X: float64(sp.Timestamp.Unix()), Y: v})
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func last(s Series) (float64, bool) {
	for i := len(s.Points) - 1; i >= 0; i-- {
		if v := float64(s.Points[i].Value); !math.IsNaN(v) && !math.IsInf(v, 0) {
			return v, true
		}
	}
	return 0, false
}

func lastValue(unit string, s Series) string {
	if v, ok := last(s); ok {
		return "(last " + format(unit, v) + ")"
	}
	return "(no value)"
}

type legendEntry struct {
	name  string
	style draw.LineStyle
}

// drawLegend writes the entries in columns, the first legendLimit of them.
func drawLegend(c draw.Canvas, entries []legendEntry) {
	sty := text.Style{Color: color.Black, Font: font.From(plot.DefaultFont, 9), Handler: plot.DefaultTextHandler, YAlign: draw.YCenter}
	colW := (c.Max.X - c.Min.X) / legendCols
	for i, e := range entries {
		if i == legendLimit && len(entries) > legendLimit+1 {
			e = legendEntry{name: fmt.Sprintf("… and %d more", len(entries)-legendLimit)}
		}
		if i > legendLimit {
			break
		}
		x := c.Min.X + vg.Length(i%legendCols)*colW
		y := c.Max.Y - vg.Length(i/legendCols*legendRow) - legendRow/2
		if e.style.Color != nil {
			c.StrokeLine2(e.style, x, y, x+18, y)
		}
		c.FillText(sty, vg.Point{X: x + 24, Y: y}, e.name)
	}
}

// renderStat draws the last value of each series as a big number, coloured
// by the panel's thresholds, with the series' name under it.
func renderStat(p dashboards.Panel, lines []Series) *vgimg.Canvas {
	c, dc := newCanvas(statHeight)
	title := text.Style{Color: color.Black, Font: font.From(plot.DefaultFont, 13), Handler: plot.DefaultTextHandler, XAlign: draw.XCenter, YAlign: draw.YTop}
	dc.FillText(title, vg.Point{X: width / 2, Y: statHeight - 8}, p.Title)
	type cell struct{ value, name string }
	var cells []cell
	var colours []color.Color
	for _, s := range lines {
		v, ok := last(s)
		if !ok {
			continue
		}
		cells = append(cells, cell{format(p.Unit, v), s.Name})
		colours = append(colours, thresholdColor(p.Thresholds, v))
	}
	if len(cells) == 0 {
		cells = []cell{{"no data", ""}}
		colours = []color.Color{color.Gray{Y: 0x80}}
	}
	perRow := min(len(cells), 6)
	rows := (len(cells) + perRow - 1) / perRow
	cellW := vg.Length(width) / vg.Length(perRow)
	cellH := vg.Length(statHeight-30) / vg.Length(rows)
	size := min(cellH*0.5, cellW*0.22, 56)
	for i, cl := range cells {
		cx := cellW*vg.Length(i%perRow) + cellW/2
		cy := vg.Length(statHeight-30) - cellH*vg.Length(i/perRow) - cellH/2
		big := text.Style{Color: colours[i], Font: font.From(plot.DefaultFont, size), Handler: plot.DefaultTextHandler, XAlign: draw.XCenter, YAlign: draw.YCenter}
		dc.FillText(big, vg.Point{X: cx, Y: cy + size*0.2}, cl.value)
		small := text.Style{Color: color.Gray{Y: 0x40}, Font: font.From(plot.DefaultFont, 9), Handler: plot.DefaultTextHandler, XAlign: draw.XCenter, YAlign: draw.YTop}
		dc.FillText(small, vg.Point{X: cx, Y: cy - size*0.45}, cl.name)
	}
	return c
}

func thresholdColor(steps []dashboards.Step, v float64) color.Color {
	col := rgb(0x1F78C1) // Grafana's blue, for a panel without thresholds
	for i, s := range steps {
		if i == 0 || v >= s.Value {
			if c, ok := thresholdColors[s.Color]; ok {
				col = c
			}
		}
	}
	return col
}

// renderHeatmap draws bucket series (cumulative, one per le) as counts per
// bucket over time.
func renderHeatmap(p dashboards.Panel, lines []Series, r v1.Range) (*vgimg.Canvas, error) {
	grid := newBucketGrid(lines)
	pl := newPlot(p, r)
	c, dc := newCanvas(plotHeight)
	if cols, rows := grid.Dims(); cols < 2 || rows < 2 {
		pl.Title.Text += " (no data)"
		pl.Y.Min, pl.Y.Max = 0, 1
		pl.Draw(dc)
		return c, nil
	}
	// Light for few requests, dark for many: the dashboard's scheme.
	oranges, err := brewer.GetPalette(brewer.TypeSequential, "Oranges", 9)
	if err != nil {
		return nil, err
	}
	hm := plotter.NewHeatMap(grid, oranges)
	hm.NaN = color.White
	if hm.Max <= hm.Min { // no request at all: one colour, not a division by zero
		hm.Max = hm.Min + 1
	}
	pl.Add(hm)
	ticks := make(plot.ConstantTicks, len(grid.les))
	for i, le := range grid.les {
		label := "+Inf"
		if v, err := strconv.ParseFloat(le, 64); err == nil && !math.IsInf(v, 0) {
			label = "≤ " + format(p.Unit, v)
		}
		ticks[i] = plot.Tick{Value: float64(i), Label: label}
	}
	pl.Y.Tick.Marker = ticks
	pl.Draw(dc)
	return c, nil
}

// bucketGrid is the GridXYZ of a heat map: columns are timestamps, rows
// the buckets in le order, values the requests that fell in each bucket
// (the cumulative bucket counts, differenced).
type bucketGrid struct {
	times []float64
	les   []string
	z     [][]float64 // [row][column]
}

func newBucketGrid(lines []Series) *bucketGrid {
	type bucket struct {
		le    float64
		label string
		at    map[model.Time]float64
	}
	var buckets []bucket
	stamps := map[model.Time]bool{}
	for _, s := range lines {
		label := string(s.Labels["le"])
		le, err := strconv.ParseFloat(label, 64)
		if err != nil {
			continue
		}
		b := bucket{le: le, label: label, at: map[model.Time]float64{}}
		for _, sp := range s.Points {
			b.at[sp.Timestamp] = float64(sp.Value)
			stamps[sp.Timestamp] = true
		}
		buckets = append(buckets, b)
	}
	sort.Slice(buckets, func(i, j int) bool { return buckets[i].le < buckets[j].le })
	g := &bucketGrid{}
	times := make([]model.Time, 0, len(stamps))
	for t := range stamps {
		times = append(times, t)
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	for _, t := range times {
		g.times = append(g.times, float64(t.Unix()))
	}
	for i, b := range buckets {
		g.les = append(g.les, b.label)
		row := make([]float64, len(times))
		for j, t := range times {
			v, ok := b.at[t]
			if !ok {
				row[j] = math.NaN()
				continue
			}
			if i > 0 {
				v -= buckets[i-1].at[t]
			}
			row[j] = math.Max(v, 0)
		}
		g.z = append(g.z, row)
	}
	return g
}

func (g *bucketGrid) Dims() (c, r int)   { return len(g.times), len(g.les) }
func (g *bucketGrid) Z(c, r int) float64 { return g.z[r][c] }
func (g *bucketGrid) X(c int) float64    { return g.times[c] }
func (g *bucketGrid) Y(r int) float64    { return float64(r) }
