package proxy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/router"
)

// confirmWindow is how long after a member became primary new write
// sessions check that it has left recovery. HA agents write the leader
// key before promotion completes, so for a moment the named primary can
// still be a replica.
const confirmWindow = 10 * time.Second

// defaultConfirmWait bounds the wait for a named primary to leave recovery.
const defaultConfirmWait = 5 * time.Second

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
func (s *session) confirmReplica(ctx context.Context) error {
	in, err := s.serverInRecovery(ctx)
	if err != nil {
		return err
	}
	if !in {
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
	err := untilOutOfRecovery(ctx, wait, func() (bool, error) { return s.serverInRecovery(ctx) })
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

// inRecovery asks c's node whether it is in recovery.
func inRecovery(ctx context.Context, c *pool.Conn) (bool, error) {
	row, _, err := c.QueryRow(ctx, "SELECT pg_catalog.pg_is_in_recovery()")
	switch {
	case err != nil:
		return false, fmt.Errorf("recovery check: %w", err)
	case len(row) != 1 || row[0] == nil:
		return false, errors.New("recovery check returned no boolean")
	}
	return *row[0] == "t", nil
}

// serverInRecovery asks the session's own server.
func (s *session) serverInRecovery(ctx context.Context) (bool, error) {
	in, err := inRecovery(ctx, s.server)
	if err != nil {
		return false, onServer(&protocolError{err: err})
	}
	return in, nil
}
