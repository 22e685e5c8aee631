package router

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestUpdateEndsSessionsThatLostTheirRole(t *testing.T) {
	ports := []Port{
		{Name: "rw", Role: "primary"},
		{Name: "ro", Role: "replica", Fallback: "primary"},
		{Name: "lag", Role: "replica", MaxLag: 1000},
		{Name: "sync", Role: "sync"},
	}
	start := topo(1,
		Member{Name: "p", Role: RolePrimary, Healthy: true},
		Member{Name: "r1", Role: RoleReplica, Healthy: true, Lag: 10, Sync: true},
		Member{Name: "r2", Role: RoleReplica, Healthy: true, Lag: 10},
	)
	for _, tc := range []struct {
		name    string
		session Session
		change  func(*Member) // applied to the session's backend
		drop    bool          // remove the backend instead
		want    string        // "" for a session that survives
	}{
		{"primary demoted", Session{Listener: "rw", Role: "primary", Backend: "p"},
			func(m *Member) { m.Role = RoleReplica }, false, `server "p" is no longer the primary: it was demoted to replica`},
		{"primary without leader lock", Session{Listener: "rw", Role: "primary", Backend: "p"},
			func(m *Member) { m.Role = RoleUnknown }, false, `it no longer holds the leader lock`},
		{"switchover in progress", Session{Listener: "rw", Role: "primary", Backend: "p"},
			func(m *Member) { m.Role, m.Why = RoleUnknown, "is handing over" }, false, `it is handing over`},
		{"primary gone", Session{Listener: "rw", Role: "primary", Backend: "p"}, nil, true, `it left the cluster`},
		{"primary unchanged", Session{Listener: "rw", Role: "primary", Backend: "p"}, func(*Member) {}, false, ""},
		{"ro fallback session on the primary stays", Session{Listener: "ro", Role: "primary", Backend: "p"}, func(*Member) {}, false, ""},
		{"replica promoted", Session{Listener: "ro", Role: "replica", Backend: "r2"},
			func(m *Member) { m.Role = RolePrimary }, false, `no longer serves listener "ro" as a replica: it was promoted to primary`},
		{"replica not running", Session{Listener: "ro", Role: "replica", Backend: "r2"},
			func(m *Member) { m.Healthy, m.State = false, "stopped" }, false, `is not running (state "stopped")`},
		{"replica tagged noloadbalance", Session{Listener: "ro", Role: "replica", Backend: "r2"},
			func(m *Member) { m.NoLoadBalance = true }, false, `is tagged noloadbalance`},
		{"replica over max_lag", Session{Listener: "lag", Role: "replica", Backend: "r2"},
			func(m *Member) { m.Lag = 5000 }, false, `lags 5000 bytes behind the leader, over max_lag 1000`},
		{"lag does not matter without max_lag", Session{Listener: "ro", Role: "replica", Backend: "r2"},
			func(m *Member) { m.Lag = 5000 }, false, ""},
		{"sync standby no longer sync", Session{Listener: "sync", Role: "replica", Backend: "r1"},
			func(m *Member) { m.Sync = false }, false, `is not the synchronous standby`},
		{"replica removed", Session{Listener: "ro", Role: "replica", Backend: "r2"}, nil, true, `it left the cluster`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := NewRegistry()
			r := New(ports, reg)
			r.Update(cloneTopo(start))
			var got *KillCause
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			reg.Add(tc.session, cancel)
			next := cloneTopo(start)
			next.Revision = 2
			for i := range next.Members {
				if next.Members[i].Name == tc.session.Backend {
					if tc.drop {
						next.Members = append(next.Members[:i], next.Members[i+1:]...)
					} else {
						tc.change(&next.Members[i])
					}
					break
				}
			}
			r.Update(next)
			if kc, ok := context.Cause(ctx).(*KillCause); ok {
				got = kc
			}
			switch {
			case tc.want == "" && got != nil:
				t.Errorf("session ended: %s", got.Message)
			case tc.want != "" && got == nil:
				t.Errorf("session kept, want it ended with %q", tc.want)
			case got != nil && (got.SQLState != "57P01" || !strings.Contains(got.Message, tc.want) || !strings.Contains(got.Message, "reconnect")):
				t.Errorf("ended with %s %q, want 57P01 containing %q and reconnect", got.SQLState, got.Message, tc.want)
			}
			if kc := r.Check(tc.session); (kc == nil) != (tc.want == "") {
				t.Errorf("Check after the update = %v", kc)
			}
		})
	}
}

func cloneTopo(t *Topology) *Topology {
	c := *t
	c.Members = append([]Member(nil), t.Members...)
	return &c
}

func TestLeaderWait(t *testing.T) {
	r := New([]Port{{Name: "rw", Role: "primary", LeaderWait: 2 * time.Second}, {Name: "short", Role: "primary", LeaderWait: 50 * time.Millisecond}}, nil)
	r.Update(topo(1, Member{Name: "r1", Role: RoleReplica, Healthy: true}))

	start := time.Now()
	if got, _ := r.Candidates(ctx, "short"); len(got) != 0 || time.Since(start) < 50*time.Millisecond {
		t.Errorf("no leader: got %v after %v, want nothing after leader_wait", names(got), time.Since(start))
	}

	got := make(chan []Member, 1)
	go func() {
		m, _ := r.Candidates(ctx, "rw")
		got <- m
	}()
	timer := time.NewTimer(100 * time.Millisecond)
	<-timer.C
	r.Update(topo(2, Member{Name: "r1", Role: RolePrimary, Healthy: true}))
	select {
	case m := <-got:
		if len(m) != 1 || m[0].Name != "r1" {
			t.Errorf("waiting client got %v, want the new primary", names(m))
		}
	case <-time.After(time.Second):
		t.Fatal("a waiting client was not released by the new leader")
	}

	cctx, cancel := context.WithCancel(ctx)
	r.Update(topo(3))
	cancel()
	if m, _ := r.Candidates(cctx, "rw"); len(m) != 0 {
		t.Errorf("cancelled wait returned %v", names(m))
	}
}

func TestReplicaFilters(t *testing.T) {
	r := New([]Port{
		{Name: "lag", Role: "replica", MaxLag: 100, Fallback: "none"},
		{Name: "sync", Role: "sync", Fallback: "none"},
	}, nil)
	r.Update(topo(1,
		Member{Name: "p", Role: RolePrimary, Healthy: true},
		Member{Name: "near", Role: RoleReplica, Healthy: true, Lag: 100, Sync: true},
		Member{Name: "far", Role: RoleReplica, Healthy: true, Lag: 101},
		Member{Name: "unknown", Role: RoleReplica, Healthy: true, Lag: LagUnknown},
		Member{Name: "down", Role: RoleReplica, Healthy: false, Lag: 0},
	))
	got, _ := r.Candidates(ctx, "lag")
	if n := names(got); len(n) != 2 || !strings.Contains(strings.Join(n, ","), "near") || !strings.Contains(strings.Join(n, ","), "unknown") {
		t.Errorf("max_lag 100: %v, want near and unknown", n)
	}
	if got, _ := r.Candidates(ctx, "sync"); len(got) != 1 || got[0].Name != "near" {
		t.Errorf("sync: %v, want near", names(got))
	}
}

func TestSinceStamps(t *testing.T) {
	r := New([]Port{{Name: "rw", Role: "primary"}}, nil)
	r.Update(topo(1, Member{Name: "a", Role: RolePrimary, Healthy: true}, Member{Name: "b", Role: RoleReplica, Healthy: true}))
	if m, _ := r.Topology().Member("a"); !m.Since.IsZero() {
		t.Errorf("roles of the first snapshot are held since always, got %v", m.Since)
	}
	r.Update(topo(2, Member{Name: "a", Role: RoleReplica, Healthy: true}, Member{Name: "b", Role: RolePrimary, Healthy: true}))
	b, _ := r.Topology().Member("b")
	if b.Since.IsZero() {
		t.Fatal("a new primary has no Since")
	}
	r.Update(topo(3, Member{Name: "a", Role: RoleReplica, Healthy: true}, Member{Name: "b", Role: RolePrimary, Healthy: true}))
	if b3, _ := r.Topology().Member("b"); b3.Since != b.Since {
		t.Errorf("Since moved without a role change")
	}
}
