// Package router turns a topology snapshot into a backend choice per
// listener, and keeps the registry of live sessions by backend.
package router

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

// Member is one PostgreSQL node as the router sees it.
type Member struct {
	Name          string
	Addr          string // host:port
	Role          Role
	NoLoadBalance bool // Patroni tag: never serve replica listeners
	Healthy       bool // reachable at the last check
}

// Topology is an immutable snapshot of the cluster. Discovery builds a new
// one for every change; nobody modifies a published snapshot.
type Topology struct {
	Revision uint64
	Members  []Member
}

// Primary returns the healthy primary, if there is one.
func (t *Topology) Primary() (Member, bool) {
	if t == nil {
		return Member{}, false
	}
	for _, m := range t.Members {
		if m.Role == RolePrimary && m.Healthy {
			return m, true
		}
	}
	return Member{}, false
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

// replicas returns the healthy members that may serve replica listeners, in
// snapshot order.
func (t *Topology) replicas() []Member {
	var out []Member
	for _, m := range t.Members {
		if m.Role == RoleReplica && m.Healthy && !m.NoLoadBalance {
			out = append(out, m)
		}
	}
	return out
}
