package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mercato-dev/mercato/shared/localinfra"
)

// Alerts of a local run: Prometheus evaluates deploy/prometheus/alerts.yml
// and sends what fires to an Alertmanager on :9093, which emails it to the
// SMTP sink (MailDev), grouped, with a resolved notice when it ends. Its
// configuration is rendered from deploy/alertmanager/alertmanager.yml.tmpl,
// the one template of make run, compose and Kubernetes.
const (
	alertmanagerPort = 9093
	// alertRules is the rule file, relative to the repository root.
	alertRules = "deploy/prometheus/alerts.yml"
)

var alertmanagerAddr = hostPort(alertmanagerPort)

// localReceiver is where a local run's alerts go unless MERCATO_ALERT_*
// says otherwise: the SMTP sink.
var localReceiver = localinfra.AlertReceiver{Smarthost: smtpAddr, From: "alertmanager@mercato.local", To: "oncall@mercato.local"}

// composeReceiver is the compose platform's: its Mailpit.
var composeReceiver = localinfra.AlertReceiver{Smarthost: "mailpit:1025", From: "alertmanager@mercato.local", To: "oncall@mercato.local"}

// renderAlertmanagerConfig renders the repository's template (under root)
// with defaults, overridden by the environment.
func renderAlertmanagerConfig(root string, defaults localinfra.AlertReceiver) ([]byte, error) {
	r, err := localinfra.AlertReceiverFromEnv(os.Getenv, defaults)
	if err != nil {
		return nil, err
	}
	return localinfra.RenderAlertmanagerConfig(filepath.Join(root, localinfra.AlertmanagerTemplate), r)
}

// writeAlertmanagerConfig is -alertmanager-config: the configuration for
// a deployment (Kubernetes: the content of its Secret), rendered with the
// compose network's defaults unless MERCATO_ALERT_* replaces them.
func writeAlertmanagerConfig(root, path string, out io.Writer) error {
	cfg, err := renderAlertmanagerConfig(root, composeReceiver)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(out, "==> Alertmanager configuration written to %s\n", path)
	return nil
}

// startAlertmanager runs Alertmanager, when installed, before Prometheus,
// so the first alerts have somewhere to go.
func (p *platform) startAlertmanager(ctx context.Context) error {
	if p.alertmanagerBin == "" {
		p.ui.warn("Alertmanager is not installed: alerts show in Prometheus only; `make deps` installs Debian's prometheus-alertmanager")
		return nil
	}
	cfg, err := renderAlertmanagerConfig(p.dirs.root, localReceiver)
	if err != nil {
		return err
	}
	dir := filepath.Join(p.dirs.local, "alertmanager")
	p.ui.step("starting Alertmanager on http://%s (config %s; alerts emailed to the SMTP sink)", alertmanagerAddr, p.dirs.rel(filepath.Join(dir, "alertmanager.yml")))
	am, err := localinfra.StartAlertmanager(ctx, localinfra.AlertmanagerOptions{
		Dir: dir, Port: alertmanagerPort, Config: cfg, Binary: p.alertmanagerBin, LogFile: p.dirs.logFile("alertmanager"),
	})
	if err != nil {
		return err
	}
	p.alertmanager = am
	return nil
}

// alerting is what this run's Prometheus does with alerts.
func (p *platform) alerting() alerting {
	a := alerting{ruleFiles: []string{filepath.Join(p.dirs.root, alertRules)}}
	if p.alertmanager != nil {
		a.alertmanager = alertmanagerAddr
	}
	return a
}

// stopAlertmanager stops it after Prometheus, which sends it the last
// resolutions.
func (p *platform) stopAlertmanager() {
	stopServer(p, "Alertmanager", p.alertmanager)
}
