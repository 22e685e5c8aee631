package testbed

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func inRecovery(t *testing.T, ctx context.Context, n *PGNode) string {
	t.Helper()
	conn, err := pgconn.Connect(ctx, n.DSN(UserSuper))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	res := conn.ExecParams(ctx, "SELECT pg_is_in_recovery()", nil, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	return string(res.Rows[0][0])
}

func TestClusterLifecycle(t *testing.T) {
	c := PG(t, PGOptions{Replicas: 2, TLS: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if got := inRecovery(t, ctx, c.Nodes[0]); got != "f" {
		t.Fatalf("primary in recovery = %s", got)
	}
	for _, r := range c.Nodes[1:] {
		if got := inRecovery(t, ctx, r); got != "t" {
			t.Fatalf("%s in recovery = %s", r.Name, got)
		}
	}
	// Every login method works directly.
	for _, u := range []string{UserSCRAM, UserMD5, UserTrust} {
		conn, err := pgconn.Connect(ctx, c.Nodes[0].DSN(u))
		if err != nil {
			t.Fatalf("login as %s: %v", u, err)
		}
		conn.Close(ctx)
	}
	// kill -9 and restart.
	r := c.Nodes[2]
	r.Kill()
	if r.Running() {
		t.Fatal("still running after kill")
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Stop the primary, promote a replica.
	c.Nodes[0].Stop()
	if err := c.Nodes[1].Promote(ctx); err != nil {
		t.Fatal(err)
	}
	if got := inRecovery(t, ctx, c.Nodes[1]); got != "f" {
		t.Fatalf("promoted node in recovery = %s", got)
	}
}
