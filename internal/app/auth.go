package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
	"github.com/switchyard-proxy/switchyard/internal/auth"
	"github.com/switchyard-proxy/switchyard/internal/config"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/router"
)

// authCacheTTL is how long an auth_query answer is kept.
const authCacheTTL = 30_000_000_000 // 30 s

// authOptions builds the pooled listeners' authentication from [auth]:
// the auth_file's users, and auth_query (run as auth_user on the current
// primary, or any healthy member without one) for the others.
func authOptions(cfg *config.Config, rt *router.Router, d *pool.Dialer) (method auth.Method, st *auth.Store, err error) {
	method, err = auth.ParseMethod(cfg.Auth.Type)
	if err != nil {
		return 0, nil, fmt.Errorf("auth.type: %w", err)
	}
	var file map[string]string
	if cfg.Auth.File != "" {
		if file, err = auth.LoadFile(cfg.Path(cfg.Auth.File)); err != nil {
			return 0, nil, fmt.Errorf("auth.file: %w", err)
		}
	}
	if file == nil && cfg.Auth.User == "" {
		return method, nil, nil // trust, and the server decides who may log in
	}
	var query auth.QueryFunc
	if u := cfg.Auth.User; u != "" {
		secret, ok := file[u]
		if !ok {
			return 0, nil, fmt.Errorf("auth.user: %q is not in auth.file %s, which must hold its password", u, cfg.Auth.File)
		}
		query = authQuery(rt, d, cfg.Cluster.LeaderWait.Duration, u, auth.ParseSecret(secret), cfg.Auth.Database, cfg.Auth.Query)
	}
	return method, auth.NewStore(file, query, authCacheTTL), nil
}

// authQuery runs query for one user on a connection of its own, logged
// in as user with secret. With no member to run it on (Switchyard just
// started, or a failover is under way) it waits up to wait for one, as a
// primary listener waits for a leader.
func authQuery(rt *router.Router, d *pool.Dialer, wait time.Duration, user string, secret auth.Secret, database, query string) auth.QueryFunc {
	return func(ctx context.Context, name string) (string, bool, error) {
		t := rt.WaitFor(ctx, wait, func(t *topology.Snapshot) bool { _, ok := queryMember(t); return ok })
		m, ok := queryMember(t)
		if !ok {
			return "", false, errors.New("auth_query: no member is available to run it on")
		}
		nc, err := d.Dial(ctx, m.Addr)
		if err != nil {
			return "", false, fmt.Errorf("auth_query: connecting to %s: %w", m.Name, err)
		}
		c := pool.NewConn(nc, m.Name, m.Addr)
		defer c.Close()
		params := map[string]string{"user": user, "database": database}
		if err := pool.Login(ctx, c, params, auth.NewLogin(user, secret)); err != nil {
			return "", false, fmt.Errorf("auth_query: logging in to %s as auth.user %q: %w", m.Name, user, err)
		}
		row, found, err := c.QueryRow(ctx, query, name)
		switch {
		case err != nil:
			return "", false, fmt.Errorf("auth_query on %s: %w", m.Name, err)
		case !found || len(row) < 2 || row[1] == nil:
			return "", found, nil
		}
		return *row[1], true, nil
	}
}

// queryMember is the member auth_query runs on: the primary, else the
// first healthy member.
func queryMember(t *topology.Snapshot) (topology.Member, bool) {
	var fallback *topology.Member
	for i, m := range t.Members {
		if !m.Healthy {
			continue
		}
		if m.Role == topology.RolePrimary {
			return m, true
		}
		if fallback == nil {
			fallback = &t.Members[i]
		}
	}
	if fallback != nil {
		return *fallback, true
	}
	return topology.Member{}, false
}
