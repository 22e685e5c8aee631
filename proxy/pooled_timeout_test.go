package proxy_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// Integration tests of the idle timeouts of a transaction-pooled
// listener.

// receiveError waits for an unsolicited ErrorResponse (or the error a
// read fails with) and returns its SQLSTATE.
func receiveError(ctx context.Context, c *pgconn.PgConn) (string, error) {
	for {
		msg, err := c.ReceiveMessage(ctx)
		if err != nil {
			if st := sqlState(err); st != "" {
				return st, nil
			}
			return "", err
		}
		if e, ok := msg.(*pgproto3.ErrorResponse); ok {
			return e.Code, nil
		}
	}
}

// idle_transaction_timeout and client_idle_timeout end idle clients
// with 25P03 and 57P05; the server is not left stuck.
func TestPooledIdleTimeouts(t *testing.T) {
	needPG(t)
	t.Run("idle_transaction_timeout", func(t *testing.T) {
		ctx := testCtx(t)
		pooledTable(t, "pooled_idle_tx", "id int")
		px := poolSetup{pool: "default_pool_size = 1\nidle_transaction_timeout = \"500ms\"\nquery_wait_timeout = \"5s\""}.start(t)
		a := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))
		b := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))
		// Not idle: a long query in a transaction is not cut.
		mustQuery(t, ctx, a, "BEGIN")
		mustQuery(t, ctx, a, "SELECT pg_sleep(1)")
		mustQuery(t, ctx, a, "INSERT INTO pooled_idle_tx VALUES (1)")
		start := time.Now()
		st, err := receiveError(ctx, a)
		if err != nil || st != "25P03" {
			t.Fatalf("idle in transaction: %q %v, want 25P03", st, err)
		}
		if d := time.Since(start); d < 400*time.Millisecond || d > 3*time.Second {
			t.Errorf("ended after %s", d)
		}
		if _, err := query(ctx, a, "SELECT 1"); err == nil {
			t.Errorf("the connection is still usable")
		}
		row := mustQuery(t, ctx, b, "SELECT (txid_current_if_assigned() IS NULL)::text, (SELECT count(*) FROM pooled_idle_tx)::text")
		if row[0] != "true" || row[1] != "0" {
			t.Errorf("after the timeout, the next client sees %v", row)
		}
	})
	t.Run("client_idle_timeout", func(t *testing.T) {
		ctx := testCtx(t)
		px := poolSetup{pool: "default_pool_size = 1\nclient_idle_timeout = \"500ms\""}.start(t)
		a := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))
		mustQuery(t, ctx, a, "SELECT pg_sleep(1)") // busy is not idle
		mustQuery(t, ctx, a, "SELECT 1")
		start := time.Now()
		st, err := receiveError(ctx, a)
		if err != nil || st != "57P05" {
			t.Fatalf("idle between transactions: %q %v, want 57P05", st, err)
		}
		if d := time.Since(start); d < 400*time.Millisecond || d > 3*time.Second {
			t.Errorf("ended after %s", d)
		}
		b := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))
		mustQuery(t, ctx, b, "SELECT 1")
	})
}

// Diagnostic for TestPooledIdleTimeouts: the same idle client, but with
// one extra message (a lone Flush) sent after the last answer arrived,
// so that Switchyard's next client read starts while the client is
// already idle.
func TestPooledIdleTimeoutsAfterFlush(t *testing.T) {
	needPG(t)
	sendFlush := func(t *testing.T, c *pgconn.PgConn) {
		c.Frontend().Send(&pgproto3.Flush{})
		if err := c.Frontend().Flush(); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("idle_transaction_timeout", func(t *testing.T) {
		ctx := testCtx(t)
		px := poolSetup{pool: "default_pool_size = 1\nidle_transaction_timeout = \"500ms\""}.start(t)
		a := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))
		mustQuery(t, ctx, a, "BEGIN")
		sendFlush(t, a)
		st, err := receiveError(ctx, a)
		if err != nil || st != "25P03" {
			t.Fatalf("idle in transaction: %q %v, want 25P03", st, err)
		}
	})
	t.Run("client_idle_timeout", func(t *testing.T) {
		ctx := testCtx(t)
		px := poolSetup{pool: "default_pool_size = 1\nclient_idle_timeout = \"500ms\""}.start(t)
		a := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))
		mustQuery(t, ctx, a, "SELECT 1")
		sendFlush(t, a)
		st, err := receiveError(ctx, a)
		if err != nil || st != "57P05" {
			t.Fatalf("idle between transactions: %q %v, want 57P05", st, err)
		}
	})
}
