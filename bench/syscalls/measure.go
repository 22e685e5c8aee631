package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/switchyard-proxy/switchyard/bench/internal/benchkit"
	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

type result struct {
	ctx   ctxWindow
	trace traceWindow
	other float64 // share of the machine's CPU used outside the bench during the run (0–1; -1 unknown)
	err   error
}

// ctxWindow is the window without strace.
type ctxWindow struct {
	tx          int           // transactions pgbench completed in the window
	length      time.Duration // of the window
	voluntary   int64         // context switches of the proxy's threads
	involuntary int64
	threads     int   // threads at the end of the window
	lost        int   // threads that exited during the window (their switches are not counted)
	cpuTicks    int64 // utime+stime of the proxy, in clock ticks
	// read and write system calls of the proxy (/proc/PID/io syscr and
	// syscw: read, readv, write, writev..., failed ones too; not
	// recvfrom, sendto or the other socket calls).
	syscr, syscw int64
}

func (c ctxWindow) perTx(n int64) float64 { return float64(n) / float64(c.tx) }

// traceWindow is the window with strace attached.
type traceWindow struct {
	tx                 int
	length             time.Duration
	calls, errors      map[string]int64 // by system call
	total, totalErrors int64
}

func (t traceWindow) perTx(n int64) float64 { return float64(n) / float64(t.tx) }

// measure runs pgbench -S with w's arguments for d against t and measures
// the proxy over two windows of the run: context switches and CPU without
// strace, then system calls with it. The transactions of each window are
// counted from pgbench's per-transaction log.
func measure(ctx context.Context, t *target, w workload, d time.Duration) result {
	dir, err := os.MkdirTemp("", "switchyard-bench-syscalls-")
	if err != nil {
		return result{err: err}
	}
	defer os.RemoveAll(dir)
	warm, win, gap := windows(d)

	before := benchkit.TakeCPUSnapshot()
	runStart := time.Now()
	// pgbench should end after d; the margin covers its logins and ends
	// the run when the proxy stops answering.
	runCtx, cancel := context.WithTimeout(ctx, d+time.Minute)
	defer cancel()
	pgDone := make(chan struct{})
	var pgErr error
	go func() {
		defer close(pgDone)
		_, pgErr = benchkit.SelectOnly(runCtx, t.port, 0, d, append(w.args, "-l", "--log-prefix="+filepath.Join(dir, "tx"))...)
	}()
	// On an early return: end pgbench and wait for it, so the next run
	// starts alone.
	defer func() { cancel(); <-pgDone }()

	var r result
	if err := sleep(ctx, pgDone, warm); err != nil {
		return result{err: err}
	}
	c0, err := ctxSwitches(t.pid)
	if err != nil {
		return result{err: fmt.Errorf("proxy gone: %w", err)}
	}
	cpu0, err := benchkit.CPUTicks(t.pid)
	if err != nil {
		return result{err: fmt.Errorf("proxy gone: %w", err)}
	}
	io0, err := ioCalls(t.pid)
	if err != nil {
		return result{err: fmt.Errorf("proxy gone: %w", err)}
	}
	t0 := time.Now()
	if err := sleep(ctx, pgDone, win); err != nil {
		return result{err: err}
	}
	t1 := time.Now()
	c1, err := ctxSwitches(t.pid)
	if err != nil {
		return result{err: fmt.Errorf("proxy gone: %w", err)}
	}
	cpu1, err := benchkit.CPUTicks(t.pid)
	if err != nil {
		return result{err: fmt.Errorf("proxy gone: %w", err)}
	}
	io1, err := ioCalls(t.pid)
	if err != nil {
		return result{err: fmt.Errorf("proxy gone: %w", err)}
	}
	r.ctx = c0.until(c1)
	r.ctx.cpuTicks = cpu1 - cpu0
	r.ctx.syscr, r.ctx.syscw = io1[0]-io0[0], io1[1]-io0[1]
	r.ctx.length = t1.Sub(t0)
	if err := sleep(ctx, pgDone, gap); err != nil {
		return result{err: err}
	}

	s0, s1, tw, err := traceSyscalls(ctx, pgDone, t.pid, win, filepath.Join(dir, "strace.out"))
	if err != nil {
		return result{err: err}
	}
	r.trace = tw
	r.trace.length = s1.Sub(s0)

	<-pgDone
	if pgErr != nil {
		return result{err: pgErr}
	}
	runEnd := time.Now()
	counts, err := countTx(filepath.Join(dir, "tx"), runStart, runEnd, [][2]time.Time{{t0, t1}, {s0, s1}})
	if err != nil {
		return result{err: err}
	}
	r.ctx.tx, r.trace.tx = counts[0], counts[1]
	if r.ctx.tx == 0 || r.trace.tx == 0 {
		return result{err: fmt.Errorf("no transaction in a window (%d without strace, %d with)", r.ctx.tx, r.trace.tx)}
	}
	// Once pgbench's backends have exited and been reaped (see othercpu.go).
	time.Sleep(time.Second)
	r.other = benchkit.OtherCPU(before, benchkit.TakeCPUSnapshot())
	return r
}

// windows divides a run of d: warm-up (logins, pools filling), the
// window without strace, a gap, the strace window (as long), and a margin
// as long as the warm-up before pgbench ends.
func windows(d time.Duration) (warm, win, gap time.Duration) {
	warm, gap = d/8, d/16
	return warm, (d - 2*warm - gap) / 2, gap
}

// sleep waits for d; an error if ctx is done or pgbench ended first.
func sleep(ctx context.Context, pgDone <-chan struct{}, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-pgDone:
		return errors.New("pgbench ended before the measurement windows did")
	}
}

// ctxCounts is the context switches of each thread of a process.
type ctxCounts map[string][2]int64 // thread ID → voluntary, involuntary

// ctxSwitches reads the context switches of every thread of pid.
func ctxSwitches(pid int) (ctxCounts, error) {
	taskDir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(taskDir)
	if err != nil {
		return nil, err
	}
	c := ctxCounts{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(taskDir, e.Name(), "status"))
		if err != nil {
			continue // the thread exited meanwhile
		}
		var v [2]int64
		for _, l := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(l, "voluntary_ctxt_switches:"); ok {
				v[0], _ = strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
			} else if rest, ok := strings.CutPrefix(l, "nonvoluntary_ctxt_switches:"); ok {
				v[1], _ = strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
			}
		}
		c[e.Name()] = v
	}
	if len(c) == 0 {
		return nil, errors.New("no threads")
	}
	return c, nil
}

// ioCalls is syscr and syscw of pid's /proc/PID/io: the read and write
// system calls of all its threads, those that exited included.
func ioCalls(pid int) ([2]int64, error) {
	var v [2]int64
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return v, err
	}
	seen := 0
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "syscr:"); ok {
			v[0], err = strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
			seen++
		} else if rest, ok := strings.CutPrefix(l, "syscw:"); ok {
			v[1], err = strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
			seen++
		}
		if err != nil {
			return v, err
		}
	}
	if seen != 2 {
		return v, errors.New("no syscr/syscw in /proc/PID/io")
	}
	return v, nil
}

// until is the switches from c to later: each thread's difference, all of
// a thread started since, none of one that exited (counted in lost).
func (c ctxCounts) until(later ctxCounts) ctxWindow {
	var w ctxWindow
	for tid, v := range later {
		p := c[tid] // zero for a thread started since
		w.voluntary += v[0] - p[0]
		w.involuntary += v[1] - p[1]
	}
	for tid := range c {
		if _, ok := later[tid]; !ok {
			w.lost++
		}
	}
	w.threads = len(later)
	return w
}

// traceSyscalls attaches strace -c -f to pid (all its threads) for d,
// once strace says it has attached, then detaches it by signalling its
// PID and reads its summary from out. It returns the window: from the
// attachment to the signal.
func traceSyscalls(ctx context.Context, pgDone <-chan struct{}, pid int, d time.Duration, out string) (s0, s1 time.Time, tw traceWindow, err error) {
	argv := testbed.Pin(benchkit.ClientCPU, "strace", "-f", "-c", "-U", "calls,errors,name", "-o", out, "-p", strconv.Itoa(pid))
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	// strace detaches and writes its summary on SIGTERM (SIGINT may be
	// ignored, in a background job).
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	stderr := &attachWatch{attached: make(chan struct{})}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return s0, s1, tw, fmt.Errorf("strace: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// stop ends strace by its PID and waits for it: SIGTERM, then SIGKILL
	// if it is still there after 10 s.
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	defer stop()
	select {
	case <-stderr.attached:
	case err := <-exited:
		stopped = true
		return s0, s1, tw, fmt.Errorf("strace exited before attaching (%v): %s", err, stderr.text())
	case <-time.After(10 * time.Second):
		return s0, s1, tw, fmt.Errorf("strace did not attach within 10 s: %s", stderr.text())
	case <-ctx.Done():
		return s0, s1, tw, ctx.Err()
	}
	s0 = time.Now()
	if err := sleep(ctx, pgDone, d); err != nil {
		return s0, s1, tw, err
	}
	s1 = time.Now()
	stop()
	b, err := os.ReadFile(out)
	if err != nil {
		return s0, s1, tw, fmt.Errorf("strace: %w: %s", err, stderr.text())
	}
	tw, err = parseStrace(string(b))
	if err != nil {
		return s0, s1, tw, fmt.Errorf("strace: %w: %s", err, stderr.text())
	}
	return s0, s1, tw, nil
}

// attachWatch collects strace's stderr and closes attached at its first
// "attached" line ("Process N attached with M threads" once every thread
// is).
type attachWatch struct {
	mu       sync.Mutex
	buf      bytes.Buffer
	attached chan struct{}
	seen     bool
}

func (a *attachWatch) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.buf.Write(p)
	if !a.seen && strings.Contains(a.buf.String(), " attached") {
		a.seen = true
		close(a.attached)
	}
	return len(p), nil
}

func (a *attachWatch) text() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.TrimSpace(a.buf.String())
}

// parseStrace reads strace -c -U calls,errors,name output: a header,
// dashes, "calls [errors] name" rows, dashes, and the total row.
func parseStrace(s string) (traceWindow, error) {
	tw := traceWindow{calls: map[string]int64{}, errors: map[string]int64{}}
	total := false
	for _, l := range strings.Split(s, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || len(f) > 3 {
			continue
		}
		calls, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue // the header, the dashes
		}
		var errs int64
		if len(f) == 3 {
			if errs, err = strconv.ParseInt(f[1], 10, 64); err != nil {
				continue
			}
		}
		name := f[len(f)-1]
		if name == "total" {
			tw.total, tw.totalErrors, total = calls, errs, true
			continue
		}
		tw.calls[name] += calls
		tw.errors[name] += errs
	}
	if !total {
		return tw, fmt.Errorf("no summary in its output:\n%s", s)
	}
	return tw, nil
}

// countTx counts the transactions of pgbench's per-transaction logs
// (prefix.PID and prefix.PID.N, one per thread) that completed in each
// window. Lines are "client tx latency script epoch-seconds microseconds";
// their times must lie within the run, or they are not wall-clock times
// and the counts would be wrong.
func countTx(prefix string, runStart, runEnd time.Time, windows [][2]time.Time) ([]int, error) {
	files, err := filepath.Glob(prefix + ".*")
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, errors.New("pgbench wrote no transaction log")
	}
	type span struct{ from, to int64 }
	spans := make([]span, len(windows))
	for i, w := range windows {
		spans[i] = span{w[0].UnixMicro(), w[1].UnixMicro()}
	}
	counts := make([]int, len(windows))
	lo, hi := runStart.Add(-time.Second).UnixMicro(), runEnd.Add(time.Second).UnixMicro()
	var last int64
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fl := strings.Fields(sc.Text())
			if len(fl) < 6 {
				continue
			}
			sec, err1 := strconv.ParseInt(fl[4], 10, 64)
			usec, err2 := strconv.ParseInt(fl[5], 10, 64)
			if err1 != nil || err2 != nil {
				continue
			}
			at := sec*1e6 + usec
			if at < lo || at > hi {
				f.Close()
				return nil, fmt.Errorf("pgbench log time %d µs outside the run [%d, %d]: not wall-clock time?", at, lo, hi)
			}
			last = max(last, at)
			for i, s := range spans {
				if at >= s.from && at < s.to {
					counts[i]++
				}
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	if end := spans[len(spans)-1].to; last < end {
		return nil, fmt.Errorf("pgbench's last transaction ended before the last window did")
	}
	return counts, nil
}
