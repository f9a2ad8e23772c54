package rollout

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	_ "gonum.org/v1/plot/vg/vgimg" // PNG
	_ "gonum.org/v1/plot/vg/vgsvg" // SVG
)

var (
	blue   = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	orange = color.RGBA{R: 255, G: 127, B: 14, A: 255}
	green  = color.RGBA{R: 44, G: 160, B: 44, A: 255}
	red    = color.RGBA{R: 214, G: 39, B: 40, A: 255}
	grey   = color.RGBA{R: 127, G: 127, B: 127, A: 255}
)

// Plot draws the report's first paced and unpaced runs side by side (a
// column each): above, the processes started, waiting, in flight and
// uploaded over time; below, the API requests served and answered 429 per
// minute against the quota. The format is path's extension (svg or png).
func Plot(r *Report, path string) error {
	format := strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
	if format != "svg" && format != "png" {
		return fmt.Errorf("plot %s: want a .svg or .png file", path)
	}
	cols := []*Result{firstRun(r, "paced")}
	if r.Unpaced != nil {
		cols = append(cols, firstRun(r, "unpaced"))
	}
	// The same time axis and the same request axis in both columns.
	var maxMin, maxCalls float64
	for _, res := range cols {
		for _, s := range res.Timeline {
			maxMin = max(maxMin, s.At.Minutes())
		}
		for i := range res.CallsPerMinute {
			maxCalls = max(maxCalls, float64(res.CallsPerMinute[i]+res.QuotaPerMinute[i]))
		}
	}
	maxCalls = max(maxCalls, float64(r.QuotaPerMinute)) * 1.3
	grid := make([][]*plot.Plot, 2)
	for _, res := range cols {
		top, err := processesPlot(r, res, maxMin)
		if err != nil {
			return err
		}
		bottom, err := callsPlot(r, res, maxMin, maxCalls)
		if err != nil {
			return err
		}
		grid[0] = append(grid[0], top)
		grid[1] = append(grid[1], bottom)
	}
	w, h := vg.Length(len(cols))*14*vg.Centimeter, 20*vg.Centimeter
	c, err := draw.NewFormattedCanvas(w, h, format)
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: 2, Cols: len(cols), PadX: vg.Centimeter, PadY: vg.Centimeter,
		PadTop: vg.Millimeter * 3, PadBottom: vg.Millimeter * 3, PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3}
	canvases := plot.Align(grid, tiles, dc)
	for i := range grid {
		for j, p := range grid[i] {
			p.Draw(canvases[i][j])
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return f.Close()
}

// firstRun is the first run of mode (its timeline is the medians').
func firstRun(r *Report, mode string) *Result {
	for _, res := range r.Runs {
		if res.Mode == mode {
			return res
		}
	}
	if mode == "paced" {
		return r.Paced
	}
	return r.Unpaced
}

func processesPlot(r *Report, res *Result, maxMin float64) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: %d processes within %.0fs, quota %d/min", res.Mode, r.Processes, r.WindowSeconds, r.QuotaPerMinute)
	p.X.Label.Text = "minutes"
	p.Y.Label.Text = "processes"
	p.X.Min, p.X.Max = 0, maxMin
	p.Y.Min, p.Y.Max = 0, float64(r.Processes)*1.45
	p.Legend.Top, p.Legend.Left = true, false
	series := []struct {
		name string
		c    color.Color
		v    func(i int) int
	}{
		{"started", grey, func(i int) int { return res.Timeline[i].Started }},
		{"waiting for a claim", orange, func(i int) int { return res.Timeline[i].Waiting }},
		{"in flight (claimed)", blue, func(i int) int { return res.Timeline[i].InFlight }},
		{"uploaded", green, func(i int) int { return res.Timeline[i].Uploaded }},
	}
	for _, s := range series {
		xy := make(plotter.XYs, len(res.Timeline))
		for i, t := range res.Timeline {
			xy[i] = plotter.XY{X: t.At.Minutes(), Y: float64(s.v(i))}
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return nil, fmt.Errorf("plot %s: %w", s.name, err)
		}
		l.Color, l.Width = s.c, vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(s.name, l)
	}
	p.Add(plotter.NewGrid())
	return p, nil
}

func callsPlot(r *Report, res *Result, maxMin, maxCalls float64) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: API requests per minute (%d answered 429)", res.Mode, res.Exhausted)
	p.X.Label.Text = "minutes"
	p.Y.Label.Text = "requests per minute"
	p.X.Min, p.X.Max = 0, maxMin
	p.Y.Min, p.Y.Max = 0, maxCalls
	p.Legend.Top, p.Legend.Left = true, false
	// Each minute's count is drawn across its minute (a step line).
	step := func(v func(i int) int) plotter.XYs {
		var xy plotter.XYs
		for i := range res.CallsPerMinute {
			y := float64(v(i))
			xy = append(xy, plotter.XY{X: float64(i), Y: y}, plotter.XY{X: float64(i + 1), Y: y})
		}
		return xy
	}
	for _, s := range []struct {
		name string
		c    color.Color
		xy   plotter.XYs
	}{
		{"served", blue, step(func(i int) int { return res.CallsPerMinute[i] })},
		{"answered 429", red, step(func(i int) int { return res.QuotaPerMinute[i] })},
		{"quota", grey, plotter.XYs{{X: 0, Y: float64(r.QuotaPerMinute)}, {X: maxMin, Y: float64(r.QuotaPerMinute)}}},
	} {
		if len(s.xy) == 0 {
			continue
		}
		l, err := plotter.NewLine(s.xy)
		if err != nil {
			return nil, fmt.Errorf("plot %s: %w", s.name, err)
		}
		l.Color, l.Width = s.c, vg.Points(1.5)
		if s.name == "quota" {
			l.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
		}
		p.Add(l)
		p.Legend.Add(s.name, l)
	}
	p.Add(plotter.NewGrid())
	return p, nil
}
