package pool_test

import (
	"os"
	"testing"

	"github.com/switchyard-proxy/switchyard/internal/testbed"
)

// pg is the real PostgreSQL primary the integration tests share (nil
// under -short).
var pg *testbed.PGCluster

// TestMain starts PostgreSQL unless -short, and fails the package on any
// goroutine left behind: waiters, closers and Run must all end.
func TestMain(m *testing.M) {
	os.Exit(testbed.MainWithPG(m, testbed.PGOptions{}, &pg))
}

func needPG(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs PostgreSQL (run without -short)")
	}
}
