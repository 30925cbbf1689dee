package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/consul/api"
	"go.yaml.in/yaml/v3"

	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/localinfra"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// dashboardQueriesFile lists every query of every dashboard panel with its
// variables filled in (written by deploy/cmd/dashboards).
const dashboardQueriesFile = "deploy/grafana/queries.json"

// dashboardQuery is one entry of dashboardQueriesFile.
type dashboardQuery struct {
	Dashboard string            `json:"dashboard"`
	Panel     string            `json:"panel"`
	Expr      string            `json:"expr"`
	Vars      map[string]string `json:"vars"`
}

// consulTargets lists every instance registered in the Consul agent at
// consulAddr, passing or not, as the scrape targets make run's Prometheus
// gets: labels service (the Consul service) and instance (the service ID),
// the gateway at its admin port.
func consulTargets(t *testing.T, consulAddr string) []localinfra.PrometheusTarget {
	t.Helper()
	client, err := api.NewClient(&api.Config{Address: consulAddr, Token: testkit.ConsulToken(t, consulAddr, "")})
	if err != nil {
		t.Fatal(err)
	}
	names, _, err := client.Catalog().Services(nil)
	if err != nil {
		t.Fatal(err)
	}
	var targets []localinfra.PrometheusTarget
	for name := range names {
		entries, _, err := client.Catalog().Service(name, "metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			port := strconv.Itoa(e.ServicePort)
			if admin := e.ServiceMeta[discovery.AdminPortMeta]; admin != "" {
				port = admin
			}
			targets = append(targets, localinfra.PrometheusTarget{
				Addr:   net.JoinHostPort(e.ServiceAddress, port),
				Labels: map[string]string{"service": e.ServiceName, "instance": e.ServiceID},
			})
		}
	}
	sort.Slice(targets, func(i, j int) bool { return targets[i].Labels["instance"] < targets[j].Labels["instance"] })
	return targets
}

// waitScraped waits until Prometheus has scraped every target and found it up.
func waitScraped(t *testing.T, prom *localinfra.Prometheus, targets []localinfra.PrometheusTarget) {
	t.Helper()
	waitFor(t, 30*time.Second, fmt.Sprintf("Prometheus scraping all %d targets", len(targets)), func() error {
		v, err := prom.Value(context.Background(), `count(up == 1)`)
		if err != nil {
			return err
		}
		if int(v) != len(targets) {
			return fmt.Errorf("%v of %d up", v, len(targets))
		}
		return nil
	})
}

// readDashboardQueries reads the dashboards' queries, failing clearly when
// the file is not there.
func readDashboardQueries(t *testing.T) []dashboardQuery {
	t.Helper()
	root, err := localinfra.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, dashboardQueriesFile))
	if err != nil {
		t.Fatalf("the dashboards' queries: %v (deploy/cmd/dashboards writes %s: `make monitoring-config`)", err, dashboardQueriesFile)
	}
	var queries []dashboardQuery
	if err := json.Unmarshal(b, &queries); err != nil {
		t.Fatalf("%s: %v", dashboardQueriesFile, err)
	}
	if len(queries) == 0 {
		t.Fatalf("%s lists no query", dashboardQueriesFile)
	}
	return queries
}

// TestMonitoringLiveData runs the checkout platform, notification included,
// with a real Prometheus scraping every instance (labels as under make run),
// drives the traffic the dashboards show (a checkout, a declined card, a
// refund, a 404, a rate-limited burst), then runs every dashboard query
// through Prometheus's API: none may fail or come back empty.
func TestMonitoringLiveData(t *testing.T) {
	queries := readDashboardQueries(t)
	sink := startSink(t)
	p := startCheckoutPlatform(t, checkoutOptions{notification: true, sink: sink})
	// A second gateway that allows a client 5 requests at once, for the burst.
	strict := start(t, "gateway", "-consul-addr", p.consul, "-redis-addr", testkit.ArgValue(p.args["user"], "redis-addr"),
		"-jwt-secret", jwtSecret, "-rate-limit", "60", "-rate-burst", "5")
	waitPassing(t, p.consul, "gateway", 2)
	targets := consulTargets(t, p.consul)
	prom := testkit.NewPrometheus(t, localinfra.PrometheusOptions{Targets: targets})
	waitScraped(t, prom, targets)

	// A checkout, then its refund.
	mug := p.seed(t, "Monitoring Mug", "19.99", 50)
	_, token := p.customer(t)
	o := p.place(t, token, cardOK, checkoutLine{mug, 1})
	o = p.waitStatus(t, token, o.ID, "confirmed", 30*time.Second)
	p.call(t, "POST", "/api/v1/payments/"+o.Payment.ID+"/refunds", p.admin, map[string]string{"amount": "5.00", "reason": "scratched"}).
		must(t, http.StatusCreated)
	// A declined card.
	declined := p.place(t, token, cardDeclined, checkoutLine{mug, 1})
	p.waitStatus(t, token, declined.ID, "cancelled", 30*time.Second)
	// A 404.
	p.call(t, "GET", "/api/v1/products/"+uuid.NewString(), "", nil).must(t, http.StatusNotFound)
	// A burst past the strict gateway's allowance.
	burst := newClient(t, strict.addr)
	limited := 0
	for range 20 {
		if burst.do("GET", "/api/v1/products", "", nil).Status == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("20 requests at once to a gateway allowing 5: none answered 429")
	}
	t.Logf("traffic: a checkout and its refund, a declined card, a 404, %d of 20 requests rate-limited", limited)

	// Every query answers with series once the scrapes after the traffic are
	// in (rates need two samples in their window): bounded, then the queries
	// still failing are the failures.
	ctx := context.Background()
	failures := map[int]string{}
	deadline := time.Now().Add(45 * time.Second)
	for {
		clear(failures)
		for i, q := range queries {
			samples, err := prom.Query(ctx, q.Expr)
			var qerr *localinfra.PrometheusQueryError
			switch {
			case errors.As(err, &qerr):
				failures[i] = "error: " + qerr.Type + ": " + qerr.Message
			case err != nil:
				t.Fatal(err)
			case len(samples) == 0:
				failures[i] = "no series"
			}
		}
		if len(failures) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	for i, q := range queries {
		if f, ok := failures[i]; ok {
			t.Errorf("dashboard %q, panel %q (vars %v): %s\n    %s", q.Dashboard, q.Panel, q.Vars, f, q.Expr)
		}
	}
	t.Logf("%d of %d dashboard queries answered with series", len(queries)-len(failures), len(queries))
}

// instanceDownRules is a copy of the repository's rule file with
// InstanceDown's `for` shortened to forDur (its expression as it is), so a
// test need not wait the minute; the real rule's timing is promtool's to
// test (alerts_test.yml).
func instanceDownRules(t *testing.T, forDur string) string {
	t.Helper()
	root, err := localinfra.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, alertRulesFile))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	found := false
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == "alert" && n.Content[i+1].Value == "InstanceDown" {
					for j := 0; j+1 < len(n.Content); j += 2 {
						if n.Content[j].Value == "for" {
							n.Content[j+1].Value = forDur
							found = true
						}
					}
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&doc)
	if !found {
		t.Fatalf("%s has no InstanceDown rule with a `for`", alertRulesFile)
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "alerts.yml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestInstanceDownReachesAlertmanager kills one of two user instances and
// sees InstanceDown, for that instance, reach Alertmanager's API, and
// Alertmanager email it, through the configuration make run uses.
func TestInstanceDownReachesAlertmanager(t *testing.T) {
	consul := testkit.NewConsul(t).Addr()
	redisAddr := testkit.NewRedis(t).Addr()
	db := testkit.PostgresURL(t)
	var users []*proc
	for range 2 {
		users = append(users, start(t, "user", "-consul-addr", consul, "-database-url", db, "-redis-addr", redisAddr,
			"-jwt-secret", jwtSecret, "-bcrypt-cost", "4"))
	}
	entries := waitPassing(t, consul, "user", 2)

	sink := startSink(t)
	root, err := localinfra.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := localinfra.RenderAlertmanagerConfig(filepath.Join(root, localinfra.AlertmanagerTemplate), localinfra.AlertReceiver{
		Smarthost: sink.ln.Addr().String(), From: "alertmanager@mercato.test", To: "oncall@mercato.test"})
	if err != nil {
		t.Fatal(err)
	}
	am := testkit.NewAlertmanager(t, cfg)
	targets := consulTargets(t, consul)
	prom := testkit.NewPrometheus(t, localinfra.PrometheusOptions{
		Targets: targets, RuleFiles: []string{instanceDownRules(t, "2s")}, AlertmanagerURL: am.URL(),
	})
	waitScraped(t, prom, targets)

	// The killed instance is the one whose address is the first proc's.
	victim := ""
	for _, e := range entries {
		if net.JoinHostPort(e.Service.Address, strconv.Itoa(e.Service.Port)) == users[0].addr {
			victim = e.Service.ID
		}
	}
	if victim == "" {
		t.Fatalf("user %s is not in Consul: %v", users[0].addr, entries)
	}
	users[0].kill()
	ctx := context.Background()
	var got localinfra.AlertmanagerAlert
	waitFor(t, 60*time.Second, "InstanceDown for "+victim+" in Alertmanager", func() error {
		alerts, err := am.Alerts(ctx)
		if err != nil {
			return err
		}
		var seen []string
		for _, a := range alerts {
			seen = append(seen, a.Labels["alertname"]+"/"+a.Labels["instance"])
			if a.Labels["alertname"] == "InstanceDown" && a.Labels["instance"] == victim {
				got = a
				return nil
			}
		}
		return fmt.Errorf("alerts: %v", seen)
	})
	if got.Labels["service"] != "user" || got.Labels["severity"] != "warning" || got.Status.State != "active" ||
		!strings.Contains(got.Annotations["summary"], victim) || got.Annotations["runbook"] == "" {
		t.Errorf("alert %+v", got)
	}
	// The other instance is up: no alert for it, nor ServiceDown.
	alerts, err := am.Alerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts {
		if a.Labels["alertname"] == "ServiceDown" || (a.Labels["alertname"] == "InstanceDown" && a.Labels["instance"] != victim) {
			t.Errorf("unexpected alert %v", a.Labels)
		}
	}

	// The email follows the route's group_wait (30 s for a warning).
	var mail sunkMail
	waitFor(t, 60*time.Second, "the alert's email", func() error {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		for _, m := range sink.mails {
			if strings.Contains(m.subject, "InstanceDown") {
				mail = m
				return nil
			}
		}
		return errors.New("no email yet")
	})
	// Its subject: the group (alertname, service), then the labels its
	// alerts share, the instance among them.
	if mail.to != "oncall@mercato.test" || !strings.Contains(mail.subject, "[FIRING:1] InstanceDown user") || !strings.Contains(mail.subject, victim) {
		t.Errorf("email to %s, subject %q; want oncall@mercato.test, [FIRING:1] InstanceDown user (... %s ...)", mail.to, mail.subject, victim)
	}
}
