package cluster

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"
)

// HostState is what a cluster can change on the host outside its folder,
// as read before Start changes anything and again after Stop: the kernel
// settings the kubelet and kube-proxy set, the iptables rules and chains of
// every table, mounts, network links, cgroups, the host folders the
// components create (with their entries), leftover shim sockets and kernel
// modules.
type HostState struct {
	Sysctls  map[string]string   `json:"sysctls"`  // file → value; files absent on this host are left out
	Iptables map[string][]string `json:"iptables"` // "iptables/nat" → ":CHAIN" declarations (built-in ones only with a policy other than ACCEPT) and "-A" rules
	NFTables []string            `json:"nftables"` // "table ip nat": iptables-nft makes a table on first use
	Mounts   []string            `json:"mounts"`   // "mount-point type source", the mount point escaped as in mountinfo
	Links    []string            `json:"links"`    // "name kind [master M]"
	Routes   []string            `json:"routes"`   // "rule: ..." of `ip rule show`, "route: ..." of `ip route show` (IPv4)
	Cgroups  []string            `json:"cgroups"`  // every cgroup folder of every hierarchy
	Paths    []string            `json:"paths"`    // watched host folders and their entries
	Modules  []string            `json:"modules"`  // loaded kernel modules
}

// sysctls the kubelet (setupKernelTunables) and kube-proxy (route_localnet
// for NodePorts on loopback, conntrack limits) may set, and those the pod
// network relies on.
var sysctls = []string{
	"/proc/sys/vm/overcommit_memory",
	"/proc/sys/vm/panic_on_oom",
	"/proc/sys/kernel/panic",
	"/proc/sys/kernel/panic_on_oops",
	"/proc/sys/kernel/keys/root_maxkeys",
	"/proc/sys/kernel/keys/root_maxbytes",
	"/proc/sys/net/ipv4/ip_forward",
	"/proc/sys/net/ipv4/conf/all/route_localnet",
	"/proc/sys/net/ipv4/conf/all/forwarding",
	"/proc/sys/net/ipv6/conf/all/forwarding",
	"/proc/sys/net/bridge/bridge-nf-call-iptables",
	"/proc/sys/net/bridge/bridge-nf-call-ip6tables",
	"/proc/sys/net/netfilter/nf_conntrack_max",
	"/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established",
	"/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_close_wait",
	"/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal",
	"/sys/module/nf_conntrack/parameters/hashsize",
}

// watchedPaths are host folders Kubernetes or containerd write to by
// default or by a path compiled in: the kubelet's container log links
// (/var/log/containers cannot be moved) and the pod logs they point to
// (/var/log/pods, left where a log collector looks for them), the CRI
// plugin's network namespaces, the shims' sockets; the others are defaults
// the configuration moves into the folder, watched in case a component
// falls back to them.
var watchedPaths = []string{
	"/var/log/containers", "/var/log/pods", "/var/lib/kubelet", "/run/netns",
	"/var/lib/cni", "/etc/cni", "/opt/cni", "/opt/containerd", "/etc/kubernetes",
	"/run/kubernetes", "/var/lib/etcd", "/var/lib/containerd", "/run/containerd",
	shimSocketDir,
}

// shimSocketDir is where containerd 1.6 puts its shims' sockets whatever
// its own state folder is.
const shimSocketDir = "/run/containerd/s"

// SnapshotHost reads the host state.
func SnapshotHost(ctx context.Context) (*HostState, error) {
	s := &HostState{Sysctls: map[string]string{}, Iptables: map[string][]string{}}
	for _, f := range sysctls {
		if b, err := os.ReadFile(f); err == nil { //nolint:gosec // G304: a fixed list of kernel settings
			s.Sysctls[f] = strings.TrimSpace(string(b))
		}
	}
	for _, family := range []string{"iptables", "ip6tables"} {
		out, err := exec.CommandContext(ctx, family+"-save").Output() //nolint:gosec // G204: iptables-save or ip6tables-save
		if err != nil {
			return nil, fmt.Errorf("%s-save: %w", family, err)
		}
		for table, lines := range parseIptablesSave(out) {
			s.Iptables[family+"/"+table] = lines
		}
	}
	if out, err := exec.CommandContext(ctx, "nft", "list", "tables").Output(); err == nil {
		s.NFTables = nonEmptyLines(out)
	}
	var err error
	if s.Mounts, err = readMounts(); err != nil {
		return nil, err
	}
	if s.Links, err = readLinks(ctx); err != nil {
		return nil, err
	}
	for _, what := range []string{"rule", "route"} {
		out, err := exec.CommandContext(ctx, "ip", what, "show").Output() //nolint:gosec // G204: ip rule|route show
		if err != nil {
			return nil, fmt.Errorf("ip %s show: %w", what, err)
		}
		for _, line := range nonEmptyLines(out) {
			s.Routes = append(s.Routes, what+": "+line)
		}
	}
	s.Cgroups = readCgroups(s.Mounts)
	s.Paths = readPaths()
	if b, err := os.ReadFile("/proc/modules"); err == nil {
		for _, line := range nonEmptyLines(b) {
			s.Modules = append(s.Modules, strings.Fields(line)[0])
		}
	}
	return s, nil
}

// parseIptablesSave keeps, per table, the chain declarations without their
// counters and the rules, sorted: the order of rules is kube-proxy's
// business, their presence is what must be undone. A built-in chain with
// the kernel's default policy (ACCEPT) is left out: a table that first use
// loaded (kube-proxy loads some a fresh host lacks) stays loaded after
// teardown, and while it holds only such chains it filters nothing, as
// before it existed.
func parseIptablesSave(out []byte) map[string][]string {
	tables := map[string][]string{}
	table := ""
	for _, line := range nonEmptyLines(out) {
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
			tables[table] = []string{}
		case strings.HasPrefix(line, ":"):
			f := strings.Fields(line)
			if len(f) > 1 && f[1] == "ACCEPT" { // user chains have "-" there
				continue
			}
			tables[table] = append(tables[table], strings.Join(f[:min(2, len(f))], " "))
		case strings.HasPrefix(line, "-A "):
			tables[table] = append(tables[table], line)
		}
	}
	for t := range tables {
		sort.Strings(tables[t])
	}
	return tables
}

func readMounts() ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var mounts []string
	for _, line := range nonEmptyLines(b) {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if len(f) < 5 || sep < 0 || sep+2 >= len(f) {
			continue
		}
		mounts = append(mounts, f[4]+" "+f[sep+1]+" "+f[sep+2]) // the mount point as mountinfo escapes it: no spaces
	}
	sort.Strings(mounts)
	return mounts, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

func readLinks(ctx context.Context) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ip", "-j", "-d", "link", "show").Output()
	if err != nil {
		return nil, fmt.Errorf("ip link show: %w", err)
	}
	var links []struct {
		Name     string `json:"ifname"`
		Master   string `json:"master"`
		LinkInfo struct {
			Kind string `json:"info_kind"`
		} `json:"linkinfo"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		return nil, fmt.Errorf("ip -j link show: %w", err)
	}
	var names []string
	for _, l := range links {
		s := l.Name + " " + cmp.Or(l.LinkInfo.Kind, "device")
		if l.Master != "" {
			s += " master " + l.Master
		}
		names = append(names, s)
	}
	sort.Strings(names)
	return names, nil
}

// readCgroups lists every folder of every mounted cgroup hierarchy.
func readCgroups(mounts []string) []string {
	var dirs []string
	for _, m := range mounts {
		f := strings.Fields(m)
		if len(f) < 2 || (f[1] != "cgroup" && f[1] != "cgroup2") {
			continue
		}
		_ = filepath.WalkDir(f[0], func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() && path != f[0] {
				dirs = append(dirs, path)
			}
			return nil
		})
	}
	sort.Strings(dirs)
	return dirs
}

// readPaths lists the watched folders that exist and their entries; of the
// shims' sockets only the dead ones count (a live one is a running shim of
// another containerd, Docker's).
func readPaths() []string {
	var paths []string
	for _, p := range watchedPaths {
		entries, err := os.ReadDir(p)
		if err != nil {
			continue
		}
		paths = append(paths, p)
		if p == "/run/containerd" {
			continue // only s/, below
		}
		for _, e := range entries {
			full := filepath.Join(p, e.Name())
			if p == shimSocketDir && socketAlive(full) {
				continue
			}
			paths = append(paths, full)
		}
	}
	sort.Strings(paths)
	return paths
}

func socketAlive(path string) bool {
	c, err := net.DialTimeout("unix", path, 200*time.Millisecond)
	if err != nil {
		return !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ENOENT)
	}
	c.Close()
	return true
}

// notOurs tells what a Docker engine on the same host does meanwhile (other
// work on this machine runs containers): its chains and rules, its bridges
// and their veths, its mounts and cgroups. Differences in those (and in
// cgroups outside kubepods, see Diff) are not the cluster's and are neither
// undone nor reported as a failure.
func notOurs(item string) bool {
	l := strings.ToLower(item)
	return strings.Contains(l, "docker") || strings.Contains(item, "br-") || strings.Contains(l, "moby")
}

// Diff lists what differs from before to s, each line "what: + added" or
// "what: - removed" (or "what: before → after" for a setting); changes
// notOurs keeps out are returned apart.
func (s *HostState) Diff(before *HostState) (diffs, ignored []string) {
	add := func(line, item string) {
		if notOurs(item) {
			ignored = append(ignored, line)
		} else {
			diffs = append(diffs, line)
		}
	}
	for _, f := range sortedKeys(before.Sysctls, s.Sysctls) {
		if b, a := before.Sysctls[f], s.Sysctls[f]; b != a {
			diffs = append(diffs, fmt.Sprintf("sysctl %s: %q → %q", f, b, a))
		}
	}
	for _, t := range sortedKeys(before.Iptables, s.Iptables) {
		for _, d := range listDiff(before.Iptables[t], s.Iptables[t]) {
			add(t+": "+d, d)
		}
	}
	for _, group := range []struct {
		what          string
		before, after []string
	}{
		{"nftables", before.NFTables, s.NFTables}, {"mount", before.Mounts, s.Mounts},
		{"link", before.Links, s.Links}, {"route", before.Routes, s.Routes}, {"path", before.Paths, s.Paths},
		{"module", before.Modules, s.Modules},
	} {
		for _, d := range listDiff(group.before, group.after) {
			add(group.what+": "+d, d)
		}
	}
	// Cgroups come and go with every process tree on the host (this
	// machine's own job control makes one per command); the cluster's are
	// the kubelet's, kubepods and below.
	for _, d := range listDiff(before.Cgroups, s.Cgroups) {
		if strings.Contains(d, "/kubepods") {
			diffs = append(diffs, "cgroup: "+d)
		} else {
			ignored = append(ignored, "cgroup: "+d)
		}
	}
	return diffs, ignored
}

// listDiff compares two sorted lists as multisets: "+ x" for each x more
// in after, "- x" for each x fewer.
func listDiff(before, after []string) []string {
	count := map[string]int{}
	for _, x := range before {
		count[x]--
	}
	for _, x := range after {
		count[x]++
	}
	var out []string
	for _, x := range sortedKeys(count) {
		for n := count[x]; n > 0; n-- {
			out = append(out, "+ "+x)
		}
		for n := count[x]; n < 0; n++ {
			out = append(out, "- "+x)
		}
	}
	return out
}

func sortedKeys[V any](maps ...map[string]V) []string {
	seen := map[string]bool{}
	for _, m := range maps {
		for k := range m {
			seen[k] = true
		}
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func nonEmptyLines(b []byte) []string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			lines = append(lines, line)
		}
	}
	return lines
}
