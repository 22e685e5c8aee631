package pool_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// pg is the real PostgreSQL primary the integration tests share (nil
// under -short).
var pg *testbed.PGCluster

// TestMain starts PostgreSQL unless -short, and fails the package on any
// goroutine left behind: waiters, closers and Run must all end.
func TestMain(m *testing.M) {
	flag.Parse()
	if !testing.Short() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		var err error
		pg, err = testbed.StartPG(ctx, testbed.PGOptions{})
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "testbed: starting PostgreSQL (run `make deps`): %v\n", err)
			if pg != nil {
				pg.Close()
			}
			os.Exit(1)
		}
	}
	code := m.Run()
	if pg != nil {
		pg.Close()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines leaked:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func needPG(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs PostgreSQL (run without -short)")
	}
}
