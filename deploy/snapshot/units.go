package snapshot

import (
	"fmt"
	"math"

	"gonum.org/v1/plot"
)

// format writes v in a Grafana unit, as a panel shows it.
func format(unit string, v float64) string {
	switch unit {
	case "percentunit":
		return trim(v*100, 2) + " %"
	case "s":
		switch a := math.Abs(v); {
		case a == 0:
			return "0 s"
		case a < 1e-3:
			return trim(v*1e6, 0) + " µs"
		case a < 1:
			return trim(v*1e3, 1) + " ms"
		default:
			return trim(v, 2) + " s"
		}
	case "bytes":
		for _, u := range []struct {
			name string
			size float64
		}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
			if math.Abs(v) >= u.size {
				return trim(v/u.size, 1) + " " + u.name
			}
		}
		return trim(v, 0) + " B"
	case "reqps":
		return short(v) + " req/s"
	case "opm":
		return short(v) + " /min"
	}
	return short(v)
}

// short writes v with about three significant digits.
func short(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return trim(v/1e6, 2) + "M"
	case a >= 1e4:
		return trim(v/1e3, 1) + "k"
	case a >= 100 || a == 0:
		return trim(v, 0)
	case a >= 1:
		return trim(v, 2)
	default:
		return trim(v, 3)
	}
}

// trim formats v with at most decimals digits after the point, without
// trailing zeros.
func trim(v float64, decimals int) string {
	s := fmt.Sprintf("%.*f", decimals, v)
	if decimals == 0 {
		return s
	}
	for s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	if s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	return s
}

// unitTicks labels gonum's default ticks in a panel's unit.
type unitTicks struct{ unit string }

func (u unitTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = format(u.unit, ticks[i].Value)
		}
	}
	return ticks
}
