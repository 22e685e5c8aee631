// Command relay benchmarks Switchyard's relay mode side by side with a
// direct connection, HAProxy (tcp mode) and pgbouncer (session mode), in
// one run against one PostgreSQL, and prints TPS, latency, proxy CPU per
// transaction and ratios to HAProxy as a Markdown table.
//
// pgbench runs on CPU 0; PostgreSQL and every proxy run on CPU 1, so the
// client never competes with what it measures.
//
//	go run ./bench/relay -switchyard bin/switchyard [-duration 15s] [-baseline old/switchyard]
//
// With -baseline, a second Switchyard binary (an earlier build) runs as
// one more target in the same run, so a change can be compared with what
// it replaces under the same conditions.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

const (
	clientCPU = "0"
	serverCPU = "1"
	clkTck    = 100 // USER_HZ on Linux
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

type result struct {
	tps, latencyMs, cpuUsPerTx float64
	txs                        int
}

func main() {
	binary := flag.String("switchyard", "bin/switchyard", "switchyard binary")
	baseline := flag.String("baseline", "", "an earlier switchyard binary to measure in the same run")
	duration := flag.Duration("duration", 15*time.Second, "length of each pgbench run")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *binary, *baseline, *duration, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, binary, baseline string, duration time.Duration, out io.Writer) error {
	fmt.Fprintln(os.Stderr, "bench: starting PostgreSQL, HAProxy, pgbouncer and Switchyard on CPU", serverCPU)
	pg, err := testbed.StartPG(ctx, testbed.PGOptions{CPUs: serverCPU})
	if err != nil {
		return err
	}
	defer pg.Close()
	primary := pg.Nodes[0]
	if err := pgbench(ctx, primary.Port, "-i", "-q", "-s", "10"); err != nil {
		return fmt.Errorf("pgbench -i: %w", err)
	}

	hap, err := testbed.StartHAProxy(ctx, primary.Addr(), serverCPU)
	if err != nil {
		return err
	}
	defer hap.Close()
	bouncer, err := testbed.StartPgBouncer(ctx, primary.Addr(), testbed.UserSuper, serverCPU)
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
	if baseline != "" {
		base, err := startSwitchyard(ctx, baseline, primary.Addr())
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		defer base.Close()
		targets = append(targets, target{"switchyard baseline", base.Port, base.PID()})
	}
	workloads := []workload{
		{"select-only, 10 clients", []string{"-c", "10", "-j", "2"}},
		{"select-only, 100 clients", []string{"-c", "100", "-j", "2"}},
		{"select-only, 10 clients, new connection per tx (-C)", []string{"-c", "10", "-j", "2", "-C"}},
	}
	fmt.Fprintf(out, "pgbench -n -S -T %s, pgbench on CPU %s, PostgreSQL and proxies on CPU %s\n\n",
		duration, clientCPU, serverCPU)
	for _, w := range workloads {
		res := map[string]result{}
		for _, t := range targets {
			r, err := measure(ctx, t, w, duration)
			if err != nil {
				return fmt.Errorf("%s, %s: %w", t.name, w.name, err)
			}
			res[t.name] = r
			fmt.Fprintf(os.Stderr, "bench: %-22s %-55s %9.0f tps\n", t.name, w.name, r.tps)
		}
		printTable(out, w, targets, res)
	}
	return nil
}

func printTable(out io.Writer, w workload, targets []target, res map[string]result) {
	hap := res["haproxy"]
	fmt.Fprintf(out, "### %s\n\n", w.name)
	fmt.Fprintln(out, "| target | TPS | latency ms | proxy CPU µs/tx | TPS vs HAProxy | CPU vs HAProxy |")
	fmt.Fprintln(out, "|---|---:|---:|---:|---:|---:|")
	for _, t := range targets {
		r := res[t.name]
		cpu, cpuRatio := "–", "–"
		if t.pid != 0 {
			cpu = fmt.Sprintf("%.1f", r.cpuUsPerTx)
			if hap.cpuUsPerTx > 0 {
				cpuRatio = fmt.Sprintf("%.2f×", r.cpuUsPerTx/hap.cpuUsPerTx)
			}
		}
		fmt.Fprintf(out, "| %s | %.0f | %.3f | %s | %.2f× | %s |\n", t.name, r.tps, r.latencyMs, cpu, r.tps/hap.tps, cpuRatio)
	}
	fmt.Fprintln(out)
}

var (
	tpsRE = regexp.MustCompile(`tps = ([0-9.]+) \((?:without|excluding|including)`)
	latRE = regexp.MustCompile(`latency average = ([0-9.]+) ms`)
	txRE  = regexp.MustCompile(`number of transactions actually processed: (\d+)`)
)

func measure(ctx context.Context, t target, w workload, d time.Duration) (result, error) {
	before, err := cpuTicks(t.pid)
	if err != nil {
		return result{}, err
	}
	args := append([]string{"-n", "-S", "-T", strconv.Itoa(int(d.Seconds()))}, w.args...)
	outText, err := pgbenchOut(ctx, t.port, args...)
	if err != nil {
		return result{}, err
	}
	after, err := cpuTicks(t.pid)
	if err != nil {
		return result{}, err
	}
	var r result
	if m := tpsRE.FindStringSubmatch(outText); m != nil {
		r.tps, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := latRE.FindStringSubmatch(outText); m != nil {
		r.latencyMs, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := txRE.FindStringSubmatch(outText); m != nil {
		r.txs, _ = strconv.Atoi(m[1])
	}
	if r.txs == 0 || r.tps == 0 {
		return r, fmt.Errorf("could not read pgbench output:\n%s", outText)
	}
	if t.pid != 0 {
		r.cpuUsPerTx = float64(after-before) * (1e6 / clkTck) / float64(r.txs)
	}
	return r, nil
}

// cpuTicks is utime+stime of pid (all threads) in clock ticks.
func cpuTicks(pid int) (int64, error) {
	if pid == 0 {
		return 0, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return utime + stime, nil
}

func pgbench(ctx context.Context, port int, args ...string) error {
	_, err := pgbenchOut(ctx, port, args...)
	return err
}

func pgbenchOut(ctx context.Context, port int, args ...string) (string, error) {
	argv := testbed.Pin(clientCPU, append([]string{"pgbench", "-h", "127.0.0.1", "-p", strconv.Itoa(port),
		"-U", testbed.UserSuper}, append(args, testbed.DefaultDB)...)...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	b, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, b)
	}
	return string(b), nil
}

// startSwitchyard runs binary in relay mode in front of addr, on the
// server CPU.
func startSwitchyard(ctx context.Context, binary, addr string) (*testbed.Peer, error) {
	port, err := testbed.FreePort()
	if err != nil {
		return nil, err
	}
	return testbed.StartSwitchyard(ctx, binary, fmt.Sprintf(`
[log]
level = "info"
[cluster]
name = "bench"
[cluster.static]
members = [{ name = "pg1", address = %q, role = "primary" }]
[[listener]]
name = "rw"
address = "127.0.0.1:%d"
role = "primary"
[tls]
client_mode = "disable"
server_mode = "disable"   # like HAProxy's plain TCP; no SSLRequest round trip
`, addr, port), port, serverCPU)
}
