// Package benchkit holds what the bench commands share: the CPU split
// between the client and the servers, pgbench runs and their parsing,
// per-process CPU and a Switchyard in front of one PostgreSQL.
package benchkit

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

const (
	// ClientCPU runs pgbench (and the bench itself, after PinSelf).
	ClientCPU = "0"
	// ServerCPU runs PostgreSQL and every proxy.
	ServerCPU = "1"
	clkTck    = 100 // USER_HZ on Linux
	pinnedEnv = "SWITCHYARD_BENCH_PINNED"
)

// PinSelf re-executes this program under taskset on the client CPU, so
// the goroutines it runs do not share a core with what they measure. The
// servers are pinned explicitly when started.
func PinSelf() {
	if os.Getenv(pinnedEnv) != "" {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: no taskset; the bench itself is not pinned")
		return
	}
	argv := append([]string{"taskset", "-c", ClientCPU, exe}, os.Args[1:]...)
	err = syscall.Exec(taskset, argv, append(os.Environ(), pinnedEnv+"=1"))
	fmt.Fprintln(os.Stderr, "bench: re-exec under taskset:", err)
}

// Result is one pgbench run.
type Result struct {
	TPS, LatencyMs float64
	CPUUsPerTx     float64 // CPU of the measured process per transaction; 0 without one
	Txs            int
	// Filled by SelectOnlyTolerant only: what went wrong in a run that
	// pgbench finished with errors.
	Failed  int            // "number of failed transactions" (retried kinds: serialization, deadlock)
	Aborted int            // clients pgbench aborted on an error
	Errors  map[string]int // each distinct error that aborted a client, and how many clients it aborted
	Other   map[string]int // errors pgbench reported without aborting a client (a failed prepare), and how often
}

var (
	tpsRE    = regexp.MustCompile(`tps = ([0-9.]+) \((?:without|excluding|including)`)
	latRE    = regexp.MustCompile(`latency average = ([0-9.]+) ms`)
	txRE     = regexp.MustCompile(`number of transactions actually processed: (\d+)`)
	failedRE = regexp.MustCompile(`number of failed transactions: (\d+)`)
	// pgbench's two threads write stderr at once, so lines can come
	// interleaved: neither is anchored, and a client counts once.
	abortedRE = regexp.MustCompile(`client (\d+) (?:script \d+ )?aborted in command \d+(?: \(\w+\))?(?: of script \d+)?(?: query \d+)?[:;] *([^\n]*)`)
	serverRE  = regexp.MustCompile(`(?:ERROR|FATAL): +([^\n]*)`)
)

// SelectOnly runs pgbench -n -S for d, with args, against port, and
// measures the CPU time process pid (0: none) spends over the run.
func SelectOnly(ctx context.Context, port, pid int, d time.Duration, args ...string) (Result, error) {
	return selectOnly(ctx, port, pid, d, false, args...)
}

// SelectOnlyTolerant is SelectOnly for runs expected to fail against
// some targets (pgbench -M prepared through a transaction pooler that
// does not track prepared statements): a run in which pgbench aborted
// clients, or completed no transaction, is still a Result, with Failed,
// Aborted, Errors and Other saying what happened. Only a run that printed
// no summary at all is an error.
func SelectOnlyTolerant(ctx context.Context, port, pid int, d time.Duration, args ...string) (Result, error) {
	return selectOnly(ctx, port, pid, d, true, args...)
}

func selectOnly(ctx context.Context, port, pid int, d time.Duration, tolerant bool, args ...string) (Result, error) {
	before, err := CPUTicks(pid)
	if err != nil {
		return Result{}, fmt.Errorf("proxy gone: %w", err)
	}
	pgArgs := append([]string{"-n", "-S", "-T", strconv.Itoa(int(d.Seconds()))}, args...)
	outText, err := PgbenchOut(ctx, port, pgArgs...)
	if err != nil {
		var ee *exec.ExitError
		if !tolerant || !errors.As(err, &ee) || ctx.Err() != nil {
			return Result{}, err
		}
		outText = err.Error() // pgbench's output follows the first line
	}
	after, err := CPUTicks(pid)
	if err != nil {
		return Result{}, fmt.Errorf("proxy gone: %w", err)
	}
	r, err := parsePgbench(outText, tolerant)
	if err != nil {
		return Result{}, err
	}
	if pid != 0 && r.Txs > 0 {
		r.CPUUsPerTx = float64(after-before) * (1e6 / clkTck) / float64(r.Txs)
	}
	return r, nil
}

// parsePgbench reads pgbench's output. Unless tolerant, a run that
// completed no transaction is an error; tolerant, only output without a
// summary is, and what failed is counted.
func parsePgbench(outText string, tolerant bool) (Result, error) {
	var r Result
	if m := tpsRE.FindStringSubmatch(outText); m != nil {
		r.TPS, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := latRE.FindStringSubmatch(outText); m != nil {
		r.LatencyMs, _ = strconv.ParseFloat(m[1], 64)
	}
	m := txRE.FindStringSubmatch(outText)
	if m != nil {
		r.Txs, _ = strconv.Atoi(m[1])
	}
	if !tolerant {
		if r.Txs == 0 || r.TPS == 0 {
			return Result{}, fmt.Errorf("could not read pgbench output:\n%s", outText)
		}
		return r, nil
	}
	if m == nil {
		return Result{}, fmt.Errorf("could not read pgbench output:\n%s", outText)
	}
	if f := failedRE.FindStringSubmatch(outText); f != nil {
		r.Failed, _ = strconv.Atoi(f[1])
	}
	clients := map[string]bool{}
	for _, line := range strings.Split(outText, "\n") {
		if a := abortedRE.FindStringSubmatch(line); a != nil {
			if clients[a[1]] {
				continue
			}
			clients[a[1]] = true
			if r.Errors == nil {
				r.Errors = map[string]int{}
			}
			r.Errors[strings.Join(strings.Fields(a[2]), " ")]++
		} else if e := serverRE.FindStringSubmatch(line); e != nil && strings.Contains(line, "error:") {
			if r.Other == nil {
				r.Other = map[string]int{}
			}
			r.Other[strings.Join(strings.Fields(e[0]), " ")]++
		}
	}
	r.Aborted = len(clients)
	return r, nil
}

// CPUTicks is utime+stime of pid (all threads) in clock ticks; 0 for pid
// 0. It fails for a process that has exited, reaped or not.
func CPUTicks(pid int) (int64, error) {
	if pid == 0 {
		return 0, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i >= 0 && len(s) > i+2 && (s[i+2] == 'Z' || s[i+2] == 'X') {
		return 0, errors.New("process exited") // a zombie: the bed has not reaped it
	}
	f := strings.Fields(s[i+2:])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return utime + stime, nil
}

// Pgbench runs pgbench on the client CPU against port as the superuser.
func Pgbench(ctx context.Context, port int, args ...string) error {
	_, err := PgbenchOut(ctx, port, args...)
	return err
}

// PgbenchOut is Pgbench returning pgbench's output.
func PgbenchOut(ctx context.Context, port int, args ...string) (string, error) {
	argv := testbed.Pin(ClientCPU, append([]string{"pgbench", "-h", "127.0.0.1", "-p", strconv.Itoa(port),
		"-U", testbed.UserSuper}, append(args, testbed.DefaultDB)...)...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	b, err := cmd.CombinedOutput()
	if err != nil {
		// pgbench's own message is its last line of output.
		return "", fmt.Errorf("pgbench %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

// StartPG starts PostgreSQL on the server CPU with settings (nil for the
// defaults) and fills it with pgbench -i at scale 10.
func StartPG(ctx context.Context, settings map[string]string) (*testbed.PGCluster, error) {
	fmt.Fprintln(os.Stderr, "bench: starting PostgreSQL, HAProxy, pgbouncer and Switchyard on CPU", ServerCPU)
	pg, err := testbed.StartPG(ctx, testbed.PGOptions{CPUs: ServerCPU, Settings: settings})
	if err != nil {
		return nil, err
	}
	if err := Pgbench(ctx, pg.Nodes[0].Port, "-i", "-q", "-s", "10"); err != nil {
		pg.Close()
		return nil, fmt.Errorf("pgbench -i: %w", err)
	}
	return pg, nil
}

// StartSwitchyard runs binary on the server CPU in front of the primary
// at addr, TLS off, with one listener called name. listener is more lines
// for the listener's table, tail more TOML after the config, and files
// (nil for none) more files beside it; "{dir}" is the peer's directory.
func StartSwitchyard(ctx context.Context, binary, addr, name, listener, tail string, files map[string]string) (*testbed.Peer, error) {
	port, err := testbed.FreePort()
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`
[log]
level = "info"
[cluster]
name = "bench"
[cluster.static]
members = [{ name = "pg1", address = %q, role = "primary" }]
[[listener]]
name = %q
address = "127.0.0.1:%d"
role = "primary"
%s[tls]
client_mode = "disable"
server_mode = "disable"   # like HAProxy's plain TCP; no SSLRequest round trip
%s`, addr, name, port, listener, tail)
	all := map[string]string{"switchyard.toml": cfg}
	maps.Copy(all, files)
	return testbed.StartSwitchyardFiles(ctx, binary, all, port, ServerCPU)
}

// StartSwitchyardMode runs binary in front of addr on the server CPU with
// one listener, "bench", in poolMode ("none" is the relay). The pooling
// settings match the pgbouncer the benches run beside it: trust auth from
// an auth file naming the bench user, and default_pool_size = poolSize.
// extra is more TOML after the config.
func StartSwitchyardMode(ctx context.Context, binary, addr, poolMode string, poolSize int, extra string) (*testbed.Peer, error) {
	pooling := ""
	if poolMode != "none" {
		pooling = fmt.Sprintf(`
[auth]
type = "trust"
file = "{dir}/userlist.txt"
[pool]
default_pool_size = %d
`, poolSize)
	}
	return StartSwitchyard(ctx, binary, addr, "bench", fmt.Sprintf("pool_mode = %q\n", poolMode), pooling+extra, map[string]string{
		"userlist.txt": fmt.Sprintf("%q \"\"\n", testbed.UserSuper),
	})
}
