package testbed

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Peer is a proxy the bed runs beside Switchyard for comparison:
// HAProxy, pgbouncer, or Switchyard itself.
type Peer struct {
	*Process
	Port int
	dir  string
}

// Close stops the peer and removes its files.
func (p *Peer) Close() {
	p.Stop(syscall.SIGTERM, 10*time.Second)
	os.RemoveAll(p.dir)
}

// startPeer writes files into a fresh directory (readable by postgres),
// starts argv and waits until port accepts TCP connections. "{dir}" in
// file contents and argv stands for that directory.
func startPeer(ctx context.Context, name string, port int, asPostgres bool, cpus string, files map[string]string, argv ...string) (*Peer, error) {
	dir, err := os.MkdirTemp("", "switchyard-"+name+"-")
	if err != nil {
		return nil, err
	}
	os.Chmod(dir, 0o755)
	if asPostgres {
		if err := chownPostgres(dir); err != nil {
			return nil, err
		}
	}
	for f, text := range files {
		p := filepath.Join(dir, f)
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(text, "{dir}", dir)), 0o644); err != nil {
			return nil, err
		}
		if asPostgres {
			chownPostgres(p)
		}
	}
	for i, a := range argv {
		argv[i] = strings.ReplaceAll(a, "{dir}", dir)
	}
	proc, err := startProcess(name, filepath.Join(dir, name+".log"), asPostgres, nil, Pin(cpus, argv...)...)
	if err != nil {
		return nil, err
	}
	peer := &Peer{Process: proc, Port: port, dir: dir}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = waitFor(ctx, proc.Exited(), 50*time.Millisecond, func(ctx context.Context) error {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err
	})
	if err != nil {
		logTail := proc.LogTail() // before Close removes the log
		peer.Close()
		return nil, fmt.Errorf("%s did not start: %w\n%s", name, err, logTail)
	}
	return peer, nil
}

// StartHAProxy runs HAProxy in TCP mode in front of backend (host:port),
// the way it is used in front of PostgreSQL without health checks.
func StartHAProxy(ctx context.Context, backend, cpus string) (*Peer, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`global
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 30m
    timeout server 30m
listen postgres
    bind 127.0.0.1:%d
    server pg %s
`, port, backend)
	return startPeer(ctx, "haproxy", port, false, cpus, map[string]string{"haproxy.cfg": cfg},
		"/usr/sbin/haproxy", "-db", "-f", "{dir}/haproxy.cfg")
}

// StartPgBouncer runs pgbouncer (as the postgres user; it refuses root) in
// session pooling mode in front of backend, with trust auth for user.
func StartPgBouncer(ctx context.Context, backend, user, cpus string) (*Peer, error) {
	return StartPgBouncerWith(ctx, PgBouncerOptions{Backend: backend, User: user, CPUs: cpus})
}

// PgBouncerOptions shape a pgbouncer. Zero values give what StartPgBouncer
// runs: session mode, trust auth, default_pool_size 150.
type PgBouncerOptions struct {
	Backend  string // host:port of PostgreSQL
	User     string // the one user in auth_file
	Password string // its secret in auth_file ("" for trust)
	AuthType string // pgbouncer auth_type; "trust" when empty
	PoolMode string // session | transaction | statement; "session" when empty
	PoolSize int    // default_pool_size; 150 when 0
	// MaxClientConn is max_client_conn; 2000 when 0.
	MaxClientConn int
	// ListenBacklog is listen_backlog; pgbouncer's own default (128) when 0.
	ListenBacklog int
	CPUs          string
}

// StartPgBouncerWith runs pgbouncer (as the postgres user; it refuses
// root) in front of opts.Backend as opts say.
func StartPgBouncerWith(ctx context.Context, opts PgBouncerOptions) (*Peer, error) {
	if opts.AuthType == "" {
		opts.AuthType = "trust"
	}
	if opts.PoolMode == "" {
		opts.PoolMode = "session"
	}
	if opts.PoolSize == 0 {
		opts.PoolSize = 150
	}
	if opts.MaxClientConn == 0 {
		opts.MaxClientConn = 2000
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	host, bport, err := net.SplitHostPort(opts.Backend)
	if err != nil {
		return nil, err
	}
	ini := fmt.Sprintf(`[databases]
* = host=%s port=%s
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = %s
auth_file = {dir}/users.txt
pool_mode = %s
max_client_conn = %d
default_pool_size = %d
logfile =
pidfile =
`, host, bport, port, opts.AuthType, opts.PoolMode, opts.MaxClientConn, opts.PoolSize)
	if opts.ListenBacklog > 0 {
		ini += fmt.Sprintf("listen_backlog = %d\n", opts.ListenBacklog)
	}
	return startPeer(ctx, "pgbouncer", port, true, opts.CPUs, map[string]string{
		"pgbouncer.ini": ini,
		"users.txt":     bouncerQuote(opts.User) + " " + bouncerQuote(opts.Password) + "\n",
	}, "/usr/sbin/pgbouncer", "{dir}/pgbouncer.ini")
}

// bouncerQuote quotes s for a pgbouncer auth_file: in double quotes, with
// a double quote written twice.
func bouncerQuote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// StartSwitchyard runs the switchyard binary with configText (where
// "{dir}" is its own directory), waiting until port accepts connections.
func StartSwitchyard(ctx context.Context, binary, configText string, port int, cpus string) (*Peer, error) {
	return StartSwitchyardFiles(ctx, binary, map[string]string{"switchyard.toml": configText}, port, cpus)
}

// StartSwitchyardFiles is StartSwitchyard with more files beside the
// config (an auth file, say): files maps names to contents, and must hold
// "switchyard.toml". "{dir}" in any of them is the peer's directory.
//
// Without an [admin] section the admin endpoint listens on a free port
// (127.0.0.1:0), not on the default :7000 that parallel tests would share.
func StartSwitchyardFiles(ctx context.Context, binary string, files map[string]string, port int, cpus string) (*Peer, error) {
	files = withAdminPort(files)
	return startPeer(ctx, "switchyard", port, false, cpus, files, binary, "-config", "{dir}/switchyard.toml")
}

// withAdminPort gives a config without [admin] one on a free port.
func withAdminPort(files map[string]string) map[string]string {
	cfg := files["switchyard.toml"]
	if strings.Contains(cfg, "[admin]") {
		return files
	}
	out := maps.Clone(files)
	out["switchyard.toml"] = "[admin]\nlisten = \"127.0.0.1:0\"\n\n" + cfg
	return out
}

// LogPath is where the peer's output goes.
func (p *Peer) LogPath() string { return p.log }

// StartHAProxyPatroni runs HAProxy as Patroni's documentation sets it up
// in front of a Patroni cluster: a primary port health-checked with
// OPTIONS /primary and a round-robin replica port checked with /replica,
// both on Patroni's REST API, with on-marked-down shutdown-sessions.
// Port is the primary port; ReplicaPort the other.
func StartHAProxyPatroni(ctx context.Context, p *Patroni) (peer *Peer, replicaPort int, err error) {
	port, err := FreePort()
	if err != nil {
		return nil, 0, err
	}
	if replicaPort, err = FreePort(); err != nil {
		return nil, 0, err
	}
	var servers strings.Builder
	for _, n := range p.Nodes {
		fmt.Fprintf(&servers, "    server %s %s maxconn 100 check port %d\n", n.Name, n.Addr(), n.APIPort)
	}
	cfg := fmt.Sprintf(`global
    maxconn 1000
defaults
    mode tcp
    retries 2
    timeout client 30m
    timeout connect 4s
    timeout server 30m
    timeout check 5s
listen primary
    bind 127.0.0.1:%d
    option httpchk OPTIONS /primary
    http-check expect status 200
    default-server inter 3s fall 3 rise 2 on-marked-down shutdown-sessions
%slisten replicas
    bind 127.0.0.1:%d
    balance roundrobin
    option httpchk OPTIONS /replica
    http-check expect status 200
    default-server inter 3s fall 3 rise 2 on-marked-down shutdown-sessions
%s`, port, servers.String(), replicaPort, servers.String())
	peer, err = startPeer(ctx, "haproxy", port, false, "", map[string]string{"haproxy.cfg": cfg},
		"/usr/sbin/haproxy", "-db", "-f", "{dir}/haproxy.cfg")
	return peer, replicaPort, err
}
