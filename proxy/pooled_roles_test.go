package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// Integration tests of role changes under a transaction-pooled listener.
// The roles come from Patroni's keys in a real etcd, which the test
// writes itself: each change happens exactly when the test says, on two
// real PostgreSQL primaries (the shared pg1 and one of the test's own),
// so "the new primary" is a different server.

// keyBed is an etcd holding Patroni's keys for cluster "roles", written
// by the test, with two writable PostgreSQL nodes to name in them.
type keyBed struct {
	etcd   string // client address
	cli    *clientv3.Client
	prefix string
	nodes  map[string]*testbed.PGNode // member name → node
}

func startKeyBed(t *testing.T) *keyBed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := testbed.StartDCS(ctx, "etcd", 1)
	if err != nil {
		t.Fatalf("starting etcd (run `make deps` if it is missing): %v", err)
	}
	t.Cleanup(d.Close)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + d.Addrs[0]}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	other := testbed.PG(t, testbed.PGOptions{})
	return &keyBed{etcd: d.Addrs[0], cli: cli, prefix: "/service/roles/",
		nodes: map[string]*testbed.PGNode{"pgA": pg.Nodes[0], "pgB": other.Nodes[0]}}
}

// lead writes the keys of a cluster led by leader ("" for none, as while
// Patroni elects one), the other member a replica, in one transaction.
func (b *keyBed) lead(t *testing.T, leader string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var ops []clientv3.Op
	for name, n := range b.nodes {
		role := "replica"
		if name == leader {
			role = "primary"
		}
		js, err := json.Marshal(map[string]any{"conn_url": fmt.Sprintf("postgres://%s/postgres", n.Addr()),
			"state": "running", "role": role, "timeline": 1})
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, clientv3.OpPut(b.prefix+"members/"+name, string(js)))
	}
	if leader == "" {
		ops = append(ops, clientv3.OpDelete(b.prefix+"leader"))
	} else {
		ops = append(ops, clientv3.OpPut(b.prefix+"leader", leader))
	}
	if _, err := b.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
		t.Fatalf("etcd: %v", err)
	}
}

// start runs a Switchyard on the keys with a transaction-pooled listener
// "tx" and waits until tx reaches leader's node.
func (b *keyBed) start(t *testing.T, leaderWait, leader string) *proxyUnderTest {
	t.Helper()
	b.lead(t, leader)
	px := &proxyUnderTest{testbed.StartYard(t, "roles", fmt.Sprintf(`
[cluster]
name = "roles"
leader_wait = %q
discovery = "etcd"
[cluster.etcd]
endpoints = [%q]
[[listener]]
name = "tx"
address = "127.0.0.1:0"
role = "primary"
pool_mode = "transaction"
[auth]
type = "trust"
[pool]
default_pool_size = 2
query_wait_timeout = "5s"
[limits]
connect_timeout = "2s"
`, leaderWait, b.etcd))}
	testbed.Eventually(t, 10*time.Second, "Switchyard to route tx to "+leader, func() bool {
		p, ok := px.Router.Snapshot().Primary()
		return ok && p.Name == leader
	})
	return px
}

// port is member name's PostgreSQL port, as inet_server_port() says it.
func (b *keyBed) port(name string) string { return strconv.Itoa(b.nodes[name].Port) }

// A transaction-pooled client idle in a transaction when its member
// loses the primary role: its next statement gets 08006 saying the
// primary changed, it is out of the transaction and keeps its
// connection, and its next transaction runs on the new primary. The
// abandoned server is closed, not left idle in a transaction. A client
// idle between transactions sees no error at all.
func TestPooledRoleLostInTransaction(t *testing.T) {
	needPG(t)
	b := startKeyBed(t)
	ctx := testCtx(t)
	px := b.start(t, "5s", "pgA")
	dsn := px.dsn("tx", testbed.UserTrust)
	const where = "SELECT inet_server_port()::text, pg_is_in_recovery()::text"

	inTx := connect(t, ctx, dsn)
	between := connect(t, ctx, dsn)
	if row := mustQuery(t, ctx, between, where); row[0] != b.port("pgA") {
		t.Fatalf("before the change, tx ran on port %s, want pgA's %s", row[0], b.port("pgA"))
	}
	mustQuery(t, ctx, inTx, "BEGIN")
	pid := backendPID(t, ctx, inTx)

	b.lead(t, "pgB")
	testbed.Eventually(t, 10*time.Second, "pgA's servers to be dropped", func() bool {
		return len(px.Log.Matching("member lost its role", "member=pgA")) > 0
	})

	_, err := query(ctx, inTx, "SELECT 1")
	var pe *pgconn.PgError
	want := `server "pgA" stopped serving listener "tx" (the primary changed) during this transaction; the transaction did not complete`
	if !errors.As(err, &pe) || pe.Code != "08006" || pe.Message != want {
		t.Fatalf("the statement after the role change: %v; want 08006 %q", err, want)
	}
	if !strings.Contains(pe.Hint, "current primary") {
		t.Errorf("hint %q does not say the transaction can run again on the current primary", pe.Hint)
	}
	if inTx.IsClosed() {
		t.Fatal("the client was disconnected")
	}
	if inTx.TxStatus() != 'I' {
		t.Errorf("after the error the client is told transaction status %c, want I (out of the transaction)", inTx.TxStatus())
	}
	// Out of the failed transaction: its next one runs, on the new
	// primary. Simple protocol: now() = statement_timestamp() only
	// outside a transaction block.
	res, err := inTx.Exec(ctx, where+", (now() = statement_timestamp())::text").ReadAll()
	if err != nil {
		t.Fatalf("the next transaction: %v", err)
	}
	row := res[0].Rows[0]
	if string(row[0]) != b.port("pgB") || string(row[1]) != "false" || string(row[2]) != "true" {
		t.Errorf("the next transaction: port %s, in recovery %s, in a transaction block %v; want pgB's port %s, a fresh transaction",
			row[0], row[1], string(row[2]) != "true", b.port("pgB"))
	}
	if err := execSimple(ctx, inTx, "BEGIN; SELECT 1; COMMIT"); err != nil {
		t.Errorf("a transaction block after the error: %v", err)
	}

	// The client between transactions: no error, the new primary.
	if row, err := query(ctx, between, where); err != nil || row[0] != b.port("pgB") {
		t.Errorf("a client idle between transactions: %v, %v; want no error and pgB's port %s", row, err, b.port("pgB"))
	}

	// The server abandoned in its transaction is closed on pgA.
	sc := superConn(t, ctx)
	testbed.Eventually(t, 10*time.Second, "the abandoned server "+pid+" to close", func() bool {
		return mustQuery(t, ctx, sc, "SELECT count(*)::text FROM pg_stat_activity WHERE pid = "+pid)[0] == "0"
	})
}

// While there is no leader, a pooled transaction waits leader_wait and
// then gets 57P03, and the client keeps its connection; when a leader
// appears within leader_wait, the waiting transaction runs on it.
func TestPooledNoLeader(t *testing.T) {
	needPG(t)
	b := startKeyBed(t)
	ctx := testCtx(t)
	const leaderWait = 3 * time.Second
	px := b.start(t, leaderWait.String(), "pgA")
	c := connect(t, ctx, px.dsn("tx", testbed.UserTrust))
	mustQuery(t, ctx, c, "SELECT 1")

	b.lead(t, "")
	testbed.Eventually(t, 10*time.Second, "Switchyard to see no leader", func() bool {
		_, ok := px.Router.Snapshot().Primary()
		return !ok
	})
	start := time.Now()
	_, err := query(ctx, c, "SELECT 1")
	took := time.Since(start)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "57P03" || !strings.Contains(pe.Message, `no primary server is available for listener "tx"`) {
		t.Fatalf("a transaction with no leader: %v; want 57P03 saying no primary is available", err)
	}
	if took < leaderWait-100*time.Millisecond || took > leaderWait+5*time.Second {
		t.Errorf("57P03 came after %s; want it after leader_wait (%s)", took.Round(time.Millisecond), leaderWait)
	}
	if c.IsClosed() {
		t.Fatal("the client was disconnected")
	}

	// A leader appears while the next transaction waits: it runs there.
	type result struct {
		row []string
		err error
	}
	done := make(chan result, 1)
	go func() {
		row, err := query(ctx, c, "SELECT inet_server_port()::text")
		done <- result{row, err}
	}()
	testbed.Eventually(t, leaderWait/2, "the transaction to wait for a leader", func() bool {
		return px.Stats("tx").Waiting.Load() == 1
	})
	b.lead(t, "pgB")
	r := <-done
	if r.err != nil || r.row[0] != b.port("pgB") {
		t.Fatalf("a transaction waiting when pgB became leader: %v, %v; want it run on pgB (port %s)", r.row, r.err, b.port("pgB"))
	}
}
