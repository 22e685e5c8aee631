package proxy_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
	"github.com/switchyard-proxy/switchyard/proxy"
)

// poolSetup is a Switchyard with pooled listeners on the primary: "tx"
// (transaction) and "sess" (session), plus relay rw/ro, authenticating
// against an auth_file.
type poolSetup struct {
	authType string // default scram-sha-256
	userlist string // auth_file lines; default: every test bed user, cleartext
	pool     string // lines of [pool]
	auth     string // extra lines of [auth]
	limits   string // lines of [limits]
	extra    string
}

func (p poolSetup) start(t *testing.T) *proxyUnderTest {
	t.Helper()
	dir := t.TempDir()
	list := p.userlist
	if list == "" {
		list = fmt.Sprintf("%q %q\n%q %q\n%q %q\n%q \"\"\n", testbed.UserSCRAM, testbed.Password,
			testbed.UserMD5, testbed.Password, testbed.UserTLSOnly, testbed.Password, testbed.UserTrust)
	}
	file := filepath.Join(dir, "userlist.txt")
	if err := os.WriteFile(file, []byte(list), 0o600); err != nil {
		t.Fatal(err)
	}
	typ := p.authType
	if typ == "" {
		typ = "scram-sha-256"
	}
	s := setup{extra: fmt.Sprintf(`
[[listener]]
name = "tx"
address = "127.0.0.1:0"
role = "primary"
pool_mode = "transaction"

[[listener]]
name = "sess"
address = "127.0.0.1:0"
role = "primary"
pool_mode = "session"

[auth]
type = %q
file = %q
%s

[pool]
%s
%s
`, typ, file, p.auth, p.pool, p.extra), limits: p.limits}
	return startProxy(t, s)
}

func TestPooledSmoke(t *testing.T) {
	needPG(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	px := poolSetup{pool: "default_pool_size = 2"}.start(t)
	for _, ln := range []string{"tx", "sess"} {
		c := connect(t, ctx, px.dsn(ln, testbed.UserSCRAM))
		for i := 0; i < 3; i++ {
			row := mustQuery(t, ctx, c, "SELECT current_user, pg_is_in_recovery()::text")
			if row[0] != testbed.UserSCRAM || row[1] != "false" {
				t.Fatalf("%s: %v", ln, row)
			}
		}
		if err := c.Exec(ctx, "BEGIN; SELECT 1; COMMIT").Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// PAUSE waits for servers to go idle and holds new transactions until
// RESUME; RECONNECT replaces idle servers. The admin console calls them.
func TestPooledPauseResumeReconnect(t *testing.T) {
	needPG(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	px := poolSetup{pool: "default_pool_size = 2"}.start(t)
	srv := px.Pools()
	a := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))
	b := connect(t, ctx, px.dsn("tx", testbed.UserSCRAM))
	mustQuery(t, ctx, a, "BEGIN")

	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	err := srv.Pause(short, proxy.Target{})
	cancelShort()
	if err == nil {
		t.Fatal("PAUSE returned while a transaction held a server")
	}
	mustQuery(t, ctx, a, "COMMIT")
	if err := srv.Pause(ctx, proxy.Target{}); err != nil {
		t.Fatalf("PAUSE with every server idle: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := query(ctx, b, "SELECT 1"); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("a transaction ran while paused: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	srv.Resume(proxy.Target{})
	if err := <-done; err != nil {
		t.Fatalf("after RESUME: %v", err)
	}

	before := mustQuery(t, ctx, a, "SELECT pg_backend_pid()")[0]
	srv.Reconnect(proxy.Target{}, "")
	testbed.Eventually(t, 5*time.Second, "RECONNECT replaces the idle servers", func() bool {
		return mustQuery(t, ctx, a, "SELECT pg_backend_pid()")[0] != before
	})
}
