// Package app wires a loaded configuration into a running Switchyard:
// discovery feeding the router, and the proxy serving the listeners. The
// binary and the integration tests run the same code.
package app

import (
	"context"
	"errors"
	"log/slog"
	"net"

	"golang.org/x/sync/errgroup"

	"github.com/switchyard-proxy/switchyard/discovery"
	"github.com/switchyard-proxy/switchyard/internal/config"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/proxy"
	"github.com/switchyard-proxy/switchyard/router"
)

// App is a configured Switchyard with its listeners bound.
type App struct {
	Router   *router.Router
	Registry *router.Registry
	proxy    *proxy.Server
	disc     discovery.Runner
}

// New builds everything cfg describes and binds the listeners, so that
// address errors surface before Run.
func New(cfg *config.Config, log *slog.Logger) (*App, error) {
	reg := router.NewRegistry()
	var ports []router.Port
	var listeners []proxy.Listener
	for _, l := range cfg.Listeners {
		ports = append(ports, router.Port{Name: l.Name, Role: l.Role, Balance: l.Balance, Fallback: l.Fallback,
			MaxLag: l.MaxLag, LeaderWait: cfg.Cluster.LeaderWait.Duration})
		listeners = append(listeners, proxy.Listener{Name: l.Name, Address: l.Address, Role: l.Role})
	}
	rt := router.New(ports, reg)

	opts := proxy.Options{
		Listeners: listeners,
		Router:    rt,
		Registry:  reg,
		Dialer: &pool.Dialer{
			Timeout: cfg.Limits.ConnectTimeout.Duration,
			TLSMode: cfg.ServerTLSMode(),
		},
		ClientTLS:       cfg.ClientTLSMode(),
		LoginTimeout:    cfg.Limits.ClientLoginTimeout.Duration,
		ShutdownTimeout: cfg.Limits.ShutdownTimeout.Duration,
		MaxClients:      cfg.Limits.MaxClients,
		ConfirmWait:     cfg.Cluster.LeaderWait.Duration,
		// Polling learns of a promotion after it happened; a watched
		// leader key changes before it, so DCS modes need no check.
		ConfirmReplicas: cfg.Cluster.Discovery == "patroni-api" || cfg.Cluster.Discovery == "probe",
		Logger:          log,
	}
	if cfg.ClientTLSMode() != config.ClientTLSDisable {
		tc, err := proxy.LoadTLS(cfg.Path(cfg.TLS.Cert), cfg.Path(cfg.TLS.Key))
		if err != nil {
			return nil, err
		}
		opts.TLSConfig = tc
	}
	srv := proxy.New(opts)
	if err := srv.Listen(); err != nil {
		return nil, err
	}
	// Discovery comes last: a DCS client starts goroutines at once, and
	// nothing after it may fail and leave them running.
	disc, err := discovery.New(cfg, rt.Update, log)
	if err != nil {
		srv.Close()
		return nil, err
	}

	return &App{Router: rt, Registry: reg, proxy: srv, disc: disc}, nil
}

// Addr is the bound address of the named listener.
func (a *App) Addr(listener string) net.Addr { return a.proxy.Addr(listener) }

// Run serves until ctx is done, then shuts down gracefully (see
// proxy.Server.Serve). The first error stops everything.
func (a *App) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.disc.Run(gctx) })
	g.Go(func() error { return a.proxy.Serve(gctx) })
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
