// Package router turns a topology snapshot into a backend choice per
// listener, and keeps the registry of live sessions by backend.
package router

import "time"

// Role is what a member does in the cluster.
type Role uint8

// Roles a member can have. RoleUnknown members serve no listener.
const (
	RoleUnknown Role = iota
	RolePrimary
	RoleReplica
)

func (r Role) String() string {
	switch r {
	case RolePrimary:
		return "primary"
	case RoleReplica:
		return "replica"
	}
	return "unknown"
}

// ParseRole maps a config or DCS spelling to a Role.
func ParseRole(s string) Role {
	switch s {
	case "primary", "master", "leader", "standby_leader":
		return RolePrimary
	case "replica", "standby", "sync_standby":
		return RoleReplica
	}
	return RoleUnknown
}

// LagUnknown is Member.Lag when discovery cannot tell a replica's lag.
const LagUnknown int64 = -1

// Member is one PostgreSQL node as the router sees it.
type Member struct {
	Name          string
	Addr          string // host:port
	Role          Role
	NoLoadBalance bool   // Patroni tag: never serve replica listeners
	Healthy       bool   // running (DCS state) or reachable (checks)
	Sync          bool   // the synchronous standby named in Patroni's sync key
	Lag           int64  // replica lag behind the leader in bytes, or LagUnknown
	State         string // the HA agent's word for the member's state, for logs
	Why           string // why discovery gave the member no role, for clients

	// Since is when the router saw the member take its current role, zero
	// for roles held in the first snapshot; the router sets it, discovery
	// leaves it zero.
	Since time.Time
}

// Topology is an immutable snapshot of the cluster. Discovery builds a new
// one for every change; nobody modifies a published snapshot.
type Topology struct {
	Revision uint64
	Members  []Member
	Paused   bool   // Patroni maintenance mode: informational
	Source   string // where the snapshot came from, for logs and stats
}

// Primary returns the healthy primary, if there is exactly one.
func (t *Topology) Primary() (Member, bool) {
	if t == nil {
		return Member{}, false
	}
	var p Member
	n := 0
	for _, m := range t.Members {
		if m.Role == RolePrimary && m.Healthy {
			p = m
			n++
		}
	}
	return p, n == 1 // two primaries is a split brain: route writes nowhere
}

// Member returns the member called name.
func (t *Topology) Member(name string) (Member, bool) {
	if t == nil {
		return Member{}, false
	}
	for _, m := range t.Members {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// Equal reports whether t and u describe the same cluster, ignoring the
// revision and the router's Since stamps.
func (t *Topology) Equal(u *Topology) bool {
	if t == nil || u == nil {
		return t == u
	}
	if len(t.Members) != len(u.Members) || t.Paused != u.Paused {
		return false
	}
	for i := range t.Members {
		a, b := t.Members[i], u.Members[i]
		a.Since, b.Since = time.Time{}, time.Time{}
		if a != b {
			return false
		}
	}
	return true
}
