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
//  3. the session registry ends the sessions whose member lost its role.
//
// Pools (drain a member) and the admin page's event list plug in here
// next, as further steps.
type applier struct {
	mu       sync.Mutex
	router   *router.Router
	registry *proxy.Registry
	now      func() time.Time
}

// apply is discovery's Publish.
func (a *applier) apply(next *topology.Snapshot) {
	a.mu.Lock()
	defer a.mu.Unlock()
	cur := a.router.Snapshot()
	if next.Revision < cur.Revision {
		return
	}
	t := topology.Stamped(cur, next, a.now())
	if !a.router.Update(t) {
		return
	}
	a.registry.EndLost(func(b router.Binding) *router.Loss { return a.router.Lost(t, b) })
}
