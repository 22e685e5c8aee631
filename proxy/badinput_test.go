package proxy_test

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// rawStartup is a protocol 3.0 StartupMessage for user.
func rawStartup(user string) []byte {
	b, _ := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
		Parameters: map[string]string{"user": user, "database": "postgres"}}).Encode(nil)
	return b
}

func be32(vs ...uint32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

// readError reads backend messages until an ErrorResponse and returns it.
func readError(t *testing.T, c net.Conn) *pgproto3.ErrorResponse {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	fe := pgproto3.NewFrontend(c, c)
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("reading ErrorResponse: %v", err)
		}
		if e, ok := msg.(*pgproto3.ErrorResponse); ok {
			cp := *e
			return &cp
		}
	}
}

func TestBadInput(t *testing.T) {
	needPG(t)
	p := startProxy(t, setup{limits: `client_login_timeout = "1s"`})
	addr := p.addr("rw")

	cases := []struct {
		name     string
		send     func(c net.Conn)
		code     string // expected SQLSTATE, "" if the client gets none
		msg      string // part of the message
		logLevel string
		closeW   bool // half-close after sending
	}{
		{name: "garbage", send: func(c net.Conn) { c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) },
			code: "08P01", msg: "invalid length of startup packet", logLevel: "WARN"},
		{name: "too long", send: func(c net.Conn) { c.Write(be32(10001, 196608)) },
			code: "08P01", msg: "invalid length of startup packet", logLevel: "WARN"},
		{name: "protocol 2", send: func(c net.Conn) { c.Write(append(be32(16, 2<<16), "user\x00x\x00\x00\x00"[:8]...)) },
			code: "0A000", msg: "unsupported frontend protocol 2.0", logLevel: "WARN"},
		{name: "protocol 4", send: func(c net.Conn) { c.Write(append(be32(18, 4<<16), "user\x00x\x00\x00\x00\x00"...)) },
			code: "0A000", msg: "unsupported frontend protocol 4.0", logLevel: "WARN"},
		{name: "truncated", send: func(c net.Conn) { c.Write(append(be32(100, 196608), "user\x00"...)) }, closeW: true,
			code: "08P01", msg: "incomplete startup packet", logLevel: "WARN"},
		{name: "no user", send: func(c net.Conn) { c.Write(append(be32(27, 196608), "database\x00postgres\x00\x00"...)) },
			code: "28000", msg: "no PostgreSQL user name", logLevel: "WARN"},
		{name: "silent client", send: func(c net.Conn) {},
			code: "57014", msg: "client_login_timeout", logLevel: "WARN"},
		{name: "SSLRequest then silence", send: func(c net.Conn) {
			c.Write(be32(8, 80877103))
			io.ReadFull(c, make([]byte, 1))
		}, code: "57014", msg: "client_login_timeout", logLevel: "WARN"},
		{name: "vanishes mid-handshake", send: func(c net.Conn) {
			c.Write(rawStartup(testbed.UserSCRAM))
			fe := pgproto3.NewFrontend(c, c)
			if m, err := fe.Receive(); err != nil {
				t.Errorf("expected AuthenticationSASL: %v", err)
			} else if _, ok := m.(*pgproto3.AuthenticationSASL); !ok {
				t.Errorf("expected AuthenticationSASL, got %T", m)
			}
			c.Close()
		}, logLevel: "INFO"},
		// Like a TCP health check: logged at DEBUG only, as PostgreSQL does.
		{name: "connects and closes", send: func(c net.Conn) { c.Close() }, logLevel: "DEBUG"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(p.log.sessionLines())
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tc.send(c)
			if tc.closeW {
				c.(*net.TCPConn).CloseWrite()
			}
			if tc.code != "" {
				e := readError(t, c)
				if e.Code != tc.code || !strings.Contains(e.Message, tc.msg) || e.Severity != "FATAL" {
					t.Fatalf("got %s %s %q, want FATAL %s containing %q", e.Severity, e.Code, e.Message, tc.code, tc.msg)
				}
				// …and then the proxy closes the connection.
				if _, err := c.Read(make([]byte, 1)); err != io.EOF {
					t.Fatalf("after the error: %v, want EOF", err)
				}
			}
			eventually(t, 5*time.Second, "the session's log line", func() bool { return len(p.log.sessionLines()) > before })
			lines := p.log.sessionLines()[before:]
			if len(lines) != 1 || !strings.Contains(lines[0], "level="+tc.logLevel) {
				t.Fatalf("want one %s session line, got %q", tc.logLevel, lines)
			}
		})
	}

	// Everyone else is still served, and nothing is left behind.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn := connect(t, ctx, p.dsn("rw", testbed.UserSCRAM))
	mustQuery(t, ctx, conn, "SELECT 1")
	conn.Close(ctx)
	eventually(t, 5*time.Second, "all sessions to end", func() bool { return p.Registry.Len() == 0 })
}

// fakeServer is a scripted PostgreSQL server for the cases a real one
// cannot produce on demand. With stall unset it logs in any client and
// closes the connection on the first query without an ErrorResponse;
// with stall set it reads the StartupMessage and then never answers.
func fakeServer(t *testing.T, stall bool) string {
	return serveLoopback(t, func(c net.Conn) {
		be := pgproto3.NewBackend(c, c)
		for {
			m, err := be.ReceiveStartupMessage()
			if err != nil {
				return
			}
			if _, ok := m.(*pgproto3.SSLRequest); ok {
				c.Write([]byte{'N'})
				continue
			}
			break
		}
		if stall {
			io.Copy(io.Discard, c) // until the proxy gives up
			return
		}
		be.Send(&pgproto3.AuthenticationOk{})
		be.Send(&pgproto3.BackendKeyData{ProcessID: 42, SecretKey: []byte{1, 2, 3, 4}})
		be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		if be.Flush() != nil {
			return
		}
		be.Receive() // the first query: hang up without a word
	})
}

func TestBackendClosesMidSession(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a proxy")
	}
	fake := fakeServer(t, false)
	p := startProxy(t, setup{members: `{ name = "fake", address = "` + fake + `", role = "primary" },`})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn := connect(t, ctx, p.dsn("rw", "anyone"))
	before := len(p.log.sessionLines())
	_, err := query(ctx, conn, "SELECT 1")
	if got := sqlState(err); got != "08006" || !strings.Contains(err.Error(), "connection to server fake") {
		t.Fatalf("backend hung up: %v (SQLSTATE %q), want 08006 naming the server", err, got)
	}
	eventually(t, 5*time.Second, "the session's log line", func() bool { return len(p.log.sessionLines()) > before })
	if lines := p.log.sessionLines()[before:]; len(lines) != 1 || !strings.Contains(lines[0], "level=WARN") ||
		!strings.Contains(lines[0], "server connection lost") {
		t.Fatalf("want one WARN 'server connection lost' line, got %q", lines)
	}
}

func TestServerStallsDuringLogin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a proxy")
	}
	fake := fakeServer(t, true)
	p := startProxy(t, setup{members: `{ name = "fake", address = "` + fake + `", role = "primary" },`,
		limits: `client_login_timeout = "1s"`})
	c, err := net.Dial("tcp", p.addr("rw"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(rawStartup("anyone"))
	start := time.Now()
	if e := readError(t, c); e.Code != "57014" || !strings.Contains(e.Message, "client_login_timeout") {
		t.Fatalf("got %s %q, want 57014 about client_login_timeout", e.Code, e.Message)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %s", d)
	}
	eventually(t, 5*time.Second, "the session to end", func() bool { return p.Registry.Len() == 0 })
}

// A client that says goodbye is an ordinary INFO "session ended", however
// the race between its Terminate and the server's close goes.
func TestGoodbyeIsAnOrdinaryEnd(t *testing.T) {
	needPG(t)
	p := startProxy(t, setup{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 20
	for i := 0; i < n; i++ {
		conn := connect(t, ctx, p.dsn("rw", testbed.UserTrust))
		mustQuery(t, ctx, conn, "SELECT 1")
		conn.Close(ctx) // sends Terminate
	}
	eventually(t, 5*time.Second, "every session line", func() bool { return len(p.log.sessionLines()) == n })
	for _, line := range p.log.sessionLines() {
		if !strings.Contains(line, "level=INFO") || !strings.Contains(line, `msg="session ended"`) {
			t.Fatalf("goodbye logged as %q", line)
		}
	}
}
