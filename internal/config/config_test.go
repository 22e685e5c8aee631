package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEveryShippedConfigLoads(t *testing.T) {
	files, err := filepath.Glob("../../configs/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no configs found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := LoadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			if err := cfg.Encode(&b); err != nil {
				t.Fatal(err)
			}
			// The effective config printed by -check loads again.
			if _, err := Load(strings.NewReader(b.String()), "effective"); err != nil {
				t.Fatalf("effective config does not load: %v\n%s", err, b.String())
			}
		})
	}
}

const valid = `
[cluster]
name = "c"
[cluster.static]
members = [
  { name = "a", address = "127.0.0.1:5432", role = "primary" },
  { name = "b", address = "127.0.0.1:5433", role = "replica", tags = { noloadbalance = true } },
]
[[listener]]
name = "rw"
address = "127.0.0.1:5000"
role = "primary"
`

func TestDefaults(t *testing.T) {
	cfg, err := Load(strings.NewReader(valid), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	l := cfg.Listeners[0]
	if l.PoolMode != "none" || l.Balance != "round-robin" || l.Fallback != "none" {
		t.Fatalf("listener defaults: %+v", l)
	}
	if cfg.Limits.ClientLoginTimeout.Duration != 15*time.Second || cfg.Limits.ConnectTimeout.Duration != 5*time.Second ||
		cfg.Limits.ShutdownTimeout.Duration != 30*time.Second || cfg.Limits.MaxClients != 10000 {
		t.Fatalf("limits defaults: %+v", cfg.Limits)
	}
	if cfg.Admin.Listen != "127.0.0.1:7000" || cfg.Log.Level != "info" || cfg.Cluster.Discovery != "static" {
		t.Fatalf("defaults: %+v %+v %+v", cfg.Admin, cfg.Log, cfg.Cluster)
	}
	if cfg.ClientTLSMode() != "disable" || cfg.ServerTLSMode() != "prefer" {
		t.Fatalf("TLS defaults without [tls]: %s %s", cfg.ClientTLSMode(), cfg.ServerTLSMode())
	}
	if !cfg.Cluster.Static.Members[1].NoLoadBalance() || cfg.Cluster.Static.Members[0].NoLoadBalance() {
		t.Fatal("noloadbalance tag not read")
	}
}

// Each broken config must report every one of its problems at once, each
// as "file:line: key: message".
func TestBrokenConfigs(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string
		want []string // substrings, one per expected error, in order
	}{
		{"syntax error", "[cluster\nname = 1", []string{"broken.toml:2: expected '.' or ']' to end table name"}},
		{"type error", "[limits]\nmax_clients = \"many\"", []string{"broken.toml:2: limits.max_clients: incompatible types"}},
		{"empty file", "", []string{
			"cluster.name: is required",
			"cluster.static.members: at least one member",
			"listener: at least one [[listener]] is required",
		}},
		{"unknown keys", valid + "\n[limits]\nmax_client = 5\n[[listener]]\nname = \"ro\"\naddress = \"127.0.0.1:5001\"\nrole = \"replica\"\nbalanse = \"random\"\n", []string{
			"broken.toml:15: limits.max_client: unknown key",
			"broken.toml:20: listener.balanse: unknown key",
		}},
		{"bad listener values", `
[cluster]
name = "c"
[cluster.static]
members = [{ name = "a", address = "127.0.0.1:5432", role = "primary" }]
[[listener]]
name = "rw"
address = "127.0.0.1:5000"
role = "writer"
[[listener]]
name = "rw"
address = "localhost"
role = "replica"
balance = "fastest"
fallback = "elsewhere"
pool_mode = "pooled"
[[listener]]
name = "x"
address = "127.0.0.1:5000"
role = "primary"
fallback = "primary"
`, []string{
			`broken.toml:9: listener[0].role: "writer" is not one of primary, replica, sync, any`,
			`broken.toml:11: listener[1].name: "rw" is already the name of listener[0]`,
			`broken.toml:12: listener[1].address: "localhost" is not host:port`,
			`broken.toml:16: listener[1].pool_mode: "pooled" is not one of none, session, transaction`,
			`broken.toml:14: listener[1].balance: "fastest" is not one of`,
			`broken.toml:15: listener[1].fallback: "elsewhere" is not one of`,
			`broken.toml:19: listener[2].address: 127.0.0.1:5000 is already used by listener[0]`,
			`broken.toml:21: listener[2].fallback: has no meaning on a primary listener`,
		}},
		{"bad pooling", `
[cluster]
name = "c"
[cluster.static]
members = [{ name = "a", address = "127.0.0.1:5432", role = "primary" }]
[[listener]]
name = "rw"
address = "127.0.0.1:5000"
role = "primary"
pool_mode = "transaction"
[listener.pool]
default_pool_size = 0
server_lifetime = "forever"
[[listener]]
name = "ro"
address = "127.0.0.1:5001"
role = "replica"
[listener.pool]
min_pool_size = 2
[auth]
type = "ldap"
[pool]
min_pool_size = 30
query_wait_timeout = "-1s"
max_prepared_statements = -1
`, []string{
			`broken.toml:12: listener[0].pool.default_pool_size: must be 1 or more, got 0`,
			`broken.toml:13: listener[0].pool.server_lifetime: "forever" is not a duration`,
			`broken.toml:18: listener[1].pool: has no meaning on a listener with pool_mode "none"`,
			`broken.toml:25: pool.max_prepared_statements: must be 0 or more, got -1`,
			`broken.toml:23: pool.min_pool_size: 30 is more than default_pool_size (20)`,
			`broken.toml:24: pool.query_wait_timeout: must be 0 (off) or positive, got "-1s"`,
			`broken.toml:21: auth.type: "ldap" is not one of scram-sha-256, md5, plain, trust`,
			`auth.file: is required for pooled listeners when auth.type is "ldap"`,
		}},
		{"bad members", `
[cluster]
name = "c"
discovery = "static"
[cluster.static]
check_interval = "often"
members = [
  { name = "a", address = "127.0.0.1:5432", role = "primary" },
  { name = "a", address = "127.0.0.1:99999", role = "master" },
  { name = "c", address = "127.0.0.1:5434", role = "primary", tags = { noloadbalance = "yes" } },
]
[[listener]]
name = "rw"
address = "127.0.0.1:5000"
role = "primary"
`, []string{
			`broken.toml:6: cluster.static.check_interval: "often" is not a duration`,
			`broken.toml:9: cluster.static.members[1].name: "a" names two members`,
			`broken.toml:9: cluster.static.members[1].address: "127.0.0.1:99999" has no valid port`,
			`broken.toml:9: cluster.static.members[1].role: "master" is not one of primary, replica`,
			`broken.toml:10: cluster.static.members[2].role: a cluster has one primary; "c" is the second`,
			`broken.toml:10: cluster.static.members[2].tags.noloadbalance: must be true or false`,
		}},
		{"discovery section that does not match", strings.Replace(valid, `name = "c"`, "name = \"c\"\ndiscovery = \"etcd\"", 1), []string{
			`broken.toml:5: cluster.static: is set but cluster.discovery is "etcd"`,
			`broken.toml:2: cluster.etcd.endpoints: at least one host:port is required`,
		}},
		{"bad dcs settings", `
[cluster]
name = "c"
namespace = "service"
discovery = "zookeeper"
dcs_failure = "hope"
dcs_grace = "soon"
leader_wait = "0s"
[cluster.zookeeper]
servers = ["zk1"]
[[listener]]
name = "ro"
address = "127.0.0.1:0"
role = "replica"
max_lag = -5
`, []string{
			`broken.toml:6: cluster.dcs_failure: "hope" is not one of keep-last, fail-closed`,
			`broken.toml:7: cluster.dcs_grace: "soon" is not a duration`,
			`broken.toml:8: cluster.leader_wait: must be positive`,
			`broken.toml:4: cluster.namespace: "service" must start with "/"`,
			`broken.toml:10: cluster.zookeeper.servers[0]: "zk1" is not host:port`,
			`broken.toml:15: listener[0].max_lag: must be a number of bytes`,
		}},
		{"probe without user", `
[cluster]
name = "c"
discovery = "probe"
[cluster.probe]
members = [{ name = "a", address = "127.0.0.1:5432", role = "primary" }]
[[listener]]
name = "rw"
address = "127.0.0.1:0"
role = "primary"
`, []string{
			`broken.toml:6: cluster.probe.members[0].role: is found out by asking the server`,
			`broken.toml:5: cluster.probe.user: is required`,
		}},
		{"bad tls, limits and log", valid + `
[tls]
client_mode = "always"
server_mode = "verify-full"
[limits]
client_login_timeout = "0s"
connect_timeout = "5"
max_clients = -1
[log]
level = "loud"
format = "xml"
`, []string{
			`broken.toml:22: log.level: "loud" is not one of debug, info, warn, error`,
			`broken.toml:23: log.format: "xml" is not one of text, json`,
			`broken.toml:15: tls.client_mode: "always" is not one of disable, allow, require`,
			`broken.toml:16: tls.server_mode: "verify-full" is not one of disable, prefer, require`,
			`broken.toml:14: tls.cert: is required when tls.client_mode is "always"`,
			`broken.toml:14: tls.key: is required when tls.client_mode is "always"`,
			`broken.toml:18: limits.client_login_timeout: must be positive, got "0s"`,
			`broken.toml:19: limits.connect_timeout: "5" is not a duration`,
			`broken.toml:20: limits.max_clients: must be positive, got -1`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(strings.NewReader(tc.text), "broken.toml")
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("want *Errors, got %v", err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("want %d errors, got %d:\n%s", len(tc.want), len(lines), err)
			}
			for i, w := range tc.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("error %d = %q, want it to contain %q", i, lines[i], w)
				}
			}
		})
	}
}

func TestMissingTLSFilesNameTheKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sy.toml")
	os.WriteFile(path, []byte(valid+"\n[tls]\ncert = \"nope.crt\"\nkey = \"nope.key\"\n"), 0o600)
	_, err := LoadFile(path)
	if err == nil || !strings.Contains(err.Error(), path+":15: tls.cert: cannot read "+filepath.Join(dir, "nope.crt")) ||
		!strings.Contains(err.Error(), ":16: tls.key:") {
		t.Fatalf("got %v", err)
	}
}

func TestPositions(t *testing.T) {
	pos := indexPositions([]byte(`# comment
a = "x # not a comment"
[t]
b.c = 1
"q.k" = 2
s = """
multi
"""
after = 3
[[arr]]
x = 1
[[arr]]
x = [ 1,
  2 ]
y = { p = 1, r = [
  { z = 1 },
] }
`))
	for key, line := range map[string]int{
		"a": 2, "t": 3, "t.b.c": 4, "t.q.k": 5, "t.s": 6, "t.after": 9,
		"arr[0]": 10, "arr[0].x": 11, "arr[1].x": 13, "arr[1].x[1]": 14,
		"arr[1].y.r[0].z": 16, "arr.x": 11, "arr[1].missing": 12,
	} {
		if got := pos.lineOf(key); got != line {
			t.Errorf("line of %s = %d, want %d", key, got, line)
		}
	}
}
