package router

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
)

// Router answers "which members, in which order" for each listener from
// the latest snapshot. It is safe for concurrent use; the snapshot is
// read with one atomic load per call.
type Router struct {
	snap   atomic.Pointer[topology.Snapshot]
	ports  atomic.Pointer[map[string]*port] // replaced whole by SetPorts
	counts func() map[string]int            // live sessions per member, for least-connections

	mu      sync.Mutex    // serialises Update
	changed chan struct{} // closed and replaced by every Update
}

type port struct {
	Port
	next atomic.Uint64 // round-robin position
}

// New returns a Router for ports. counts, which may be nil, reports live
// sessions per member for least-connections balancing.
func New(ports []Port, counts func() map[string]int) *Router {
	r := &Router{counts: counts, changed: make(chan struct{})}
	r.SetPorts(ports)
	r.snap.Store(&topology.Snapshot{})
	return r
}

// SetPorts replaces the ports (a reload that adds, removes or changes
// listeners). A port kept under the same name keeps its round-robin
// position.
func (r *Router) SetPorts(ports []Port) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.ports.Load()
	m := make(map[string]*port, len(ports))
	for _, p := range ports {
		np := &port{Port: p}
		if old != nil {
			if op, ok := (*old)[p.Name]; ok {
				np.next.Store(op.next.Load())
			}
		}
		m[p.Name] = np
	}
	r.ports.Store(&m)
}

func (r *Router) port(name string) (*port, bool) {
	p, ok := (*r.ports.Load())[name]
	return p, ok
}

// Update publishes t and wakes the sessions waiting for a primary, and
// does nothing else. A snapshot older than the current one is ignored, so
// the latest always wins; Update reports whether t was taken.
func (r *Router) Update(t *topology.Snapshot) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.snap.Load().Revision > t.Revision {
		return false
	}
	r.snap.Store(t)
	close(r.changed)
	r.changed = make(chan struct{})
	return true
}

// Snapshot returns the current snapshot.
func (r *Router) Snapshot() *topology.Snapshot { return r.snap.Load() }

// Candidates returns the members to try for a new session on listener, in
// order: the balance policy's choice first, then the others, then the
// primary when the listener falls back to it. An empty list means no
// member can serve the listener's role. On a primary listener with no
// usable primary it first waits up to the port's LeaderWait for one, and
// on any listener before the first snapshot it waits as long for that, or
// until ctx ends. Suspect members get no new sessions.
func (r *Router) Candidates(ctx context.Context, listener string) ([]topology.Member, error) {
	p, ok := r.port(listener)
	if !ok {
		return nil, fmt.Errorf("router: unknown listener %q", listener)
	}
	t := r.snap.Load()
	switch {
	case p.Role == Primary:
		if _, ok := usablePrimary(t); !ok {
			t = r.wait(ctx, p.LeaderWait, func(t *topology.Snapshot) bool { _, ok := usablePrimary(t); return ok })
		}
	case t.Revision == 0:
		// Discovery has not answered yet (Switchyard just started): wait
		// for its first snapshot as a primary listener waits for a leader.
		t = r.wait(ctx, p.LeaderWait, func(t *topology.Snapshot) bool { return t.Revision > 0 })
	}
	primary, hasPrimary := usablePrimary(t)
	var pool []topology.Member
	switch p.Role {
	case Primary:
		if hasPrimary {
			return []topology.Member{primary}, nil
		}
		return nil, nil
	case Replica, Sync:
		pool = p.replicas(t)
	case Any:
		pool = p.replicas(t)
		if hasPrimary {
			pool = append(pool, primary)
		}
	}
	r.order(p, pool)
	if p.Role != Any && p.Fallback == FallbackPrimary && hasPrimary {
		pool = append(pool, primary)
	}
	return pool, nil
}

// usablePrimary is t's primary when it may take new sessions.
func usablePrimary(t *topology.Snapshot) (topology.Member, bool) {
	p, ok := t.Primary()
	return p, ok && !p.Suspect
}

// WaitFor waits up to d (or until ctx ends) for a snapshot for which ok
// holds, and returns the latest snapshot, whether ok holds for it or not.
func (r *Router) WaitFor(ctx context.Context, d time.Duration, ok func(*topology.Snapshot) bool) *topology.Snapshot {
	return r.wait(ctx, d, ok)
}

// wait is WaitFor.
func (r *Router) wait(ctx context.Context, d time.Duration, ok func(*topology.Snapshot) bool) *topology.Snapshot {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		r.mu.Lock()
		ch := r.changed
		r.mu.Unlock()
		t := r.snap.Load()
		if ok(t) || d <= 0 {
			return t
		}
		select {
		case <-ch:
		case <-timer.C:
			return r.snap.Load()
		case <-ctx.Done():
			return r.snap.Load()
		}
	}
}

// replicas returns the members fit to take new sessions on p as replicas,
// in snapshot order.
func (p *port) replicas(t *topology.Snapshot) []topology.Member {
	var out []topology.Member
	for _, m := range t.Members {
		if p.unfit(m) == "" && !m.Suspect {
			out = append(out, m)
		}
	}
	return out
}
