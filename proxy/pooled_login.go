package proxy

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchyard-proxy/switchyard/internal/wire"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/proxy/pooler"
)

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
	// The server accepted the database: from now on the client counts
	// into its row (no reader runs yet).
	login := s.totals
	s.totals = s.ln.dbTotals.get(p.db)
	s.totals.Assignments.Add(login.Assignments.Load())
	s.totals.WaitTime.Add(login.WaitTime.Load())
	want := s.ln.welcome.get(p.db, p.user)
	if want == nil {
		want = map[string]string{}
	}
	for k, v := range settings {
		want[k] = v
	}
	p.m = pooler.New(p.mode, want)
	p.m.Startup(settings)
	p.m.TrackStatements(s.srv.statements, s.ln.popts.Load().MaxPrepared)
	p.attach(sv)
	if setup := p.m.Attach(sv.Params, &sv.Tag, &sv.Statements); setup != nil {
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
		s.backend = p.member
		p.bind()
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
