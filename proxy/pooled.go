package proxy

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

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

	reader chan struct{} // the reader started last, closed when it ends; nil once waited for
	out    []byte        // client messages not yet written to the server
	outTo  *pool.Server  // the server out is for

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
	// The database's row exists once a client has logged in to it: a
	// login that fails (a database that does not exist) adds none.
	s.totals = &Totals{}
	defer p.release(ctx)
	if err := s.phase(loginCtx, func() error { return p.login(ctx, loginCtx) }); err != nil {
		return err
	}
	s.loggedIn = true
	s.pooled.Store(p) // its machine is used under p.mu from now on

	s.ln.stats.Sessions.Add(1)
	return p.serve(ctx)
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
	switch msg[0] {
	case 'P':
		p.s.totals.ClientParses.Add(1)
	case 'B':
		p.s.totals.Binds.Add(1)
	}
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
			p.s.ln.obs.Error(sqlstateClass(re.Code))
			p.mu.Lock()
			st = p.m.Fail(msg, re.encode())
			p.mu.Unlock()
			return false, p.reply(st.Reply)
		}
		p.mu.Lock()
		setup := p.m.Attach(sv.Params, &sv.Tag, &sv.Statements)
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
	p.s.timing.begin()
	if st.Send != nil {
		p.out = append(p.out, st.Send...)
	} else {
		p.out = append(p.out, msg...)
	}
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

// attach makes sv the session's server (under p.mu when the reader may
// run).
func (p *pooled) attach(sv *pool.Server) {
	p.sv, p.outTo = sv, sv
	sv.Owner.Store(p.s.id)
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

// bind registers the session as bound to its server's member for its
// whole life (session mode, or pinned), so a role change ends it like a
// relay session.
func (p *pooled) bind() {
	if p.s.unregister != nil {
		return
	}
	b := router.Binding{Listener: p.s.ln.name, Backend: p.member.Name, Role: p.member.Role}
	p.s.unregister = p.s.srv.registry.Add(SessionInfo{ID: p.s.id, Client: p.s.client.RemoteAddr().String(), Binding: b}, p.s.cancel)
}

// pin records that the client keeps its server until it leaves.
func (p *pooled) pin(why string) {
	p.s.srv.log.Debug("client pinned to its server connection", "session", p.s.id, "listener", p.s.ln.name,
		"backend", p.member.Name, "because", why)
	p.bind()
}
