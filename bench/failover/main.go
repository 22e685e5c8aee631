// Command failover measures what clients see during a Patroni switchover
// and a crash of the leader, through Switchyard (watching etcd) and
// through HAProxy set up as Patroni documents it (health checks on the
// REST API every 3 s, fall 3, rise 2, on-marked-down shutdown-sessions),
// side by side in one run against one Patroni cluster.
//
// Through each proxy run a writer on one persistent connection, a writer
// that opens a new connection per write, and a reader on the replica
// port. The leader key is watched independently, and each candidate is
// polled directly to learn when it became writable.
//
//	go run ./bench/failover -switchyard bin/switchyard [-ttl 30 -loop-wait 10]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard-proxy/switchyard/discovery"
	"github.com/switchyard-proxy/switchyard/internal/app"
	"github.com/switchyard-proxy/switchyard/internal/config"
	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

func main() {
	binary := flag.String("switchyard", "bin/switchyard", "switchyard binary")
	ttl := flag.Int("ttl", 30, "Patroni ttl (s); Patroni's default")
	loopWait := flag.Int("loop-wait", 10, "Patroni loop_wait (s); Patroni's default")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *binary, *ttl, *loopWait, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// op is one write or read attempt.
type op struct {
	at   time.Time // when it completed
	ok   bool
	port int    // server port that answered
	rec  bool   // the server was in recovery (reads)
	code string // SQLSTATE of a failure, if any
	err  string
}

type recorder struct {
	mu  sync.Mutex
	ops []op
}

func (r *recorder) add(o op) {
	r.mu.Lock()
	r.ops = append(r.ops, o)
	r.mu.Unlock()
}

func (r *recorder) between(from, to time.Time) []op {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []op
	for _, o := range r.ops {
		if !o.at.Before(from) && o.at.Before(to) {
			out = append(out, o)
		}
	}
	return out
}

// proxy is one side of the comparison, with its three loops.
type proxy struct {
	name              string
	rw, ro            string // DSNs
	persistent, perOp recorder
	reads             recorder
}

func run(ctx context.Context, binary string, ttl, loopWait int, out io.Writer) error {
	fmt.Fprintf(os.Stderr, "starting etcd and a 3-node Patroni cluster (ttl %d, loop_wait %d)\n", ttl, loopWait)
	dcs, err := testbed.StartDCS(ctx, "etcd", 1)
	if err != nil {
		return err
	}
	defer dcs.Close()
	pat, err := testbed.StartPatroni(ctx, testbed.PatroniOptions{DCS: dcs, TTL: ttl, LoopWait: loopWait})
	if err != nil {
		return err
	}
	defer pat.Close()
	if err := pat.Nodes[0].Exec(ctx, "CREATE TABLE bench_writes (id bigserial PRIMARY KEY, who text, at timestamptz DEFAULT now())"); err != nil {
		return err
	}
	if err := pat.WaitHealthy(ctx, pat.Nodes[0].Name); err != nil { // the table is on every replica
		return err
	}

	rwPort, err := testbed.FreePort()
	if err != nil {
		return err
	}
	roPort, err := testbed.FreePort()
	if err != nil {
		return err
	}
	cfgText := fmt.Sprintf(`[cluster]
name = %q
discovery = "etcd"
[cluster.etcd]
endpoints = [%q]
[[listener]]
name = "rw"
address = "127.0.0.1:%d"
role = "primary"
[[listener]]
name = "ro"
address = "127.0.0.1:%d"
role = "replica"
[log]
level = "info"
format = "json"
`, pat.Scope, dcs.Addrs[0], rwPort, roPort)
	sy, err := testbed.StartSwitchyard(ctx, binary, cfgText, rwPort, "")
	if err != nil {
		return err
	}
	defer sy.Close()
	ha, haRO, err := testbed.StartHAProxyPatroni(ctx, pat)
	if err != nil {
		return err
	}
	defer ha.Close()

	cfg, err := config.Load(strings.NewReader(cfgText), "bench.toml")
	if err != nil {
		return err
	}
	dopts, err := app.DiscoveryOptions(cfg)
	if err != nil {
		return err
	}
	st, err := discovery.OpenStore(dopts)
	if err != nil {
		return err
	}
	lw := testbed.WatchLeader(st)
	defer lw.Close()

	dsn := func(port int) string {
		return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable connect_timeout=3", port)
	}
	proxies := []*proxy{
		{name: "Switchyard", rw: dsn(rwPort), ro: dsn(roPort)},
		{name: "HAProxy", rw: dsn(ha.Port), ro: dsn(haRO)},
	}
	// HAProxy marks servers up after rise × inter; wait for its checks.
	if err := waitWritable(ctx, proxies, pat.Nodes[0].PGPort, 30*time.Second); err != nil {
		return err
	}
	lctx, stopLoops := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, p := range proxies {
		wg.Add(3)
		go func() { defer wg.Done(); writeLoop(lctx, p.rw, true, &p.persistent) }()
		go func() { defer wg.Done(); writeLoop(lctx, p.rw, false, &p.perOp) }()
		go func() { defer wg.Done(); readLoop(lctx, p.ro, &p.reads) }()
	}
	defer func() { stopLoops(); wg.Wait() }()

	var rows []row
	// Planned switchover pg1 → pg2.
	old, cand := pat.Nodes[0], pat.Nodes[1]
	pause(ctx, 3*time.Second)
	lw.Forget()
	prom := testbed.WatchPromotion(cand)
	start := time.Now()
	fmt.Fprintf(os.Stderr, "switchover %s -> %s\n", old.Name, cand.Name)
	if err := pat.Switchover(ctx, old.Name, cand.Name); err != nil {
		return err
	}
	end := settle(ctx, proxies, cand.PGPort, 60*time.Second)
	keyAt, _ := lw.At(cand.Name)
	rows = append(rows, measure("switchover", proxies, start, end, keyAt, prom.At(), cand.PGPort)...)
	rows[len(rows)-2].decided, rows[len(rows)-2].decidedFound = decided(sy.LogPath(), cand.Name, keyAt)
	prom.Close()

	// kill -9 of the leader's Patroni and postmaster.
	if err := pat.WaitHealthy(ctx, cand.Name); err != nil {
		return err
	}
	pause(ctx, 3*time.Second)
	lw.Forget()
	var proms []*testbed.Promotion
	for _, n := range pat.Nodes {
		if n != cand {
			proms = append(proms, testbed.WatchPromotion(n))
		}
	}
	start = time.Now()
	fmt.Fprintf(os.Stderr, "kill -9 %s (Patroni and postmaster)\n", cand.Name)
	cand.KillHard()
	next, nextKey, err := newLeader(ctx, pat, lw, cand.Name, time.Duration(ttl+60)*time.Second)
	if err != nil {
		return err
	}
	end = settle(ctx, proxies, next.PGPort, 90*time.Second)
	var writable time.Time
	for _, p := range proms {
		if at := p.At(); !at.IsZero() {
			writable = at
		}
		p.Close()
	}
	rows = append(rows, measure("kill -9 leader", proxies, start, end, nextKey, writable, next.PGPort)...)
	rows[len(rows)-2].decided, rows[len(rows)-2].decidedFound = decided(sy.LogPath(), next.Name, nextKey)

	for _, p := range proxies {
		errs := map[string]int{}
		for _, o := range p.persistent.ops {
			if !o.ok {
				errs[o.err]++
			}
		}
		fmt.Fprintf(os.Stderr, "%s write errors: %v\n", p.name, errs)
	}
	fmt.Fprintf(out, "Patroni 3.0.2 on etcd 3.4, ttl %d, loop_wait %d; writers every 10 ms, reader every 10 ms.\n\n", ttl, loopWait)
	printRows(out, rows)
	return nil
}

// row is one proxy's numbers for one event.
type row struct {
	event, proxy                        string
	follow, gapPersistent, gapPerOp     time.Duration
	beyondWritable                      time.Duration
	failed, demoted, roPrimary, roReads int
	writableAfterKey                    time.Duration
	decided                             time.Duration // Switchyard: key → snapshot naming the new primary
	decidedFound                        bool
}

// decided reads Switchyard's log for the first topology naming leader
// primary from a second before keyAt on, and returns how long after the
// key it came. It is negative when Switchyard's watch delivered the key
// before the bench's own watch did: both follow the same etcd event.
func decided(logPath, leader string, keyAt time.Time) (time.Duration, bool) {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		var e struct {
			Time    time.Time `json:"time"`
			Msg     string    `json:"msg"`
			Members string    `json:"members"`
		}
		if json.Unmarshal([]byte(line), &e) != nil || e.Msg != "topology" || e.Time.Before(keyAt.Add(-time.Second)) {
			continue
		}
		if strings.Contains(" "+e.Members+" ", " "+leader+"=primary ") {
			return e.Time.Sub(keyAt), true
		}
	}
	return 0, false
}

func measure(event string, proxies []*proxy, from, to, keyAt, writable time.Time, leaderPort int) []row {
	var rows []row
	for _, p := range proxies {
		r := row{event: event, proxy: p.name, follow: -1, beyondWritable: -1, writableAfterKey: writable.Sub(keyAt)}
		firstNew := time.Time{}
		for _, rec := range []*recorder{&p.persistent, &p.perOp} {
			ops := rec.between(from, to)
			gap, last := time.Duration(0), from
			for _, o := range ops {
				if !o.ok {
					r.failed++
					if o.code == "25006" {
						r.demoted++
					}
					continue
				}
				gap = max(gap, o.at.Sub(last))
				last = o.at
				if o.port == leaderPort && !o.at.Before(keyAt) && (firstNew.IsZero() || o.at.Before(firstNew)) {
					firstNew = o.at
				}
			}
			if rec == &p.persistent {
				r.gapPersistent = gap
			} else {
				r.gapPerOp = gap
			}
		}
		if !firstNew.IsZero() {
			r.follow = firstNew.Sub(keyAt)
			if !writable.IsZero() {
				// The direct poll runs every 10 ms: a proxy can be first.
				r.beyondWritable = max(0, firstNew.Sub(writable))
			}
		}
		for _, o := range p.reads.between(from, to) {
			if o.ok {
				r.roReads++
				if !o.rec {
					r.roPrimary++
				}
			}
		}
		rows = append(rows, r)
	}
	return rows
}

func printRows(out io.Writer, rows []row) {
	ms := func(d time.Duration) string {
		if d < 0 {
			return "never"
		}
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
	fmt.Fprintln(out, "| event | proxy | routing decided after the key | rw on new leader after its key | after it was writable | longest write gap (persistent / per-connection) | failed writes | writes refused by a read-only node (25006) | ro reads served by a primary |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		decidedText := "n/a (health checks)"
		if r.proxy == "Switchyard" {
			decidedText = "not found in log"
		}
		if r.decidedFound {
			decidedText = fmt.Sprintf("%.1f ms", float64(r.decided)/float64(time.Millisecond))
		}
		fmt.Fprintf(out, "| %s (writable %s after key) | %s | %s | %s | %s | %s / %s | %d | %d | %d of %d |\n",
			r.event, ms(r.writableAfterKey), r.proxy, decidedText, ms(r.follow), ms(r.beyondWritable),
			ms(r.gapPersistent), ms(r.gapPerOp), r.failed, r.demoted, r.roPrimary, r.roReads)
	}
	fmt.Fprintln(out, "\n\"Routing decided\" is Switchyard's topology log line minus the time the bench's own etcd watch saw the key;"+
		" a negative value means Switchyard's watch delivered the same event first.")
}

// writeLoop writes every 10 ms through dsn, on one connection kept
// across writes (reconnecting after an error) or a new one per write.
func writeLoop(ctx context.Context, dsn string, persistent bool, rec *recorder) {
	var c *pgconn.PgConn
	defer func() {
		if c != nil {
			c.Close(context.Background())
		}
	}()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		if c == nil {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			var err error
			c, err = pgconn.Connect(cctx, dsn)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					rec.add(op{at: time.Now(), code: sqlState(err), err: err.Error()})
				}
				c = nil
				wait(ctx, tick)
				continue
			}
		}
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		res := c.ExecParams(qctx, "INSERT INTO bench_writes (who) VALUES ('bench') RETURNING inet_server_port()", nil, nil, nil, nil).Read()
		cancel()
		if ctx.Err() != nil {
			return
		}
		if res.Err != nil {
			rec.add(op{at: time.Now(), code: sqlState(res.Err), err: res.Err.Error()})
			c.Close(context.Background())
			c = nil
		} else {
			var port int
			fmt.Sscan(string(res.Rows[0][0]), &port)
			rec.add(op{at: time.Now(), ok: true, port: port})
		}
		if !persistent && c != nil {
			c.Close(context.Background())
			c = nil
		}
		wait(ctx, tick)
	}
}

// readLoop connects through dsn every 10 ms and asks where it landed.
func readLoop(ctx context.Context, dsn string, rec *recorder) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		c, err := pgconn.Connect(cctx, dsn)
		if err == nil {
			res := c.ExecParams(cctx, "SELECT inet_server_port(), pg_is_in_recovery()", nil, nil, nil, nil).Read()
			c.Close(cctx)
			err = res.Err
			if err == nil {
				var port int
				fmt.Sscan(string(res.Rows[0][0]), &port)
				rec.add(op{at: time.Now(), ok: true, port: port, rec: string(res.Rows[0][1]) == "t"})
			}
		}
		cancel()
		if err != nil && ctx.Err() == nil {
			rec.add(op{at: time.Now(), code: sqlState(err)})
		}
		wait(ctx, tick)
	}
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func wait(ctx context.Context, tick *time.Ticker) {
	select {
	case <-ctx.Done():
	case <-tick.C:
	}
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// waitWritable waits until a write through every proxy lands on port.
func waitWritable(ctx context.Context, proxies []*proxy, port int, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for _, p := range proxies {
		for {
			var rec recorder
			lctx, lcancel := context.WithTimeout(ctx, 500*time.Millisecond)
			writeLoop(lctx, p.rw, false, &rec)
			lcancel()
			ok := false
			for _, o := range rec.ops {
				ok = ok || (o.ok && o.port == port)
			}
			if ok {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("%s never wrote to port %d", p.name, port)
			}
		}
	}
	return nil
}

// settle waits until both writers of every proxy have written to the new
// leader, then 3 s more (or within runs out), and returns the end of the
// measured window.
func settle(ctx context.Context, proxies []*proxy, leaderPort int, within time.Duration) time.Time {
	deadline := time.Now().Add(within)
	since := time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		done := true
		for _, p := range proxies {
			for _, rec := range []*recorder{&p.persistent, &p.perOp} {
				ok := false
				for _, o := range rec.between(since, time.Now()) {
					ok = ok || (o.ok && o.port == leaderPort)
				}
				done = done && ok
			}
		}
		if done {
			pause(ctx, 3*time.Second)
			break
		}
		pause(ctx, 100*time.Millisecond)
	}
	return time.Now()
}

// newLeader waits for the leader key to name a member other than old.
func newLeader(ctx context.Context, p *testbed.Patroni, lw *testbed.LeaderWatch, old string, within time.Duration) (*testbed.PatroniNode, time.Time, error) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, n := range p.Nodes {
			if at, ok := lw.At(n.Name); ok && n.Name != old {
				return n, at, nil
			}
		}
		pause(ctx, 20*time.Millisecond)
	}
	return nil, time.Time{}, fmt.Errorf("no new leader key within %s", within)
}
