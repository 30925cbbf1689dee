// Package cluster runs a real single-node Kubernetes cluster on this host
// for tests: containerd (a containerd of its own), etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kubelet, kube-proxy and CoreDNS,
// built from pinned sources into bin/k8s by scripts/build-k8s.sh, every
// certificate and kubeconfig generated at start, all files in one folder.
//
// Where things listen: the API server and the kubelet on NodeIP, the address
// of the pod network's bridge (BridgeName, made by the harness), which
// exists only inside this machine and which pods reach (CoreDNS and the
// controllers' pods call the API server through the kubernetes Service);
// etcd, the controllers' and kube-proxy's health and metrics ports and
// containerd's streaming server on 127.0.0.1; nothing on eth0. NodePorts
// answer on NodeIP and on 127.0.0.1.
//
// Start reads the host state first (HostState: sysctls, iptables, mounts,
// links, cgroups, the host folders the components write); Stop deletes every
// pod, stops every component, undoes what they changed and returns an error
// listing every difference from that first reading that is left. A run that
// was killed leaves its state in the folder, and the next Start (or Clean)
// undoes it before anything else.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mercato-dev/mercato/shared/localinfra"
)

// The cluster's network, fixed: one cluster runs per host (a host lock
// makes sure of that), and these ranges are far from Docker's (172.17.0.0/16
// and up, 192.168.0.0/16) and this host's.
const (
	// BridgeName is the pod network's bridge; the harness creates it with
	// NodeIP before the components start, and deletes it at Stop.
	BridgeName = "mercato-k8s0"
	// NodeIP is the node's address: the bridge's, the pods' gateway.
	NodeIP = "10.244.0.1"
	// DNSServiceIP is the kube-dns Service (CoreDNS).
	DNSServiceIP = "10.96.0.10"
	// PauseImage is the pod sandbox image, built from tools/k8s/pause.
	PauseImage = "registry.k8s.io/pause:3.10.2"

	podSubnet           = "10.244.0.0/24"
	clusterCIDR         = "10.244.0.0/16"
	serviceCIDR         = "10.96.0.0/16"
	kubernetesServiceIP = "10.96.0.1"
	clusterDomain       = "cluster.local"
	apiServerPort       = 6443
	kubeletPort         = 10250
	defaultNodeName     = "mercato-k8s"
)

var apiServerAddr = NodeIP + ":" + strconv.Itoa(apiServerPort)

// Config says where the cluster lives and where its programs are.
type Config struct {
	// Dir is the cluster's folder (default <repo>/.local/k8s): certificates,
	// configuration, containerd's and etcd's data, the kubelet's root, logs.
	Dir string
	// BinDir holds the programs scripts/build-k8s.sh builds (default
	// <repo>/bin/k8s).
	BinDir string
	// Logf, when set, receives progress lines.
	Logf func(format string, args ...any)
	// NodeName is the node's name (default "mercato-k8s").
	NodeName string
}

func (cfg *Config) defaults() error {
	if cfg.Dir == "" || cfg.BinDir == "" {
		root, err := localinfra.RepoRoot()
		if err != nil {
			return fmt.Errorf("cluster: %w (or set Config.Dir and Config.BinDir)", err)
		}
		if cfg.Dir == "" {
			cfg.Dir = filepath.Join(root, ".local", "k8s")
		}
		if cfg.BinDir == "" {
			cfg.BinDir = filepath.Join(root, "bin", "k8s")
		}
	}
	var err error
	if cfg.Dir, err = filepath.Abs(cfg.Dir); err != nil {
		return err
	}
	if cfg.BinDir, err = filepath.Abs(cfg.BinDir); err != nil {
		return err
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.NodeName == "" {
		cfg.NodeName = defaultNodeName
	}
	return nil
}

// Cluster is a running cluster.
type Cluster struct {
	cfg          Config
	layout       layout
	ports        ports
	lock         *hostLock
	state        *runState
	components   []*component // in start order
	coreDNSImage string

	stopOnce sync.Once
	stopErr  error
}

// Start starts a cluster in cfg.Dir and waits until its node is Ready and
// its DNS answers. It refuses when a cluster runs on this host already, and
// first cleans up after a run that was killed in the same folder. On failure
// it stops what it started and restores the host; the error names the
// component that failed and shows the tail of its log.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := checkPrerequisites(cfg.BinDir); err != nil {
		return nil, err
	}
	lock, err := acquireHostLock(cfg.Dir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, layout: newLayout(cfg.Dir), lock: lock}
	if err := cleanStale(ctx, cfg, c.layout); err != nil {
		lock.release()
		return nil, err
	}
	before, err := SnapshotHost(ctx)
	if err != nil {
		lock.release()
		return nil, fmt.Errorf("cluster: read the host state: %w", err)
	}
	if err := freshFolder(c.layout); err != nil {
		lock.release()
		return nil, err
	}
	c.state = &runState{HarnessPid: os.Getpid(), Before: before, Components: map[string]componentPid{}}
	if err := c.state.write(c.layout.stateFile); err != nil {
		lock.release()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	began := time.Now()
	if err := c.start(ctx); err != nil {
		cfg.Logf("start failed; stopping what started: %v", firstLine(err))
		return nil, errors.Join(err, c.Stop(context.WithoutCancel(ctx)))
	}
	cfg.Logf("cluster ready in %.1fs: API server https://%s, node %s Ready, DNS at %s", time.Since(began).Seconds(), apiServerAddr, cfg.NodeName, DNSServiceIP)
	return c, nil
}

// Clean undoes what a killed run left in cfg.Dir (its processes, mounts,
// links, iptables chains, cgroups, sysctls), as Start does by itself.
func Clean(ctx context.Context, cfg Config) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	lock, err := acquireHostLock(cfg.Dir)
	if err != nil {
		return err
	}
	defer lock.release()
	return cleanStale(ctx, cfg, newLayout(cfg.Dir))
}

// freshFolder empties the folder of a previous run, keeping its logs as
// logs.previous.
func freshFolder(l layout) error {
	mounts, err := readMounts()
	if err != nil {
		return err
	}
	if mountedUnder(mounts, l.root) {
		return fmt.Errorf("cluster: %s has mounts under it that no run of this harness recorded; unmount them first", l.root)
	}
	entries, err := os.ReadDir(l.root)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, e := range entries {
		if e.Name() == "logs" || e.Name() == "logs.previous" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(l.root, e.Name())); err != nil {
			return err
		}
	}
	_ = os.RemoveAll(l.logs + ".previous")
	_ = os.Rename(l.logs, l.logs+".previous")
	for _, d := range []string{l.logs, l.config, l.images, l.certs, l.kubelet} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	return nil
}

// Stop deletes every pod, stops every component, restores the host and
// returns an error listing what still differs from before Start (changes a
// Docker engine made meanwhile are only logged). Safe on a nil Cluster and
// idempotent.
func (c *Cluster) Stop(ctx context.Context) error {
	if c == nil {
		return nil
	}
	c.stopOnce.Do(func() { c.stopErr = c.stop(ctx) })
	return c.stopErr
}

func (c *Cluster) stop(ctx context.Context) error {
	logf := c.cfg.Logf
	began := time.Now()
	var errs []error
	c.drainPods(ctx)
	for i := len(c.components) - 1; i >= 0; i-- {
		comp := c.components[i]
		if comp.name == "containerd" {
			c.removeContainers(ctx)
		}
		if err := comp.child.Stop(); err != nil {
			logf("%s: %v", comp.name, firstLine(err))
		}
	}
	for _, err := range sweep(ctx, c.state.Before, c.layout, logf) {
		errs = append(errs, fmt.Errorf("cluster: teardown: %w", err))
	}
	if err := checkRestored(ctx, c.state.Before, logf); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		_ = os.Remove(c.layout.stateFile)
	}
	c.lock.release()
	logf("cluster stopped in %.1fs", time.Since(began).Seconds())
	return errors.Join(errs...)
}

// checkRestored reads the host state again and fails listing every
// difference from before.
func checkRestored(ctx context.Context, before *HostState, logf func(string, ...any)) error {
	after, err := SnapshotHost(ctx)
	if err != nil {
		return fmt.Errorf("cluster: read the host state after teardown: %w", err)
	}
	diffs, ignored := after.Diff(before)
	for _, d := range ignored {
		logf("not the cluster's (left alone): %s", d)
	}
	if len(diffs) > 0 {
		return fmt.Errorf("cluster: the host differs from before the start in %d ways:\n  %s", len(diffs), strings.Join(diffs, "\n  "))
	}
	return nil
}

// drainPods deletes every pod while the kubelet still runs, so each pod's
// sandbox is stopped the proper way (its network torn down by CNI), after
// stopping the controllers so that nothing replaces them. The sweep after
// it deals with whatever this leaves.
func (c *Cluster) drainPods(ctx context.Context) {
	api, kubelet := c.component("kube-apiserver"), c.component("kubelet")
	if api == nil || kubelet == nil || api.child.Exited() || kubelet.child.Exited() {
		return
	}
	for _, name := range []string{"kube-controller-manager", "kube-scheduler"} {
		if comp := c.component(name); comp != nil {
			_ = comp.child.Stop()
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	if _, err := c.Kubectl(ctx, "delete", "pods", "--all", "--all-namespaces", "--force", "--grace-period=0", "--wait=false"); err != nil {
		c.cfg.Logf("deleting the pods: %v", firstLine(err))
		return
	}
	for {
		// Done when no container runs and every sandbox's network namespace
		// is gone (the CRI plugin removes it once CNI has torn it down).
		out, err := c.ctr(ctx, "tasks", "list")
		netns, _ := filepath.Glob("/run/netns/cni-*")
		if err == nil && !strings.Contains(out, "RUNNING") && len(added(c.state.Before.Paths, netns)) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			c.cfg.Logf("pods still running after 45 s; killing them")
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// removeContainers deletes every task and container from the cluster's
// containerd, so each shim exits cleanly (its socket and mounts gone).
func (c *Cluster) removeContainers(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := c.ctr(ctx, "containers", "list", "--quiet")
	if err != nil {
		return
	}
	for _, id := range strings.Fields(out) {
		_, _ = c.ctr(ctx, "tasks", "kill", "--signal", "SIGKILL", id)
		_, _ = c.ctr(ctx, "tasks", "delete", "--force", id)
		_, _ = c.ctr(ctx, "containers", "delete", id)
	}
}

// cleanStale undoes a previous run in the folder whose harness did not
// stop it (killed, crashed, timed out), from the state it left.
func cleanStale(ctx context.Context, cfg Config, l layout) error {
	st, err := readRunState(l.stateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	cfg.Logf("cleaning up after a run that did not stop (harness pid %d)", st.HarnessPid)
	for name, p := range st.Components {
		p.kill(name, cfg.Logf)
	}
	var errs []error
	for _, err := range sweep(ctx, st.Before, l, cfg.Logf) {
		errs = append(errs, fmt.Errorf("cluster: cleaning up the previous run: %w", err))
	}
	if err := checkRestored(ctx, st.Before, cfg.Logf); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return os.Remove(l.stateFile)
}

// Kubectl runs bin/k8s/kubectl as the cluster's admin and returns its
// standard output; the error carries its standard error.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	return c.KubectlInput(ctx, "", args...)
}

// KubectlInput is Kubectl with stdin as kubectl's standard input (for
// `apply -f -`).
func (c *Cluster) KubectlInput(ctx context.Context, stdin string, args ...string) (string, error) {
	full := append([]string{"--kubeconfig", c.KubeconfigPath()}, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(c.cfg.BinDir, "kubectl"), full...) //nolint:gosec // G204: kubectl with the caller's arguments
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// KubeconfigPath is the admin's kubeconfig (user kubernetes-admin, group
// system:masters), for kubectl or any client.
func (c *Cluster) KubeconfigPath() string { return c.layout.kubeconfig("admin") }

// Dir is the cluster's folder.
func (c *Cluster) Dir() string { return c.layout.root }

// LogPath is the log file of a component ("kubelet", "kube-apiserver",
// "containerd", ...).
func (c *Cluster) LogPath(component string) string { return c.layout.log(component) }

// NodePort returns the node port of a Service's port (portName, or its only
// port when portName is "").
func (c *Cluster) NodePort(ctx context.Context, namespace, service, portName string) (int, error) {
	query := "{.spec.ports[0].nodePort}"
	if portName != "" {
		query = fmt.Sprintf("{.spec.ports[?(@.name==%q)].nodePort}", portName)
	}
	out, err := c.Kubectl(ctx, "-n", namespace, "get", "service", service, "-o", "jsonpath="+query)
	if err != nil {
		return 0, err
	}
	port, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		return 0, fmt.Errorf("cluster: service %s/%s has no node port %q (got %q)", namespace, service, portName, out)
	}
	return port, nil
}

// NodeURL is http://NodeIP:port, a NodePort as the host reaches it
// (http://127.0.0.1:port works too).
func (c *Cluster) NodeURL(port int) string { return fmt.Sprintf("http://%s:%d", NodeIP, port) }

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
