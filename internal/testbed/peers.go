package testbed

import (
	"context"
	"fmt"
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
		peer.Close()
		return nil, fmt.Errorf("%s did not start: %w\n%s", name, err, proc.LogTail())
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
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	host, bport, err := net.SplitHostPort(backend)
	if err != nil {
		return nil, err
	}
	ini := fmt.Sprintf(`[databases]
* = host=%s port=%s
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = {dir}/users.txt
pool_mode = session
max_client_conn = 2000
default_pool_size = 150
logfile =
pidfile =
`, host, bport, port)
	return startPeer(ctx, "pgbouncer", port, true, cpus, map[string]string{
		"pgbouncer.ini": ini,
		"users.txt":     fmt.Sprintf("%q \"\"\n", user),
	}, "/usr/sbin/pgbouncer", "{dir}/pgbouncer.ini")
}

// StartSwitchyard runs the switchyard binary with configText (where
// "{dir}" is its own directory), waiting until port accepts connections.
func StartSwitchyard(ctx context.Context, binary, configText string, port int, cpus string) (*Peer, error) {
	return startPeer(ctx, "switchyard", port, false, cpus, map[string]string{"switchyard.toml": configText},
		binary, "-config", "{dir}/switchyard.toml")
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
