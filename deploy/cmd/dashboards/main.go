// Command dashboards writes Mercato's Grafana dashboards
// (deploy/grafana/dashboards/*.json) and the list of their queries with the
// variables filled in (deploy/grafana/queries.json) from the definitions in
// package dashboards. make monitoring-config runs it; the package's tests
// fail when the committed files differ from what it writes.
package main

import (
	"flag"
	"fmt"
	"os"
	"slices"

	"github.com/mercato-dev/mercato/deploy/dashboards"
)

func main() {
	out := flag.String("out", "deploy/grafana", "folder of the dashboards/ folder and queries.json")
	flag.Parse()
	written, err := dashboards.Write(*out, dashboards.All())
	if err != nil {
		fmt.Fprintln(os.Stderr, "dashboards:", err)
		os.Exit(1)
	}
	slices.Sort(written)
	for _, path := range written {
		fmt.Println("wrote", path)
	}
}
