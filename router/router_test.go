package router

import (
	"context"
	"errors"
	"reflect"
	"testing"
)

func topo(rev uint64, ms ...Member) *Topology {
	for i := range ms {
		if ms[i].Addr == "" {
			ms[i].Addr = ms[i].Name + ":5432"
		}
	}
	return &Topology{Revision: rev, Members: ms}
}

func names(ms []Member) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

var ctx = context.Background()

var cluster = topo(1,
	Member{Name: "p", Role: RolePrimary, Healthy: true},
	Member{Name: "r1", Role: RoleReplica, Healthy: true},
	Member{Name: "r2", Role: RoleReplica, Healthy: true},
	Member{Name: "nlb", Role: RoleReplica, Healthy: true, NoLoadBalance: true},
)

func TestCandidates(t *testing.T) {
	r := New([]Port{
		{Name: "rw", Role: "primary"},
		{Name: "ro", Role: "replica", Balance: "round-robin", Fallback: "primary"},
		{Name: "ro-strict", Role: "replica", Balance: "round-robin", Fallback: "none"},
		{Name: "any", Role: "any", Balance: "round-robin"},
	}, nil)
	r.Update(cluster)

	for _, tc := range []struct {
		port string
		want [][]string // successive calls
	}{
		{"rw", [][]string{{"p"}, {"p"}}},
		{"ro", [][]string{{"r1", "r2", "p"}, {"r2", "r1", "p"}, {"r1", "r2", "p"}}},
		{"ro-strict", [][]string{{"r1", "r2"}, {"r2", "r1"}}},
		{"any", [][]string{{"r1", "r2", "p"}, {"r2", "p", "r1"}, {"p", "r1", "r2"}}},
	} {
		for i, want := range tc.want {
			got, err := r.Candidates(ctx, tc.port)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(names(got), want) {
				t.Errorf("%s call %d: %v, want %v", tc.port, i, names(got), want)
			}
		}
	}
	if _, err := r.Candidates(ctx, "nope"); err == nil {
		t.Fatal("unknown listener: want error")
	}
}

func TestCandidatesSkipUnhealthyAndFallBack(t *testing.T) {
	r := New([]Port{
		{Name: "rw", Role: "primary"},
		{Name: "ro", Role: "replica", Fallback: "primary"},
		{Name: "ro-strict", Role: "replica", Fallback: "none"},
	}, nil)
	r.Update(topo(1,
		Member{Name: "p", Role: RolePrimary, Healthy: true},
		Member{Name: "r1", Role: RoleReplica},
		Member{Name: "r2", Role: RoleReplica},
		Member{Name: "nlb", Role: RoleReplica, Healthy: true, NoLoadBalance: true},
	))
	if got, _ := r.Candidates(ctx, "ro"); !reflect.DeepEqual(names(got), []string{"p"}) {
		t.Fatalf("ro with replicas down: %v, want the primary", names(got))
	}
	if got, _ := r.Candidates(ctx, "ro-strict"); len(got) != 0 {
		t.Fatalf("ro-strict with replicas down: %v, want none", names(got))
	}
	// No primary: rw has no candidate; replica fallback has nothing to add.
	r.Update(topo(2, Member{Name: "p", Role: RolePrimary}, Member{Name: "r1", Role: RoleReplica, Healthy: true}))
	if got, _ := r.Candidates(ctx, "rw"); len(got) != 0 {
		t.Fatalf("rw without a healthy primary: %v", names(got))
	}
	if got, _ := r.Candidates(ctx, "ro"); !reflect.DeepEqual(names(got), []string{"r1"}) {
		t.Fatalf("ro: %v", names(got))
	}
}

func TestLatestRevisionWins(t *testing.T) {
	r := New([]Port{{Name: "rw", Role: "primary"}}, nil)
	r.Update(topo(5, Member{Name: "new", Role: RolePrimary, Healthy: true}))
	r.Update(topo(4, Member{Name: "old", Role: RolePrimary, Healthy: true}))
	if got, _ := r.Candidates(ctx, "rw"); names(got)[0] != "new" {
		t.Fatalf("an older snapshot replaced a newer one: %v", names(got))
	}
}

func TestLeastConnections(t *testing.T) {
	reg := NewRegistry()
	r := New([]Port{{Name: "ro", Role: "replica", Balance: "least-connections", Fallback: "none"}}, reg)
	r.Update(cluster)
	reg.Add(Session{Backend: "r1"}, func(error) {})
	reg.Add(Session{Backend: "r1"}, func(error) {})
	reg.Add(Session{Backend: "r2"}, func(error) {})
	for i := 0; i < 3; i++ {
		if got, _ := r.Candidates(ctx, "ro"); !reflect.DeepEqual(names(got), []string{"r2", "r1"}) {
			t.Fatalf("least-connections: %v, want r2 first", names(got))
		}
	}
}

func TestRandomKeepsEveryCandidate(t *testing.T) {
	r := New([]Port{{Name: "ro", Role: "replica", Balance: "random", Fallback: "primary"}}, nil)
	r.Update(cluster)
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		got, _ := r.Candidates(ctx, "ro")
		if len(got) != 3 || got[2].Name != "p" {
			t.Fatalf("random: %v", names(got))
		}
		seen[got[0].Name] = true
	}
	if !seen["r1"] || !seen["r2"] {
		t.Fatalf("random never picked both replicas first: %v", seen)
	}
}

func TestRegistryKill(t *testing.T) {
	reg := NewRegistry()
	type sess struct {
		ctx    context.Context
		cancel context.CancelCauseFunc
		e      *Entry
	}
	var all []sess
	for _, s := range []Session{
		{ID: 1, Listener: "rw", Role: "primary", Backend: "p"},
		{ID: 2, Listener: "ro", Role: "replica", Backend: "r1"},
		{ID: 3, Listener: "ro", Role: "replica", Backend: "p"},
	} {
		ctx, cancel := context.WithCancelCause(context.Background())
		all = append(all, sess{ctx, cancel, reg.Add(s, cancel)})
	}
	if c := reg.Counts(); c["p"] != 2 || c["r1"] != 1 || reg.Len() != 3 {
		t.Fatalf("counts %v len %d", c, reg.Len())
	}
	cause := &KillCause{SQLState: "25006", Message: "p is no longer the primary"}
	n := reg.Kill(func(s Session) bool { return s.Backend == "p" && s.Role == "primary" }, cause)
	if n != 1 {
		t.Fatalf("killed %d, want 1", n)
	}
	var kc *KillCause
	if !errors.As(context.Cause(all[0].ctx), &kc) || kc.SQLState != "25006" {
		t.Fatalf("cause = %v", context.Cause(all[0].ctx))
	}
	if all[1].ctx.Err() != nil || all[2].ctx.Err() != nil {
		t.Fatal("Kill ended sessions that did not match")
	}
	for _, s := range all {
		reg.Remove(s.e)
		reg.Remove(s.e) // twice is harmless
	}
	if reg.Len() != 0 || len(reg.Counts()) != 0 {
		t.Fatalf("registry not empty: %v", reg.Counts())
	}
}

func TestParseRole(t *testing.T) {
	for in, want := range map[string]Role{
		"primary": RolePrimary, "master": RolePrimary, "standby_leader": RolePrimary,
		"replica": RoleReplica, "sync_standby": RoleReplica, "": RoleUnknown, "demoted": RoleUnknown,
	} {
		if got := ParseRole(in); got != want {
			t.Errorf("ParseRole(%q) = %v, want %v", in, got, want)
		}
	}
}
