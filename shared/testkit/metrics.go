package testkit

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Sample is one series of a metric: its labels and its value, a counter's
// or a gauge's.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Series returns the series of the metric name that reg holds now.
func Series(t testing.TB, reg prometheus.Gatherer, name string) []Sample {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("testkit: gathering metrics: %v", err)
	}
	var out []Sample
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			s := Sample{Labels: map[string]string{}, Value: m.GetCounter().GetValue() + m.GetGauge().GetValue()}
			for _, l := range m.GetLabel() {
				s.Labels[l.GetName()] = l.GetValue()
			}
			out = append(out, s)
		}
	}
	return out
}
