package testbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DCS is a distributed configuration store the bed runs on loopback:
// etcd (one or more members), ZooKeeper or a Consul dev agent. Each member
// can be stopped and started again with its data.
type DCS struct {
	Kind    string   // "etcd" | "consul" | "zookeeper"
	Addrs   []string // client host:port, one per member
	dir     string
	members []*dcsMember
}

type dcsMember struct {
	name  string
	argv  []string
	addr  string
	proc  *Process
	ready func(ctx context.Context) error
}

// ConsulBinary is where `make deps` puts the Consul agent.
func ConsulBinary() string {
	if p := os.Getenv("SWITCHYARD_CONSUL"); p != "" {
		return p
	}
	return filepath.Join(CacheDir(), "consul-v1.21.0", "consul")
}

// StartDCS starts kind with n members (n > 1 only for etcd).
func StartDCS(ctx context.Context, kind string, n int) (_ *DCS, err error) {
	dir, err := os.MkdirTemp("", "switchyard-"+kind+"-")
	if err != nil {
		return nil, err
	}
	d := &DCS{Kind: kind, dir: dir}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	ports := func(k int) ([]int, error) {
		out := make([]int, k)
		for i := range out {
			if out[i], err = FreePort(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	switch kind {
	case "etcd":
		client, err := ports(n)
		if err != nil {
			return nil, err
		}
		peer, err := ports(n)
		if err != nil {
			return nil, err
		}
		var initial []string
		for i := range n {
			initial = append(initial, fmt.Sprintf("e%d=http://127.0.0.1:%d", i, peer[i]))
		}
		for i := range n {
			addr := fmt.Sprintf("127.0.0.1:%d", client[i])
			d.members = append(d.members, &dcsMember{name: fmt.Sprintf("etcd-e%d", i), addr: addr, argv: []string{
				"/usr/bin/etcd", "--name", fmt.Sprintf("e%d", i), "--data-dir", filepath.Join(dir, fmt.Sprintf("e%d", i)),
				"--listen-client-urls", "http://" + addr, "--advertise-client-urls", "http://" + addr,
				"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer[i]),
				"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer[i]),
				"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
				"--initial-cluster-token", filepath.Base(dir), "--heartbeat-interval", "50", "--election-timeout", "500",
				"--logger", "zap", "--log-level", "warn",
			}, ready: httpReady("http://" + addr + "/health")})
		}
	case "zookeeper":
		p, err := ports(2)
		if err != nil {
			return nil, err
		}
		cfg := fmt.Sprintf("tickTime=1000\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\nmaxSessionTimeout=30000\n",
			filepath.Join(dir, "data"), p[0])
		if err := os.WriteFile(filepath.Join(dir, "zoo.cfg"), []byte(cfg), 0o644); err != nil {
			return nil, err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", p[0])
		d.members = append(d.members, &dcsMember{name: "zookeeper", addr: addr, argv: []string{
			"/usr/bin/java", "-Xmx256m", "-Dzookeeper.jmx.log4j.disable=true", "-cp", "/usr/share/java/zookeeper.jar",
			"org.apache.zookeeper.server.ZooKeeperServerMain", filepath.Join(dir, "zoo.cfg"),
		}, ready: tcpReady(addr)})
	case "consul":
		bin := ConsulBinary()
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("no Consul agent at %s (run `make deps`): %w", bin, err)
		}
		p, err := ports(4)
		if err != nil {
			return nil, err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", p[0])
		d.members = append(d.members, &dcsMember{name: "consul", addr: addr, argv: []string{
			bin, "agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1", "-http-port", strconv.Itoa(p[0]),
			"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
			"-serf-lan-port", strconv.Itoa(p[1]), "-serf-wan-port", strconv.Itoa(p[2]), "-server-port", strconv.Itoa(p[3]),
			"-hcl", `session_ttl_min = "1s"`, "-log-level", "warn",
		}, ready: httpReady("http://" + addr + "/v1/status/leader")})
	default:
		return nil, fmt.Errorf("testbed: unknown DCS %q", kind)
	}
	for _, m := range d.members {
		d.Addrs = append(d.Addrs, m.addr)
	}
	for i := range d.members {
		if err := d.startMember(i); err != nil {
			return nil, err
		}
	}
	for i := range d.members {
		if err := d.waitMember(ctx, i); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func (d *DCS) startMember(i int) error {
	m := d.members[i]
	p, err := startProcess(m.name, filepath.Join(d.dir, m.name+".log"), false, nil, m.argv...)
	if err != nil {
		return err
	}
	m.proc = p
	return nil
}

func (d *DCS) waitMember(ctx context.Context, i int) error {
	m := d.members[i]
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := waitFor(ctx, m.proc.Exited(), 50*time.Millisecond, m.ready); err != nil {
		return fmt.Errorf("%s did not start: %w\n%s", m.name, err, m.proc.LogTail())
	}
	return nil
}

// Stop ends member i (SIGTERM, then SIGKILL); its data stays for Start.
func (d *DCS) Stop(i int) {
	if p := d.members[i].proc; p != nil {
		p.Stop(syscall.SIGTERM, 10*time.Second)
	}
}

// Kill ends member i with SIGKILL, as a crash or a power loss would.
func (d *DCS) Kill(i int) {
	if p := d.members[i].proc; p != nil {
		p.Stop(syscall.SIGKILL, 10*time.Second)
	}
}

// Start starts member i again and waits until it serves clients.
func (d *DCS) Start(ctx context.Context, i int) error {
	if err := d.startMember(i); err != nil {
		return err
	}
	if len(d.members) > 1 {
		return nil // an etcd member is ready once it rejoins; callers wait on their own terms
	}
	return d.waitMember(ctx, i)
}

// Close ends every member and removes the data.
func (d *DCS) Close() {
	for i := range d.members {
		d.Stop(i)
	}
	os.RemoveAll(d.dir)
}

func tcpReady(addr string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		// ZooKeeper accepts before it serves; "ruok" is not whitelisted,
		// but a served connection stays open rather than reset.
		return c.Close()
	}
}

func httpReady(url string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		body := make([]byte, 256)
		n, _ := resp.Body.Read(body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		if strings.Contains(url, "status/leader") && strings.TrimSpace(string(body[:n])) == `""` {
			return errors.New("consul has no leader yet")
		}
		return nil
	}
}
