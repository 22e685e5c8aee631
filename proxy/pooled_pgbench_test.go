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

// pgbench through tx: 100 clients on a pool of 10, with the simple,
// extended and prepared (named statements, prepared once per client)
// protocols, select-only and tpcb-like: no transaction fails, and
// PostgreSQL never sees more than 10 connections of the pool's user.
// Through sess (a server per client) and the relay, 10 clients.
func TestPooledPgbench(t *testing.T) {
	needPG(t)
	initPgbench(t)
	waitNoBackends(t, testbed.UserSCRAM)
	px := poolSetup{pool: "default_pool_size = 10\nquery_wait_timeout = \"10s\""}.start(t)
	pgbench := needCommand(t, "pgbench")
	for _, ln := range []string{"tx", "sess", "rw"} {
		host, port, _ := net.SplitHostPort(px.addr(ln))
		clients, scripts := "10", [][]string{{"-b", "tpcb-like"}}
		if ln == "tx" {
			clients, scripts = "100", [][]string{{"-S"}, {"-b", "tpcb-like"}}
		}
		for _, mode := range []string{"simple", "extended", "prepared"} {
			// pgbench -M prepared prepares each statement of a client with a
			// synchronous PQprepare on the client's first use of it, which
			// blocks every client of the thread: one waiting for a server
			// would stall the thread's others, holding servers in open
			// transactions. A thread per client keeps that wait its own.
			threads := "2"
			if mode == "prepared" {
				threads = clients
			}
			t.Run(ln+"/"+mode, func(t *testing.T) {
				most := sampleWhile(t, testbed.UserSCRAM)
				for _, script := range scripts {
					args := append([]string{"-n", "-c", clients, "-j", threads, "-T", "2", "-M", mode,
						"-h", host, "-p", port, "-U", testbed.UserSCRAM, testbed.DefaultDB}, script...)
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					cmd := exec.CommandContext(ctx, pgbench, args...)
					cmd.Env = append(os.Environ(), "PGPASSWORD="+testbed.Password, "PGSSLMODE=disable")
					cmd.WaitDelay = 5 * time.Second
					out, err := cmd.CombinedOutput()
					cancel()
					if err != nil {
						t.Fatalf("pgbench %v: %v\n%s", args, err, out)
					}
					m := failedRE.FindSubmatch(out)
					if m == nil || string(m[1]) != "0" {
						t.Fatalf("pgbench %v: failed transactions:\n%s", args, out)
					}
				}
				if n := most(); ln == "tx" && (n > 10 || n == 0) {
					t.Fatalf("PostgreSQL saw up to %d connections of %s; the pool allows 10", n, testbed.UserSCRAM)
				}
			})
		}
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
