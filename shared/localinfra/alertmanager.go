package localinfra

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"
)

// Alertmanager for a local run and for the tests: Debian's
// prometheus-alertmanager (`make deps` installs it), on 127.0.0.1 only, its
// clustering off, configured from the repository's one template,
// deploy/alertmanager/alertmanager.yml.tmpl.

// AlertmanagerTemplate is the configuration template's path in the repository.
const AlertmanagerTemplate = "deploy/alertmanager/alertmanager.yml.tmpl"

// debianAlertmanager is where Debian's prometheus-alertmanager installs the server.
const debianAlertmanager = "/usr/bin/prometheus-alertmanager"

const alertmanagerHint = "run `make deps` (it installs Debian's prometheus-alertmanager)"

// FindAlertmanager returns the Alertmanager server: Debian's, else
// alertmanager or prometheus-alertmanager on PATH.
func FindAlertmanager() (string, error) {
	if isExecutable(debianAlertmanager) {
		return debianAlertmanager, nil
	}
	for _, name := range []string{"alertmanager", "prometheus-alertmanager"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("localinfra: alertmanager %w (%s or on PATH); %s", ErrNotFound, debianAlertmanager, alertmanagerHint)
}

// AlertReceiver is where Alertmanager emails alerts: the settings the
// template leaves open.
type AlertReceiver struct {
	Smarthost  string // SMTP server, host:port
	From, To   string // the emails' sender and recipient
	RequireTLS bool   // STARTTLS required (a real relay), or not (a local sink)
	// AuthUsername and AuthPasswordFile log in to the relay; the password
	// stays in its file (a secret mounted where Alertmanager runs).
	AuthUsername, AuthPasswordFile string
}

// The environment variables AlertReceiverFromEnv reads.
const (
	EnvAlertSmarthost    = "MERCATO_ALERT_SMTP_SMARTHOST"
	EnvAlertFrom         = "MERCATO_ALERT_SMTP_FROM"
	EnvAlertTo           = "MERCATO_ALERT_EMAIL_TO"
	EnvAlertRequireTLS   = "MERCATO_ALERT_SMTP_REQUIRE_TLS"
	EnvAlertUsername     = "MERCATO_ALERT_SMTP_USERNAME"
	EnvAlertPasswordFile = "MERCATO_ALERT_SMTP_PASSWORD_FILE" //nolint:gosec // G101: the name of a variable holding a file path, not a credential
)

// AlertReceiverFromEnv is defaults with every setting getenv gives replacing
// its default.
func AlertReceiverFromEnv(getenv func(string) string, defaults AlertReceiver) (AlertReceiver, error) {
	r := defaults
	for env, field := range map[string]*string{
		EnvAlertSmarthost: &r.Smarthost, EnvAlertFrom: &r.From, EnvAlertTo: &r.To,
		EnvAlertUsername: &r.AuthUsername, EnvAlertPasswordFile: &r.AuthPasswordFile,
	} {
		if v := getenv(env); v != "" {
			*field = v
		}
	}
	if v := getenv(EnvAlertRequireTLS); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return r, fmt.Errorf("localinfra: %s=%q: want true or false", EnvAlertRequireTLS, v)
		}
		r.RequireTLS = b
	}
	return r, r.validate()
}

func (r AlertReceiver) validate() error {
	var errs []error
	if _, port, err := net.SplitHostPort(r.Smarthost); err != nil || port == "" {
		errs = append(errs, fmt.Errorf("SMTP smarthost %q is not host:port (%s)", r.Smarthost, EnvAlertSmarthost))
	}
	if !strings.Contains(r.From, "@") {
		errs = append(errs, fmt.Errorf("sender %q is not an email address (%s)", r.From, EnvAlertFrom))
	}
	if !strings.Contains(r.To, "@") {
		errs = append(errs, fmt.Errorf("recipient %q is not an email address (%s)", r.To, EnvAlertTo))
	}
	if (r.AuthUsername == "") != (r.AuthPasswordFile == "") {
		errs = append(errs, fmt.Errorf("SMTP login needs both %s and %s", EnvAlertUsername, EnvAlertPasswordFile))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("localinfra: alert receiver: %w", err)
	}
	return nil
}

// RenderAlertmanagerConfig fills the template at tmplPath
// (AlertmanagerTemplate under the repository root) with r.
func RenderAlertmanagerConfig(tmplPath string, r AlertReceiver) ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	text, err := os.ReadFile(tmplPath) //nolint:gosec // G304: the repository's template, or one a test names
	if err != nil {
		return nil, fmt.Errorf("localinfra: alertmanager template: %w", err)
	}
	tmpl, err := template.New(filepath.Base(tmplPath)).Option("missingkey=error").
		Funcs(template.FuncMap{"quote": yamlString}).Parse(string(text))
	if err != nil {
		return nil, fmt.Errorf("localinfra: alertmanager template: %w", err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, r); err != nil {
		return nil, fmt.Errorf("localinfra: alertmanager template: %w", err)
	}
	return b.Bytes(), nil
}

// yamlString is s as a YAML scalar that reads back as s, whatever it holds.
func yamlString(s string) (string, error) {
	b, err := yaml.Marshal(s)
	return strings.TrimSuffix(string(b), "\n"), err
}

// AlertmanagerOptions configures StartAlertmanager.
type AlertmanagerOptions struct {
	Dir     string // holds the configuration, the data (Dir/data) and, by default, the log
	Port    int    // HTTP API and UI (9093 by convention); 0 picks a free one
	Config  []byte // the configuration, e.g. from RenderAlertmanagerConfig; required
	Binary  string // default: FindAlertmanager()
	LogFile string // default Dir/alertmanager.log
}

// Alertmanager is a single Alertmanager (no cluster).
type Alertmanager struct {
	httpServer // URL: the UI at /, the API under /api/v2
	opts       AlertmanagerOptions
}

// StartAlertmanager writes the configuration into Dir, starts Alertmanager
// and waits until it reports ready. ctx bounds the start-up only.
func StartAlertmanager(ctx context.Context, o AlertmanagerOptions) (*Alertmanager, error) {
	if err := serverFolder("alertmanager", "AlertmanagerOptions", &o.Dir, &o.LogFile); err != nil {
		return nil, err
	}
	if len(o.Config) == 0 {
		return nil, errors.New("localinfra: alertmanager: AlertmanagerOptions.Config is required")
	}
	if o.Binary == "" {
		bin, err := FindAlertmanager()
		if err != nil {
			return nil, err
		}
		o.Binary = bin
	}
	if err := writeConfig("alertmanager", o.Dir, "alertmanager.yml", string(o.Config)); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, "data"), 0o750); err != nil {
		return nil, fmt.Errorf("localinfra: alertmanager: %w", err)
	}
	a := &Alertmanager{httpServer: httpServer{name: "alertmanager"}, opts: o}
	err := a.start(ctx, o.Port, o.LogFile, "/-/ready", func(addr string) *exec.Cmd {
		//nolint:gosec // G204: the Alertmanager binary localinfra found, with arguments built here
		cmd := exec.Command(o.Binary,
			"--config.file", filepath.Join(o.Dir, "alertmanager.yml"),
			"--storage.path", filepath.Join(o.Dir, "data"),
			"--web.listen-address", addr,
			// No gossip with peers: its fixed port (9094) would clash between
			// runs, and there are none.
			"--cluster.listen-address=",
		)
		cmd.Dir = o.Dir
		return cmd
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// AlertmanagerAlert is an alert as Alertmanager's API (/api/v2/alerts) lists it.
type AlertmanagerAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	Status      struct {
		State string `json:"state"` // active, suppressed or unprocessed
	} `json:"status"`
}

// Alerts lists the alerts Alertmanager holds now.
func (a *Alertmanager) Alerts(ctx context.Context) ([]AlertmanagerAlert, error) {
	var alerts []AlertmanagerAlert
	if err := getJSON(ctx, a.URL()+"/api/v2/alerts", &alerts); err != nil {
		return nil, err
	}
	return alerts, nil
}
