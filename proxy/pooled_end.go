package proxy

import (
	"context"
	"errors"
	"time"

	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/proxy/pooler"
)

// armIdle sets the client read deadline for client_idle_timeout (no
// server attached) or idle_transaction_timeout (idle in a transaction),
// or clears it. The session goroutine calls it before each read, and the
// reader when a ReadyForQuery leaves the client idle.
func (p *pooled) armIdle(ctx context.Context) error {
	o := p.s.ln.popts.Load()
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
	if p.m != nil {
		p.m.Close()
	}
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
			if pooler.Deallocates(p.s.ln.popts.Load().ResetQuery) {
				sv.Statements = nil
			}
		}
	}
	p.set.Put(sv, how)
}

func isTimeoutErr(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}
