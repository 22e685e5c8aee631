package app

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
	"github.com/switchyard-proxy/switchyard/proxy"
	"github.com/switchyard-proxy/switchyard/router"
)

// The applier stamps Since on a copy: the snapshot discovery published,
// which its watcher still holds and compares with, is never modified.
func TestApplyLeavesThePublishedSnapshotAlone(t *testing.T) {
	rt := router.New([]router.Port{{Name: "rw", Role: router.Primary}}, nil)
	a := &applier{router: rt, registry: proxy.NewRegistry(), now: func() time.Time { return time.Unix(1000, 0) }}
	a.apply(&topology.Snapshot{Revision: 1, Members: []topology.Member{
		{Name: "a", Role: topology.RolePrimary, Healthy: true}, {Name: "b", Role: topology.RoleReplica, Healthy: true}}})
	published := &topology.Snapshot{Revision: 2, Members: []topology.Member{
		{Name: "a", Role: topology.RoleReplica, Healthy: true}, {Name: "b", Role: topology.RolePrimary, Healthy: true}}}
	a.apply(published)
	for _, m := range published.Members {
		if !m.Since.IsZero() {
			t.Fatalf("the published snapshot was modified: %s.Since = %v", m.Name, m.Since)
		}
	}
	if b, _ := rt.Snapshot().Member("b"); !b.Since.Equal(time.Unix(1000, 0)) {
		t.Fatalf("the router's copy is not stamped: %+v", b)
	}
	// An older revision changes nothing.
	a.apply(&topology.Snapshot{Revision: 1})
	if rt.Snapshot().Revision != 2 {
		t.Fatal("an older snapshot replaced a newer one")
	}
}

// The applier ends the sessions whose member lost its role, with the
// proxy's 57P01 cause.
func TestApplyEndsSessionsThatLostTheirRole(t *testing.T) {
	rt := router.New([]router.Port{{Name: "rw", Role: router.Primary}}, nil)
	reg := proxy.NewRegistry()
	a := &applier{router: rt, registry: reg, now: time.Now}
	a.apply(&topology.Snapshot{Revision: 1, Members: []topology.Member{{Name: "a", Role: topology.RolePrimary, Healthy: true}}})
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	remove := reg.Add(proxy.SessionInfo{ID: 1, Binding: router.Binding{Listener: "rw", Backend: "a", Role: topology.RolePrimary}}, cancel)
	defer remove()
	a.apply(&topology.Snapshot{Revision: 2, Members: []topology.Member{{Name: "a", Role: topology.RoleReplica, Healthy: true}}})
	kc, ok := context.Cause(ctx).(*proxy.KillCause)
	if !ok || kc.SQLState != "57P01" {
		t.Fatalf("cause = %v, want a 57P01 KillCause", context.Cause(ctx))
	}
}

// drains records the members the applier drained.
type drains []string

func (d *drains) Drain(member string) { *d = append(*d, member) }

// Pools drain every member that changed role, went unhealthy or left the
// topology, and no other.
func TestApplyDrainsPools(t *testing.T) {
	rt := router.New([]router.Port{{Name: "rw", Role: router.Primary}}, nil)
	var d drains
	a := &applier{router: rt, registry: proxy.NewRegistry(), pools: &d, now: time.Now}
	m := func(name string, role topology.Role, healthy bool) topology.Member {
		return topology.Member{Name: name, Role: role, Healthy: healthy}
	}
	a.apply(&topology.Snapshot{Revision: 1, Members: []topology.Member{
		m("a", topology.RolePrimary, true), m("b", topology.RoleReplica, true), m("c", topology.RoleReplica, true), m("d", topology.RoleReplica, true)}})
	if len(d) != 0 {
		t.Fatalf("first snapshot drained %v", d)
	}
	a.apply(&topology.Snapshot{Revision: 2, Members: []topology.Member{
		m("a", topology.RoleReplica, true), m("b", topology.RolePrimary, true), m("c", topology.RoleReplica, false)}})
	got := map[string]bool{}
	for _, name := range d {
		got[name] = true
	}
	if len(d) != 4 || !got["a"] || !got["b"] || !got["c"] || !got["d"] {
		t.Fatalf("drained %v, want a (demoted), b (promoted), c (unhealthy), d (gone)", d)
	}
}
