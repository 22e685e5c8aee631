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

// PatroniCluster starts a DCS of kind (one member) and a three-node
// Patroni cluster on it for a test, ends both when the test ends, and
// returns them with the leader. Missing software fails the test: run
// `make deps`.
func PatroniCluster(t testing.TB, kind string) (*DCS, *Patroni, *PatroniNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d, err := StartDCS(ctx, kind, 1)
	if err != nil {
		t.Fatalf("testbed: starting %s (run `make deps` if it is missing): %v", kind, err)
	}
	t.Cleanup(d.Close)
	p, err := StartPatroni(ctx, PatroniOptions{DCS: d})
	if err != nil {
		t.Fatalf("testbed: starting Patroni (run `make deps` if it is missing): %v", err)
	}
	t.Cleanup(p.Close)
	leader, err := p.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return d, p, leader
}
