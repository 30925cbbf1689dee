package testkit

import (
	"context"
	"testing"

	"github.com/mercato-dev/mercato/shared/localinfra"
)

// NewJaeger starts a Jaeger (OTLP/HTTP in, query API out, traces in
// memory) for this test alone, on free ports, and stops it when the test
// ends. Its binary is the pinned build in bin/ (`make deps`).
func NewJaeger(t testing.TB) *localinfra.Jaeger {
	t.Helper()
	return private(t, "Jaeger", inFolder("jaeger", func(dir string) (*localinfra.Jaeger, error) {
		return localinfra.StartJaeger(context.Background(), localinfra.JaegerOptions{Dir: dir})
	}))
}

// NewVictoriaLogs starts a VictoriaLogs for this test alone, on a free
// port, and stops it when the test ends. Its binary is the pinned build in
// bin/ (`make deps`).
func NewVictoriaLogs(t testing.TB) *localinfra.VictoriaLogs {
	t.Helper()
	return private(t, "VictoriaLogs", inFolder("victoria-logs", func(dir string) (*localinfra.VictoriaLogs, error) {
		return localinfra.StartVictoriaLogs(context.Background(), localinfra.VictoriaLogsOptions{Dir: dir})
	}))
}

// NewPrometheus starts a Prometheus for this test alone, on a free port
// unless o.Port is set, with its folder made here (o.Dir is ignored), and
// stops it when the test ends. Its binary is Debian's (`make deps`).
func NewPrometheus(t testing.TB, o localinfra.PrometheusOptions) *localinfra.Prometheus {
	t.Helper()
	return private(t, "Prometheus", inFolder("prometheus", func(dir string) (*localinfra.Prometheus, error) {
		o.Dir = dir
		return localinfra.StartPrometheus(context.Background(), o)
	}))
}

// NewAlertmanager starts an Alertmanager with the configuration config for
// this test alone, on a free port, and stops it when the test ends. Its
// binary is Debian's prometheus-alertmanager (`make deps`).
func NewAlertmanager(t testing.TB, config []byte) *localinfra.Alertmanager {
	t.Helper()
	return private(t, "Alertmanager", inFolder("alertmanager", func(dir string) (*localinfra.Alertmanager, error) {
		return localinfra.StartAlertmanager(context.Background(), localinfra.AlertmanagerOptions{Dir: dir, Config: config})
	}))
}
