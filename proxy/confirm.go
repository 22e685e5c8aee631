package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
	"github.com/switchyard-proxy/switchyard/internal/wire"
	"github.com/switchyard-proxy/switchyard/router"
)

// confirmWindow is how long after a member became primary new write
// sessions check that it has left recovery. HA agents write the leader
// key before promotion completes, so for a moment the named primary can
// still be a replica.
const confirmWindow = 10 * time.Second

// defaultConfirmWait bounds the wait for a named primary to leave recovery.
const defaultConfirmWait = 5 * time.Second

var recoveryQuery, _ = (&pgproto3.Query{String: "SELECT pg_catalog.pg_is_in_recovery()"}).Encode(nil)

// needsConfirm reports whether the session, about to be handed to its
// backend, must first see the backend out of recovery.
func (s *session) needsConfirm() bool {
	return s.backend.Role == topology.RolePrimary && s.ln.role != router.Replica && s.ln.role != router.Sync &&
		!s.startup.replication() && !s.backend.Since.IsZero() && time.Since(s.backend.Since) < confirmWindow
}

// needsReplicaConfirm reports whether a replica session must first see
// its backend in recovery: with polling discovery, which learns of a
// promotion only after it happened.
func (s *session) needsReplicaConfirm() bool {
	return s.srv.opts.ConfirmReplicas && s.backend.Role == topology.RoleReplica && !s.startup.replication()
}

// confirmReplica checks, on the session's own connection, that the
// backend is still in recovery.
func (s *session) confirmReplica() error {
	inRecovery, err := s.inRecovery()
	if err != nil {
		return err
	}
	if !inRecovery {
		return newClientError(codeCannotConnectNow,
			"server %q is no longer a replica (it left recovery); reconnect", s.backend.Name)
	}
	return nil
}

// confirmPrimary asks the server, on the session's own connection once it
// is logged in, whether it is still in recovery, and retries for a short
// while, so that no write reaches a member that the DCS names primary
// before it has been promoted. The client has not yet seen ReadyForQuery.
func (s *session) confirmPrimary(ctx context.Context) error {
	wait := s.srv.confirmWait()
	err := untilOutOfRecovery(ctx, wait, s.inRecovery)
	if errors.Is(err, errStillInRecovery) {
		return newClientError(codeCannotConnectNow,
			"server %q is named the primary but is still in recovery after %s; try again shortly", s.backend.Name, wait)
	}
	return err
}

// errStillInRecovery: the member the DCS names primary has not left
// recovery within confirm_wait.
var errStillInRecovery = errors.New("named the primary but still in recovery")

// untilOutOfRecovery asks inRecovery every 50 ms until it says no, for up
// to wait; then it returns errStillInRecovery.
func untilOutOfRecovery(ctx context.Context, wait time.Duration, inRecovery func() (bool, error)) error {
	deadline := time.Now().Add(wait)
	retry := time.NewTimer(0)
	defer retry.Stop()
	<-retry.C
	for {
		in, err := inRecovery()
		if err != nil || !in {
			return err
		}
		if time.Now().After(deadline) {
			return errStillInRecovery
		}
		retry.Reset(50 * time.Millisecond)
		select {
		case <-retry.C:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// confirmWait bounds the wait for a named primary to leave recovery.
func (s *Server) confirmWait() time.Duration {
	if s.opts.ConfirmWait > 0 {
		return s.opts.ConfirmWait
	}
	return defaultConfirmWait
}

// inRecovery runs the recovery query and reads its answer up to
// ReadyForQuery.
func (s *session) inRecovery() (bool, error) {
	if _, err := s.server.Write(recoveryQuery); err != nil {
		return false, onServer(err)
	}
	var (
		answer  byte
		failure error
	)
	for {
		msg, err := wire.ReadMessage(s.server.R, maxServerLoginMsg)
		if err != nil {
			return false, onServer(err)
		}
		switch msg[0] {
		case 'D': // int16 columns, int32 length, value
			if len(msg) >= 12 && binary.BigEndian.Uint16(msg[5:7]) == 1 && binary.BigEndian.Uint32(msg[7:11]) == 1 {
				answer = msg[11]
			}
		case 'E':
			var e pgproto3.ErrorResponse
			_ = e.Decode(msg[5:])
			failure = fmt.Errorf("recovery check failed: %s %s", e.Code, e.Message)
		case 'Z':
			switch {
			case failure != nil:
				return false, onServer(&protocolError{err: failure})
			case answer == 't':
				return true, nil
			case answer == 'f':
				return false, nil
			}
			return false, onServer(&protocolError{err: errors.New("recovery check returned no boolean")})
		}
	}
}
