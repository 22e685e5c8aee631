package router

import (
	"fmt"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
)

// Binding is a live session's tie to a member: the listener it came in
// on, the member, and the member's role when it was chosen.
type Binding struct {
	Listener string
	Backend  string
	Role     topology.Role
}

// Loss says why a member no longer serves a binding.
type Loss struct {
	Binding
	// Why completes "it ...": "was demoted to replica", "left the cluster".
	Why string
}

// Check says why b's member no longer serves b under the current
// snapshot, or nil. A session that registers after choosing its member
// calls it once, so that an update racing with its login cannot leave it
// on a member that just lost its role.
func (r *Router) Check(b Binding) *Loss { return r.Lost(r.snap.Load(), b) }

// Lost says why b's member no longer serves b under snapshot t, or nil.
// It is pure: the applier calls it for every live session when a new
// snapshot arrives. A suspect member (one failed health check) still
// serves its sessions.
func (r *Router) Lost(t *topology.Snapshot, b Binding) *Loss {
	p, ok := r.port(b.Listener)
	if !ok {
		return nil
	}
	m, ok := t.Member(b.Backend)
	loss := &Loss{Binding: b}
	switch {
	case !ok:
		loss.Why = "left the cluster"
	case b.Role == topology.RolePrimary:
		if pm, ok := t.Primary(); ok && pm.Name == m.Name {
			return nil
		}
		switch {
		case m.Role == topology.RoleReplica:
			loss.Why = "was demoted to replica"
		case m.Role == topology.RolePrimary && !m.Healthy:
			loss.Why = "is not running"
		case m.Role == topology.RolePrimary:
			loss.Why = "is not the only member claiming the primary role"
		case m.Why != "":
			loss.Why = m.Why
		default:
			loss.Why = "no longer holds the leader lock"
		}
	case m.Role == topology.RolePrimary:
		loss.Why = "was promoted to primary"
	default:
		if loss.Why = p.unfit(m); loss.Why == "" {
			return nil
		}
	}
	return loss
}

// unfit says why replica m may not serve port p, or "" if it may.
func (p *port) unfit(m topology.Member) string {
	switch {
	case m.Role != topology.RoleReplica:
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
	case p.Role == Sync && !m.Sync:
		return "is not the synchronous standby"
	}
	return ""
}
