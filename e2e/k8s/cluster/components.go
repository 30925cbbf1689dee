package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mercato-dev/mercato/shared/localinfra"
	"github.com/mercato-dev/mercato/shared/wait"
)

// The host's programs the node runs on (Debian packages).
const (
	containerdPath = "/usr/bin/containerd"
	ctrPath        = "/usr/bin/ctr"
	runcPath       = "/usr/sbin/runc"
	cniBinDir      = "/usr/lib/cni"
)

// programs are what scripts/build-k8s.sh builds into bin/k8s.
var programs = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet",
	"kube-proxy", "kubectl", "etcd", "coredns", "pause"}

// checkPrerequisites fails, saying how to get it, on the first thing
// missing to run a cluster.
func checkPrerequisites(binDir string) error {
	if os.Geteuid() != 0 {
		return errors.New("cluster: a Kubernetes node needs root (mounts, cgroups, iptables, network namespaces); run the test as root")
	}
	for _, p := range programs {
		if !executable(filepath.Join(binDir, p)) {
			return fmt.Errorf("cluster: %s is missing from %s: run scripts/build-k8s.sh", p, binDir)
		}
	}
	debian := []struct{ path, pkg string }{
		{containerdPath, "containerd"}, {"/usr/bin/containerd-shim-runc-v2", "containerd"}, {ctrPath, "containerd"},
		{runcPath, "runc"},
		{filepath.Join(cniBinDir, "bridge"), "containernetworking-plugins"},
		{filepath.Join(cniBinDir, "host-local"), "containernetworking-plugins"},
		{filepath.Join(cniBinDir, "loopback"), "containernetworking-plugins"},
		{filepath.Join(cniBinDir, "firewall"), "containernetworking-plugins"},
	}
	for _, d := range debian {
		if !executable(d.path) {
			return fmt.Errorf("cluster: %s is missing: run scripts/build-k8s.sh, which installs the Debian package %s", d.path, d.pkg)
		}
	}
	for _, tool := range []string{"iptables", "iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore", "ip", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("cluster: %s is not on PATH: install the Debian packages iptables and iproute2", tool)
		}
	}
	return nil
}

func executable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// component is a running program of the cluster.
type component struct {
	name  string
	child *localinfra.Child
}

// componentPid is how state.json remembers a component: a killed run's
// leftover is killed only if the pid still runs the same program.
type componentPid struct {
	Pid int    `json:"pid"`
	Exe string `json:"exe"`
}

func (p componentPid) kill(name string, logf func(string, ...any)) {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.Pid))
	if err != nil || exe != p.Exe {
		return // gone, or the pid is another program's now
	}
	logf("killing %s (pid %d) left by the previous run", name, p.Pid)
	_ = syscall.Kill(p.Pid, syscall.SIGKILL)
	for i := 0; i < 50; i++ {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", p.Pid)); err != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *Cluster) component(name string) *component {
	for _, comp := range c.components {
		if comp.name == name {
			return comp
		}
	}
	return nil
}

// run starts a component and waits until ready succeeds; its pid goes into
// state.json at once, for the cleanup of a killed run.
func (c *Cluster) run(ctx context.Context, name, program string, args []string, ready func(context.Context) error) error {
	c.cfg.Logf("starting %s", name)
	cmd := exec.Command(program, args...) //nolint:gosec // G204: the cluster's own programs and flags
	child, err := localinfra.StartChild(name, c.layout.log(name), cmd)
	if err != nil {
		return err
	}
	c.components = append(c.components, &component{name: name, child: child})
	c.state.Components[name] = componentPid{Pid: child.Pid(), Exe: program}
	if err := c.state.write(c.layout.stateFile); err != nil {
		return err
	}
	return child.WaitReady(ctx, ready)
}

// start brings the cluster up, in order.
func (c *Cluster) start(ctx context.Context) error {
	l, bin := c.layout, c.cfg.BinDir
	var err error
	if c.ports, err = pickPorts(); err != nil {
		return err
	}
	if err := writePKI(l, c.cfg.NodeName); err != nil {
		return fmt.Errorf("cluster: certificates: %w", err)
	}
	if err := writeConfigs(l, c.ports, c.cfg.NodeName); err != nil {
		return fmt.Errorf("cluster: configuration: %w", err)
	}
	if err := createBridge(ctx); err != nil {
		return err
	}
	ca, err := os.ReadFile(filepath.Join(l.pki, "ca.crt"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	tlsClient := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	plain := &http.Client{Timeout: 2 * time.Second}
	pki := func(f string) string { return filepath.Join(l.pki, f) }
	loop := func(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

	if err := c.run(ctx, "containerd", containerdPath, []string{"--config", l.configFile("containerd.toml")},
		func(ctx context.Context) error { _, err := c.ctr(ctx, "version"); return err }); err != nil {
		return err
	}
	if err := c.importOwnImages(ctx); err != nil {
		return err
	}
	etcdURL := "http://" + loop(c.ports.etcdClient)
	peerURL := "http://" + loop(c.ports.etcdPeer)
	if err := c.run(ctx, "etcd", filepath.Join(bin, "etcd"), []string{
		"--name=" + c.cfg.NodeName, "--data-dir=" + l.etcd,
		"--listen-client-urls=" + etcdURL, "--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=" + c.cfg.NodeName + "=" + peerURL,
		// A test cluster's data is thrown away at the next start: no fsync.
		"--unsafe-no-fsync", "--log-level=warn",
	}, localinfra.HTTPReady(plain, etcdURL+"/health")); err != nil {
		return err
	}
	if err := c.run(ctx, "kube-apiserver", filepath.Join(bin, "kube-apiserver"), []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=" + NodeIP, "--advertise-address=" + NodeIP, "--secure-port=" + strconv.Itoa(apiServerPort),
		"--tls-cert-file=" + pki("apiserver.crt"), "--tls-private-key-file=" + pki("apiserver.key"),
		"--client-ca-file=" + pki("ca.crt"), "--cert-dir=" + filepath.Join(l.certs, "kube-apiserver"),
		"--service-account-issuer=https://kubernetes.default.svc." + clusterDomain,
		"--service-account-key-file=" + pki("sa.key"), "--service-account-signing-key-file=" + pki("sa.key"),
		"--service-cluster-ip-range=" + serviceCIDR,
		"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
		"--kubelet-client-certificate=" + pki("apiserver-kubelet-client.crt"),
		"--kubelet-client-key=" + pki("apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority=" + pki("ca.crt"),
		"--kubelet-preferred-address-types=InternalIP,Hostname",
		"--allow-privileged=true", "--profiling=false",
	}, localinfra.HTTPReady(tlsClient, "https://"+apiServerAddr+"/readyz")); err != nil {
		return err
	}
	controllers := []struct {
		name string
		port int
		args []string
	}{
		{"kube-controller-manager", c.ports.controllerManager, []string{
			"--service-account-private-key-file=" + pki("sa.key"), "--root-ca-file=" + pki("ca.crt"),
			"--use-service-account-credentials=true", "--service-cluster-ip-range=" + serviceCIDR,
		}},
		{"kube-scheduler", c.ports.scheduler, nil},
	}
	for _, ctl := range controllers {
		short := strings.TrimPrefix(ctl.name, "kube-")
		kc := l.kubeconfig(short)
		args := append([]string{
			"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
			"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(ctl.port),
			"--tls-cert-file=" + pki("loopback-serving.crt"), "--tls-private-key-file=" + pki("loopback-serving.key"),
			"--leader-elect=false",
		}, ctl.args...)
		if err := c.run(ctx, ctl.name, filepath.Join(bin, ctl.name), args,
			localinfra.HTTPReady(tlsClient, "https://"+loop(ctl.port)+"/healthz")); err != nil {
			return err
		}
	}
	if err := c.run(ctx, "kubelet", filepath.Join(bin, "kubelet"), []string{
		"--config=" + l.configFile("kubelet.yaml"), "--kubeconfig=" + l.kubeconfig("kubelet"),
		"--root-dir=" + l.kubelet, "--cert-dir=" + filepath.Join(l.certs, "kubelet"),
		"--hostname-override=" + c.cfg.NodeName, "--node-ip=" + NodeIP, "--v=1",
	}, localinfra.HTTPReady(plain, "http://"+loop(c.ports.kubeletHealthz)+"/healthz")); err != nil {
		return err
	}
	if err := c.run(ctx, "kube-proxy", filepath.Join(bin, "kube-proxy"), []string{
		"--config=" + l.configFile("kube-proxy.yaml"), "--v=1",
	}, localinfra.HTTPReady(plain, "http://"+loop(c.ports.kubeProxyHealthz)+"/healthz")); err != nil {
		return err
	}
	if err := c.waitNodeReady(ctx); err != nil {
		return err
	}
	c.cfg.Logf("starting CoreDNS")
	return c.startDNS(ctx)
}

// waitNodeReady waits (90 s at most) until the kubelet has registered the
// node and reports it Ready, which needs the runtime and CNI network ready.
func (c *Cluster) waitNodeReady(ctx context.Context) error {
	c.cfg.Logf("waiting for node %s to be Ready", c.cfg.NodeName)
	query := `jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].message}`
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, err := c.Kubectl(ctx, "get", "node", c.cfg.NodeName, "-o", query)
		if err == nil && strings.HasPrefix(out, "True") {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("its Ready condition is %q", out)
		}
		if time.Now().After(deadline) || !wait.For(ctx, 500*time.Millisecond) {
			return c.component("kubelet").child.Failure(fmt.Errorf("node %s not Ready after 90 s: %w", c.cfg.NodeName, err))
		}
	}
}

// importOwnImages packs the pause and CoreDNS images from bin/k8s and
// imports them.
func (c *Cluster) importOwnImages(ctx context.Context) error {
	bin := c.cfg.BinDir
	version, err := coreDNSVersion(ctx, filepath.Join(bin, "coredns"))
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	c.coreDNSImage = "registry.k8s.io/coredns/coredns:" + version
	pause, coredns := filepath.Join(c.layout.images, "pause.tar"), filepath.Join(c.layout.images, "coredns.tar")
	if err := binaryImage(pause, PauseImage, filepath.Join(bin, "pause"), "65535"); err != nil {
		return fmt.Errorf("cluster: pause image: %w", err)
	}
	if err := binaryImage(coredns, c.coreDNSImage, filepath.Join(bin, "coredns"), "65532"); err != nil {
		return fmt.Errorf("cluster: CoreDNS image: %w", err)
	}
	return c.ImportImages(ctx, pause, coredns)
}

// pickPorts chooses the run's loopback ports.
func pickPorts() (ports, error) {
	p, err := localinfra.FreePorts(9)
	if err != nil {
		return ports{}, err
	}
	return ports{
		etcdClient: p[0], etcdPeer: p[1], controllerManager: p[2], scheduler: p[3], kubeletHealthz: p[4],
		kubeProxyHealthz: p[5], kubeProxyMetrics: p[6], containerdMetrics: p[7], containerdStreams: p[8],
	}, nil
}

// createBridge makes the pod network's bridge with the node's address, so
// the API server and kubelet can listen on it before the first pod exists
// (the CNI bridge plugin takes the bridge over as it is), and makes the
// Service range unreachable from the pods (serviceRule): a pod's
// connection to a ClusterIP that kube-proxy has not programmed yet, or that
// has no endpoint, is refused at once instead of leaving by the default
// route, where whatever answers (on this host, an HTTP proxy saying 404)
// holds a kept-alive client for good. Packets to a programmed ClusterIP
// were rewritten to a pod's address before routing, so the rule never sees
// them; the host's own connections are not under it.
func createBridge(ctx context.Context) error {
	for _, args := range [][]string{
		{"link", "add", BridgeName, "type", "bridge"},
		{"addr", "add", NodeIP + "/24", "dev", BridgeName},
		{"link", "set", BridgeName, "up"},
		append([]string{"rule", "add"}, serviceRule...),
	} {
		if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil { //nolint:gosec // G204: fixed arguments
			return fmt.Errorf("cluster: ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// serviceRule is the policy-routing rule createBridge adds and teardown
// deletes: packets from the pods to the Service range are unreachable.
var serviceRule = []string{"iif", BridgeName, "to", serviceCIDR, "unreachable"}
