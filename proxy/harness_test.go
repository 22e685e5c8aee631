package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// pg is the real PostgreSQL cluster (primary pg1, replicas pg2 and pg3,
// TLS on) shared by this package's integration tests.
var pg *testbed.PGCluster

func TestMain(m *testing.M) {
	os.Exit(testbed.MainWithPG(m, testbed.PGOptions{Replicas: 2, TLS: true}, &pg))
}

func needPG(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs PostgreSQL (run without -short)")
	}
}

// setup is what a test changes in the standard config.
type setup struct {
	roFallback string // default "primary"
	extra      string // appended TOML ([tls], ...)
	limits     string // lines of [limits]
	members    string // replaces the cluster members
	roBalance  string
	leaderWait string // default 5s
}

func (s setup) toml() string {
	members := s.members
	if members == "" {
		members = fmt.Sprintf(`{ name = "pg1", address = %q, role = "primary" },
  { name = "pg2", address = %q, role = "replica" },
  { name = "pg3", address = %q, role = "replica" },`, pg.Nodes[0].Addr(), pg.Nodes[1].Addr(), pg.Nodes[2].Addr())
	}
	fallback := s.roFallback
	if fallback == "" {
		fallback = "primary"
	}
	balance := s.roBalance
	if balance == "" {
		balance = "round-robin"
	}
	leaderWait := s.leaderWait
	if leaderWait == "" {
		leaderWait = "5s"
	}
	return fmt.Sprintf(`
[cluster]
name = "test"
discovery = "static"
leader_wait = %q
[cluster.static]
check_interval = "100ms"
members = [
  %s
]

[[listener]]
name = "rw"
address = "127.0.0.1:0"
role = "primary"

[[listener]]
name = "ro"
address = "127.0.0.1:0"
role = "replica"
balance = %q
fallback = %q

[limits]
connect_timeout = "2s"
%s
%s
`, leaderWait, members, balance, fallback, s.limits, s.extra)
}

// proxyUnderTest is a Switchyard from the standard config.
type proxyUnderTest struct {
	*testbed.Yard
}

func (p *proxyUnderTest) addr(listener string) string { return p.Address(listener) }

func (p *proxyUnderTest) dsn(listener, user string) string { return p.DSN(listener, user) }

// sessionLines returns the session-end log lines ("session=N" attribute).
func (p *proxyUnderTest) sessionLines() []string { return p.Log.Matching(" session=") }

func (p *proxyUnderTest) stop() { p.Stop() }

func startProxy(t *testing.T, s setup) *proxyUnderTest {
	t.Helper()
	return &proxyUnderTest{testbed.StartYard(t, "switchyard", s.toml())}
}

func connect(t *testing.T, ctx context.Context, dsn string) *pgconn.PgConn {
	t.Helper()
	conn, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// query returns the first row's columns as text.
func query(ctx context.Context, conn *pgconn.PgConn, sql string) ([]string, error) {
	res := conn.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, res.Err
	}
	if len(res.Rows) == 0 {
		return nil, nil
	}
	var out []string
	for _, c := range res.Rows[0] {
		out = append(out, string(c))
	}
	return out, nil
}

func mustQuery(t *testing.T, ctx context.Context, conn *pgconn.PgConn, sql string) []string {
	t.Helper()
	row, err := query(ctx, conn, sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return row
}

// sqlState returns the SQLSTATE of a PostgreSQL error, "" otherwise.
func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// serveLoopback listens on 127.0.0.1 and runs handle for each connection
// in its own goroutine, closing the connection afterwards. The listener
// and every handler are gone when the test ends.
func serveLoopback(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}
