package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// lockName is an abstract unix socket (no file; the kernel frees it when its
// holder dies, however it dies) that the harness running a cluster listens
// on: one cluster per host, since the bridge, the node IP, the kubelet's
// cgroups and kube-proxy's iptables chains are the host's. Whoever finds it
// taken reads the holder's pid and folder from it.
const lockName = "@mercato-k8s-cluster"

// hostLock holds lockName while a cluster runs.
type hostLock struct{ l net.Listener }

func acquireHostLock(dir string) (*hostLock, error) {
	l, err := net.Listen("unix", lockName)
	if err != nil {
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("cluster: lock %s: %w", lockName, err)
		}
		return nil, fmt.Errorf("cluster: a cluster is already running on this host (%s); stop it first (its Stop, or cluster.Clean on its folder once its process is gone)", lockHolder())
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return // closed
			}
			fmt.Fprintf(c, "pid %d, folder %s", os.Getpid(), dir)
			c.Close()
		}
	}()
	return &hostLock{l: l}, nil
}

func lockHolder() string {
	c, err := net.DialTimeout("unix", lockName, time.Second)
	if err != nil {
		return "holder unknown: " + err.Error()
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	b, _ := io.ReadAll(c)
	return strings.TrimSpace(string(b))
}

func (h *hostLock) release() {
	if h != nil {
		h.l.Close()
	}
}

// runState is what a run leaves in its folder (state.json) while it runs,
// so that the next Start, or Clean, can undo it after the harness was
// killed: the host state before the start and the components' pids.
type runState struct {
	HarnessPid int                     `json:"harnessPid"`
	Before     *HostState              `json:"before"`
	Components map[string]componentPid `json:"components"`
}

func readRunState(path string) (*runState, error) {
	b, err := os.ReadFile(path) //nolint:gosec // G304: state.json of the cluster's folder
	if err != nil {
		return nil, err
	}
	var s runState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("cluster: %s: %w", path, err)
	}
	return &s, nil
}

func (s *runState) write(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
