package cluster

import (
	"fmt"
	"os"
	"path/filepath"
)

// layout is where everything of a cluster lives inside its folder.
type layout struct {
	root           string
	pki            string
	logs           string
	config         string
	images         string
	containerdRoot string
	containerdRun  string // containerd's state folder
	containerdSock string
	cniConf        string
	cniIPAM        string
	etcd           string
	kubelet        string // the kubelet's --root-dir
	certs          string // self-signed serving certificates of the controllers
	stateFile      string // what a killed run leaves for the next Start to clean up
}

func newLayout(dir string) layout {
	j := func(p ...string) string { return filepath.Join(append([]string{dir}, p...)...) }
	return layout{
		root:           dir,
		pki:            j("pki"),
		logs:           j("logs"),
		config:         j("config"),
		images:         j("images"),
		containerdRoot: j("containerd", "root"),
		containerdRun:  j("containerd", "state"),
		containerdSock: j("containerd", "containerd.sock"),
		cniConf:        j("cni", "net.d"),
		cniIPAM:        j("cni", "ipam"),
		etcd:           j("etcd"),
		kubelet:        j("kubelet"),
		certs:          j("certs"),
		stateFile:      j("state.json"),
	}
}

func (l layout) kubeconfig(client string) string { return filepath.Join(l.pki, client+".kubeconfig") }
func (l layout) log(component string) string     { return filepath.Join(l.logs, component+".log") }
func (l layout) configFile(name string) string   { return filepath.Join(l.config, name) }

// ports are the loopback ports of one run (picked free at start).
type ports struct {
	etcdClient, etcdPeer                 int
	controllerManager, scheduler         int
	kubeletHealthz                       int
	kubeProxyHealthz, kubeProxyMetrics   int
	containerdMetrics, containerdStreams int
}

// writeConfigs writes containerd's, the CNI network's, the kubelet's and
// kube-proxy's configuration files.
func writeConfigs(l layout, p ports, nodeName string) error {
	files := map[string]string{
		l.configFile("containerd.toml"):                     containerdConfig(l, p),
		filepath.Join(l.cniConf, "10-mercato-k8s.conflist"): cniConfig(l),
		l.configFile("kubelet.yaml"):                        kubeletConfig(l, p),
		l.configFile("kube-proxy.yaml"):                     kubeProxyConfig(l, p, nodeName),
	}
	for path, content := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// containerdConfig is a containerd of the cluster's own: its root, state and
// socket in the folder, the CRI plugin's CNI configuration in the folder, the
// sandbox image the harness imports. restrict_oom_score_adj: this host
// refuses to lower an OOM score (no CAP_SYS_RESOURCE), which runc would try
// for the kubelet's guaranteed pods. The snapshotters and the /opt
// installer containerd does not need are disabled, so it touches nothing
// outside the folder but the kernel.
func containerdConfig(l layout, p ports) string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = %q

[metrics]
  address = "127.0.0.1:%d"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "%d"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = %q
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
    max_conf_num = 1
`, l.containerdRoot, l.containerdRun, l.containerdSock, p.containerdMetrics, PauseImage,
		p.containerdStreams, runcPath, cniBinDir, l.cniConf)
}

// cniConfig is the pod network: Debian's bridge plugin on the harness's
// bridge (whose address is the node's IP), addresses from the node's pod
// subnet, masquerading for traffic leaving the subnet, hairpin mode so a pod
// reaches itself through a Service; the firewall plugin accepts pod traffic
// in the FORWARD chain, whose policy Docker sets to DROP.
func cniConfig(l layout) string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "mercato-k8s",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q, "gateway": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": %q
      }
    },
    {"type": "firewall", "backend": "iptables"}
  ]
}
`, BridgeName, podSubnet, NodeIP, l.cniIPAM)
}

// kubeletConfig: the settings this host needs (cgroup v1 with the cgroupfs
// driver), the kubelet's files in the folder (root dir) but the pod logs,
// which stay in the default /var/log/pods that /var/log/containers links
// into and that a node-level log collector mounts (deploy/k8s/components/logs;
// Stop removes what was written there), its API
// on the node IP (the API server calls it there) and its health check on
// loopback, client certificates checked against the cluster CA and requests
// authorized by the API server. Eviction and image garbage collection are
// set so a full disk of the host (and not of the cluster) neither evicts the
// pods nor deletes the imported images, which cannot be pulled again. The
// disk thresholds are sizes, not shares: 1% of a large disk shared with
// other work (252 GB, 2.4 GB free) evicted every pod for "low on resource:
// ephemeral-storage" and the rollouts never ended.
func kubeletConfig(l layout, p ports) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
tlsCertFile: %s
tlsPrivateKeyFile: %s
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %s
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%s
clusterDomain: %s
clusterDNS: [%s]
resolvConf: /etc/resolv.conf
podLogsDir: /var/log/pods
rotateCertificates: false
serverTLSBootstrap: false
protectKernelDefaults: false
evictionHard:
  memory.available: 100Mi
  nodefs.available: 100Mi
  nodefs.inodesFree: "1%%"
  imagefs.available: 100Mi
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
shutdownGracePeriod: 0s
`, NodeIP, kubeletPort, p.kubeletHealthz, filepath.Join(l.pki, "kubelet-serving.crt"),
		filepath.Join(l.pki, "kubelet-serving.key"), filepath.Join(l.pki, "ca.crt"),
		l.containerdSock, clusterDomain, DNSServiceIP)
}

// kubeProxyConfig: iptables mode; NodePorts answer only on the node IP and
// loopback (never eth0); connection tracking limits and timeouts are left
// as the host has them (0: do not set).
func kubeProxyConfig(l layout, p ports, nodeName string) string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %s
hostnameOverride: %s
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:%d
metricsBindAddress: 127.0.0.1:%d
mode: iptables
clusterCIDR: %s
nodePortAddresses: ["%s/32", "127.0.0.0/8"]
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, l.kubeconfig("kube-proxy"), nodeName, p.kubeProxyHealthz, p.kubeProxyMetrics, clusterCIDR, NodeIP)
}
