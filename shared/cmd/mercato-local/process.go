package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// child is a program mercato-local started itself (a service instance, the
// gateway, Prometheus). PostgreSQL, Redis and Consul are run by package
// localinfra, which manages its processes the same way.
type child struct {
	name     string // e.g. "user-1"; also the log file's name
	cmd      *exec.Cmd
	logPath  string
	logStart int64 // log size before this run, so tails show only this run

	done    chan struct{} // closed once the process has been reaped
	waitErr error         // valid after done is closed
}

// startChild runs bin with args, stdout and stderr appended to logPath, and
// env (NAME=value: the child's secrets) added to our environment. args
// show in ps and in the log, so they never hold a secret.
func startChild(name, logPath string, env []string, bin string, args ...string) (*child, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600) //nolint:gosec // G304: a log file in .local/logs
	if err != nil {
		return nil, fmt.Errorf("%s: open log: %w", name, err)
	}
	// The child has its own copy of the descriptor once started.
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: stat log: %w", name, err)
	}
	// Logs are appended across runs; mark where this run begins.
	fmt.Fprintf(f, "\n=== mercato-local: starting %s at %s: %s %s\n",
		name, time.Now().Format(time.RFC3339), bin, strings.Join(args, " "))

	cmd := exec.Command(bin, args...) //nolint:gosec // G204: one of our own binaries in bin/, or MailDev/Prometheus found by make deps
	cmd.Stdout, cmd.Stderr = f, f     // stdin stays /dev/null: nothing here needs a terminal
	if len(env) > 0 {
		cmd.Env = append(inheritedEnv(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group: Ctrl-C in the terminal reaches only us, and we
		// stop the children in order (services before the infrastructure
		// they deregister from); stop can also kill anything a child forked.
		Setpgid: true,
		// If mercato-local dies without stopping its children (SIGKILL,
		// panic), the kernel kills them rather than leaving them running.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", name, bin, err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, logStart: st.Size() + 1, done: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// inheritedEnv is our environment without the secrets' variables: a child
// gets only the secrets it is given.
func inheritedEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return slices.ContainsFunc(secretSpecs, func(s secretSpec) bool { return s.env == name })
	})
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// exited reports whether the process has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM (services deregister from Consul on it), waits up to
// grace, then kills the whole process group. It reports whether the process
// had to be killed and, if it exited by itself, with what error.
func (c *child) stop(grace time.Duration) (killed bool, err error) {
	if !c.exited() {
		if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			c.kill()
			return true, nil
		}
		select {
		case <-c.done:
		case <-time.After(grace):
			c.kill()
			return true, nil
		}
	}
	c.killGroup() // anything the child left behind in its group
	var exitErr *exec.ExitError
	if errors.As(c.waitErr, &exitErr) {
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return false, nil // died of the SIGTERM itself: a clean stop for us
		}
	}
	return false, c.waitErr
}

// kill SIGKILLs the process group and waits until the leader is reaped.
func (c *child) kill() {
	c.killGroup()
	<-c.done
}

func (c *child) killGroup() {
	// Setpgid made the group id the leader's pid; ESRCH means it is gone.
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
}

// exitReason describes how the process ended; call after done is closed.
func (c *child) exitReason() string {
	if c.waitErr == nil {
		return "exit status 0"
	}
	return c.waitErr.Error()
}

// logTail returns the last lines this run wrote to the child's log.
func (c *child) logTail(maxLines int) string {
	return fileTail(c.logPath, c.logStart, maxLines)
}

// fileTail returns the last maxLines lines of path written after offset from.
func fileTail(path string, from int64, maxLines int) string {
	const maxBytes = 8192
	f, err := os.Open(path) //nolint:gosec // G304: a log file in .local/logs
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	from = min(max(from, st.Size()-maxBytes, 0), st.Size())
	b, err := io.ReadAll(io.NewSectionReader(f, from, st.Size()-from))
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	text := strings.TrimRight(string(bytes.ToValidUTF8(b, nil)), "\n")
	if text == "" {
		return "(the log is empty)"
	}
	lines := strings.Split(text, "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return strings.Join(lines, "\n")
}
