package app

import (
	"sync"
	"time"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
	"github.com/switchyard-proxy/switchyard/proxy"
	"github.com/switchyard-proxy/switchyard/router"
)

// applier is where topology events fan out from: discovery publishes each
// new snapshot to it, and it hands the snapshot, latest first and in
// order, to everyone who acts on topology:
//
//  1. stamps Since on a copy (discovery's snapshot is not touched);
//  2. the router takes it (new sessions route by it, waiters wake);
//  3. the session registry ends the sessions whose member lost its role;
//  4. the pools close their server connections to such a member (idle
//     ones now, busy ones when their transaction ends);
//  5. the operator surface records it (events, metrics).
type applier struct {
	mu       sync.Mutex
	router   *router.Router
	registry *proxy.Registry
	pools    drainer
	now      func() time.Time
	// observe, if set, is told of each change and the sessions it ended
	// by member.
	observe func(prev, next *topology.Snapshot, ended map[string]int, now time.Time)
}

// drainer is what the applier needs of the pools.
type drainer interface{ Drain(member string) }

// apply is discovery's Publish.
func (a *applier) apply(next *topology.Snapshot) {
	a.mu.Lock()
	defer a.mu.Unlock()
	cur := a.router.Snapshot()
	if next.Revision < cur.Revision {
		return
	}
	now := a.now()
	t := topology.Stamped(cur, next, now)
	if !a.router.Update(t) {
		return
	}
	ended := map[string]int{}
	a.registry.Evict(func(s proxy.SessionInfo) *proxy.KillCause {
		if l := a.router.Lost(t, s.Binding); l != nil {
			ended[s.Backend]++
			return proxy.RoleLost(l)
		}
		return nil
	})
	if a.pools != nil {
		for _, m := range lostMembers(cur, t) {
			a.pools.Drain(m)
		}
	}
	if a.observe != nil {
		a.observe(cur, t, ended, now)
	}
}

// lostMembers are the members whose pooled servers must go: those that
// were primary and are no longer (or no longer usable), and those that
// left the topology or went unhealthy. A pool serves one role, so any
// role change of its member ends its servers.
func lostMembers(cur, next *topology.Snapshot) []string {
	was := map[string]topology.Member{}
	for _, m := range cur.Members {
		was[m.Name] = m
	}
	var lost []string
	seen := map[string]bool{}
	for _, m := range next.Members {
		seen[m.Name] = true
		old, ok := was[m.Name]
		if !ok {
			continue
		}
		if old.Role != m.Role || (old.Healthy && !m.Healthy) {
			lost = append(lost, m.Name)
		}
	}
	for name := range was {
		if !seen[name] {
			lost = append(lost, name)
		}
	}
	return lost
}
