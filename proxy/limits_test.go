package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// Connections that have not sent a startup packet do not hold
// max_clients slots; they are bounded by max_startups instead, and
// connections over that bound are closed at once.
func TestSilentSocketsDoNotHoldClientSlots(t *testing.T) {
	needPG(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := startProxy(t, setup{limits: "max_clients = 2\nmax_startups = 5\nstartup_timeout = \"10s\""})
	var silent []net.Conn
	for range 5 {
		c, err := net.Dial("tcp", p.addr("rw"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	testbed.Eventually(t, 5*time.Second, "five connections in startup", func() bool { return p.Stats("rw").Starting.Load() == 5 })

	// Over max_startups: closed at once, without a word.
	over, err := net.Dial("tcp", p.addr("ro"))
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	over.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := over.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("a connection over max_startups: read %d, %v; want it closed at once", n, err)
	}

	// Real clients still get in up to max_clients, silent sockets or not.
	for _, c := range silent[:2] {
		c.Close()
	}
	testbed.Eventually(t, 5*time.Second, "two startup slots to free", func() bool { return p.Stats("rw").Starting.Load() == 3 })
	for i := range 2 {
		c := connect(t, ctx, p.dsn("rw", testbed.UserTrust))
		mustQuery(t, ctx, c, "SELECT 1")
		t.Logf("client %d in", i)
	}
	_, err = pgconn.Connect(ctx, p.dsn("rw", testbed.UserTrust))
	if got := sqlState(err); got != "53300" {
		t.Fatalf("a third client over max_clients = 2: %v (SQLSTATE %q), want 53300", err, got)
	}
}

// A descriptor ceiling refuses new clients and never ends live ones: the
// binary, under `ulimit -n 1024`, keeps 30 sessions through a storm of
// 1000 connections. Before, the storm took every descriptor, a health
// check could not open a socket, the member was declared down and every
// session on it ended with 57P01.
func TestDescriptorCeilingEndsNoSession(t *testing.T) {
	needPG(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin := testbed.BuildSwitchyard(t)
	dir := t.TempDir()
	rw, ro := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(dir, "storm.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
[admin]
listen = "127.0.0.1:0"
[cluster]
name = "storm"
[cluster.static]
check_interval = "100ms"
members = [
  { name = "pg1", address = %q, role = "primary" },
  { name = "pg2", address = %q, role = "replica" },
]
[[listener]]
name = "rw"
address = %q
role = "primary"
[[listener]]
name = "ro"
address = %q
role = "replica"
[limits]
startup_timeout = "15s"
client_login_timeout = "15s"
`, pg.Nodes[0].Addr(), pg.Nodes[1].Addr(), rw, ro)), 0o600)
	logs := &testbed.LogBuffer{}
	cmd := exec.Command("sh", "-c", `ulimit -n 1024 && exec "$0" -config "$1"`, bin, cfg)
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if t.Failed() {
			t.Logf("switchyard log:\n%s", logs.String())
		}
	})
	dsn := func(addr string) string {
		host, port, _ := net.SplitHostPort(addr)
		return fmt.Sprintf("host=%s port=%s user=%s dbname=postgres sslmode=disable connect_timeout=5", host, port, testbed.UserTrust)
	}
	testbed.Eventually(t, 10*time.Second, "Switchyard to listen", func() bool {
		c, err := net.Dial("tcp", ro)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	var bystanders []*pgconn.PgConn
	for i := range 30 {
		addr := rw
		if i%2 == 1 {
			addr = ro
		}
		bystanders = append(bystanders, connect(t, ctx, dsn(addr)))
	}

	// The storm: 1000 connections at once that send nothing.
	var mu sync.Mutex
	var storm []net.Conn
	var wg sync.WaitGroup
	for i := range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr := rw
			if i%2 == 1 {
				addr = ro
			}
			if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
				mu.Lock()
				storm = append(storm, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	defer func() {
		for _, c := range storm {
			c.Close()
		}
	}()
	// Health checks run every 100 ms with fall 3: two seconds is twenty
	// checks under the ceiling.
	time.Sleep(2 * time.Second)
	for i, c := range bystanders {
		if _, err := query(ctx, c, "SELECT 1"); err != nil {
			t.Fatalf("bystander %d was ended by the storm: %v", i, err)
		}
	}
	if lines := logs.String(); strings.Contains(lines, "member is unreachable") {
		t.Fatalf("a member was declared down by a storm on Switchyard's side")
	}
	if len(strings.Split(logs.String(), "open-file limit is too low")) < 2 {
		t.Errorf("the start-up log does not say what the open-file limit allows")
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
