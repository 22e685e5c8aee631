package proxy_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
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

// wireClient is a hostile or unusual client, scripted byte by byte; it
// records what the server answers as a transcript ("N", "S",
// "E:0A000", "v", "R:10", "close") so that Switchyard's answers can be
// compared with PostgreSQL's own.
type wireClient struct {
	t  *testing.T
	c  net.Conn
	tr []string
}

func dialWire(t *testing.T, addr string) *wireClient {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &wireClient{t: t, c: c}
}

func (w *wireClient) send(b ...[]byte) *wireClient {
	for _, p := range b {
		if _, err := w.c.Write(p); err != nil {
			w.tr = append(w.tr, "write failed")
		}
	}
	return w
}

func (w *wireClient) halfClose() *wireClient {
	w.c.(*net.TCPConn).CloseWrite()
	return w
}

// answer reads the one-byte answer to SSLRequest or GSSENCRequest.
func (w *wireClient) answer() byte {
	w.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 1)
	if _, err := io.ReadFull(w.c, b); err != nil {
		w.tr = append(w.tr, "close")
		return 0
	}
	w.tr = append(w.tr, string(b))
	return b[0]
}

// startTLS answers an 'S' with a TLS handshake.
func (w *wireClient) startTLS() *wireClient {
	tc := tls.Client(w.c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		w.tr = append(w.tr, "handshake failed")
		return w
	}
	w.c = tc
	return w
}

// messages reads server messages until the server closes or asks the
// client to authenticate.
func (w *wireClient) messages() string {
	w.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(w.c)
	fe := pgproto3.NewFrontend(r, w.c)
	first := true
	for {
		m, err := receive(r, fe, first)
		first = false
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			w.tr = append(w.tr, "no answer")
			return strings.Join(w.tr, ",")
		case err != nil:
			w.tr = append(w.tr, "close")
			return strings.Join(w.tr, ",")
		}
		switch m := m.(type) {
		case *v2Error:
			w.tr = append(w.tr, "E:v2 "+m.text)
		case *pgproto3.ErrorResponse:
			w.tr = append(w.tr, "E:"+m.Code)
		case *pgproto3.NegotiateProtocolVersion:
			w.tr = append(w.tr, "v")
		case *pgproto3.AuthenticationSASL:
			w.tr = append(w.tr, "R:10")
			return strings.Join(w.tr, ",")
		default:
			w.tr = append(w.tr, fmt.Sprintf("%T", m))
		}
	}
}

// v2Error is the error a protocol 2 client gets: 'E' and a NUL-terminated
// text, no length word.
type v2Error struct{ text string }

func (*v2Error) Backend() {}

// receive reads one message, recognising a protocol 2 error as the first
// (its second byte is a letter, never the top byte of a message length).
// After the first message the frontend has read ahead, so r is not
// looked at again.
func receive(r *bufio.Reader, fe *pgproto3.Frontend, first bool) (any, error) {
	if !first {
		return fe.Receive()
	}
	if b, err := r.Peek(2); err == nil && b[0] == 'E' && b[1] >= 'A' {
		text, err := r.ReadString(0)
		if err != nil {
			return nil, err
		}
		return &v2Error{strings.TrimSuffix(strings.TrimPrefix(text, "E"), "\x00")}, nil
	}
	return fe.Receive()
}

// startupV is a StartupMessage of any version, params in order.
func startupV(major, minor uint16, params ...string) []byte {
	body := binary.BigEndian.AppendUint32(nil, uint32(major)<<16|uint32(minor))
	for _, p := range params {
		body = append(append(body, p...), 0)
	}
	body = append(body, 0)
	return append(binary.BigEndian.AppendUint32(nil, uint32(4+len(body))), body...)
}

var (
	sslRequest = be32(8, 80877103)
	gssRequest = be32(8, 80877104)
)

// TestFirstPacketLikePostgreSQL sends the same hostile or unusual first
// packets to PostgreSQL and to Switchyard, and wants the same answer from
// both: silence where PostgreSQL closes silently (node-postgres sends
// Terminate at once on connect-then-end, and crashes on an error), its
// SQLSTATE where it sends one, NegotiateProtocolVersion and a normal
// login for a newer minor version.
func TestFirstPacketLikePostgreSQL(t *testing.T) {
	needPG(t)
	dir := t.TempDir()
	cert, key, err := testbed.WriteCert(dir, "proxy")
	if err != nil {
		t.Fatal(err)
	}
	// TLS on both sides, as PostgreSQL's test bed has ssl = on.
	p := startProxy(t, setup{extra: "[tls]\ncert = \"" + cert + "\"\nkey = \"" + key + "\"\n"})
	user := testbed.UserSCRAM
	cases := []struct {
		name string
		run  func(w *wireClient) string
		want string
	}{
		{"Terminate as the first message", func(w *wireClient) string {
			return w.send([]byte{'X', 0, 0, 0, 4}).messages()
		}, "close"},
		{"HTTP request", func(w *wireClient) string {
			return w.send([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")).messages()
		}, "close"},
		{"length over 10004", func(w *wireClient) string { return w.send(be32(10005, 196608)).messages() }, "close"},
		{"length under 8", func(w *wireClient) string { return w.send(be32(7, 196608)).messages() }, "close"},
		{"truncated packet", func(w *wireClient) string {
			return w.send(append(be32(100, 196608), "user\x00"...)).halfClose().messages()
		}, "close"},
		{"partial length word", func(w *wireClient) string { return w.send([]byte{0, 0}).halfClose().messages() }, "close"},
		{"protocol 2.0", func(w *wireClient) string { return w.send(startupV(2, 0, "user", user)).messages() },
			"E:v2 FATAL:  unsupported frontend protocol 2.0: server supports 3.0 to 3.0\n,close"},
		{"protocol 4.0", func(w *wireClient) string { return w.send(startupV(4, 0, "user", user)).messages() }, "E:0A000,close"},
		{"protocol 3.1", func(w *wireClient) string { return w.send(startupV(3, 1, "user", user)).messages() }, "v,R:10"},
		{"protocol 3.2", func(w *wireClient) string { return w.send(startupV(3, 2, "user", user)).messages() }, "v,R:10"},
		{"unknown _pq_ option", func(w *wireClient) string {
			return w.send(startupV(3, 0, "user", user, "_pq_.switchyard_test", "on")).messages()
		}, "v,R:10"},
		{"no user", func(w *wireClient) string { return w.send(startupV(3, 0, "database", "postgres")).messages() }, "E:28000,close"},
		{"no terminator", func(w *wireClient) string {
			b := startupV(3, 0, "user", user)
			b = b[:len(b)-1]
			binary.BigEndian.PutUint32(b, uint32(len(b)))
			return w.send(b).messages()
		}, "E:08P01,close"},
		{"unknown cancel key", func(w *wireClient) string { return w.send(be32(16, 80877102, 4242, 4242)).messages() }, "close"},
		{"malformed cancel request", func(w *wireClient) string { return w.send(be32(12, 80877102, 4242)).messages() }, "close"},
		{"SSLRequest twice (the second inside TLS)", func(w *wireClient) string {
			w.send(sslRequest).answer()
			return w.startTLS().send(sslRequest).messages()
		}, "S,E:0A000,close"},
		{"GSSENCRequest inside TLS", func(w *wireClient) string {
			w.send(sslRequest).answer()
			return w.startTLS().send(gssRequest).messages()
		}, "S,E:0A000,close"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(p.sessionLines())
			fromPG := tc.run(dialWire(t, pg.Nodes[0].Addr()))
			wp := dialWire(t, p.addr("rw"))
			fromProxy := tc.run(wp)
			wp.c.Close()
			if fromPG != tc.want {
				t.Errorf("PostgreSQL answered %s, the test expects %s", fromPG, tc.want)
			}
			if fromProxy != fromPG {
				t.Errorf("Switchyard answered %s, PostgreSQL %s", fromProxy, fromPG)
			}
			testbed.Eventually(t, 5*time.Second, "the session's log line", func() bool { return len(p.sessionLines()) > before })
		})
	}
	// Switchyard refuses GSS encryption; PostgreSQL here accepts it, so
	// these follow PostgreSQL's code rather than a live answer: one
	// GSSENCRequest is answered, a second is not a startup packet, an
	// SSLRequest may follow a refused one, and bytes sent before the
	// answer are refused.
	for _, tc := range []struct {
		name string
		run  func(w *wireClient) string
		want string
	}{
		{"GSSENCRequest twice", func(w *wireClient) string {
			w.send(gssRequest).answer()
			return w.send(gssRequest).messages()
		}, "N,E:0A000,close"},
		{"SSLRequest after a refused GSSENCRequest", func(w *wireClient) string {
			w.send(gssRequest).answer()
			w.send(sslRequest).answer()
			return w.startTLS().send(startupV(3, 0, "user", user)).messages()
		}, "N,S,R:10"},
		{"unencrypted bytes after a refused GSSENCRequest", func(w *wireClient) string {
			w.send(append(append([]byte{}, gssRequest...), startupV(3, 0, "user", user)...)).answer()
			return w.messages()
		}, "N,E:08P01,close"},
	} {
		if got := tc.run(dialWire(t, p.addr("rw"))); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}

	// Without client TLS, a second SSLRequest is refused, not answered 'N'
	// again (PostgreSQL with ssl = off does the same).
	plain := startProxy(t, setup{})
	w := dialWire(t, plain.addr("rw"))
	w.send(sslRequest).answer()
	if got := w.send(sslRequest).messages(); got != "N,E:0A000,close" {
		t.Errorf("two SSLRequests without client TLS: %s, want N,E:0A000,close", got)
	}
	w = dialWire(t, plain.addr("rw"))
	w.send(append(append([]byte{}, sslRequest...), startupV(3, 0, "user", user)...)).answer()
	if got := w.messages(); got != "N,E:08P01,close" {
		t.Errorf("startup pipelined after SSLRequest: %s, want N,E:08P01,close", got)
	}
}

// TestSilentAndBrokenClients covers what cannot be compared with
// PostgreSQL on the spot: timeouts and clients that leave. Each ends
// quietly with one session log line at a fitting level.
func TestSilentAndBrokenClients(t *testing.T) {
	needPG(t)
	p := startProxy(t, setup{limits: `startup_timeout = "300ms"`})
	addr := p.addr("rw")
	cases := []struct {
		name     string
		run      func(w *wireClient) string
		want     string
		logLevel string
	}{
		// PostgreSQL closes without a word when no startup packet
		// arrives within authentication_timeout.
		{"silent client", func(w *wireClient) string { return w.messages() }, "close", "INFO"},
		{"SSLRequest then silence", func(w *wireClient) string {
			w.send(sslRequest).answer()
			return w.messages()
		}, "N,close", "INFO"},
		{"vanishes mid-handshake", func(w *wireClient) string {
			got := w.send(rawStartup(testbed.UserSCRAM)).messages()
			w.c.Close()
			return got
		}, "R:10", "INFO"},
		// Like a TCP health check: logged at DEBUG only, as PostgreSQL does.
		{"connects and closes", func(w *wireClient) string { w.c.Close(); return "" }, "", "DEBUG"},
		{"garbage", func(w *wireClient) string { return w.send([]byte("\x16\x03\x01garbage")).messages() }, "close", "WARN"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(p.sessionLines())
			if got := tc.run(dialWire(t, addr)); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
			testbed.Eventually(t, 5*time.Second, "the session's log line", func() bool { return len(p.sessionLines()) > before })
			lines := p.sessionLines()[before:]
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
	testbed.Eventually(t, 5*time.Second, "all sessions to end", func() bool { return p.Registry().Len() == 0 })
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
	before := len(p.sessionLines())
	_, err := query(ctx, conn, "SELECT 1")
	if got := sqlState(err); got != "08006" || !strings.Contains(err.Error(), "connection to server fake") {
		t.Fatalf("backend hung up: %v (SQLSTATE %q), want 08006 naming the server", err, got)
	}
	testbed.Eventually(t, 5*time.Second, "the session's log line", func() bool { return len(p.sessionLines()) > before })
	if lines := p.sessionLines()[before:]; len(lines) != 1 || !strings.Contains(lines[0], "level=WARN") ||
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
	testbed.Eventually(t, 5*time.Second, "the session to end", func() bool { return p.Registry().Len() == 0 })
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
	testbed.Eventually(t, 5*time.Second, "every session line", func() bool { return len(p.sessionLines()) == n })
	for _, line := range p.sessionLines() {
		if !strings.Contains(line, "level=INFO") || !strings.Contains(line, `msg="session ended"`) {
			t.Fatalf("goodbye logged as %q", line)
		}
	}
}
