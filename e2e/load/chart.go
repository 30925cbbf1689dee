package load

import (
	"fmt"
	"image/color"
	"io"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// WritePNG draws the run's timeline: p50 and p99 latency by scenario, and
// requests and errors, second by second (by when requests were sent).
func (r *Report) WritePNG(w io.Writer) error { return r.WritePNGMarked(w, nil) }

// Mark is a span of a run to show on its chart: a fault, from From to To
// seconds since the first request.
type Mark struct {
	From, To float64
	Label    string
}

// WritePNGMarked is WritePNG with the marks drawn on every plot: a shaded
// band each, labelled on the traffic plot.
func (r *Report) WritePNGMarked(w io.Writer, marks []Mark) error {
	title := fmt.Sprintf("%g req/s for %gs, %d shoppers", r.Rate, r.DurationSeconds, r.Users)
	if r.Label != "" {
		title = r.Label + ": " + title
	}
	p50 := timePlot(title+" — p50 latency by scenario", "ms")
	p99 := timePlot("p99 latency by scenario", "ms")
	for i, sc := range Scenarios {
		var lo, hi plotter.XYs
		for _, s := range r.Timeline {
			if q, ok := s.Scenarios[sc]; ok && q.Requests > 0 {
				lo = append(lo, plotter.XY{X: float64(s.At), Y: q.P50})
				hi = append(hi, plotter.XY{X: float64(s.At), Y: q.P99})
			}
		}
		if len(lo) == 0 {
			continue
		}
		style := draw.LineStyle{Color: plotutil.DarkColors[i%len(plotutil.DarkColors)], Width: vg.Points(1.2)}
		for _, pl := range []struct {
			p   *plot.Plot
			xys plotter.XYs
		}{{p50, lo}, {p99, hi}} {
			l, err := plotter.NewLine(pl.xys)
			if err != nil {
				return err
			}
			l.LineStyle = style
			pl.p.Add(l)
			pl.p.Legend.Add(string(sc), l)
		}
	}
	traffic := timePlot("requests and errors per second", "per second")
	var sent, failed plotter.XYs
	for _, s := range r.Timeline {
		sent = append(sent, plotter.XY{X: float64(s.At), Y: float64(s.Requests)})
		failed = append(failed, plotter.XY{X: float64(s.At), Y: float64(s.Errors)})
	}
	for _, series := range []struct {
		name string
		xys  plotter.XYs
		c    color.Color
	}{{"requests", sent, color.RGBA{R: 0x1f, G: 0x78, B: 0xc1, A: 0xff}}, {"errors", failed, color.RGBA{R: 0xc4, G: 0x16, B: 0x2a, A: 0xff}}} {
		if len(series.xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(series.xys)
		if err != nil {
			return err
		}
		l.LineStyle = draw.LineStyle{Color: series.c, Width: vg.Points(1.2)}
		traffic.Add(l)
		traffic.Legend.Add(series.name, l)
	}

	for i, p := range []*plot.Plot{p50, p99, traffic} {
		if err := addMarks(p, marks, i == 2); err != nil {
			return err
		}
	}

	img := vgimg.NewWith(vgimg.UseWH(720, 620), vgimg.UseDPI(96), vgimg.UseBackgroundColor(color.White))
	plots := [][]*plot.Plot{{p50}, {p99}, {traffic}}
	tiles := draw.Tiles{Rows: 3, Cols: 1, PadX: vg.Points(8), PadY: vg.Points(10),
		PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(10)}
	canvases := plot.Align(plots, tiles, draw.New(img))
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
	return err
}

func timePlot(title, unit string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = 11
	p.X.Label.Text = "seconds since the first request"
	p.Y.Label.Text = unit
	p.X.Min, p.Y.Min = 0, 0
	p.Legend.Top = true
	p.Legend.Left = false
	p.Legend.TextStyle.Font.Size = 8
	p.Legend.ThumbnailWidth = vg.Points(12)
	p.Y.Tick.Marker = plot.TickerFunc(plainTicks)
	p.Add(plotter.NewGrid())
	return p
}

// plainTicks are gonum's default ticks labelled without trailing zeros
// ("250", not "250.00").
func plainTicks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i, t := range ticks {
		if t.Label != "" {
			ticks[i].Label = strconv.FormatFloat(t.Value, 'f', -1, 64)
		}
	}
	return ticks
}

// addMarks shades each mark's span over the plot's height, and, when
// labelled, names it at the top.
func addMarks(p *plot.Plot, marks []Mark, labelled bool) error {
	top := max(p.Y.Max, 1)
	var labels plotter.XYLabels
	for _, m := range marks {
		band, err := plotter.NewPolygon(plotter.XYs{{X: m.From, Y: 0}, {X: max(m.To, m.From+0.5), Y: 0},
			{X: max(m.To, m.From+0.5), Y: top}, {X: m.From, Y: top}})
		if err != nil {
			return err
		}
		band.Color = color.NRGBA{R: 0xf0, G: 0xa0, B: 0x20, A: 0x40} // NRGBA: RGBA is alpha-premultiplied, and R > A there drew an opaque purple
		band.Width = 0
		p.Add(band)
		labels.XYs = append(labels.XYs, plotter.XY{X: m.From, Y: top})
		labels.Labels = append(labels.Labels, m.Label)
	}
	if !labelled || len(marks) == 0 {
		return nil
	}
	l, err := plotter.NewLabels(labels)
	if err != nil {
		return err
	}
	for i := range l.TextStyle {
		l.TextStyle[i].Font.Size = 7
		l.TextStyle[i].Rotation = -1.5708 // down the band
	}
	p.Add(l)
	return nil
}
