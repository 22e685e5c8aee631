package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
	"github.com/switchyard-proxy/switchyard/pool"
)

// session is one client connection. Its goroutine (serve) owns both
// connections and closes them; the only other goroutine it starts is the
// client-to-server copy during the relay, which it waits for.
//
// Its life is a sequence of parts, each in a file of its own: startup
// negotiation (startup.go, negotiate.go), the connector (connector.go:
// route, dial, register, re-check), relay-mode login (passthrough.go,
// confirm.go) and the relay (relay.go). run only sequences them.
type session struct {
	srv    *Server
	id     uint64
	ln     *listener
	start  time.Time
	root   context.Context // the session's context; every phase's descends from it
	cancel context.CancelCauseFunc

	mu     sync.Mutex // guards client and server against interrupt
	client net.Conn   // becomes the *tls.Conn after an SSLRequest
	server *pool.Conn

	cr *bufio.Reader // every client read goes through it
	cw clientWriter  // every client write goes through it

	startup    *startupMessage
	backend    topology.Member
	unregister func()   // removes the session from the registry
	clientKey  pool.Key // the cancel key the client was given
	admitted   bool     // counted against max_clients (else still starting)
	loggedIn   bool     // the client has logged in: it may hear member names

	// pending counts requests the server has yet to answer with
	// ReadyForQuery (Query, Sync, FunctionCall): while it is above zero
	// the server is busy, and a session Switchyard ends has its query
	// cancelled.
	pending atomic.Int64
	// executed is set by an Execute and cleared by ReadyForQuery: a batch
	// without Sync runs its query with no ReadyForQuery owed. (It stays set
	// after such an Execute completes; a kill then sends a cancel the idle
	// server ignores.)
	executed          atomic.Bool
	bytesIn, bytesOut atomic.Int64

	console     bool                   // an admin console client
	pooled      atomic.Pointer[pooled] // a pooled client's state, for SHOW CLIENTS
	totals      *Totals                // the SHOW STATS row the session counts into
	timing      timing                 // of its requests and transactions
	waitingFrom atomic.Int64           // unix nanos since a pooled client waits for a server, else 0
}

// serve runs the session to its end, tells the client why when it
// should, releases everything and logs one line.
func (s *session) serve(ctx context.Context) {
	stop := context.AfterFunc(ctx, s.interrupt)
	defer stop()
	err := s.run(ctx)
	s.finish(ctx, err)
	level, msg, reason := s.ending(err)
	s.logEnd(err, level, msg)
	s.ln.obs.Ended(reason)
}

// run is the session's life. It returns why the session ended (nil for a
// cancel request served or a client that said goodbye).
func (s *session) run(ctx context.Context) error {
	o := &s.srv.opts
	loginCtx, cancelLogin := context.WithDeadlineCause(ctx, s.start.Add(o.LoginTimeout), errLoginTimeout)
	defer cancelLogin()
	startCtx, cancelStart := context.WithDeadlineCause(loginCtx, s.start.Add(o.StartupTimeout), errStartupTimeout)
	defer cancelStart()

	err := s.phase(startCtx, func() (err error) {
		s.startup, err = s.negotiate(startCtx)
		return err
	})
	if err != nil || s.startup == nil {
		return err
	}
	s.console = s.srv.opts.Console != nil && IsConsole(s.startup.params["database"])
	if err := s.srv.admit(s); err != nil {
		return err
	}
	if s.console {
		return s.runConsole(ctx, loginCtx)
	}
	if s.ln.mode != Relay {
		return s.runPooled(ctx, loginCtx)
	}
	if err := s.phase(loginCtx, func() error {
		if err := s.connect(loginCtx); err != nil {
			return err
		}
		return s.login(loginCtx)
	}); err != nil {
		return err
	}
	s.loggedIn = true
	s.ln.stats.Sessions.Add(1)
	s.totals.Assignments.Add(1)
	return s.relay(ctx)
}

// phase runs f with the session's sockets bound to ctx: when ctx ends,
// every blocked read returns and phase returns ctx's cause (a login or
// startup timeout, a kill, a shutdown) instead of the I/O error it led to.
func (s *session) phase(ctx context.Context, f func() error) error {
	stop := context.AfterFunc(ctx, s.interrupt)
	err := f()
	if !stop() { // interrupted: the sockets are poisoned whatever f returned
		return context.Cause(ctx)
	}
	if err != nil && ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if err != nil && s.root != nil && s.root.Err() != nil {
		// The session's context was cancelled (a kill, a shutdown) and
		// serve's interrupt ended f before the cancellation had reached
		// ctx, a descendant: the cause is the same.
		return context.Cause(s.root)
	}
	return err
}

// interrupt unblocks every read and bounds every write once a phase's
// context is done; the phase then returns the cause.
func (s *session) interrupt() {
	past := time.Unix(1, 0)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.client.SetReadDeadline(past)
	// A blocked write gets a moment to finish so the client can still be
	// told why its session ends.
	s.client.SetWriteDeadline(time.Now().Add(errorWriteGrace))
	if s.server != nil {
		s.server.SetDeadline(past)
	}
}

// setClient replaces the client connection (by its TLS layer).
func (s *session) setClient(c net.Conn) {
	s.mu.Lock()
	s.client = c
	s.mu.Unlock()
	s.cw.setConn(c)
	s.cr = bufio.NewReaderSize(c, 4<<10)
}

// setServer makes c the session's server connection, unless the session
// was already interrupted, in which case it returns the cause (c is
// closed by finish all the same).
func (s *session) setServer(ctx context.Context, c *pool.Conn) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.server = c
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

// finish tells the client why the session ends (if it should be told),
// cancels the server's running query if Switchyard ended a busy session,
// and releases the server connection, the registry entry and the cancel
// key.
func (s *session) finish(ctx context.Context, err error) {
	if renderable(err) {
		s.cw.sendError(forClient(err, s.loggedIn))
		s.ln.stats.Errors.Add(1)
		s.ln.obs.Error(sqlstateClass(errorResponse(err).Code))
	}
	s.mu.Lock()
	client, server := s.client, s.server
	s.mu.Unlock()
	var kc *KillCause
	if errors.As(err, &kc) {
		s.ln.stats.Killed.Add(1)
		if server != nil && (s.pending.Load() > 0 || s.executed.Load()) {
			// Closing the socket alone leaves the query running until it
			// next writes to it; a cancel stops it now.
			if cerr := server.Cancel(context.WithoutCancel(ctx), s.srv.opts.Dialer); cerr != nil && !isClosed(cerr) {
				s.srv.log.Warn("could not cancel the query of an ended session", "session", s.id, "backend", s.backend.Name, "err", cerr)
			}
		}
	}
	if server != nil {
		server.Close()
	}
	client.Close()
	if s.unregister != nil {
		s.unregister()
	}
	if s.clientKey != (pool.Key{}) {
		s.srv.cancels.remove(s.clientKey)
	}
	s.srv.release(s)
}

// ending classifies why the session ended, once, for its log line
// (level and message) and for metrics (a reason from a bounded set).
func (s *session) ending(err error) (slog.Level, string, EndReason) {
	var (
		ce *clientError
		kc *KillCause
		pe *protocolError
		se *silentError
	)
	switch {
	case err == nil && s.startup == nil:
		return slog.LevelDebug, "cancel request served", EndCancelRequest
	case err == nil:
		return slog.LevelInfo, "session ended", EndClient
	case errors.As(err, &kc):
		reason := kc.Reason
		if reason == "" {
			reason = EndKilled
		}
		return slog.LevelInfo, "session ended by Switchyard", reason
	case errors.Is(err, errServerRejected):
		return slog.LevelInfo, "server refused login", EndServerRefused
	case errors.Is(err, errServerClosed):
		return slog.LevelInfo, "server ended the session", EndServerRefused
	case errors.Is(err, errStartupTimeout):
		return slog.LevelInfo, "no startup packet within limits.startup_timeout; closed without a reply", EndTimeout
	case errors.Is(err, errLoginTimeout):
		return slog.LevelWarn, "login not completed within limits.client_login_timeout", EndTimeout
	case errors.As(err, &se):
		return slog.LevelWarn, "bad startup packet; closed without a reply, as PostgreSQL does", EndProtocol
	case errors.As(err, &pe):
		return slog.LevelWarn, "protocol violation", EndProtocol
	case sideOf(err) == SideServer:
		return slog.LevelWarn, "server connection lost", EndServerLost
	case errors.As(err, &ce):
		reason := EndRefused
		switch ce.Code {
		case codeIdleSession, codeIdleInTransaction:
			reason = EndTimeout
		case codeProtocolViolation:
			reason = EndProtocol
		}
		return slog.LevelWarn, "session refused", reason
	case sideOf(err) == SideClient && isClosed(err):
		switch {
		case s.startup == nil && errors.Is(err, io.EOF):
			return slog.LevelDebug, "client closed before sending a startup packet", EndClient
		case s.clientKey == (pool.Key{}):
			return slog.LevelInfo, "client left during login", EndClient
		}
		return slog.LevelInfo, "session ended", EndClient
	case sideOf(err) == SideClient:
		return slog.LevelWarn, "client connection failed", EndClient
	}
	return slog.LevelError, "session failed", EndInternal
}

// logEnd writes the session's one log line.
func (s *session) logEnd(err error, level slog.Level, msg string) {
	attrs := []slog.Attr{
		slog.Uint64("session", s.id),
		slog.String("listener", s.ln.name),
		slog.String("client", s.client.RemoteAddr().String()),
		slog.String("backend", s.backend.Name),
		slog.Duration("duration", time.Since(s.start)),
		slog.Int64("bytes_in", s.bytesIn.Load()),
		slog.Int64("bytes_out", s.bytesOut.Load()),
	}
	if s.startup != nil {
		attrs = append(attrs, slog.String("user", s.startup.params["user"]), slog.String("database", s.startup.params["database"]))
	}
	if err != nil {
		attrs = append(attrs, slog.String("reason", err.Error()))
	}
	s.srv.log.LogAttrs(context.Background(), level, msg, attrs...)
}
