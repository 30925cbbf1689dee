package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clockTick is the unit of utime and stime in /proc/PID/stat: USER_HZ,
// 100 on every Linux architecture Go runs on (sysconf(_SC_CLK_TCK)).
const clockTick = 10 * time.Millisecond

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
	postmaster := procStat(t, backend).ppid
	use["postgres"] = procCPU(t, postmaster)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readProcStat(pid); ok && st.ppid == postmaster {
			use["postgres"] += st.cpu
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

type procStatus struct {
	ppid int
	cpu  time.Duration // utime + stime
}

func procCPU(t testing.TB, pid int) time.Duration { return procStat(t, pid).cpu }

func procStat(t testing.TB, pid int) procStatus {
	t.Helper()
	st, ok := readProcStat(pid)
	if !ok {
		t.Fatalf("cpu: no /proc/%d/stat", pid)
	}
	return st
}

// readProcStat reads the parent and the CPU time of pid from
// /proc/PID/stat (proc(5): fields 4, 14 and 15; the command name, field 2,
// is in parentheses and may hold spaces).
func readProcStat(pid int) (procStatus, bool) {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStatus{}, false
	}
	i := strings.LastIndexByte(string(raw), ')')
	if i < 0 {
		return procStatus{}, false
	}
	f := strings.Fields(string(raw[i+1:])) // f[0] is field 3, the state
	if len(f) < 13 {
		return procStatus{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return procStatus{ppid: ppid, cpu: time.Duration(utime+stime) * clockTick}, true
}
