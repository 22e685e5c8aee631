// Package app wires a loaded configuration into a running Switchyard:
// discovery publishes to the applier, which fans each snapshot out to the
// router and the session registry, and the proxy serves the listeners.
// The binary and the integration tests run the same code.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/switchyard-proxy/switchyard/discovery"
	"github.com/switchyard-proxy/switchyard/internal/config"
	"github.com/switchyard-proxy/switchyard/proxy"
	"github.com/switchyard-proxy/switchyard/router"
)

// App is a configured Switchyard with its listeners bound.
type App struct {
	Router *router.Router
	proxy  *proxy.Server
	disc   *discovery.Watcher
}

// New builds everything cfg describes and binds the listeners, so that
// address errors surface before Run.
func New(cfg *config.Config, log *slog.Logger) (*App, error) {
	popts, err := proxyOptions(cfg)
	if err != nil {
		return nil, err
	}
	dopts, err := DiscoveryOptions(cfg)
	if err != nil {
		return nil, err
	}
	budget, err := proxy.FitDescriptors(popts.MaxClients, popts.MaxStartups)
	switch {
	case err != nil:
		log.Warn("cannot check the open-file limit against limits.max_clients", "err", err)
	case budget.Capped:
		log.Warn("the open-file limit is too low for limits.max_clients and limits.max_startups: clients beyond what it allows get 53300; raise it (LimitNOFILE=, ulimit -n)",
			"budget", budget.String(), "max_clients", popts.MaxClients, "max_startups", popts.MaxStartups)
		popts.MaxClients, popts.MaxStartups = budget.MaxClients, budget.MaxStartups
	default:
		log.Info("open-file limit checked", "budget", budget.String())
	}

	reg := proxy.NewRegistry()
	rt := router.New(routerPorts(cfg), reg.Counts)
	popts.Router, popts.Registry, popts.Dialer, popts.Logger = rt, reg, dialer(cfg), log
	if popts.Auth.Method, popts.Auth.Store, err = authOptions(cfg, rt, popts.Dialer); err != nil {
		return nil, err
	}

	srv := proxy.New(popts)
	if err := srv.Listen(); err != nil {
		return nil, err
	}
	ap := &applier{router: rt, registry: reg, pools: srv, now: time.Now}
	// Discovery comes last: a DCS client starts goroutines at once, and
	// nothing after it may fail and leave them running.
	dopts.Logger = log
	disc, err := discovery.New(dopts, ap.apply)
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("cluster.%s: %w", cfg.Cluster.Discovery, err)
	}
	// Polling learns of a promotion after it happened; a watched leader
	// key changes before it, so only polling needs in-band checks.
	srv.ConfirmReplicas(disc.Polling())
	return &App{Router: rt, proxy: srv, disc: disc}, nil
}

// Addr is the bound address of the named listener.
func (a *App) Addr(listener string) net.Addr { return a.proxy.Addr(listener) }

// Registry is the set of live sessions bound to members.
func (a *App) Registry() *proxy.Registry { return a.proxy.Registry() }

// Pools is the proxy's pool control (drain, pause, resume, reconnect,
// stats), which the admin console will call.
func (a *App) Pools() *proxy.Server { return a.proxy }

// Stats are the live counters of the named listener.
func (a *App) Stats(listener string) *proxy.Counters { return a.proxy.Stats(listener) }

// Run serves until ctx is done, then shuts down gracefully (see
// proxy.Server.Serve). Discovery runs until the proxy has finished, so
// that a role change during the shutdown's grace period still ends the
// sessions it concerns.
func (a *App) Run(ctx context.Context) error {
	// The watcher returns only when its context ends.
	dctx, stopDiscovery := context.WithCancel(context.Background())
	discDone := make(chan struct{})
	go func() { a.disc.Run(dctx); close(discDone) }()
	err := a.proxy.Serve(ctx)
	stopDiscovery()
	<-discDone
	return err
}
