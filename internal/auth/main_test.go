package auth_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
	"go.uber.org/goleak"
)

// pg is a real PostgreSQL for the login tests; nil under -short.
var pg *testbed.PGCluster

func TestMain(m *testing.M) {
	flag.Parse()
	if !testing.Short() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		var err error
		pg, err = testbed.StartPG(ctx, testbed.PGOptions{})
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "testbed: starting PostgreSQL (run `make deps`): %v\n", err)
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
