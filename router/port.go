// Package router answers, per listener, "which members, in which order"
// from the latest topology snapshot, and whether a member still serves a
// session routed to it. It ends nothing itself: the applier in
// internal/app turns its answers into session kills and pool drains.
package router

import "time"

// Role is what a listener serves.
type Role uint8

// Listener roles.
const (
	Primary Role = iota + 1 // the primary only
	Replica                 // healthy replicas, balanced
	Sync                    // the synchronous standby
	Any                     // replicas and the primary, balanced
)

func (r Role) String() string {
	switch r {
	case Primary:
		return "primary"
	case Replica:
		return "replica"
	case Sync:
		return "sync"
	case Any:
		return "any"
	}
	return "unknown"
}

// Balance orders the candidates of a replica or any listener.
type Balance uint8

// Balance policies; the zero value is round-robin.
const (
	RoundRobin Balance = iota
	LeastConnections
	Random
)

// Fallback says where a replica listener goes when no replica is left.
type Fallback uint8

// Fallbacks; the zero value is none.
const (
	FallbackNone Fallback = iota
	FallbackPrimary
)

// Port is a listener's routing policy.
type Port struct {
	Name     string
	Role     Role
	Balance  Balance
	Fallback Fallback

	// MaxLag keeps replicas more than this many bytes behind the leader off
	// the port; 0 means no limit. A replica of unknown lag is served.
	MaxLag int64
	// LeaderWait is how long a new session on a primary port waits for a
	// primary while the cluster has none.
	LeaderWait time.Duration
}
