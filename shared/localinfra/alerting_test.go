package localinfra

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// localReceiver is make run's receiver: MailDev.
var localReceiver = AlertReceiver{Smarthost: "127.0.0.1:1025", From: "alertmanager@mercato.local", To: "oncall@mercato.local"}

func repoTemplate(t *testing.T) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, AlertmanagerTemplate)
}

// amtoolCheck fails t unless Debian's amtool accepts the configuration.
func amtoolCheck(t *testing.T, config []byte) {
	t.Helper()
	amtool, err := exec.LookPath("amtool")
	if err != nil {
		t.Fatalf("amtool not found on PATH (Debian's prometheus-alertmanager ships it; `make deps` installs it): %v", err)
	}
	path := filepath.Join(t.TempDir(), "alertmanager.yml")
	if err := os.WriteFile(path, config, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(amtool, "check-config", path).CombinedOutput(); err != nil { //nolint:gosec // G204: amtool on a file of this test
		t.Fatalf("amtool check-config rejects the rendered configuration: %v\n%s\n--- configuration ---\n%s", err, out, config)
	}
}

// The template renders, for a local sink and for a relay with a login, into
// configurations amtool accepts, with the values as given.
func TestAlertmanagerConfigFromTemplate(t *testing.T) {
	cfg, err := RenderAlertmanagerConfig(repoTemplate(t), localReceiver)
	if err != nil {
		t.Fatal(err)
	}
	amtoolCheck(t, cfg)
	for _, want := range []string{`smtp_smarthost: 127.0.0.1:1025`, `smtp_require_tls: false`, `to: oncall@mercato.local`, `send_resolved: true`} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("rendered configuration lacks %q:\n%s", want, cfg)
		}
	}
	if strings.Contains(string(cfg), "smtp_auth_username:") {
		t.Errorf("no login given, but the configuration has one:\n%s", cfg)
	}

	relay := AlertReceiver{Smarthost: "smtp.example.com:587", From: `"Mercato" <alerts@example.com>`, To: "sre@example.com",
		RequireTLS: true, AuthUsername: "alerts", AuthPasswordFile: "/run/secrets/smtp-password"}
	cfg, err = RenderAlertmanagerConfig(repoTemplate(t), relay)
	if err != nil {
		t.Fatal(err)
	}
	amtoolCheck(t, cfg)
	for _, want := range []string{`smtp_require_tls: true`, `smtp_auth_username: alerts`, `smtp_auth_password_file: /run/secrets/smtp-password`, `'"Mercato" <alerts@example.com>'`} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("rendered configuration lacks %q:\n%s", want, cfg)
		}
	}
}

// The environment replaces the defaults; bad settings are refused, each
// naming its variable.
func TestAlertReceiverFromEnv(t *testing.T) {
	env := map[string]string{EnvAlertSmarthost: "mail.example.com:25", EnvAlertTo: "me@example.com", EnvAlertRequireTLS: "true"}
	r, err := AlertReceiverFromEnv(func(k string) string { return env[k] }, localReceiver)
	if err != nil {
		t.Fatal(err)
	}
	want := AlertReceiver{Smarthost: "mail.example.com:25", From: localReceiver.From, To: "me@example.com", RequireTLS: true}
	if r != want {
		t.Errorf("receiver %+v, want %+v", r, want)
	}
	for env, bad := range map[string]string{EnvAlertSmarthost: "no-port", EnvAlertTo: "nobody", EnvAlertRequireTLS: "maybe", EnvAlertUsername: "alone"} {
		_, err := AlertReceiverFromEnv(func(k string) string {
			if k == env {
				return bad
			}
			return ""
		}, localReceiver)
		if err == nil || !strings.Contains(err.Error(), env) {
			t.Errorf("%s=%s: error %v, want one naming %s", env, bad, err, env)
		}
	}
}

// Prometheus scrapes a target with the labels given, evaluates a rule file
// and sends the alert to Alertmanager, whose API lists it.
func TestPrometheusAlertsReachAlertmanager(t *testing.T) {
	ctx := context.Background()
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "# TYPE thing_queue gauge\nthing_queue 7")
	}))
	defer target.Close()
	cfg, err := RenderAlertmanagerConfig(repoTemplate(t), localReceiver)
	if err != nil {
		t.Fatal(err)
	}
	am, err := StartAlertmanager(ctx, AlertmanagerOptions{Dir: t.TempDir(), Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := am.Stop(); err != nil {
			t.Error(err)
		}
	}()
	rules := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(rules, []byte("groups:\n  - name: t\n    rules:\n      - alert: QueueLong\n        expr: thing_queue > 5\n        labels: {severity: warning}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	prom, err := StartPrometheus(ctx, PrometheusOptions{
		Dir:             t.TempDir(),
		Targets:         []PrometheusTarget{{Addr: strings.TrimPrefix(target.URL, "http://"), Labels: map[string]string{"service": "thing", "instance": "thing-1"}}},
		RuleFiles:       []string{rules},
		AlertmanagerURL: am.URL(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := prom.Stop(); err != nil {
			t.Error(err)
		}
	}()

	eventuallyTrue(t, "thing_queue scraped with the target's labels", func() bool {
		v, err := prom.Value(ctx, `thing_queue{service="thing", instance="thing-1"}`)
		return err == nil && v == 7
	})
	if _, err := prom.Query(ctx, `sum(`); err == nil {
		t.Error("a malformed query gave no error")
	}
	eventuallyTrue(t, "QueueLong in Alertmanager", func() bool {
		alerts, err := am.Alerts(ctx)
		if err != nil {
			return false
		}
		for _, a := range alerts {
			if a.Labels["alertname"] == "QueueLong" && a.Labels["instance"] == "thing-1" && a.Labels["service"] == "thing" {
				return true
			}
		}
		return false
	})

	// Without targets the series goes (stale), and so does the alert in Prometheus.
	if err := prom.SetTargets(nil); err != nil {
		t.Fatal(err)
	}
	eventuallyTrue(t, "no firing alert once the target is gone", func() bool {
		alerts, err := prom.Alerts(ctx)
		return err == nil && len(alerts) == 0
	})
}
