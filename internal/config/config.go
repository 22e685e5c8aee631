// Package config loads and validates Switchyard's TOML configuration.
//
// Loading is strict: unknown keys are errors, and every problem in a file is
// reported at once, each naming the file, the line and the key path
// (for example "switchyard.toml:14: listener[1].role: ...").
package config

import (
	"fmt"
	"time"
)

// Config is the whole configuration file. The zero value is not valid; use
// Load, which fills defaults and validates.
type Config struct {
	Admin     Admin      `toml:"admin"`
	Log       Log        `toml:"log"`
	Cluster   Cluster    `toml:"cluster"`
	Listeners []Listener `toml:"listener"`
	TLS       *TLS       `toml:"tls,omitempty"`
	Limits    Limits     `toml:"limits"`
	Auth      Auth       `toml:"auth"`
	Pool      Pool       `toml:"pool"`

	// Dir is the directory of the file the config was loaded from; relative
	// paths (TLS cert and key) are resolved against it.
	Dir string `toml:"-"`
}

// Admin is the operator surface: the HTTP endpoint (stats page,
// /api/status, /metrics, health checks) and who may use the console.
type Admin struct {
	Listen           string   `toml:"listen"`
	Users            []string `toml:"users"`       // console: every command (pgbouncer admin_users)
	StatsUsers       []string `toml:"stats_users"` // console: SHOW only (pgbouncer stats_users)
	HTTPUser         string   `toml:"http_user"`
	HTTPPasswordFile string   `toml:"http_password_file"`
	Cert             string   `toml:"cert"` // TLS for the HTTP endpoint, PEM
	Key              string   `toml:"key"`
}

// Log selects the log level and format.
type Log struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

// Cluster describes where topology comes from.
type Cluster struct {
	Name       string     `toml:"name"`      // Patroni scope
	Namespace  string     `toml:"namespace"` // Patroni namespace, "/service" by default
	Discovery  string     `toml:"discovery"`
	DCSFailure string     `toml:"dcs_failure"` // keep-last | fail-closed
	DCSGrace   Duration   `toml:"dcs_grace"`
	LeaderWait Duration   `toml:"leader_wait"`
	Static     Static     `toml:"static"`
	Etcd       Etcd       `toml:"etcd"`
	Consul     Consul     `toml:"consul"`
	ZooKeeper  ZooKeeper  `toml:"zookeeper"`
	PatroniAPI PatroniAPI `toml:"patroni_api"`
	Probe      Probe      `toml:"probe"`
}

// Etcd is an etcd v3 cluster holding Patroni's keys.
type Etcd struct {
	Endpoints []string `toml:"endpoints"`
	Username  string   `toml:"username"`
	Password  string   `toml:"password"`
	CA        string   `toml:"ca"`
	Cert      string   `toml:"cert"`
	Key       string   `toml:"key"`
}

// Consul is a Consul agent whose KV store holds Patroni's keys.
type Consul struct {
	Address    string `toml:"address"`
	Scheme     string `toml:"scheme"`
	Token      string `toml:"token"`
	Datacenter string `toml:"datacenter"`
	CA         string `toml:"ca"`
	Cert       string `toml:"cert"`
	Key        string `toml:"key"`
}

// ZooKeeper is a ZooKeeper ensemble holding Patroni's znodes.
type ZooKeeper struct {
	Servers        []string `toml:"servers"`
	SessionTimeout Duration `toml:"session_timeout"`
}

// PatroniAPI polls the /cluster endpoint of Patroni's REST API.
type PatroniAPI struct {
	URLs     []string `toml:"urls"`
	Interval Duration `toml:"interval"`
}

// Probe asks every member pg_is_in_recovery(): discovery for any HA agent.
type Probe struct {
	Members      []Member `toml:"members"`
	Interval     Duration `toml:"interval"`
	User         string   `toml:"user"`
	Password     string   `toml:"password"`
	PasswordFile string   `toml:"password_file"`
	Database     string   `toml:"database"`
}

// Static is a fixed member list; roles come from the file and health from a
// TCP check every CheckInterval.
type Static struct {
	Members       []Member `toml:"members"`
	CheckInterval Duration `toml:"check_interval"`
	Fall          int      `toml:"fall"` // failed checks in a row before a member is down
	Rise          int      `toml:"rise"` // passed checks in a row before it is up again
}

// Member is one PostgreSQL node of the cluster.
type Member struct {
	Name    string         `toml:"name"`
	Address string         `toml:"address"`
	Role    string         `toml:"role"`
	Tags    map[string]any `toml:"tags,omitempty"`
}

// NoLoadBalance reports Patroni's noloadbalance tag.
func (m Member) NoLoadBalance() bool {
	v, _ := m.Tags["noloadbalance"].(bool)
	return v
}

// Listener is one client-facing port.
type Listener struct {
	Name     string `toml:"name"`
	Address  string `toml:"address"`
	Role     string `toml:"role"`
	PoolMode string `toml:"pool_mode"`
	Balance  string `toml:"balance"`
	Fallback string `toml:"fallback"`
	MaxLag   int64  `toml:"max_lag"`        // bytes; 0: no limit
	Pool     *Pool  `toml:"pool,omitempty"` // overrides of [pool] for this listener
}

// TLS configures client-side TLS termination and proxy-to-server TLS.
type TLS struct {
	Cert       string `toml:"cert"`
	Key        string `toml:"key"`
	ClientMode string `toml:"client_mode"`
	ServerMode string `toml:"server_mode"`
}

// Limits bounds what a client can cost.
type Limits struct {
	StartupTimeout     Duration `toml:"startup_timeout"`
	ClientLoginTimeout Duration `toml:"client_login_timeout"`
	ConnectTimeout     Duration `toml:"connect_timeout"`
	ShutdownTimeout    Duration `toml:"shutdown_timeout"`
	MaxClients         int      `toml:"max_clients"`
	MaxStartups        int      `toml:"max_startups"`
}

// Values of enumerated keys.
const (
	RolePrimary = "primary"
	RoleReplica = "replica"
	RoleAny     = "any"
	RoleSync    = "sync"

	DCSKeepLast   = "keep-last"
	DCSFailClosed = "fail-closed"

	PoolNone = "none"

	BalanceRoundRobin = "round-robin"
	BalanceLeastConns = "least-connections"
	BalanceRandom     = "random"

	FallbackPrimary = "primary"
	FallbackNone    = "none"

	ClientTLSDisable = "disable"
	ClientTLSAllow   = "allow"
	ClientTLSRequire = "require"

	ServerTLSDisable = "disable"
	ServerTLSPrefer  = "prefer"
	ServerTLSRequire = "require"
)

// ClientTLSMode is the effective client TLS mode: "disable" without [tls].
func (c *Config) ClientTLSMode() string {
	if c.TLS == nil {
		return ClientTLSDisable
	}
	return c.TLS.ClientMode
}

// ServerTLSMode is the effective proxy-to-server TLS mode: libpq's default,
// "prefer", without [tls].
func (c *Config) ServerTLSMode() string {
	if c.TLS == nil {
		return ServerTLSPrefer
	}
	return c.TLS.ServerMode
}

// Duration is a time.Duration written as a Go duration string ("5s").
// Parsing never fails during decoding; a bad value is kept and reported by
// Validate together with every other problem.
type Duration struct {
	time.Duration
	raw string
	err error
}

// D returns a Duration of d.
func D(d time.Duration) Duration { return Duration{Duration: d} }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	d.raw = string(b)
	v, err := time.ParseDuration(d.raw)
	if err != nil {
		d.err = fmt.Errorf("%q is not a duration (write it like \"5s\" or \"250ms\")", d.raw)
		return nil
	}
	d.Duration, d.err = v, nil
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

func (d Duration) set() bool { return d.raw != "" }
