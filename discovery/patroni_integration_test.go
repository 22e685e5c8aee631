package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard-proxy/switchyard/discovery"
	"github.com/switchyard-proxy/switchyard/internal/app"
	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// TestPatroni runs a real three-node Patroni cluster on each DCS and
// Switchyard in front of it: routing, a planned switchover, a crash of
// the leader and, on etcd, an outage of the DCS. On etcd, Switchyards
// following Patroni's REST API and probing the nodes run beside the one
// that watches etcd and must pass the same switchover.
func TestPatroni(t *testing.T) {
	for _, kind := range []string{"etcd", "consul", "zookeeper"} {
		t.Run(kind, func(t *testing.T) { testPatroni(t, kind) })
	}
}

func testPatroni(t *testing.T, kind string) {
	ctx := context.Background()
	members := 1
	if kind == "etcd" {
		members = 3
	}
	d, err := testbed.StartDCS(ctx, kind, members)
	if err != nil {
		t.Fatalf("starting %s (run `make deps` if it is missing): %v", kind, err)
	}
	t.Cleanup(d.Close)
	p, err := testbed.StartPatroni(ctx, testbed.PatroniOptions{DCS: d})
	if err != nil {
		t.Fatalf("starting Patroni (run `make deps` if it is missing): %v", err)
	}
	t.Cleanup(p.Close)
	if kind == "etcd" {
		d.Stop(0) // the first of three endpoints is down for the whole test
	}

	yards := []*yard{startYard(t, kind, dcsSection(d))}
	if kind == "etcd" {
		var urls, probes []string
		for _, n := range p.Nodes {
			urls = append(urls, fmt.Sprintf("%q", n.APIURL()))
			probes = append(probes, fmt.Sprintf("{ name = %q, address = %q }", n.Name, n.Addr()))
		}
		yards = append(yards,
			startYard(t, "patroni-api", "discovery = \"patroni-api\"\n[cluster.patroni_api]\ninterval = \"200ms\"\nurls = ["+strings.Join(urls, ", ")+"]\n"),
			startYard(t, "probe", "discovery = \"probe\"\n[cluster.probe]\ninterval = \"200ms\"\nuser = \"postgres\"\nmembers = ["+strings.Join(probes, ", ")+"]\n"))
	}
	dopts, err := app.DiscoveryOptions(yards[0].Cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := discovery.OpenStore(dopts)
	if err != nil {
		t.Fatal(err)
	}
	lw := testbed.WatchLeader(st)
	t.Cleanup(lw.Close)

	// rw reaches the leader; ro reaches both replicas and never the leader.
	leader := p.Nodes[0]
	type held struct {
		rw *pgconn.PgConn
		ro map[int]*pgconn.PgConn // by server port
	}
	sessions := map[*yard]held{}
	for _, y := range yards {
		routedTo(t, y, leader, 20*time.Second)
		h := held{rw: hold(t, dsn(y, "rw")), ro: map[int]*pgconn.PgConn{}}
		for range 4 {
			c := hold(t, dsn(y, "ro"))
			port, rec, err := ask(ctx, c)
			if err != nil || !rec || port == leader.PGPort {
				t.Fatalf("%s: ro served by port %d (in recovery %v, err %v)", y.Name, port, rec, err)
			}
			h.ro[port] = c
		}
		if len(h.ro) != 2 {
			t.Fatalf("%s: ro reached %d replicas, want 2", y.Name, len(h.ro))
		}
		sessions[y] = h
	}

	// Planned switchover, with readers on ro throughout.
	tallies, stopReaders := readLoops(yards)
	defer stopReaders()
	candidate := p.Nodes[1]
	lw.Forget()
	writable := testbed.WatchPromotion(candidate)
	t.Cleanup(writable.Close)
	var arrivals []func() time.Time
	for _, y := range yards {
		arrivals = append(arrivals, reach(t, y, candidate, 60*time.Second))
	}
	if err := p.Switchover(ctx, leader.Name, candidate.Name); err != nil {
		t.Fatal(err)
	}
	for i, y := range yards {
		routed := arrivals[i]()
		checkFollowed(t, y, lw, candidate, routed, writable.At())

		h := sessions[y]
		// Patroni shuts the old primary down before it releases the
		// leader key. Watching the DCS, Switchyard sees the switchover
		// request (the failover key) and ends the session first; the
		// polling modes cannot, and PostgreSQL's shutdown ends it, with
		// the same SQLSTATE.
		want := `server "` + leader.Name + `" is no longer the primary`
		if y.Name == "patroni-api" || y.Name == "probe" {
			want = ""
		}
		endedWith(t, y.Name+" rw session on the old primary", h.rw, want)
		endedWith(t, y.Name+" ro session on the new primary", h.ro[candidate.PGPort], `server "`+candidate.Name+`" no longer serves listener "ro" as a replica: it was promoted to primary`)
	}
	stopReaders()
	for _, y := range yards {
		r := tallies[y]
		t.Logf("%s: ro reads during the switchover: %d, served by a primary: %d", y.Name, r.reads, len(r.primary))
		if r.reads == 0 {
			t.Errorf("%s: no ro read succeeded during the switchover", y.Name)
		}
		// A watched leader key changes before the promotion: no ro read
		// may reach the new primary. Polling modes learn of it after the
		// fact; they check each new replica session in-band, so only a
		// session that logged in before the promotion can be served by
		// the new primary (until the next poll ends it). The margin
		// covers the 10 ms promotion poll and scheduling.
		polling := y.Name == "patroni-api" || y.Name == "probe"
		for _, at := range r.primary {
			if !polling || at.After(writable.At().Add(100*time.Millisecond)) {
				t.Errorf("%s: an ro session that logged in %v after %s became writable was served by it",
					y.Name, at.Sub(writable.At()).Round(time.Millisecond), candidate.Name)
			}
		}
	}

	// kill -9 of the leader's Patroni and postmaster.
	if err := p.WaitHealthy(ctx, candidate.Name); err != nil {
		t.Fatal(err)
	}
	lw.Forget()
	var promotions []*testbed.Promotion
	for _, n := range p.Nodes {
		if n != candidate {
			pr := testbed.WatchPromotion(n)
			t.Cleanup(pr.Close)
			promotions = append(promotions, pr)
		}
	}
	candidate.KillHard()
	next := waitNewLeader(t, p, lw, candidate.Name)
	for _, y := range yards {
		routed := routedTo(t, y, next, 30*time.Second) // after the key: the next leader was unknown before
		var w time.Time
		for _, pr := range promotions {
			if at := pr.At(); !at.IsZero() {
				w = at
			}
		}
		checkFollowed(t, y, lw, next, routed, w)
	}

	if kind == "etcd" {
		dcsOutage(t, d, p, yards[0], next)
	}
}

// checkFollowed checks that rw reached node within 1s of its leader key
// appearing or, when Patroni's promotion took longer than that, within 1s
// of the node becoming writable: before that Switchyard holds new write
// sessions on purpose.
func checkFollowed(t *testing.T, y *yard, lw *testbed.LeaderWatch, node *testbed.PatroniNode, routed, writable time.Time) {
	t.Helper()
	keyAt, ok := lw.At(node.Name)
	if !ok {
		t.Fatalf("the leader key never named %s", node.Name)
	}
	from, what := keyAt, "its leader key appeared"
	if writable.After(keyAt) && writable.Sub(keyAt) > 900*time.Millisecond {
		from, what = writable, fmt.Sprintf("it became writable (%v after its key)", writable.Sub(keyAt).Round(time.Millisecond))
	}
	t.Logf("%s: rw reached %s %v after its leader key appeared (writable %v after the key)", y.Name, node.Name,
		routed.Sub(keyAt).Round(time.Millisecond), writable.Sub(keyAt).Round(time.Millisecond))
	if routed.Sub(from) > time.Second {
		t.Errorf("%s: rw reached %s %v after %s, want within 1s", y.Name, node.Name, routed.Sub(from), what)
	}
}

func dcsSection(d *testbed.DCS) string {
	q := make([]string, len(d.Addrs))
	for i, a := range d.Addrs {
		q[i] = fmt.Sprintf("%q", a)
	}
	switch d.Kind {
	case "etcd":
		return "discovery = \"etcd\"\n[cluster.etcd]\nendpoints = [" + strings.Join(q, ", ") + "]\n"
	case "consul":
		return "discovery = \"consul\"\n[cluster.consul]\naddress = " + q[0] + "\n"
	}
	return "discovery = \"zookeeper\"\n[cluster.zookeeper]\nservers = [" + strings.Join(q, ", ") + "]\n"
}

// readTally counts one yard's reads through its ro port.
type readTally struct {
	mu    sync.Mutex
	reads int
	// primary holds, for each read a node out of recovery served, when
	// its session had logged in.
	primary []time.Time
}

func (r *readTally) add(loggedIn time.Time, inRecovery bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads++
	if !inRecovery {
		r.primary = append(r.primary, loggedIn)
	}
}

// readLoops reads through every yard's ro port, one new session per
// read, until stopped.
func readLoops(yards []*yard) (map[*yard]*readTally, func()) {
	tallies := map[*yard]*readTally{}
	for _, y := range yards {
		tallies[y] = &readTally{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, y := range yards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
				if c, err := pgconn.Connect(rctx, dsn(y, "ro")); err == nil {
					loggedIn := time.Now()
					if _, rec, err := ask(rctx, c); err == nil {
						tallies[y].add(loggedIn, rec)
					}
					c.Close(rctx)
				}
				rcancel()
			}
		}()
	}
	return tallies, func() { cancel(); wg.Wait() }
}

// waitNewLeader waits for the leader key to name a member other than old.
func waitNewLeader(t *testing.T, p *testbed.Patroni, lw *testbed.LeaderWatch, old string) *testbed.PatroniNode {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range p.Nodes {
			if _, ok := lw.At(n.Name); ok && n.Name != old {
				return n
			}
		}
		timer := time.NewTimer(50 * time.Millisecond)
		<-timer.C
	}
	t.Fatalf("no new leader key within 60s after %s died", old)
	return nil
}

// dcsOutage kills every etcd member: keep-last keeps routing rw for
// dcs_grace, then rw answers 57P03; once etcd is back, routing resumes.
//
// dcs_grace runs from the last answer, which came at most one watch wait
// (dcs_grace/3) before the outage began, so the checks allow that much.
// The members are killed, not stopped: a graceful etcd stop hands over
// leadership first and can take seconds, eating into the grace.
func dcsOutage(t *testing.T, d *testbed.DCS, p *testbed.Patroni, y *yard, leader *testbed.PatroniNode) {
	ctx := context.Background()
	stopped := time.Now()
	for i := range d.Addrs {
		d.Kill(i)
	}
	grace := y.Cfg.Cluster.DCSGrace.Duration
	trusted := grace - grace/3 - 200*time.Millisecond // keep-last lasts at least this long after the kill
	if port, _, err := where(ctx, dsn(y, "rw")); err != nil || port != leader.PGPort {
		t.Errorf("etcd down for %v, within dcs_grace: rw reached port %d (err %v), want %d",
			time.Since(stopped).Round(time.Millisecond), port, err, leader.PGPort)
	}
	var refusedAt time.Time
	for time.Since(stopped) < grace+30*time.Second {
		_, _, err := where(ctx, dsn(y, "rw"))
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "57P03" {
			refusedAt = time.Now()
			break
		}
	}
	if refusedAt.IsZero() {
		t.Fatalf("rw never answered 57P03 with etcd down")
	}
	t.Logf("etcd down: rw refused with 57P03 after %v (dcs_grace %v)", refusedAt.Sub(stopped).Round(time.Millisecond), grace)
	if refusedAt.Sub(stopped) < trusted {
		t.Errorf("rw refused %v after the outage began, before dcs_grace (%v) could have run out", refusedAt.Sub(stopped), grace)
	}
	for i := range d.Addrs {
		if err := d.Start(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		l, err := p.Leader(ctx)
		if err == nil && l != nil {
			if port, rec, err := where(ctx, dsn(y, "rw")); err == nil && port == l.PGPort && !rec {
				t.Logf("etcd back: rw routed to %s again %v after the restart", l.Name, time.Since(stopped).Round(time.Millisecond))
				return
			}
		}
		timer := time.NewTimer(100 * time.Millisecond)
		<-timer.C
	}
	t.Fatal("routing did not resume within 90s of etcd coming back")
}
