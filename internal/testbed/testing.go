package testbed

import (
	"context"
	"testing"
	"time"
)

// PG starts a cluster for a test and ends it when the test ends. A missing
// PostgreSQL installation fails the test: run `make deps`.
func PG(t testing.TB, opts PGOptions) *PGCluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := StartPG(ctx, opts)
	if err != nil {
		t.Fatalf("testbed: starting PostgreSQL (run `make deps` if it is missing): %v", err)
	}
	t.Cleanup(c.Close)
	if err := c.WaitStreaming(ctx, c.Nodes[0], opts.Replicas); err != nil {
		t.Fatalf("testbed: waiting for %d streaming replicas: %v", opts.Replicas, err)
	}
	return c
}
