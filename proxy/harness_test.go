package proxy_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"

	"github.com/switchyard-proxy/switchyard/internal/app"
	"github.com/switchyard-proxy/switchyard/internal/config"
	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// pg is the real PostgreSQL cluster (primary pg1, replicas pg2 and pg3,
// TLS on) shared by this package's integration tests.
var pg *testbed.PGCluster

func TestMain(m *testing.M) {
	flag.Parse()
	if !testing.Short() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		var err error
		pg, err = testbed.StartPG(ctx, testbed.PGOptions{Replicas: 2, TLS: true})
		if err == nil {
			err = pg.WaitStreaming(ctx, pg.Nodes[0], 2)
		}
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "testbed: starting PostgreSQL (run `make deps`): %v\n", err)
			if pg != nil {
				pg.Close()
			}
			os.Exit(1)
		}
	}
	code := m.Run()
	if pg != nil {
		pg.Close()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goroutine leak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func needPG(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs PostgreSQL (run without -short)")
	}
}

// setup is what a test changes in the standard config.
type setup struct {
	roFallback      string // default "primary"
	extra           string // appended TOML ([tls], ...)
	limits          string // lines of [limits]
	members         string // replaces the cluster members
	roBalance       string
	shutdownTimeout string
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
	return fmt.Sprintf(`
[cluster]
name = "test"
discovery = "static"
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
`, members, balance, fallback, s.limits, s.extra)
}

// logBuffer collects the proxy's log lines for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimSpace(l.buf.String()), "\n")
}

// sessionLines returns the session-end log lines ("session=N" attribute).
func (l *logBuffer) sessionLines() []string {
	var out []string
	for _, line := range l.lines() {
		if strings.Contains(line, " session=") {
			out = append(out, line)
		}
	}
	return out
}

type proxyUnderTest struct {
	*app.App
	log  *logBuffer
	stop func() // cancels Run and waits for it
}

func (p *proxyUnderTest) addr(listener string) string { return p.Addr(listener).String() }

func (p *proxyUnderTest) dsn(listener, user string) string {
	a := p.Addr(listener).String()
	host, port, _ := strings.Cut(a, ":")
	return fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=postgres sslmode=disable connect_timeout=5",
		host, port, user, testbed.Password)
}

func startProxy(t *testing.T, s setup) *proxyUnderTest {
	t.Helper()
	text := s.toml()
	cfg, err := config.Load(strings.NewReader(text), "test.toml")
	if err != nil {
		t.Fatalf("config: %v\n%s", err, text)
	}
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := app.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	p := &proxyUnderTest{App: a, log: logs}
	p.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("proxy log:\n%s", strings.Join(logs.lines(), "\n"))
		}
	})
	return p
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

// eventually polls cond every 20 ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s", d, what)
		case <-tick.C:
		}
	}
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
