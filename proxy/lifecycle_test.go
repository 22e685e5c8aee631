package proxy_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
	"github.com/switchyard-proxy/switchyard/proxy"
)

// The client is given its server's real process ID: what
// pg_backend_pid() says, what pg_terminate_backend() takes, what
// NOTIFY carries. Only the secret is Switchyard's own.
func TestClientGetsTheServersPID(t *testing.T) {
	needPG(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := startProxy(t, setup{})
	for _, listener := range []string{"rw", "ro"} {
		conn := connect(t, ctx, p.dsn(listener, testbed.UserSCRAM))
		if got := mustQuery(t, ctx, conn, "SELECT pg_backend_pid()")[0]; got != strconv.Itoa(int(conn.PID())) {
			t.Fatalf("%s: the client was given PID %d, its server is %s", listener, conn.PID(), got)
		}
		if listener == "rw" {
			// A NOTIFY the session sent itself carries its own PID.
			var notified []uint32
			cfg, _ := pgconn.ParseConfig(p.dsn(listener, testbed.UserSCRAM))
			cfg.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) { notified = append(notified, n.PID) }
			self, err := pgconn.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := self.Exec(ctx, "LISTEN sy; NOTIFY sy, 'hi'").Close(); err != nil {
				t.Fatal(err)
			}
			if len(notified) != 1 || notified[0] != self.PID() {
				t.Errorf("notification PIDs %v, want [%d] (the session's own)", notified, self.PID())
			}
			self.Close(ctx)
		}
		// Another session on the same node can end this one by the PID it
		// was given.
		port := mustQuery(t, ctx, conn, "SELECT inet_server_port()")[0]
		other := connect(t, ctx, strings.Replace(pg.Nodes[0].DSN(testbed.UserSCRAM), "port="+strconv.Itoa(pg.Nodes[0].Port), "port="+port, 1))
		if got := mustQuery(t, ctx, other, "SELECT pg_terminate_backend("+strconv.Itoa(int(conn.PID()))+")")[0]; got != "t" {
			t.Fatalf("%s: pg_terminate_backend(%d) = %s", listener, conn.PID(), got)
		}
		_, err := query(ctx, conn, "SELECT 1")
		if got := sqlState(err); got != "57P01" {
			t.Fatalf("%s: after pg_terminate_backend: %v (SQLSTATE %q), want the server's 57P01", listener, err, got)
		}
		other.Close(ctx)
	}
}

// When Switchyard ends a session whose server is running a query, it
// cancels the query: closing the socket alone leaves it running until it
// next writes to the client.
func TestEndedSessionsQueryIsCancelled(t *testing.T) {
	needPG(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, how := range []string{"role change", "shutdown", "role change, extended batch without Sync"} {
		t.Run(how, func(t *testing.T) {
			p := startProxy(t, setup{limits: `shutdown_timeout = "500ms"`})
			conn := connect(t, ctx, p.dsn("rw", testbed.UserSCRAM))
			done := make(chan error, 1)
			if strings.HasSuffix(how, "without Sync") {
				// Parse/Bind/Execute and a Flush: the query runs, and no
				// ReadyForQuery is owed until a Sync that never comes.
				fe := conn.Frontend()
				fe.SendParse(&pgproto3.Parse{Query: "SELECT pg_sleep(120)"})
				fe.SendBind(&pgproto3.Bind{})
				fe.SendExecute(&pgproto3.Execute{})
				fe.Send(&pgproto3.Flush{})
				if err := fe.Flush(); err != nil {
					t.Fatal(err)
				}
				go func() {
					for {
						msg, err := fe.Receive()
						if err != nil {
							done <- err
							return
						}
						if e, ok := msg.(*pgproto3.ErrorResponse); ok {
							done <- &pgconn.PgError{Code: e.Code, Message: e.Message}
							return
						}
					}
				}()
			} else {
				go func() {
					_, err := query(ctx, conn, "SELECT pg_sleep(120)")
					done <- err
				}()
			}
			testbed.Eventually(t, 10*time.Second, "pg_sleep(120) to run", func() bool { return activeSleeps(ctx, t) == 1 })
			switch how {
			case "role change", "role change, extended batch without Sync":
				p.Registry().Kill(func(s proxy.SessionInfo) bool { return true },
					&proxy.KillCause{SQLState: "57P01", Message: "terminating connection because server \"pg1\" is no longer the primary"})
			case "shutdown":
				go p.Stop()
			}
			select {
			case err := <-done:
				if got := sqlState(err); got != "57P01" {
					t.Fatalf("the client got %v (SQLSTATE %q), want 57P01", err, got)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the session was not ended")
			}
			testbed.Eventually(t, 5*time.Second, "pg_sleep(120) to stop on the server", func() bool { return activeSleeps(ctx, t) == 0 })
		})
	}
}

// activeSleeps counts pg_sleep(120) queries running on the primary.
func activeSleeps(ctx context.Context, t *testing.T) int {
	c, err := pgconn.Connect(ctx, pg.Nodes[0].DSN(testbed.UserSuper))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	row, err := query(ctx, c, "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(120)' AND state = 'active'")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(row[0])
	return n
}

// client_login_timeout bounds the whole login, waiting for a leader and
// connecting included: it is not a socket deadline that leader_wait and
// one connect_timeout per candidate can outlast.
func TestLoginTimeoutCoversLeaderWait(t *testing.T) {
	needPG(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// No primary: rw waits leader_wait (5 s) for one.
	p := startProxy(t, setup{members: `{ name = "pg2", address = "` + pg.Nodes[1].Addr() + `", role = "replica" },`,
		limits: `client_login_timeout = "1s"`, extra: "", leaderWait: "5s"})
	start := time.Now()
	_, err := pgconn.Connect(ctx, p.dsn("rw", testbed.UserTrust))
	took := time.Since(start)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "57014" || !strings.Contains(pe.Message, "client_login_timeout") {
		t.Fatalf("got %v, want 57014 about client_login_timeout", err)
	}
	if took > 2500*time.Millisecond {
		t.Fatalf("the login was ended after %v, want about client_login_timeout (1s)", took)
	}
}

// Discovery keeps running while the proxy shuts down: a member that
// loses its role during shutdown_timeout still has its sessions ended.
func TestRoleChangeDuringShutdownEndsSessions(t *testing.T) {
	needPG(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fw := testbed.Forward(t, pg.Nodes[0].Addr())
	p := startProxy(t, setup{members: `{ name = "pg1", address = "` + fw.Addr() + `", role = "primary" },`,
		limits: `shutdown_timeout = "20s"`})
	conn := connect(t, ctx, p.dsn("rw", testbed.UserTrust))
	mustQuery(t, ctx, conn, "SELECT 1")
	stopped := make(chan struct{})
	go func() { p.Stop(); close(stopped) }()
	testbed.Eventually(t, 5*time.Second, "the shutdown to begin", func() bool { return len(p.Log.Matching("shutting down")) == 1 })
	fw.StopAccepting() // pg1 fails its health checks from now on
	_, err := query(ctx, conn, "SELECT pg_sleep(10)")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "57P01" || !strings.Contains(pe.Message, `server "pg1" is no longer the primary`) {
		t.Fatalf("got %v, want 57P01 naming pg1", err)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Switchyard did not stop once its last session ended")
	}
}
