// Package discovery turns a source of cluster facts into a stream of
// whole, immutable topology snapshots.
//
// One Watcher loop (retry, backoff, keep-last / fail-closed) runs every
// source: Patroni's keys in etcd, Consul or ZooKeeper (watched), Patroni's
// REST API and node probes (polled), and a static member list with TCP
// health checks. New chooses the source with a plain switch.
package discovery

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
	"github.com/switchyard-proxy/switchyard/internal/events"
)

// Publish receives each new snapshot.
type Publish func(*topology.Snapshot)

// Mode is where the topology comes from.
type Mode uint8

// Discovery modes.
const (
	ModeStatic     Mode = iota // a fixed member list with TCP checks
	ModeEtcd                   // Patroni's keys in etcd v3
	ModeConsul                 // Patroni's keys in Consul KV
	ModeZooKeeper              // Patroni's znodes
	ModePatroniAPI             // polling Patroni's REST API
	ModeProbe                  // asking every node pg_is_in_recovery()
)

func (m Mode) String() string {
	return [...]string{"static", "etcd", "consul", "zookeeper", "patroni-api", "probe"}[m]
}

// Options configure discovery. Only the section of Mode is read.
type Options struct {
	Mode Mode
	// Scope and Namespace place Patroni's keys: <Namespace>/<Scope>/.
	Scope, Namespace string
	// FailClosed drops the primary at once when the source cannot be
	// reached; otherwise the last snapshot is trusted for Grace.
	FailClosed bool
	Grace      time.Duration
	// ConnectTimeout bounds one request to Patroni's API or one probe.
	ConnectTimeout time.Duration

	Static     StaticOptions
	Etcd       EtcdOptions
	Consul     ConsulOptions
	ZooKeeper  ZooKeeperOptions
	PatroniAPI PatroniAPIOptions
	Probe      ProbeOptions

	Logger *slog.Logger
	Events *events.Log // DCS outages and recoveries; may be nil
}

// TLS is client TLS material for a DCS, as PEM; all empty means plain.
type TLS struct{ CA, Cert, Key []byte }

// EtcdOptions configure an etcd v3 store.
type EtcdOptions struct {
	Endpoints          []string // host:port or URLs
	Username, Password string
	TLS                TLS
}

// ConsulOptions configure a Consul KV store.
type ConsulOptions struct {
	Address, Scheme, Token, Datacenter string
	TLS                                TLS
}

// ZooKeeperOptions configure a ZooKeeper store.
type ZooKeeperOptions struct {
	Servers        []string
	SessionTimeout time.Duration
}

// PatroniAPIOptions configure polling of Patroni's REST API.
type PatroniAPIOptions struct {
	URLs     []string
	Interval time.Duration
}

// ProbeOptions configure asking every member pg_is_in_recovery().
type ProbeOptions struct {
	Members                  []topology.Member // Name and Addr
	Interval                 time.Duration
	User, Password, Database string
}

// New builds the discovery opts describe. Nothing is contacted yet: Run
// keeps trying, so Switchyard starts while its DCS is down.
func New(opts Options, publish Publish) (*Watcher, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "discovery")
	grace := opts.Grace
	if grace <= 0 {
		grace = 30 * time.Second
	}
	timeout := opts.ConnectTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	w := &Watcher{
		publish:    publish,
		failClosed: opts.FailClosed,
		grace:      grace,
		wait:       min(10*time.Second, max(grace/3, 300*time.Millisecond)),
		timeout:    max(2*time.Second, grace/10),
		log:        log,
		events:     opts.Events,
		mode:       opts.Mode,
	}
	switch opts.Mode {
	case ModeStatic:
		s := newStatic(opts.Static, log)
		w.src, w.name, w.wait, w.timeout = s, "static", s.interval, s.timeout
	case ModeEtcd, ModeConsul, ModeZooKeeper:
		st, err := OpenStore(opts)
		if err != nil {
			return nil, err
		}
		w.src, w.name = &storeSource{Store: st}, storeName(opts)
	case ModePatroniAPI:
		a := opts.PatroniAPI
		w.src = &patroniAPI{urls: a.URLs, client: &http.Client{Timeout: timeout}}
		w.name, w.wait, w.timeout = "patroni-api", a.Interval, timeout
	case ModeProbe:
		p := opts.Probe
		w.src = &probe{members: p.Members, timeout: timeout,
			config: probeConfig(p.User, p.Password, p.Database, timeout)}
		w.name, w.wait, w.timeout = "probe", p.Interval, timeout
	default:
		return nil, fmt.Errorf("discovery: unknown mode %d", opts.Mode)
	}
	return w, nil
}

// OpenStore opens the DCS store of opts.Mode at Patroni's prefix for the
// cluster. Tests use it to watch the keys Switchyard follows.
func OpenStore(opts Options) (Store, error) {
	ns := opts.Namespace
	if ns == "" {
		ns = "/service"
	}
	prefix := path.Join(ns, opts.Scope) + "/"
	switch opts.Mode {
	case ModeEtcd:
		tc, err := tlsConfig(opts.Etcd.TLS)
		if err != nil {
			return nil, err
		}
		return newEtcdStore(opts.Etcd, tc, prefix)
	case ModeConsul:
		c := opts.Consul
		ac := api.DefaultConfig()
		if c.Address != "" {
			ac.Address = c.Address
		}
		if c.Scheme != "" {
			ac.Scheme = c.Scheme
		}
		ac.Token, ac.Datacenter = c.Token, c.Datacenter
		ac.TLSConfig = api.TLSConfig{CAPem: c.TLS.CA, CertPEM: c.TLS.Cert, KeyPEM: c.TLS.Key}
		return newConsulStore(ac, prefix)
	case ModeZooKeeper:
		z := opts.ZooKeeper
		return newZKStore(z.Servers, z.SessionTimeout, strings.TrimSuffix(prefix, "/"))
	}
	return nil, fmt.Errorf("discovery: %s is not a DCS", opts.Mode)
}

func storeName(opts Options) string {
	switch opts.Mode {
	case ModeEtcd:
		return "etcd " + strings.Join(opts.Etcd.Endpoints, ",")
	case ModeConsul:
		return "consul " + opts.Consul.Address
	}
	return "zookeeper " + strings.Join(opts.ZooKeeper.Servers, ",")
}

// tlsConfig builds a client TLS config from PEM; nil when t is empty.
func tlsConfig(t TLS) (*tls.Config, error) {
	if len(t.CA) == 0 && len(t.Cert) == 0 {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(t.CA) > 0 {
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(t.CA) {
			return nil, errors.New("ca: no PEM certificate")
		}
	}
	if len(t.Cert) > 0 {
		c, err := tls.X509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("cert and key: %w", err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc, nil
}
