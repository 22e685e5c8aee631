package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// PGBin is where the PostgreSQL 15 server binaries live on Debian.
var PGBin = "/usr/lib/postgresql/15/bin"

// Login roles every cluster has, one per authentication method, and the
// password of the two that need one.
const (
	UserSCRAM    = "sy_scram"
	UserMD5      = "sy_md5"
	UserTrust    = "sy_trust"
	UserTLSOnly  = "sy_tlsonly" // SCRAM, and refused without TLS (hostnossl reject)
	UserSuper    = "postgres"   // trust on loopback
	Password     = "switchyard-secret"
	ReplUser     = "replicator"
	DefaultDB    = "postgres"
	pgMaxClients = 300
)

// PGOptions shape a PostgreSQL cluster.
type PGOptions struct {
	Replicas int  // streaming replicas of the primary
	TLS      bool // ssl = on, with a self-signed certificate
	// Settings are extra postgresql.conf settings for every node.
	Settings map[string]string
	// CPUs pins every postmaster to these CPUs (taskset list, e.g. "1").
	CPUs string
}

// PGCluster is a primary with streaming replicas on 127.0.0.1.
type PGCluster struct {
	Dir   string
	Nodes []*PGNode // Nodes[0] is the first primary
	opts  PGOptions
}

// PGNode is one postmaster.
type PGNode struct {
	Name    string
	Port    int
	DataDir string
	proc    *Process
	cluster *PGCluster
}

// Addr is the node's host:port.
func (n *PGNode) Addr() string { return "127.0.0.1:" + strconv.Itoa(n.Port) }

// DSN is a libpq connection string for user on this node.
func (n *PGNode) DSN(user string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable connect_timeout=5",
		n.Port, user, Password, DefaultDB)
}

// StartPG initdb's a primary, starts it, creates the login roles, then
// clones and starts the replicas with pg_basebackup. Close ends them all.
func StartPG(ctx context.Context, opts PGOptions) (c *PGCluster, err error) {
	dir, err := os.MkdirTemp("", "switchyard-pg-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	if err := chownPostgres(dir); err != nil {
		return nil, err
	}
	c = &PGCluster{Dir: dir, opts: opts}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	primary, err := c.newNode("pg1")
	if err != nil {
		return nil, err
	}
	if err := runAs(ctx, true, filepath.Join(PGBin, "initdb"), "-D", primary.DataDir, "-U", UserSuper,
		"--no-locale", "-E", "UTF8", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"); err != nil {
		return nil, err
	}
	if err := c.writeConfig(primary); err != nil {
		return nil, err
	}
	if err := primary.Start(ctx); err != nil {
		return nil, err
	}
	if err := primary.Exec(ctx,
		"CREATE ROLE "+ReplUser+" LOGIN REPLICATION",
		"CREATE ROLE "+UserTrust+" LOGIN",
		"SET password_encryption = 'scram-sha-256'",
		"CREATE ROLE "+UserSCRAM+" LOGIN PASSWORD '"+Password+"'",
		"SET password_encryption = 'md5'",
		"CREATE ROLE "+UserMD5+" LOGIN PASSWORD '"+Password+"'",
		"SET password_encryption = 'scram-sha-256'",
		"CREATE ROLE "+UserTLSOnly+" LOGIN PASSWORD '"+Password+"'",
		"GRANT pg_read_all_stats, pg_signal_backend TO "+UserSCRAM+", "+UserMD5+", "+UserTrust,
		"CREATE TABLE IF NOT EXISTS switchyard_probe (id bigserial PRIMARY KEY, note text)",
		"GRANT ALL ON switchyard_probe, switchyard_probe_id_seq TO PUBLIC",
	); err != nil {
		return nil, err
	}
	for i := 0; i < opts.Replicas; i++ {
		r, err := c.newNode(fmt.Sprintf("pg%d", i+2))
		if err != nil {
			return nil, err
		}
		if err := runAs(ctx, true, filepath.Join(PGBin, "pg_basebackup"), "-h", "127.0.0.1",
			"-p", strconv.Itoa(primary.Port), "-U", ReplUser, "-D", r.DataDir, "-R", "-X", "stream", "--no-sync"); err != nil {
			return nil, err
		}
		if err := r.Start(ctx); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *PGCluster) newNode(name string) (*PGNode, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	n := &PGNode{Name: name, Port: port, DataDir: filepath.Join(c.Dir, name), cluster: c}
	c.Nodes = append(c.Nodes, n)
	return n, nil
}

func (c *PGCluster) writeConfig(n *PGNode) error {
	hba := "local all all trust\n" +
		"host replication " + ReplUser + " 127.0.0.1/32 trust\n" +
		"host all " + UserSuper + " 127.0.0.1/32 trust\n" +
		"host all " + UserTrust + " 127.0.0.1/32 trust\n" +
		"host all " + UserMD5 + " 127.0.0.1/32 md5\n" +
		"hostnossl all " + UserTLSOnly + " 127.0.0.1/32 reject\n" +
		"host all all 127.0.0.1/32 scram-sha-256\n"
	if err := os.WriteFile(filepath.Join(n.DataDir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return err
	}
	conf := "listen_addresses = '127.0.0.1'\n" +
		"unix_socket_directories = '" + c.Dir + "'\n" +
		"max_connections = " + strconv.Itoa(pgMaxClients) + "\n" +
		"wal_level = replica\nmax_wal_senders = 10\nhot_standby = on\nwal_log_hints = on\n" +
		"fsync = off\nfull_page_writes = off\nsynchronous_commit = off\n" +
		"shared_buffers = 32MB\nlogging_collector = off\nlog_min_messages = warning\n"
	if c.opts.TLS {
		cert, key, err := WriteCert(n.DataDir, "server")
		if err != nil {
			return err
		}
		for _, p := range []string{cert, key} {
			if err := chownPostgres(p); err != nil {
				return err
			}
		}
		conf += "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
	}
	for k, v := range c.opts.Settings {
		conf += k + " = '" + v + "'\n"
	}
	f, err := os.OpenFile(filepath.Join(n.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(conf)
	return err
}

// Start starts the node's postmaster and waits until it accepts logins.
// After a kill -9, orphaned backends may hold the old shared memory for
// a moment; Start retries until ctx ends.
func (n *PGNode) Start(ctx context.Context) error {
	if n.proc != nil {
		select {
		case <-n.proc.Exited():
		default:
			return fmt.Errorf("%s is already running", n.Name)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	logPath := filepath.Join(n.cluster.Dir, n.Name+".log")
	return waitFor(ctx, nil, 200*time.Millisecond, func(ctx context.Context) error {
		if n.proc == nil || isDone(n.proc.Exited()) {
			p, err := startProcess(n.Name, logPath, true, nil, Pin(n.cluster.opts.CPUs,
				filepath.Join(PGBin, "postgres"), "-D", n.DataDir, "-p", strconv.Itoa(n.Port))...)
			if err != nil {
				return err
			}
			n.proc = p
		}
		err := n.ping(ctx)
		if err != nil && isDone(n.proc.Exited()) {
			return fmt.Errorf("%s exited: %s", n.Name, n.proc.LogTail())
		}
		return err
	})
}

func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (n *PGNode) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, n.DSN(UserSuper))
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// Running reports whether the postmaster process is alive.
func (n *PGNode) Running() bool { return n.proc != nil && !isDone(n.proc.Exited()) }

// PID is the postmaster's process ID (0 when not started).
func (n *PGNode) PID() int {
	if n.proc == nil {
		return 0
	}
	return n.proc.PID()
}

// Stop shuts the node down ("fast" mode: SIGINT), killing it after 30 s.
func (n *PGNode) Stop() {
	if n.Running() {
		n.proc.Stop(syscall.SIGINT, 30*time.Second)
	}
}

// Kill sends SIGKILL to the postmaster, as a crash would.
func (n *PGNode) Kill() {
	if n.Running() {
		_ = n.proc.Signal(syscall.SIGKILL)
		<-n.proc.Exited()
	}
}

// Promote turns a replica into a primary and waits for it.
func (n *PGNode) Promote(ctx context.Context) error {
	return n.Exec(ctx, "SELECT pg_promote(true, 60)")
}

// Exec runs statements on the node as the superuser.
func (n *PGNode) Exec(ctx context.Context, sql ...string) error {
	if err := execOn(ctx, n.DSN(UserSuper), sql...); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	return nil
}

// execOn runs statements on one connection to dsn.
func execOn(ctx context.Context, dsn string, sql ...string) error {
	conn, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, q := range sql {
		if _, err := conn.Exec(ctx, q).ReadAll(); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// WaitStreaming waits until the primary sees n streaming replicas.
func (c *PGCluster) WaitStreaming(ctx context.Context, primary *PGNode, n int) error {
	return waitFor(ctx, nil, 100*time.Millisecond, func(ctx context.Context) error {
		conn, err := pgconn.Connect(ctx, primary.DSN(UserSuper))
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		res := conn.ExecParams(ctx, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'", nil, nil, nil, nil).Read()
		if res.Err != nil {
			return res.Err
		}
		if len(res.Rows) == 1 && string(res.Rows[0][0]) == strconv.Itoa(n) {
			return nil
		}
		return errors.New("replicas not streaming yet")
	})
}

// Close stops every node and removes the cluster's files.
func (c *PGCluster) Close() {
	for _, n := range c.Nodes {
		if n.Running() {
			n.proc.Stop(syscall.SIGQUIT, 10*time.Second) // immediate shutdown
		}
	}
	os.RemoveAll(c.Dir)
}
