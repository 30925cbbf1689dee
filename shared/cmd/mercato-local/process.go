package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/mercato-dev/mercato/shared/localinfra"
)

// child is a program mercato-local started itself (a service instance, the
// gateway, Prometheus), run like the servers of package localinfra: in its
// own process group, killed by the kernel if mercato-local dies first, its
// output appended to its log.
type child struct {
	*localinfra.Process
	name    string // e.g. "user-1"; also the log file's name
	logPath string
}

// startChild runs bin with args, stdout and stderr appended to logPath, and
// env (NAME=value: the child's secrets) added to our environment. args
// show in ps and in the log, so they never hold a secret.
func startChild(name, logPath string, env []string, bin string, args ...string) (*child, error) {
	cmd := exec.Command(bin, args...) //nolint:gosec // G204: one of our own binaries in bin/, or MailDev/Prometheus found by make deps
	// stdin stays /dev/null: nothing here needs a terminal.
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	// Logs are appended across runs; the banner marks where this run begins.
	banner := fmt.Sprintf("=== mercato-local: starting %s at %s: %s %s",
		name, time.Now().Format(time.RFC3339), bin, strings.Join(args, " "))
	proc, err := localinfra.StartProcess(name, logPath, banner, cmd, nil)
	if err != nil {
		return nil, err
	}
	return &child{Process: proc, name: name, logPath: logPath}, nil
}

// stop sends SIGTERM (services deregister from Consul on it), waits up to
// grace, then kills the whole process group. It reports whether the process
// had to be killed and, if it exited by itself, with what error.
func (c *child) stop(grace time.Duration) (killed bool, err error) {
	if killed, _ := c.Terminate(syscall.SIGTERM, grace); killed {
		return true, nil
	}
	if c.DiedOf(syscall.SIGTERM) {
		return false, nil // died of the SIGTERM itself: a clean stop for us
	}
	return false, c.Err()
}

// exitReason describes how the process ended; call after Done.
func (c *child) exitReason() string {
	if err := c.Err(); err != nil {
		return err.Error()
	}
	return "exit status 0"
}

// servers are the servers localinfra started, as children named by their
// logs: PostgreSQL, Redis, Consul and, when they run, Jaeger, VictoriaLogs
// and Alertmanager.
func (p *platform) servers() []*child {
	var cs []*child
	cs = serverChild(cs, p.dirs, "postgres", p.postgres)
	cs = serverChild(cs, p.dirs, "redis", p.redis)
	cs = serverChild(cs, p.dirs, "consul", p.consul)
	cs = serverChild(cs, p.dirs, "jaeger", p.jaeger)
	cs = serverChild(cs, p.dirs, "victoria-logs", p.victoriaLogs)
	return serverChild(cs, p.dirs, "alertmanager", p.alertmanager)
}

func serverChild[T any, S interface {
	*T
	Process() *localinfra.Process
}](cs []*child, dirs layout, name string, s S) []*child {
	if s == nil {
		return cs
	}
	return append(cs, &child{Process: s.Process(), name: name, logPath: dirs.logFile(name)})
}
