// Package topology holds the values discovery produces and everyone else
// reads: a whole, immutable Snapshot of the cluster and its Members. It
// has no dependencies, so consumers (router, proxy, pools, the admin
// page) import it without importing the discovery sources.
package topology

import (
	"fmt"
	"strings"
	"time"
)

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

// MarshalText implements encoding.TextMarshaler: a Role is its word in
// JSON (/api/status) and in structured logs.
func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler, reading the words
// String writes.
func (r *Role) UnmarshalText(b []byte) error {
	for _, c := range []Role{RoleUnknown, RolePrimary, RoleReplica} {
		if string(b) == c.String() {
			*r = c
			return nil
		}
	}
	return fmt.Errorf("topology: unknown role %q", b)
}

// LagUnknown is Member.Lag when discovery cannot tell a replica's lag.
const LagUnknown int64 = -1

// Member is one PostgreSQL node.
type Member struct {
	Name          string
	Addr          string // host:port
	Role          Role
	NoLoadBalance bool   // Patroni tag: never serve replica listeners
	Healthy       bool   // running (DCS state) or reachable (checks)
	Sync          bool   // the synchronous standby named in Patroni's sync key
	Lag           int64  // replica lag behind the leader in bytes, or LagUnknown
	State         string // the HA agent's word for the member's state, for logs
	Timeline      int64  // the HA agent's word for the member's timeline; 0 if unknown
	Tags          string // the HA agent's tags, "k=v" sorted and comma-separated, for display
	Why           string // why discovery gave the member no role, for clients

	// Suspect is set by health checks when the last check failed but
	// fewer than `fall` in a row have: the member gets no new sessions,
	// and the ones it has stay.
	Suspect bool

	// Since is when the member took its current role, zero for roles held
	// in the first snapshot. Discovery leaves it zero; Stamp sets it.
	Since time.Time
}

// Snapshot is the cluster at one moment. Discovery builds a new one for
// every change; nobody modifies a published snapshot.
type Snapshot struct {
	Revision uint64
	Members  []Member
	Paused   bool   // Patroni maintenance mode: informational
	Source   string // where the snapshot came from, for logs and stats
}

// Primary returns the healthy primary, if there is exactly one. A
// suspect primary is still the primary: its sessions stay.
func (t *Snapshot) Primary() (Member, bool) {
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
func (t *Snapshot) Member(name string) (Member, bool) {
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
// revision, the source and the Since stamps.
func (t *Snapshot) Equal(u *Snapshot) bool {
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

// Stamped returns a copy of next whose members carry Since: kept from prev
// where a member holds the same role, now where its role changed, and
// zero throughout when prev is nil or empty (roles held before we
// started). next itself is not modified: it may still be held by its
// producer.
func Stamped(prev, next *Snapshot, now time.Time) *Snapshot {
	out := *next
	out.Members = make([]Member, len(next.Members))
	copy(out.Members, next.Members)
	for i := range out.Members {
		m := &out.Members[i]
		m.Since = time.Time{}
		switch old, ok := prev.Member(m.Name); {
		case prev == nil || prev.Revision == 0:
		case ok && old.Role == m.Role:
			m.Since = old.Since
		default:
			m.Since = now
		}
	}
	return &out
}

// Summary is a short text of every member's role and health, for logs
// and events: "pg1=primary pg2=replica(down)".
func (t *Snapshot) Summary() string {
	if len(t.Members) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(t.Members))
	for _, m := range t.Members {
		s := m.Name + "=" + m.Role.String()
		if !m.Healthy {
			s += "(down)"
		}
		if m.Suspect {
			s += "(suspect)"
		}
		if m.NoLoadBalance {
			s += "(noloadbalance)"
		}
		if m.Sync {
			s += "(sync)"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}
