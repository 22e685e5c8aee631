package router

import (
	"math/rand/v2"
	"slices"

	"github.com/switchyard-proxy/switchyard/discovery/topology"
)

// order arranges pool in place by the port's balance policy.
func (r *Router) order(p *port, pool []topology.Member) {
	if len(pool) < 2 {
		return
	}
	switch p.Balance {
	case Random:
		rand.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	case LeastConnections:
		if r.counts != nil {
			counts := r.counts()
			// Stable, so equal counts keep round-robin fairness below.
			rotate(pool, int(p.next.Add(1)-1)%len(pool))
			slices.SortStableFunc(pool, func(a, b topology.Member) int { return counts[a.Name] - counts[b.Name] })
			return
		}
		fallthrough
	default: // round-robin
		rotate(pool, int(p.next.Add(1)-1)%len(pool))
	}
}

func rotate(s []topology.Member, k int) {
	if k == 0 {
		return
	}
	slices.Reverse(s[:k])
	slices.Reverse(s[k:])
	slices.Reverse(s)
}
