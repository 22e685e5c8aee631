package proxy_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// Integration tests of failures around a transaction-pooled listener:
// cancels, clients that vanish and servers killed while idle.

// CancelRequest through tx cancels the client's own query, and nothing
// when the client is between transactions.
func TestPooledCancel(t *testing.T) {
	needPG(t)
	t.Run("running query", func(t *testing.T) {
		ctx := testCtx(t)
		px := poolSetup{pool: "default_pool_size = 2"}.start(t)
		a := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))
		sc := superConn(t, ctx)
		if a.PID() < 1<<23 {
			t.Errorf("tx client given PID %d, want a fake one >= 2^23", a.PID())
		}
		for _, inTx := range []bool{false, true} {
			if inTx {
				mustQuery(t, ctx, a, "BEGIN")
			}
			const sql = "SELECT pg_sleep(10)"
			done := make(chan error, 1)
			start := time.Now()
			go func() {
				_, err := query(ctx, a, sql)
				done <- err
			}()
			waitRunning(t, ctx, sc, sql)
			if err := a.CancelRequest(ctx); err != nil {
				t.Fatal(err)
			}
			if err := <-done; sqlState(err) != "57014" {
				t.Fatalf("cancelled pg_sleep (in tx %v): %v, want 57014", inTx, err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("cancel took %s", d)
			}
			if inTx {
				mustQuery(t, ctx, a, "ROLLBACK")
			}
			mustQuery(t, ctx, a, "SELECT 1")
		}
	})
	t.Run("between transactions", func(t *testing.T) {
		ctx := testCtx(t)
		px := poolSetup{pool: "default_pool_size = 1"}.start(t)
		a := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))
		b := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))
		sc := superConn(t, ctx)
		apid := backendPID(t, ctx, a) // A last used the one server
		const sql = "SELECT pg_backend_pid()::text, pg_sleep(1.5)::text"
		done := make(chan error, 1)
		start := time.Now()
		var bpid string
		go func() {
			res, err := query(ctx, b, sql)
			if err == nil {
				bpid = res[0]
			}
			done <- err
		}()
		waitRunning(t, ctx, sc, sql)
		if err := a.CancelRequest(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("B's query, on the server A last used, after A's cancel: %v", err)
		}
		if d := time.Since(start); d < 1500*time.Millisecond {
			t.Fatalf("B's pg_sleep(1.5) took %s", d)
		}
		if bpid != apid {
			t.Logf("note: B ran on %s, A last on %s", bpid, apid)
		}
	})
	t.Run("fake PID terminates nothing", func(t *testing.T) {
		ctx := testCtx(t)
		px := poolSetup{pool: "default_pool_size = 1"}.start(t)
		a := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))
		sc := superConn(t, ctx)
		if got := mustQuery(t, ctx, sc, fmt.Sprintf("SELECT pg_terminate_backend(%d)::text", a.PID()))[0]; got != "false" {
			t.Errorf("pg_terminate_backend(fake PID) = %s", got)
		}
		mustQuery(t, ctx, a, "SELECT 1")
	})
}

// A client that vanishes in a transaction leaves no dirty server: the
// next client (pool of 1) is not in a transaction and the INSERT did not
// commit.
func TestPooledClientVanishes(t *testing.T) {
	needPG(t)
	for _, tc := range []struct {
		name  string
		sql   string // sent as one Query, not waited for
		reply bool   // wait for its answer before vanishing
	}{
		{"idle in transaction", "BEGIN; INSERT INTO pooled_vanish VALUES (1)", true},
		{"mid-query", "BEGIN; INSERT INTO pooled_vanish VALUES (1); SELECT pg_sleep(5)", false},
		{"mid extended batch", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			pooledTable(t, "pooled_vanish", "id int")
			px := poolSetup{pool: "default_pool_size = 1\nquery_wait_timeout = \"10s\""}.start(t)
			a := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))
			b := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))
			sc := superConn(t, ctx)
			sent := tc.sql // the last statement PostgreSQL is sent
			if tc.sql == "" {
				sent = "INSERT INTO pooled_vanish VALUES (2)"
				mustQuery(t, ctx, a, "BEGIN")
				mustQuery(t, ctx, a, "INSERT INTO pooled_vanish VALUES (1)")
				fe := a.Frontend()
				fe.SendParse(&pgproto3.Parse{Query: sent})
				fe.SendBind(&pgproto3.Bind{})
				fe.SendExecute(&pgproto3.Execute{})
				if err := fe.Flush(); err != nil {
					t.Fatal(err)
				}
			} else if tc.reply {
				mustExec(t, ctx, a, tc.sql)
			} else {
				a.Frontend().Send(&pgproto3.Query{String: tc.sql})
				if err := a.Frontend().Flush(); err != nil {
					t.Fatal(err)
				}
			}
			if !tc.reply {
				waitRunning(t, ctx, sc, sent) // the proxy forwarded it
			}
			a.Conn().Close()
			start := time.Now()
			// Simple protocol: now() = statement_timestamp() only outside a transaction block.
			res, err := b.Exec(ctx, "SELECT (txid_current_if_assigned() IS NULL)::text, (now() = statement_timestamp())::text, (SELECT count(*) FROM pooled_vanish)::text").ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			var row []string
			for _, v := range res[0].Rows[0] {
				row = append(row, string(v))
			}
			if row[0] != "true" || row[1] != "true" {
				t.Errorf("next client is in a transaction: %v", row)
			}
			if row[2] != "0" {
				t.Errorf("vanished client's INSERT visible: %s rows", row[2])
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("next client waited %s", d)
			}
			if mustQuery(t, ctx, sc, "SELECT count(*)::text FROM pooled_vanish")[0] != "0" {
				t.Errorf("INSERT committed")
			}
			mustQuery(t, ctx, b, "SELECT 1")
		})
	}
}

// backendsOf lists user's client backends on the primary.
func backendsOf(t *testing.T, ctx context.Context, sc *pgconn.PgConn, user string) []string {
	t.Helper()
	res := sc.ExecParams(ctx, "SELECT pid::text FROM pg_stat_activity WHERE usename = $1 AND backend_type = 'client backend' ORDER BY pid",
		[][]byte{[]byte(user)}, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	var out []string
	for _, r := range res.Rows {
		out = append(out, string(r[0]))
	}
	return out
}

// A server terminated while idle in the pool is never handed out: the
// next query succeeds.
func TestPooledIdleServerKilled(t *testing.T) {
	needPG(t)
	for _, tc := range []struct{ name, pool string }{
		{"default server_check_delay", ""},
		{"server_check_delay 0s", "server_check_delay = \"0s\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			px := poolSetup{pool: "default_pool_size = 1\n" + tc.pool}.start(t)
			a := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))
			sc := superConn(t, ctx)
			for round := 0; round < 2; round++ {
				pid := backendPID(t, ctx, a)
				if got := backendsOf(t, ctx, sc, testbed.UserSCRAM); len(got) != 1 || got[0] != pid {
					t.Fatalf("backends of %s: %v; want just %s", testbed.UserSCRAM, got, pid)
				}
				if got := mustQuery(t, ctx, sc, "SELECT pg_terminate_backend("+pid+", 5000)::text")[0]; got != "true" {
					t.Fatalf("pg_terminate_backend: %s", got)
				}
				testbed.Eventually(t, 10*time.Second, "the terminated backend to go", func() bool {
					return len(backendsOf(t, ctx, sc, testbed.UserSCRAM)) == 0
				})
				// Both protocols, alternately.
				var err error
				var row []string
				if round == 0 {
					row, err = query(ctx, a, "SELECT pg_backend_pid()::text")
				} else {
					var res []*pgconn.Result
					res, err = a.Exec(ctx, "SELECT pg_backend_pid()::text").ReadAll()
					if err == nil {
						row = []string{string(res[0].Rows[0][0])}
					}
				}
				if err != nil {
					t.Fatalf("round %d: query after the idle server %s was terminated: %v", round, pid, err)
				}
				if row[0] == pid {
					t.Fatalf("still on terminated backend %s?", pid)
				}
			}
		})
	}
}

// waitRunning waits until PostgreSQL runs sql for a client of the proxy
// (it is the active statement of one of UserSCRAM's backends): the proxy
// has forwarded it.
func waitRunning(t *testing.T, ctx context.Context, sc *pgconn.PgConn, sql string) {
	t.Helper()
	testbed.Eventually(t, 5*time.Second, "PostgreSQL to run "+sql, func() bool {
		res := sc.ExecParams(ctx, "SELECT count(*)::text FROM pg_stat_activity WHERE usename = $1 AND state = 'active' AND query = $2",
			[][]byte{[]byte(testbed.UserSCRAM), []byte(sql)}, nil, nil, nil).Read()
		return res.Err == nil && len(res.Rows) == 1 && string(res.Rows[0][0]) != "0"
	})
}
