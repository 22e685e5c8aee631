package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard-proxy/switchyard/bench/internal/benchkit"
	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

type result struct {
	benchkit.Result
	other float64 // share of the machine's CPU used outside the bench during the run (0–1; -1 unknown)
	err   error
}

type connResult struct {
	total, median      time.Duration
	rssBefore, rssIdle int64 // KiB; 0 when there is no proxy
	backends           int   // PostgreSQL client backends added while the clients are idle
	err                error
}

func measure(ctx context.Context, t *target, w workload, d time.Duration) result {
	// pgbench should end after d; the margin covers 1000 logins and
	// ends the run when the proxy stops answering.
	limit := d + time.Minute
	if w.mode != "" {
		// A few logins only; a run still going 30 s after -T has clients
		// that wait for a server which is not coming.
		limit = d + 30*time.Second
	}
	runCtx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	run := benchkit.SelectOnly
	if w.mode != "" {
		// -M prepared fails through a pooler that does not keep named
		// statements across servers; that is a result, not an error.
		run = benchkit.SelectOnlyTolerant
	}
	r, err := run(runCtx, t.port, t.pid, d, w.args...)
	if err != nil {
		if ctx.Err() == nil && runCtx.Err() != nil {
			return result{err: fmt.Errorf("pgbench still running after %v, stopped (proxy not answering, or clients waiting for a pool server)", limit)}
		}
		return result{err: err}
	}
	return result{Result: r}
}

// connectStorm opens n connections to t at once and measures from the
// start until the last has finished its login (ReadyForQuery); then, with
// all of them idle, it reads the proxy's RSS, and closes them.
func connectStorm(ctx context.Context, pg *testbed.PGNode, t *target, n int) connResult {
	var c connResult
	var err error
	if c.rssBefore, err = rssKiB(t.pid); err != nil {
		c.err = fmt.Errorf("proxy gone: %w", err)
		return c
	}
	backendsBefore, err := clientBackends(ctx, pg)
	if err != nil {
		c.err = fmt.Errorf("counting PostgreSQL backends: %w", err)
		return c
	}
	cc, err := pgconn.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s sslmode=disable",
		t.port, testbed.UserSuper, testbed.DefaultDB))
	if err != nil {
		c.err = err
		return c
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	conns := make([]*pgconn.PgConn, n)
	took := make([]time.Duration, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var ready, done sync.WaitGroup
	ready.Add(n)
	done.Add(n)
	var t0 time.Time
	for i := 0; i < n; i++ {
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			conns[i], errs[i] = pgconn.ConnectConfig(ctx, cc)
			took[i] = time.Since(t0)
		}()
	}
	ready.Wait()
	t0 = time.Now()
	close(start)
	done.Wait()
	c.total = time.Since(t0)
	defer closeAll(conns)
	var failed int
	var firstErr error
	for _, e := range errs {
		if e != nil {
			if firstErr == nil {
				firstErr = e
			}
			failed++
		}
	}
	if failed > 0 {
		c.err = fmt.Errorf("%d of %d logins failed: %w", failed, n, firstErr)
		return c
	}
	slices.Sort(took)
	c.median = took[n/2]
	// Let the proxy settle (pools, buffers freed after login), then read.
	time.Sleep(2 * time.Second)
	if c.rssIdle, err = rssKiB(t.pid); err != nil {
		c.err = fmt.Errorf("proxy gone: %w", err)
		return c
	}
	backendsIdle, err := clientBackends(ctx, pg)
	if err != nil {
		c.err = fmt.Errorf("counting PostgreSQL backends: %w", err)
		return c
	}
	c.backends = backendsIdle - backendsBefore
	// The clients must still be there: one query on a few of them.
	qctx, qcancel := context.WithTimeout(ctx, 10*time.Second)
	defer qcancel()
	for _, i := range []int{0, n / 2, n - 1} {
		if _, err := conns[i].Exec(qctx, "SELECT 1").ReadAll(); err != nil {
			c.err = fmt.Errorf("SELECT 1 on idle client %d of %d: %w", i, n, err)
			break
		}
	}
	return c
}

func closeAll(conns []*pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range conns {
		if c != nil {
			wg.Add(1)
			go func() { defer wg.Done(); c.Close(ctx) }()
		}
	}
	wg.Wait()
}

// waitQuiet waits (up to 30 s) until PostgreSQL has at most max client
// backends, so backends of the last run, still exiting, do not count
// against max_connections or compete for the CPU.
func waitQuiet(ctx context.Context, pg *testbed.PGNode, max int) {
	deadline := time.Now().Add(30 * time.Second)
	var n int
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var err error
		if n, err = clientBackends(ctx, pg); err == nil && n <= max {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Fprintf(os.Stderr, "bench: still %d client backends after 30 s; going on\n", n)
}

func clientBackends(ctx context.Context, pg *testbed.PGNode) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, pg.DSN(testbed.UserSuper))
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	r := conn.ExecParams(ctx, "SELECT count(*) - 1 FROM pg_stat_activity WHERE backend_type = 'client backend'",
		nil, nil, nil, nil).Read()
	if r.Err != nil {
		return 0, r.Err
	}
	if len(r.Rows) != 1 {
		return 0, errors.New("no row")
	}
	return strconv.Atoi(string(r.Rows[0][0]))
}

// rssKiB is VmRSS of pid in KiB (0 for pid 0).
func rssKiB(pid int) (int64, error) {
	if pid == 0 {
		return 0, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS (process exited)")
}
