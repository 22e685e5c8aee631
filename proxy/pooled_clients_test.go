package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// The real-client matrix: each client library or tool, several
// connections at once, through the transaction-pooled listener with
// fewer servers than clients, the session-pooled one and the relay. Each
// runs the same kind of workload: prepared or named statements executed
// many times with different parameters (so, in transaction mode, on
// different servers), transactions committed and rolled back, and checks
// of every result; the programs live in testdata/clients. A client that
// is not installed fails the test: `make deps` installs them all.
// pgbench has its own test (pooled_pgbench_test.go).

const (
	clientWorkers = 8 // connections of each client at once
	clientPool    = 4 // tx's default_pool_size: fewer servers than clients
	// A client's workload, per connection: rounds of clientCalls
	// executions of a statement, then a transaction inserting clientRows
	// rows.
	clientRounds = 3
	clientCalls  = 10
	clientRows   = 5
)

// clientListeners run in this order: tx first, so that PostgreSQL has no
// server of the session pool or the relay when tx's are counted.
var clientListeners = []string{"tx", "sess", "rw"}

const (
	clientAddSQL    = "SELECT $1::int + $2::int"
	clientInsertSQL = "INSERT INTO clients_kv (tag, worker, i, v) VALUES ($1, $2, $3, $4)"
	clientCountSQL  = "SELECT count(*) FROM clients_kv WHERE tag = $1 AND worker = $2"
)

// clientRun is one client's run through one listener; its rows in
// clients_kv carry tag.
type clientRun struct {
	px         *proxyUnderTest
	listener   string
	host, port string
	tag        string
}

// realClient is one client of the matrix. run runs clientWorkers
// connections and fails t on any error; each leaves rows rows per
// connection in clients_kv.
type realClient struct {
	name string
	rows int
	run  func(t *testing.T, ctx context.Context, r clientRun)
}

var realClients = []realClient{
	{"pgx-simple", clientRounds * clientRows, pgxClient(pgxStatements, pgx.QueryExecModeSimpleProtocol)},
	{"pgx-exec", clientRounds * clientRows, pgxClient(pgxStatements, pgx.QueryExecModeExec)},
	{"pgx-describe", clientRounds * clientRows, pgxClient(pgxStatements, pgx.QueryExecModeDescribeExec)},
	{"pgx-cache", clientRounds * clientRows, pgxClient(pgxStatements, pgx.QueryExecModeCacheStatement)},
	{"pgx-batch", clientRounds * clientRows, pgxClient(pgxBatch, pgx.QueryExecModeCacheStatement)},
	{"pgx-pipeline", clientRounds * clientRows, pgxClient(pgxPipeline, pgx.QueryExecModeCacheStatement)},
	{"pgx-copy", clientRounds * clientRows, pgxClient(pgxCopy, pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec)},
	{"psql", 5, psqlClient},
	{"jdbc", clientRounds * clientRows, jdbcClient},
	{"psycopg2", clientRounds * clientRows, psycopg2Client},
	{"asyncpg", clientRounds * clientRows, asyncpgClient()},
	{"asyncpg-pool", clientRounds * clientRows, asyncpgClient("--pool")},
	{"node-pg", clientRounds * clientRows, nodeClient},
}

func TestPooledClients(t *testing.T) {
	needPG(t)
	pooledTable(t, "clients_kv", "tag text, worker int, i int, v text, PRIMARY KEY (tag, worker, i)")
	waitNoBackends(t, testbed.UserSCRAM)
	// The [listener.pool] is the last [[listener]]'s, sess: a server for
	// each of its clients, as session mode needs.
	px := poolSetup{
		pool:  fmt.Sprintf("default_pool_size = %d\nquery_wait_timeout = \"10s\"", clientPool),
		extra: fmt.Sprintf("[listener.pool]\ndefault_pool_size = %d", clientWorkers+2),
	}.start(t)
	for _, ln := range clientListeners {
		host, port, _ := net.SplitHostPort(px.addr(ln))
		for _, c := range realClients {
			t.Run(ln+"/"+c.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
				defer cancel()
				r := clientRun{px: px, listener: ln, host: host, port: port, tag: ln + "/" + c.name}
				most := sampleWhile(t, testbed.UserSCRAM)
				c.run(t, ctx, r)
				n := most()
				if ln == "tx" && (n > clientPool || n == 0) {
					t.Errorf("PostgreSQL saw up to %d connections of %s; the pool allows %d", n, testbed.UserSCRAM, clientPool)
				}
				if n := taggedRows(t, ctx, r.tag); n != c.rows*clientWorkers {
					t.Errorf("%d rows tagged %s, want %d", n, r.tag, c.rows*clientWorkers)
				}
			})
		}
	}
}

// sampleWhile runs sampleBackends for user until the function it returns
// is called, which returns the most connections seen. If the test fails
// first, it stops at the test's end.
func sampleWhile(t *testing.T, user string) func() int {
	ctx, cancel := context.WithCancel(context.Background())
	most := make(chan int, 1)
	go func() { most <- sampleBackends(ctx, t, user) }()
	var once sync.Once
	n := -1
	stop := func() int {
		once.Do(func() { cancel(); n = <-most })
		return n
	}
	t.Cleanup(func() { stop() })
	return stop
}

// taggedRows counts clients_kv's rows with tag, on the primary.
func taggedRows(t *testing.T, ctx context.Context, tag string) int {
	t.Helper()
	c, err := pgconn.Connect(ctx, pg.Nodes[0].DSN(testbed.UserSuper))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	res := c.ExecParams(ctx, "SELECT count(*) FROM clients_kv WHERE tag = $1", [][]byte{[]byte(tag)}, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	n, _ := strconv.Atoi(string(res.Rows[0][0]))
	return n
}

// waitNoBackends waits until PostgreSQL has no connection of user left
// from earlier tests, whose servers close as their Switchyard stops.
func waitNoBackends(t *testing.T, user string) {
	t.Helper()
	ctx := testCtx(t)
	sc := superConn(t, ctx)
	testbed.Eventually(t, 10*time.Second, "no connections of "+user, func() bool {
		return mustQuery(t, ctx, sc, "SELECT count(*) FROM pg_stat_activity WHERE usename = '"+user+"'")[0] == "0"
	})
}

// needFile fails the test when path, which `make deps` installs, is
// missing.
func needFile(t *testing.T, path, what string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is not installed (%v): run `make deps` (scripts/deps.sh)", what, err)
	}
}

// needCommand returns the path of the command name, failing the test
// when it is missing.
func needCommand(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed (%v): run `make deps` (scripts/deps.sh)", name, err)
	}
	return p
}

// runProgram runs a client program of testdata/clients with the run's
// connection arguments after args, and fails t unless it exits 0 saying
// "ok TAG WORKERS workers".
func runProgram(t *testing.T, ctx context.Context, r clientRun, env []string, name string, args ...string) {
	t.Helper()
	args = append(args, r.host, r.port, testbed.UserSCRAM, testbed.Password, testbed.DefaultDB, r.tag, strconv.Itoa(clientWorkers))
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = filepath.Join("testdata", "clients")
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v after %s\n%s", name, strings.Join(args, " "), err, time.Since(start).Round(time.Millisecond), out)
	}
	want := fmt.Sprintf("ok %s %d workers", r.tag, clientWorkers)
	if !strings.Contains(string(out), want) {
		t.Fatalf("%s: output lacks %q:\n%s", name, want, out)
	}
}

func jdbcClient(t *testing.T, ctx context.Context, r clientRun) {
	java := needCommand(t, "java")
	needFile(t, "/usr/share/java/postgresql.jar", "pgjdbc (Debian libpostgresql-jdbc-java)")
	// C1 only: a short run compiles less.
	runProgram(t, ctx, r, nil, java, "-XX:TieredStopAtLevel=1", "-cp", "/usr/share/java/postgresql.jar", "jdbc/Clients.java")
}

// debianPython is the Python that Debian's python3-* packages are for
// (not a pyenv's python3 earlier on PATH).
const debianPython = "/usr/bin/python3"

func psycopg2Client(t *testing.T, ctx context.Context, r clientRun) {
	needFile(t, debianPython, "Debian's python3")
	needFile(t, "/usr/lib/python3/dist-packages/psycopg2", "psycopg2 (Debian python3-psycopg2)")
	runProgram(t, ctx, r, nil, debianPython, "psycopg2_client.py")
}

// asyncpgClient runs testdata/clients/asyncpg_client.py with flags.
func asyncpgClient(flags ...string) func(*testing.T, context.Context, clientRun) {
	return func(t *testing.T, ctx context.Context, r clientRun) {
		needFile(t, debianPython, "Debian's python3")
		needFile(t, "/usr/lib/python3/dist-packages/asyncpg", "asyncpg (Debian python3-asyncpg)")
		runProgram(t, ctx, r, nil, debianPython, append([]string{"asyncpg_client.py"}, flags...)...)
	}
}

func nodeClient(t *testing.T, ctx context.Context, r clientRun) {
	node := needCommand(t, "node")
	mods := testbed.NodeModules()
	needFile(t, filepath.Join(mods, "pg", "package.json"), "node-postgres pg@"+testbed.NodePGVersion)
	runProgram(t, ctx, r, []string{"NODE_PATH=" + mods}, node, "node_client.js")
}

// psqlClient runs clientWorkers psql at once, each the script
// testdata/clients/psql_client.sql, and compares their output.
func psqlClient(t *testing.T, ctx context.Context, r clientRun) {
	psql := needCommand(t, "psql")
	var wg sync.WaitGroup
	errs := make([]error, clientWorkers)
	for w := range clientWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.CommandContext(ctx, psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
				"-v", "tag="+r.tag, "-v", "worker="+strconv.Itoa(w), "-f", filepath.Join("testdata", "clients", "psql_client.sql"),
				"-h", r.host, "-p", r.port, "-U", testbed.UserSCRAM, testbed.DefaultDB)
			cmd.Env = append(os.Environ(), "PGPASSWORD="+testbed.Password, "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=10")
			cmd.WaitDelay = 5 * time.Second
			out, err := cmd.CombinedOutput()
			want := fmt.Sprintf("42\n%d\n5\n5\n1,2,3,4,5\n3\n", w*10)
			if err != nil {
				errs[w] = fmt.Errorf("psql %d: %v\n%s", w, err, out)
			} else if string(out) != want {
				errs[w] = fmt.Errorf("psql %d printed\n%s\nwant\n%s", w, out, want)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// pgxWork is connection w's share of a pgx client's workload. After its
// first round it calls meet, which waits for every connection to get
// there: all are then open and have prepared their statements, and go on
// at once, more than the pool has servers.
type pgxWork func(ctx context.Context, c *pgx.Conn, tag string, w int, meet func() error) error

// barrier is where n workers wait for each other. A worker that gives up
// arrives too, so that the others do not wait for it.
type barrier struct {
	mu   sync.Mutex
	left int
	all  chan struct{}
}

func newBarrier(n int) *barrier { return &barrier{left: n, all: make(chan struct{})} }

func (b *barrier) arrive() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.left--; b.left == 0 {
		close(b.all)
	}
}

// meet returns worker's meet function, and a function that makes it
// arrive if it has not yet.
func (b *barrier) meet(ctx context.Context) (meet func() error, leave func()) {
	var once sync.Once
	leave = func() { once.Do(b.arrive) }
	meet = func() error {
		leave()
		select {
		case <-b.all:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("waiting for the other connections: %w", context.Cause(ctx))
		}
	}
	return meet, leave
}

// pgxClient runs work on clientWorkers pgx connections at once; the
// connections take turns at the modes as their default query exec mode.
func pgxClient(work pgxWork, modes ...pgx.QueryExecMode) func(*testing.T, context.Context, clientRun) {
	return func(t *testing.T, ctx context.Context, r clientRun) {
		cfg, err := pgx.ParseConfig(r.px.dsn(r.listener, testbed.UserSCRAM))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, clientWorkers)
		all := newBarrier(clientWorkers)
		for w := range clientWorkers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				meet, leave := all.meet(ctx)
				defer leave()
				cfg := cfg.Copy()
				cfg.DefaultQueryExecMode = modes[w%len(modes)]
				c, err := pgx.ConnectConfig(ctx, cfg)
				if err != nil {
					errs[w] = fmt.Errorf("connection %d: %w", w, err)
					return
				}
				defer c.Close(context.Background())
				if err := work(ctx, c, r.tag, w, meet); err != nil {
					errs[w] = fmt.Errorf("connection %d: %w", w, err)
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
	}
}

func expectInt(what string, got, want int) error {
	if got != want {
		return fmt.Errorf("%s: got %d, want %d", what, got, want)
	}
	return nil
}

// pgxStatements runs statements in the connection's exec mode: one with
// different parameters each time, a transaction of inserts, one rolled
// back.
func pgxStatements(ctx context.Context, c *pgx.Conn, tag string, w int, meet func() error) error {
	for r := range clientRounds {
		for i := range clientCalls {
			var sum int
			if err := c.QueryRow(ctx, clientAddSQL, w, r*clientCalls+i).Scan(&sum); err != nil {
				return fmt.Errorf("sum: %w", err)
			}
			if err := expectInt("sum", sum, w+r*clientCalls+i); err != nil {
				return err
			}
		}
		err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			for k := range clientRows {
				if _, err := tx.Exec(ctx, clientInsertSQL, tag, w, r*clientRows+k, "pgx"); err != nil {
					return fmt.Errorf("insert: %w", err)
				}
			}
			return countIs(ctx, tx, "count in transaction", tag, w, (r+1)*clientRows)
		})
		if err != nil {
			return err
		}
		tx, err := c.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, clientInsertSQL, tag, w, 1000+r, "rolled back"); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		if err := tx.Rollback(ctx); err != nil {
			return err
		}
		if err := countIs(ctx, c, "count after rollback", tag, w, (r+1)*clientRows); err != nil {
			return err
		}
		if r == 0 {
			if err := meet(); err != nil {
				return err
			}
		}
	}
	return nil
}

// countIs checks the number of rows of worker w.
func countIs(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, what, tag string, w, want int) error {
	var n int
	if err := q.QueryRow(ctx, clientCountSQL, tag, w).Scan(&n); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return expectInt(what, n, want)
}

// pgxBatch sends the workload as batches (SendBatch): statements cached
// and prepared on first use, a batch inside a transaction, one whose
// transaction rolls back.
func pgxBatch(ctx context.Context, c *pgx.Conn, tag string, w int, meet func() error) error {
	for r := range clientRounds {
		b := &pgx.Batch{}
		for i := range clientCalls {
			want := w + r*clientCalls + i
			b.Queue(clientAddSQL, w, r*clientCalls+i).QueryRow(func(row pgx.Row) error {
				var sum int
				if err := row.Scan(&sum); err != nil {
					return err
				}
				return expectInt("sum", sum, want)
			})
		}
		if err := c.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("batch of sums: %w", err)
		}
		err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			b := &pgx.Batch{}
			for k := range clientRows {
				b.Queue(clientInsertSQL, tag, w, r*clientRows+k, "batch")
			}
			b.Queue(clientCountSQL, tag, w).QueryRow(func(row pgx.Row) error {
				var n int
				if err := row.Scan(&n); err != nil {
					return err
				}
				return expectInt("count in transaction", n, (r+1)*clientRows)
			})
			return tx.SendBatch(ctx, b).Close()
		})
		if err != nil {
			return fmt.Errorf("batch in a transaction: %w", err)
		}
		b = &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue(clientInsertSQL, tag, w, 1000+r, "rolled back")
		b.Queue("ROLLBACK")
		b.Queue(clientCountSQL, tag, w).QueryRow(func(row pgx.Row) error {
			var n int
			if err := row.Scan(&n); err != nil {
				return err
			}
			return expectInt("count after rollback", n, (r+1)*clientRows)
		})
		if err := c.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("batch rolled back: %w", err)
		}
		if r == 0 {
			if err := meet(); err != nil {
				return err
			}
		}
	}
	return nil
}

// pgxPipeline prepares named statements in a pgconn pipeline and runs
// them in later pipelines, several Syncs each (so several transactions,
// on any server); at the end it closes one and prepares its name again
// for another statement.
func pgxPipeline(ctx context.Context, c *pgx.Conn, tag string, w int, meet func() error) error {
	pc := c.PgConn()
	arg := func(vs ...any) [][]byte {
		var out [][]byte
		for _, v := range vs {
			out = append(out, []byte(fmt.Sprint(v)))
		}
		return out
	}
	for r := range clientRounds {
		p := pc.StartPipeline(ctx)
		var want []string
		if r == 0 {
			p.SendPrepare("clients_add", clientAddSQL, nil)
			p.SendPrepare("clients_insert", clientInsertSQL, nil)
			p.SendPrepare("clients_count", clientCountSQL, nil)
			p.SendPipelineSync()
			want = append(want, "prepared", "prepared", "prepared", "sync")
		}
		for i := range clientCalls {
			p.SendQueryPrepared("clients_add", arg(w, r*clientCalls+i), nil, nil)
			p.SendPipelineSync()
			want = append(want, strconv.Itoa(w+r*clientCalls+i), "sync")
		}
		p.SendQueryParams("BEGIN", nil, nil, nil, nil)
		want = append(want, "BEGIN")
		for k := range clientRows {
			p.SendQueryPrepared("clients_insert", arg(tag, w, r*clientRows+k, "pipeline"), nil, nil)
			want = append(want, "INSERT 0 1")
		}
		p.SendQueryPrepared("clients_count", arg(tag, w), nil, nil)
		p.SendQueryParams("COMMIT", nil, nil, nil, nil)
		p.SendPipelineSync()
		want = append(want, strconv.Itoa((r+1)*clientRows), "COMMIT", "sync")
		p.SendQueryParams("BEGIN", nil, nil, nil, nil)
		p.SendQueryPrepared("clients_insert", arg(tag, w, 1000+r, "rolled back"), nil, nil)
		p.SendQueryParams("ROLLBACK", nil, nil, nil, nil)
		p.SendPipelineSync()
		p.SendQueryPrepared("clients_count", arg(tag, w), nil, nil)
		p.SendPipelineSync()
		want = append(want, "BEGIN", "INSERT 0 1", "ROLLBACK", "sync", strconv.Itoa((r+1)*clientRows), "sync")
		if err := expectPipeline(p, want); err != nil {
			return fmt.Errorf("round %d: %w", r, err)
		}
		if r == 0 {
			if err := meet(); err != nil {
				return err
			}
		}
	}
	p := pc.StartPipeline(ctx)
	p.SendDeallocate("clients_add")
	p.SendPrepare("clients_add", "SELECT $1::int - $2::int", nil)
	p.SendPipelineSync()
	p.SendQueryPrepared("clients_add", arg(w, 1), nil, nil)
	p.SendPipelineSync()
	if err := expectPipeline(p, []string{"closed", "prepared", "sync", strconv.Itoa(w - 1), "sync"}); err != nil {
		return fmt.Errorf("prepared again: %w", err)
	}
	return nil
}

// expectPipeline flushes p, reads its results and closes it: each
// result, as a line of want, is "prepared", "closed", "sync", a row's
// first column, or a command tag.
func expectPipeline(p *pgconn.Pipeline, want []string) error {
	if err := p.Flush(); err != nil {
		p.Close()
		return err
	}
	var got []string
	for range want {
		res, err := p.GetResults()
		if err != nil {
			p.Close()
			return fmt.Errorf("after %q: %w", got, err)
		}
		switch res := res.(type) {
		case *pgconn.StatementDescription:
			got = append(got, "prepared")
		case *pgconn.CloseComplete:
			got = append(got, "closed")
		case *pgconn.PipelineSync:
			got = append(got, "sync")
		case *pgconn.ResultReader:
			rr := res.Read()
			switch {
			case rr.Err != nil:
				p.Close()
				return fmt.Errorf("after %q: %w", got, rr.Err)
			case len(rr.Rows) > 0:
				got = append(got, string(rr.Rows[0][0]))
			default:
				got = append(got, rr.CommandTag.String())
			}
		default:
			got = append(got, fmt.Sprintf("%T", res))
		}
	}
	if err := p.Close(); err != nil {
		return err
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		return fmt.Errorf("pipeline results\n%q\nwant\n%q", got, want)
	}
	return nil
}

// pgxCopy loads rows with CopyFrom, which first describes the table in
// the connection's mode (a cached named statement, or unnamed): in a
// transaction, in one of its own, and one that
// fails on a duplicate key, after which the connection goes on.
func pgxCopy(ctx context.Context, c *pgx.Conn, tag string, w int, meet func() error) error {
	cols := []string{"tag", "worker", "i", "v"}
	rows := func(is ...int) pgx.CopyFromSource {
		var out [][]any
		for _, i := range is {
			out = append(out, []any{tag, w, i, "copy"})
		}
		return pgx.CopyFromRows(out)
	}
	for r := range clientRounds {
		err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			var is []int
			for k := range clientRows {
				is = append(is, r*clientRows+k)
			}
			n, err := tx.CopyFrom(ctx, pgx.Identifier{"clients_kv"}, cols, rows(is...))
			if err != nil {
				return fmt.Errorf("copy: %w", err)
			}
			if err := expectInt("copied", int(n), clientRows); err != nil {
				return err
			}
			return countIs(ctx, tx, "count in transaction", tag, w, (r+1)*clientRows)
		})
		if err != nil {
			return err
		}
		if _, err := c.CopyFrom(ctx, pgx.Identifier{"clients_kv"}, cols, rows(1000+r)); err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		_, err = c.CopyFrom(ctx, pgx.Identifier{"clients_kv"}, cols, rows(2000+r, 2000+r))
		if sqlState(err) != "23505" {
			return fmt.Errorf("copy of a duplicate key: %v, want 23505", err)
		}
		if _, err := c.Exec(ctx, "DELETE FROM clients_kv WHERE tag = $1 AND worker = $2 AND i = $3", tag, w, 1000+r); err != nil {
			return fmt.Errorf("delete: %w", err)
		}
		if err := countIs(ctx, c, "count after copies", tag, w, (r+1)*clientRows); err != nil {
			return err
		}
		if r == 0 {
			if err := meet(); err != nil {
				return err
			}
		}
	}
	return nil
}
