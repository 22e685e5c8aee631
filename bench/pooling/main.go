// Command pooling benchmarks Switchyard's transaction pooling side by side
// with a direct connection, HAProxy (tcp mode), pgbouncer in transaction
// mode and Switchyard's relay, in one run against one PostgreSQL. Both
// poolers get the same pool size (-pool-size) and the same auth (trust,
// with an auth file naming the bench user).
//
// It prints Markdown: for pgbench select-only at each client count and
// with a new connection per transaction (-C), TPS, latency, proxy CPU per
// transaction and ratios to direct, HAProxy and pgbouncer; then, at
// -mode-clients clients, the same with pgbench -M extended and -M prepared
// through direct, pgbouncer and Switchyard's transaction pooling (pgbouncer
// 1.18 loses clients to "prepared statement does not exist" there: the
// table says how many, and why); then the time for -connect-clients
// clients to log in at once through each target and the proxy's RSS while
// they sit idle; last, the memory per idle client with -idle-clients
// clients on a fresh Switchyard (also with -idle-statements named
// statements per client, the same texts for all and, with -idle-unique,
// unique per client) and a fresh pgbouncer.
//
// The idle clients need a descriptor each here and at the proxy: the bench
// raises its open-file limit (the servers inherit it) as far as it may,
// and lowers -idle-clients to what Switchyard's limits.max_clients can
// then be (it counts 2 descriptors per client), saying so.
//
// For each pgbench run it also measures the CPU that processes outside
// the bench used meanwhile (the machine may be shared), and prints the
// highest; the -M tables show it per row.
//
// pgbench and this program (which opens the concurrent logins) run on CPU
// 0; PostgreSQL and every proxy run on CPU 1.
//
//	go run ./bench/pooling -switchyard bin/switchyard [-duration 10s] [-pool-size 20] [-reps 1]
//	    [-clients 10,100,1000] [-mode-clients 100] [-connect-clients 1000]
//	    [-idle-clients 10000] [-idle-statements 5] [-idle-unique=true]
//
// 0 (or "" for -clients) skips a part.
//
// A target that cannot start or fails a measurement is reported as
// "n/a: <error>" in its cells; the run goes on.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/switchyard-proxy/switchyard/bench/internal/benchkit"
	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

type workload struct {
	name string
	args []string
	// mode is pgbench's -M (query protocol) for the protocol rows; ""
	// for the select-only rows, which use the simple protocol.
	mode string
	// only names the targets the workload runs against; nil for all.
	only []string
}

// runs reports whether w is measured against t.
func (w workload) runs(t *target) bool { return w.only == nil || slices.Contains(w.only, t.name) }

type config struct {
	binary         string
	duration       time.Duration
	poolSize       int
	clients        []int
	connectClients int
	reps           int
	maxConnections int
	modeClients    int // clients for the -M prepared / -M extended rows; 0 skips them
	idleClients    int // idle clients for the memory-per-client table; 0 skips it
	idleStatements int // named statements each idle client prepares in the prepared variants
	idleUnique     bool
	idleNote       string // why idleClients is less than asked, if it is
}

func main() {
	var cfg config
	var clients string
	flag.StringVar(&cfg.binary, "switchyard", "bin/switchyard", "switchyard binary")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "length of each pgbench run")
	flag.IntVar(&cfg.poolSize, "pool-size", 20, "default_pool_size of both poolers (pgbouncer and Switchyard)")
	flag.StringVar(&clients, "clients", "10,100,1000", "pgbench client counts (select-only); -C runs with 10")
	flag.IntVar(&cfg.connectClients, "connect-clients", 1000, "clients that log in at once, then sit idle for the RSS reading; 0 skips it")
	flag.IntVar(&cfg.modeClients, "mode-clients", 100, "pgbench clients for the -M prepared and -M extended rows (direct, pgbouncer, Switchyard transaction); 0 skips them")
	flag.IntVar(&cfg.idleClients, "idle-clients", 10000, "idle logged-in clients for the memory-per-client table (fresh Switchyard and pgbouncer); 0 skips it")
	flag.IntVar(&cfg.idleStatements, "idle-statements", 5, "named prepared statements per idle client in the prepared variants; 0 skips those variants")
	flag.BoolVar(&cfg.idleUnique, "idle-unique", true, "also measure idle clients whose statements are unique per client")
	flag.IntVar(&cfg.reps, "reps", 1, "rounds over every target and workload; medians are reported")
	flag.IntVar(&cfg.maxConnections, "max-connections", 1200, "PostgreSQL max_connections (direct and relays open one backend per client)")
	flag.Parse()
	var err error
	if cfg.clients, err = benchkit.ParseClients(clients); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	benchkit.PinSelf() // the goroutines opening the logins run on the client CPU
	// Before any server starts: they inherit the limit, and the idle
	// clients need a descriptor each here and at the proxy.
	raiseFileLimit(cfg)
	if cfg.idleClients > 0 {
		fitIdleClients(&cfg)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config, out io.Writer) error {
	pg, err := benchkit.StartPG(ctx, map[string]string{"max_connections": strconv.Itoa(cfg.maxConnections)})
	if err != nil {
		return err
	}
	defer pg.Close()
	primary := pg.Nodes[0]

	targets := []*target{{name: nDirect, port: primary.Port}}
	add := func(name string, p *testbed.Peer, err error) {
		t := &target{name: name, err: err}
		if err == nil {
			t.port, t.pid, t.peer = p.Port, p.PID(), p
		} else {
			fmt.Fprintf(os.Stderr, "bench: %s did not start: %v\n", name, err)
		}
		targets = append(targets, t)
	}
	hap, err := testbed.StartHAProxy(ctx, primary.Addr(), benchkit.ServerCPU)
	if err == nil {
		defer hap.Close()
	}
	add(nHAProxy, hap, err)
	bouncer, err := testbed.StartPgBouncerWith(ctx, testbed.PgBouncerOptions{
		Backend:       primary.Addr(),
		User:          testbed.UserSuper,
		AuthType:      "trust",
		PoolMode:      "transaction",
		PoolSize:      cfg.poolSize,
		MaxClientConn: max(cfg.connectClients, cfg.modeClients) + 1000,
		ListenBacklog: 4096, // as Go's listen backlog (somaxconn); pgbouncer's default 128 drops SYNs in a login storm
		CPUs:          benchkit.ServerCPU,
	})
	if err == nil {
		defer bouncer.Close()
	}
	add(nPgBouncer, bouncer, err)
	relay, err := benchkit.StartSwitchyardMode(ctx, cfg.binary, primary.Addr(), "none", cfg.poolSize, "")
	if err == nil {
		defer relay.Close()
	}
	add(nRelay, relay, err)
	txn, err := benchkit.StartSwitchyardMode(ctx, cfg.binary, primary.Addr(), "transaction", cfg.poolSize, "")
	if err == nil {
		defer txn.Close()
	}
	add(nTxn, txn, err)

	var workloads []workload
	for _, c := range cfg.clients {
		workloads = append(workloads, workload{name: fmt.Sprintf("select-only, %d clients", c),
			args: []string{"-c", strconv.Itoa(c), "-j", "2"}})
	}
	workloads = append(workloads, workload{name: "select-only, 10 clients, new connection per tx (-C)",
		args: []string{"-c", "10", "-j", "2", "-C"}})
	var modes []workload
	if cfg.modeClients > 0 {
		for _, m := range []string{"extended", "prepared"} {
			modes = append(modes, workload{
				name: fmt.Sprintf("select-only, %d clients, -M %s", cfg.modeClients, m),
				args: []string{"-c", strconv.Itoa(cfg.modeClients), "-j", "2", "-M", m},
				mode: m,
				only: []string{nDirect, nPgBouncer, nTxn},
			})
		}
	}
	workloads = append(workloads, modes...)

	// The most CPU that work outside the bench took during a measurement.
	otherMax := 0.0
	quiet := func() { waitQuiet(ctx, primary, 2*cfg.poolSize+10) }
	conns := map[string][]connResult{}
	res := map[string]map[string][]result{}
	for _, w := range workloads {
		res[w.name] = map[string][]result{}
	}
	for rep := 0; rep < cfg.reps; rep++ {
		// Rotate the order each round so no target always runs first.
		k := rep % len(targets)
		order := append(slices.Clone(targets[k:]), targets[:k]...)
		// Logins and idle RSS first, before pgbench has grown any buffers.
		for _, t := range order {
			if t.err != nil || cfg.connectClients <= 0 {
				continue
			}
			quiet()
			var c connResult
			if c.err = probe(ctx, t); c.err == nil {
				c = connectStorm(ctx, primary, t, cfg.connectClients)
			}
			conns[t.name] = append(conns[t.name], c)
			if c.err != nil {
				fmt.Fprintf(os.Stderr, "bench: %-26s %d logins: %v\n", t.name, cfg.connectClients, c.err)
				showLog(t)
			} else {
				fmt.Fprintf(os.Stderr, "bench: %-26s %d logins in %v, RSS idle %d KiB\n", t.name, cfg.connectClients, c.total.Round(time.Millisecond), c.rssIdle)
			}
		}
		for _, w := range workloads {
			for _, t := range order {
				if t.err != nil || !w.runs(t) {
					continue
				}
				quiet()
				var r result
				if r.err = probe(ctx, t); r.err == nil {
					before := benchkit.TakeCPUSnapshot()
					r = measure(ctx, t, w, cfg.duration)
					// Once pgbench's backends have exited and been reaped:
					// a process's CPU time moves to its parent's as it is
					// reaped, and one caught in between would be missed.
					quiet()
					r.other = benchkit.OtherCPU(before, benchkit.TakeCPUSnapshot())
					otherMax = max(otherMax, r.other)
				}
				res[w.name][t.name] = append(res[w.name][t.name], r)
				if r.err != nil {
					fmt.Fprintf(os.Stderr, "bench: %-26s %-55s failed: %v\n", t.name, w.name, r.err)
					showLog(t)
				} else if r.Aborted > 0 || r.Failed > 0 || len(r.Other) > 0 {
					fmt.Fprintf(os.Stderr, "bench: %-26s %-55s %9.0f tps (other work: %s CPU), %d failed transactions, %d clients aborted; %s\n",
						t.name, w.name, r.TPS, benchkit.Pct(r.other), r.Failed, r.Aborted, errorsText(r))
				} else {
					fmt.Fprintf(os.Stderr, "bench: %-26s %-55s %9.0f tps (other work: %s CPU)\n", t.name, w.name, r.TPS, benchkit.Pct(r.other))
				}
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	// Idle memory last, on fresh proxies of its own, so neither the
	// runs above nor each other's clients are in the RSS it reads.
	var idle []idleResult
	if cfg.idleClients > 0 {
		quiet()
		idle = idleMemory(ctx, cfg, primary)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}

	fmt.Fprintf(os.Stderr, "bench: other work took at most %s of the machine's CPU during a measurement\n", benchkit.Pct(otherMax))
	fmt.Fprintf(out, "Other work on the machine (processes outside the bench: not PostgreSQL, the proxies or pgbench) took at most %s "+
		"of its CPU during a pgbench run; more than a few per cent makes that run's numbers unreliable.\n\n", benchkit.Pct(otherMax))
	fmt.Fprintf(out, "pgbench -n -S -T %s, pgbench and the login client on CPU %s, PostgreSQL and proxies on CPU %s; "+
		"default_pool_size = %d for pgbouncer (transaction) and Switchyard (transaction); trust auth with an auth file for both; "+
		"PostgreSQL max_connections = %d; %d round(s), medians\n\n",
		cfg.duration, benchkit.ClientCPU, benchkit.ServerCPU, cfg.poolSize, cfg.maxConnections, cfg.reps)
	summary := map[string]map[string]result{}
	for _, w := range workloads {
		summary[w.name] = map[string]result{}
		for _, t := range targets {
			if w.runs(t) {
				summary[w.name][t.name] = median(res[w.name][t.name], t.err)
			}
		}
	}
	plain := workloads[:len(workloads)-len(modes)]
	printSummary(out, plain, targets, summary)
	for _, w := range plain {
		printTable(out, w, targets, summary[w.name])
	}
	if len(modes) > 0 {
		// The simple-protocol row at the same client count, when it ran.
		var simple *workload
		for i, w := range plain {
			if slices.Equal(w.args, []string{"-c", strconv.Itoa(cfg.modeClients), "-j", "2"}) {
				simple = &plain[i]
			}
		}
		printModes(out, cfg.modeClients, simple, modes, targets, summary)
	}
	if cfg.connectClients > 0 {
		printConns(out, cfg.connectClients, targets, conns)
	}
	if cfg.idleClients > 0 {
		printIdle(out, cfg, idle)
	}
	return nil
}
