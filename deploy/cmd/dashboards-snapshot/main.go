// Command dashboards-snapshot renders every panel of Mercato's dashboards
// from a running Prometheus into PNG images (make dashboards-snapshot):
// what Grafana would show, where there is no Grafana.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/mercato-dev/mercato/deploy/dashboards"
	"github.com/mercato-dev/mercato/deploy/snapshot"
)

func main() {
	var o snapshot.Options
	flag.StringVar(&o.Prometheus, "prometheus", "http://127.0.0.1:9090", "the Prometheus to query (make run's)")
	flag.DurationVar(&o.Range, "range", 15*time.Minute, "how far back from now the panels reach")
	flag.StringVar(&o.Out, "out", "docs/monitoring", "folder of the images (<dashboard>/<panel>.png) and their index, README.md")
	flag.StringVar(&o.Service, "service", "order", "the service the Service detail dashboard shows")
	flag.Parse()
	o.Progress = os.Stdout

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := snapshot.Run(ctx, dashboards.All(), o); err != nil {
		fmt.Fprintln(os.Stderr, "dashboards-snapshot:", err)
		os.Exit(1)
	}
	fmt.Printf("index: %s/README.md\n", o.Out)
}
