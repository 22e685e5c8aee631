package proxy_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// Integration tests of the errors a client of a transaction-pooled
// listener gets: statement errors in a transaction, and pool exhaustion.

// An error inside a transaction reaches the client, the transaction is
// failed until ROLLBACK, then everything works and the pool of 1 is not
// stuck.
func TestPooledErrorInTransaction(t *testing.T) {
	needPG(t)
	ctx := testCtx(t)
	px := poolSetup{pool: "default_pool_size = 1\nquery_wait_timeout = \"3s\""}.start(t)
	a := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))
	b := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))
	for _, extended := range []bool{false, true} {
		run := func(sql string) error {
			if extended {
				_, err := query(ctx, a, sql)
				return err
			}
			return execSimple(ctx, a, sql)
		}
		if err := run("BEGIN"); err != nil {
			t.Fatal(err)
		}
		if err := run("SELECT 1/(random() < 2)::int / 0"); sqlState(err) != "22012" {
			t.Fatalf("extended=%v: division by zero: %v", extended, err)
		}
		if a.TxStatus() != 'E' {
			t.Fatalf("TxStatus %c, want E", a.TxStatus())
		}
		if err := run("SELECT 1"); sqlState(err) != "25P02" {
			t.Fatalf("in the failed transaction: %v, want 25P02", err)
		}
		if err := run("ROLLBACK"); err != nil {
			t.Fatal(err)
		}
		if a.TxStatus() != 'I' {
			t.Fatalf("TxStatus %c after ROLLBACK", a.TxStatus())
		}
		mustQuery(t, ctx, a, "SELECT 1")
		mustQuery(t, ctx, b, "SELECT 1")
		// Autocommit errors, and a multi-statement query failing halfway.
		if err := run("SELECT 1/(random() < 2)::int / 0"); sqlState(err) != "22012" {
			t.Fatal(err)
		}
		if err := execSimple(ctx, a, "BEGIN; SELECT 1; SELECT 1/(random() < 2)::int / 0; SELECT 2"); sqlState(err) != "22012" {
			t.Fatal(err)
		}
		if a.TxStatus() != 'E' {
			t.Fatalf("TxStatus %c after a failed multi-statement with BEGIN", a.TxStatus())
		}
		mustExec(t, ctx, a, "ROLLBACK")
		if got := mustQuery(t, ctx, b, "SELECT (txid_current_if_assigned() IS NULL)::text")[0]; got != "true" {
			t.Fatalf("B inherits a transaction")
		}
	}
}

// With the pool exhausted, a client's request fails after
// query_wait_timeout with 53300 naming the pool and the limit, and the
// client keeps its connection.
func TestPooledExhaustion(t *testing.T) {
	needPG(t)
	ctx := testCtx(t)
	px := poolSetup{pool: "default_pool_size = 1\nquery_wait_timeout = \"500ms\""}.start(t)
	a := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))
	b := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))
	mustQuery(t, ctx, a, "BEGIN")
	for _, extended := range []bool{false, true} {
		for i := 0; i < 2; i++ {
			start := time.Now()
			var err error
			if extended {
				_, err = query(ctx, b, "SELECT 1")
			} else {
				err = execSimple(ctx, b, "SELECT 1")
			}
			d := time.Since(start)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "53300" {
				t.Fatalf("extended=%v: %v, want 53300", extended, err)
			}
			if d < 450*time.Millisecond || d > 3*time.Second {
				t.Errorf("failed after %s; query_wait_timeout is 500ms", d)
			}
			for _, s := range []string{testbed.DefaultDB + "/" + testbed.UserSCRAM, "pg1", "default_pool_size = 1"} {
				if !strings.Contains(pe.Message, s) {
					t.Errorf("message %q does not name %q", pe.Message, s)
				}
			}
			if b.IsClosed() || b.TxStatus() != 'I' {
				t.Fatalf("B closed %v, TxStatus %c", b.IsClosed(), b.TxStatus())
			}
		}
	}
	// A pipeline whose first message cannot get a server: its batch is
	// skipped up to the Sync, and the rest runs once A is done.
	p := b.StartPipeline(ctx)
	p.SendQueryParams("SELECT 1", nil, nil, nil, nil)
	p.SendQueryParams("SELECT 2", nil, nil, nil, nil)
	p.SendPipelineSync()
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.GetResults(); sqlState(err) != "53300" {
		t.Fatalf("pipeline: %v", err)
	}
	for {
		res, err := p.GetResults()
		if err != nil {
			t.Fatalf("pipeline after the error: %v", err)
		}
		if _, ok := res.(*pgconn.PipelineSync); ok {
			break
		}
		if res == nil {
			t.Fatal("no PipelineSync")
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	mustQuery(t, ctx, a, "COMMIT")
	if got := mustQuery(t, ctx, b, "SELECT 7")[0]; got != "7" {
		t.Fatal(got)
	}
	mustExec(t, ctx, b, "SELECT 8")
}

// max_clients applies to pooled listeners as to relay ones: a client
// over it is refused with 53300 before it authenticates (a wrong password
// gets 53300 too), on every listener, whether the clients already in hold
// a server or sit idle between transactions; once one leaves, the next
// gets in.
func TestPooledMaxClients(t *testing.T) {
	needPG(t)
	ctx := testCtx(t)
	px := poolSetup{pool: "default_pool_size = 1", limits: "max_clients = 2"}.start(t)
	idle := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))
	mustQuery(t, ctx, idle, "SELECT 1") // between transactions: it holds no server
	held := connect(t, ctx, px.dsn("sess", testbed.UserSCRAM))
	mustQuery(t, ctx, held, "SELECT 1")

	refused := func(what, dsn string) {
		t.Helper()
		_, err := pgconn.Connect(ctx, dsn)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "53300" || !strings.Contains(pe.Message, "limits.max_clients = 2") {
			t.Errorf("%s over max_clients = 2: %v; want 53300 naming limits.max_clients", what, err)
		}
	}
	for _, ln := range []string{"tx", "sess", "rw"} {
		dsn := px.dsn(ln, testbed.UserSCRAM)
		refused("a client of "+ln, dsn)
		refused("a client of "+ln+" with a wrong password", strings.Replace(dsn, "password="+testbed.Password, "password=wrong", 1))
	}
	if _, err := query(ctx, idle, "SELECT 1"); err != nil {
		t.Errorf("a client in before the refusals: %v", err)
	}

	idle.Close(ctx)
	testbed.Eventually(t, 5*time.Second, "the client's slot to be given back", func() bool { return px.Stats("tx").Active.Load() == 0 })
	next := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))
	mustQuery(t, ctx, next, "SELECT 1")
	refused("a third client again", px.dsn("tx", testbed.UserSCRAM))
}
