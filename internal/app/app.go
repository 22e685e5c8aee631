// Package app wires a loaded configuration into a running Switchyard:
// discovery publishes to the applier, which fans each snapshot out to the
// router, the session registry, the pools and the operator surface; the
// proxy serves the listeners; the admin server serves the stats page,
// metrics, health checks and (through the proxy) the console. The binary
// and the integration tests run the same code.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/switchyard-proxy/switchyard/discovery"
	"github.com/switchyard-proxy/switchyard/internal/admin"
	"github.com/switchyard-proxy/switchyard/internal/auth"
	"github.com/switchyard-proxy/switchyard/internal/config"
	"github.com/switchyard-proxy/switchyard/internal/events"
	"github.com/switchyard-proxy/switchyard/proxy"
	"github.com/switchyard-proxy/switchyard/router"
)

// Options are what the binary knows beyond the configuration.
type Options struct {
	// Path is the configuration file, for RELOAD and SIGHUP; "" turns
	// reloading off.
	Path    string
	Version string
	// Level is the log level the logger filters at, which a reload sets;
	// nil leaves the level alone.
	Level *slog.LevelVar
}

// App is a configured Switchyard with its listeners bound.
type App struct {
	Router *router.Router
	Admin  *admin.Server
	Events *events.Log
	proxy  *proxy.Server
	disc   *discovery.Watcher
	log    *slog.Logger
	opts   Options
	store  *auth.Store // nil without auth_file and auth_user

	mu       sync.Mutex // serialises reloads
	cfg      *config.Config
	draining map[string]router.Port // listeners removed by a reload, until they drain
	admits   [2]int                 // max_clients and max_startups as fitted to the open-file limit at start
	shutdown context.CancelFunc     // set by Run, for SHUTDOWN
	stopMu   sync.Mutex
}

// New builds everything cfg describes and binds the listeners and the
// admin endpoint, so that address errors surface before Run.
func New(cfg *config.Config, log *slog.Logger, opt ...Options) (*App, error) {
	var o Options
	if len(opt) > 0 {
		o = opt[0]
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	popts, err := proxyOptions(cfg)
	if err != nil {
		return nil, err
	}
	dopts, err := DiscoveryOptions(cfg)
	if err != nil {
		return nil, err
	}
	hopts, err := adminHTTPOptions(cfg)
	if err != nil {
		return nil, err
	}
	fitDescriptors(&popts, descriptorDemand(cfg), log)

	a := &App{Events: events.New(), log: log, opts: o, cfg: cfg, draining: map[string]router.Port{},
		admits: [2]int{popts.MaxClients, popts.MaxStartups}}
	reg := proxy.NewRegistry()
	rt := router.New(routerPorts(cfg), reg.Counts)
	a.Router = rt
	popts.Router, popts.Registry, popts.Dialer, popts.Logger = rt, reg, dialer(cfg), log
	if popts.Auth.Method, popts.Auth.Store, err = authOptions(cfg, rt, popts.Dialer); err != nil {
		return nil, err
	}
	a.store = popts.Auth.Store

	// The operator surface reads the proxy and discovery, which are built
	// after it: it reaches them through a.
	a.Admin = admin.New(admin.Deps{Version: o.Version, Started: time.Now(), Router: rt, Events: a.Events,
		Discovery: statusOf(func() *discovery.Watcher { return a.disc }), Config: a.configRows,
		Reload: a.Reload, Shutdown: a.Shutdown}, log)
	a.Admin.Console().SetUsers(cfg.Admin.Users, cfg.Admin.StatsUsers)
	popts.Observe, popts.Console = a.Admin.Observe, a.Admin.Console()

	srv := proxy.New(popts)
	if err := srv.Listen(); err != nil {
		return nil, err
	}
	a.proxy = srv
	a.Admin.SetProxy(srv)
	if err := a.Admin.Listen(hopts); err != nil {
		srv.Close()
		return nil, fmt.Errorf("admin.listen: %w", err)
	}
	ap := &applier{router: rt, registry: reg, pools: srv, now: time.Now, observe: a.Admin.Applied}
	// Discovery comes last: a DCS client starts goroutines at once, and
	// nothing after it may fail and leave them running.
	dopts.Logger, dopts.Events = log, a.Events
	disc, err := discovery.New(dopts, ap.apply)
	if err != nil {
		srv.Close()
		a.Admin.Close()
		return nil, fmt.Errorf("cluster.%s: %w", cfg.Cluster.Discovery, err)
	}
	a.disc = disc
	// Polling learns of a promotion after it happened; a watched leader
	// key changes before it, so only polling needs in-band checks.
	srv.ConfirmReplicas(disc.Polling())
	return a, nil
}

// statusOf reads discovery's status once it exists.
type statusOf func() *discovery.Watcher

func (f statusOf) Status() discovery.Status {
	if w := f(); w != nil {
		return w.Status()
	}
	return discovery.Status{State: discovery.StateStarting}
}

// fitDescriptors lowers max_clients and max_startups to what the
// open-file limit allows, saying so.
func fitDescriptors(popts *proxy.Options, demand proxy.Demand, log *slog.Logger) {
	budget, err := proxy.FitDescriptors(demand)
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
}

// recheckDescriptors runs the start-up's open-file check again on a
// reload: the limit may have changed since (prlimit on the running
// process), and listeners added by the reload take descriptors too. What
// Switchyard admits (admits, fixed at start) cannot change live, so it
// says what the limit allows now against that, and what to do.
func (a *App) recheckDescriptors(cfg *config.Config) {
	budget, err := proxy.FitDescriptors(descriptorDemand(cfg))
	clients, startups := a.admits[0], a.admits[1]
	switch {
	case err != nil:
		a.log.Warn("reload: cannot check the open-file limit against limits.max_clients", "err", err)
	case budget.MaxClients < clients || budget.MaxStartups < startups:
		a.log.Warn("reload: the open-file limit is now too low for the clients Switchyard admits: past what it allows, new clients wait for a descriptor and live sessions stay; raise it (prlimit --nofile, LimitNOFILE=), or lower limits.max_clients and restart",
			"budget", budget.String(), "admitted_clients", clients, "admitted_startups", startups, "listeners", len(cfg.Listeners))
		a.Events.Add(events.Reload, "the open-file limit is now too low: %s; Switchyard admits %d clients until a restart", budget, clients)
	case budget.MaxClients > clients || budget.MaxStartups > startups:
		a.log.Info("reload: the open-file limit now allows more clients than Switchyard admits since its start; a restart admits them",
			"budget", budget.String(), "admitted_clients", clients, "admitted_startups", startups, "listeners", len(cfg.Listeners))
	default:
		a.log.Info("reload: open-file limit checked", "budget", budget.String(), "listeners", len(cfg.Listeners))
	}
}

// descriptorDemand is what cfg's limits and listeners ask of the
// open-file limit.
func descriptorDemand(cfg *config.Config) proxy.Demand {
	d := proxy.Demand{MaxClients: cfg.Limits.MaxClients, MaxStartups: cfg.Limits.MaxStartups, PerClient: 1}
	for i, l := range cfg.Listeners {
		if !l.Pooled() {
			d.PerClient = 2
			continue
		}
		p := cfg.PoolFor(i)
		d.Servers += *p.DefaultPoolSize + *p.ReservePoolSize
	}
	return d
}

// adminHTTPOptions maps [admin]'s HTTP settings, reading its files.
func adminHTTPOptions(cfg *config.Config) (admin.HTTPOptions, error) {
	a := cfg.Admin
	o := admin.HTTPOptions{Listen: a.Listen, User: a.HTTPUser}
	if a.HTTPPasswordFile != "" {
		b, err := os.ReadFile(cfg.Path(a.HTTPPasswordFile))
		if err != nil {
			return o, fmt.Errorf("admin.http_password_file: %w", err)
		}
		o.Password = strings.TrimRight(string(b), "\r\n")
		if o.Password == "" {
			return o, fmt.Errorf("admin.http_password_file: %s is empty", cfg.Path(a.HTTPPasswordFile))
		}
	}
	if a.Cert != "" {
		tc, err := proxy.LoadTLS(cfg.Path(a.Cert), cfg.Path(a.Key))
		if err != nil {
			return o, fmt.Errorf("admin.cert: %w", err)
		}
		o.TLS = tc
	}
	return o, nil
}

// Addr is the bound address of the named listener.
func (a *App) Addr(listener string) net.Addr { return a.proxy.Addr(listener) }

// AdminAddr is the bound address of the admin HTTP endpoint.
func (a *App) AdminAddr() net.Addr { return a.Admin.Addr() }

// Registry is the set of live sessions bound to members.
func (a *App) Registry() *proxy.Registry { return a.proxy.Registry() }

// Pools is the proxy's pool control (drain, pause, resume, reconnect,
// stats), which the admin console calls.
func (a *App) Pools() *proxy.Server { return a.proxy }

// Stats are the live counters of the named listener.
func (a *App) Stats(listener string) *proxy.Counters { return a.proxy.Stats(listener) }

// Shutdown stops a running App gracefully, as SIGTERM does (SHUTDOWN).
func (a *App) Shutdown() {
	a.stopMu.Lock()
	defer a.stopMu.Unlock()
	if a.shutdown != nil {
		a.shutdown()
	}
}

// Run serves until ctx is done (or Shutdown), then shuts down gracefully
// (see proxy.Server.Serve). The admin endpoint and discovery run until
// the proxy has finished, so that a role change during the shutdown's
// grace period still ends the sessions it concerns, and the page shows
// the drain.
func (a *App) Run(ctx context.Context) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	a.stopMu.Lock()
	a.shutdown = stop
	a.stopMu.Unlock()
	// The watcher and the admin server return only when their context ends.
	bg, stopBackground := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { a.disc.Run(bg) })
	wg.Go(func() {
		if err := a.Admin.Serve(bg); err != nil {
			a.log.Error("admin endpoint failed", "err", err)
		}
	})
	err := a.proxy.Serve(ctx)
	stopBackground()
	wg.Wait()
	return err
}
