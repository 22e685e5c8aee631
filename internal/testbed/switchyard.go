package testbed

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/switchyard-proxy/switchyard/internal/app"
	"github.com/switchyard-proxy/switchyard/internal/config"
)

// Yard is a Switchyard running in the test's process, built from TOML
// text by the same code as the binary (internal/app), logging at debug
// into Log.
type Yard struct {
	*app.App
	Name string
	Cfg  *config.Config
	Log  *LogBuffer
	// ConfigPath holds text as a file: rewrite it and call Reload.
	ConfigPath string
	// Stop shuts it down gracefully (as SIGTERM does) and waits for Run
	// to return. It runs at the test's end if the test did not call it.
	Stop func()
}

// StartYard loads text as a config file called name+".toml", starts
// Switchyard and stops it when the test ends, printing its log if the
// test failed.
func StartYard(t testing.TB, name, text string) *Yard {
	t.Helper()
	if !strings.Contains(text, "[admin]") { // not the default :7000 that parallel tests would share
		text = "[admin]\nlisten = \"127.0.0.1:0\"\n\n" + text
	}
	cfg, err := config.Load(strings.NewReader(text), name+".toml")
	if err != nil {
		t.Fatalf("config: %v\n%s", err, text)
	}
	path := filepath.Join(t.TempDir(), name+".toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &LogBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := app.New(cfg, log, app.Options{Path: path, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	y := &Yard{App: a, Name: name, Cfg: cfg, Log: logs, ConfigPath: path}
	y.Stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s: Run: %v", name, err)
			}
		})
	}
	t.Cleanup(func() {
		y.Stop()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, logs.String())
		}
	})
	return y
}

// Address is the host:port of the named listener.
func (y *Yard) Address(listener string) string { return y.Addr(listener).String() }

// DSN is a libpq connection string for user through the named listener,
// with the test bed's password, without TLS.
func (y *Yard) DSN(listener, user string) string {
	host, port, _ := net.SplitHostPort(y.Address(listener))
	return fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable connect_timeout=5",
		host, port, user, Password, DefaultDB)
}

// BuildSwitchyard builds the switchyard binary (cmd/switchyard) into a
// directory of t's and returns its path, for tests of the process itself:
// signals, the re-exec, SHUTDOWN, descriptor limits, the demo.
func BuildSwitchyard(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		t.Fatalf("finding the module root: %v (GOMOD %q)", err, gomod)
	}
	bin := filepath.Join(t.TempDir(), "switchyard")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/switchyard")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building switchyard: %v\n%s", err, out)
	}
	return bin
}
