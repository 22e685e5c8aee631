package proxy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard-proxy/switchyard/internal/auth"
)

// authFailDelay is when, after its exchange began, every failed login
// gets its 28P01, whatever failed (the password, or a user that does not
// exist) and however long looking the user up took (auth_query runs only
// for users missing from the file).
const authFailDelay = 500 * time.Millisecond

// authenticateClient verifies a pooled listener's client against the
// auth store, as PostgreSQL would: scram-sha-256, md5, plain or trust.
// AuthenticationOk is queued, not sent: it goes out with the rest of the
// login once a server has accepted the client's database. A SCRAM login
// leaves the client's key in the store, for the pass-through login of
// its server connections.
func (s *session) authenticateClient(ctx context.Context) error {
	start := time.Now()
	user := s.startup.params["user"]
	a := s.srv.opts.Auth
	var (
		sec   auth.Secret
		found = true // trust without a store: any user; the server decides
		err   error
	)
	if a.Store != nil {
		sec, found, err = a.Store.Lookup(ctx, user)
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return &clientError{Code: codeCannotConnectNow, cause: err,
				Message: fmt.Sprintf("could not look up user %q: the auth query failed; try again shortly", user)}
		}
	}
	ex, msg, err := auth.Begin(a.Method, user, sec, found)
	for err == nil && msg != nil {
		s.cw.queue(msg)
		if err := s.cw.flush(); err != nil {
			return onClient(err)
		}
		resp, rerr := s.readAuthResponse()
		if rerr != nil {
			return rerr
		}
		var done bool
		msg, done, err = ex.Step(resp)
		if done && msg != nil {
			s.cw.queue(msg) // SASLFinal: sent with AuthenticationOk
			msg = nil
		}
		if done {
			break
		}
	}
	var pe *auth.ProtocolError
	switch {
	case errors.As(err, &pe):
		return onClient(newClientError(codeProtocolViolation, "%s", pe.Error()))
	case err != nil:
		s.cw.discard()
		t := time.NewTimer(time.Until(start.Add(authFailDelay)))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		return onClient(&clientError{Code: codeInvalidPassword, cause: err,
			Message: fmt.Sprintf("password authentication failed for user %q", user)})
	}
	if key := ex.ClientKey(); key != nil && a.Store != nil {
		a.Store.SaveClientKey(user, sec, key)
	}
	s.cw.queue(authenticationOk)
	return nil
}

var authenticationOk = []byte{'R', 0, 0, 0, 8, 0, 0, 0, 0}
