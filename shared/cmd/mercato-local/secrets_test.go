package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSecretsGeneratedOnce: the first start writes every secret, random and
// readable by this user alone; later starts read the same; a variable
// overrides its file.
func TestSecretsGeneratedOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	noEnv := func(string) string { return "" }
	first, err := loadSecrets(dir, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("secrets folder: %v, %v; want mode 0700", st.Mode(), err)
	}
	for _, spec := range secretSpecs {
		v := *spec.field(&first)
		if len(v) < spec.minLen || (spec.maxLen > 0 && len(v) > spec.maxLen) {
			t.Errorf("%s: generated %d bytes", spec.file, len(v))
		}
		st, err := os.Stat(filepath.Join(dir, spec.file))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", spec.file, st.Mode(), err)
		}
	}
	if first.jwtSecret == first.webhookSecret || first.jwtSecret == first.hashKey {
		t.Error("two secrets are the same")
	}
	second, err := loadSecrets(dir, noEnv)
	if err != nil || second.jwtSecret != first.jwtSecret || second.adminPassword != first.adminPassword {
		t.Errorf("second start: %v; secrets changed", err)
	}
	if w := second.where("admin-password"); w != filepath.Join(dir, "admin-password") {
		t.Errorf("where = %q", w)
	}

	env := map[string]string{"MERCATO_JWT_SECRET": strings.Repeat("e", 32)}
	third, err := loadSecrets(dir, func(k string) string { return env[k] })
	if err != nil || third.jwtSecret != env["MERCATO_JWT_SECRET"] || third.where("jwt-secret") != "from MERCATO_JWT_SECRET" {
		t.Errorf("override: %v, %q", err, third.where("jwt-secret"))
	}
	env["MERCATO_JWT_SECRET"] = "short"
	if _, err := loadSecrets(dir, func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "MERCATO_JWT_SECRET") {
		t.Errorf("short override: %v", err)
	}
}

// TestChildShowsNoSecret starts a child the way the platform starts a
// service, then looks for each secret's value where every user of the host
// can: its command line (/proc/PID/cmdline) and its log. The secrets must
// be in its environment, which only this user can read.
func TestChildShowsNoSecret(t *testing.T) {
	sec := secrets{jwtSecret: "jwt-key-0123456789abcdef0123456789", adminEmail: "a@b", adminPassword: "admin-pw-0123456789",
		hashKey: "hash-key-0123456789abcdef0123456789", webhookSecret: "webhook-0123456789abcdef0123456789"}
	values := []string{sec.jwtSecret, sec.adminPassword, sec.hashKey, sec.webhookSecret, "db-pw-0123456789"}
	for _, s := range append(slices.Clone(services), gateway) {
		log := filepath.Join(t.TempDir(), s.name+".log")
		// sh prints a line and waits: its arguments are the service's. It
		// loops rather than ending on `sleep 30`, which dash would exec in
		// its place: /proc/PID/environ read while a process execs can come
		// back empty (seen once, under load).
		c, err := startChild(s.name, log, s.env("postgres://u:db-pw-0123456789@h/db", sec), "/bin/sh",
			append([]string{"-c", "echo started; while :; do sleep 1; done", "sh"}, s.args(sec)...)...)
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			// A line of its own: the log's banner quotes the command line,
			// "echo started" included, before the shell has even run.
			if out, _ := os.ReadFile(log); strings.Contains(string(out), "\nstarted\n") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the shell never started", s.name)
			}
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(c.Pid()), "cmdline"))
		if err != nil {
			t.Fatal(err)
		}
		environ, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(c.Pid()), "environ"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.stop(5 * time.Second); err != nil {
			t.Errorf("%s: stop: %v", s.name, err)
		}
		logged, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			if strings.Contains(string(cmdline), v) {
				t.Errorf("%s: secret %q on the command line: %q", s.name, v, cmdline)
			}
			if strings.Contains(string(logged), v) {
				t.Errorf("%s: secret %q in the log:\n%s", s.name, v, logged)
			}
		}
		if !strings.Contains(string(environ), "MERCATO_JWT_SECRET="+sec.jwtSecret) {
			t.Errorf("%s: the JWT secret is not in the environment: %q", s.name, environ)
		}
	}
}

// TestNoProcessInheritsAnOverride: a secret exported to override the
// generated one is read, then no longer in the environment that
// PostgreSQL, Prometheus, MailDev and the others inherit. The run stops at
// preflight (the temporary root has no bin/), after the secrets are read.
func TestNoProcessInheritsAnOverride(t *testing.T) {
	overrides := map[string]string{"MERCATO_JWT_SECRET": strings.Repeat("j", 32), "MERCATO_ADMIN_PASSWORD": "admin-pw-override"}
	for k, v := range overrides {
		t.Setenv(k, v)
	}
	var stderr strings.Builder
	if code := run([]string{"-root", t.TempDir()}, io.Discard, &stderr); code != 1 {
		t.Fatalf("run = %d, want 1 (no binaries); stderr:\n%s", code, stderr.String())
	}
	log := filepath.Join(t.TempDir(), "tool.log")
	c, err := startChild("tool", log, nil, "/bin/sh", "-c", "env; echo started")
	if err != nil {
		t.Fatal(err)
	}
	<-c.Done()
	out, err := os.ReadFile(log)
	if err != nil || !strings.Contains(string(out), "\nstarted\n") {
		t.Fatalf("the shell never ran: %v\n%s", err, out)
	}
	for k, v := range overrides {
		if strings.Contains(string(out), v) {
			t.Errorf("a process started without secrets inherited %s", k)
		}
	}
}
