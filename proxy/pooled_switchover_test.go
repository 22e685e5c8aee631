package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// writer is one transaction-pooled client writing in a loop.
type writer struct {
	id     int
	mu     sync.Mutex
	ok     int
	fails  []failure
	closed bool // the connection ended (it must not)
}

// failure is a transaction that failed: when it was sent, when its
// error came, and the error ("SQLSTATE: message").
type failure struct {
	client     int
	sent, done time.Time
	err        string
}

func (w *writer) run(ctx context.Context, c *pgconn.PgConn) {
	for n := 0; ctx.Err() == nil; n++ {
		sent := time.Now()
		err := c.Exec(ctx, fmt.Sprintf("INSERT INTO writes(client, n, node) VALUES (%d, %d, inet_server_port())", w.id, n)).Close()
		done := time.Now()
		w.mu.Lock()
		switch {
		case err == nil:
			w.ok++
		case ctx.Err() != nil:
		default:
			f := failure{client: w.id, sent: sent, done: done, err: err.Error()}
			var pe *pgconn.PgError
			if errors.As(err, &pe) {
				f.err = pe.Code + ": " + pe.Message
			}
			w.fails = append(w.fails, f)
		}
		if c.IsClosed() {
			w.closed = true
		}
		w.mu.Unlock()
		if w.closed {
			return
		}
		// Think time: most clients are idle between transactions at any
		// moment, as in an application.
		t := time.NewTimer(time.Duration(rand.IntN(20)) * time.Millisecond)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
}

// tally sums the writers' outcomes since the last tally.
func tally(ws []*writer) (ok int, fails []failure, closed int) {
	for _, w := range ws {
		w.mu.Lock()
		ok += w.ok
		fails = append(fails, w.fails...)
		if w.closed {
			closed++
		}
		w.ok, w.fails = 0, nil
		w.mu.Unlock()
	}
	return ok, fails, closed
}

// errorsOf lists the failures' errors, for a log line.
func errorsOf(fails []failure) []string {
	var out []string
	for _, f := range fails {
		out = append(out, fmt.Sprintf("client %d: %s", f.client, f.err))
	}
	return out
}

// checkInFlight checks that the failures are only of transactions in
// flight when the old primary stopped: each sent before stopped (the
// moment the test bed saw the old primary refuse logins, at or after the
// moment it ended its backends), at most one per client (a client has
// one transaction in flight at a time; the next must wait for the new
// primary and succeed), and each a 08006 saying why. A client idle
// between transactions when the primary stopped sent its next one after
// stopped: it sees no error.
func checkInFlight(t *testing.T, what string, fails []failure, stopped time.Time) {
	t.Helper()
	per := map[int]int{}
	for _, f := range fails {
		if per[f.client]++; per[f.client] == 2 {
			t.Errorf("%s: client %d had more than one failed transaction: only the one in flight may fail", what, f.client)
		}
		if !f.sent.Before(stopped) {
			t.Errorf("%s: client %d's transaction sent %s after the old primary stopped failed (%s after sending): %s; "+
				"a client idle between transactions when the primary stopped must see no error",
				what, f.client, f.sent.Sub(stopped).Round(time.Millisecond), f.done.Sub(f.sent).Round(time.Millisecond), f.err)
		}
		if !strings.HasPrefix(f.err, "08006") {
			t.Errorf("%s: client %d got %q; only 08006 (its transaction was in flight on the old primary) is allowed", what, f.client, f.err)
		}
	}
}

// The reason Switchyard exists: 50 transaction-pooled clients write in a
// loop through rw while Patroni switches the primary over, then while the
// new primary is killed with SIGKILL. No client is disconnected; in a
// switchover only transactions in flight on the old primary when it
// stopped may fail (at most one per client): each transaction's send
// time is compared with the moment the test bed saw the old primary stop
// (checkInFlight), so a client idle between transactions then is seen to
// get no error. Afterwards every write is on the new primary. After the
// kill, writes wait for Patroni's ttl and then go on; failures are
// counted, not failed.
func TestPooledSwitchover(t *testing.T) {
	needPG(t)
	ctx := context.Background()
	d, p, leader := testbed.PatroniCluster(t, "etcd")
	if err := leader.Exec(ctx, "CREATE TABLE writes (client int, n int, node int, at timestamptz DEFAULT clock_timestamp())"); err != nil {
		t.Fatal(err)
	}
	y := testbed.StartYard(t, "switchyard", fmt.Sprintf(`
[cluster]
name = "demo"
leader_wait = "30s"
discovery = "etcd"
[cluster.etcd]
endpoints = [%q]
[[listener]]
name = "rw"
address = "127.0.0.1:0"
role = "primary"
pool_mode = "transaction"
[[listener]]
name = "sess"
address = "127.0.0.1:0"
role = "primary"
pool_mode = "session"
[auth]
type = "trust"
[pool]
default_pool_size = 10
[limits]
connect_timeout = "2s"
shutdown_timeout = "2s"
`, d.Addrs[0]))

	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	ws := make([]*writer, 50)
	for i := range ws {
		ws[i] = &writer{id: i}
		c, err := pgconn.Connect(ctx, y.DSN("rw", testbed.UserSuper))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		wg.Go(func() { ws[i].run(wctx, c) })
	}
	defer func() { stop(); wg.Wait() }()
	pause := func(d time.Duration) {
		t.Helper()
		timer := time.NewTimer(d)
		<-timer.C
	}

	// A session-mode client is bound to its server for life: when the
	// primary changes it ends, as a relay session does.
	held, err := pgconn.Connect(ctx, y.DSN("sess", testbed.UserSuper))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close(context.Background())
	if err := held.Exec(ctx, "SELECT 1").Close(); err != nil {
		t.Fatal(err)
	}

	pause(time.Second)
	if ok, fails, closed := tally(ws); ok == 0 || len(fails) > 0 || closed > 0 {
		t.Fatalf("before the switchover: %d writes, errors %v, %d disconnected", ok, errorsOf(fails), closed)
	}

	// A planned switchover.
	var candidate *testbed.PatroniNode
	for _, n := range p.Nodes {
		if n != leader {
			candidate = n
			break
		}
	}
	oldStop := testbed.WatchStop(leader)
	defer oldStop.Close()
	if err := p.Switchover(ctx, leader.Name, candidate.Name); err != nil {
		t.Fatal(err)
	}
	switched := time.Now()
	// Patroni stops the old primary before it promotes the candidate.
	testbed.Eventually(t, 10*time.Second, "the test bed to see "+leader.Name+" stop", func() bool { return !oldStop.At().IsZero() })
	oldStop.Close()
	stopped := oldStop.At()
	pause(2 * time.Second)
	ok, fails, closed := tally(ws)
	t.Logf("switchover %s → %s (%s stopped %s before the switchover returned): %d writes, %d failed in flight: %v",
		leader.Name, candidate.Name, leader.Name, switched.Sub(stopped).Round(time.Millisecond), ok, len(fails), errorsOf(fails))
	if closed > 0 {
		t.Errorf("switchover: %d clients were disconnected", closed)
	}
	if ok == 0 {
		t.Error("switchover: no write succeeded after it")
	}
	checkInFlight(t, "switchover", fails, stopped)
	qctx, qcancel := context.WithTimeout(ctx, 5*time.Second)
	err = held.Exec(qctx, "SELECT 1").Close()
	qcancel()
	if sqlState(err) != "57P01" || !held.IsClosed() {
		t.Errorf("the session-mode client on the old primary: %v, want it ended with 57P01", err)
	}
	var misplaced int
	row := queryNode(t, candidate, fmt.Sprintf(
		"SELECT count(*) FROM writes WHERE at > '%s' AND node <> %d", switched.UTC().Format(time.RFC3339Nano), candidate.PGPort))
	if misplaced, _ = strconv.Atoi(row); misplaced != 0 {
		t.Errorf("%d writes after the switchover landed elsewhere than the new primary %s", misplaced, candidate.Name)
	}

	// A crash of the new primary: writes wait for Patroni's ttl.
	candidate.KillHard()
	killed := time.Now()
	deadline, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var next *testbed.PatroniNode
	for next == nil || next == candidate {
		if deadline.Err() != nil {
			t.Fatalf("no new leader after killing %s", candidate.Name)
		}
		next, _ = p.Leader(deadline)
		pause(200 * time.Millisecond)
	}
	pause(3 * time.Second)
	ok, fails, closed = tally(ws)
	// Sent after KillHard returned: a SIGKILLed postmaster's backends
	// end only once they notice, and may take a transaction with them.
	late := 0
	for _, f := range fails {
		if f.sent.After(killed) {
			late++
		}
	}
	t.Logf("kill -9 of %s, %s leader after %s: %d writes, %d failed (%d sent after the kill): %v", candidate.Name, next.Name,
		time.Since(killed).Round(time.Second), ok, len(fails), late, errorsOf(fails))
	if closed > 0 {
		t.Errorf("kill -9: %d clients were disconnected", closed)
	}
	if ok == 0 {
		t.Error("kill -9: no write succeeded after the new leader took over")
	}
}

// queryNode runs a one-value query on a Patroni node as the superuser.
func queryNode(t *testing.T, n *testbed.PatroniNode, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", n.PGPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	res := c.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 {
		t.Fatalf("%s on %s: %v", sql, n.Name, res.Err)
	}
	return string(res.Rows[0][0])
}
