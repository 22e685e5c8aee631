package proxy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"

	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/router"
)

// connect chooses a member for the listener and connects to it: it asks
// the router for candidates, dials them in order, registers the session
// under the first that answers, checks once more that the member still
// serves the listener, and sends it the client's StartupMessage.
//
// A client that is not yet authenticated learns the listener and why no
// server could be reached, never member names or addresses: those go to
// the log (as the error's cause).
func (s *session) connect(ctx context.Context) error {
	cands, err := s.srv.opts.Router.Candidates(ctx, s.ln.name)
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if len(cands) == 0 {
		return newClientError(codeCannotConnectNow,
			"no %s server is available for listener %q; try again shortly", s.ln.role, s.ln.name)
	}
	var tried, why []string
	for _, m := range cands {
		conn, err := s.srv.opts.Dialer.Dial(ctx, m.Addr)
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			reason := dialReason(err)
			tried = append(tried, fmt.Sprintf("%s (%s): %s", m.Name, m.Addr, reason))
			if !slices.Contains(why, reason) {
				why = append(why, reason)
			}
			continue
		}
		s.backend = m
		if err := s.setServer(ctx, pool.NewConn(conn, m.Name, m.Addr)); err != nil {
			return err
		}
		b := router.Binding{Listener: s.ln.name, Backend: m.Name, Role: m.Role}
		s.unregister = s.srv.registry.Add(SessionInfo{ID: s.id, Client: s.client.RemoteAddr().String(), Binding: b}, s.cancel)
		// A topology update between Candidates and add found no session
		// to end; look again now that this one is registered.
		if l := s.srv.opts.Router.Check(b); l != nil {
			return RoleLost(l)
		}
		if _, err := s.server.Write(s.startup.raw); err != nil {
			return onServer(err)
		}
		return nil
	}
	servers := "server"
	if len(cands) > 1 {
		servers = "servers"
	}
	return &clientError{Code: codeConnectionFailure,
		Message: fmt.Sprintf("could not connect to any server for listener %q", s.ln.name),
		Detail:  fmt.Sprintf("%d %s tried: %s", len(cands), servers, strings.Join(why, ", ")),
		cause:   errors.New(strings.Join(tried, "; "))}
}

// dialReason is a short, client-safe description of a dial failure.
func dialReason(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "Switchyard is out of file descriptors"
	}
	if isTimeoutErr(err) {
		return "timed out"
	}
	return "connection failed"
}
