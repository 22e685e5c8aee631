package proxy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard-proxy/switchyard/internal/wire"
	"github.com/switchyard-proxy/switchyard/pool"
)

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
	p.count(msg, st.Forward)
	cw := &p.s.cw
	cw.queue(st.Before)
	switch {
	case !st.Forward:
	case st.Send != nil:
		cw.queue(st.Send)
	default:
		cw.queue(msg)
	}
	cw.queue(st.After)
	if len(cw.buf) > 0 && (st.Release || sv.R.Buffered() == 0 || len(cw.buf) >= flushAt) {
		n := len(cw.buf)
		if err := cw.flush(); err != nil {
			if st.Release {
				p.set.Put(sv, pool.Idle)
			}
			return true, onClient(err)
		}
		p.s.countOut(n)
	}
	if st.Release {
		p.set.Put(sv, pool.Idle)
		return true, nil
	}
	return false, nil
}

// count counts a server message into the client's stats: requests and
// transactions when their ReadyForQuery goes to the client, every Parse
// the server completed, and the class of every error the client gets.
func (p *pooled) count(msg []byte, forward bool) {
	switch msg[0] {
	case 'Z':
		if forward && len(msg) > 5 {
			p.s.timing.ready(msg[5], p.s.totals, p.s.ln.obs)
		}
	case '1':
		p.s.totals.ServerParses.Add(1)
	case 'E':
		if forward {
			p.s.ln.obs.Error(sqlstateClass(errorCode(msg)))
		}
	}
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

// serverEnded describes a server's FATAL ErrorResponse, for the log.
func serverEnded(msg []byte) error {
	return fmt.Errorf("the server ended the connection: %s", serverErrorText(msg))
}
