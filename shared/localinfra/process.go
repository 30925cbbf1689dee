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

// process is a child server started by this package: its own process group,
// output appended to a log file, and killed by the kernel if we die first.
type process struct {
	name     string // e.g. "postgres", used in messages
	cmd      *exec.Cmd
	logPath  string
	logStart int64 // size of the log before this run, so tails show only this run

	done    chan struct{} // closed when the process has been reaped
	waitErr error         // valid after done is closed

	stopOnce sync.Once
	stopErr  error
}

// startProcess starts cmd with stdout and stderr appended to logPath.
// cred, when not nil, is the user to run as.
func startProcess(name, logPath string, cmd *exec.Cmd, cred *syscall.Credential) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600) //nolint:gosec // G304: the log path is ours, built from the caller's folder
	if err != nil {
		return nil, fmt.Errorf("localinfra: %s: open log: %w", name, err)
	}
	// The child gets its own copy of the descriptor; ours is not needed after Start.
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("localinfra: %s: stat log: %w", name, err)
	}
	if cred != nil {
		// Let the server's user own its log like the rest of its files.
		_ = f.Chown(int(cred.Uid), int(cred.Gid))
	}
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group: Ctrl-C in a terminal does not hit the servers
		// directly (we stop them in order), and Stop can kill helpers the
		// server forked.
		Setpgid: true,
		// If this process dies without calling Stop (panic, SIGKILL, test
		// timeout), the kernel kills the server. Linux ties this to the OS
		// thread that forked the child; Go only retires threads whose goroutine
		// exited while locked with runtime.LockOSThread, which this package
		// never does.
		Pdeathsig:  syscall.SIGKILL,
		Credential: cred,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("localinfra: %s: start %s: %w", name, cmd.Path, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, logStart: st.Size(), done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has terminated.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitReady polls ready until it succeeds, the process exits, ctx ends or
// startTimeout passes. On failure the process is killed and the error
// carries the tail of its log.
func (p *process) waitReady(ctx context.Context, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var lastErr error
	for {
		if p.exited() {
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
			p.kill()
			return p.failure(fmt.Errorf("not ready after %s: %v (last probe: %v)", startTimeout, ctx.Err(), lastErr))
		case <-tick.C:
		}
	}
}

// failure wraps err with the server name and the tail of its log.
func (p *process) failure(err error) error {
	return fmt.Errorf("localinfra: %s %w\n--- last lines of %s ---\n%s", p.name, err, p.logPath, p.logTail())
}

// bindConflict reports whether the last run failed because its port was
// taken between FreePort and the server binding it.
func (p *process) bindConflict() bool {
	return strings.Contains(strings.ToLower(p.logTail()), "address already in use")
}

// logTail returns the last lines this run wrote to the log.
func (p *process) logTail() string {
	const maxBytes, maxLines = 4096, 25
	f, err := os.Open(p.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	from := max(p.logStart, st.Size()-maxBytes)
	b, err := io.ReadAll(io.NewSectionReader(f, from, st.Size()-from))
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(bytes.ToValidUTF8(b, nil)), "\n"), "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return "(log is empty)"
	}
	return strings.Join(lines, "\n")
}

// stop sends sig to the server, waits up to stopGrace for it to exit, then
// kills its whole process group. Exit status 0, death by sig, and the
// statuses in cleanCodes count as a clean stop. It is idempotent.
func (p *process) stop(sig syscall.Signal, cleanCodes ...int) error {
	p.stopOnce.Do(func() { p.stopErr = p.doStop(sig, cleanCodes) })
	return p.stopErr
}

func (p *process) doStop(sig syscall.Signal, cleanCodes []int) error {
	if p.exited() {
		p.killGroup() // helpers the server may have left behind
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.kill()
		return fmt.Errorf("localinfra: %s: signal %v: %w", p.name, sig, err)
	}
	select {
	case <-p.done:
		p.killGroup()
		var exitErr *exec.ExitError
		if p.waitErr == nil || !errors.As(p.waitErr, &exitErr) {
			return p.waitErr
		}
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == sig {
			return nil
		}
		if slices.Contains(cleanCodes, exitErr.ExitCode()) {
			return nil
		}
		return p.failure(fmt.Errorf("exited with %v while stopping", p.waitErr))
	case <-time.After(stopGrace):
		p.kill()
		return fmt.Errorf("localinfra: %s did not stop within %s after %v; killed", p.name, stopGrace, sig)
	}
}

// kill SIGKILLs the process group and waits for the leader to be reaped.
func (p *process) kill() {
	p.killGroup()
	<-p.done
}

func (p *process) killGroup() {
	// The group id is the leader's pid (Setpgid). ESRCH just means it is gone.
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}

// httpServer is a server localinfra runs on a loopback port and probes
// over HTTP (Prometheus, Alertmanager, VictoriaLogs): its address, and how
// it starts and stops.
type httpServer struct {
	name string // the program, for logs and errors
	port int
	proc *process
}

// start runs the command command makes for the address on port (a free
// one when port is 0, and another if a picked one is lost to someone else
// before the server binds it), logging to logFile, and waits until
// readyPath answers 200. ctx bounds the wait.
func (s *httpServer) start(ctx context.Context, port int, logFile, readyPath string, command func(addr string) *exec.Cmd) error {
	return onPort(port, func(port int) (*process, error) {
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

// Stop stops the server; its data stays in its folder.
func (s *httpServer) Stop() error { return s.proc.stop(syscall.SIGTERM) }
