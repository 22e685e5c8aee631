package app_test

import (
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/switchyard-proxy/switchyard/internal/app"
	"github.com/switchyard-proxy/switchyard/internal/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A start-up that fails must leave nothing behind: no bound listener and
// no DCS client goroutines.
func TestNewFailureReleasesEverything(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := free.Addr().String()
	free.Close()

	cases := []struct {
		name, address, ca, want string
	}{
		// The listener cannot bind: the etcd client must not be started.
		{"listener busy", busy.Addr().String(), "", `listener "rw"`},
		// Discovery cannot start: the bound listener must be released.
		{"bad etcd ca", freeAddr, `ca = "ca.pem"`, "cluster.etcd"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			text := `
[cluster]
name = "demo"
discovery = "etcd"
[cluster.etcd]
endpoints = ["127.0.0.1:1"]
` + c.ca + `
[[listener]]
name = "rw"
address = "` + c.address + `"
role = "primary"
`
			path := filepath.Join(dir, "switchyard.toml")
			if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.LoadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			a, err := app.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("app.New = %v, %v; want an error about %s", a, err, c.want)
			}
			if c.address == freeAddr {
				ln, err := net.Listen("tcp", freeAddr)
				if err != nil {
					t.Fatalf("listener not released after a failed start: %v", err)
				}
				ln.Close()
			}
		})
	}
}
