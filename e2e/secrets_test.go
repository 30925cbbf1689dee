package e2e

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mercato-dev/mercato/shared/testkit"
)

// TestNoSecretInLogsOrCommandLines runs the whole platform as `make run`
// does — the gateway, two instances of user, product, order and payment,
// notification — takes a checkout to confirmed (so the webhooks are signed
// and sent), and then looks for every secret's value where any user of the
// host can read it: each process's command line (/proc/PID/cmdline, what ps
// shows) and each log file.
func TestNoSecretInLogsOrCommandLines(t *testing.T) {
	p := startCheckoutPlatform(t, checkoutOptions{logLevel: "debug"})
	const smtpPassword = "e2e-smtp-password-that-must-stay-hidden"
	// No SMTP server: the sends fail and are retried, and get logged.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	notificationDB := testkit.PostgresURL(t)
	p.procs["notification"] = []*proc{start(t, "notification", "-consul-addr", p.consul,
		"-database-url", notificationDB, "-redis-addr", p.rdb.Options().Addr, "-jwt-secret", jwtSecret,
		"-smtp-addr", closed, "-smtp-username", "mercato", "-smtp-password", smtpPassword, "-log-level", "debug")}
	waitPassing(t, p.consul, "notification", 1)
	p.args["notification"] = []string{"-database-url", notificationDB}

	mug := p.seed(t, "Enamel Mug", "19.99", 10)
	_, token := p.customer(t)
	o := p.place(t, token, cardOK, checkoutLine{mug, 1})
	p.waitStatus(t, token, o.ID, "confirmed", 30*time.Second)
	declined := p.place(t, token, cardDeclined, checkoutLine{mug, 1})
	p.waitStatus(t, token, declined.ID, "cancelled", 30*time.Second)
	// A forged webhook, refused: the refusal is logged.
	if r, err := p.send("POST", "/api/v1/webhooks/payments/sandbox", "", []byte(`{"id":"x"}`), "Mercato-Signature", "t=1,v1=00"); err != nil || r.Status < 400 {
		t.Fatalf("forged webhook: %v, status %d; want it refused", err, r.Status)
	}
	time.Sleep(time.Second) // the notification senders' first attempts

	values := map[string]string{
		"JWT secret":     jwtSecret,
		"webhook secret": checkoutWebhookSecret,
		"hash key":       checkoutHashKey,
		"admin password": "admin-password-1", // startCheckoutPlatform's
		"SMTP password":  smtpPassword,
	}
	for svc, args := range p.args {
		if i := slices.Index(args, "-database-url"); i >= 0 {
			if pw := urlPassword(args[i+1]); pw != "" {
				values[svc+" database password"] = pw
			}
		}
	}
	all := append([]*proc{p.gateway}, p.procs["notification"]...)
	for _, svc := range []string{"user", "product", "order", "payment"} {
		all = append(all, p.procs[svc]...)
	}
	var scanned int
	for _, pr := range all {
		cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pr.cmd.Process.Pid), "cmdline"))
		if err != nil {
			t.Fatalf("%s: %v", pr.name, err)
		}
		logged, err := os.ReadFile(pr.log)
		if err != nil {
			t.Fatal(err)
		}
		if len(logged) == 0 {
			t.Errorf("%s logged nothing: the scan would prove nothing", pr.name)
		}
		scanned += len(logged)
		for what, v := range values {
			if strings.Contains(string(cmdline), v) {
				t.Errorf("%s: the %s is on its command line (ps shows it to every user)", pr.name, what)
			}
			if strings.Contains(string(logged), v) {
				t.Errorf("%s: the %s is in its log %s", pr.name, what, pr.log)
			}
		}
	}
	t.Logf("scanned %d command lines and %d bytes of logs for %d secrets", len(all), scanned, len(values))
}

// urlPassword is the password of a postgres:// URL, "" without one.
func urlPassword(raw string) string {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return ""
	}
	userinfo, _, ok := strings.Cut(rest, "@")
	if !ok {
		return ""
	}
	_, pw, _ := strings.Cut(userinfo, ":")
	return pw
}
