package proxy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"

	"github.com/switchyard-proxy/switchyard/internal/auth"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/proxy/pooler"
	"github.com/switchyard-proxy/switchyard/router"
)

// Auth is how pooled listeners authenticate clients (pgbouncer's
// auth_type, and auth_file and auth_query behind Store).
type Auth struct {
	Method auth.Method
	Store  *auth.Store
}

// opener logs new server connections of a pooled listener in: as the
// client's user, with the secret the auth store knows (a pass-through
// SCRAM key once a client has logged in). A primary listener's server
// must be out of recovery (see confirmOpen).
func (s *Server) opener(l *listener) pool.Opener {
	return func(ctx context.Context, id pool.ID, addr string) (*pool.Conn, error) {
		var sec auth.Secret
		if st := s.opts.Auth.Store; st != nil {
			var err error
			if sec, _, err = st.Lookup(ctx, id.User); err != nil {
				return nil, err
			}
		}
		nc, err := s.opts.Dialer.Dial(ctx, addr)
		if err != nil {
			return nil, err
		}
		c := pool.NewConn(nc, id.Member, addr)
		params := map[string]string{"user": id.User, "database": id.Database}
		if err := pool.Login(ctx, c, params, auth.NewLogin(id.User, sec)); err != nil {
			c.Close()
			return nil, err
		}
		// A fresh server's parameters are its defaults for this database
		// and user: what a client that asks for nothing else is told.
		l.welcome.put(id.Database, id.User, c.Params)
		if l.role == router.Primary || l.role == router.Any {
			if err := s.confirmOpen(ctx, c); err != nil {
				c.Close()
				return nil, err
			}
		}
		return c, nil
	}
}

// confirmOpen waits, up to leader_wait, for a new server connection's
// node to be out of recovery: the DCS may name a primary a moment before
// its promotion completes, and no write may reach a node in recovery.
func (s *Server) confirmOpen(ctx context.Context, c *pool.Conn) error {
	err := untilOutOfRecovery(ctx, s.confirmWait(), func() (bool, error) { return inRecovery(ctx, c) })
	if errors.Is(err, errStillInRecovery) {
		return fmt.Errorf("server %s: %w after %s", c.Member, err, s.confirmWait())
	}
	return err
}

// Drain closes the pooled server connections to member, which lost the
// role its pools were chosen for: idle ones at once, busy ones when their
// transaction ends. Clients waiting for one of them route again. The
// applier calls it with each topology change.
func (s *Server) Drain(member string) {
	for _, l := range s.all() {
		if l.pools != nil {
			if n := l.pools.Drain(member); n > 0 {
				s.log.Info("pooled server connections closed: member lost its role", "listener", l.name, "member", member, "closed", n)
			}
		}
	}
}

// PoolStats are the pools of the named listener, nil if it does not pool.
func (s *Server) PoolStats(listener string) []pool.Stats {
	for _, l := range s.all() {
		if l.name == listener && l.pools != nil {
			return l.pools.Stats()
		}
	}
	return nil
}

// welcomeCache remembers, per database and user, the parameters a
// server reports at login, so that a client can be told them without a
// server being checked out for it.
type welcomeCache struct {
	mu sync.Mutex
	m  map[[2]string]map[string]string
}

func (w *welcomeCache) get(db, user string) map[string]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.m[[2]string{db, user}]) // the client's own, to change
}

func (w *welcomeCache) put(db, user string, server map[string]string) {
	keep := map[string]string{}
	for k, v := range server {
		if pooler.IsReported(k, server["server_version"]) {
			keep[k] = v
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[[2]string]map[string]string{}
	}
	w.m[[2]string{db, user}] = keep
}
