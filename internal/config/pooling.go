package config

import (
	"fmt"
	"time"
)

// Auth is how clients of pooled listeners authenticate at Switchyard
// (pgbouncer's auth_type, auth_file, auth_user, auth_query, auth_dbname).
// Relay listeners pass authentication through to PostgreSQL and ignore it.
type Auth struct {
	Type     string `toml:"type"`
	File     string `toml:"file"`
	User     string `toml:"user"`
	Query    string `toml:"query"`
	Database string `toml:"database"`
}

// Pool holds the pool settings, pgbouncer's names and meanings. In [pool]
// every key has its default after Load; in a [listener.pool] only the keys
// written are set, and Config.PoolFor merges them over [pool].
type Pool struct {
	DefaultPoolSize        *int      `toml:"default_pool_size"`
	MinPoolSize            *int      `toml:"min_pool_size"`
	ReservePoolSize        *int      `toml:"reserve_pool_size"`
	ReservePoolTimeout     *Duration `toml:"reserve_pool_timeout"`
	MaxDBConnections       *int      `toml:"max_db_connections"`
	MaxUserConnections     *int      `toml:"max_user_connections"`
	ServerIdleTimeout      *Duration `toml:"server_idle_timeout"`
	ServerLifetime         *Duration `toml:"server_lifetime"`
	ServerLoginRetry       *Duration `toml:"server_login_retry"`
	QueryWaitTimeout       *Duration `toml:"query_wait_timeout"`
	ClientIdleTimeout      *Duration `toml:"client_idle_timeout"`
	IdleTransactionTimeout *Duration `toml:"idle_transaction_timeout"`
	ServerResetQuery       *string   `toml:"server_reset_query"`
	ServerCheckQuery       *string   `toml:"server_check_query"`
	ServerCheckDelay       *Duration `toml:"server_check_delay"`
	// MaxPreparedStatements bounds the protocol-level prepared statements
	// Switchyard keeps on each server connection in transaction mode; 0
	// turns their tracking off (a client that names a statement is then
	// pinned to its server).
	MaxPreparedStatements *int `toml:"max_prepared_statements"`
}

// Pool modes of a listener.
const (
	PoolSession     = "session"
	PoolTransaction = "transaction"
)

// Auth types (pgbouncer's auth_type values).
const (
	AuthSCRAM = "scram-sha-256"
	AuthMD5   = "md5"
	AuthPlain = "plain"
	AuthTrust = "trust"
)

// DefaultAuthQuery is pgbouncer 1.24.1's auth_query: an expired password
// (rolvaliduntil) or a role that may not log in finds nothing.
const DefaultAuthQuery = "SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END FROM pg_authid WHERE rolname=$1 AND rolcanlogin"

// Pool defaults, as pgbouncer's.
const (
	DefaultPoolSize           = 20
	DefaultReservePoolTimeout = 5 * time.Second
	DefaultServerIdleTimeout  = 600 * time.Second
	DefaultServerLifetime     = 3600 * time.Second
	DefaultServerLoginRetry   = 15 * time.Second
	DefaultQueryWaitTimeout   = 120 * time.Second
	DefaultServerCheckDelay   = 30 * time.Second
	DefaultServerResetQuery   = "DISCARD ALL"
	DefaultServerCheckQuery   = "SELECT 1"
	DefaultMaxPrepared        = 200 // pgbouncer 1.24's default
)

// Pooled reports whether the listener pools server connections.
func (l Listener) Pooled() bool { return l.PoolMode == PoolSession || l.PoolMode == PoolTransaction }

// PoolFor is listener i's effective pool settings: its [listener.pool]
// keys over [pool]. Every field is set.
func (c *Config) PoolFor(i int) Pool {
	p := c.Pool
	if o := c.Listeners[i].Pool; o != nil {
		over(&p.DefaultPoolSize, o.DefaultPoolSize)
		over(&p.MinPoolSize, o.MinPoolSize)
		over(&p.ReservePoolSize, o.ReservePoolSize)
		over(&p.ReservePoolTimeout, o.ReservePoolTimeout)
		over(&p.MaxDBConnections, o.MaxDBConnections)
		over(&p.MaxUserConnections, o.MaxUserConnections)
		over(&p.ServerIdleTimeout, o.ServerIdleTimeout)
		over(&p.ServerLifetime, o.ServerLifetime)
		over(&p.ServerLoginRetry, o.ServerLoginRetry)
		over(&p.QueryWaitTimeout, o.QueryWaitTimeout)
		over(&p.ClientIdleTimeout, o.ClientIdleTimeout)
		over(&p.IdleTransactionTimeout, o.IdleTransactionTimeout)
		over(&p.ServerResetQuery, o.ServerResetQuery)
		over(&p.ServerCheckQuery, o.ServerCheckQuery)
		over(&p.ServerCheckDelay, o.ServerCheckDelay)
		over(&p.MaxPreparedStatements, o.MaxPreparedStatements)
	}
	return p
}

func over[T any](dst **T, src *T) {
	if src != nil {
		*dst = src
	}
}

func (p *Pool) setDefaults() {
	defPtr(&p.DefaultPoolSize, DefaultPoolSize)
	defPtr(&p.MinPoolSize, 0)
	defPtr(&p.ReservePoolSize, 0)
	defPtr(&p.ReservePoolTimeout, D(DefaultReservePoolTimeout))
	defPtr(&p.MaxDBConnections, 0)
	defPtr(&p.MaxUserConnections, 0)
	defPtr(&p.ServerIdleTimeout, D(DefaultServerIdleTimeout))
	defPtr(&p.ServerLifetime, D(DefaultServerLifetime))
	defPtr(&p.ServerLoginRetry, D(DefaultServerLoginRetry))
	defPtr(&p.QueryWaitTimeout, D(DefaultQueryWaitTimeout))
	defPtr(&p.ClientIdleTimeout, D(0))
	defPtr(&p.IdleTransactionTimeout, D(0))
	defPtr(&p.ServerResetQuery, DefaultServerResetQuery)
	defPtr(&p.ServerCheckQuery, DefaultServerCheckQuery)
	defPtr(&p.ServerCheckDelay, D(DefaultServerCheckDelay))
	defPtr(&p.MaxPreparedStatements, DefaultMaxPrepared)
}

func defPtr[T any](p **T, v T) {
	if *p == nil {
		*p = &v
	}
}

func (a *Auth) setDefaults() {
	if a.Type == "" {
		a.Type = AuthSCRAM
	}
	if a.Query == "" {
		a.Query = DefaultAuthQuery
	}
	if a.Database == "" {
		a.Database = "postgres"
	}
}

// validatePooling checks [auth], [pool] and every [listener.pool].
func (c *Config) validatePooling(v *validator) {
	pooled := false
	for i, l := range c.Listeners {
		if l.Pooled() {
			pooled = true
		}
		if l.Pool != nil {
			key := fmt.Sprintf("listener[%d].pool", i)
			if !l.Pooled() {
				v.errorf(key, "has no meaning on a listener with pool_mode %q; remove it or set pool_mode", l.PoolMode)
			}
			c.validatePool(v, key, l.Pool)
		}
	}
	c.validatePool(v, "pool", &c.Pool)
	a := c.Auth
	v.oneOf("auth.type", a.Type, AuthSCRAM, AuthMD5, AuthPlain, AuthTrust)
	if pooled && a.Type != AuthTrust && a.File == "" && a.User == "" {
		v.errorf("auth.file", "is required for pooled listeners when auth.type is %q (or set auth.user to look users up with auth.query)", a.Type)
	}
	if a.User != "" && a.File == "" {
		v.errorf("auth.user", "needs auth.file, which holds %q's own password", a.User)
	}
}

func (c *Config) validatePool(v *validator, sect string, p *Pool) {
	pos := func(key string, n *int, min int) {
		if n != nil && *n < min {
			v.errorf(sect+"."+key, "must be %d or more, got %d", min, *n)
		}
	}
	pos("default_pool_size", p.DefaultPoolSize, 1)
	pos("min_pool_size", p.MinPoolSize, 0)
	pos("reserve_pool_size", p.ReservePoolSize, 0)
	pos("max_db_connections", p.MaxDBConnections, 0)
	pos("max_user_connections", p.MaxUserConnections, 0)
	pos("max_prepared_statements", p.MaxPreparedStatements, 0)
	if p.MinPoolSize != nil && p.DefaultPoolSize != nil && *p.MinPoolSize > *p.DefaultPoolSize {
		v.errorf(sect+".min_pool_size", "%d is more than default_pool_size (%d)", *p.MinPoolSize, *p.DefaultPoolSize)
	}
	for _, d := range []struct {
		key string
		d   *Duration
	}{
		{"reserve_pool_timeout", p.ReservePoolTimeout}, {"server_idle_timeout", p.ServerIdleTimeout},
		{"server_lifetime", p.ServerLifetime}, {"server_login_retry", p.ServerLoginRetry},
		{"query_wait_timeout", p.QueryWaitTimeout}, {"client_idle_timeout", p.ClientIdleTimeout},
		{"idle_transaction_timeout", p.IdleTransactionTimeout}, {"server_check_delay", p.ServerCheckDelay},
	} {
		switch {
		case d.d == nil:
		case d.d.err != nil:
			v.errorf(sect+"."+d.key, "%v", d.d.err)
		case d.d.Duration < 0:
			v.errorf(sect+"."+d.key, "must be 0 (off) or positive, got %q", d.d.raw)
		}
	}
}
