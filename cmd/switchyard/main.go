// Command switchyard is a role-aware PostgreSQL proxy.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/switchyard-proxy/switchyard/internal/app"
	"github.com/switchyard-proxy/switchyard/internal/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	tuneRuntime()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("switchyard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "switchyard.toml", "configuration file")
	check := fs.Bool("check", false, "validate the configuration, print the effective config and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file until exit (for benchmarks)")
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
	level := new(slog.LevelVar)
	log := newLogger(cfg.Log, level, stderr)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(stderr, "cpuprofile:", err)
			return 1
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, log, app.Options{Path: *path, Version: version, Level: level}); err != nil {
		log.Error("switchyard stopped", "err", err)
		return 1
	}
	return 0
}

func newLogger(c config.Log, level *slog.LevelVar, w io.Writer) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(c.Level)) // validated by config
	level.Set(lv)
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serve(ctx context.Context, cfg *config.Config, log *slog.Logger, opts app.Options) error {
	a, err := app.New(cfg, log, opts)
	if err != nil {
		return err
	}
	log.Info("switchyard starting", "version", version, "cluster", cfg.Cluster.Name, "discovery", cfg.Cluster.Discovery,
		"admin", a.AdminAddr().String())
	// SIGHUP re-reads the file; a file that does not load changes nothing.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reloadsDone := make(chan struct{})
	rctx, stopReloads := context.WithCancel(ctx)
	go func() {
		defer close(reloadsDone)
		for {
			select {
			case <-rctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading the configuration", "file", opts.Path)
				a.Reload() // logs what it did, and every error
			}
		}
	}()
	err = a.Run(ctx)
	stopReloads()
	<-reloadsDone
	return err
}
