package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Defaults, documented key by key in configs/switchyard.toml.
const (
	DefaultAdminListen        = "127.0.0.1:7000"
	DefaultStartupTimeout     = 5 * time.Second
	DefaultClientLoginTimeout = 15 * time.Second
	DefaultConnectTimeout     = 5 * time.Second
	DefaultShutdownTimeout    = 30 * time.Second
	DefaultMaxClients         = 10000
	DefaultMaxStartups        = 1000
	DefaultFall               = 3
	DefaultRise               = 2
	DefaultCheckInterval      = time.Second
	DefaultNamespace          = "/service"
	DefaultDCSGrace           = 30 * time.Second
	DefaultLeaderWait         = 5 * time.Second
	DefaultZKSessionTimeout   = 10 * time.Second
	DefaultAPIInterval        = time.Second
	DefaultProbeInterval      = 500 * time.Millisecond
)

func (c *Config) setDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	defDur := func(d *Duration, v time.Duration) {
		if !d.set() {
			*d = D(v)
		}
	}
	defInt := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	def(&c.Admin.Listen, DefaultAdminListen)
	def(&c.Log.Level, "info")
	def(&c.Log.Format, "text")
	def(&c.Cluster.Discovery, "static")
	defDur(&c.Cluster.Static.CheckInterval, DefaultCheckInterval)
	defInt(&c.Cluster.Static.Fall, DefaultFall)
	defInt(&c.Cluster.Static.Rise, DefaultRise)
	def(&c.Cluster.Namespace, DefaultNamespace)
	def(&c.Cluster.DCSFailure, DCSKeepLast)
	defDur(&c.Cluster.DCSGrace, DefaultDCSGrace)
	defDur(&c.Cluster.LeaderWait, DefaultLeaderWait)
	def(&c.Cluster.Consul.Scheme, "http")
	defDur(&c.Cluster.ZooKeeper.SessionTimeout, DefaultZKSessionTimeout)
	defDur(&c.Cluster.PatroniAPI.Interval, DefaultAPIInterval)
	defDur(&c.Cluster.Probe.Interval, DefaultProbeInterval)
	def(&c.Cluster.Probe.Database, "postgres")
	for i := range c.Listeners {
		l := &c.Listeners[i]
		def(&l.PoolMode, PoolNone)
		def(&l.Balance, BalanceRoundRobin)
		if l.Role == RolePrimary {
			def(&l.Fallback, FallbackNone)
		} else {
			def(&l.Fallback, FallbackPrimary)
		}
	}
	if c.TLS != nil {
		def(&c.TLS.ClientMode, ClientTLSAllow)
		def(&c.TLS.ServerMode, ServerTLSPrefer)
	}
	defDur(&c.Limits.ClientLoginTimeout, DefaultClientLoginTimeout)
	// A short login timeout shortens the default startup timeout with it.
	defDur(&c.Limits.StartupTimeout, min(DefaultStartupTimeout, max(c.Limits.ClientLoginTimeout.Duration, time.Millisecond)))
	defDur(&c.Limits.ConnectTimeout, DefaultConnectTimeout)
	defDur(&c.Limits.ShutdownTimeout, DefaultShutdownTimeout)
	defInt(&c.Limits.MaxClients, DefaultMaxClients)
	defInt(&c.Limits.MaxStartups, DefaultMaxStartups)
	c.Auth.setDefaults()
	c.Pool.setDefaults()
}

func (c *Config) validate(v *validator) {
	v.address("admin.listen", c.Admin.Listen)
	if a := c.Admin; (a.HTTPUser == "") != (a.HTTPPasswordFile == "") {
		v.errorf("admin.http_password_file", "admin.http_user and admin.http_password_file go together: set both or neither")
	}
	if a := c.Admin; (a.Cert == "") != (a.Key == "") {
		v.errorf("admin.cert", "admin.cert and admin.key go together: set both or neither")
	}
	for _, u := range append(append([]string{}, c.Admin.Users...), c.Admin.StatsUsers...) {
		if u == "" {
			v.errorf("admin.users", "user names must not be empty")
		}
	}
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "text", "json")

	if c.Cluster.Name == "" {
		v.errorf("cluster.name", "is required (the Patroni scope of the cluster)")
	}
	c.validateDiscovery(v)

	if len(c.Listeners) == 0 {
		v.errorf("listener", "at least one [[listener]] is required")
	}
	names := map[string]string{}
	addrs := map[string]string{}
	for i, l := range c.Listeners {
		p := fmt.Sprintf("listener[%d]", i)
		if l.Name == "" {
			v.errorf(p+".name", "is required")
		} else if prev, dup := names[l.Name]; dup {
			v.errorf(p+".name", "%q is already the name of %s", l.Name, prev)
		} else {
			names[l.Name] = p
		}
		if v.address(p+".address", l.Address) && !strings.HasSuffix(l.Address, ":0") {
			if prev, dup := addrs[l.Address]; dup {
				v.errorf(p+".address", "%s is already used by %s", l.Address, prev)
			}
			addrs[l.Address] = p
		}
		v.oneOf(p+".role", l.Role, RolePrimary, RoleReplica, RoleSync, RoleAny)
		if l.MaxLag < 0 {
			v.errorf(p+".max_lag", "must be a number of bytes, 0 or more; got %d", l.MaxLag)
		} else if l.MaxLag > 0 && l.Role == RolePrimary {
			v.errorf(p+".max_lag", "has no meaning on a primary listener; remove it")
		}
		v.oneOf(p+".pool_mode", l.PoolMode, PoolNone, PoolSession, PoolTransaction)
		v.oneOf(p+".balance", l.Balance, BalanceRoundRobin, BalanceLeastConns, BalanceRandom)
		v.oneOf(p+".fallback", l.Fallback, FallbackPrimary, FallbackNone)
		if l.Role == RolePrimary && l.Fallback == FallbackPrimary {
			v.errorf(p+".fallback", "has no meaning on a primary listener; remove it")
		}
	}

	c.validatePooling(v)

	if t := c.TLS; t != nil {
		v.oneOf("tls.client_mode", t.ClientMode, ClientTLSDisable, ClientTLSAllow, ClientTLSRequire)
		v.oneOf("tls.server_mode", t.ServerMode, ServerTLSDisable, ServerTLSPrefer, ServerTLSRequire)
		if t.ClientMode != ClientTLSDisable {
			if t.Cert == "" {
				v.errorf("tls.cert", "is required when tls.client_mode is %q", t.ClientMode)
			}
			if t.Key == "" {
				v.errorf("tls.key", "is required when tls.client_mode is %q", t.ClientMode)
			}
		}
	}

	v.duration("limits.startup_timeout", c.Limits.StartupTimeout)
	v.duration("limits.client_login_timeout", c.Limits.ClientLoginTimeout)
	if lt := c.Limits.ClientLoginTimeout.Duration; lt > 0 && c.Limits.StartupTimeout.Duration > lt {
		v.errorf("limits.startup_timeout", "%s is longer than limits.client_login_timeout (%s), which it is part of",
			c.Limits.StartupTimeout.Duration, c.Limits.ClientLoginTimeout.Duration)
	}
	v.duration("limits.connect_timeout", c.Limits.ConnectTimeout)
	v.duration("limits.shutdown_timeout", c.Limits.ShutdownTimeout)
	if c.Limits.MaxClients < 0 {
		v.errorf("limits.max_clients", "must be positive, got %d", c.Limits.MaxClients)
	}
	if c.Limits.MaxStartups < 0 {
		v.errorf("limits.max_startups", "must be positive, got %d", c.Limits.MaxStartups)
	}
}

// address checks a host:port; it reports whether the value was valid.
func (v *validator) address(key, val string) bool {
	if val == "" {
		v.errorf(key, "is required (host:port)")
		return false
	}
	host, port, err := net.SplitHostPort(val)
	if err != nil {
		v.errorf(key, "%q is not host:port", val)
		return false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.errorf(key, "%q has no valid port", val)
		return false
	}
	_ = host
	return true
}
