package localinfra

import (
	"context"
	"os/exec"
	"syscall"
)

// Child is a long-running program started by StartChild for a caller
// outside this package (the test Kubernetes cluster's components, package
// e2e/k8s/cluster), handled like this package's own servers: its own process
// group, killed by the kernel if the caller dies, output appended to a log
// whose tail every failure carries.
type Child struct{ *Process }

// StartChild starts cmd with stdout and stderr appended to logPath; name
// names it in errors.
func StartChild(name, logPath string, cmd *exec.Cmd) (*Child, error) {
	p, err := startProcess(name, logPath, cmd, nil)
	if err != nil {
		return nil, err
	}
	return &Child{p}, nil
}

// WaitReady polls ready until it succeeds, the program exits, ctx ends or
// 30 s pass; on failure the program is killed and the error carries the
// tail of its log.
func (c *Child) WaitReady(ctx context.Context, ready func(context.Context) error) error {
	return c.waitReady(ctx, ready)
}

// Failure wraps err with the program's name and the tail of its log.
func (c *Child) Failure(err error) error { return c.failure(err) }

// Stop sends SIGTERM, waits up to 15 s, then kills the process group; exit
// status 0 or death by SIGTERM count as clean. It is idempotent.
func (c *Child) Stop() error { return c.stop(syscall.SIGTERM) }
