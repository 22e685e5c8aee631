package admin

import (
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/discovery"
	"github.com/switchyard-proxy/switchyard/discovery/topology"
)

func TestReady(t *testing.T) {
	fresh := discovery.Status{Source: "etcd 127.0.0.1:2379", State: discovery.StateFresh}
	for _, c := range []struct {
		ds      discovery.Status
		primary string
		ok      bool
		why     string
	}{
		{fresh, "pg1", true, ""},
		{fresh, "", false, "no primary is known"},
		{discovery.Status{Source: "etcd 127.0.0.1:2379", State: discovery.StateStale}, "pg1", false, "discovery is stale (etcd 127.0.0.1:2379)"},
		{discovery.Status{Source: "static", State: discovery.StateStarting}, "", false, "discovery is starting (static)"},
	} {
		if ok, why := ready(c.ds, c.primary); ok != c.ok || why != c.why {
			t.Errorf("ready(%s, %q) = %v %q, want %v %q", c.ds.State, c.primary, ok, why, c.ok, c.why)
		}
	}
}

func TestChanges(t *testing.T) {
	prev := &topology.Snapshot{Revision: 1, Members: []topology.Member{
		{Name: "pg1", Role: topology.RolePrimary, Healthy: true},
		{Name: "pg2", Role: topology.RoleReplica, Healthy: true},
		{Name: "pg3", Role: topology.RoleReplica, Healthy: true},
	}}
	next := &topology.Snapshot{Revision: 2, Members: []topology.Member{
		{Name: "pg1", Role: topology.RoleUnknown, Healthy: true, Why: "is handing over to a new primary (switchover in progress)"},
		{Name: "pg2", Role: topology.RolePrimary, Healthy: true},
		{Name: "pg4", Role: topology.RoleReplica, Healthy: false, State: "starting"},
	}}
	got := changes(prev, next)
	want := []string{
		"pg1: primary → unknown (is handing over to a new primary (switchover in progress))",
		"pg2: replica → primary",
		"pg4 joined as replica",
		"pg3 left the cluster",
	}
	if len(got) != len(want) {
		t.Fatalf("changes = %q", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("change %d = %q, want %q", i, got[i], want[i])
		}
	}
}

func TestRates(t *testing.T) {
	var r rates
	t0 := time.Unix(1000, 0)
	if got := r.rate("rw", 10, t0); got != 0 {
		t.Fatalf("first sample: %v", got)
	}
	if got := r.rate("rw", 20, t0.Add(2*time.Second)); got != 5 {
		t.Fatalf("10 sessions in 2 s: %v/s", got)
	}
	if got := r.rate("rw", 70, t0.Add(10*time.Second)); got != 6 {
		t.Fatalf("60 sessions in 10 s: %v/s", got)
	}
}

func TestShort(t *testing.T) {
	for d, want := range map[time.Duration]string{
		1500 * time.Microsecond: "2ms", 1234 * time.Millisecond: "1.2s", 75 * time.Second: "1m15s",
		3*time.Hour + 20*time.Minute: "3h20m0s", 50 * time.Hour: "2d2h",
	} {
		if got := short(d); got != want {
			t.Errorf("short(%s) = %q, want %q", d, got, want)
		}
	}
	if got := bytesText(1536); got != "1.5 KiB" {
		t.Errorf("bytesText(1536) = %q", got)
	}
}
