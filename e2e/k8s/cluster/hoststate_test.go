package cluster

import (
	"archive/tar"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestDiffListsEveryChangeButDockers(t *testing.T) {
	before := &HostState{
		Sysctls:  map[string]string{"/proc/sys/kernel/panic": "1", "/proc/sys/vm/overcommit_memory": "0"},
		Iptables: iptables("*nat\n:PREROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n-A PREROUTING -j DOCKER\nCOMMIT\n"),
		Links:    []string{"docker0 bridge", "eth0 device"},
		Mounts:   []string{"/ ext4 /dev/vda"},
		Cgroups:  []string{"/sys/fs/cgroup/memory/process_api/1"},
	}
	after := &HostState{
		Sysctls: map[string]string{"/proc/sys/kernel/panic": "10", "/proc/sys/vm/overcommit_memory": "0"},
		Iptables: iptables("*nat\n:PREROUTING ACCEPT [5:300]\n:DOCKER - [0:0]\n:KUBE-SERVICES - [0:0]\n" +
			"-A PREROUTING -j DOCKER\n-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n" +
			"-A DOCKER -i br-0123 -j RETURN\nCOMMIT\n" +
			// Tables loaded meanwhile: one as it was (default policies, no
			// rules), which is no change; one whose policy was changed.
			"*mangle\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n" +
			"*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\nCOMMIT\n"),
		Links:   []string{"docker0 bridge", "eth0 device", "mercato-k8s0 bridge", "veth1a2b veth master docker0"},
		Mounts:  []string{"/ ext4 /dev/vda", "/run/netns/cni-1 nsfs nsfs", "/run/netns/cni-1 nsfs nsfs"},
		Cgroups: []string{"/sys/fs/cgroup/memory/process_api/2", "/sys/fs/cgroup/pids/kubepods"},
	}
	diffs, ignored := after.Diff(before)
	want := []string{
		`sysctl /proc/sys/kernel/panic: "1" → "10"`,
		"iptables/filter: + :FORWARD DROP",
		"iptables/nat: + -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
		"iptables/nat: + :KUBE-SERVICES -",
		"mount: + /run/netns/cni-1 nsfs nsfs",
		"mount: + /run/netns/cni-1 nsfs nsfs",
		"link: + mercato-k8s0 bridge",
		"cgroup: + /sys/fs/cgroup/pids/kubepods",
	}
	if !slices.Equal(diffs, want) {
		t.Errorf("diffs:\n  %s\nwant:\n  %s", strings.Join(diffs, "\n  "), strings.Join(want, "\n  "))
	}
	wantIgnored := []string{"iptables/nat: + -A DOCKER -i br-0123 -j RETURN", "link: + veth1a2b veth master docker0",
		"cgroup: - /sys/fs/cgroup/memory/process_api/1", "cgroup: + /sys/fs/cgroup/memory/process_api/2"}
	if !slices.Equal(ignored, wantIgnored) {
		t.Errorf("ignored: %q, want %q", ignored, wantIgnored)
	}
	if d, _ := before.Diff(before); len(d) != 0 {
		t.Errorf("a state differs from itself: %q", d)
	}
}

// iptables is the state SnapshotHost makes of iptables-save's output.
func iptables(save string) map[string][]string {
	state := map[string][]string{}
	for table, lines := range parseIptablesSave([]byte(save)) {
		state["iptables/"+table] = lines
	}
	return state
}

func TestSnapshotReadsThisHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("iptables-save needs root; run as root (as make test does)")
	}
	// A chain of the test's own, so the reading of iptables is checked on a
	// host with no rules of its own too (a fresh machine has none).
	chain := "MERCATO-SNAPSHOT-" + strconv.Itoa(os.Getpid())
	if out, err := exec.CommandContext(t.Context(), "iptables", "-w", "-N", chain).CombinedOutput(); err != nil {
		t.Fatalf("iptables -N %s: %v %s", chain, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("iptables", "-w", "-X", chain).CombinedOutput(); err != nil {
			t.Errorf("iptables -X %s: %v %s", chain, err, out)
		}
	})
	s, err := SnapshotHost(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Mounts) == 0 || len(s.Links) == 0 || len(s.Sysctls) == 0 {
		t.Fatalf("empty parts in %+v", s)
	}
	if !slices.Contains(s.Iptables["iptables/filter"], ":"+chain+" -") {
		t.Errorf("iptables/filter %q lacks the test's chain %s", s.Iptables["iptables/filter"], chain)
	}
	if !slices.ContainsFunc(s.Links, func(l string) bool { return strings.HasPrefix(l, "lo ") }) {
		t.Errorf("links %q lack lo", s.Links)
	}
	again, err := SnapshotHost(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := again.Diff(s); len(d) != 0 {
		t.Errorf("two readings in a row differ: %q", d)
	}
}

func TestBinaryImageIsADockerArchive(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "pause")
	if err := os.WriteFile(bin, []byte("#!/bin/true\n"), 0o755); err != nil { //nolint:gosec // G306: an executable for the image
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "pause.tar")
	if err := binaryImage(archive, PauseImage, bin, "65535"); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(archive) //nolint:gosec // G304: the test's file
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name], _ = io.ReadAll(tr)
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
		t.Fatal(err)
	}
	if len(manifest) != 1 || !slices.Equal(manifest[0].RepoTags, []string{PauseImage}) || len(manifest[0].Layers) != 1 {
		t.Fatalf("manifest %+v", manifest)
	}
	var config struct {
		Config struct {
			Entrypoint []string
			User       string
		} `json:"config"`
	}
	if err := json.Unmarshal(files[manifest[0].Config], &config); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(config.Config.Entrypoint, []string{"/pause"}) || config.Config.User != "65535" {
		t.Errorf("config %+v", config)
	}
	layer := tar.NewReader(strings.NewReader(string(files[manifest[0].Layers[0]])))
	h, err := layer.Next()
	if err != nil || h.Name != "pause" || h.Mode != 0o755 {
		t.Errorf("layer's first file: %+v, %v", h, err)
	}
}
