// Command switchyard is a role-aware PostgreSQL proxy.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/switchyard-proxy/switchyard/discovery"
	"github.com/switchyard-proxy/switchyard/internal/config"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/proxy"
	"github.com/switchyard-proxy/switchyard/router"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("switchyard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "switchyard.toml", "configuration file")
	check := fs.Bool("check", false, "validate the configuration, print the effective config and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintf(stdout, "switchyard %s\n", version)
		return 0
	}
	cfg, err := config.LoadFile(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *check {
		if err := cfg.Encode(stdout); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	}
	log := newLogger(cfg.Log, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("switchyard stopped", "err", err)
		return 1
	}
	return 0
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve runs discovery and the proxy until ctx is done; the first error
// stops both.
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	reg := router.NewRegistry()
	var ports []router.Port
	var listeners []proxy.Listener
	for _, l := range cfg.Listeners {
		ports = append(ports, router.Port{Name: l.Name, Role: l.Role, Balance: l.Balance, Fallback: l.Fallback})
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
		Logger:          log,
	}
	if cfg.ClientTLSMode() != config.ClientTLSDisable {
		tc, err := proxy.LoadTLS(cfg.Path(cfg.TLS.Cert), cfg.Path(cfg.TLS.Key))
		if err != nil {
			return err
		}
		opts.TLSConfig = tc
	}
	srv := proxy.New(opts)
	if err := srv.Listen(); err != nil {
		return err
	}

	var members []router.Member
	for _, m := range cfg.Cluster.Static.Members {
		members = append(members, router.Member{
			Name: m.Name, Addr: m.Address, Role: router.ParseRole(m.Role), NoLoadBalance: m.NoLoadBalance(),
		})
	}
	static := &discovery.Static{
		Members:  members,
		Interval: cfg.Cluster.Static.CheckInterval.Duration,
		Publish:  rt.Update,
		Logger:   log.With("component", "discovery"),
	}

	log.Info("switchyard starting", "version", version, "cluster", cfg.Cluster.Name, "discovery", cfg.Cluster.Discovery)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return static.Run(gctx) })
	g.Go(func() error { return srv.Serve(gctx) })
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
