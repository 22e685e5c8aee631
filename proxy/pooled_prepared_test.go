package proxy_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
	"github.com/switchyard-proxy/switchyard/proxy"
)

// Protocol-level prepared statements through transaction pooling: the
// cases that broke other poolers, each run message by message against
// PostgreSQL directly and through Switchyard, whose answers must be the
// same, while Switchyard's servers change under the client.

// wire drives a logged-in connection one protocol message at a time.
type wire struct {
	t  *testing.T
	c  *pgconn.PgConn
	fe *pgproto3.Frontend
}

func dialProtocol(t *testing.T, ctx context.Context, dsn string) *wire {
	c := connect(t, ctx, dsn)
	return &wire{t: t, c: c, fe: c.Frontend()}
}

func (w *wire) send(msgs ...pgproto3.FrontendMessage) {
	w.t.Helper()
	for _, m := range msgs {
		w.fe.Send(m)
	}
	if err := w.fe.Flush(); err != nil {
		w.t.Fatalf("send: %v", err)
	}
}

// read returns the next answers, one word each, until the z-th
// ReadyForQuery or, with z == 0, the n-th message.
func (w *wire) read(z, n int) []string {
	w.t.Helper()
	w.c.Conn().SetReadDeadline(time.Now().Add(10 * time.Second))
	defer w.c.Conn().SetReadDeadline(time.Time{})
	var out []string
	for (z > 0 && z > countPrefix(out, "Z:")) || (z == 0 && len(out) < n) {
		m, err := w.fe.Receive()
		if err != nil {
			w.t.Fatalf("after %q: %v", out, err)
		}
		switch m := m.(type) {
		case *pgproto3.ParseComplete:
			out = append(out, "parsed")
		case *pgproto3.BindComplete:
			out = append(out, "bound")
		case *pgproto3.CloseComplete:
			out = append(out, "closed")
		case *pgproto3.ParameterDescription:
			out = append(out, fmt.Sprintf("params:%d", len(m.ParameterOIDs)))
		case *pgproto3.RowDescription:
			out = append(out, fmt.Sprintf("cols:%d", len(m.Fields)))
		case *pgproto3.NoData:
			out = append(out, "nodata")
		case *pgproto3.DataRow:
			var v []string
			for _, f := range m.Values {
				v = append(v, string(f))
			}
			out = append(out, "row:"+strings.Join(v, ","))
		case *pgproto3.CommandComplete:
			out = append(out, "C:"+string(m.CommandTag))
		case *pgproto3.ErrorResponse:
			out = append(out, "E:"+m.Code+" "+m.Message)
		case *pgproto3.ReadyForQuery:
			out = append(out, "Z:"+string(m.TxStatus))
		case *pgproto3.CopyInResponse:
			out = append(out, "copyin")
		case *pgproto3.EmptyQueryResponse:
			out = append(out, "empty")
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		default:
			out = append(out, fmt.Sprintf("%T", m))
		}
	}
	return out
}

func countPrefix(s []string, p string) (n int) {
	for _, x := range s {
		if strings.HasPrefix(x, p) {
			n++
		}
	}
	return n
}

// Message shorthands.
func parseMsg(name, sql string) *pgproto3.Parse { return &pgproto3.Parse{Name: name, Query: sql} }
func bindMsg(stmt string, args ...string) *pgproto3.Bind {
	b := &pgproto3.Bind{PreparedStatement: stmt}
	for _, a := range args {
		b.Parameters = append(b.Parameters, []byte(a))
	}
	return b
}

var (
	execMsg  = &pgproto3.Execute{}
	syncM    = &pgproto3.Sync{}
	flushM   = &pgproto3.Flush{}
	describe = func(name string) *pgproto3.Describe { return &pgproto3.Describe{ObjectType: 'S', Name: name} }
	closeS   = func(name string) *pgproto3.Close { return &pgproto3.Close{ObjectType: 'S', Name: name} }
	queryM   = func(sql string) *pgproto3.Query { return &pgproto3.Query{String: sql} }
)

// step is one exchange of a scenario.
type step struct {
	send  []pgproto3.FrontendMessage
	z, n  int    // read until the z-th ReadyForQuery, or n messages
	fresh bool   // before it, Switchyard's idle servers are replaced, so that the client's next request lands on a server that has none of its statements
	admin string // before it, run as superuser on the primary
	who   int    // which client (of two) sends it
}

func ex(z int, msgs ...pgproto3.FrontendMessage) step { return step{send: msgs, z: z} }

// run plays steps on clients a and b; fresh calls reconnect.
func (sc scenario) run(t *testing.T, ctx context.Context, clients [2]*wire, reconnect func()) []string {
	var out []string
	for i, s := range sc.steps {
		if s.admin != "" {
			if err := pg.Nodes[0].Exec(ctx, s.admin); err != nil {
				t.Fatalf("%s: %v", s.admin, err)
			}
		}
		if s.fresh && reconnect != nil {
			reconnect()
		}
		if len(s.send) == 0 {
			continue
		}
		w := clients[s.who]
		w.send(s.send...)
		got := w.read(s.z, s.n)
		out = append(out, fmt.Sprintf("%d/%c: %s", i, 'a'+s.who, strings.Join(got, " ")))
	}
	return out
}

type scenario struct {
	name  string
	setup string // SQL run as superuser before the scenario
	pool  string // more [pool] lines
	steps []step
	// want, when set, is the transcript through Switchyard where it must
	// differ from PostgreSQL's own (a schema change).
	want []string
}

var preparedScenarios = []scenario{
	{name: "statement follows the client to a new server", steps: []step{
		ex(1, parseMsg("s1", "SELECT $1::int + 1"), syncM),
		{send: msgs(bindMsg("s1", "41"), execMsg, syncM), z: 1, fresh: true},
		{send: msgs(describe("s1"), bindMsg("s1", "1"), execMsg, syncM), z: 1, fresh: true},
		ex(1, parseMsg("", "SELECT 7"), syncM),
		{send: msgs(bindMsg(""), execMsg, syncM), z: 1, fresh: true},
		ex(1, describe("nope"), syncM),
		ex(1, bindMsg("nope"), execMsg, syncM),
	}},
	{name: "DEALLOCATE ALL pipelined before a Parse", steps: []step{
		ex(1, parseMsg("d1", "SELECT 1"), syncM),
		ex(2, queryM("DEALLOCATE ALL"), parseMsg("d1", "SELECT 2"), bindMsg("d1"), execMsg, syncM),
		{send: msgs(bindMsg("d1"), execMsg, syncM), z: 1},
		{send: msgs(bindMsg("d1"), execMsg, syncM), z: 1, fresh: true},
	}},
	{name: "DISCARD ALL pipelined before a Parse", steps: []step{
		ex(1, parseMsg("d1", "SELECT 1"), parseMsg("d2", "SELECT 10"), syncM),
		ex(2, queryM("DISCARD ALL"), parseMsg("d1", "SELECT 2"), bindMsg("d1"), execMsg, syncM),
		ex(1, bindMsg("d2"), execMsg, syncM),
		ex(1, bindMsg("d1"), execMsg, syncM),
	}},
	{name: "Close and Parse of a name in one batch without Sync", steps: []step{
		ex(1, parseMsg("c1", "SELECT 1"), syncM),
		ex(1, closeS("c1"), parseMsg("c1", "SELECT 2"), bindMsg("c1"), execMsg, closeS("c1"), parseMsg("c1", "SELECT 3"), bindMsg("c1"), execMsg, syncM),
		{send: msgs(bindMsg("c1"), execMsg, syncM), z: 1, fresh: true},
		ex(1, closeS("c1"), closeS("never"), syncM),
		ex(1, bindMsg("c1"), execMsg, syncM),
	}},
	{name: "Describe and Flush without Sync", steps: []step{
		ex(1, parseMsg("f1", "SELECT 1 AS a, 2 AS b"), syncM),
		{send: msgs(describe("f1"), flushM), n: 2, fresh: true},
		{send: msgs(bindMsg("f1"), execMsg, flushM), n: 3},
		ex(1, syncM),
		// b prepares a statement a's server already has: its Parse is
		// answered by Switchyard, without a server, or, inside a
		// transaction, in its turn, and a Flush must bring that answer.
		{send: msgs(parseMsg("f2", "SELECT 1 AS a, 2 AS b"), flushM), n: 1, who: 1},
		{send: msgs(closeS("f2"), flushM), n: 1, who: 1},
		{send: msgs(syncM), z: 1, who: 1},
		{send: msgs(queryM("BEGIN")), z: 1, who: 1},
		{send: msgs(parseMsg("f2", "SELECT 1 AS a, 2 AS b"), flushM), n: 1, who: 1},
		{send: msgs(closeS("f2"), flushM), n: 1, who: 1},
		{send: msgs(parseMsg("f3", "SELECT 1 AS a, 2 AS b"), describe("f3"), flushM), n: 3, who: 1},
		{send: msgs(syncM, queryM("COMMIT")), z: 2, who: 1},
	}},
	{name: "error in the middle of a pipeline", steps: []step{
		ex(2, parseMsg("e1", "SELECT 1"), bindMsg("e1"), execMsg, parseMsg("e2", "SELEC 2"), bindMsg("e2"), execMsg,
			parseMsg("e3", "SELECT 3"), bindMsg("e3"), execMsg, closeS("e1"), syncM, parseMsg("e4", "SELECT 4"), bindMsg("e4"), execMsg, syncM),
		ex(1, bindMsg("e1"), execMsg, syncM),
		ex(1, bindMsg("e3"), execMsg, syncM),
		ex(1, bindMsg("e2"), execMsg, syncM),
		{send: msgs(bindMsg("e4"), execMsg, syncM), z: 1, fresh: true},
		ex(2, queryM("BEGIN"), parseMsg("e5", "SELECT 5"), bindMsg("e5"), execMsg, bindMsg("e1"), execMsg, parseMsg("e6", "SELECT 6"), syncM),
		ex(1, queryM("ROLLBACK")),
		ex(1, bindMsg("e6"), execMsg, syncM),
	}},
	{name: "COPY FROM STDIN between prepared executions", setup: "DROP TABLE IF EXISTS ps_copy; CREATE TABLE ps_copy (x int); GRANT ALL ON ps_copy TO " + testbed.UserSCRAM,
		steps: []step{
			ex(1, parseMsg("i1", "INSERT INTO ps_copy VALUES ($1)"), bindMsg("i1", "1"), execMsg, syncM),
			{send: msgs(queryM("COPY ps_copy FROM STDIN")), n: 1},
			ex(1, &pgproto3.CopyData{Data: []byte("2\n3\n")}, &pgproto3.CopyDone{}),
			{send: msgs(bindMsg("i1", "4"), execMsg, syncM), z: 1, fresh: true},
			ex(1, parseMsg("cp", "COPY ps_copy FROM STDIN"), bindMsg("cp"), execMsg, &pgproto3.CopyData{Data: []byte("5\n")}, &pgproto3.CopyDone{}, syncM),
			ex(2, bindMsg("i1", "6"), execMsg, syncM, queryM("SELECT sum(x) FROM ps_copy")),
		}},
	{name: "a failed Parse", steps: []step{
		ex(1, parseMsg("p1", "SELEC 1"), syncM),
		ex(1, bindMsg("p1"), execMsg, syncM),
		ex(1, parseMsg("p1", "SELECT 1"), syncM),
		ex(1, parseMsg("p1", "SELECT 2"), syncM),
		ex(1, bindMsg("p1"), execMsg, syncM),
		ex(1, parseMsg("p2", "SELECT 1"), syncM),
		ex(1, parseMsg("p2", "SELECT 1"), bindMsg("p2"), execMsg, syncM),
		ex(1, bindMsg("p2"), execMsg, syncM),
		ex(1, parseMsg("p3", "SELECT * FROM no_such_table"), bindMsg("p3"), execMsg, syncM),
	}},
	{name: "eviction from a full server cache", pool: "max_prepared_statements = 2", steps: []step{
		ex(1, parseMsg("v1", "SELECT 1"), syncM),
		ex(1, parseMsg("v2", "SELECT 2"), syncM),
		ex(1, parseMsg("v3", "SELECT 3"), syncM),
		ex(1, bindMsg("v1"), execMsg, syncM),
		ex(3, bindMsg("v2"), execMsg, syncM, bindMsg("v3"), execMsg, syncM, bindMsg("v1"), execMsg, syncM),
		ex(1, bindMsg("v3"), execMsg, bindMsg("v1"), execMsg, bindMsg("v2"), execMsg, syncM),
		ex(1, parseMsg("v4", "SELECT 4"), bindMsg("v4"), execMsg, bindMsg("v2"), execMsg, syncM),
		ex(1, queryM("SELECT count(*) <= 4 FROM pg_prepared_statements")),
	}},
	{name: "one name, two clients, two texts", steps: []step{
		ex(1, parseMsg("same", "SELECT 'a'"), syncM),
		{send: msgs(parseMsg("same", "SELECT 'b'"), syncM), z: 1, who: 1},
		ex(1, bindMsg("same"), execMsg, syncM),
		{send: msgs(bindMsg("same"), execMsg, syncM), z: 1, who: 1},
		{send: msgs(closeS("same"), syncM), z: 1, who: 1},
		ex(1, bindMsg("same"), execMsg, syncM),
		{send: msgs(parseMsg("same", "SELECT 'a'"), bindMsg("same"), execMsg, syncM), z: 1, who: 1},
	}},
	{name: "a name in use", steps: []step{
		ex(1, parseMsg("u1", "SELECT 1"), syncM),
		ex(1, parseMsg("u1", "SELECT 2"), syncM),
		{send: msgs(parseMsg("u1", "SELECT 1"), bindMsg("u1"), execMsg, syncM), z: 1, fresh: true},
		ex(1, bindMsg("u1"), execMsg, syncM),
	}},
	{name: "SQL DEALLOCATE of a protocol statement", steps: []step{
		ex(1, parseMsg("pdo_stmt_1", "SELECT 1"), syncM),
		ex(1, queryM("DEALLOCATE pdo_stmt_1")),
		ex(1, bindMsg("pdo_stmt_1"), execMsg, syncM),
		ex(1, parseMsg("pdo_stmt_1", "SELECT 2"), syncM),
		{send: msgs(queryM("DEALLOCATE PREPARE pdo_stmt_1")), z: 1, fresh: true},
		ex(1, parseMsg("pdo_stmt_1", "SELECT 3"), bindMsg("pdo_stmt_1"), execMsg, syncM),
		ex(1, queryM("DEALLOCATE nosuch")),
	}},
	{name: "inside a transaction block", steps: []step{
		ex(1, queryM("BEGIN")),
		ex(1, parseMsg("t1", "SELECT 1"), bindMsg("t1"), execMsg, syncM),
		ex(1, parseMsg("t2", "SELECT 2"), closeS("t1"), syncM),
		ex(1, bindMsg("t2"), execMsg, syncM),
		ex(1, queryM("COMMIT")),
		{send: msgs(bindMsg("t2"), execMsg, syncM), z: 1, fresh: true},
	}},
	{name: "schema change between executions",
		setup: "DROP TABLE IF EXISTS ps_schema; CREATE TABLE ps_schema (a int); INSERT INTO ps_schema VALUES (1); GRANT ALL ON ps_schema TO " + testbed.UserSCRAM,
		steps: []step{
			ex(1, parseMsg("sc", "SELECT * FROM ps_schema"), bindMsg("sc"), execMsg, syncM),
			{send: msgs(bindMsg("sc"), execMsg, syncM), z: 1, who: 1, admin: ""},
			{send: msgs(parseMsg("sc", "SELECT * FROM ps_schema"), bindMsg("sc"), execMsg, syncM), z: 1, who: 1},
			{send: msgs(bindMsg("sc"), execMsg, syncM), z: 1, admin: "ALTER TABLE ps_schema ADD COLUMN b int DEFAULT 2"},
			ex(1, bindMsg("sc"), execMsg, syncM),
			{send: msgs(bindMsg("sc"), execMsg, syncM), z: 1, who: 1},
			{send: msgs(bindMsg("sc"), execMsg, syncM), z: 1, who: 1},
		},
		// PostgreSQL's own sessions fail for good; through Switchyard each
		// client meets the error once, as a driver does, and then runs on
		// a statement prepared afresh.
		want: []string{
			"0/a: parsed bound row:1 C:SELECT 1 Z:I",
			"1/b: E:26000 prepared statement \"sc\" does not exist Z:I",
			"2/b: parsed bound row:1 C:SELECT 1 Z:I",
			"3/a: E:0A000 cached plan must not change result type Z:I",
			"4/a: bound row:1,2 C:SELECT 1 Z:I",
			"5/b: E:0A000 cached plan must not change result type Z:I",
			"6/b: bound row:1,2 C:SELECT 1 Z:I",
		}},
}

func msgs(m ...pgproto3.FrontendMessage) []pgproto3.FrontendMessage { return m }

func TestPooledPreparedStatements(t *testing.T) {
	needPG(t)
	for _, sc := range preparedScenarios {
		t.Run(sc.name, func(t *testing.T) {
			ctx := testCtx(t)
			reset := func() {
				if sc.setup != "" {
					if err := pg.Nodes[0].Exec(ctx, sc.setup); err != nil {
						t.Fatal(err)
					}
				}
			}
			var want []string
			if sc.want != nil {
				want = sc.want
			} else {
				reset()
				dsn := pg.Nodes[0].DSN(testbed.UserSCRAM)
				want = sc.run(t, ctx, [2]*wire{dialProtocol(t, ctx, dsn), dialProtocol(t, ctx, dsn)}, nil)
			}
			reset()
			// A pool of 1: both clients share one server, unless a step
			// replaces it.
			px := poolSetup{pool: "default_pool_size = 1\n" + sc.pool}.start(t)
			dsn := px.dsn("tx", testbed.UserSCRAM)
			srv := px.Pools()
			got := sc.run(t, ctx, [2]*wire{dialProtocol(t, ctx, dsn), dialProtocol(t, ctx, dsn)}, func() { srv.Reconnect(proxy.Target{}, "") })
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("through tx:\n%s\nwant (PostgreSQL):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}
