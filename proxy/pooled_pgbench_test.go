package proxy_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

var pgbenchOnce sync.Once

// initPgbench creates pgbench's tables on the primary once, usable by
// sy_scram.
func initPgbench(t *testing.T) {
	t.Helper()
	var err error
	pgbenchOnce.Do(func() {
		out, e := exec.Command("pgbench", "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", strconv.Itoa(pg.Nodes[0].Port),
			"-U", testbed.UserSuper, testbed.DefaultDB).CombinedOutput()
		if e != nil {
			err = fmt.Errorf("pgbench -i: %v\n%s", e, out)
			return
		}
		err = pg.Nodes[0].Exec(context.Background(),
			"GRANT ALL ON pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history TO "+testbed.UserSCRAM)
	})
	if err != nil {
		t.Fatal(err)
	}
}

var failedRE = regexp.MustCompile(`number of failed transactions: (\d+)`)

// 100 pgbench clients on a pool of 10, simple and extended protocol,
// select-only and tpcb-like: no transaction fails, and PostgreSQL never
// sees more than 10 connections of the pool's user.
func TestPooledPgbench(t *testing.T) {
	needPG(t)
	initPgbench(t)
	px := poolSetup{pool: "default_pool_size = 10"}.start(t)
	host, port, _ := net.SplitHostPort(px.addr("tx"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	maxSeen := make(chan int, 1)
	go func() { maxSeen <- sampleBackends(ctx, t, testbed.UserSCRAM) }()

	for _, mode := range []string{"simple", "extended"} {
		for _, script := range [][]string{{"-S"}, {"-b", "tpcb-like"}} {
			args := append([]string{"-n", "-c", "100", "-j", "2", "-T", "3", "-M", mode,
				"-h", host, "-p", port, "-U", testbed.UserSCRAM, testbed.DefaultDB}, script...)
			cmd := exec.Command("pgbench", args...)
			cmd.Env = append(os.Environ(), "PGPASSWORD="+testbed.Password, "PGSSLMODE=disable")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("pgbench %v: %v\n%s", args, err, out)
			}
			m := failedRE.FindSubmatch(out)
			if m == nil || string(m[1]) != "0" {
				t.Fatalf("pgbench %v: failed transactions:\n%s", args, out)
			}
		}
	}
	cancel()
	if n := <-maxSeen; n > 10 || n == 0 {
		t.Fatalf("PostgreSQL saw up to %d connections of %s; the pool allows 10", n, testbed.UserSCRAM)
	}
}

// sampleBackends counts user's client backends every 20 ms until ctx
// ends, and returns the most it saw.
func sampleBackends(ctx context.Context, t *testing.T, user string) int {
	c, err := pgconn.Connect(context.Background(), pg.Nodes[0].DSN(testbed.UserSuper))
	if err != nil {
		t.Errorf("sampling connection: %v", err)
		return -1
	}
	defer c.Close(context.Background())
	most := 0
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		res := c.ExecParams(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND backend_type = 'client backend'",
			[][]byte{[]byte(user)}, nil, nil, nil).Read()
		if res.Err == nil && len(res.Rows) == 1 {
			if n, _ := strconv.Atoi(string(res.Rows[0][0])); n > most {
				most = n
			}
		}
		select {
		case <-ctx.Done():
			return most
		case <-tick.C:
		}
	}
}
