package admin

import (
	"fmt"
	"sync"
	"time"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
	"github.com/switchyard-proxy/switchyard/internal/events"
)

// gap tracks how long the cluster has been without a known primary.
type gap struct {
	mu    sync.Mutex
	since time.Time // zero while a primary is known
}

// Applied records a topology change the applier made: the events list,
// role changes, the time without a primary, and the sessions it ended
// (ended, by member).
func (s *Server) Applied(prev, next *topology.Snapshot, ended map[string]int, now time.Time) {
	m, ev := s.metrics, s.deps.Events
	m.snapshots.Inc()
	if prev == nil || prev.Revision == 0 {
		ev.Add(events.Topology, "first topology from %s: %s", next.Source, next.Summary())
	} else {
		for _, line := range changes(prev, next) {
			ev.Add(events.Topology, "%s", line)
		}
	}
	for _, mem := range next.Members {
		if old, ok := prev.Member(mem.Name); !ok || old.Role != mem.Role {
			m.roleChanges.WithLabelValues(mem.Role.String()).Inc()
		}
	}
	for member, n := range ended {
		m.sessionsEnded.WithLabelValues(member).Add(float64(n))
		ev.Add(events.Sessions, "ended %d session(s) on %s: it lost the role they were routed for", n, member)
	}

	_, had := prev.Primary()
	p, has := next.Primary()
	s.gap.mu.Lock()
	defer s.gap.mu.Unlock()
	switch {
	case had && !has:
		s.gap.since = now
		ev.Add(events.Topology, "no primary: writes wait up to leader_wait for the next one")
	case !has && s.gap.since.IsZero() && prev != nil && prev.Revision != 0:
		s.gap.since = now
	case has && !s.gap.since.IsZero():
		d := now.Sub(s.gap.since)
		m.leaderGap.Observe(d.Seconds())
		ev.Add(events.Topology, "%s is the primary, %s after the last one was lost", p.Name, short(d))
		s.gap.since = time.Time{}
	}
}

// changes says, per member, what changed from prev to next: role,
// health, joining and leaving.
func changes(prev, next *topology.Snapshot) []string {
	var out []string
	for _, m := range next.Members {
		old, ok := prev.Member(m.Name)
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s joined as %s", m.Name, m.Role))
		case old.Role != m.Role:
			line := fmt.Sprintf("%s: %s → %s", m.Name, old.Role, m.Role)
			if m.Why != "" {
				line += " (" + m.Why + ")"
			}
			out = append(out, line)
		case old.Healthy && !m.Healthy:
			out = append(out, fmt.Sprintf("%s is down (%s)", m.Name, m.State))
		case !old.Healthy && m.Healthy:
			out = append(out, fmt.Sprintf("%s is up again", m.Name))
		}
	}
	for _, m := range prev.Members {
		if _, ok := next.Member(m.Name); !ok {
			out = append(out, fmt.Sprintf("%s left the cluster", m.Name))
		}
	}
	return out
}
