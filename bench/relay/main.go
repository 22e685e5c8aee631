// Command relay benchmarks Switchyard's relay mode side by side with a
// direct connection, HAProxy (tcp mode) and pgbouncer (session mode), in
// one run against one PostgreSQL, and prints TPS, latency, proxy CPU per
// transaction and ratios to HAProxy as a Markdown table.
//
// pgbench runs on CPU 0; PostgreSQL and every proxy run on CPU 1, so the
// client never competes with what it measures.
//
//	go run ./bench/relay -switchyard bin/switchyard [-duration 15s] [-baseline old/switchyard]
//	    [-variant name=binary]... [-workloads 10,100,C] [-reps 1]
//
// With -baseline, a second Switchyard binary (an earlier build) runs as
// one more target in the same run, so a change can be compared with what
// it replaces under the same conditions. Each -variant adds one more
// ("switchyard <name>"): a build, or a wrapper script that sets the
// environment (GOGC, GOMAXPROCS) and execs a build. With -reps above 1
// every target runs that many times per workload, interleaved, and the
// table shows medians.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/switchyard-proxy/switchyard/bench/internal/benchkit"
	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

type target struct {
	name string
	port int
	pid  int // 0 for direct: no proxy CPU to measure
}

type workload struct {
	name string
	args []string
}

func main() {
	binary := flag.String("switchyard", "bin/switchyard", "switchyard binary")
	baseline := flag.String("baseline", "", "an earlier switchyard binary to measure in the same run")
	duration := flag.Duration("duration", 15*time.Second, "length of each pgbench run")
	var variants benchkit.Variants
	flag.Var(&variants, "variant", "name=binary: one more Switchyard target (repeatable)")
	only := flag.String("workloads", "10,100,C", "workloads to run: 10 and 100 clients, C = new connection per tx")
	reps := flag.Int("reps", 1, "runs per target and workload, interleaved; the table shows medians")
	flag.Parse()
	if *baseline != "" {
		variants = append(benchkit.Variants{{Name: "baseline", Binary: *baseline}}, variants...)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *binary, variants, strings.Split(*only, ","), max(*reps, 1), *duration, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, binary string, variants benchkit.Variants, only []string, reps int, duration time.Duration, out io.Writer) error {
	pg, err := benchkit.StartPG(ctx, nil)
	if err != nil {
		return err
	}
	defer pg.Close()
	primary := pg.Nodes[0]

	hap, err := testbed.StartHAProxy(ctx, primary.Addr(), benchkit.ServerCPU)
	if err != nil {
		return err
	}
	defer hap.Close()
	bouncer, err := testbed.StartPgBouncer(ctx, primary.Addr(), testbed.UserSuper, benchkit.ServerCPU)
	if err != nil {
		return err
	}
	defer bouncer.Close()
	sy, err := startSwitchyard(ctx, binary, primary.Addr())
	if err != nil {
		return err
	}
	defer sy.Close()

	targets := []target{
		{"direct", primary.Port, 0},
		{"haproxy", hap.Port, hap.PID()},
		{"pgbouncer (session)", bouncer.Port, bouncer.PID()},
		{"switchyard (relay)", sy.Port, sy.PID()},
	}
	for _, v := range variants {
		p, err := startSwitchyard(ctx, v.Binary, primary.Addr())
		if err != nil {
			return fmt.Errorf("variant %s: %w", v.Name, err)
		}
		defer p.Close()
		targets = append(targets, target{"switchyard " + v.Name, p.Port, p.PID()})
	}
	all := map[string]workload{
		"10":  {"select-only, 10 clients", []string{"-c", "10", "-j", "2"}},
		"100": {"select-only, 100 clients", []string{"-c", "100", "-j", "2"}},
		"C":   {"select-only, 10 clients, new connection per tx (-C)", []string{"-c", "10", "-j", "2", "-C"}},
	}
	var workloads []workload
	for _, k := range only {
		w, ok := all[k]
		if !ok {
			return fmt.Errorf("unknown workload %q in -workloads (10, 100, C)", k)
		}
		workloads = append(workloads, w)
	}
	fmt.Fprintf(out, "pgbench -n -S -T %s, pgbench on CPU %s, PostgreSQL and proxies on CPU %s",
		duration, benchkit.ClientCPU, benchkit.ServerCPU)
	if reps > 1 {
		fmt.Fprintf(out, "; medians of %d interleaved runs", reps)
	}
	fmt.Fprint(out, "\n\n")
	for _, w := range workloads {
		runs := map[string][]benchkit.Result{}
		for range reps {
			for _, t := range targets {
				r, err := measure(ctx, t, w, duration)
				if err != nil {
					return fmt.Errorf("%s, %s: %w", t.name, w.name, err)
				}
				runs[t.name] = append(runs[t.name], r)
				fmt.Fprintf(os.Stderr, "bench: %-22s %-55s %9.0f tps %6.1f µs/tx\n", t.name, w.name, r.TPS, r.CPUUsPerTx)
			}
		}
		res := map[string]benchkit.Result{}
		for name, rs := range runs {
			res[name] = benchkit.Median(rs)
		}
		printTable(out, w, targets, res)
	}
	return nil
}

func printTable(out io.Writer, w workload, targets []target, res map[string]benchkit.Result) {
	hap := res["haproxy"]
	fmt.Fprintf(out, "### %s\n\n", w.name)
	fmt.Fprintln(out, "| target | TPS | latency ms | proxy CPU µs/tx | TPS vs HAProxy | CPU vs HAProxy |")
	fmt.Fprintln(out, "|---|---:|---:|---:|---:|---:|")
	for _, t := range targets {
		r := res[t.name]
		cpu, cpuRatio := "–", "–"
		if t.pid != 0 {
			cpu = fmt.Sprintf("%.1f", r.CPUUsPerTx)
			if hap.CPUUsPerTx > 0 {
				cpuRatio = fmt.Sprintf("%.2f×", r.CPUUsPerTx/hap.CPUUsPerTx)
			}
		}
		fmt.Fprintf(out, "| %s | %.0f | %.3f | %s | %.2f× | %s |\n", t.name, r.TPS, r.LatencyMs, cpu, r.TPS/hap.TPS, cpuRatio)
	}
	fmt.Fprintln(out)
}

func measure(ctx context.Context, t target, w workload, d time.Duration) (benchkit.Result, error) {
	return benchkit.SelectOnly(ctx, t.port, t.pid, d, w.args...)
}

// startSwitchyard runs binary in relay mode in front of addr, on the
// server CPU.
func startSwitchyard(ctx context.Context, binary, addr string) (*testbed.Peer, error) {
	return benchkit.StartSwitchyard(ctx, binary, addr, "rw", "", "", nil)
}
