package proxy

import (
	"slices"
	"strings"

	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/router"
)

// ListenerInfo is one listener as the stats page and console show it.
type ListenerInfo struct {
	Name     string
	Address  string
	Role     router.Role
	Mode     Mode
	Counters *Counters   // live
	Pool     PoolOptions // pooled listeners
	Pools    []pool.Stats
	// Totals are the listener's SHOW STATS rows: one for a relay
	// listener, one per database for a pooled one, named as SHOW
	// DATABASES names them.
	Totals  []TotalsSnapshot
	Paused  bool // every pool of it is paused
	Removed bool // a reload removed it: it accepts no one and drains
}

// Listeners describes every listener, in configuration order.
func (s *Server) Listeners() []ListenerInfo {
	out := make([]ListenerInfo, 0, len(s.all()))
	for _, l := range s.all() {
		li := ListenerInfo{Name: l.name, Address: l.ln.Addr().String(), Role: l.role, Mode: l.mode,
			Counters: l.stats, Pool: *l.popts.Load(), Removed: l.removed.Load()}
		if l.pools == nil {
			li.Totals = []TotalsSnapshot{l.relayTotals.snapshot(l.name)}
		} else {
			li.Pools = l.pools.Stats()
			li.Paused = l.pools.Paused("")
			l.dbTotals.mu.Lock()
			for db, t := range l.dbTotals.m {
				li.Totals = append(li.Totals, t.snapshot(rowName(l, db)))
			}
			l.dbTotals.mu.Unlock()
			slices.SortFunc(li.Totals, func(a, b TotalsSnapshot) int { return strings.Compare(a.Database, b.Database) })
		}
		out = append(out, li)
	}
	return out
}

// IsRelay reports whether the named listener relays (pool_mode none).
func (s *Server) IsRelay(name string) bool {
	for _, l := range s.all() {
		if l.name == name {
			return l.mode == Relay
		}
	}
	return false
}
