// Command pooling benchmarks Switchyard's transaction pooling side by side
// with a direct connection, HAProxy (tcp mode), pgbouncer in transaction
// mode and Switchyard's relay, in one run against one PostgreSQL. Both
// poolers get the same pool size (-pool-size) and the same auth (trust,
// with an auth file naming the bench user).
//
// It prints Markdown: for pgbench select-only at each client count and
// with a new connection per transaction (-C), TPS, latency, proxy CPU per
// transaction and ratios to direct, HAProxy and pgbouncer; then the time
// for -connect-clients clients to log in at once through each target and
// the proxy's RSS while they sit idle.
//
// pgbench and this program (which opens the concurrent logins) run on CPU
// 0; PostgreSQL and every proxy run on CPU 1.
//
//	go run ./bench/pooling -switchyard bin/switchyard [-duration 10s] [-pool-size 20] [-reps 1]
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
	"strings"
	"syscall"
	"time"

	"github.com/switchyard-proxy/switchyard/bench/internal/benchkit"
	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

type workload struct {
	name string
	args []string
}

type config struct {
	binary         string
	duration       time.Duration
	poolSize       int
	clients        []int
	connectClients int
	reps           int
	maxConnections int
}

func main() {
	var cfg config
	var clients string
	flag.StringVar(&cfg.binary, "switchyard", "bin/switchyard", "switchyard binary")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "length of each pgbench run")
	flag.IntVar(&cfg.poolSize, "pool-size", 20, "default_pool_size of both poolers (pgbouncer and Switchyard)")
	flag.StringVar(&clients, "clients", "10,100,1000", "pgbench client counts (select-only); -C runs with 10")
	flag.IntVar(&cfg.connectClients, "connect-clients", 1000, "clients that log in at once, then sit idle for the RSS reading")
	flag.IntVar(&cfg.reps, "reps", 1, "rounds over every target and workload; medians are reported")
	flag.IntVar(&cfg.maxConnections, "max-connections", 1200, "PostgreSQL max_connections (direct and relays open one backend per client)")
	flag.Parse()
	for _, c := range strings.Split(clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "bench: bad -clients %q\n", clients)
			os.Exit(2)
		}
		cfg.clients = append(cfg.clients, n)
	}
	benchkit.PinSelf() // the goroutines opening the logins run on the client CPU
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
		MaxClientConn: cfg.connectClients + 1000,
		ListenBacklog: 4096, // as Go's listen backlog (somaxconn); pgbouncer's default 128 drops SYNs in a login storm
		CPUs:          benchkit.ServerCPU,
	})
	if err == nil {
		defer bouncer.Close()
	}
	add(nPgBouncer, bouncer, err)
	relay, err := startSwitchyard(ctx, cfg.binary, primary.Addr(), "none", cfg.poolSize)
	if err == nil {
		defer relay.Close()
	}
	add(nRelay, relay, err)
	txn, err := startSwitchyard(ctx, cfg.binary, primary.Addr(), "transaction", cfg.poolSize)
	if err == nil {
		defer txn.Close()
	}
	add(nTxn, txn, err)

	var workloads []workload
	for _, c := range cfg.clients {
		workloads = append(workloads, workload{fmt.Sprintf("select-only, %d clients", c),
			[]string{"-c", strconv.Itoa(c), "-j", "2"}})
	}
	workloads = append(workloads, workload{"select-only, 10 clients, new connection per tx (-C)",
		[]string{"-c", "10", "-j", "2", "-C"}})

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
			if t.err != nil {
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
				if t.err != nil {
					continue
				}
				quiet()
				var r result
				if r.err = probe(ctx, t); r.err == nil {
					r = measure(ctx, t, w, cfg.duration)
				}
				res[w.name][t.name] = append(res[w.name][t.name], r)
				if r.err != nil {
					fmt.Fprintf(os.Stderr, "bench: %-26s %-55s failed: %v\n", t.name, w.name, r.err)
					showLog(t)
				} else {
					fmt.Fprintf(os.Stderr, "bench: %-26s %-55s %9.0f tps\n", t.name, w.name, r.TPS)
				}
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}

	fmt.Fprintf(out, "pgbench -n -S -T %s, pgbench and the login client on CPU %s, PostgreSQL and proxies on CPU %s; "+
		"default_pool_size = %d for pgbouncer (transaction) and Switchyard (transaction); trust auth with an auth file for both; "+
		"PostgreSQL max_connections = %d; %d round(s), medians\n\n",
		cfg.duration, benchkit.ClientCPU, benchkit.ServerCPU, cfg.poolSize, cfg.maxConnections, cfg.reps)
	summary := map[string]map[string]result{}
	for _, w := range workloads {
		summary[w.name] = map[string]result{}
		for _, t := range targets {
			summary[w.name][t.name] = median(res[w.name][t.name], t.err)
		}
	}
	printSummary(out, workloads, targets, summary)
	for _, w := range workloads {
		printTable(out, w, targets, summary[w.name])
	}
	printConns(out, cfg.connectClients, targets, conns)
	return nil
}
