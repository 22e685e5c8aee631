package router

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Port is a listener's routing policy.
type Port struct {
	Name     string
	Role     string // "primary" | "replica" | "sync" | "any"
	Balance  string // "round-robin" | "least-connections" | "random"
	Fallback string // "primary" | "none"

	// MaxLag keeps replicas more than this many bytes behind the leader off
	// the port; 0 means no limit. A replica of unknown lag is served.
	MaxLag int64
	// LeaderWait is how long a new session on a primary port waits for a
	// primary while the cluster has none.
	LeaderWait time.Duration
}

// Router answers "which backends, in which order" for each listener, from
// the latest topology snapshot, and ends the sessions a new snapshot
// invalidates. It is safe for concurrent use; the snapshot is read with
// one atomic load per call.
type Router struct {
	topo  atomic.Pointer[Topology]
	ports map[string]*port
	reg   *Registry
	now   func() time.Time

	mu      sync.Mutex    // serialises Update
	changed chan struct{} // closed and replaced by every Update
}

type port struct {
	Port
	next atomic.Uint64 // round-robin position
}

// New returns a Router for ports. reg holds the live sessions: it supplies
// counts for least-connections balancing and is where Update ends the
// sessions of members that lost their role. It may be nil.
func New(ports []Port, reg *Registry) *Router {
	r := &Router{ports: make(map[string]*port, len(ports)), reg: reg, now: time.Now, changed: make(chan struct{})}
	for _, p := range ports {
		r.ports[p.Name] = &port{Port: p}
	}
	r.topo.Store(&Topology{})
	return r
}

// Update publishes a new snapshot and takes ownership of it. Snapshots
// older than the current one are ignored, so the latest always wins.
// Every registered session whose backend no longer holds the role it was
// chosen for is ended, before Update returns, with a cause that names the
// member and what it lost.
func (r *Router) Update(t *Topology) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.topo.Load()
	if cur.Revision > t.Revision {
		return
	}
	now := r.now()
	for i := range t.Members {
		m := &t.Members[i]
		switch old, ok := cur.Member(m.Name); {
		case cur.Revision == 0: // roles held before we started: since "always"
		case ok && old.Role == m.Role:
			m.Since = old.Since
		default:
			m.Since = now
		}
	}
	r.topo.Store(t)
	close(r.changed)
	r.changed = make(chan struct{})
	if r.reg != nil {
		r.reg.Evict(func(s Session) *KillCause { return r.check(t, s) })
	}
}

// Topology returns the current snapshot.
func (r *Router) Topology() *Topology { return r.topo.Load() }

// Check returns why session s may no longer use its backend under the
// current snapshot, or nil. A session registered after choosing its
// backend calls it once, so that an Update racing with its login cannot
// leave it on a member that just lost its role.
func (r *Router) Check(s Session) *KillCause { return r.check(r.topo.Load(), s) }

func (r *Router) check(t *Topology, s Session) *KillCause {
	p, ok := r.ports[s.Listener]
	if !ok {
		return nil
	}
	m, ok := t.Member(s.Backend)
	var why string
	switch {
	case !ok:
		why = "left the cluster"
	case s.Role == RolePrimary.String():
		if pm, ok := t.Primary(); ok && pm.Name == m.Name {
			return nil
		}
		switch {
		case m.Role == RoleReplica:
			why = "was demoted to replica"
		case m.Role == RolePrimary && !m.Healthy:
			why = "is not running"
		case m.Role == RolePrimary:
			why = "is not the only member claiming the primary role"
		case m.Why != "":
			why = m.Why
		default:
			why = "no longer holds the leader lock"
		}
		return &KillCause{SQLState: "57P01", Message: fmt.Sprintf(
			"terminating connection because server %q is no longer the primary: it %s; reconnect to reach the current primary", m.Name, why)}
	default:
		if m.Role == RolePrimary {
			why = "was promoted to primary"
		} else if why = p.unfit(m); why == "" {
			return nil
		}
	}
	return &KillCause{SQLState: "57P01", Message: fmt.Sprintf(
		"terminating connection because server %q no longer serves listener %q as a %s: it %s; reconnect",
		s.Backend, s.Listener, s.Role, why)}
}

// unfit says why replica m may not serve port p, or "" if it may.
func (p *port) unfit(m Member) string {
	switch {
	case m.Role != RoleReplica:
		return "is no longer a replica"
	case !m.Healthy:
		if m.State != "" {
			return fmt.Sprintf("is not running (state %q)", m.State)
		}
		return "is not running"
	case m.NoLoadBalance:
		return "is tagged noloadbalance"
	case p.MaxLag > 0 && m.Lag > p.MaxLag:
		return fmt.Sprintf("lags %d bytes behind the leader, over max_lag %d", m.Lag, p.MaxLag)
	case p.Role == "sync" && !m.Sync:
		return "is not the synchronous standby"
	}
	return ""
}

// Candidates returns the members to try for a new session on listener, in
// order: the balance policy's choice first, then the others, then the
// primary when the listener falls back to it. An empty list means no
// member can serve the listener's role. On a primary listener with no
// primary it first waits up to the port's LeaderWait for one, or until
// ctx ends.
func (r *Router) Candidates(ctx context.Context, listener string) ([]Member, error) {
	p, ok := r.ports[listener]
	if !ok {
		return nil, fmt.Errorf("router: unknown listener %q", listener)
	}
	t := r.topo.Load()
	primary, hasPrimary := t.Primary()
	if p.Role == "primary" && !hasPrimary && p.LeaderWait > 0 {
		t = r.waitPrimary(ctx, p.LeaderWait)
		primary, hasPrimary = t.Primary()
	}
	var pool []Member
	switch p.Role {
	case "primary":
		if hasPrimary {
			return []Member{primary}, nil
		}
		return nil, nil
	case "replica", "sync":
		pool = p.replicas(t)
	case "any":
		pool = p.replicas(t)
		if hasPrimary {
			pool = append(pool, primary)
		}
	}
	r.order(p, pool)
	if p.Role != "any" && p.Fallback == "primary" && hasPrimary {
		pool = append(pool, primary)
	}
	return pool, nil
}

// waitPrimary waits up to d for a snapshot with a primary and returns the
// latest snapshot, with or without one.
func (r *Router) waitPrimary(ctx context.Context, d time.Duration) *Topology {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		r.mu.Lock()
		ch := r.changed
		r.mu.Unlock()
		t := r.topo.Load()
		if _, ok := t.Primary(); ok {
			return t
		}
		select {
		case <-ch:
		case <-timer.C:
			return r.topo.Load()
		case <-ctx.Done():
			return r.topo.Load()
		}
	}
}

// replicas returns the members fit to serve p as replicas, in snapshot
// order.
func (p *port) replicas(t *Topology) []Member {
	var out []Member
	for _, m := range t.Members {
		if p.unfit(m) == "" {
			out = append(out, m)
		}
	}
	return out
}

// order arranges pool in place by the port's balance policy.
func (r *Router) order(p *port, pool []Member) {
	if len(pool) < 2 {
		return
	}
	switch p.Balance {
	case "random":
		rand.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	case "least-connections":
		if r.reg != nil {
			counts := r.reg.Counts()
			// Stable, so equal counts keep round-robin fairness below.
			start := int(p.next.Add(1)-1) % len(pool)
			rotate(pool, start)
			slices.SortStableFunc(pool, func(a, b Member) int { return counts[a.Name] - counts[b.Name] })
			return
		}
		fallthrough
	default: // round-robin
		rotate(pool, int(p.next.Add(1)-1)%len(pool))
	}
}

func rotate(s []Member, k int) {
	if k == 0 {
		return
	}
	slices.Reverse(s[:k])
	slices.Reverse(s[k:])
	slices.Reverse(s)
}
