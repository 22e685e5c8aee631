package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/switchyard-proxy/switchyard/bench/internal/benchkit"
)

// System calls grouped into the columns of the main table; the rest is
// "other".
var (
	readCalls  = []string{"read", "readv", "recvfrom", "recvmsg", "recvmmsg"}
	writeCalls = []string{"write", "writev", "sendto", "sendmsg", "sendmmsg"}
	pollCalls  = []string{"epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll", "select", "pselect6"}
	futexCalls = []string{"futex"}
	sleepCalls = []string{"nanosleep", "clock_nanosleep"}
)

func sum(m map[string]int64, names []string) int64 {
	var n int64
	for _, s := range names {
		n += m[s]
	}
	return n
}

// clientsLabel is the workload's cell in the clients column.
func clientsLabel(w workload) string {
	for i, a := range w.args {
		if a == "-M" && i+1 < len(w.args) {
			return fmt.Sprintf("%d, -M %s", w.clients, w.args[i+1])
		}
	}
	return fmt.Sprint(w.clients)
}

func printReport(out io.Writer, cfg config, workloads []workload, targets []*target, res map[string]map[string]result) {
	d := cfg.duration
	warm, win, gap := windows(d)
	otherMax := 0.0
	for _, w := range workloads {
		for _, r := range res[w.name] {
			if r.err == nil {
				otherMax = max(otherMax, r.other)
			}
		}
	}
	fmt.Fprintf(out, "pgbench -n -S -T %s -j 2 -l, pgbench, strace and the bench on CPU %s, PostgreSQL and proxies on CPU %s; "+
		"pgbouncer (transaction) and Switchyard (transaction) with default_pool_size = %d, trust auth with an auth file. "+
		"In each run: %s warm-up, %s without strace (context switches, CPU), %s gap, %s with `strace -c -f -p PID` attached "+
		"(system calls); transactions counted per window from pgbench's per-transaction log.\n\n",
		d, benchkit.ClientCPU, benchkit.ServerCPU, cfg.poolSize, warm, win, gap, win)
	fmt.Fprintf(out, "Other work on the machine (outside the bench) took at most %s of its CPU during a run; "+
		"more than a few per cent inflates involuntary context switches above all.\n\n", benchkit.Pct(otherMax))

	fmt.Fprintln(out, "### Per transaction, proxy process only")
	fmt.Fprintln(out)
	fmt.Fprintln(out, "| target | clients | tx (strace window) | syscalls/tx | reads/tx (failed) | writes/tx | epoll waits/tx | futex/tx | nanosleep/tx | other/tx "+
		"| tx (window without strace) | ctx switches/tx voluntary | involuntary |")
	fmt.Fprintln(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	each(workloads, targets, res, func(w workload, t *target, r result) {
		if r.err != nil {
			fmt.Fprintf(out, "| %s | %s | n/a: %s ||||||||||\n", t.name, clientsLabel(w), short(r.err))
			return
		}
		tr, c := r.trace, r.ctx
		reads, writes := sum(tr.calls, readCalls), sum(tr.calls, writeCalls)
		polls, futex, sleeps := sum(tr.calls, pollCalls), sum(tr.calls, futexCalls), sum(tr.calls, sleepCalls)
		other := tr.total - reads - writes - polls - futex - sleeps
		fmt.Fprintf(out, "| %s | %s | %d | %.2f | %.2f (%.2f) | %.2f | %.2f | %.2f | %.2f | %.2f | %d | %.2f | %.2f |\n",
			t.name, clientsLabel(w), tr.tx, tr.perTx(tr.total),
			tr.perTx(reads), tr.perTx(sum(tr.errors, readCalls)), tr.perTx(writes),
			tr.perTx(polls), tr.perTx(futex), tr.perTx(sleeps), tr.perTx(other),
			c.tx, c.perTx(c.voluntary), c.perTx(c.involuntary))
	})
	fmt.Fprintln(out)
	fmt.Fprintln(out, "System calls from the strace window; context switches from the window without strace, summed over the proxy's threads "+
		"(/proc/PID/task/*/status). reads = read, readv, recvfrom, recvmsg; writes = write, writev, sendto, sendmsg; "+
		"epoll waits = epoll_wait, epoll_pwait (and poll, select); failed = calls strace counted as errors "+
		"(a read of an empty non-blocking socket fails with EAGAIN). strace slows the proxy several times over, so it finds "+
		"more work at each wake-up: its epoll, futex and nanosleep counts are lower than without it, and the context switches "+
		"are the measure of wake-ups.")
	fmt.Fprintln(out)

	for _, w := range workloads {
		if w.skip != "" {
			fmt.Fprintf(out, "Not run: %s with %s (%s).\n\n", w.skip, w.name, w.why)
		}
	}

	fmt.Fprintln(out, "### The window without strace")
	fmt.Fprintln(out)
	fmt.Fprintln(out, "| target | clients | tx | TPS | read()/tx | write()/tx | ctx switches/tx voluntary | involuntary | threads | proxy CPU µs/tx | other work |")
	fmt.Fprintln(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	each(workloads, targets, res, func(w workload, t *target, r result) {
		if r.err != nil {
			return
		}
		c := r.ctx
		fmt.Fprintf(out, "| %s | %s | %d | %.0f | %.2f | %.2f | %.2f | %.2f | %d | %.1f | %s |\n",
			t.name, clientsLabel(w), c.tx, float64(c.tx)/c.length.Seconds(), c.perTx(c.syscr), c.perTx(c.syscw),
			c.perTx(c.voluntary), c.perTx(c.involuntary), c.threads,
			float64(c.cpuTicks)*1e6/benchkit.ClkTck/float64(c.tx), benchkit.Pct(r.other))
	})
	fmt.Fprintln(out)
	fmt.Fprintln(out, "read() and write() are the proxy's syscr and syscw (/proc/PID/io): read/readv and write/writev calls, "+
		"failed ones included, but not recvfrom/sendto (HAProxy's and pgbouncer's socket calls, and Switchyard's MSG_PEEK). "+
		"Proxy CPU is utime+stime (/proc/PID/stat, 10 ms ticks). Other work: the share of the machine's CPU used by processes "+
		"outside the bench during the whole run.")
	fmt.Fprintln(out)
	for _, t := range targets {
		for _, w := range workloads {
			if r, ok := res[w.name][t.name]; ok && r.err == nil && r.ctx.lost > 0 {
				fmt.Fprintf(out, "Note: %d thread(s) of %s exited during the %s window without strace; their context switches are missing.\n\n",
					r.ctx.lost, t.name, w.name)
			}
		}
	}

	for _, w := range workloads {
		printCalls(out, w, targets, res[w.name])
	}
}

// each calls f for every result, by workload then target.
func each(workloads []workload, targets []*target, res map[string]map[string]result, f func(workload, *target, result)) {
	for _, w := range workloads {
		for _, t := range targets {
			if r, ok := res[w.name][t.name]; ok {
				f(w, t, r)
			}
		}
	}
}

// printCalls prints every system call per transaction of w, one column
// per target, failed calls in parentheses; calls under 0.01/tx in every
// target are left out (they count in the total).
func printCalls(out io.Writer, w workload, targets []*target, res map[string]result) {
	var cols []*target
	for _, t := range targets {
		if r, ok := res[t.name]; ok && r.err == nil {
			cols = append(cols, t)
		}
	}
	if len(cols) == 0 {
		return
	}
	peak := map[string]float64{}
	for _, t := range cols {
		tr := res[t.name].trace
		for name, n := range tr.calls {
			peak[name] = max(peak[name], tr.perTx(n))
		}
	}
	var names []string
	for name, p := range peak {
		if p >= 0.01 {
			names = append(names, name)
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(peak[b], peak[a]), cmp.Compare(a, b))
	})
	fmt.Fprintf(out, "### System calls per transaction, %s (strace window; failed calls in parentheses)\n\n", w.name)
	head := []string{"syscall"}
	for _, t := range cols {
		head = append(head, t.name)
	}
	fmt.Fprintf(out, "| %s |\n|---%s|\n", strings.Join(head, " | "), strings.Repeat("|---:", len(cols)))
	cell := func(tr traceWindow, calls, errs int64) string {
		if errs > 0 {
			return fmt.Sprintf("%.2f (%.2f)", tr.perTx(calls), tr.perTx(errs))
		}
		return fmt.Sprintf("%.2f", tr.perTx(calls))
	}
	for _, name := range names {
		row := []string{name}
		for _, t := range cols {
			tr := res[t.name].trace
			row = append(row, cell(tr, tr.calls[name], tr.errors[name]))
		}
		fmt.Fprintf(out, "| %s |\n", strings.Join(row, " | "))
	}
	row := []string{"**total**"}
	for _, t := range cols {
		tr := res[t.name].trace
		row = append(row, cell(tr, tr.total, tr.totalErrors))
	}
	fmt.Fprintf(out, "| %s |\n", strings.Join(row, " | "))
	row = []string{"tx in window"}
	for _, t := range cols {
		tr := res[t.name].trace
		row = append(row, fmt.Sprintf("%d in %s", tr.tx, tr.length.Round(10*time.Millisecond)))
	}
	fmt.Fprintf(out, "| %s |\n\n", strings.Join(row, " | "))
}

// short is err on one line, at most 200 characters.
func short(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
