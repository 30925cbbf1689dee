package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"time"

	"github.com/mercato-dev/mercato/shared/wait"
)

// CoreDNS runs inside the cluster, as kubeadm deploys it: a Deployment in
// kube-system behind the kube-dns Service at DNSServiceIP, the address the
// kubelet writes into every pod's resolv.conf. Inside, rather than as a host
// process, because then the cluster's DNS is what any cluster has (a pod
// that reaches the API server through the kubernetes Service with a service
// account token, RBAC and all), and nothing of it listens on the host. It
// listens on 1053 so it runs as a non-root user without capabilities; the
// Service maps port 53 to it.
func coreDNSManifest(image string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata:
  name: coredns
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:coredns
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:coredns
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:coredns
subjects:
- kind: ServiceAccount
  name: coredns
  namespace: kube-system
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: coredns
  namespace: kube-system
data:
  Corefile: |
    .:1053 {
        errors
        health {
            lameduck 5s
        }
        ready
        kubernetes %[2]s in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 30
        }
        prometheus :9153
        forward . /etc/resolv.conf
        cache 30
        loop
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  replicas: 1
  selector:
    matchLabels: {k8s-app: kube-dns}
  template:
    metadata:
      labels: {k8s-app: kube-dns}
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      dnsPolicy: Default
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: coredns
        image: %[1]s
        imagePullPolicy: Never
        args: ["-conf", "/etc/coredns/Corefile"]
        ports:
        - {name: dns, containerPort: 1053, protocol: UDP}
        - {name: dns-tcp, containerPort: 1053, protocol: TCP}
        - {name: metrics, containerPort: 9153, protocol: TCP}
        resources:
          requests: {cpu: 50m, memory: 32Mi}
          limits: {memory: 128Mi}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        readinessProbe:
          httpGet: {path: /ready, port: 8181}
          periodSeconds: 2
        livenessProbe:
          httpGet: {path: /health, port: 8080}
          initialDelaySeconds: 10
        volumeMounts:
        - {name: config, mountPath: /etc/coredns, readOnly: true}
      volumes:
      - name: config
        configMap:
          name: coredns
          items: [{key: Corefile, path: Corefile}]
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  selector: {k8s-app: kube-dns}
  clusterIP: %[3]s
  ports:
  - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
  - {name: metrics, port: 9153, protocol: TCP}
`, image, clusterDomain, DNSServiceIP)
}

// coreDNSVersion asks the built binary ("CoreDNS-1.15.0") for the image tag.
func coreDNSVersion(ctx context.Context, bin string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, "-version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s -version: %w: %s", bin, err, out)
	}
	for _, f := range strings.Fields(string(out)) {
		if v, ok := strings.CutPrefix(f, "CoreDNS-"); ok {
			return "v" + v, nil
		}
	}
	return "", fmt.Errorf("%s -version printed no CoreDNS-<version>: %s", bin, out)
}

// startDNS deploys CoreDNS and waits until the kube-dns Service answers
// from the host: the kubernetes Service's name resolves to its ClusterIP,
// which goes through kube-proxy's rules, the pod network and CoreDNS's
// watch of the API server.
func (c *Cluster) startDNS(ctx context.Context) error {
	if _, err := c.KubectlInput(ctx, coreDNSManifest(c.coreDNSImage), "apply", "-f", "-"); err != nil {
		return err
	}
	if _, err := c.Kubectl(ctx, "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=120s"); err != nil {
		return c.podFailure(ctx, "kube-system", "k8s-app=kube-dns", fmt.Errorf("CoreDNS did not roll out: %w", err))
	}
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, net.JoinHostPort(DNSServiceIP, "53"))
	}}
	name := "kubernetes.default.svc." + clusterDomain
	deadline := time.Now().Add(30 * time.Second)
	for {
		lookupCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		addrs, err := resolver.LookupHost(lookupCtx, name)
		cancel()
		if err == nil && len(addrs) == 1 && addrs[0] == kubernetesServiceIP {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("got %v, want [%s]", addrs, kubernetesServiceIP)
		}
		if time.Now().After(deadline) || !wait.For(ctx, 500*time.Millisecond) {
			return c.podFailure(ctx, "kube-system", "k8s-app=kube-dns",
				fmt.Errorf("DNS at %s does not resolve %s: %w", DNSServiceIP, name, errors.Join(err, ctx.Err())))
		}
	}
}

// podFailure adds the state and logs of the pods matching selector to err.
func (c *Cluster) podFailure(ctx context.Context, namespace, selector string, err error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	pods, _ := c.Kubectl(ctx, "-n", namespace, "get", "pods", "-l", selector, "-o", "wide")
	logs, _ := c.Kubectl(ctx, "-n", namespace, "logs", "-l", selector, "--tail=20", "--all-containers")
	events, _ := c.Kubectl(ctx, "-n", namespace, "get", "events", "--sort-by=.lastTimestamp")
	return fmt.Errorf("%w\n--- pods ---\n%s\n--- their logs ---\n%s\n--- events in %s ---\n%s", err, pods, logs, namespace, tail(events, 20))
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
