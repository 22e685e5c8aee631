package proxy

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/router"
)

// retryStep is how often acquire tries again while a switchover settles.
const retryStep = 50 * time.Millisecond

// acquire checks a server out for the client: it asks the router for the
// listener's members and the pool of the first that serves, and rides
// out a switchover: while the old primary refuses connections or is
// drained, and the new one is not yet named or still in recovery, it
// tries again for up to leader_wait. Failures the client survives come
// back as *requestError; a login the server refused for good as
// *pool.ServerError.
func (p *pooled) acquire(ctx context.Context) (*pool.Server, error) {
	s := p.s
	start := time.Now()
	s.waitingFrom.Store(start.UnixNano())
	s.ln.stats.Waiting.Add(1)
	sv, err := p.acquireServer(ctx)
	s.ln.stats.Waiting.Add(-1)
	s.waitingFrom.Store(0)
	if err == nil {
		d := time.Since(start)
		s.totals.Assignments.Add(1)
		s.totals.WaitTime.Add(d.Microseconds())
		s.ln.obs.Wait(d)
	}
	return sv, err
}

func (p *pooled) acquireServer(ctx context.Context) (*pool.Server, error) {
	s := p.s
	wait := s.srv.confirmWait()
	var (
		deadline time.Time
		timer    *time.Timer
		lastErr  error
	)
	for {
		cands, err := s.srv.opts.Router.Candidates(ctx, s.ln.name)
		if err != nil {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if len(cands) == 0 {
			return nil, &requestError{Code: codeCannotConnectNow, cause: lastErr, Message: fmt.Sprintf(
				"no %s server is available for listener %q; try again shortly", s.ln.role, s.ln.name)}
		}
		for _, m := range cands {
			sv, err := p.set.Get(ctx, pool.ID{Member: m.Name, Database: p.db, User: p.user}, m.Addr)
			if err == nil {
				if l := s.srv.opts.Router.Check(router.Binding{Listener: s.ln.name, Backend: m.Name, Role: m.Role}); l != nil {
					p.set.Put(sv, pool.Idle) // a topology change between Candidates and Get
					lastErr = pool.ErrDrained
					continue
				}
				p.member = m
				return sv, nil
			}
			if ctx.Err() != nil {
				return nil, context.Cause(ctx)
			}
			var (
				ee *pool.ExhaustedError
				se *pool.ServerError
			)
			switch {
			case errors.As(err, &ee):
				return nil, &requestError{Code: codeTooManyConnections, Message: err.Error(), cause: err,
					Hint: "Raise the pool's default_pool_size (or the limit named), or run fewer concurrent transactions."}
			case errors.As(err, &se) && !transientServerError(se):
				return nil, err
			}
			lastErr = err
		}
		// Every candidate failed for a reason a switchover explains: the
		// old primary going away, the new one not yet ready.
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(wait)
			timer = time.NewTimer(retryStep)
			defer timer.Stop()
		} else if now.After(deadline) {
			return nil, &requestError{Code: codeConnectionFailure, cause: lastErr, Message: fmt.Sprintf(
				"could not connect to a %s server for listener %q within %s: %s", s.ln.role, s.ln.name, wait, dialReason(lastErr))}
		} else {
			timer.Reset(retryStep)
		}
		select {
		case <-timer.C:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// transientServerError: the server refused a login for now, not for good
// (starting up, shutting down, too many connections).
func transientServerError(se *pool.ServerError) bool {
	switch se.Code {
	case "57P03", "57P01", "53300":
		return true
	}
	return len(se.Code) == 5 && se.Code[:2] == "08"
}

// fakePID is the process ID a transaction-pooled client is given: above
// Linux's largest possible PID (2^22), so no backend has it and
// pg_terminate_backend on it terminates nothing.
func fakePID() uint32 {
	var b [4]byte
	rand.Read(b[:])
	return 1<<23 | binary.BigEndian.Uint32(b[:])&(1<<30-1)
}

// asFatal turns an ErrorResponse into a FATAL one: a startup setting the
// server refused ends the login, as it would at PostgreSQL's own.
func asFatal(msg []byte) []byte {
	var e pgproto3.ErrorResponse
	if len(msg) < 5 || e.Decode(msg[5:]) != nil {
		return msg
	}
	e.Severity, e.SeverityUnlocalized = "FATAL", "FATAL"
	out, err := e.Encode(nil)
	if err != nil {
		return msg
	}
	return out
}
