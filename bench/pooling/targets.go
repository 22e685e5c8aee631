package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// Target names; the ratios refer to the first three.
const (
	nDirect    = "direct"
	nHAProxy   = "haproxy"
	nPgBouncer = "pgbouncer (transaction)"
	nRelay     = "switchyard (relay)"
	nTxn       = "switchyard (transaction)"
)

type target struct {
	name     string
	port     int
	pid      int           // 0 for direct: no proxy process to measure
	err      error         // the target could not start
	peer     *testbed.Peer // nil for direct
	logShown bool          // its log went to stderr after a failure
}

// probe logs in to t and runs SELECT 1 within 10 s, so a target that
// stopped answering fails at once instead of after a whole pgbench run.
func probe(ctx context.Context, t *target) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s sslmode=disable",
		t.port, testbed.UserSuper, testbed.DefaultDB))
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		return fmt.Errorf("probe: SELECT 1: %w", err)
	}
	return nil
}

// showLog copies the end of a failed proxy's log to stderr, once (the
// bed removes the log when the proxy stops).
func showLog(t *target) {
	if t.peer == nil || t.logShown {
		return
	}
	t.logShown = true
	fmt.Fprintf(os.Stderr, "bench: end of %s's log (%s):\n%s\n", t.name, t.peer.LogPath(), t.peer.LogTail())
}
