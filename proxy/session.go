package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-proxy/switchyard/router"
)

// session is one client connection. Its goroutine (serve) owns both
// connections and closes them; the only other goroutine it starts is the
// client-to-server copy during the relay, which it waits for.
type session struct {
	srv    *Server
	id     uint64
	ln     *listener
	start  time.Time
	cancel context.CancelCauseFunc

	client net.Conn // becomes the *tls.Conn after an SSLRequest
	cr     *bufio.Reader

	mu       sync.Mutex // guards server and deadline for interrupt
	server   net.Conn
	deadline time.Time // the login deadline; zero once relaying
	sr       *bufio.Reader

	startup     []byte // the client's StartupMessage, as sent
	replication bool   // a replication connection: no SQL before the client's
	backend     router.Member
	unregister  func() // removes the session from the registry
	cancelKey   cancelKey
	user        string
	database    string

	bytesIn, bytesOut int64  // relayed each way, for the log line
	framerOut         framer // server→client framing: where an error may be injected
}

// serve runs the session to its end and logs one line about it.
func (s *session) serve(ctx context.Context, overLimit bool) {
	defer s.client.Close()
	stop := context.AfterFunc(ctx, s.interrupt)
	defer stop()

	err := s.run(ctx, overLimit)
	s.mu.Lock()
	server := s.server
	s.mu.Unlock()
	if server != nil {
		server.Close()
	}
	if s.unregister != nil {
		s.unregister()
	}
	if s.cancelKey != (cancelKey{}) {
		s.srv.cancels.remove(s.cancelKey)
	}
	s.logEnd(err)
}

// interrupt unblocks every read and bounds every write once the session's
// context is done; serve then sees the cause.
func (s *session) interrupt() {
	past := time.Unix(1, 0)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.client.SetReadDeadline(past)
	// A blocked write gets a moment to finish so the client can still be
	// told why its session ends.
	s.client.SetWriteDeadline(time.Now().Add(time.Second))
	if s.server != nil {
		s.server.SetDeadline(past)
	}
}

// setDeadline sets both connections' deadline (zero clears it), unless
// the session was already interrupted, in which case it returns the cause.
// A server connection set later gets the same deadline.
func (s *session) setDeadline(ctx context.Context, t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	s.deadline = t
	s.client.SetDeadline(t)
	if s.server != nil {
		s.server.SetDeadline(t)
	}
	return nil
}

func (s *session) setServer(ctx context.Context, c net.Conn) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.server = c
	s.sr = bufio.NewReaderSize(c, 8<<10)
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	c.SetDeadline(s.deadline) // the login deadline covers the server too
	return nil
}

// run is the session's life: startup, backend choice, login relay, relay.
// It returns why the session ended (nil for a cancel request served).
func (s *session) run(ctx context.Context, overLimit bool) error {
	if err := s.setDeadline(ctx, s.start.Add(s.srv.opts.LoginTimeout)); err != nil {
		return err
	}
	startup, err := s.negotiate(ctx)
	if err != nil || startup == nil {
		return s.fail(ctx, err)
	}
	if overLimit {
		return s.fail(ctx, onClient(newClientError(codeTooManyConnections,
			"too many clients already (limits.max_clients = %d)", s.srv.opts.MaxClients)))
	}
	cw := bufio.NewWriterSize(s.client, 4<<10)
	if err := s.connect(ctx, startup.raw); err != nil {
		return s.fail(ctx, err)
	}
	if err := s.login(ctx, cw); err != nil {
		return s.fail(ctx, err)
	}
	if err := s.setDeadline(ctx, time.Time{}); err != nil {
		return s.fail(ctx, err)
	}
	return s.relay(ctx)
}

// negotiate reads startup packets until a StartupMessage, answering
// SSLRequest and GSSENCRequest and serving a CancelRequest. It returns nil
// and no error after serving a cancel.
func (s *session) negotiate(ctx context.Context) (*startupPacket, error) {
	for {
		p, err := readStartup(s.cr)
		if err != nil {
			return nil, err
		}
		switch p.code {
		case codeSSLRequest:
			if err := s.startTLS(ctx); err != nil {
				return nil, err
			}
		case codeGSSENCRequest:
			if isTLS(s.client) {
				return nil, onClient(newClientError(codeProtocolViolation, "GSSENCRequest after TLS was established"))
			}
			if _, err := s.client.Write([]byte{'N'}); err != nil {
				return nil, onClient(err)
			}
		case codeCancelRequest:
			key, err := parseCancel(p)
			if err != nil {
				return nil, err
			}
			s.forwardCancel(ctx, key)
			return nil, nil
		default:
			m, err := parseStartupMessage(p)
			if err != nil {
				return nil, err
			}
			if s.srv.opts.ClientTLS == ClientTLSRequire && !isTLS(s.client) {
				return nil, onClient(newClientError(codeInvalidAuthorization,
					"TLS is required: connect with sslmode=require (tls.client_mode = \"require\")"))
			}
			s.user, s.database = m.Parameters["user"], m.Parameters["database"]
			s.replication = m.Parameters["replication"] != ""
			if s.database == "" {
				s.database = s.user
			}
			return &p, nil
		}
	}
}

func (s *session) startTLS(ctx context.Context) error {
	if isTLS(s.client) {
		return onClient(newClientError(codeProtocolViolation, "SSLRequest after TLS was established"))
	}
	if s.srv.tlsConfig == nil || s.srv.opts.ClientTLS == ClientTLSDisable {
		if _, err := s.client.Write([]byte{'N'}); err != nil {
			return onClient(err)
		}
		return nil
	}
	// Bytes sent before the handshake would be trusted plaintext
	// (CVE-2021-23214); refuse them.
	if s.cr.Buffered() > 0 {
		return onClient(newClientError(codeProtocolViolation, "received unencrypted data after SSLRequest"))
	}
	if _, err := s.client.Write([]byte{'S'}); err != nil {
		return onClient(err)
	}
	tconn := tls.Server(s.client, s.srv.tlsConfig)
	if err := tconn.HandshakeContext(ctx); err != nil {
		return onClient(fmt.Errorf("TLS handshake: %w", err))
	}
	s.mu.Lock()
	s.client = tconn
	s.mu.Unlock()
	s.cr = bufio.NewReader(tconn)
	return nil
}

// forwardCancel relays a CancelRequest to the backend its key stands for.
// Unknown keys are ignored silently, as PostgreSQL does.
func (s *session) forwardCancel(ctx context.Context, key cancelKey) {
	t, ok := s.srv.cancels.lookup(key)
	if !ok {
		s.srv.log.Debug("cancel request with unknown key", "listener", s.ln.name, "client", s.client.RemoteAddr().String())
		return
	}
	if err := sendCancel(ctx, s.srv.opts.Dialer, t); err != nil && !isClosed(err) {
		s.srv.log.Warn("cancel request not delivered", "listener", s.ln.name, "backend", t.addr, "err", err)
		return
	}
	s.srv.log.Debug("cancel request forwarded", "listener", s.ln.name, "backend", t.addr)
}

// fail sends the client the error that ends its session, when the
// protocol allows one, and returns err.
func (s *session) fail(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		err = context.Cause(ctx)
	} else if errors.Is(err, os.ErrDeadlineExceeded) && sideOf(err) != "" {
		err = onClient(&clientError{Code: "57014", Message: fmt.Sprintf(
			"canceling login: not completed within limits.client_login_timeout (%s)", s.srv.opts.LoginTimeout)})
	}
	if !renderable(err) {
		return err
	}
	s.client.SetWriteDeadline(time.Now().Add(time.Second))
	s.client.Write(encodeError(err))
	return err
}

// renderable reports whether the client should be told about err: not when
// the client itself went away or the server already sent its own error.
func renderable(err error) bool {
	var (
		ce *clientError
		kc *router.KillCause
	)
	if errors.As(err, &ce) || errors.As(err, &kc) {
		return true
	}
	if errors.Is(err, errServerRejected) {
		return false
	}
	return sideOf(err) == SideServer
}

// logEnd writes the session's one log line, at a level fitting its end.
func (s *session) logEnd(err error) {
	level, msg := slog.LevelInfo, "session ended"
	var (
		ce *clientError
		kc *router.KillCause
		pe *protocolError
	)
	switch {
	case err == nil:
		if s.backend.Name == "" { // a cancel request
			level, msg = slog.LevelDebug, "cancel request served"
		}
	case errors.As(err, &kc):
		msg = "session ended by Switchyard"
	case errors.Is(err, errServerRejected):
		msg = "server refused login"
	case errors.As(err, &pe):
		level, msg = slog.LevelWarn, "protocol violation"
	case sideOf(err) == SideServer:
		level, msg = slog.LevelWarn, "server connection lost"
	case errors.As(err, &ce):
		level, msg = slog.LevelWarn, "session refused"
	case sideOf(err) == SideClient && isClosed(err):
		switch {
		case s.user == "" && errors.Is(err, io.EOF):
			level, msg = slog.LevelDebug, "client closed before sending a startup packet"
		case s.cancelKey == (cancelKey{}):
			msg = "client left during login"
		}
	case sideOf(err) == SideClient:
		level, msg = slog.LevelWarn, "client connection failed"
	default:
		level, msg = slog.LevelError, "session failed"
	}
	attrs := []slog.Attr{
		slog.Uint64("session", s.id),
		slog.String("listener", s.ln.name),
		slog.String("client", s.client.RemoteAddr().String()),
		slog.String("backend", s.backend.Name),
		slog.Duration("duration", time.Since(s.start)),
		slog.Int64("bytes_in", s.bytesIn),
		slog.Int64("bytes_out", s.bytesOut),
	}
	if s.user != "" {
		attrs = append(attrs, slog.String("user", s.user), slog.String("database", s.database))
	}
	if err != nil {
		attrs = append(attrs, slog.String("reason", err.Error()))
	}
	s.srv.log.LogAttrs(context.Background(), level, msg, attrs...)
}

// relay copies whole messages both ways until either side ends or the
// session is cancelled, then tells the client why if it still can. The
// client-to-server copy runs in its own goroutine; this goroutine copies
// server to client and is the only writer to the client.
func (s *session) relay(ctx context.Context) error {
	var terminated atomic.Bool // the client sent Terminate ('X')
	var inErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		var f framer
		s.bytesIn, inErr = pump(s.server, s.cr, &f, SideClient, func(t byte) {
			if t == 'X' {
				terminated.Store(true)
			}
		})
		s.cancel(inErr)
	}()
	var outErr error
	s.bytesOut, outErr = pump(s.client, s.sr, &s.framerOut, SideServer, nil)
	s.cancel(outErr)
	<-done

	cause := context.Cause(ctx)
	var pe *protocolError
	switch {
	case sideOf(cause) == SideServer && isClosed(cause) && (terminated.Load() || s.framerOut.last == 'E'):
		// The client said goodbye, or the server sent its own FATAL.
		return nil
	case sideOf(cause) == SideClient && isClosed(cause):
		return cause
	case sideOf(cause) == SideClient && errors.As(cause, &pe):
		cause = onClient(&clientError{Code: codeProtocolViolation, Message: "invalid message from client: " + pe.err.Error(), cause: cause})
	case sideOf(cause) == SideServer:
		cause = onServer(&clientError{Code: codeConnectionFailure, cause: cause, Message: fmt.Sprintf(
			"connection to server %s (%s) was lost; reconnect to continue", s.backend.Name, s.backend.Addr)})
	}
	if s.framerOut.atBoundary() && renderable(cause) {
		s.client.SetWriteDeadline(time.Now().Add(time.Second))
		s.client.Write(encodeError(cause))
	}
	return cause
}
