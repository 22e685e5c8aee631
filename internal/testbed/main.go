package testbed

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// MainWithPG is a package's TestMain around a shared PostgreSQL cluster:
// unless -short it starts one with opts (and waits for opts.Replicas
// streaming replicas) and stores it in *pg, runs the tests, closes the
// cluster, and fails the package on any goroutine left behind. It returns
// the exit code: func TestMain(m *testing.M) { os.Exit(testbed.MainWithPG(m, opts, &pg)) }
func MainWithPG(m *testing.M, opts PGOptions, pg **PGCluster) int {
	flag.Parse()
	if !testing.Short() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		c, err := StartPG(ctx, opts)
		if err == nil && opts.Replicas > 0 {
			err = c.WaitStreaming(ctx, c.Nodes[0], opts.Replicas)
		}
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "testbed: starting PostgreSQL (run `make deps`): %v\n", err)
			if c != nil {
				c.Close()
			}
			return 1
		}
		*pg = c
	}
	code := m.Run()
	if *pg != nil {
		(*pg).Close()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines leaked:", err)
			code = 1
		}
	}
	return code
}
