package localinfra

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// startTimeout bounds every wait for a server to become ready.
	startTimeout = 30 * time.Second
	// stopGrace is how long a server gets to shut down cleanly before its
	// whole process group is killed.
	stopGrace = 15 * time.Second
	// pollInterval is the pause between readiness probes.
	pollInterval = 100 * time.Millisecond
)

// Process is a child program: its own process group, its output appended
// to a log file, and killed by the kernel if we die first. localinfra runs
// its servers in one; mercato-local runs the services' instances in one too.
type Process struct {
	name      string // e.g. "postgres", used in messages
	cmd       *exec.Cmd
	logPath   string
	logBefore int64 // size of the log before this run
	logStart  int64 // where this run's lines begin (past the banner's blank line), so tails show only this run

	done    chan struct{} // closed when the process has been reaped
	waitErr error         // valid after done is closed

	stopOnce sync.Once
	stopErr  error
}

// StartProcess starts cmd with stdout and stderr appended to logPath (made
// 0600 when missing), in a process group of its own that the kernel kills
// if this process dies first. cred, when not nil, is the user to run as
// (and the log's owner). banner, when not empty, is written to the log
// first, to mark where this run begins; it is the first line LogTail shows.
func StartProcess(name, logPath, banner string, cmd *exec.Cmd, cred *syscall.Credential) (*Process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600) //nolint:gosec // G304: the log path is the caller's, in a folder of its own
	if err != nil {
		return nil, fmt.Errorf("localinfra: %s: open log: %w", name, err)
	}
	// The child gets its own copy of the descriptor; ours is not needed after Start.
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("localinfra: %s: stat log: %w", name, err)
	}
	logStart := st.Size()
	if banner != "" {
		fmt.Fprintf(f, "\n%s\n", banner)
		logStart++ // the tail starts at the banner, not the blank line before it
	}
	if cred != nil {
		// Let the server's user own its log like the rest of its files.
		_ = f.Chown(int(cred.Uid), int(cred.Gid))
	}
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group: Ctrl-C in a terminal does not hit the children
		// directly (they are stopped in order: services before the servers
		// they deregister from), and Stop can kill helpers a child forked.
		Setpgid: true,
		// If this process dies without calling Stop (panic, SIGKILL, test
		// timeout), the kernel kills the child. Linux ties this to the OS
		// thread that forked the child; Go only retires threads whose goroutine
		// exited while locked with runtime.LockOSThread, which Mercato's
		// programs never do.
		Pdeathsig:  syscall.SIGKILL,
		Credential: cred,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("localinfra: %s: start %s: %w", name, cmd.Path, err)
	}
	p := &Process{name: name, cmd: cmd, logPath: logPath, logBefore: st.Size(), logStart: logStart, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// startProcess starts one of localinfra's servers (StartProcess, no banner).
func startProcess(name, logPath string, cmd *exec.Cmd, cred *syscall.Credential) (*Process, error) {
	return StartProcess(name, logPath, "", cmd, cred)
}

// Pid is the process's id, which is also its process group's.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has ended and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is the error the process ended with (nil: exit status 0); call it
// after Done.
func (p *Process) Err() error { return p.waitErr }

// LogStart is the size the log had when this run began: where its lines,
// the banner first, start.
func (p *Process) LogStart() int64 { return p.logBefore }

// waitReady polls ready until it succeeds, the process exits, ctx ends or
// startTimeout passes. On failure the process is killed and the error
// carries the tail of its log.
func (p *Process) waitReady(ctx context.Context, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var lastErr error
	for {
		if p.Exited() {
			return p.failure(fmt.Errorf("exited during start-up (%v)", p.waitErr))
		}
		probeCtx, probeCancel := context.WithTimeout(ctx, 2*time.Second)
		lastErr = ready(probeCtx)
		probeCancel()
		if lastErr == nil {
			return nil
		}
		select {
		case <-p.done:
			return p.failure(fmt.Errorf("exited during start-up (%v)", p.waitErr))
		case <-ctx.Done():
			p.Kill()
			return p.failure(fmt.Errorf("not ready after %s: %v (last probe: %v)", startTimeout, ctx.Err(), lastErr))
		case <-tick.C:
		}
	}
}

// failure wraps err with the server name and the tail of its log.
func (p *Process) failure(err error) error {
	return fmt.Errorf("localinfra: %s %w\n--- last lines of %s ---\n%s", p.name, err, p.logPath, p.LogTail(25))
}

// bindConflict reports whether the last run failed because its port was
// taken between FreePort and the server binding it.
func (p *Process) bindConflict() bool {
	return strings.Contains(strings.ToLower(p.LogTail(25)), "address already in use")
}

// LogTail returns the last maxLines lines this run wrote to the log (of its
// last 8 KiB at most).
func (p *Process) LogTail(maxLines int) string {
	const maxBytes = 8192
	f, err := os.Open(p.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.logPath, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.logPath, err)
	}
	from := min(max(p.logStart, st.Size()-maxBytes, 0), st.Size())
	b, err := io.ReadAll(io.NewSectionReader(f, from, st.Size()-from))
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.logPath, err)
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

// Terminate sends sig unless the process has already ended, waits up to
// grace for it to exit, and kills its whole process group if it is still
// running then (killed) or if sig cannot be sent (signalErr). Whatever the
// process left behind in its group is killed too.
func (p *Process) Terminate(sig syscall.Signal, grace time.Duration) (killed bool, signalErr error) {
	if !p.Exited() {
		if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.Kill()
			return true, err
		}
		select {
		case <-p.done:
		case <-time.After(grace):
			p.Kill()
			return true, nil
		}
	}
	p.KillGroup()
	return false, nil
}

// DiedOf reports whether the process ended by signal sig; call it after
// Done.
func (p *Process) DiedOf(sig syscall.Signal) bool {
	var exitErr *exec.ExitError
	if !errors.As(p.waitErr, &exitErr) {
		return false
	}
	ws, ok := exitErr.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// stop stops one of localinfra's servers: sig, then SIGKILL after
// stopGrace. Exit status 0, death by sig, and the statuses in cleanCodes
// count as a clean stop; so does a server that had already ended. It is
// idempotent.
func (p *Process) stop(sig syscall.Signal, cleanCodes ...int) error {
	p.stopOnce.Do(func() { p.stopErr = p.doStop(sig, cleanCodes) })
	return p.stopErr
}

func (p *Process) doStop(sig syscall.Signal, cleanCodes []int) error {
	wasRunning := !p.Exited()
	killed, err := p.Terminate(sig, stopGrace)
	switch {
	case err != nil:
		return fmt.Errorf("localinfra: %s: signal %v: %w", p.name, sig, err)
	case killed:
		return fmt.Errorf("localinfra: %s did not stop within %s after %v; killed", p.name, stopGrace, sig)
	case !wasRunning, p.waitErr == nil, p.DiedOf(sig):
		return nil
	}
	var exitErr *exec.ExitError
	if !errors.As(p.waitErr, &exitErr) {
		return p.waitErr
	}
	if slices.Contains(cleanCodes, exitErr.ExitCode()) {
		return nil
	}
	return p.failure(fmt.Errorf("exited with %v while stopping", p.waitErr))
}

// Kill SIGKILLs the process group and waits for the leader to be reaped.
func (p *Process) Kill() {
	p.KillGroup()
	<-p.done
}

// KillGroup SIGKILLs the process group and returns at once.
func (p *Process) KillGroup() {
	// The group id is the leader's pid (Setpgid). ESRCH just means it is gone.
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}

// httpServer is a server localinfra runs on a loopback port and probes
// over HTTP (Prometheus, Alertmanager, VictoriaLogs): its address, and how
// it starts and stops.
type httpServer struct {
	name string // the program, for logs and errors
	port int
	proc *Process
}

// start runs the command command makes for the address on port (a free
// one when port is 0, and another if a picked one is lost to someone else
// before the server binds it), logging to logFile, and waits until
// readyPath answers 200. ctx bounds the wait.
func (s *httpServer) start(ctx context.Context, port int, logFile, readyPath string, command func(addr string) *exec.Cmd) error {
	return onPort(port, func(port int) (*Process, error) {
		s.port, s.proc = port, nil
		proc, err := startProcess(s.name, logFile, command(s.Addr()), nil)
		if err != nil {
			return nil, err
		}
		s.proc = proc
		return proc, proc.waitReady(ctx, httpOK(s.URL()+readyPath))
	})
}

// Addr is the server's host:port.
func (s *httpServer) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is the server's base URL.
func (s *httpServer) URL() string { return "http://" + s.Addr() }

// Process is the server's process of its current (or last) run.
func (s *httpServer) Process() *Process { return s.proc }

// Stop stops the server; its data stays in its folder.
func (s *httpServer) Stop() error { return s.proc.stop(syscall.SIGTERM) }
