package discovery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard-proxy/switchyard/internal/config"
	"github.com/switchyard-proxy/switchyard/router"
)

// Runner is a discovery that publishes snapshots until its context ends.
type Runner interface {
	Run(ctx context.Context) error
}

// New builds the discovery cfg.Cluster names. Nothing is contacted yet:
// Run keeps trying, so Switchyard starts while its DCS is down.
func New(cfg *config.Config, publish Publish, log *slog.Logger) (Runner, error) {
	cl := cfg.Cluster
	log = log.With("component", "discovery")
	w := &Watcher{
		name:       cl.Discovery,
		publish:    publish,
		failClosed: cl.DCSFailure == config.DCSFailClosed,
		grace:      cl.DCSGrace.Duration,
		wait:       min(10*time.Second, max(cl.DCSGrace.Duration/3, 300*time.Millisecond)),
		timeout:    max(2*time.Second, cl.DCSGrace.Duration/10),
		log:        log,
	}
	switch cl.Discovery {
	case "static":
		var members []router.Member
		for _, m := range cl.Static.Members {
			members = append(members, router.Member{Name: m.Name, Addr: m.Address, Role: router.ParseRole(m.Role),
				NoLoadBalance: m.NoLoadBalance(), Lag: router.LagUnknown})
		}
		return &Static{Members: members, Interval: cl.Static.CheckInterval.Duration, Publish: publish, Logger: log}, nil
	case "etcd", "consul", "zookeeper":
		st, err := OpenStore(cfg)
		if err != nil {
			return nil, err
		}
		w.src, w.name = storeSource{st}, storeName(cl)
	case "patroni-api":
		a := cl.PatroniAPI
		w.src = &patroniAPI{urls: a.URLs, client: &http.Client{Timeout: cfg.Limits.ConnectTimeout.Duration}}
		w.name, w.wait, w.timeout = "patroni-api", a.Interval.Duration, cfg.Limits.ConnectTimeout.Duration
	case "probe":
		p := cl.Probe
		password := p.Password
		if p.PasswordFile != "" {
			b, err := os.ReadFile(cfg.Path(p.PasswordFile))
			if err != nil {
				return nil, fmt.Errorf("cluster.probe.password_file: %w", err)
			}
			password = strings.TrimRight(string(b), "\r\n")
		}
		var members []router.Member
		for _, m := range p.Members {
			members = append(members, router.Member{Name: m.Name, Addr: m.Address})
		}
		w.src = &probe{members: members, timeout: cfg.Limits.ConnectTimeout.Duration,
			config: probeConfig(p.User, password, p.Database, cfg.Limits.ConnectTimeout.Duration)}
		w.name, w.wait, w.timeout = "probe", p.Interval.Duration, cfg.Limits.ConnectTimeout.Duration
	default:
		return nil, fmt.Errorf("cluster.discovery: unknown %q", cl.Discovery)
	}
	return w, nil
}

// OpenStore opens the DCS store cfg.Cluster names, at Patroni's prefix
// for the cluster. Tests use it to watch the keys Switchyard follows.
func OpenStore(cfg *config.Config) (Store, error) {
	cl := cfg.Cluster
	prefix := path.Join(cl.Namespace, cl.Name) + "/"
	switch cl.Discovery {
	case "etcd":
		e := cl.Etcd
		tc, err := tlsConfig(cfg, e.CA, e.Cert, e.Key)
		if err != nil {
			return nil, fmt.Errorf("cluster.etcd: %w", err)
		}
		return newEtcdStore(EtcdOptions{Endpoints: e.Endpoints, Username: e.Username, Password: e.Password, TLS: tc}, prefix)
	case "consul":
		c := cl.Consul
		ac := api.DefaultConfig()
		ac.Address, ac.Scheme, ac.Token, ac.Datacenter = c.Address, c.Scheme, c.Token, c.Datacenter
		ac.TLSConfig = api.TLSConfig{CAFile: cfg.Path(c.CA), CertFile: cfg.Path(c.Cert), KeyFile: cfg.Path(c.Key)}
		return newConsulStore(ac, prefix)
	case "zookeeper":
		z := cl.ZooKeeper
		return newZKStore(z.Servers, z.SessionTimeout.Duration, strings.TrimSuffix(prefix, "/"))
	}
	return nil, fmt.Errorf("cluster.discovery: %q is not a DCS", cl.Discovery)
}

func storeName(cl config.Cluster) string {
	switch cl.Discovery {
	case "etcd":
		return "etcd " + strings.Join(cl.Etcd.Endpoints, ",")
	case "consul":
		return "consul " + cl.Consul.Address
	}
	return "zookeeper " + strings.Join(cl.ZooKeeper.Servers, ",")
}

// tlsConfig loads a client TLS config; nil when no file is named.
func tlsConfig(cfg *config.Config, ca, cert, key string) (*tls.Config, error) {
	if ca == "" && cert == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		b, err := os.ReadFile(cfg.Path(ca))
		if err != nil {
			return nil, err
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("%s: no PEM certificate", ca)
		}
	}
	if cert != "" {
		c, err := tls.LoadX509KeyPair(cfg.Path(cert), cfg.Path(key))
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc, nil
}
