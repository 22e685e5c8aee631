package app

import (
	"strings"
	"testing"

	"github.com/switchyard-proxy/switchyard/internal/config"
	"github.com/switchyard-proxy/switchyard/proxy"
)

// A client holds two descriptors when a relay listener may serve it, one
// when every listener pools; the pools' servers are counted once per
// pooled listener.
func TestDescriptorDemand(t *testing.T) {
	load := func(listeners string) *config.Config {
		t.Helper()
		text := "[cluster]\nname = \"c\"\n[cluster.static]\nmembers = [{ name = \"pg1\", address = \"127.0.0.1:5432\", role = \"primary\" }]\n" +
			"[auth]\ntype = \"trust\"\n[limits]\nmax_clients = 100\nmax_startups = 10\n[pool]\ndefault_pool_size = 5\nreserve_pool_size = 1\n" + listeners
		cfg, err := config.Load(strings.NewReader(text), "switchyard.toml")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	pooled := "[[listener]]\nname = \"tx\"\naddress = \"127.0.0.1:0\"\nrole = \"primary\"\npool_mode = \"transaction\"\n" +
		"[listener.pool]\ndefault_pool_size = 10\n" +
		"[[listener]]\nname = \"sess\"\naddress = \"127.0.0.1:0\"\nrole = \"primary\"\npool_mode = \"session\"\n"
	relay := "[[listener]]\nname = \"rw\"\naddress = \"127.0.0.1:0\"\nrole = \"primary\"\n"
	if got, want := descriptorDemand(load(pooled)), (proxy.Demand{MaxClients: 100, MaxStartups: 10, PerClient: 1, Servers: 11 + 6}); got != want {
		t.Errorf("pooled listeners: %+v, want %+v", got, want)
	}
	if got, want := descriptorDemand(load(pooled+relay)), (proxy.Demand{MaxClients: 100, MaxStartups: 10, PerClient: 2, Servers: 17}); got != want {
		t.Errorf("with a relay listener: %+v, want %+v", got, want)
	}
}
