package app_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// reloadConfig is a transaction-pooled listener "tx" of size pool on a
// static primary, and the extra listeners given.
func reloadConfig(primary string, pool int, extra string) string {
	return fmt.Sprintf(`[admin]
listen = "127.0.0.1:0"
[cluster]
name = "demo"
[cluster.static]
members = [{ name = "pg1", address = %q, role = "primary" }]
[auth]
type = "trust"
[pool]
default_pool_size = %d
query_wait_timeout = "30s"
[[listener]]
name = "tx"
address = "127.0.0.1:0"
role = "primary"
pool_mode = "transaction"
%s`, primary, pool, extra)
}

const extraListener = `[[listener]]
name = "tx2"
address = "127.0.0.1:0"
role = "primary"
pool_mode = "transaction"
`

// A reload under pgbench load grows a pool and adds a listener, and no
// client sees an error; an invalid file changes nothing and says why; a
// removed listener stops accepting and lets its sessions finish.
func TestReloadUnderLoad(t *testing.T) {
	pg := testbed.PG(t, testbed.PGOptions{})
	primary := pg.Nodes[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, filepath.Join(testbed.PGBin, "pgbench"), "-i", "-q", "-s", "1", "-h", "127.0.0.1",
		"-p", strconv.Itoa(primary.Port), "-U", testbed.UserSuper, testbed.DefaultDB).CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	y := testbed.StartYard(t, "reload", reloadConfig(primary.Addr(), 2, ""))

	_, port, _ := strings.Cut(y.Address("tx"), ":")
	bench := exec.CommandContext(ctx, filepath.Join(testbed.PGBin, "pgbench"), "-n", "-S", "-c", "8", "-j", "2", "-T", "6",
		"-h", "127.0.0.1", "-p", port, "-U", testbed.UserSuper, testbed.DefaultDB)
	var out strings.Builder
	bench.Stdout, bench.Stderr = &out, &out
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	benchDone := make(chan error, 1)
	go func() { benchDone <- bench.Wait() }()

	// Under load, with 8 clients queued on 2 servers: grow the pool to 5
	// and add a listener.
	servers := func() int {
		n := 0
		for _, s := range y.Pools().PoolStats("tx") {
			n += s.Active + s.Idle
		}
		return n
	}
	testbed.Eventually(t, 30*time.Second, "pgbench to fill the pool of 2", func() bool { return servers() == 2 })
	if err := os.WriteFile(y.ConfigPath, []byte(reloadConfig(primary.Addr(), 5, extraListener)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := y.Reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	testbed.Eventually(t, 30*time.Second, "the pool to grow past 2 servers", func() bool { return servers() > 2 })
	c, err := pgconn.Connect(ctx, y.DSN("tx2", testbed.UserSuper))
	if err != nil {
		t.Fatalf("the added listener: %v", err)
	}
	if _, err := c.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatalf("the added listener: %v", err)
	}

	// An invalid file: every error logged, nothing changes.
	bad := reloadConfig(primary.Addr(), 9, extraListener) + "[limits]\nconnect_timeout = \"soon\"\nbogus = 1\n"
	if err := os.WriteFile(y.ConfigPath, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	err = y.Reload()
	if err == nil {
		t.Fatal("an invalid file reloaded")
	}
	for _, want := range []string{`limits.connect_timeout`, `limits.bogus`} {
		if !strings.Contains(y.Log.String(), want) {
			t.Errorf("the log does not name %s:\n%s", want, y.Log.String())
		}
	}
	if got := y.Pools().Listeners()[0].Pool.Size; got != 5 {
		t.Errorf("after an invalid file the pool size is %d, want 5 (kept)", got)
	}

	select {
	case err := <-benchDone:
		if err != nil || !regexp.MustCompile(`number of failed transactions: 0 `).MatchString(out.String()) {
			t.Fatalf("pgbench across the reload: %v\n%s", err, out.String())
		}
	case <-ctx.Done():
		t.Fatal("pgbench did not finish")
	}
	if strings.Contains(strings.ToLower(out.String()), "error") {
		t.Fatalf("pgbench saw errors:\n%s", out.String())
	}

	// Removing tx2 while c is connected to it: c goes on, nobody new gets in.
	if err := os.WriteFile(y.ConfigPath, []byte(reloadConfig(primary.Addr(), 5, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	tx2 := y.Address("tx2")
	if err := y.Reload(); err != nil {
		t.Fatalf("reload removing tx2: %v", err)
	}
	if _, err := c.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatalf("a session of the removed listener: %v", err)
	}
	if nc, err := pgconn.Connect(ctx, strings.Replace(y.DSN("tx", testbed.UserSuper), "port="+port, "port="+strings.Split(tx2, ":")[1], 1)); err == nil {
		nc.Close(ctx)
		t.Fatal("the removed listener still accepts")
	}
	c.Close(ctx)
	testbed.Eventually(t, 30*time.Second, "the removed listener to drain", func() bool { return y.Addr("tx2") == nil })
	if !strings.Contains(y.Log.String(), "removed listener drained") {
		t.Errorf("no drain log line")
	}
	var reloads int
	for _, e := range y.Events.List() {
		if e.Kind == "reload" {
			reloads++
		}
	}
	if reloads < 3 {
		t.Errorf("%d reload events, want 3 (added, refused, removed)", reloads)
	}
}

// A listener a reload cannot add stays out of the running configuration,
// so the next reload adds it: whether its address was taken, or a
// removed listener of its name was still draining. Before, the reload
// kept the whole file as running: the listener never opened, and
// removing it later failed with "no listener".
func TestReloadRetriesWhatDidNotApply(t *testing.T) {
	pg := testbed.PG(t, testbed.PGOptions{})
	primary := pg.Nodes[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	y := testbed.StartYard(t, "retry", reloadConfig(primary.Addr(), 2, extraListener))
	reload := func(extra string) error {
		t.Helper()
		if err := os.WriteFile(y.ConfigPath, []byte(reloadConfig(primary.Addr(), 2, extra)), 0o600); err != nil {
			t.Fatal(err)
		}
		return y.Reload()
	}
	query := func(listener string) error {
		if y.Addr(listener) == nil {
			return fmt.Errorf("no listener %q", listener)
		}
		c, err := pgconn.Connect(ctx, y.DSN(listener, testbed.UserSuper))
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		_, err = c.Exec(ctx, "SELECT 1").ReadAll()
		return err
	}
	notApplied := func(listener, why string) {
		t.Helper()
		if len(y.Log.Matching("not applied", `\"`+listener+`\"`, why)) == 0 {
			t.Errorf("no log line says listener %s was not applied (%s):\n%s", listener, why, y.Log.String())
		}
		for _, e := range y.Events.List() {
			if e.Kind == "reload" && strings.Contains(e.Message, `"`+listener+`" not applied`) && strings.Contains(e.Message, why) {
				return
			}
		}
		t.Errorf("no reload event says listener %s was not applied (%s): %+v", listener, why, y.Events.List())
	}

	// Its address taken: not added, and added by the next reload once the
	// address is free.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tx3 := fmt.Sprintf("[[listener]]\nname = \"tx3\"\naddress = %q\nrole = \"primary\"\npool_mode = \"transaction\"\n", busy.Addr())
	if err := reload(extraListener + tx3); err == nil || !strings.Contains(err.Error(), `"tx3"`) {
		t.Fatalf("a reload adding a listener on a taken address: %v, want an error naming tx3", err)
	}
	if y.Addr("tx3") != nil {
		t.Fatal("tx3 listens on a taken address")
	}
	notApplied("tx3", "address already in use")
	busy.Close()
	if err := reload(extraListener + tx3); err != nil {
		t.Fatalf("the same file again, the address free: %v", err)
	}
	if err := query("tx3"); err != nil {
		t.Fatalf("tx3 after the second reload: %v", err)
	}

	// Its name held by a removed listener that drains: not added, and
	// added by the next reload once the old one has drained.
	held, err := pgconn.Connect(ctx, y.DSN("tx2", testbed.UserSuper))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close(ctx)
	if err := reload(tx3); err != nil {
		t.Fatalf("removing tx2: %v", err)
	}
	if err := reload(extraListener + tx3); err == nil || !strings.Contains(err.Error(), "still draining") {
		t.Fatalf("adding tx2 back while the removed tx2 drains: %v, want an error saying it drains", err)
	}
	notApplied("tx2", "still draining")
	if _, err := held.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatalf("the draining session: %v", err)
	}
	held.Close(ctx)
	testbed.Eventually(t, 30*time.Second, "the removed tx2 to drain", func() bool { return y.Addr("tx2") == nil })
	if err := reload(extraListener + tx3); err != nil {
		t.Fatalf("the same file again, tx2 drained: %v", err)
	}
	if err := query("tx2"); err != nil {
		t.Fatalf("tx2 after it was added back: %v", err)
	}
	if err := reload(tx3); err != nil {
		t.Fatalf("removing tx2 again: %v", err)
	}
	testbed.Eventually(t, 30*time.Second, "tx2 to drain again", func() bool { return y.Addr("tx2") == nil })
}

// A reload checks the open-file limit again, as the start does, and says
// what it allows against what Switchyard admits: the limit of a running
// process can change (prlimit), and listeners come and go. The limits
// admitted cannot change live, so a limit now too low is a warning that
// says so.
func TestReloadChecksDescriptors(t *testing.T) {
	pg := testbed.PG(t, testbed.PGOptions{})
	primary := pg.Nodes[0]
	limits := "[limits]\nmax_clients = 1000\nmax_startups = 100\n"
	y := testbed.StartYard(t, "fds", reloadConfig(primary.Addr(), 2, limits))
	if len(y.Log.Matching("open-file limit checked", "covers 1000 clients")) != 1 {
		t.Fatalf("the start-up log does not say the limit covers 1000 clients:\n%s", y.Log.String())
	}

	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur < 1000+100+4+64 {
		t.Skipf("the open-file limit %d is below what 1000 clients need: nothing to lower", rl.Cur)
	}
	// As `prlimit --nofile=1024 --pid` on the running process.
	low := rl
	low.Cur = 1024
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			t.Errorf("restoring the open-file limit: %v", err)
		}
	})
	if err := os.WriteFile(y.ConfigPath, []byte(reloadConfig(primary.Addr(), 2, limits+extraListener)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := y.Reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if y.Addr("tx2") == nil {
		t.Fatal("the reload did not add tx2")
	}
	// 1024 - 64 kept for the rest - 2×2 pooled servers: 100 starting
	// connections, 956-100 clients of one descriptor each (every listener
	// pools).
	warn := y.Log.Matching("level=WARN", "reload: the open-file limit is now too low", "open-file limit 1024 allows 856 clients (1 descriptor each: every listener pools)",
		"admitted_clients=1000", "listeners=2")
	if len(warn) != 1 {
		t.Errorf("no reload warning says the limit of 1024 allows 856 of the 1000 clients admitted:\n%s", y.Log.String())
	}
	var event bool
	for _, e := range y.Events.List() {
		event = event || e.Kind == "reload" && strings.Contains(e.Message, "allows 856 clients") && strings.Contains(e.Message, "admits 1000 clients")
	}
	if !event {
		t.Errorf("no reload event says what the limit allows: %+v", y.Events.List())
	}

	// The limit raised again: the next reload says it covers the clients.
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if err := y.Reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if len(y.Log.Matching("reload: open-file limit checked", "covers 1000 clients", "listeners=2")) != 1 {
		t.Errorf("the reload after the limit was raised does not say it covers the 1000 clients:\n%s", y.Log.String())
	}
}
