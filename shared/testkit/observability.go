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
	return private(t, "Jaeger", func() (*localinfra.Jaeger, error) {
		dir, err := serverDir("jaeger")
		if err != nil {
			return nil, err
		}
		return localinfra.StartJaeger(context.Background(), localinfra.JaegerOptions{Dir: dir})
	})
}

// NewVictoriaLogs starts a VictoriaLogs for this test alone, on a free
// port, and stops it when the test ends. Its binary is the pinned build in
// bin/ (`make deps`).
func NewVictoriaLogs(t testing.TB) *localinfra.VictoriaLogs {
	t.Helper()
	return private(t, "VictoriaLogs", func() (*localinfra.VictoriaLogs, error) {
		dir, err := serverDir("victoria-logs")
		if err != nil {
			return nil, err
		}
		return localinfra.StartVictoriaLogs(context.Background(), localinfra.VictoriaLogsOptions{Dir: dir})
	})
}

// NewPrometheus starts a Prometheus for this test alone, on a free port
// unless o.Port is set, with its folder made here (o.Dir is ignored), and
// stops it when the test ends. Its binary is Debian's (`make deps`).
func NewPrometheus(t testing.TB, o localinfra.PrometheusOptions) *localinfra.Prometheus {
	t.Helper()
	return private(t, "Prometheus", func() (*localinfra.Prometheus, error) {
		dir, err := serverDir("prometheus")
		if err != nil {
			return nil, err
		}
		o.Dir = dir
		return localinfra.StartPrometheus(context.Background(), o)
	})
}

// NewAlertmanager starts an Alertmanager with the configuration config for
// this test alone, on a free port, and stops it when the test ends. Its
// binary is Debian's prometheus-alertmanager (`make deps`).
func NewAlertmanager(t testing.TB, config []byte) *localinfra.Alertmanager {
	t.Helper()
	return private(t, "Alertmanager", func() (*localinfra.Alertmanager, error) {
		dir, err := serverDir("alertmanager")
		if err != nil {
			return nil, err
		}
		return localinfra.StartAlertmanager(context.Background(), localinfra.AlertmanagerOptions{Dir: dir, Config: config})
	})
}
