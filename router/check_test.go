package router

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
)

func TestLostSaysWhyAMemberNoLongerServesABinding(t *testing.T) {
	ports := []Port{
		{Name: "rw", Role: Primary},
		{Name: "ro", Role: Replica, Fallback: FallbackPrimary},
		{Name: "lag", Role: Replica, MaxLag: 1000},
		{Name: "sync", Role: Sync},
	}
	start := topo(1,
		Member{Name: "p", Role: RolePrimary, Healthy: true},
		Member{Name: "r1", Role: RoleReplica, Healthy: true, Lag: 10, Sync: true},
		Member{Name: "r2", Role: RoleReplica, Healthy: true, Lag: 10},
	)
	for _, tc := range []struct {
		name    string
		session Binding
		change  func(*Member) // applied to the session's backend
		drop    bool          // remove the backend instead
		want    string        // "" for a session that survives
	}{
		{"primary demoted", Binding{Listener: "rw", Role: RolePrimary, Backend: "p"},
			func(m *Member) { m.Role = RoleReplica }, false, `was demoted to replica`},
		{"primary without leader lock", Binding{Listener: "rw", Role: RolePrimary, Backend: "p"},
			func(m *Member) { m.Role = RoleUnknown }, false, `no longer holds the leader lock`},
		{"switchover in progress", Binding{Listener: "rw", Role: RolePrimary, Backend: "p"},
			func(m *Member) { m.Role, m.Why = RoleUnknown, "is handing over" }, false, `is handing over`},
		{"primary gone", Binding{Listener: "rw", Role: RolePrimary, Backend: "p"}, nil, true, `left the cluster`},
		{"primary unchanged", Binding{Listener: "rw", Role: RolePrimary, Backend: "p"}, func(*Member) {}, false, ""},
		{"ro fallback session on the primary stays", Binding{Listener: "ro", Role: RolePrimary, Backend: "p"}, func(*Member) {}, false, ""},
		{"replica promoted", Binding{Listener: "ro", Role: RoleReplica, Backend: "r2"},
			func(m *Member) { m.Role = RolePrimary }, false, `was promoted to primary`},
		{"replica not running", Binding{Listener: "ro", Role: RoleReplica, Backend: "r2"},
			func(m *Member) { m.Healthy, m.State = false, "stopped" }, false, `is not running (state "stopped")`},
		{"replica tagged noloadbalance", Binding{Listener: "ro", Role: RoleReplica, Backend: "r2"},
			func(m *Member) { m.NoLoadBalance = true }, false, `is tagged noloadbalance`},
		{"replica over max_lag", Binding{Listener: "lag", Role: RoleReplica, Backend: "r2"},
			func(m *Member) { m.Lag = 5000 }, false, `lags 5000 bytes behind the leader, over max_lag 1000`},
		{"lag does not matter without max_lag", Binding{Listener: "ro", Role: RoleReplica, Backend: "r2"},
			func(m *Member) { m.Lag = 5000 }, false, ""},
		{"sync standby no longer sync", Binding{Listener: "sync", Role: RoleReplica, Backend: "r1"},
			func(m *Member) { m.Sync = false }, false, `is not the synchronous standby`},
		{"replica removed", Binding{Listener: "ro", Role: RoleReplica, Backend: "r2"}, nil, true, `left the cluster`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := New(ports, nil)
			r.Update(cloneTopo(start))
			if l := r.Check(tc.session); l != nil {
				t.Fatalf("before the change: %+v", l)
			}
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
			got := r.Lost(next, tc.session)
			switch {
			case tc.want == "" && got != nil:
				t.Errorf("lost: %+v", got)
			case tc.want != "" && got == nil:
				t.Errorf("kept, want lost with %q", tc.want)
			case got != nil && (!strings.Contains(got.Why, tc.want) || got.Binding != tc.session):
				t.Errorf("lost %+v, want why containing %q", got, tc.want)
			}
			r.Update(next)
			if l := r.Check(tc.session); (l == nil) != (tc.want == "") {
				t.Errorf("Check after the update = %+v", l)
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
	r := New([]Port{{Name: "rw", Role: Primary, LeaderWait: 2 * time.Second}, {Name: "short", Role: Primary, LeaderWait: 50 * time.Millisecond}}, nil)
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
		{Name: "lag", Role: Replica, MaxLag: 100, Fallback: FallbackNone},
		{Name: "sync", Role: Sync, Fallback: FallbackNone},
	}, nil)
	r.Update(topo(1,
		Member{Name: "p", Role: RolePrimary, Healthy: true},
		Member{Name: "near", Role: RoleReplica, Healthy: true, Lag: 100, Sync: true},
		Member{Name: "far", Role: RoleReplica, Healthy: true, Lag: 101},
		Member{Name: "unknown", Role: RoleReplica, Healthy: true, Lag: topology.LagUnknown},
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

func TestSuspectMembersKeepSessionsButGetNoNewOnes(t *testing.T) {
	r := New([]Port{
		{Name: "rw", Role: Primary, LeaderWait: 50 * time.Millisecond},
		{Name: "ro", Role: Replica, Fallback: FallbackPrimary},
	}, nil)
	r.Update(topo(1,
		Member{Name: "p", Role: RolePrimary, Healthy: true, Suspect: true},
		Member{Name: "r1", Role: RoleReplica, Healthy: true, Suspect: true},
		Member{Name: "r2", Role: RoleReplica, Healthy: true},
	))
	for _, b := range []Binding{{Listener: "rw", Backend: "p", Role: RolePrimary}, {Listener: "ro", Backend: "r1", Role: RoleReplica}} {
		if l := r.Check(b); l != nil {
			t.Errorf("a suspect member lost its session: %+v", l)
		}
	}
	if got, _ := r.Candidates(ctx, "ro"); len(got) != 1 || got[0].Name != "r2" {
		t.Errorf("ro: %v, want r2 only (r1 suspect, p suspect so no fallback)", names(got))
	}
	start := time.Now()
	if got, _ := r.Candidates(ctx, "rw"); len(got) != 0 || time.Since(start) < 50*time.Millisecond {
		t.Errorf("rw with a suspect primary: %v after %v, want none after leader_wait", names(got), time.Since(start))
	}
}

// Before discovery's first snapshot every listener waits (up to
// leader_wait) instead of refusing: Switchyard has just started.
func TestCandidatesWaitForTheFirstSnapshot(t *testing.T) {
	r := New([]Port{{Name: "ro", Role: Replica, LeaderWait: 2 * time.Second}}, nil)
	got := make(chan []Member, 1)
	go func() {
		m, _ := r.Candidates(ctx, "ro")
		got <- m
	}()
	timer := time.NewTimer(50 * time.Millisecond)
	<-timer.C
	r.Update(topo(1, Member{Name: "r1", Role: RoleReplica, Healthy: true}))
	select {
	case m := <-got:
		if len(m) != 1 || m[0].Name != "r1" {
			t.Errorf("got %v, want r1 from the first snapshot", names(m))
		}
	case <-time.After(time.Second):
		t.Fatal("the first snapshot did not release the waiting session")
	}
	// Once discovery has answered, a replica listener does not wait.
	r.Update(topo(2, Member{Name: "p", Role: RolePrimary, Healthy: true}))
	start := time.Now()
	if m, _ := r.Candidates(ctx, "ro"); len(m) != 0 || time.Since(start) > 100*time.Millisecond {
		t.Errorf("no replica: got %v after %v, want none at once", names(m), time.Since(start))
	}
}
