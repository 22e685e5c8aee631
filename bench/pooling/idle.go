package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard-proxy/switchyard/bench/internal/benchkit"
	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// idleLogins is how many idle clients log in at a time: well under the
// idle Switchyard's max_startups (idleStartups) and the accept queues,
// so none is refused; the login storm itself is measured by connectStorm.
const (
	idleLogins   = 100
	idleStartups = 2 * idleLogins
	idleSpare    = 10  // max_clients above the idle clients: the probe, whose slot is freed as its session ends
	fdReserve    = 64  // proxy.fdReserve: what Switchyard keeps for everything but clients
	fdPerClient  = 1   // what proxy.FitDescriptors counts per client when every listener pools
	idleRound    = 100 // a capped client count is rounded down to this
)

// idleVariant is one way of filling a fresh proxy with idle clients.
type idleVariant struct {
	target string // nTxn or nPgBouncer
	stmts  int    // named statements each client prepares and executes once
	unique bool   // statement texts unique per client (else the same stmts texts for all)
}

// describe says what the clients of v prepare, for n clients.
func (v idleVariant) describe(n int) string {
	switch {
	case v.stmts == 0:
		return "none"
	case v.unique:
		return fmt.Sprintf("%d, unique per client (%d texts in all)", v.stmts, n*v.stmts)
	default:
		return fmt.Sprintf("%d, the same %d texts for every client", v.stmts, v.stmts)
	}
}

type idleResult struct {
	variant          idleVariant
	clients          int
	rssBase, rssIdle int64 // KiB
	setup            time.Duration
	err              error
}

// raiseFileLimit raises this process's open-file limit, soft and hard,
// so that it can hold the idle clients and every server it starts can
// accept them (they inherit it: Go hands children its raised limit once
// the program has set one itself). Raising the hard limit needs
// CAP_SYS_RESOURCE; without it the soft limit goes up to the hard one.
func raiseFileLimit(cfg config) {
	want := uint64(3*cfg.idleClients + 2*max(cfg.connectClients, 1000) + 8192)
	want = max(want, 65536)
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			want = min(want, n)
		}
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		fmt.Fprintln(os.Stderr, "bench: reading the open-file limit:", err)
		return
	}
	if rl.Cur >= want {
		// Set it all the same: Go hands children the limit it found at
		// start unless the program has set one itself.
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			fmt.Fprintln(os.Stderr, "bench: setting the open-file limit:", err)
		}
		return
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: max(want, rl.Max), Max: max(want, rl.Max)}); err != nil {
		// No CAP_SYS_RESOURCE (a container, or not root): up to the hard
		// limit, set explicitly so children keep it too.
		rl.Cur = rl.Max
		if err2 := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err2 != nil {
			fmt.Fprintln(os.Stderr, "bench: setting the open-file limit:", err2)
		}
		fmt.Fprintf(os.Stderr, "bench: cannot raise the open-file hard limit to %d (%v); the bench and its servers have %d\n", want, err, rl.Cur)
		return
	}
	fmt.Fprintf(os.Stderr, "bench: open-file limit raised to %d for the bench and the servers it starts\n", max(want, rl.Max))
}

// fitIdleClients lowers cfg.idleClients to what the open-file limit lets
// Switchyard admit (fdPerClient descriptors per client, the pool's
// servers and its reserve off the top), rounded down to
// idleRound, and says so in cfg.idleNote. The servers inherit this
// process's limit.
func fitIdleClients(cfg *config) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return
	}
	if rl.Cur >= 1<<31 {
		return
	}
	fit := (int(rl.Cur)-idleStartups-fdReserve-cfg.poolSize)/fdPerClient - idleSpare
	if cfg.idleClients <= fit {
		return
	}
	n := max(fit/idleRound*idleRound, idleRound)
	cfg.idleNote = fmt.Sprintf("%d idle clients instead of the %d asked for: at an open-file limit of %d, "+
		"Switchyard admits at most %d clients with max_startups = %d and a pool of %d, at %d descriptor per client "+
		"(limits.max_clients)",
		n, cfg.idleClients, rl.Cur, fit+idleSpare, idleStartups, cfg.poolSize, fdPerClient)
	fmt.Fprintln(os.Stderr, "bench:", cfg.idleNote)
	cfg.idleClients = n
}

// idleMemory fills a fresh Switchyard (transaction pooling) and a fresh
// pgbouncer with cfg.idleClients idle clients, one variant at a time,
// and reads each proxy's RSS before and with the clients idle.
func idleMemory(ctx context.Context, cfg config, pg *testbed.PGNode) []idleResult {
	variants := []idleVariant{{target: nTxn}}
	if cfg.idleStatements > 0 {
		variants = append(variants, idleVariant{target: nTxn, stmts: cfg.idleStatements})
		if cfg.idleUnique {
			variants = append(variants, idleVariant{target: nTxn, stmts: cfg.idleStatements, unique: true})
		}
	}
	variants = append(variants, idleVariant{target: nPgBouncer})
	var res []idleResult
	for _, v := range variants {
		if ctx.Err() != nil {
			break
		}
		r := idleRun(ctx, cfg, pg, v)
		if r.err != nil {
			fmt.Fprintf(os.Stderr, "bench: %-26s %d idle clients, statements %s: %v\n", v.target, cfg.idleClients, v.describe(cfg.idleClients), r.err)
		} else {
			fmt.Fprintf(os.Stderr, "bench: %-26s %d idle clients, statements %s: RSS %d → %d KiB, %.0f bytes per client (set up in %v)\n",
				v.target, cfg.idleClients, v.describe(cfg.idleClients), r.rssBase, r.rssIdle, r.perClient(), r.setup.Round(time.Millisecond))
		}
		res = append(res, r)
	}
	return res
}

func (r idleResult) perClient() float64 {
	return float64(r.rssIdle-r.rssBase) * 1024 / float64(r.clients)
}

// idleRun starts a proxy of its own for v, logs n clients in, has each
// run SELECT 1 (and prepare and execute its statements), waits for the
// proxy to settle, reads its RSS, and stops it.
func idleRun(ctx context.Context, cfg config, pg *testbed.PGNode, v idleVariant) idleResult {
	n := cfg.idleClients
	r := idleResult{variant: v, clients: n}
	var p *testbed.Peer
	var err error
	switch v.target {
	case nTxn:
		// Limits that fit the open-file limit (fitIdleClients); were they
		// more, Switchyard would lower them and say so in its log.
		p, err = benchkit.StartSwitchyardMode(ctx, cfg.binary, pg.Addr(), "transaction", cfg.poolSize,
			fmt.Sprintf("[limits]\nmax_clients = %d\nmax_startups = %d\n", n+idleSpare, idleStartups))
		if err == nil {
			if l := logLine(p, "open-file limit"); l != "" {
				fmt.Fprintln(os.Stderr, "bench: idle switchyard:", l)
				if strings.Contains(l, "too low") {
					err = errors.New("open-file limit too low: " + l)
				}
			}
		}
	case nPgBouncer:
		p, err = testbed.StartPgBouncerWith(ctx, testbed.PgBouncerOptions{
			Backend:       pg.Addr(),
			User:          testbed.UserSuper,
			AuthType:      "trust",
			PoolMode:      "transaction",
			PoolSize:      cfg.poolSize,
			MaxClientConn: n + 100,
			ListenBacklog: 4096,
			CPUs:          benchkit.ServerCPU,
		})
		if err == nil {
			if l := logLine(p, "file descriptor limit"); l != "" {
				fmt.Fprintln(os.Stderr, "bench: idle pgbouncer:", l)
			}
		}
	default:
		err = fmt.Errorf("no idle run for %s", v.target)
	}
	if p != nil {
		defer p.Close()
	}
	if err != nil {
		r.err = err
		return r
	}
	t := &target{name: v.target, port: p.Port, pid: p.PID(), peer: p}
	fail := func(err error) idleResult {
		r.err = err
		showLog(t)
		return r
	}
	// One client first, so the pool and what a first login allocates are
	// in the baseline, not in the per-client figure.
	if err := probe(ctx, t); err != nil {
		return fail(err)
	}
	time.Sleep(time.Second)
	if r.rssBase, err = rssKiB(t.pid); err != nil {
		return fail(fmt.Errorf("proxy gone: %w", err))
	}
	cc, err := pgconn.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s sslmode=disable",
		t.port, testbed.UserSuper, testbed.DefaultDB))
	if err != nil {
		return fail(err)
	}
	conns := make([]*pgconn.PgConn, n)
	defer closeAll(conns)
	t0 := time.Now()
	if err := fillIdle(ctx, cc, conns, v); err != nil {
		return fail(err)
	}
	r.setup = time.Since(t0)
	// Let the proxy settle (buffers freed after the last request), then read.
	time.Sleep(2 * time.Second)
	if r.rssIdle, err = rssKiB(t.pid); err != nil {
		return fail(fmt.Errorf("proxy gone: %w", err))
	}
	// The clients must still be there, and their statements still usable.
	qctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for _, i := range []int{0, n / 2, n - 1} {
		if err := clientWork(qctx, conns[i], i, v, false); err != nil {
			return fail(fmt.Errorf("idle client %d of %d afterwards: %w", i, n, err))
		}
	}
	return r
}

// fillIdle logs len(conns) clients in, idleLogins at a time, each running
// clientWork. After the first failure no more clients start; those under
// way finish or time out, and the error counts the failures of each step.
func fillIdle(ctx context.Context, cc *pgconn.Config, conns []*pgconn.PgConn, v idleVariant) error {
	var (
		mu     sync.Mutex
		failed = map[string]*stepFailure{}
		wg     sync.WaitGroup
	)
	stop := make(chan struct{})
	var stopOnce sync.Once
	next := make(chan int)
	for range idleLogins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				// Generous for one login and a few round trips; a client
				// left waiting for a server (every one pinned) fails here.
				cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
				c, err := pgconn.ConnectConfig(cctx, cc)
				if err == nil {
					conns[i] = c
					err = clientWork(cctx, c, i, v, true)
				} else {
					err = &stepError{step: "login", err: err}
				}
				ccancel()
				if err != nil && ctx.Err() == nil {
					var se *stepError
					if !errors.As(err, &se) {
						se = &stepError{step: "?", err: err}
					}
					mu.Lock()
					f := failed[se.step]
					if f == nil {
						f = &stepFailure{first: fmt.Errorf("client %d of %d: %w", i+1, len(conns), se)}
						failed[se.step] = f
					}
					f.clients++
					mu.Unlock()
					stopOnce.Do(func() { close(stop) })
				}
			}
		}()
	}
feed:
	for i := range conns {
		select {
		case next <- i:
		case <-stop:
			break feed
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if len(failed) == 0 {
		return nil
	}
	// The statement steps first: a login that timed out waiting for a
	// server is more often the consequence than the cause.
	var parts []string
	for _, step := range []string{"Prepare", "ExecPrepared", "SELECT 1", "login", "?"} {
		if f := failed[step]; f != nil {
			parts = append(parts, fmt.Sprintf("%s failed for %d clients, first: %v", step, f.clients, f.first))
		}
	}
	return errors.New(strings.Join(parts, "; "))
}

type stepFailure struct {
	clients int
	first   error
}

// stepError is a failure of one step of an idle client's work.
type stepError struct {
	step string // login, SELECT 1, Prepare, ExecPrepared
	name string // the statement's
	err  error
}

func (e *stepError) Error() string {
	msg := e.err.Error()
	var pe *pgconn.PgError
	if errors.As(e.err, &pe) { // without pgconn's "failed to connect to ...: server error:"
		msg = fmt.Sprintf("%s %s: %s", pe.Severity, pe.Code, pe.Message)
	}
	if e.name != "" {
		return fmt.Sprintf("%s %s: %s", e.step, e.name, msg)
	}
	return fmt.Sprintf("%s: %s", e.step, msg)
}

func (e *stepError) Unwrap() error { return e.err }

// clientWork is what idle client i does: SELECT 1 and, in the prepared
// variants, its statements executed once (prepared first when prepare).
func clientWork(ctx context.Context, c *pgconn.PgConn, i int, v idleVariant, prepare bool) error {
	fail := func(step, name string, err error) error {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (no answer within 20 s: no server free in the pool?)", err)
		}
		return &stepError{step: step, name: name, err: err}
	}
	if _, err := c.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		return fail("SELECT 1", "", err)
	}
	for j := range v.stmts {
		name := fmt.Sprintf("s%d", j)
		k := j
		if v.unique {
			k = i*v.stmts + j
		}
		if prepare {
			if _, err := c.Prepare(ctx, name, fmt.Sprintf("SELECT $1::int + %d", k), nil); err != nil {
				return fail("Prepare", name, err)
			}
		}
		rr := c.ExecPrepared(ctx, name, [][]byte{[]byte(strconv.Itoa(i))}, nil, nil).Read()
		if rr.Err != nil {
			return fail("ExecPrepared", name, rr.Err)
		}
		if len(rr.Rows) != 1 || string(rr.Rows[0][0]) != strconv.Itoa(i+k) {
			return fail("ExecPrepared", name, fmt.Errorf("got %q, want %d", rr.Rows, i+k))
		}
	}
	return nil
}

// logLine is the last line of p's log that contains s, or "".
func logLine(p *testbed.Peer, s string) string {
	b, err := os.ReadFile(p.LogPath())
	if err != nil {
		return ""
	}
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], s) {
			return strings.TrimSpace(lines[i])
		}
	}
	return ""
}

func printIdle(out io.Writer, cfg config, res []idleResult) {
	n := cfg.idleClients
	fmt.Fprintf(out, "### Memory per idle client: %d clients logged in, then idle\n\n", n)
	if cfg.idleNote != "" {
		fmt.Fprintf(out, "%s.\n\n", cfg.idleNote)
	}
	fmt.Fprintf(out, "| proxy | named statements per client | RSS before, MiB | RSS with %d idle, MiB | bytes per idle client | vs pgbouncer | set up in, s |\n", n)
	fmt.Fprintln(out, "|---|---|---:|---:|---:|---:|---:|")
	var bouncer float64
	for _, r := range res {
		if r.variant.target == nPgBouncer && r.err == nil {
			bouncer = r.perClient()
		}
	}
	for _, r := range res {
		if r.err != nil {
			fmt.Fprintf(out, "| %s | %s | n/a: %s | – | – | – | – |\n", r.variant.target, r.variant.describe(n), shortN(r.err, 500))
			continue
		}
		fmt.Fprintf(out, "| %s | %s | %.1f | %.1f | %.0f | %s | %.1f |\n", r.variant.target, r.variant.describe(n),
			float64(r.rssBase)/1024, float64(r.rssIdle)/1024, r.perClient(), ratio(r.perClient(), bouncer), r.setup.Seconds())
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "Each proxy is a fresh process (transaction pooling, default_pool_size = %d, trust auth) on CPU %s. "+
		"Clients log in %d at a time (pgconn, no TLS), run SELECT 1 and, with named statements, prepare each "+
		"(Parse/Describe/Sync, `SELECT $1::int + k`) and execute it once (Bind/Execute/Sync), then sit idle. "+
		"RSS before: VmRSS 1 s after one client logged in and left; with clients idle: 2 s after the last finished. "+
		"Bytes per idle client = (RSS with clients idle − RSS before) / %d. pgbouncer 1.18 does not keep protocol-level "+
		"statements in transaction mode, so it has only the row without them.\n\n",
		cfg.poolSize, benchkit.ServerCPU, idleLogins, n)
}
