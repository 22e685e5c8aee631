package proxy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
	"github.com/switchyard-proxy/switchyard/internal/wire"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/proxy/pooler"
	"github.com/switchyard-proxy/switchyard/router"
)

// flushAt is how much of the client's stream is buffered for the server
// before it is written even without a flush point.
const flushAt = 32 << 10

// pooled carries out, on sockets, what a pooled client's machine
// (proxy/pooler) decides. The session goroutine reads the client and
// writes to the server; while a server is attached, a reader goroutine
// forwards the server's messages to the client and, when the machine
// releases the server, puts it back in the pool and ends. Only one of
// the two writes to the client at a time: the session goroutine answers
// the client itself only once the reader has ended (waitReader).
type pooled struct {
	s    *session
	set  *pool.Set
	mode pooler.Mode
	db   string
	user string

	mu     sync.Mutex // guards m and sv, shared with the reader
	m      *pooler.Machine
	sv     *pool.Server
	member topology.Member // of the last server acquired

	reader chan struct{} // closed when the last reader ended; nil before the first
	out    []byte        // client messages not yet written to the server
	outTo  *pool.Server  // the server out is for
	pinned bool          // registered as bound to its server's member

	idleSet atomic.Bool // a client read deadline for an idle timeout is armed
}

// runPooled is the life of a pooled client after admission: login at the
// proxy, then requests until it leaves.
func (s *session) runPooled(ctx, loginCtx context.Context) error {
	p := &pooled{s: s, set: s.ln.pools, db: s.startup.params["database"], user: s.startup.params["user"],
		mode: pooler.Transaction}
	if s.ln.mode == PoolSession {
		p.mode = pooler.Session
	}
	defer p.release(ctx)
	if err := s.phase(loginCtx, func() error { return p.login(ctx, loginCtx) }); err != nil {
		return err
	}
	s.ln.stats.Sessions.Add(1)
	return p.serve(ctx)
}

// login authenticates the client at the proxy, checks a server out to
// learn (and check) the client's database and apply its startup
// settings, and tells the client what PostgreSQL would: its parameters,
// a cancel key and ReadyForQuery. In transaction mode the server goes
// back to the pool at once.
//
// ctx is the session's, which a session-mode reader lives under; loginCtx
// bounds the login.
func (p *pooled) login(ctx, loginCtx context.Context) error {
	s := p.s
	if s.startup.replication() {
		return onClient(newClientError(codeFeatureNotSupported,
			"replication connections are not supported on pooled listener %q; use a listener with pool_mode = \"none\"", s.ln.name))
	}
	settings, bad := pooler.StartupSettings(s.startup.params)
	if bad != "" {
		return onClient(newClientError(codeSyntaxError, "invalid command-line argument for server process: %s", bad))
	}
	if err := s.authenticateClient(loginCtx); err != nil {
		return err
	}
	sv, err := p.acquire(loginCtx)
	if err != nil {
		var se *pool.ServerError
		if errors.As(err, &se) { // the server's own words: 3D000, 28P01, ...
			s.cw.queue(se.Raw)
			s.cw.flush()
			return fmt.Errorf("%w: %s %s", errServerRejected, se.Code, se.Message)
		}
		var re *requestError
		if errors.As(err, &re) {
			return &clientError{Code: re.Code, Message: re.Message, Detail: re.Detail, cause: re.cause}
		}
		return err
	}
	want := s.ln.welcome.get(p.db, p.user)
	if want == nil {
		want = map[string]string{}
	}
	for k, v := range settings {
		want[k] = v
	}
	p.m = pooler.New(p.mode, want)
	p.attach(sv)
	if setup := p.m.Attach(sv.Params, &sv.Tag); setup != nil {
		if err := p.runSetup(sv, setup); err != nil {
			return err
		}
	}
	s.cw.queue(pooler.Welcome(p.m.Settings(), sv.Params))
	s.clientKey = s.srv.cancels.register(p.cancelTarget(sv))
	s.cw.queue(backendKeyData(s.clientKey))
	s.cw.queue(readyForQueryIdle)
	if err := s.cw.flush(); err != nil {
		return onClient(err)
	}
	if !p.m.Release() {
		s.backend = memberOf(sv, p.member)
		p.bind(sv)
		p.startReader(ctx, sv)
		return nil
	}
	p.detach()
	p.set.Put(sv, pool.Idle)
	return nil
}

var readyForQueryIdle = []byte{'Z', 0, 0, 0, 5, 'I'}

// runSetup applies the client's startup settings on its first server,
// synchronously (no reader runs yet). A setting PostgreSQL refuses ends
// the login with the server's own error, as a bad startup parameter does.
func (p *pooled) runSetup(sv *pool.Server, setup []byte) error {
	if _, err := sv.Write(setup); err != nil {
		return onServer(err)
	}
	for p.m.Busy() {
		msg, err := wire.ReadMessage(sv.R, maxServerLoginMsg)
		if err != nil {
			return onServer(err)
		}
		if st := p.m.Server(msg, sv.Params); st.SetupFailed != nil {
			p.s.cw.discard()
			p.s.cw.queue(asFatal(st.SetupFailed))
			p.s.cw.flush()
			return serverRejected(st.SetupFailed)
		}
	}
	return nil
}

// cancelTarget is where the client's CancelRequest goes: in session mode
// its server, whose process ID the client is given; in transaction mode
// whichever server runs its transaction at the time, if any, and the
// client is given a process ID no server has.
func (p *pooled) cancelTarget(sv *pool.Server) cancelTarget {
	if p.mode == pooler.Session {
		return cancelTarget{addr: sv.Addr, key: sv.Key}
	}
	return cancelTarget{key: pool.Key{PID: fakePID(), Secret: "0000"}, current: func() (string, pool.Key, bool) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.sv == nil || !p.m.Busy() {
			return "", pool.Key{}, false
		}
		return p.sv.Addr, p.sv.Key, true
	}}
}

// serve runs the client's requests until it leaves or the session ends.
func (p *pooled) serve(ctx context.Context) error {
	for {
		if err := p.armIdle(ctx); err != nil {
			return err
		}
		msg, err := wire.NextMessage(p.s.cr, wire.MaxMessageLen)
		if err != nil {
			return p.readFailed(ctx, err)
		}
		p.s.countIn(len(msg))
		done, err := p.client(ctx, msg)
		if err != nil || done {
			return err
		}
	}
}

// client carries out the machine's decision on one client message; done
// reports a Terminate.
func (p *pooled) client(ctx context.Context, msg []byte) (done bool, err error) {
	p.mu.Lock()
	if p.sv != nil && p.sv.Lost() && !p.m.Busy() {
		// Its member lost its role while the client was idle in a
		// transaction (or, pinned, between transactions).
		p.mu.Unlock()
		if err := p.abandon(); err != nil {
			return false, err
		}
		p.mu.Lock()
	}
	st := p.m.Client(msg)
	p.mu.Unlock()
	if st.Terminate {
		p.flushServer()
		return true, nil
	}
	if st.Need {
		p.waitReader()
		sv, err := p.acquire(ctx)
		if err != nil {
			var (
				re *requestError
				se *pool.ServerError
			)
			if errors.As(err, &se) { // a new server refused the client's user or database
				re = &requestError{Code: se.Code, Message: se.Message, Detail: se.Detail, cause: err}
			} else if !errors.As(err, &re) {
				return false, err
			}
			p.s.srv.log.Info("request failed: no server", "session", p.s.id, "listener", p.s.ln.name, "err", err)
			p.mu.Lock()
			st = p.m.Fail(msg, re.encode())
			p.mu.Unlock()
			return false, p.reply(st.Reply)
		}
		p.mu.Lock()
		setup := p.m.Attach(sv.Params, &sv.Tag)
		p.attach(sv)
		st = p.m.Client(msg)
		p.mu.Unlock()
		p.out = append(p.out[:0], setup...)
		// The session goroutine goes on reading the client while the
		// reader forwards the server: a client that pipelines, streams
		// COPY data or vanishes mid-query is seen at once.
		p.startReader(ctx, sv)
	}
	if st.Pinned != "" {
		p.pin(st.Pinned)
	}
	if st.Reply != nil {
		p.waitReader()
		return false, p.reply(st.Reply)
	}
	if !st.Forward {
		return false, nil
	}
	p.out = append(p.out, msg...)
	if !st.Flush && p.s.cr.Buffered() > 0 && len(p.out) < flushAt {
		return false, nil
	}
	p.flushServer()
	return false, nil
}

// flushServer writes what is buffered for the server. A failed write is
// the reader's to handle: the server is gone, and it reads the end.
func (p *pooled) flushServer() {
	if len(p.out) > 0 && p.outTo != nil {
		if _, err := p.outTo.Write(p.out); err != nil {
			p.outTo.Conn.Close()
		}
	}
	p.out = p.out[:0]
}

// reply sends the client an answer of Switchyard's own.
func (p *pooled) reply(b []byte) error {
	p.s.cw.queue(b)
	if err := p.s.cw.flush(); err != nil {
		return onClient(err)
	}
	return nil
}

// startReader starts forwarding sv's messages to the client in a
// goroutine of their own.
func (p *pooled) startReader(ctx context.Context, sv *pool.Server) {
	done := make(chan struct{})
	p.reader = done
	go func() {
		defer close(done)
		p.read(ctx, sv)
	}()
}

// waitReader returns once no reader goroutine runs.
func (p *pooled) waitReader() {
	if p.reader != nil {
		<-p.reader
		p.reader = nil
	}
}

// read forwards sv's messages to the client until the machine releases
// sv (it goes back to the pool) or sv fails.
func (p *pooled) read(ctx context.Context, sv *pool.Server) {
	for {
		msg, err := wire.NextMessage(sv.R, wire.MaxMessageLen)
		if err != nil {
			p.serverGone(ctx, sv, err)
			return
		}
		typ := msg[0] // msg is sv's buffer, which is not ours once sv is back in the pool
		done, err := p.fromServer(ctx, sv, msg)
		if err != nil {
			p.s.cancel(err)
			return
		}
		if typ == 'Z' {
			p.armIdle(ctx) // the client may now be idle, in a transaction or out of one
		}
		if done {
			return
		}
	}
}

// fromServer carries out the machine's decision on one message of sv;
// done reports that sv is no longer the client's to read: released to
// the pool, lost, or abandoned. An error means the client is gone.
func (p *pooled) fromServer(ctx context.Context, sv *pool.Server, msg []byte) (done bool, err error) {
	p.mu.Lock()
	if p.sv != sv { // abandoned under us
		p.mu.Unlock()
		return true, nil
	}
	st := p.m.Server(msg, sv.Params)
	if st.Release {
		p.detachLocked()
	}
	p.mu.Unlock()
	if st.Fatal {
		p.serverGone(ctx, sv, serverEnded(msg))
		return true, nil
	}
	if st.SetupFailed != nil {
		p.s.srv.log.Warn("re-applying a client's settings on a server failed", "session", p.s.id,
			"backend", sv.Member, "err", serverRejected(st.SetupFailed))
	}
	if st.Forward {
		cw := &p.s.cw
		cw.queue(msg)
		if st.Release || sv.R.Buffered() == 0 || len(cw.buf) >= flushAt {
			n := len(cw.buf)
			if err := cw.flush(); err != nil {
				if st.Release {
					p.set.Put(sv, pool.Idle)
				}
				return true, onClient(err)
			}
			p.s.countOut(n)
		}
	}
	if st.Release {
		p.set.Put(sv, pool.Idle)
		return true, nil
	}
	return false, nil
}

// serverGone handles the attached server's failure: the server goes, and
// the client is told its request or transaction failed and keeps its
// connection, or, if it cannot go on without that server (session mode,
// pinned), the session ends.
func (p *pooled) serverGone(ctx context.Context, sv *pool.Server, cause error) {
	p.mu.Lock()
	if p.sv != sv { // abandoned, or released and the session ending
		p.mu.Unlock()
		return
	}
	if ctx.Err() != nil { // the session is ending; release puts sv back
		p.mu.Unlock()
		return
	}
	qe := p.lostError(sv, cause)
	reply, end := p.m.Lost(qe.encode())
	p.detachLocked()
	p.mu.Unlock()
	p.set.Put(sv, pool.Close)
	if end {
		if p.s.cw.last() == 'E' { // the server's own FATAL has reached the client
			p.s.cancel(errServerClosed)
			return
		}
		p.s.cancel(p.endCause(sv, cause))
		return
	}
	p.s.srv.log.Info("server connection lost during a transaction; the client keeps its connection",
		"session", p.s.id, "backend", sv.Member, "err", cause)
	if reply == nil {
		return
	}
	if !p.s.cw.atBoundary() {
		p.s.cancel(onServer(cause))
		return
	}
	if err := p.reply(reply); err != nil {
		p.s.cancel(err)
	}
}

// abandon gives up the attached server of a client between requests
// whose member lost its role.
func (p *pooled) abandon() error {
	p.mu.Lock()
	sv := p.sv
	qe := p.lostError(sv, nil)
	reply, end := p.m.Lost(qe.encode())
	p.detachLocked()
	p.mu.Unlock()
	sv.SetReadDeadline(time.Unix(1, 0)) // ends the reader, which finds sv abandoned
	p.waitReader()
	p.set.Put(sv, pool.Close)
	if end {
		return p.endCause(sv, nil)
	}
	if reply != nil { // an extended batch without Sync was under way
		return p.reply(reply)
	}
	return nil
}

// lostError is what a client whose server went away mid-transaction is
// told.
func (p *pooled) lostError(sv *pool.Server, cause error) *requestError {
	if sv.Lost() {
		return &requestError{Code: codeConnectionFailure, cause: cause, Message: fmt.Sprintf(
			"server %q stopped serving listener %q (the primary changed) during this transaction; the transaction did not complete", sv.Member, p.s.ln.name),
			Hint: "Run the transaction again: it will go to the current primary."}
	}
	return &requestError{Code: codeConnectionFailure, cause: cause, Message: fmt.Sprintf(
		"the connection to server %q was lost during this transaction; the transaction did not complete", sv.Member),
		Hint: "Run the transaction again."}
}

// endCause ends a client that cannot go on without its lost server.
func (p *pooled) endCause(sv *pool.Server, cause error) error {
	if sv.Lost() {
		return &KillCause{SQLState: codeAdminShutdown, Message: fmt.Sprintf(
			"terminating connection because server %q no longer serves listener %q; reconnect", sv.Member, p.s.ln.name)}
	}
	if cause == nil {
		cause = errors.New("server connection closed")
	}
	return onServer(&clientError{Code: codeConnectionFailure, cause: cause, Message: fmt.Sprintf(
		"connection to server %s was lost; reconnect to continue", sv.Member)})
}

// attach makes sv the session's server (under p.mu when the reader may
// run).
func (p *pooled) attach(sv *pool.Server) {
	p.sv, p.outTo = sv, sv
	p.s.mu.Lock()
	p.s.server = sv.Conn
	p.s.mu.Unlock()
}

func (p *pooled) detach() {
	p.mu.Lock()
	p.detachLocked()
	p.mu.Unlock()
}

func (p *pooled) detachLocked() {
	p.sv = nil
	p.s.mu.Lock()
	p.s.server = nil
	p.s.mu.Unlock()
}

// bind registers the session as bound to sv's member for its whole life
// (session mode, or pinned), so a role change ends it like a relay
// session.
func (p *pooled) bind(sv *pool.Server) {
	if p.s.unregister != nil {
		return
	}
	m := memberOf(sv, p.member)
	b := router.Binding{Listener: p.s.ln.name, Backend: m.Name, Role: m.Role}
	p.s.unregister = p.s.srv.registry.Add(SessionInfo{ID: p.s.id, Client: p.s.client.RemoteAddr().String(), Binding: b}, p.s.cancel)
}

// pin records that the client keeps its server until it leaves.
func (p *pooled) pin(why string) {
	p.mu.Lock()
	sv := p.sv
	p.mu.Unlock()
	if sv == nil {
		return
	}
	p.s.srv.log.Debug("client pinned to its server connection", "session", p.s.id, "listener", p.s.ln.name,
		"backend", sv.Member, "because", why)
	p.bind(sv)
}

// armIdle sets the client read deadline for client_idle_timeout (no
// server attached) or idle_transaction_timeout (idle in a transaction),
// or clears it. The session goroutine calls it before each read, and the
// reader when a ReadyForQuery leaves the client idle.
func (p *pooled) armIdle(ctx context.Context) error {
	o := p.s.ln.popts
	if o.ClientIdleTimeout <= 0 && o.IdleTransactionTimeout <= 0 {
		return nil
	}
	p.mu.Lock()
	var d time.Duration
	switch {
	case p.sv == nil:
		d = o.ClientIdleTimeout
	case p.m.InTransaction():
		d = o.IdleTransactionTimeout
	}
	p.mu.Unlock()
	switch {
	case d > 0:
		p.s.client.SetReadDeadline(time.Now().Add(d))
		p.idleSet.Store(true)
	case p.idleSet.Swap(false):
		p.s.client.SetReadDeadline(time.Time{})
	}
	if ctx.Err() != nil { // interrupt's deadline may have been overwritten
		return context.Cause(ctx)
	}
	return nil
}

// readFailed turns a failed client read into the session's end.
func (p *pooled) readFailed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if p.idleSet.Load() && isTimeoutErr(err) {
		p.mu.Lock()
		inTx := p.sv != nil
		p.mu.Unlock()
		if inTx {
			return &clientError{Code: codeIdleInTransaction,
				Message: "terminating connection due to idle-in-transaction timeout (pool.idle_transaction_timeout)"}
		}
		return &clientError{Code: codeIdleSession,
			Message: "terminating connection due to idle-session timeout (pool.client_idle_timeout)"}
	}
	if isClosed(err) {
		return onClient(err)
	}
	return onClient(&protocolError{err: err})
}

// release returns the server at the session's end: clean ones to the
// pool (reset in session mode and when pinned), anything else closed; a
// server still running the client's query has it cancelled first.
func (p *pooled) release(ctx context.Context) {
	p.mu.Lock()
	sv := p.sv
	clean := p.m != nil && p.m.Clean()
	busy := p.m != nil && p.m.Busy()
	pinned := p.m != nil && p.m.Pinned() != ""
	p.detachLocked()
	p.mu.Unlock()
	if sv == nil {
		p.waitReader()
		return
	}
	if busy {
		if err := sv.Cancel(context.WithoutCancel(ctx), p.s.srv.opts.Dialer); err != nil && !isClosed(err) {
			p.s.srv.log.Warn("could not cancel the query of an ended session", "session", p.s.id, "backend", sv.Member, "err", err)
		}
	}
	sv.SetReadDeadline(time.Unix(1, 0)) // ends the reader, which finds sv gone
	p.waitReader()
	how := pool.Close
	if clean && !busy {
		sv.SetDeadline(time.Time{})
		how = pool.Idle
		if p.mode == pooler.Session || pinned {
			how = pool.Reset
			pooler.Reset(sv.Params, &sv.Tag)
		}
	}
	p.set.Put(sv, how)
}

func isTimeoutErr(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

// serverEnded describes a server's FATAL ErrorResponse, for the log.
func serverEnded(msg []byte) error {
	var e pgproto3.ErrorResponse
	if len(msg) > 5 && e.Decode(msg[5:]) == nil {
		return fmt.Errorf("the server ended the connection: %s %s", e.Code, e.Message)
	}
	return errors.New("the server ended the connection")
}
