package proxy_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// Integration tests of the protocol through a transaction-pooled
// listener: pipelines and Flush.

// Pipeline steps: SQL, or one of these.
const (
	stepSync  = "<sync>"
	stepFlush = "<flush>" // a Flush message (SendFlushRequest)
)

// pipelineTranscript runs steps in one pgconn pipeline and returns what
// came back, one line per result.
func pipelineTranscript(ctx context.Context, c *pgconn.PgConn, steps []string) ([]string, error) {
	p := c.StartPipeline(ctx)
	for _, s := range steps {
		switch s {
		case stepSync:
			p.SendPipelineSync()
		case stepFlush:
			p.SendFlushRequest()
		default:
			p.SendQueryParams(s, nil, nil, nil, nil)
		}
	}
	if err := p.Flush(); err != nil {
		return nil, err
	}
	var out []string
	for i := 0; i < 100; i++ {
		res, err := p.GetResults()
		if err != nil {
			if st := sqlState(err); st != "" {
				out = append(out, "error "+st)
				continue
			}
			return out, err
		}
		if res == nil {
			break
		}
		switch r := res.(type) {
		case *pgconn.ResultReader:
			rr := r.Read()
			if rr.Err != nil {
				out = append(out, "error "+sqlState(rr.Err))
				continue
			}
			var vals []string
			for _, row := range rr.Rows {
				vals = append(vals, string(row[0]))
			}
			out = append(out, rr.CommandTag.String()+" "+strings.Join(vals, ","))
		case *pgconn.PipelineSync:
			out = append(out, "sync")
		default:
			out = append(out, fmt.Sprintf("%T", res))
		}
	}
	return out, p.Close()
}

// Pipelines through tx give what PostgreSQL itself gives: results in
// order, an error for the failing statement only, its batch skipped up
// to the Sync, and transactions spanning Syncs.
func TestPooledPipeline(t *testing.T) {
	needPG(t)
	for _, tc := range []struct {
		name  string
		steps []string
	}{
		{"syncs", []string{"SELECT 1", stepSync, "SELECT 2", "SELECT 3", stepSync, "SELECT 4", stepSync}},
		{"error in the middle", []string{"SELECT 1", stepSync, "SELECT 2", "SELECT 1/(random() < 2)::int / 0", "SELECT 3", stepSync, "SELECT 4", stepSync}},
		{"parse error", []string{"SELECT 1", stepSync, "SELEKT 2", "SELECT 3", stepSync, "SELECT 4", stepSync}},
		{"transaction across syncs", []string{"BEGIN", stepSync, "SELECT 1", stepSync, "SELECT (txid_current_if_assigned() IS NULL)::int", stepSync,
			"SELECT 1/(random() < 2)::int / 0", stepSync, "SELECT 5", stepSync, "ROLLBACK", stepSync, "SELECT 6", stepSync}},
		{"flush requests", []string{"SELECT 1", stepFlush, "SELECT 2", stepFlush, stepSync, "SELECT 3", stepSync}},
		{"implicit transaction", []string{"SELECT 1", "SELECT 2", "SELECT 1/(random() < 2)::int / 0", stepSync, "SELECT (txid_current_if_assigned() IS NULL)::int", stepSync}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			direct := connect(t, ctx, pg.Nodes[0].DSN(testbed.UserSCRAM))
			want, err := pipelineTranscript(ctx, direct, tc.steps)
			if err != nil {
				t.Fatalf("direct: %v (%q)", err, want)
			}
			px := poolSetup{pool: "default_pool_size = 1"}.start(t)
			c := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))
			other := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))
			for i := 0; i < 3; i++ {
				got, err := pipelineTranscript(ctx, c, tc.steps)
				if err != nil {
					t.Fatalf("through tx: %v (%q)", err, got)
				}
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Fatalf("through tx:\n%s\nPostgreSQL:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
				if c.TxStatus() != 'I' {
					t.Fatalf("TxStatus %c after the pipeline", c.TxStatus())
				}
				// The pool of 1 is free again.
				mustQuery(t, ctx, other, "SELECT 1")
			}
		})
	}
}

// Many clients pipelining at once on a pool of 2 each get their own
// results, in order.
func TestPooledPipelineConcurrent(t *testing.T) {
	needPG(t)
	ctx := testCtx(t)
	px := poolSetup{pool: "default_pool_size = 2"}.start(t)
	const clients, rounds = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		c := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				var steps, want []string
				for k := 0; k < 3; k++ {
					v := strconv.Itoa(i*10000 + r*10 + k)
					steps = append(steps, "SELECT "+v, stepSync)
					want = append(want, "SELECT 1 "+v, "sync")
				}
				if r%4 == 0 {
					steps = append(steps, "SELECT 1/(random() < 2)::int / 0", "SELECT 0", stepSync, "SELECT -1", stepSync)
					want = append(want, "error 22012", "sync", "SELECT 1 -1", "sync")
				}
				got, err := pipelineTranscript(ctx, c, steps)
				if err != nil {
					errs <- fmt.Errorf("client %d round %d: %v", i, r, err)
					return
				}
				if strings.Join(got, "|") != strings.Join(want, "|") {
					errs <- fmt.Errorf("client %d round %d: got %q, want %q", i, r, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A Flush without Sync gets the results so far; the server stays the
// client's until the Sync.
func TestPooledFlushWithoutSync(t *testing.T) {
	needPG(t)
	ctx := testCtx(t)
	px := poolSetup{pool: "default_pool_size = 1\nquery_wait_timeout = \"500ms\""}.start(t)
	c := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))
	other := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))

	// A lone Flush while no server is attached is harmless.
	fe := c.Frontend()
	fe.Send(&pgproto3.Flush{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	mustQuery(t, ctx, c, "SELECT 1")

	p := c.StartPipeline(ctx)
	p.SendQueryParams("SELECT 42", nil, nil, nil, nil)
	p.SendFlushRequest()
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	res, err := p.GetResults()
	if err != nil {
		t.Fatal(err)
	}
	rr, ok := res.(*pgconn.ResultReader)
	if !ok {
		t.Fatalf("got %T", res)
	}
	if r := rr.Read(); r.Err != nil || len(r.Rows) != 1 || string(r.Rows[0][0]) != "42" {
		t.Fatalf("SELECT 42 before Sync: %v %v", r.Err, r.Rows)
	}
	// Still the client's server: another client waits and gives up.
	if _, err := query(ctx, other, "SELECT 1"); sqlState(err) != "53300" {
		t.Errorf("another client while the batch is open on a pool of 1: %v, want 53300", err)
	}
	p.SendQueryParams("SELECT 43", nil, nil, nil, nil)
	p.SendFlushRequest()
	p.Flush()
	if res, err = p.GetResults(); err != nil {
		t.Fatal(err)
	}
	if r := res.(*pgconn.ResultReader).Read(); r.Err != nil || string(r.Rows[0][0]) != "43" {
		t.Fatalf("SELECT 43: %v %v", r.Err, r.Rows)
	}
	if err := p.Sync(); err != nil {
		t.Fatal(err)
	}
	if res, err = p.GetResults(); err != nil {
		t.Fatal(err)
	}
	if _, ok := res.(*pgconn.PipelineSync); !ok {
		t.Fatalf("got %T, want PipelineSync", res)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	mustQuery(t, ctx, other, "SELECT 1")
	mustQuery(t, ctx, c, "SELECT 1")
}
