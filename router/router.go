package router

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
)

// Port is a listener's routing policy.
type Port struct {
	Name     string
	Role     string // "primary" | "replica" | "any"
	Balance  string // "round-robin" | "least-connections" | "random"
	Fallback string // "primary" | "none"
}

// Router answers "which backends, in which order" for each listener, from
// the latest topology snapshot. It is safe for concurrent use; the snapshot
// is read with one atomic load per call.
type Router struct {
	topo  atomic.Pointer[Topology]
	ports map[string]*port
	reg   *Registry
}

type port struct {
	Port
	next atomic.Uint64 // round-robin position
}

// New returns a Router for ports. reg supplies session counts for
// least-connections balancing; it may be nil.
func New(ports []Port, reg *Registry) *Router {
	r := &Router{ports: make(map[string]*port, len(ports)), reg: reg}
	for _, p := range ports {
		r.ports[p.Name] = &port{Port: p}
	}
	r.topo.Store(&Topology{})
	return r
}

// Update publishes a new snapshot. Older revisions than the current one
// are ignored, so the latest snapshot always wins.
func (r *Router) Update(t *Topology) {
	for {
		cur := r.topo.Load()
		if cur != nil && cur.Revision > t.Revision {
			return
		}
		if r.topo.CompareAndSwap(cur, t) {
			return
		}
	}
}

// Topology returns the current snapshot.
func (r *Router) Topology() *Topology { return r.topo.Load() }

// Candidates returns the members to try for a new session on listener, in
// order: the balance policy's choice first, then the others, then the
// primary when the listener falls back to it. An empty list means no
// member can serve the listener's role.
func (r *Router) Candidates(listener string) ([]Member, error) {
	p, ok := r.ports[listener]
	if !ok {
		return nil, fmt.Errorf("router: unknown listener %q", listener)
	}
	t := r.topo.Load()
	primary, hasPrimary := t.Primary()
	var pool []Member
	switch p.Role {
	case "primary":
		if hasPrimary {
			return []Member{primary}, nil
		}
		return nil, nil
	case "replica":
		pool = t.replicas()
	case "any":
		pool = t.replicas()
		if hasPrimary {
			pool = append(pool, primary)
		}
	}
	r.order(p, pool)
	if p.Role == "replica" && p.Fallback == "primary" && hasPrimary {
		pool = append(pool, primary)
	}
	return pool, nil
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
