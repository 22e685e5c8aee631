package app

import (
	"fmt"
	"os"
	"strings"

	"github.com/switchyard-proxy/switchyard/discovery"
	"github.com/switchyard-proxy/switchyard/discovery/topology"
	"github.com/switchyard-proxy/switchyard/internal/config"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/proxy"
	"github.com/switchyard-proxy/switchyard/router"
)

// This file is the only place the configuration's spellings become the
// typed options of the packages: every other package is configured with
// its own Options and never sees TOML.

var (
	routerRoles = map[string]router.Role{
		config.RolePrimary: router.Primary, config.RoleReplica: router.Replica,
		config.RoleSync: router.Sync, config.RoleAny: router.Any,
	}
	balances = map[string]router.Balance{
		config.BalanceRoundRobin: router.RoundRobin, config.BalanceLeastConns: router.LeastConnections,
		config.BalanceRandom: router.Random,
	}
	fallbacks = map[string]router.Fallback{
		config.FallbackPrimary: router.FallbackPrimary, config.FallbackNone: router.FallbackNone,
	}
	memberRoles = map[string]topology.Role{
		config.RolePrimary: topology.RolePrimary, config.RoleReplica: topology.RoleReplica,
	}
	clientTLS = map[string]proxy.ClientTLS{
		config.ClientTLSDisable: proxy.ClientTLSDisable, config.ClientTLSAllow: proxy.ClientTLSAllow,
		config.ClientTLSRequire: proxy.ClientTLSRequire,
	}
	serverTLS = map[string]pool.TLSMode{
		config.ServerTLSDisable: pool.TLSDisable, config.ServerTLSPrefer: pool.TLSPrefer,
		config.ServerTLSRequire: pool.TLSRequire,
	}
	poolModes = map[string]proxy.Mode{
		config.PoolNone: proxy.Relay, config.PoolSession: proxy.PoolSession, config.PoolTransaction: proxy.PoolTransaction,
	}
	modes = map[string]discovery.Mode{
		"static": discovery.ModeStatic, "etcd": discovery.ModeEtcd, "consul": discovery.ModeConsul,
		"zookeeper": discovery.ModeZooKeeper, "patroni-api": discovery.ModePatroniAPI, "probe": discovery.ModeProbe,
	}
)

// routerPorts maps the listeners to routing policies.
func routerPorts(cfg *config.Config) []router.Port {
	var ports []router.Port
	for _, l := range cfg.Listeners {
		ports = append(ports, routerPort(cfg, l))
	}
	return ports
}

func routerPort(cfg *config.Config, l config.Listener) router.Port {
	return router.Port{Name: l.Name, Role: routerRoles[l.Role], Balance: balances[l.Balance],
		Fallback: fallbacks[l.Fallback], MaxLag: l.MaxLag, LeaderWait: cfg.Cluster.LeaderWait.Duration}
}

// proxyListener maps listener i.
func proxyListener(cfg *config.Config, i int) proxy.Listener {
	l := cfg.Listeners[i]
	return proxy.Listener{Name: l.Name, Address: l.Address, Role: routerRoles[l.Role],
		Mode: poolModes[l.PoolMode], Pool: poolOptions(cfg.PoolFor(i))}
}

// dialer maps the server-side connection settings.
func dialer(cfg *config.Config) *pool.Dialer {
	return &pool.Dialer{Timeout: cfg.Limits.ConnectTimeout.Duration, TLSMode: serverTLS[cfg.ServerTLSMode()]}
}

// proxyOptions maps everything but the collaborators (router, registry,
// dialer, logger), which New wires in.
func proxyOptions(cfg *config.Config) (proxy.Options, error) {
	o := proxy.Options{
		ClientTLS:       clientTLS[cfg.ClientTLSMode()],
		StartupTimeout:  cfg.Limits.StartupTimeout.Duration,
		LoginTimeout:    cfg.Limits.ClientLoginTimeout.Duration,
		ShutdownTimeout: cfg.Limits.ShutdownTimeout.Duration,
		ConfirmWait:     cfg.Cluster.LeaderWait.Duration,
		MaxClients:      cfg.Limits.MaxClients,
		MaxStartups:     cfg.Limits.MaxStartups,
	}
	for i := range cfg.Listeners {
		o.Listeners = append(o.Listeners, proxyListener(cfg, i))
	}
	if cfg.ClientTLSMode() != config.ClientTLSDisable {
		tc, err := proxy.LoadTLS(cfg.Path(cfg.TLS.Cert), cfg.Path(cfg.TLS.Key))
		if err != nil {
			return o, fmt.Errorf("tls: %w", err)
		}
		o.TLSConfig = tc
	}
	return o, nil
}

// poolOptions maps a listener's effective [pool] settings.
func poolOptions(p config.Pool) proxy.PoolOptions {
	return proxy.PoolOptions{
		Options: pool.Options{
			Size:             *p.DefaultPoolSize,
			MinSize:          *p.MinPoolSize,
			ReserveSize:      *p.ReservePoolSize,
			ReserveTimeout:   p.ReservePoolTimeout.Duration,
			MaxDBConns:       *p.MaxDBConnections,
			MaxUserConns:     *p.MaxUserConnections,
			IdleTimeout:      p.ServerIdleTimeout.Duration,
			Lifetime:         p.ServerLifetime.Duration,
			LoginRetry:       p.ServerLoginRetry.Duration,
			QueryWaitTimeout: p.QueryWaitTimeout.Duration,
			CheckDelay:       p.ServerCheckDelay.Duration,
			CheckQuery:       *p.ServerCheckQuery,
			ResetQuery:       *p.ServerResetQuery,
		},
		ClientIdleTimeout:      p.ClientIdleTimeout.Duration,
		IdleTransactionTimeout: p.IdleTransactionTimeout.Duration,
		MaxPrepared:            *p.MaxPreparedStatements,
	}
}

// DiscoveryOptions maps [cluster], reading the files it names; errors
// name the key. Tools and tests use it to open the store Switchyard
// follows (discovery.OpenStore).
func DiscoveryOptions(cfg *config.Config) (discovery.Options, error) {
	cl := cfg.Cluster
	o := discovery.Options{
		Mode:           modes[cl.Discovery],
		Scope:          cl.Name,
		Namespace:      cl.Namespace,
		FailClosed:     cl.DCSFailure == config.DCSFailClosed,
		Grace:          cl.DCSGrace.Duration,
		ConnectTimeout: cfg.Limits.ConnectTimeout.Duration,
		Static: discovery.StaticOptions{Interval: cl.Static.CheckInterval.Duration,
			Fall: cl.Static.Fall, Rise: cl.Static.Rise},
		Etcd:       discovery.EtcdOptions{Endpoints: cl.Etcd.Endpoints, Username: cl.Etcd.Username, Password: cl.Etcd.Password},
		Consul:     discovery.ConsulOptions{Address: cl.Consul.Address, Scheme: cl.Consul.Scheme, Token: cl.Consul.Token, Datacenter: cl.Consul.Datacenter},
		ZooKeeper:  discovery.ZooKeeperOptions{Servers: cl.ZooKeeper.Servers, SessionTimeout: cl.ZooKeeper.SessionTimeout.Duration},
		PatroniAPI: discovery.PatroniAPIOptions{URLs: cl.PatroniAPI.URLs, Interval: cl.PatroniAPI.Interval.Duration},
		Probe: discovery.ProbeOptions{Interval: cl.Probe.Interval.Duration, User: cl.Probe.User,
			Password: cl.Probe.Password, Database: cl.Probe.Database},
	}
	for _, m := range cl.Static.Members {
		o.Static.Members = append(o.Static.Members, topology.Member{Name: m.Name, Addr: m.Address,
			Role: memberRoles[m.Role], NoLoadBalance: m.NoLoadBalance(), Lag: topology.LagUnknown})
	}
	for _, m := range cl.Probe.Members {
		o.Probe.Members = append(o.Probe.Members, topology.Member{Name: m.Name, Addr: m.Address})
	}
	var err error
	switch cl.Discovery {
	case "etcd":
		o.Etcd.TLS, err = readTLS(cfg, "cluster.etcd", cl.Etcd.CA, cl.Etcd.Cert, cl.Etcd.Key)
	case "consul":
		o.Consul.TLS, err = readTLS(cfg, "cluster.consul", cl.Consul.CA, cl.Consul.Cert, cl.Consul.Key)
	case "probe":
		if f := cl.Probe.PasswordFile; f != "" {
			b, rerr := os.ReadFile(cfg.Path(f))
			if rerr != nil {
				return o, fmt.Errorf("cluster.probe.password_file: %w", rerr)
			}
			o.Probe.Password = strings.TrimRight(string(b), "\r\n")
		}
	}
	return o, err
}

// readTLS reads a DCS client's PEM files, named under section.
func readTLS(cfg *config.Config, section, ca, cert, key string) (discovery.TLS, error) {
	var t discovery.TLS
	for _, f := range []struct {
		key, path string
		into      *[]byte
	}{{"ca", ca, &t.CA}, {"cert", cert, &t.Cert}, {"key", key, &t.Key}} {
		if f.path == "" {
			continue
		}
		b, err := os.ReadFile(cfg.Path(f.path))
		if err != nil {
			return t, fmt.Errorf("%s.%s: %w", section, f.key, err)
		}
		*f.into = b
	}
	return t, nil
}
