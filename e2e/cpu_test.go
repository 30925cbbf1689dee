package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/procfs"
)

// cpuUse is the CPU time (user + system) the platform's processes have
// used so far, by component: each service (its instances together), the
// gateway, "postgres" (the server and every backend), "redis" and "client"
// (this test process: the load and the order watcher). The difference of
// two, divided by the work done between them, is CPU per unit of work,
// which other load on a shared machine changes far less than throughput or
// latency: what the checkout benchmark compares runs with.
type cpuUse map[string]time.Duration

// cpuUse samples the platform's processes now.
func (p *checkoutPlatform) cpuUse(t testing.TB) cpuUse {
	t.Helper()
	use := cpuUse{"client": procCPU(t, os.Getpid())}
	for svc, procs := range p.procs {
		for _, pr := range procs {
			use[svc] += procCPU(t, pr.cmd.Process.Pid)
		}
	}
	for _, gw := range p.gateways {
		use["gateway"] += procCPU(t, gw.cmd.Process.Pid)
	}
	info, err := p.rdb.Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatalf("cpu: Redis INFO: %v", err)
	}
	var redisPid int
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			redisPid, _ = strconv.Atoi(v)
		}
	}
	if redisPid == 0 {
		t.Fatalf("cpu: no process_id in Redis's INFO server")
	}
	use["redis"] = procCPU(t, redisPid)
	// PostgreSQL: the postmaster and its children (backends, WAL writer,
	// checkpointer, ...), found from one backend of the order database.
	var backend int
	if err := p.db["order"].Get(&backend, `SELECT pg_backend_pid()`); err != nil {
		t.Fatalf("cpu: %v", err)
	}
	postmaster := procStat(t, backend).PPID
	use["postgres"] = procCPU(t, postmaster)
	procs, err := procfs.AllProcs()
	if err != nil {
		t.Fatalf("cpu: %v", err)
	}
	for _, pr := range procs {
		if st, err := pr.Stat(); err == nil && st.PPID == postmaster {
			use["postgres"] += cpuTime(st)
		}
	}
	return use
}

// since is the CPU used from before to u, by component.
func (u cpuUse) since(before cpuUse) cpuUse {
	d := cpuUse{}
	for k, v := range u {
		d[k] = v - before[k]
	}
	return d
}

// total is the CPU time of every component.
func (u cpuUse) total() time.Duration {
	var sum time.Duration
	for _, v := range u {
		sum += v
	}
	return sum
}

// per is "postgres 13.9 ms, order 6.1 ms, ...": each component's CPU per
// one of n units of work, the largest first.
func (u cpuUse) per(n int) string {
	keys := make([]string, 0, len(u))
	for k := range u {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return int(u[b] - u[a]) })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %.2f ms", k, ms(u[k])/float64(n))
	}
	return strings.Join(parts, ", ")
}

func procCPU(t testing.TB, pid int) time.Duration { return cpuTime(procStat(t, pid)) }

func procStat(t testing.TB, pid int) procfs.ProcStat {
	t.Helper()
	p, err := procfs.NewProc(pid)
	if err != nil {
		t.Fatalf("cpu: /proc/%d: %v", pid, err)
	}
	st, err := p.Stat()
	if err != nil {
		t.Fatalf("cpu: /proc/%d/stat: %v", pid, err)
	}
	return st
}

// cpuTime is the user and system time of a process.
func cpuTime(st procfs.ProcStat) time.Duration {
	return time.Duration(st.CPUTime() * float64(time.Second))
}
