package main

import (
	"context"
	"path/filepath"

	"github.com/mercato-dev/mercato/shared/localinfra"
)

// Traces and logs of a local run: Jaeger receives every process's spans
// over OTLP (-otlp-endpoint) and answers trace queries; VictoriaLogs
// receives every process's log lines, shipped from their log files, and
// serves the search UI. Both are the pinned builds `make deps` puts in
// bin/; without them the platform runs, untraced and with its logs in
// files only.
const (
	otlpPort         = 4318
	jaegerQueryPort  = 16686
	victoriaLogsPort = 9428
)

var (
	jaegerQueryAddr  = hostPort(jaegerQueryPort)
	victoriaLogsAddr = hostPort(victoriaLogsPort)
)

// startObservability starts Jaeger and VictoriaLogs, when built, and the
// shipper of the log files to VictoriaLogs.
func (p *platform) startObservability(ctx context.Context) error {
	if p.jaegerBin == "" {
		p.ui.warn("Jaeger is not built (bin/jaeger): running without traces; `make deps` builds it")
	} else {
		p.ui.step("starting Jaeger: OTLP/HTTP on %s, query API on http://%s (traces kept in memory)", hostPort(otlpPort), jaegerQueryAddr)
		j, err := localinfra.StartJaeger(ctx, localinfra.JaegerOptions{
			Dir: filepath.Join(p.dirs.local, "jaeger"), OTLPPort: otlpPort, QueryPort: jaegerQueryPort,
			Binary: p.jaegerBin, LogFile: p.dirs.logFile("jaeger"),
		})
		if err != nil {
			return err
		}
		p.jaeger = j
	}
	if p.victoriaLogsBin == "" {
		p.ui.warn("VictoriaLogs is not built (bin/victoria-logs): logs stay in %s only; `make deps` builds it", p.dirs.rel(p.dirs.logs))
		return nil
	}
	dir := filepath.Join(p.dirs.local, "victoria-logs")
	p.ui.step("starting VictoriaLogs on http://%s (data in %s); every service's log lines are shipped there from their files", victoriaLogsAddr, p.dirs.rel(dir))
	v, err := localinfra.StartVictoriaLogs(ctx, localinfra.VictoriaLogsOptions{
		Dir: dir, Port: victoriaLogsPort, Binary: p.victoriaLogsBin, LogFile: p.dirs.logFile("victoria-logs"),
	})
	if err != nil {
		return err
	}
	p.victoriaLogs = v
	p.shipper = localinfra.NewLogShipper(v.URL())
	p.shipper.OnFailure = func(err error) {
		if err != nil {
			p.ui.warn("log shipping to VictoriaLogs failed; the lines wait in the log files and are sent once it answers: %v", err)
		} else {
			p.ui.step("log shipping to VictoriaLogs works again")
		}
	}
	shipCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.shipper.Run(shipCtx); close(done) }()
	p.stopShipper = func() { cancel(); <-done }
	return nil
}

// tracingArgs are the flags that point a process at Jaeger, if it runs.
func (p *platform) tracingArgs() []string {
	if p.jaeger == nil {
		return nil
	}
	return []string{"-otlp-endpoint", p.jaeger.OTLPEndpoint()}
}

// shipLog ships c's log lines from this run on, as the logs of instance
// c.name of service.
func (p *platform) shipLog(service string, c *child) {
	if p.shipper != nil {
		p.shipper.Add(service, c.name, c.logPath, c.LogStart())
	}
}

// stopObservability stops the shipper, after a last pass over the files,
// then VictoriaLogs and Jaeger: after the services, whose last lines and
// spans they should get.
func (p *platform) stopObservability() {
	if p.stopShipper != nil {
		p.stopShipper()
	}
	stopServer(p, "VictoriaLogs", p.victoriaLogs)
	stopServer(p, "Jaeger", p.jaeger)
}
