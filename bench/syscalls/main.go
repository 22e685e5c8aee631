// Command syscalls counts, per transaction, the system calls and context
// switches of each proxy in front of one PostgreSQL: HAProxy (tcp mode),
// pgbouncer (transaction mode), Switchyard's relay and Switchyard's
// transaction pooling, under pgbench -S (select-only) at each -clients
// count, with -M extended at -extended-clients, and with -M prepared at
// -prepared-clients (pgbouncer 1.18 is left out there: in transaction mode
// it loses clients to "prepared statement does not exist").
//
// Each pgbench run (-duration long, one per target and workload) has two
// windows, each measured on the proxy process only:
//
//   - first, with nothing attached, the voluntary and involuntary context
//     switches of all its threads (/proc/PID/task/*/status), its read and
//     write system calls (syscr and syscw of /proc/PID/io: read/write
//     only, not recvfrom/sendto) and its CPU time (/proc/PID/stat);
//   - then strace -c -f attached for the same length, which counts its
//     system calls by name, and the calls of each that failed (for a read
//     on a non-blocking socket, EAGAIN). strace slows the proxy a lot;
//     the counts per transaction are what this window is for.
//
// Transactions are counted over exactly each window from pgbench's
// per-transaction log (-l: every transaction with its completion time),
// so the ratios do not depend on how much strace slows the run.
//
// pgbench and this program run on CPU 0, and so does strace; PostgreSQL
// and every proxy run on CPU 1. Both poolers get the same pool size
// (-pool-size) and trust auth with an auth file, as in bench/pooling.
//
//	go run ./bench/syscalls -switchyard bin/switchyard [-duration 8s] [-clients 10,100]
//	    [-extended-clients 100] [-prepared-clients 100] [-pool-size 20]
//	    [-targets haproxy,pgbouncer,relay,transaction] [-variant name=binary]...
//
// Each -variant is one more target started with the transaction pooling
// configuration: another build, a wrapper that sets the environment, or a
// program that reads the same file (bench/floor).
//
// It prints Markdown: one table of the main figures per target and
// workload, then for each workload every system call per transaction.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/switchyard-proxy/switchyard/bench/internal/benchkit"
	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// Target names.
const (
	nHAProxy   = "haproxy"
	nPgBouncer = "pgbouncer (transaction)"
	nRelay     = "switchyard (relay)"
	nTxn       = "switchyard (transaction)"
)

type target struct {
	name string
	port int
	pid  int
	peer *testbed.Peer
	err  error // it did not start
}

type workload struct {
	name    string
	clients int
	args    []string // pgbench arguments besides -n -S -T
	skip    string   // a target not run with this workload
	why     string   // why it is skipped
}

type config struct {
	binary          string
	duration        time.Duration
	clients         []int
	preparedClients int
	extendedClients int
	variants        benchkit.Variants
	poolSize        int
	only            map[string]bool // short target names to run; all when empty
}

// shortNames are the -targets names of the targets.
var shortNames = map[string]string{"haproxy": nHAProxy, "pgbouncer": nPgBouncer, "relay": nRelay, "transaction": nTxn}

func main() {
	var cfg config
	var clients string
	flag.StringVar(&cfg.binary, "switchyard", "bin/switchyard", "switchyard binary")
	flag.DurationVar(&cfg.duration, "duration", 8*time.Second, "length of each pgbench run (both windows and a margin around them)")
	flag.StringVar(&clients, "clients", "10,100", "pgbench client counts (select-only, simple protocol)")
	flag.IntVar(&cfg.extendedClients, "extended-clients", 100, "pgbench clients for the -M extended rows (Parse/Bind/Describe/Execute/Sync each time); 0 skips them")
	flag.IntVar(&cfg.preparedClients, "prepared-clients", 100, "pgbench clients for the -M prepared rows; 0 skips them")
	flag.IntVar(&cfg.poolSize, "pool-size", 20, "default_pool_size of both poolers (pgbouncer and Switchyard)")
	flag.Var(&cfg.variants, "variant", "name=binary: one more target, run with the transaction pooling config (repeatable)")
	targets := flag.String("targets", "haproxy,pgbouncer,relay,transaction", "targets to measure")
	flag.Parse()
	cfg.only = map[string]bool{}
	for _, n := range strings.Split(*targets, ",") {
		n = strings.TrimSpace(n)
		if _, ok := shortNames[n]; !ok {
			fmt.Fprintf(os.Stderr, "bench: unknown target %q in -targets (haproxy, pgbouncer, relay, transaction)\n", n)
			os.Exit(2)
		}
		cfg.only[shortNames[n]] = true
	}
	var err error
	if cfg.clients, err = benchkit.ParseClients(clients); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if cfg.duration < 4*time.Second {
		fmt.Fprintln(os.Stderr, "bench: -duration must be at least 4s")
		os.Exit(2)
	}
	if _, err := exec.LookPath("strace"); err != nil {
		fmt.Fprintln(os.Stderr, "bench: no strace (Debian package strace; make deps installs it)")
		os.Exit(1)
	}
	benchkit.PinSelf() // reading /proc and driving strace on the client CPU
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config, out io.Writer) error {
	pg, err := benchkit.StartPG(ctx, nil)
	if err != nil {
		return err
	}
	defer pg.Close()
	primary := pg.Nodes[0]

	var targets []*target
	add := func(name string, p *testbed.Peer, err error) {
		t := &target{name: name, err: err}
		if err == nil {
			t.port, t.pid, t.peer = p.Port, p.PID(), p
		} else {
			fmt.Fprintf(os.Stderr, "bench: %s did not start: %v\n", name, err)
		}
		targets = append(targets, t)
	}
	start := func(name string, f func() (*testbed.Peer, error)) {
		if !cfg.only[name] {
			return
		}
		p, err := f()
		if err == nil {
			fmt.Fprintf(os.Stderr, "bench: %s has PID %d\n", name, p.PID())
		}
		add(name, p, err)
	}
	defer func() {
		for _, t := range targets {
			if t.peer != nil {
				t.peer.Close()
			}
		}
	}()
	start(nHAProxy, func() (*testbed.Peer, error) { return testbed.StartHAProxy(ctx, primary.Addr(), benchkit.ServerCPU) })
	start(nPgBouncer, func() (*testbed.Peer, error) {
		return testbed.StartPgBouncerWith(ctx, testbed.PgBouncerOptions{
			Backend:  primary.Addr(),
			User:     testbed.UserSuper,
			AuthType: "trust",
			PoolMode: "transaction",
			PoolSize: cfg.poolSize,
			CPUs:     benchkit.ServerCPU,
		})
	})
	start(nRelay, func() (*testbed.Peer, error) {
		return benchkit.StartSwitchyardMode(ctx, cfg.binary, primary.Addr(), "none", cfg.poolSize, "")
	})
	start(nTxn, func() (*testbed.Peer, error) {
		return benchkit.StartSwitchyardMode(ctx, cfg.binary, primary.Addr(), "transaction", cfg.poolSize, "")
	})
	for _, v := range cfg.variants {
		p, err := benchkit.StartSwitchyardMode(ctx, v.Binary, primary.Addr(), "transaction", cfg.poolSize, "")
		add(v.Name+" (transaction config)", p, err)
	}

	var workloads []workload
	for _, c := range cfg.clients {
		workloads = append(workloads, workload{name: fmt.Sprintf("select-only, %d clients", c), clients: c,
			args: []string{"-c", strconv.Itoa(c), "-j", "2"}})
	}
	if c := cfg.extendedClients; c > 0 {
		workloads = append(workloads, workload{name: fmt.Sprintf("select-only, %d clients, -M extended", c), clients: c,
			args: []string{"-c", strconv.Itoa(c), "-j", "2", "-M", "extended"}})
	}
	if cfg.preparedClients > 0 {
		c := cfg.preparedClients
		workloads = append(workloads, workload{name: fmt.Sprintf("select-only, %d clients, -M prepared", c), clients: c,
			args: []string{"-c", strconv.Itoa(c), "-j", "2", "-M", "prepared"},
			skip: nPgBouncer, why: "pgbouncer 1.18 in transaction mode loses clients to \"prepared statement does not exist\""})
	}

	res := map[string]map[string]result{}
	for _, w := range workloads {
		res[w.name] = map[string]result{}
		for _, t := range targets {
			if t.name == w.skip {
				continue
			}
			var r result
			if t.err != nil {
				r.err = t.err
			} else {
				r = measure(ctx, t, w, cfg.duration)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			res[w.name][t.name] = r
			if r.err != nil {
				fmt.Fprintf(os.Stderr, "bench: %-26s %-40s failed: %v\n", t.name, w.name, r.err)
				if t.peer != nil {
					fmt.Fprintf(os.Stderr, "bench: end of %s's log:\n%s\n", t.name, t.peer.LogTail())
				}
				continue
			}
			fmt.Fprintf(os.Stderr, "bench: %-26s %-40s %6.1f syscalls/tx, %5.2f + %5.2f ctx switches/tx (other work: %s CPU)\n",
				t.name, w.name, r.trace.perTx(r.trace.total), r.ctx.perTx(r.ctx.voluntary), r.ctx.perTx(r.ctx.involuntary), benchkit.Pct(r.other))
		}
	}
	printReport(out, cfg, workloads, targets, res)
	return nil
}
