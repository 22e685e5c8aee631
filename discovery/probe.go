package discovery

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
)

// probeSQL answers "am I in recovery, and where is my WAL" in one row.
const probeSQL = `SELECT pg_catalog.pg_is_in_recovery(),
	(CASE WHEN pg_catalog.pg_is_in_recovery()
		THEN COALESCE(pg_catalog.pg_last_wal_receive_lsn(), pg_catalog.pg_last_wal_replay_lsn())
		ELSE pg_catalog.pg_current_wal_lsn() END - '0/0'::pg_lsn)::bigint`

// probe asks every member pg_is_in_recovery() over a kept connection:
// discovery for any HA agent (pg_auto_failover, repmgr, a manual
// promotion), with no DCS. Exactly one member out of recovery is the
// primary; two is a split brain and neither is routed writes.
type probe struct {
	members []topology.Member // Name and Addr
	config  func(addr string) (*pgconn.Config, error)
	timeout time.Duration // for one member's connect and query

	conns []*pgconn.PgConn // by member index; nil until connected
}

func (p *probe) read(ctx context.Context, after uint64, wait time.Duration) (*topology.Snapshot, uint64, error) {
	if after > 0 {
		if err := pause(ctx, wait); err != nil { // the poll interval
			return nil, 0, err
		}
	}
	if p.conns == nil {
		p.conns = make([]*pgconn.PgConn, len(p.members))
	}
	t := &topology.Snapshot{Members: make([]topology.Member, len(p.members))}
	lsns := make([]int64, len(p.members))
	var wg sync.WaitGroup
	for i := range p.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := p.members[i]
			m.Lag, m.Role, m.Healthy = topology.LagUnknown, topology.RoleUnknown, false
			inRecovery, lsn, err := p.ask(ctx, i)
			if err != nil {
				m.State = "unreachable: " + err.Error()
			} else {
				m.Healthy, m.State, lsns[i] = true, "running", lsn
				m.Role = topology.RolePrimary
				if inRecovery {
					m.Role = topology.RoleReplica
				}
			}
			t.Members[i] = m
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, 0, ctx.Err()
	}
	if pm, ok := t.Primary(); ok {
		for i := range t.Members {
			if m := &t.Members[i]; m.Role == topology.RoleReplica {
				m.Lag = max(0, lsns[indexOf(t.Members, pm.Name)]-lsns[i])
			} else if m.Name == pm.Name {
				m.Lag = 0
			}
		}
	}
	return t, after + 1, nil
}

func indexOf(ms []topology.Member, name string) int {
	for i, m := range ms {
		if m.Name == name {
			return i
		}
	}
	return -1
}

// ask runs the probe query on member i's connection, connecting first if
// needed; a failed connection is dropped and made again next time.
func (p *probe) ask(ctx context.Context, i int) (bool, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if p.conns[i] == nil {
		cfg, err := p.config(p.members[i].Addr)
		if err != nil {
			return false, 0, err
		}
		c, err := pgconn.ConnectConfig(ctx, cfg)
		if err != nil {
			return false, 0, err
		}
		p.conns[i] = c
	}
	res := p.conns[i].ExecParams(ctx, probeSQL, nil, nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 || len(res.Rows[0]) != 2 {
		p.conns[i].Close(context.Background())
		p.conns[i] = nil
		if res.Err == nil {
			res.Err = fmt.Errorf("unexpected answer to the probe query")
		}
		return false, 0, res.Err
	}
	row := res.Rows[0]
	var lsn int64
	fmt.Sscan(string(row[1]), &lsn)
	return string(row[0]) == "t", lsn, nil
}

func (p *probe) close() {
	for i, c := range p.conns {
		if c != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			c.Close(ctx)
			cancel()
			p.conns[i] = nil
		}
	}
}

// probeConfig builds the connection settings for one member.
func probeConfig(user, password, database string, connectTimeout time.Duration) func(addr string) (*pgconn.Config, error) {
	return func(addr string) (*pgconn.Config, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		cfg, err := pgconn.ParseConfig(fmt.Sprintf("host=%s port=%s dbname=%s sslmode=prefer application_name=switchyard-probe connect_timeout=%d",
			host, port, database, max(1, int(connectTimeout.Seconds()))))
		if err != nil {
			return nil, err
		}
		cfg.User, cfg.Password = user, password
		return cfg, nil
	}
}

func (p *probe) polling() bool { return true }
