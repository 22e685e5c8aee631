package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// yard is an in-process Switchyard with rw and ro listeners.
type yard = testbed.Yard

// startYard runs Switchyard with the given [cluster] discovery section.
func startYard(t *testing.T, name, cluster string) *yard {
	t.Helper()
	text := `
[cluster]
name = "demo"
dcs_grace = "3s"
leader_wait = "2s"
` + cluster + `
[[listener]]
name = "rw"
address = "127.0.0.1:0"
role = "primary"
[[listener]]
name = "ro"
address = "127.0.0.1:0"
role = "replica"
fallback = "none"
[limits]
connect_timeout = "2s"
shutdown_timeout = "2s"
`
	return testbed.StartYard(t, name, text)
}

// dsn connects through y's listener as the superuser.
func dsn(y *yard, listener string) string { return y.DSN(listener, testbed.UserSuper) }

// where connects through listener and returns the server's port and
// whether it is in recovery.
func where(ctx context.Context, dsn string) (port int, inRecovery bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return 0, false, err
	}
	defer c.Close(ctx)
	return ask(ctx, c)
}

func ask(ctx context.Context, c *pgconn.PgConn) (int, bool, error) {
	res := c.ExecParams(ctx, "SELECT inet_server_port(), pg_is_in_recovery()", nil, nil, nil, nil).Read()
	if res.Err != nil {
		return 0, false, res.Err
	}
	var port int
	fmt.Sscan(string(res.Rows[0][0]), &port)
	return port, string(res.Rows[0][1]) == "t", nil
}

func hold(t *testing.T, dsn string) *pgconn.PgConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// endedWith checks that a held session was ended by Switchyard.
// An empty msg accepts any 57P01 (PostgreSQL's own shutdown, too).
func endedWith(t *testing.T, what string, c *pgconn.PgConn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := ask(ctx, c)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "57P01" || !strings.Contains(pe.Message, msg) {
		t.Errorf("%s: got %v, want FATAL 57P01 containing %q", what, err, msg)
	}
}

// routedTo polls rw until it reaches node (out of recovery) and returns
// when it first did.
func routedTo(t *testing.T, y *yard, node *testbed.PatroniNode, within time.Duration) time.Time {
	t.Helper()
	return reach(t, y, node, within)()
}

// reach starts polling rw through y, a new connection every 20 ms, and
// returns a func that waits until rw reached node out of recovery and
// returns when it first did. Polling starts before the change it measures.
func reach(t *testing.T, y *yard, node *testbed.PatroniNode, within time.Duration) func() time.Time {
	type result struct {
		at   time.Time
		last error
	}
	ctx, cancel := context.WithTimeout(context.Background(), within)
	done := make(chan result, 1)
	go func() {
		var last error
		for ctx.Err() == nil {
			port, rec, err := where(ctx, dsn(y, "rw"))
			if err == nil && port == node.PGPort && !rec {
				done <- result{at: time.Now()}
				return
			}
			if err == nil && rec {
				last = fmt.Errorf("rw served by a node in recovery (port %d)", port)
				done <- result{last: last}
				return
			}
			last = err
			timer := time.NewTimer(20 * time.Millisecond)
			select {
			case <-ctx.Done():
			case <-timer.C:
			}
		}
		done <- result{last: last}
	}()
	return func() time.Time {
		t.Helper()
		defer cancel()
		r := <-done
		if r.at.IsZero() {
			t.Fatalf("%s: rw did not reach %s within %s: %v", y.Name, node.Name, within, r.last)
		}
		return r.at
	}
}
