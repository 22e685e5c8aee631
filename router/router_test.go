package router

import (
	"context"
	"reflect"
	"testing"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
)

type (
	Member   = topology.Member
	Topology = topology.Snapshot
)

const (
	RolePrimary = topology.RolePrimary
	RoleReplica = topology.RoleReplica
	RoleUnknown = topology.RoleUnknown
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
		{Name: "rw", Role: Primary},
		{Name: "ro", Role: Replica, Balance: RoundRobin, Fallback: FallbackPrimary},
		{Name: "ro-strict", Role: Replica, Balance: RoundRobin, Fallback: FallbackNone},
		{Name: "any", Role: Any, Balance: RoundRobin},
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
		{Name: "rw", Role: Primary},
		{Name: "ro", Role: Replica, Fallback: FallbackPrimary},
		{Name: "ro-strict", Role: Replica, Fallback: FallbackNone},
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
	r := New([]Port{{Name: "rw", Role: Primary}}, nil)
	r.Update(topo(5, Member{Name: "new", Role: RolePrimary, Healthy: true}))
	r.Update(topo(4, Member{Name: "old", Role: RolePrimary, Healthy: true}))
	if got, _ := r.Candidates(ctx, "rw"); names(got)[0] != "new" {
		t.Fatalf("an older snapshot replaced a newer one: %v", names(got))
	}
}

func TestLeastConnections(t *testing.T) {
	counts := func() map[string]int { return map[string]int{"r1": 2, "r2": 1} }
	r := New([]Port{{Name: "ro", Role: Replica, Balance: LeastConnections, Fallback: FallbackNone}}, counts)
	r.Update(cluster)
	for i := 0; i < 3; i++ {
		if got, _ := r.Candidates(ctx, "ro"); !reflect.DeepEqual(names(got), []string{"r2", "r1"}) {
			t.Fatalf("least-connections: %v, want r2 first", names(got))
		}
	}
}

func TestRandomKeepsEveryCandidate(t *testing.T) {
	r := New([]Port{{Name: "ro", Role: Replica, Balance: Random, Fallback: FallbackPrimary}}, nil)
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
