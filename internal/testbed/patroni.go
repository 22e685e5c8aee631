package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// PatroniOptions shape a Patroni cluster.
type PatroniOptions struct {
	DCS      *DCS
	Scope    string // default "demo"
	Nodes    int    // default 3
	TTL      int    // seconds; default 10
	LoopWait int    // seconds; default 2
}

// Patroni is a cluster of PostgreSQL nodes, each run by its own Patroni
// (Debian's, on Debian's python3) against one of the bed's DCSs.
type Patroni struct {
	Scope     string
	Namespace string // "/service"
	Nodes     []*PatroniNode
	dir       string
	dcs       *DCS
}

// PatroniNode is one member: a Patroni process and the postmaster it runs.
type PatroniNode struct {
	Name    string
	PGPort  int
	APIPort int
	DataDir string
	config  string
	dir     string
	proc    *Process
}

// Addr is the node's PostgreSQL host:port.
func (n *PatroniNode) Addr() string { return "127.0.0.1:" + strconv.Itoa(n.PGPort) }

// APIURL is the node's Patroni REST API.
func (n *PatroniNode) APIURL() string { return "http://127.0.0.1:" + strconv.Itoa(n.APIPort) }

// StartPatroni bootstraps the first node, then lets the others clone it,
// and returns once every replica streams.
func StartPatroni(ctx context.Context, opts PatroniOptions) (_ *Patroni, err error) {
	if opts.Scope == "" {
		opts.Scope = "demo"
	}
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.TTL == 0 {
		opts.TTL = 10
	}
	if opts.LoopWait == 0 {
		opts.LoopWait = 2
	}
	dir, err := os.MkdirTemp("", "switchyard-patroni-")
	if err != nil {
		return nil, err
	}
	os.Chmod(dir, 0o755)
	if err := chownPostgres(dir); err != nil {
		return nil, err
	}
	p := &Patroni{Scope: opts.Scope, Namespace: "/service", dir: dir, dcs: opts.DCS}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	dcsYAML, err := patroniDCS(opts.DCS)
	if err != nil {
		return nil, err
	}
	for i := range opts.Nodes {
		n := &PatroniNode{Name: fmt.Sprintf("pg%d", i+1), dir: dir}
		if n.PGPort, err = FreePort(); err != nil {
			return nil, err
		}
		if n.APIPort, err = FreePort(); err != nil {
			return nil, err
		}
		n.DataDir = filepath.Join(dir, n.Name)
		n.config = filepath.Join(dir, n.Name+".yml")
		retry := max(1, (opts.TTL-opts.LoopWait)/2-1)
		yml := fmt.Sprintf(`scope: %s
namespace: %s/
name: %s
log:
  level: WARNING
restapi:
  listen: 127.0.0.1:%d
  connect_address: 127.0.0.1:%d
%s
bootstrap:
  dcs:
    ttl: %d
    loop_wait: %d
    retry_timeout: %d
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        max_wal_senders: 10
        max_replication_slots: 10
        wal_log_hints: "on"
  initdb:
  - encoding: UTF8
  - no-locale
  - no-sync
postgresql:
  listen: 127.0.0.1:%d
  connect_address: 127.0.0.1:%d
  data_dir: %s
  bin_dir: %s
  pgpass: %s
  pg_hba:
  - local all all trust
  - host replication all 127.0.0.1/32 trust
  - host all all 127.0.0.1/32 trust
  authentication:
    superuser: {username: postgres, password: %s}
    replication: {username: %s, password: %s}
    rewind: {username: postgres, password: %s}
  parameters:
    unix_socket_directories: %s
    fsync: "off"
    synchronous_commit: "off"
    shared_buffers: 32MB
    max_connections: 200
`, opts.Scope, p.Namespace, n.Name, n.APIPort, n.APIPort, dcsYAML, opts.TTL, opts.LoopWait, retry,
			n.PGPort, n.PGPort, n.DataDir, PGBin, filepath.Join(dir, n.Name+".pgpass"),
			Password, ReplUser, Password, Password, dir)
		if err := os.WriteFile(n.config, []byte(yml), 0o644); err != nil {
			return nil, err
		}
		p.Nodes = append(p.Nodes, n)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := p.Nodes[0].Start(); err != nil {
		return nil, err
	}
	if err := p.waitRole(ctx, p.Nodes[0], "/primary"); err != nil {
		return nil, err
	}
	for _, n := range p.Nodes[1:] {
		if err := n.Start(); err != nil {
			return nil, err
		}
	}
	for _, n := range p.Nodes[1:] {
		if err := p.waitRole(ctx, n, "/replica"); err != nil {
			return nil, err
		}
	}
	if err := p.WaitHealthy(ctx, p.Nodes[0].Name); err != nil {
		return nil, err
	}
	return p, nil
}

func patroniDCS(d *DCS) (string, error) {
	switch d.Kind {
	case "etcd":
		return "etcd3:\n  hosts: " + strings.Join(d.Addrs, ","), nil
	case "consul":
		return "consul:\n  host: " + d.Addrs[0] + "\n  register_service: false", nil
	case "zookeeper":
		return "zookeeper:\n  hosts: ['" + strings.Join(d.Addrs, "','") + "']", nil
	}
	return "", fmt.Errorf("testbed: Patroni on %q", d.Kind)
}

// Start runs the node's Patroni (which starts PostgreSQL).
func (n *PatroniNode) Start() error {
	p, err := startProcess("patroni-"+n.Name, filepath.Join(n.dir, n.Name+".log"), true,
		[]string{"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"}, "/usr/bin/python3", "/usr/bin/patroni", n.config)
	if err != nil {
		return err
	}
	n.proc = p
	return nil
}

// KillHard sends SIGKILL to the node's Patroni and then its postmaster,
// as a machine crash would.
func (n *PatroniNode) KillHard() {
	if n.proc != nil {
		_ = n.proc.Signal(syscall.SIGKILL)
		<-n.proc.Exited()
	}
	if pid := n.postmasterPID(); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// Stop ends the node's Patroni gracefully (it stops PostgreSQL), then
// kills a postmaster left behind.
func (n *PatroniNode) Stop() {
	if n.proc != nil {
		n.proc.Stop(syscall.SIGTERM, 30*time.Second)
	}
	if pid := n.postmasterPID(); pid > 0 && syscall.Kill(pid, 0) == nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

func (n *PatroniNode) postmasterPID() int {
	b, err := os.ReadFile(filepath.Join(n.DataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	return pid
}

// waitRole waits until the node's REST API answers 200 on path
// ("/primary", "/replica").
func (p *Patroni) waitRole(ctx context.Context, n *PatroniNode, path string) error {
	err := waitFor(ctx, n.proc.Exited(), 200*time.Millisecond, func(ctx context.Context) error {
		code, err := apiStatus(ctx, n.APIURL()+path)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("GET %s: %d", path, code)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("patroni %s never became %s: %w\n%s", n.Name, path, err, n.proc.LogTail())
	}
	return nil
}

func apiStatus(ctx context.Context, url string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// PatroniMember is one entry of GET /cluster.
type PatroniMember struct {
	Name  string `json:"name"`
	Role  string `json:"role"`
	State string `json:"state"`
	Port  int    `json:"port"`
}

// Members asks any live node's REST API for the cluster view.
func (p *Patroni) Members(ctx context.Context) ([]PatroniMember, error) {
	var lastErr error
	for _, n := range p.Nodes {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.APIURL()+"/cluster", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			lastErr = err
			continue
		}
		var c struct{ Members []PatroniMember }
		err = json.NewDecoder(resp.Body).Decode(&c)
		resp.Body.Close()
		cancel()
		if err != nil {
			lastErr = err
			continue
		}
		return c.Members, nil
	}
	return nil, lastErr
}

// Node returns the node called name.
func (p *Patroni) Node(name string) *PatroniNode {
	for _, n := range p.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Leader returns the node the cluster view names leader.
func (p *Patroni) Leader(ctx context.Context) (*PatroniNode, error) {
	ms, err := p.Members(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if m.Role == "leader" {
			return p.Node(m.Name), nil
		}
	}
	return nil, fmt.Errorf("no leader in %+v", ms)
}

// WaitHealthy waits until leader is the leader with every other node a
// running replica that streams from it and has replayed all its WAL.
func (p *Patroni) WaitHealthy(ctx context.Context, leader string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return waitFor(ctx, nil, 250*time.Millisecond, func(ctx context.Context) error {
		ms, err := p.Members(ctx)
		if err != nil {
			return err
		}
		ok := 0
		for _, m := range ms {
			if (m.Name == leader && m.Role == "leader" && m.State == "running") ||
				(m.Name != leader && m.Role != "leader" && (m.State == "running" || m.State == "streaming")) {
				ok++
			}
		}
		if ok != len(p.Nodes) || len(ms) != len(p.Nodes) {
			return fmt.Errorf("cluster not settled: %+v", ms)
		}
		// Replicas of a fresh cluster may not stream yet: Patroni makes
		// their slots on its next loop. A switchover before that loses WAL.
		want := fmt.Sprint(len(p.Nodes) - 1)
		return p.Node(leader).queryEq(ctx, `SELECT count(*) FROM pg_stat_replication
			WHERE state = 'streaming' AND replay_lsn >= pg_current_wal_lsn()`, want)
	})
}

// queryEq runs a one-value query on the node and compares the answer.
func (n *PatroniNode) queryEq(ctx context.Context, sql, want string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, n.dsn())
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	res := c.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
	if res.Err != nil {
		return res.Err
	}
	if got := string(res.Rows[0][0]); got != want {
		return fmt.Errorf("%s: %q, want %q", n.Name, got, want)
	}
	return nil
}

func (n *PatroniNode) dsn() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable connect_timeout=5", n.PGPort)
}

// Switchover runs `patronictl switchover --force` from leader to candidate
// and waits until the cluster view names candidate leader. Patroni may
// refuse a switchover on its own terms (a candidate it finds lagging
// right after bootstrap, say): then it tries again, up to three times.
func (p *Patroni) Switchover(ctx context.Context, leader, candidate string) error {
	var last string
	for range 3 {
		cmd := exec.CommandContext(ctx, "/usr/bin/python3", "/usr/bin/patronictl", "-c", p.Nodes[0].config,
			"switchover", "--leader", leader, "--candidate", candidate, "--force", p.Scope)
		cmd.Env = append(os.Environ(), "PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8")
		out, err := cmd.CombinedOutput()
		last = string(out)
		if err != nil {
			return fmt.Errorf("patronictl switchover: %w\n%s", err, out)
		}
		wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err = waitFor(wctx, nil, 50*time.Millisecond, func(ctx context.Context) error {
			ms, err := p.Members(ctx)
			if err != nil {
				return err
			}
			for _, m := range ms {
				if m.Name == candidate && m.Role == "leader" {
					return nil
				}
			}
			return fmt.Errorf("%s is not leader yet", candidate)
		})
		cancel()
		if err == nil {
			return nil
		}
	}
	return fmt.Errorf("switchover to %s did not happen:\n%s\n%s", candidate, last, p.LogTail(leader))
}

// LogTail returns the end of node name's Patroni log.
func (p *Patroni) LogTail(name string) string {
	return tail(filepath.Join(p.dir, name+".log"), 3000)
}

// Close stops every node and removes the data.
func (p *Patroni) Close() {
	for _, n := range p.Nodes {
		n.Stop()
	}
	os.RemoveAll(p.dir)
}

// Exec runs statements on the node as the superuser.
func (n *PatroniNode) Exec(ctx context.Context, sql ...string) error {
	return execOn(ctx, n.dsn(), sql...)
}
