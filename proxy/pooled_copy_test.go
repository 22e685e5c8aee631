package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// Integration tests of COPY through a transaction-pooled listener.

// pooledTable creates a table sy_scram may use, dropped at the end.
func pooledTable(t *testing.T, name, cols string) {
	t.Helper()
	ctx := context.Background()
	if err := pg.Nodes[0].Exec(ctx, "DROP TABLE IF EXISTS "+name, "CREATE TABLE "+name+" ("+cols+")",
		"GRANT ALL ON "+name+" TO "+testbed.UserSCRAM); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Nodes[0].Exec(context.Background(), "DROP TABLE IF EXISTS "+name) })
}

func count(t *testing.T, ctx context.Context, c *pgconn.PgConn, table string) int {
	t.Helper()
	n, err := strconv.Atoi(mustQuery(t, ctx, c, "SELECT count(*) FROM "+table)[0])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// COPY FROM STDIN and TO STDOUT through tx, between other queries, in
// transactions, and failing.
func TestPooledCopy(t *testing.T) {
	needPG(t)
	ctx := testCtx(t)
	pooledTable(t, "pooled_copy", "id int, t text")
	px := poolSetup{pool: "default_pool_size = 1"}.start(t)
	c := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))
	other := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))

	var in bytes.Buffer
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&in, "%d\trow %d %s\n", i, i, strings.Repeat("x", i%50))
	}
	mustQuery(t, ctx, c, "SELECT 1")
	tag, err := c.CopyFrom(ctx, bytes.NewReader(in.Bytes()), "COPY pooled_copy FROM STDIN")
	if err != nil || tag.RowsAffected() != 5000 {
		t.Fatalf("CopyFrom: %v %v", tag, err)
	}
	if n := count(t, ctx, other, "pooled_copy"); n != 5000 {
		t.Fatalf("count %d", n)
	}
	var out bytes.Buffer
	if _, err := c.CopyTo(ctx, &out, "COPY (SELECT * FROM pooled_copy ORDER BY id) TO STDOUT"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), in.Bytes()) {
		t.Fatalf("CopyTo: %d bytes, want %d", out.Len(), in.Len())
	}
	mustQuery(t, ctx, c, "SELECT 1")

	// In a transaction rolled back.
	mustQuery(t, ctx, c, "BEGIN")
	if _, err := c.CopyFrom(ctx, strings.NewReader("1\ta\n2\tb\n"), "COPY pooled_copy FROM STDIN"); err != nil {
		t.Fatal(err)
	}
	if n := count(t, ctx, c, "pooled_copy"); n != 5002 {
		t.Fatalf("in the transaction: count %d", n)
	}
	mustQuery(t, ctx, c, "ROLLBACK")
	if n := count(t, ctx, other, "pooled_copy"); n != 5000 {
		t.Fatalf("after ROLLBACK: count %d", n)
	}

	// Bad data: the COPY fails, nothing is inserted, the client goes on.
	_, err = c.CopyFrom(ctx, strings.NewReader("1\ta\nnot-a-number\tb\n"), "COPY pooled_copy FROM STDIN")
	if sqlState(err) != "22P02" {
		t.Fatalf("bad COPY data: %v, want 22P02", err)
	}
	if c.TxStatus() != 'I' {
		t.Fatalf("TxStatus %c", c.TxStatus())
	}
	if n := count(t, ctx, other, "pooled_copy"); n != 5000 {
		t.Fatalf("after failed COPY: count %d", n)
	}
	// COPY the server refuses at once (no such table).
	if _, err := c.CopyFrom(ctx, strings.NewReader("1\n"), "COPY no_such_table FROM STDIN"); sqlState(err) != "42P01" {
		t.Fatalf("COPY into no table: %v", err)
	}
	mustQuery(t, ctx, c, "SELECT 1")
	mustQuery(t, ctx, other, "SELECT 1")

	// Concurrent COPY from several clients on the pool of 1.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		cc := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < 5; r++ {
				if _, err := cc.CopyFrom(ctx, strings.NewReader("-1\tc\n-1\td\n"), "COPY pooled_copy FROM STDIN"); err != nil {
					errs <- err
					return
				}
				var o bytes.Buffer
				if _, err := cc.CopyTo(ctx, &o, "COPY (SELECT 1) TO STDOUT"); err != nil || o.String() != "1\n" {
					errs <- fmt.Errorf("CopyTo: %q %v", o.String(), err)
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
	if n := count(t, ctx, other, "pooled_copy"); n != 5040 {
		t.Fatalf("after concurrent COPY: count %d, want 5040", n)
	}
}
