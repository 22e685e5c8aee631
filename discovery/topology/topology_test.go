package topology

import (
	"encoding/json"
	"testing"
	"time"
)

func TestStamped(t *testing.T) {
	t0 := time.Unix(1000, 0)
	first := &Snapshot{Revision: 1, Members: []Member{{Name: "a", Role: RolePrimary}, {Name: "b", Role: RoleReplica}}}
	s1 := Stamped(&Snapshot{}, first, t0)
	for _, m := range s1.Members {
		if !m.Since.IsZero() {
			t.Errorf("roles of the first snapshot are held since always, %s got %v", m.Name, m.Since)
		}
	}
	// A switchover: both change role.
	next := &Snapshot{Revision: 2, Members: []Member{{Name: "a", Role: RoleReplica}, {Name: "b", Role: RolePrimary}, {Name: "c", Role: RoleReplica}}}
	s2 := Stamped(s1, next, t0.Add(time.Second))
	for _, m := range s2.Members {
		if !m.Since.Equal(t0.Add(time.Second)) {
			t.Errorf("%s changed role (or is new) but Since = %v", m.Name, m.Since)
		}
	}
	// The producer's snapshot is not touched: it may still hold it.
	for _, m := range next.Members {
		if !m.Since.IsZero() {
			t.Fatalf("Stamped modified its input: %s.Since = %v", m.Name, m.Since)
		}
	}
	// No role change: Since stays.
	again := &Snapshot{Revision: 3, Members: []Member{{Name: "a", Role: RoleReplica}, {Name: "b", Role: RolePrimary, Lag: 5}, {Name: "c", Role: RoleReplica}}}
	s3 := Stamped(s2, again, t0.Add(time.Hour))
	if b, _ := s3.Member("b"); !b.Since.Equal(t0.Add(time.Second)) {
		t.Errorf("Since moved without a role change: %v", b.Since)
	}
}

func TestPrimaryAndEqual(t *testing.T) {
	split := &Snapshot{Members: []Member{{Name: "a", Role: RolePrimary, Healthy: true}, {Name: "b", Role: RolePrimary, Healthy: true}}}
	if _, ok := split.Primary(); ok {
		t.Error("two primaries: a split brain has no primary")
	}
	one := &Snapshot{Members: []Member{{Name: "a", Role: RolePrimary, Healthy: true, Suspect: true}}}
	if p, ok := one.Primary(); !ok || p.Name != "a" {
		t.Error("a suspect primary is still the primary")
	}
	stamped := &Snapshot{Revision: 9, Members: []Member{{Name: "a", Role: RolePrimary, Healthy: true, Suspect: true, Since: time.Now()}}}
	if !one.Equal(stamped) {
		t.Error("Equal must ignore revision and Since")
	}
}

// A Role is its word in JSON, both ways.
func TestRoleText(t *testing.T) {
	for _, r := range []Role{RoleUnknown, RolePrimary, RoleReplica} {
		b, err := json.Marshal(r)
		if err != nil || string(b) != `"`+r.String()+`"` {
			t.Fatalf("json.Marshal(%s) = %s, %v", r, b, err)
		}
		var back Role
		if err := json.Unmarshal(b, &back); err != nil || back != r {
			t.Fatalf("json.Unmarshal(%s) = %s, %v", b, back, err)
		}
	}
	var r Role
	if err := json.Unmarshal([]byte(`"leader"`), &r); err == nil {
		t.Fatalf(`json.Unmarshal("leader") = %s, want an error`, r)
	}
}
