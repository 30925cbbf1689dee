package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mercato-dev/mercato/shared/wait"
)

// sweep undoes what a cluster left on the host since before, with no help
// from the cluster (it may be half-started, or its harness killed): it kills
// the processes in the pod cgroups created since and the shims of the
// cluster's containerd, unmounts what was mounted since in the cluster's
// folder and network namespaces, removes the new entries of the watched host
// folders, deletes the bridge and its veths, the new iptables rules and
// chains and nftables tables, removes the new pod cgroups and writes the
// sysctls back. What notOurs keeps apart (a Docker engine's) is left alone,
// and so is any other change (a link, a mount elsewhere): the check after
// the sweep reports those. It returns every step that failed.
func sweep(ctx context.Context, before *HostState, l layout, logf func(string, ...any)) []error {
	var errs []error
	fail := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	now, err := SnapshotHost(ctx)
	if err != nil {
		return []error{err}
	}
	var pods []string // the kubelet's cgroups, kubepods and below, hold the containers
	for _, cg := range added(before.Cgroups, now.Cgroups) {
		if strings.Contains(cg, "/kubepods") {
			pods = append(pods, cg)
		}
	}
	fail(killAll(ctx, l.containerdSock, pods, logf))

	if now, err = SnapshotHost(ctx); err != nil {
		return append(errs, err)
	}
	var mounts []string // the cluster mounts in its folder and network namespaces only
	for _, m := range added(before.Mounts, now.Mounts) {
		if p := unescapeMount(strings.Fields(m)[0]); strings.HasPrefix(p, l.root+"/") || p == l.root || strings.HasPrefix(p, "/run/netns/") {
			mounts = append(mounts, m)
		}
	}
	fail(unmountAll(mounts, logf))
	fail(removePaths(before.Paths, logf))
	for _, link := range added(before.Links, now.Links) {
		// The bridge, and the pods' veths on it (a veth usually goes with
		// its network namespace).
		f := strings.Fields(link)
		onBridge := len(f) == 4 && f[3] == BridgeName
		if f[0] != BridgeName && !onBridge {
			continue
		}
		if out, err := exec.CommandContext(ctx, "ip", "link", "delete", f[0]).CombinedOutput(); err != nil && //nolint:gosec // G204: a link of ours, from ip's own listing
			!strings.Contains(string(out), "Cannot find device") {
			fail(fmt.Errorf("ip link delete %s: %w: %s", f[0], err, out))
		}
	}
	for _, route := range added(before.Routes, now.Routes) {
		// createBridge's rule (the routes through the bridge went with it).
		if !strings.HasPrefix(route, "rule: ") || !strings.Contains(route, "iif "+BridgeName) {
			continue
		}
		if out, err := exec.CommandContext(ctx, "ip", append([]string{"rule", "delete"}, serviceRule...)...).CombinedOutput(); err != nil { //nolint:gosec // G204: fixed arguments
			fail(fmt.Errorf("ip rule delete %s: %w: %s", strings.Join(serviceRule, " "), err, out))
		}
	}
	fail(restoreIptables(ctx, before, now))
	for _, table := range added(before.NFTables, now.NFTables) {
		// "table ip mangle": a table iptables-nft made for the kubelet's or
		// kube-proxy's chains, empty once they are gone.
		args := append([]string{"delete"}, strings.Fields(table)...)
		if out, err := exec.CommandContext(ctx, "nft", args...).CombinedOutput(); err != nil { //nolint:gosec // G204: nft delete table <family> <name>, from nft's own listing
			fail(fmt.Errorf("nft %s: %w: %s", strings.Join(args, " "), err, out))
		}
	}
	fail(removeCgroups(pods))
	for f, v := range before.Sysctls {
		if cur, err := os.ReadFile(f); err == nil && strings.TrimSpace(string(cur)) != v { //nolint:gosec // G304: a fixed list of kernel settings
			logf("restoring %s to %s (was %s)", f, v, strings.TrimSpace(string(cur)))
			fail(os.WriteFile(f, []byte(v+"\n"), 0o644)) //nolint:gosec // G306: a kernel setting, not a file of ours
		}
	}
	return errs
}

// added lists the items of after that are not in before and are ours.
func added(before, after []string) []string {
	var out []string
	for _, d := range listDiff(before, after) {
		if x, ok := strings.CutPrefix(d, "+ "); ok && !notOurs(x) {
			out = append(out, x)
		}
	}
	return out
}

// killAll SIGKILLs the shims of the cluster's containerd (found by the
// socket address on their command line) and every process in the pod
// cgroups created since the start (the containers), and waits until they
// are gone.
func killAll(ctx context.Context, socket string, cgroups []string, logf func(string, ...any)) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		pids := shimPids(socket)
		for _, cg := range cgroups {
			b, err := os.ReadFile(filepath.Join(cg, "cgroup.procs")) //nolint:gosec // G304: a cgroup the cluster created
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					pids = append(pids, pid)
				}
			}
		}
		slices.Sort(pids) // a process is in a cgroup of every hierarchy
		pids = slices.Compact(pids)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still alive 20 s after SIGKILL", pids)
		}
		logf("killing %d leftover container and shim processes", len(pids))
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if !wait.For(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// shimPids finds the containerd shims serving the containerd on socket.
func shimPids(socket string) []int {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []int
	for _, p := range procs {
		b, err := os.ReadFile(p) //nolint:gosec // G304: /proc
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-address" && args[i+1] == socket {
				if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
					pids = append(pids, pid)
				}
			}
		}
	}
	return pids
}

// unmountAll unmounts the given "mount-point type source" lines, deepest
// first; a mount still busy is detached.
func unmountAll(mounts []string, logf func(string, ...any)) error {
	points := make([]string, 0, len(mounts))
	for _, m := range mounts {
		points = append(points, unescapeMount(strings.Fields(m)[0]))
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	if len(points) > 0 {
		logf("unmounting %d mounts", len(points))
	}
	var errs []error
	for _, p := range points {
		if err := syscall.Unmount(p, 0); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
			}
		}
	}
	return errors.Join(errs...)
}

// removePaths removes the watched host folders and entries that were not
// there before (container log links, network namespace files, dead shim
// sockets, a folder a component made), never one with a mount under it.
func removePaths(before []string, logf func(string, ...any)) error {
	now := readPaths()
	mounts, err := readMounts()
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range added(before, now) {
		if mountedUnder(mounts, p) {
			errs = append(errs, fmt.Errorf("%s still has a mount under it; not removing it", p))
			continue
		}
		logf("removing %s", p)
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func mountedUnder(mounts []string, dir string) bool {
	for _, m := range mounts {
		if p := strings.Fields(m)[0]; p == dir || strings.HasPrefix(p, dir+"/") {
			return true
		}
	}
	return false
}

// restoreIptables deletes, with iptables-restore --noflush per table, the
// rules added since before to chains that are not new (built-in chains
// among them), and flushes and deletes the user chains added since.
func restoreIptables(ctx context.Context, before, now *HostState) error {
	var errs []error
	for _, key := range sortedKeys(now.Iptables) {
		family, table, _ := strings.Cut(key, "/")
		lines := added(before.Iptables[key], now.Iptables[key])
		var deletes, chains []string
		for _, line := range lines {
			// ":NAME -" declares a user chain; a built-in one has a policy.
			if decl, ok := strings.CutPrefix(line, ":"); ok && strings.HasSuffix(decl, " -") {
				chains = append(chains, strings.Fields(decl)[0])
			}
		}
		for _, line := range lines {
			if rule, ok := strings.CutPrefix(line, "-A "); ok && !slices.Contains(chains, strings.Fields(rule)[0]) {
				deletes = append(deletes, "-D "+rule)
			}
		}
		if len(deletes)+len(chains) == 0 {
			continue
		}
		var script strings.Builder
		script.WriteString("*" + table + "\n")
		for _, d := range deletes {
			script.WriteString(d + "\n")
		}
		for _, c := range chains {
			script.WriteString("-F " + c + "\n")
		}
		for _, c := range chains {
			script.WriteString("-X " + c + "\n")
		}
		script.WriteString("COMMIT\n")
		cmd := exec.CommandContext(ctx, family+"-restore", "--noflush") //nolint:gosec // G204: iptables-restore or ip6tables-restore
		cmd.Stdin = strings.NewReader(script.String())
		if out, err := cmd.CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("%s-restore (table %s): %w: %s\n%s", family, table, err, out, script.String()))
		}
	}
	return errors.Join(errs...)
}

// removeCgroups removes the cgroup folders created since the start,
// deepest first (a cgroup goes only once its children and tasks have).
func removeCgroups(dirs []string) error {
	sorted := append([]string(nil), dirs...)
	sort.Slice(sorted, func(i, j int) bool { return len(sorted[i]) > len(sorted[j]) })
	var errs []error
	for _, d := range sorted {
		var err error
		for try := 0; try < 20; try++ {
			if err = syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
				err = nil
				break
			}
			time.Sleep(100 * time.Millisecond) // a killed task leaves its cgroup a moment later
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}
