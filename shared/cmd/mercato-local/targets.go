package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/mercato-dev/mercato/shared/wait"
)

// mirrorInterval is how often the targets file is brought in step with
// Consul: well within the 5 s scrape interval.
const mirrorInterval = 2 * time.Second

// fileSDGroup is one entry of a Prometheus file_sd targets file.
type fileSDGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// consulTargets lists every instance in Consul's catalogue tagged "metrics"
// as file_sd groups carrying the labels consul_sd_configs would give it, so
// the scrape job relabels it exactly as it would a Consul-discovered target.
// Like consul_sd, it includes instances whose health check is failing: they
// show as down in Prometheus rather than vanishing.
func consulTargets(ctx context.Context, catalog *api.Client) ([]fileSDGroup, error) {
	q := (&api.QueryOptions{}).WithContext(ctx)
	services, _, err := catalog.Catalog().Services(q)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(services))
	for name, tags := range services {
		if slices.Contains(tags, "metrics") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	groups := []fileSDGroup{}
	for _, name := range names {
		entries, _, err := catalog.Catalog().Service(name, "", q)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if !slices.Contains(e.ServiceTags, "metrics") {
				continue
			}
			host := e.ServiceAddress
			if host == "" {
				host = e.Address // Consul's rule: no service address means the node's
			}
			labels := map[string]string{
				"__meta_consul_service":         e.ServiceName,
				"__meta_consul_service_id":      e.ServiceID,
				"__meta_consul_service_address": host,
				"__meta_consul_service_port":    strconv.Itoa(e.ServicePort),
				"__meta_consul_node":            e.Node,
				"__meta_consul_tags":            consulTagList(e.ServiceTags),
			}
			for k, v := range e.ServiceMeta {
				labels["__meta_consul_service_metadata_"+k] = v // as consul_sd names them
			}
			groups = append(groups, fileSDGroup{
				Targets: []string{net.JoinHostPort(host, strconv.Itoa(e.ServicePort))},
				Labels:  labels,
			})
		}
	}
	sort.Slice(groups, func(i, j int) bool {
		return groups[i].Labels["__meta_consul_service_id"] < groups[j].Labels["__meta_consul_service_id"]
	})
	return groups, nil
}

// consulTagList formats tags as consul_sd_configs does for
// __meta_consul_tags: joined with "," and wrapped in ",", which is what
// metricsTagRegex expects.
func consulTagList(tags []string) string {
	return "," + strings.Join(tags, ",") + ","
}

// targetMirror keeps a file_sd targets file in step with Consul.
type targetMirror struct {
	catalog *api.Client
	path    string
	ui      *ui
	last    []byte // what the file holds now
}

// sync writes the current targets when they changed. The file is replaced
// by a rename, so Prometheus never reads half of it.
func (m *targetMirror) sync(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	groups, err := consulTargets(ctx, m.catalog)
	if err != nil {
		return fmt.Errorf("mirroring Consul into %s: %w", m.path, err)
	}
	body, err := json.MarshalIndent(groups, "", "  ")
	if err != nil {
		return err
	}
	body = append(body, '\n')
	if bytes.Equal(body, m.last) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(m.path), 0o750); err != nil {
		return err
	}
	tmp := m.path + ".tmp"
	if err := os.WriteFile(tmp, body, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, m.path); err != nil {
		return err
	}
	m.last = body
	return nil
}

// run syncs every mirrorInterval until ctx ends, warning once when Consul
// cannot be read and once when it can again, rather than every 2 s.
func (m *targetMirror) run(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	failing := false
	wait.Every(ctx, mirrorInterval, func() {
		err := m.sync(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			// stopping: nothing to say
		case err != nil && !failing:
			m.ui.warn("%v (Prometheus keeps the last targets; retrying)", err)
			failing = true
		case err == nil && failing:
			m.ui.step("Prometheus targets are in step with Consul again")
			failing = false
		}
	})
}
