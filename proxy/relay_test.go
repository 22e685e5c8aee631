package proxy_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
	"github.com/switchyard-proxy/switchyard/internal/testbed"
	"github.com/switchyard-proxy/switchyard/proxy"
	"github.com/switchyard-proxy/switchyard/router"
)

func TestRoutesByRole(t *testing.T) {
	needPG(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := startProxy(t, setup{})

	rw := connect(t, ctx, p.dsn("rw", testbed.UserSCRAM))
	if got := mustQuery(t, ctx, rw, "SELECT pg_is_in_recovery()"); got[0] != "f" {
		t.Fatalf("rw: pg_is_in_recovery() = %s, want f", got[0])
	}

	replicaPorts := map[string]bool{
		strings.Split(pg.Nodes[1].Addr(), ":")[1]: true,
		strings.Split(pg.Nodes[2].Addr(), ":")[1]: true,
	}
	var ports []string
	for i := 0; i < 4; i++ {
		conn := connect(t, ctx, p.dsn("ro", testbed.UserSCRAM))
		row := mustQuery(t, ctx, conn, "SELECT pg_is_in_recovery(), inet_server_port()")
		if row[0] != "t" {
			t.Fatalf("ro connection %d: pg_is_in_recovery() = %s, want t", i, row[0])
		}
		if !replicaPorts[row[1]] {
			t.Fatalf("ro connection %d reached port %s, not a replica", i, row[1])
		}
		ports = append(ports, row[1])
		conn.Close(ctx)
	}
	for i := 1; i < len(ports); i++ {
		if ports[i] == ports[i-1] {
			t.Fatalf("consecutive ro connections reached the same replica: %v", ports)
		}
	}
	// The live counters saw it all.
	testbed.Eventually(t, 5*time.Second, "ro's clients to be gone", func() bool { return p.Stats("ro").Active.Load() == 0 })
	if st := p.Stats("ro"); st.Sessions.Load() != 4 || st.BytesIn.Load() == 0 || st.BytesOut.Load() == 0 {
		t.Fatalf("ro counters: %d sessions, %d bytes in, %d out; want 4 and traffic", st.Sessions.Load(), st.BytesIn.Load(), st.BytesOut.Load())
	}
	if st := p.Stats("rw"); st.Active.Load() != 1 || st.Sessions.Load() != 1 {
		t.Fatalf("rw counters: %d active, %d sessions; want 1 and 1", st.Active.Load(), st.Sessions.Load())
	}
}

func TestAuthMethodsThroughRelay(t *testing.T) {
	needPG(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := startProxy(t, setup{})
	for _, listener := range []string{"rw", "ro"} {
		for _, user := range []string{testbed.UserSCRAM, testbed.UserMD5, testbed.UserTrust} {
			conn := connect(t, ctx, p.dsn(listener, user))
			if got := mustQuery(t, ctx, conn, "SELECT current_user"); got[0] != user {
				t.Fatalf("%s via %s: current_user = %s", user, listener, got[0])
			}
			conn.Close(ctx)
		}
	}
	// A wrong password gets the server's own error, unchanged.
	_, err := pgconn.Connect(ctx, strings.Replace(p.dsn("rw", testbed.UserSCRAM), testbed.Password, "wrong", 1))
	if got := sqlState(err); got != "28P01" {
		t.Fatalf("wrong password: SQLSTATE %q (%v), want 28P01", got, err)
	}
}

func TestFallbackWhenReplicasDown(t *testing.T) {
	needPG(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	withFallback := startProxy(t, setup{roFallback: "primary"})
	noFallback := startProxy(t, setup{roFallback: "none"})

	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for _, r := range pg.Nodes[1:] {
			if err := r.Start(ctx); err != nil {
				t.Errorf("restarting %s: %v", r.Name, err)
			}
		}
		if err := pg.WaitStreaming(ctx, pg.Nodes[0], 2); err != nil {
			t.Error(err)
		}
	})
	pg.Nodes[1].Stop()
	pg.Nodes[2].Stop()

	replicasDown := func(p *proxyUnderTest) func() bool {
		return func() bool {
			topo := p.Router.Snapshot()
			a, _ := topo.Member("pg2")
			b, _ := topo.Member("pg3")
			return !a.Healthy && !b.Healthy
		}
	}
	testbed.Eventually(t, 5*time.Second, "health checks to see both replicas down", replicasDown(withFallback))
	testbed.Eventually(t, 5*time.Second, "health checks to see both replicas down", replicasDown(noFallback))

	conn := connect(t, ctx, withFallback.dsn("ro", testbed.UserSCRAM))
	if got := mustQuery(t, ctx, conn, "SELECT pg_is_in_recovery()"); got[0] != "f" {
		t.Fatalf("ro with fallback = primary: pg_is_in_recovery() = %s, want f (the primary)", got[0])
	}

	_, err := pgconn.Connect(ctx, noFallback.dsn("ro", testbed.UserSCRAM))
	if got := sqlState(err); got != "57P03" {
		t.Fatalf("ro with fallback = none: SQLSTATE %q (%v), want 57P03", got, err)
	}
	if !strings.Contains(err.Error(), `listener "ro"`) || !strings.Contains(err.Error(), "replica") {
		t.Fatalf("57P03 message should name the listener and role: %v", err)
	}
}

// hangUp listens on loopback and closes every connection at once: it
// passes a TCP health check but no PostgreSQL login.
func hangUp(t *testing.T) string {
	return serveLoopback(t, func(c net.Conn) {})
}

func TestDialFallsThroughToNextCandidate(t *testing.T) {
	needPG(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bad := hangUp(t)
	p := startProxy(t, setup{members: `{ name = "pg1", address = "` + pg.Nodes[0].Addr() + `", role = "primary" },
  { name = "pg9", address = "` + bad + `", role = "replica" },
  { name = "pg2", address = "` + pg.Nodes[1].Addr() + `", role = "replica" },`, roFallback: "none"})
	for i := 0; i < 4; i++ {
		conn := connect(t, ctx, p.dsn("ro", testbed.UserTrust))
		if got := mustQuery(t, ctx, conn, "SELECT inet_server_port()"); got[0] != strconv.Itoa(pg.Nodes[1].Port) {
			t.Fatalf("connection %d reached port %s, want pg2 (%d)", i, got[0], pg.Nodes[1].Port)
		}
		conn.Close(ctx)
	}

	// Only unusable members: 08006 naming each with its reason.
	p2 := startProxy(t, setup{members: `{ name = "pg9", address = "` + bad + `", role = "primary" },`})
	_, err := pgconn.Connect(ctx, p2.dsn("rw", testbed.UserTrust))
	if got := sqlState(err); got != "08006" {
		t.Fatalf("all dials failed: SQLSTATE %q (%v), want 08006", got, err)
	}
	// The client, not yet authenticated, learns the listener and the
	// reason; member names and addresses go to the log only.
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || !strings.Contains(pe.Message, `listener "rw"`) || pe.Detail != "1 server tried: connection failed" {
		t.Fatalf("08006 should name the listener and the reason: %+v", pe)
	}
	if strings.Contains(pe.Message+pe.Detail, "pg9") || strings.Contains(pe.Message+pe.Detail, bad) {
		t.Fatalf("08006 told an unauthenticated client about pg9 (%s): %+v", bad, pe)
	}
	testbed.Eventually(t, 5*time.Second, "the log to name the member", func() bool { return len(p2.Log.Matching("pg9 ("+bad+"): connection failed")) == 1 })
}

func TestTLSClientWithPsql(t *testing.T) {
	needPG(t)
	dir := t.TempDir()
	cert, key, err := testbed.WriteCert(dir, "proxy")
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, setup{extra: "[tls]\ncert = \"" + cert + "\"\nkey = \"" + key + "\"\nclient_mode = \"require\"\nserver_mode = \"prefer\"\n"})
	// What the server leg ends up as: TLS, except for SCRAM with libpq's
	// default channel_binding=prefer, whose 'y' flag a TLS server would
	// reject as a downgrade (see reconnectWithoutTLS).
	cases := []struct {
		user, extra string
		serverTLS   string
	}{
		{testbed.UserMD5, "", "t"},
		{testbed.UserSCRAM, " channel_binding=disable", "t"},
		{testbed.UserSCRAM, "", "f"},
	}
	for _, listener := range []string{"rw", "ro"} {
		host, port, _ := net.SplitHostPort(p.addr(listener))
		for _, c := range cases {
			cmd := exec.Command("psql", "-X", "-At",
				"host="+host+" port="+port+" user="+c.user+" dbname=postgres sslmode=require"+c.extra,
				"-c", "SELECT 'server-ssl=' || ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
				"-c", `\conninfo`)
			cmd.Env = append(os.Environ(), "PGPASSWORD="+testbed.Password, "PGCONNECT_TIMEOUT=5")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("psql sslmode=require%s as %s via %s: %v\n%s", c.extra, c.user, listener, err, out)
			}
			if !strings.Contains(string(out), "SSL connection") {
				t.Fatalf("psql as %s via %s: client leg is not TLS:\n%s", c.user, listener, out)
			}
			if want := "server-ssl=" + map[string]string{"t": "true", "f": "false"}[c.serverTLS]; !strings.Contains(string(out), want) {
				t.Fatalf("psql%s as %s via %s: want %s, got:\n%s", c.extra, c.user, listener, want, out)
			}
		}
	}
	// client_mode = require refuses plaintext clients with 28000.
	_, err = pgconn.Connect(context.Background(), p.dsn("rw", testbed.UserTrust))
	if got := sqlState(err); got != "28000" {
		t.Fatalf("plaintext client with client_mode = require: SQLSTATE %q (%v), want 28000", got, err)
	}
}

func TestCancelThroughBothPorts(t *testing.T) {
	needPG(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := startProxy(t, setup{})

	// cancelVia sends the CancelRequest for conn to the given listener.
	cancelVia := func(listener string, conn *pgconn.PgConn) error {
		c, err := net.Dial("tcp", p.addr(listener))
		if err != nil {
			return err
		}
		defer c.Close()
		msg, _ := (&pgproto3.CancelRequest{ProcessID: conn.PID(), SecretKey: conn.SecretKey()}).Encode(nil)
		_, err = c.Write(msg)
		c.Read(make([]byte, 1)) // the proxy closes after forwarding
		return err
	}
	for _, tc := range []struct{ session, cancelOn string }{
		{"rw", "rw"}, {"ro", "ro"}, {"rw", "ro"}, {"ro", "rw"},
	} {
		conn := connect(t, ctx, p.dsn(tc.session, testbed.UserSCRAM))
		done := make(chan error, 1)
		go func() {
			_, err := query(ctx, conn, "SELECT pg_sleep(30)")
			done <- err
		}()
		// Wait until the query runs on the server.
		testbed.Eventually(t, 5*time.Second, "pg_sleep to start", func() bool {
			n := pg.Nodes[0]
			if tc.session == "ro" {
				n = nil
			}
			return sleeping(ctx, n)
		})
		start := time.Now()
		if err := cancelVia(tc.cancelOn, conn); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if got := sqlState(err); got != "57014" {
				t.Fatalf("%s session cancelled via %s: SQLSTATE %q (%v), want 57014", tc.session, tc.cancelOn, got, err)
			}
			if d := time.Since(start); d > time.Second {
				t.Fatalf("%s session cancelled via %s after %s, want < 1s", tc.session, tc.cancelOn, d)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s session: cancel via %s did not end pg_sleep", tc.session, tc.cancelOn)
		}
		// The session is still usable.
		mustQuery(t, ctx, conn, "SELECT 1")
		conn.Close(ctx)
	}
}

// sleeping reports whether a pg_sleep query is running on n (on any node
// when n is nil).
func sleeping(ctx context.Context, n *testbed.PGNode) bool {
	nodes := pg.Nodes
	if n != nil {
		nodes = []*testbed.PGNode{n}
	}
	for _, n := range nodes {
		c, err := pgconn.Connect(ctx, n.DSN(testbed.UserSuper))
		if err != nil {
			continue
		}
		row, err := query(ctx, c, "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'")
		c.Close(ctx)
		if err == nil && row[0] != "0" {
			return true
		}
	}
	return false
}

func TestRegistryKillEndsSessionsWithCause(t *testing.T) {
	needPG(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := startProxy(t, setup{})
	rw := connect(t, ctx, p.dsn("rw", testbed.UserSCRAM))
	ro := connect(t, ctx, p.dsn("ro", testbed.UserSCRAM))
	mustQuery(t, ctx, rw, "SELECT 1")
	mustQuery(t, ctx, ro, "SELECT 1")

	n := p.Registry().Kill(func(s proxy.SessionInfo) bool { return s.Backend == "pg1" },
		&proxy.KillCause{SQLState: "25006", Message: "pg1 is no longer the primary; reconnect"})
	if n != 1 {
		t.Fatalf("Kill ended %d sessions, want 1", n)
	}
	_, err := query(ctx, rw, "SELECT 1")
	if got := sqlState(err); got != "25006" || !strings.Contains(err.Error(), "pg1 is no longer the primary") {
		t.Fatalf("killed session: %v (SQLSTATE %q), want 25006 with the message", err, got)
	}
	mustQuery(t, ctx, ro, "SELECT 1") // sessions on other backends are untouched
	testbed.Eventually(t, 5*time.Second, "registry to drop the killed session", func() bool { return p.Registry().Len() == 1 })
}

// A session ended while its client is still logging in must not tell
// the client which member it had been routed to; a logged-in one may be.
func TestRoleLostBeforeLoginNamesNoMember(t *testing.T) {
	needPG(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := startProxy(t, setup{})
	c, err := net.Dial("tcp", p.addr("rw"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fe := pgproto3.NewFrontend(c, c)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": testbed.UserSCRAM, "database": "postgres"}})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	// The server asks for SCRAM: the session is routed and registered,
	// and the client has not logged in.
	if msg, err := fe.Receive(); err != nil {
		t.Fatal(err)
	} else if _, ok := msg.(*pgproto3.AuthenticationSASL); !ok {
		t.Fatalf("first answer %T, want AuthenticationSASL", msg)
	}
	lost := proxy.RoleLost(&router.Loss{Binding: router.Binding{Listener: "rw", Backend: "pg1", Role: topology.RolePrimary},
		Why: "was demoted to replica"})
	if n := p.Registry().Kill(func(s proxy.SessionInfo) bool { return s.Backend == "pg1" }, lost); n != 1 {
		t.Fatalf("Kill ended %d sessions, want 1", n)
	}
	msg, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	e, ok := msg.(*pgproto3.ErrorResponse)
	if !ok || e.Code != "57P01" || strings.Contains(e.Message, "pg1") || !strings.Contains(e.Message, `listener "rw"`) {
		t.Fatalf("client still logging in got %#v, want 57P01 naming the listener and no member", msg)
	}

	rw := connect(t, ctx, p.dsn("rw", testbed.UserSCRAM))
	mustQuery(t, ctx, rw, "SELECT 1")
	p.Registry().Kill(func(s proxy.SessionInfo) bool { return s.Backend == "pg1" }, lost)
	if _, err := query(ctx, rw, "SELECT 1"); sqlState(err) != "57P01" || !strings.Contains(err.Error(), `server "pg1" is no longer the primary`) {
		t.Fatalf("logged-in client: %v, want 57P01 naming the member", err)
	}
}

func TestMaxClients(t *testing.T) {
	needPG(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := startProxy(t, setup{limits: "max_clients = 1"})
	connect(t, ctx, p.dsn("rw", testbed.UserTrust))
	_, err := pgconn.Connect(ctx, p.dsn("rw", testbed.UserTrust))
	if got := sqlState(err); got != "53300" {
		t.Fatalf("second client over max_clients = 1: SQLSTATE %q (%v), want 53300", got, err)
	}
}

func TestGracefulShutdown(t *testing.T) {
	needPG(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := startProxy(t, setup{limits: `shutdown_timeout = "1s"`})
	conn := connect(t, ctx, p.dsn("rw", testbed.UserTrust))
	mustQuery(t, ctx, conn, "SELECT 1")
	addr := p.addr("rw")

	stopped := make(chan struct{})
	start := time.Now()
	go func() { p.stop(); close(stopped) }()
	testbed.Eventually(t, 5*time.Second, "listener to close", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	// The session lives on until shutdown_timeout…
	mustQuery(t, ctx, conn, "SELECT 1")
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after shutdown_timeout")
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("shutdown took %s, before shutdown_timeout (1s)", d)
	}
	// …and was then ended with 57P01.
	_, err := query(ctx, conn, "SELECT 1")
	if got := sqlState(err); got != "57P01" {
		t.Fatalf("after shutdown: SQLSTATE %q (%v), want 57P01", got, err)
	}
}
