// Package discovery turns a source of cluster facts into a stream of whole,
// immutable topology snapshots for the router.
//
// This version has one source, Static: the members and roles written in the
// config, with each member's health from a TCP check. The DCS watchers
// (etcd, Consul, ZooKeeper) will publish through the same Publish func.
package discovery

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/switchyard-proxy/switchyard/router"
)

// Publish receives each new snapshot; router.Router.Update fits.
type Publish func(*router.Topology)

// DialFunc opens a connection; net.Dialer.DialContext fits.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Static publishes a fixed member list and re-publishes it whenever a
// member's reachability changes, like HAProxy's "check" on a server line.
type Static struct {
	Members  []router.Member
	Interval time.Duration // between checks; default 1 s
	Publish  Publish
	Logger   *slog.Logger
	DialFunc DialFunc
}

// Run publishes the first snapshot at once (every member assumed healthy)
// and then checks the members every Interval until ctx is done.
func (s *Static) Run(ctx context.Context) error {
	interval := s.Interval
	if interval <= 0 {
		interval = time.Second
	}
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dial := s.DialFunc
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	members := make([]router.Member, len(s.Members))
	copy(members, s.Members)
	for i := range members {
		members[i].Healthy = true
	}
	rev := uint64(1)
	s.Publish(&router.Topology{Revision: rev, Members: members})

	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		health := check(ctx, dial, members, min(interval, 2*time.Second))
		if ctx.Err() != nil {
			return nil
		}
		changed := false
		next := make([]router.Member, len(members))
		copy(next, members)
		for i, ok := range health {
			if next[i].Healthy == ok {
				continue
			}
			changed = true
			next[i].Healthy = ok
			if ok {
				log.Info("member is reachable again", "member", next[i].Name, "address", next[i].Addr)
			} else {
				log.Warn("member is unreachable", "member", next[i].Name, "address", next[i].Addr)
			}
		}
		if changed {
			rev++
			members = next
			s.Publish(&router.Topology{Revision: rev, Members: members})
		}
		timer.Reset(interval)
	}
}

// check dials every member concurrently and reports which answered.
func check(ctx context.Context, dial DialFunc, members []router.Member, timeout time.Duration) []bool {
	out := make([]bool, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			c, err := dial(cctx, "tcp", m.Addr)
			if err == nil {
				c.Close()
				out[i] = true
			}
		}()
	}
	wg.Wait()
	return out
}
