package benchkit

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// CPUSnapshot is what other work on the machine costs, read from /proc:
// the CPU time of the whole machine and of this process's tree.
type CPUSnapshot struct {
	at      time.Time
	machine int64 // user+nice+system of every CPU, in clock ticks
	cpus    int   // CPUs of the machine (not of this process's affinity mask)
	tree    int64 // utime+stime+cutime+cstime of this process and its descendants
	ok      bool
}

// TakeCPUSnapshot reads the machine's busy time and the bench's share of
// it. The tree is every process descending from this one: PostgreSQL
// and its backends, the proxies, pgbench. What a process that has exited
// used is counted in its parent's cutime/cstime once reaped, so nothing
// the tree used is lost between two snapshots.
func TakeCPUSnapshot() CPUSnapshot {
	s := CPUSnapshot{at: time.Now()}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := strings.Cut(string(b), "\n")
	for _, l := range strings.Split(string(b), "\n") {
		if len(l) > 3 && strings.HasPrefix(l, "cpu") && l[3] >= '0' && l[3] <= '9' {
			s.cpus++
		}
	}
	f := strings.Fields(line)
	if len(f) < 4 || f[0] != "cpu" {
		return s
	}
	for _, v := range f[1:4] { // user nice system; not idle, iowait, irq, softirq, steal
		n, _ := strconv.ParseInt(v, 10, 64)
		s.machine += n
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return s
	}
	type proc struct {
		ppid  int
		ticks int64
	}
	procs := map[int]proc{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		st := string(b)
		i := strings.LastIndexByte(st, ')')
		if i < 0 || len(st) < i+2 {
			continue
		}
		f := strings.Fields(st[i+2:]) // state ppid ... utime(11) stime(12) cutime(13) cstime(14)
		if len(f) < 15 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		var t int64
		for _, v := range f[11:15] {
			n, _ := strconv.ParseInt(v, 10, 64)
			t += n
		}
		procs[pid] = proc{ppid, t}
	}
	self := os.Getpid()
	inTree := map[int]bool{self: true}
	var under func(pid int, depth int) bool
	under = func(pid, depth int) bool {
		if v, seen := inTree[pid]; seen {
			return v
		}
		p, ok := procs[pid]
		if !ok || pid <= 1 || depth > 64 {
			return false
		}
		v := under(p.ppid, depth+1)
		inTree[pid] = v
		return v
	}
	for pid, p := range procs {
		if under(pid, 0) {
			s.tree += p.ticks
		}
	}
	s.ok = true
	return s
}

// OtherCPU is the share of the machine's CPUs (0–1) that processes
// outside the bench's tree used between a and b; -1 when unknown.
func OtherCPU(a, b CPUSnapshot) float64 {
	if !a.ok || !b.ok {
		return -1
	}
	elapsed := b.at.Sub(a.at).Seconds() * ClkTck * float64(b.cpus)
	if elapsed <= 0 {
		return -1
	}
	other := float64((b.machine - a.machine) - (b.tree - a.tree))
	return max(0, other/elapsed)
}

// ClkTck is USER_HZ, the unit of /proc CPU times.
const ClkTck = 100

// Pct formats a share (0–1) as a percentage; "?" when unknown (< 0).
func Pct(v float64) string {
	if v < 0 {
		return "?"
	}
	return fmt.Sprintf("%.0f %%", 100*v)
}

// ParseClients reads a -clients flag: client counts separated by commas.
func ParseClients(s string) ([]int, error) {
	var out []int
	for _, c := range strings.Split(s, ",") {
		if strings.TrimSpace(c) == "" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad -clients %q", s)
		}
		out = append(out, n)
	}
	return out, nil
}
